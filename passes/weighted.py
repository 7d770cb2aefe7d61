"""Weighted layers as a rewriting pass meets them.

Which ops are weighted is :mod:`nncc.ops`' table and where their weight sits is
:func:`nncc.weights.weight_of`; this module adds the two things every rewriting pass asks
next: whether that weight is an initializer it may replace, and the layer's name
(:func:`nncc.weights.layer_name`, as in the reports). A pass walks :func:`weighted_nodes`,
declines what it does not handle with a :func:`skip_record` (the ``skipped`` table of
:mod:`nncc.pass_base`'s stats schema), and reads every axis and matrix view from the weight's
layout.
"""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from nncc.ops import is_weighted
from nncc.weights import Weight, layer_name, weight_of

# Weighted ops for which the layer view has no weight layout, and why.
_NO_LAYOUT = {"Einsum": "Einsum: the equation decides which operand is a weight (no weight layout)"}
NO_CONSTANT_WEIGHT = "no constant operand to hold a weight (both are computed at run time)"


def rewritable_weight(node: ir.Node) -> Weight | str:
    """The node's weight when a pass may replace it (an initializer), else why it may not."""
    weight = weight_of(node)
    if weight is None:
        return _NO_LAYOUT.get(node.op_type, NO_CONSTANT_WEIGHT)
    if not weight.is_initializer:
        return "weight is computed before inference (Constant node or DequantizeLinear), not an initializer"
    return weight


def weighted_nodes(graph: ir.Graph) -> list[tuple[ir.Node, str, Weight | str]]:
    """(node, label, weight or why it has none to rewrite) for every weighted-op node, in graph order."""
    return [(node, layer_name(node), rewritable_weight(node)) for node in graph if is_weighted(node.op_type, node.domain)]


def skip_record(node: ir.Node, name: str, reason: str, **extra: Any) -> dict[str, Any]:
    """One row of a pass's ``skipped`` table."""
    return {"name": name, "op": node.op_type, "reason": reason, **extra}
