"""Graph clean-ups that never change what the model computes."""

from __future__ import annotations

import dataclasses

import onnx_ir as ir
import onnx_ir.passes.common as common_passes

from nncc.pass_base import NnccPass
from nncc.irutils import drop_unused_initializers


@dataclasses.dataclass
class EliminateDeadCode(NnccPass):
    """Remove nodes whose outputs nothing reads, then the initializers left unused."""

    name = "eliminate-dead-code"
    target_independent = True
    exact_tolerance = 1e-5
    summary = "remove nodes and initializers that no graph output depends on"

    def apply(self, model: ir.Model) -> bool:
        before = model.graph.num_nodes()
        common_passes.RemoveUnusedNodesPass()(model)
        nodes_removed = before - model.graph.num_nodes()
        initializers_removed = drop_unused_initializers(model.graph)
        self.stats.update(nodes_removed=nodes_removed, initializers_removed=initializers_removed)
        return bool(nodes_removed or initializers_removed)
