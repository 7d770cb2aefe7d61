"""Group connection deletion (Group Scissor, Wang et al., DAC 2017, arXiv 1702.03443): structured
pruning of the connections between crossbars.

A weighted layer, as the reram target places it, is a [K fan-in x N outputs] matrix cut into
row blocks of X (the crossbar rows). Within one row block, the weights of one output form a
crossbar column segment whose partial sum is one wire from that crossbar into the adder tree
that reduces the row blocks (mapping.py's routing model). That segment is a *group*: zeroing
it removes the wire (its ``slices x polarities`` physical columns), and once every group a
crossbar holds is zero the crossbar is not placed at all (the mapping skips all-zero blocks).

Post-training, groups are deleted by smallest L2 norm: ``ratio`` = fraction of a layer's
groups that are zero afterwards (groups already zero count, so a second run deletes nothing),
or, when given, ``threshold`` = delete groups whose norm is below that fraction of the layer's
largest group norm (the largest survives, so again a second run deletes nothing).
Numbers: the result equals the original with those weights zeroed; per output, the change is
at most ||deleted weights of that output||_2 x ||input patch||_2 (recorded: the deleted
Frobenius norm, which bounds every output's change relative to the input norm).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx_ir as ir

from nncc.crossbar import logical_blocks, placed_crossbars, row_blocks, segment_norms
from nncc.errors import NnccError
from nncc.irutils import add_initializer, const_array, drop_unused_initializers
from nncc.pass_base import NnccPass
from nncc.passes.rank_clip import plan_geometry
from nncc.passes.weighted import skip_record, weighted_nodes
from nncc.weights import Weight

# Counting the placed crossbars quantizes the layer's cells (as the reram mapping does); past
# this many cells the count is left out of the stats rather than slowing the pass down.
PHYSICAL_COUNT_MAX_CELLS = 1 << 26


def crossbar_matrix(node: ir.Node, weight: Weight) -> np.ndarray | str:
    """The node's weight as the reram mapping places it, [K fan-in, N outputs], or why the node is skipped."""
    layout, shape = weight.layout, weight.shape
    if weight.integer_bits is not None:
        return "integer weights (a pre-quantized op): not mapped onto crossbars"
    if layout.kind == "conv_transpose":
        return "ConvTranspose: the reram mapping does not place it on crossbars"
    if layout.index != 1:
        return "constant first operand (W X): the reram mapping does not place it on crossbars"
    if layout.groups != 1:
        return "grouped convolution: the reram mapping packs whole groups per crossbar (not handled)"
    if layout.kind == "in_first" and len(shape) != 2:
        return f"{len(shape)}-D weight: only 2-D weights map onto crossbars"
    if const_array(node.inputs[0]) is not None:
        return "both operands are constant"
    w = const_array(weight.value)
    if not np.issubdtype(w.dtype, np.floating):
        return f"weight dtype {w.dtype} is not floating point"
    (matrix,) = layout.matrices(w)
    return matrix


@dataclasses.dataclass
class DeleteGroups(NnccPass):
    """Zero whole crossbar column segments (one output's weights within one crossbar row block)
    by smallest L2 norm, so the reram mapping routes fewer wires and places fewer crossbars.

    Parameters:
      ratio: fraction of each layer's groups that are zero afterwards (0..1). Post-training,
        0.1 costs LeNet-5/MNIST about 0.1-0.5 pt top-1, 0.5 about 10 pt (benchmarks/group_scissor.py).
      threshold: when given, wins over ``ratio``: delete groups whose L2 norm is below
        ``threshold`` x the layer's largest group norm (0..1).
      crossbar: crossbar rows X (the row-block height); None: the compile target's crossbar
        size. The pass plans for the compile target's crossbars and fails when it has none.
      min_row_blocks: only layers whose fan-in spans at least this many crossbar row blocks.
        With one row block a column segment is a whole output (deleting it prunes a filter,
        not a connection between crossbars), so by default such layers are left alone.
    """

    name = "delete-groups"
    summary = "Group Scissor group connection deletion: zero whole crossbar column segments by smallest L2 norm"

    ratio: float = 0.1
    threshold: float | None = None
    crossbar: int | None = None
    min_row_blocks: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.ratio <= 1:
            raise NnccError("delete-groups", f"ratio={self.ratio} must be in [0, 1]")
        if self.threshold is not None and not 0 <= self.threshold < 1:
            raise NnccError("delete-groups", f"threshold={self.threshold} must be in [0, 1)")
        if (self.crossbar is not None and self.crossbar < 1) or self.min_row_blocks < 1:
            raise NnccError("delete-groups", f"crossbar={self.crossbar} and min_row_blocks={self.min_row_blocks} must be >= 1")

    def _select(self, norms: np.ndarray) -> np.ndarray:
        """Boolean mask of the groups to delete now (never an already-zero one)."""
        flat = norms.ravel()
        live = flat > 0
        mask = np.zeros(flat.shape, dtype=bool)
        if self.threshold is not None:
            top = float(flat.max()) if flat.size else 0.0
            mask = live & (flat < self.threshold * top)
        else:
            # Groups already zero count towards the ratio: that is what makes a rerun a no-op.
            target = math.floor(self.ratio * flat.size + 1e-9)
            todo = target - int(np.sum(~live))
            if todo > 0:
                order = np.argsort(np.where(live, flat, np.inf), kind="stable")
                mask[order[:todo]] = True
        return mask.reshape(norms.shape)

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        geometry = plan_geometry(self.name, self.crossbar)
        x = geometry.size
        done: list[dict] = []
        skipped: list[dict] = []
        for node, label, weight in weighted_nodes(graph):
            w = weight if isinstance(weight, str) else crossbar_matrix(node, weight)
            if isinstance(w, str):
                skipped.append(skip_record(node, label, w))
                continue
            if row_blocks(w.shape[0], x) < self.min_row_blocks:
                skipped.append(skip_record(node, label, f"fan-in {w.shape[0]} spans {row_blocks(w.shape[0], x)} row block(s) "
                                                        f"of {x} < min_row_blocks={self.min_row_blocks}",
                                           matrix_shape=list(w.shape)))
                continue
            norms = segment_norms(w, x)
            delete = self._select(norms)
            record = {"name": label, "op": node.op_type, "matrix_shape": list(w.shape), "row_blocks": int(norms.shape[0]),
                      "groups_total": int(norms.size), "groups_deleted": int(delete.sum()),
                      "groups_zero": int(np.sum(norms == 0) + delete.sum())}
            if not delete.any():
                skipped.append({**record, "reason": "no group to delete"})
                continue
            rows = np.repeat(delete, x, axis=0)[:w.shape[0]]
            new = np.where(rows, 0, w).astype(w.dtype)
            deleted = float(np.sqrt(np.sum(norms[delete] ** 2)))
            total = float(np.linalg.norm(w.astype(np.float64)))
            before, after = (placed_crossbars(m, geometry, PHYSICAL_COUNT_MAX_CELLS) for m in (w, new))
            record.update({
                "deleted_frobenius": deleted, "relative_deleted_frobenius": deleted / total if total else 0.0,
                "max_deleted_group_norm": float(norms[delete].max()),
                "blocks_logical_before": logical_blocks(w, x), "blocks_logical_after": logical_blocks(new, x),
                "crossbars_before": before, "crossbars_after": after,
                "blocks_emptied": None if before is None else before - after,
            })
            layout = weight.layout
            tensor = np.ascontiguousarray(layout.from_gemm_view(new.T, weight.shape))
            node.replace_input_with(layout.index, add_initializer(graph, f"{weight.value.name}_groups_deleted", tensor))
            done.append(record)
        if done:
            drop_unused_initializers(graph)
        self.stats.update({
            "rule": f"threshold={self.threshold}" if self.threshold is not None else f"ratio={self.ratio}",
            "crossbar": x, "layers_changed": len(done),
            "groups_total": sum(r["groups_total"] for r in done), "groups_deleted": sum(r["groups_deleted"] for r in done),
            "blocks_emptied": sum(r["blocks_emptied"] or 0 for r in done),
            "layers": done, "skipped": skipped,
        })
        return bool(done)
