"""How much of a model a target costed: the share of its MACs and the nodes it left out.

A compile that leaves nodes unsupported still reports figures, and they must never pass for
the whole model: every report carries ``totals.coverage``, ``nncc compare`` shows it, and
``nncc compile`` warns (or, with ``--strict``, fails) when it is below 100%.

MACs of control flow count what the node runs: an ``If`` its costlier branch, a ``Loop`` its
body times a constant trip count, a ``Scan`` its body times the scanned length. Where that is
unknown (a runtime trip count, shapes unknown inside a body, a dot product whose shapes are
unknown), the node's MACs are unknown: ``macs_unknown_nodes`` counts them, and the share of
MACs is then over the known ones only -- which is why a report is complete only when no node
was left out, whatever the share says.
"""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from nncc.analysis import Layer, layers, node_macs
from nncc.cost import Unsupported
from nncc.irutils import const_array, static_shape
from nncc.ops import op_class

CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})


def graph_macs(graph: ir.Graph) -> int | None:
    """MACs of every node of ``graph`` (subgraphs included); None when some are unknown."""
    total = 0
    for node in graph:
        macs = control_flow_macs(node) if node.op_type in CONTROL_FLOW else node_macs(node)
        if macs is None:
            return None
        total += macs
    return total


def control_flow_macs(node: ir.Node) -> int | None:
    """What an If / Loop / Scan node runs, in MACs (see the module docstring); None if unknown."""
    bodies = {name: attr.value for name, attr in node.attributes.items() if isinstance(attr.value, ir.Graph)}
    if node.op_type == "If":
        branches = [graph_macs(g) for g in bodies.values()]
        return None if any(m is None for m in branches) else max(branches, default=0)
    body = graph_macs(bodies["body"]) if "body" in bodies else None
    if body is None:
        return None
    if node.op_type == "Loop":
        trips = const_array(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
        return body * int(trips) if trips is not None and trips.size == 1 else None
    # Scan: the body runs once per element of the scanned axis of the first scan input.
    num_scan = node.attributes.get_int("num_scan_inputs", 0)
    scanned = node.inputs[len(node.inputs) - num_scan] if num_scan else None
    shape = static_shape(scanned)
    axes = node.attributes.get_ints("scan_input_axes", [0] * num_scan)
    return body * shape[axes[0] % len(shape)] if shape else None


def coverage(model: ir.Model, unsupported: list[Unsupported], rows: list[Layer] | None = None) -> dict[str, Any]:
    """``totals.coverage`` of a report: costed MACs against the model's, and what was left out
    (``rows``: :func:`nncc.analysis.layers` of ``model``, when the caller has them)."""
    left_out = {u.name for u in unsupported}
    total = costed = unknown = 0
    for layer in layers(model) if rows is None else rows:
        macs = control_flow_macs(layer.node) if layer.op in CONTROL_FLOW else layer.macs
        if macs == 0 and op_class(layer.op, layer.domain) == "weighted":
            macs = None  # a dot product counts no MACs only when its shapes are unknown
        if macs is None:
            unknown += 1
            continue
        total += macs
        if layer.name not in left_out:
            costed += macs
    fraction = costed / total if total else (1.0 if not unsupported else 0.0)
    return {
        "complete": not unsupported,
        "macs_fraction": fraction,
        "macs_costed": int(costed),
        "macs_total": int(total),
        "unsupported_nodes": len(unsupported),
        "unsupported_ops": sorted({u.op for u in unsupported}),
        "macs_unknown_nodes": unknown,
    }


def describe(cov: dict[str, Any]) -> str:
    """One line: '87.3% of MACs costed; 13 nodes not costed (If, LSTM)'."""
    text = f"{cov['macs_fraction']:.1%} of MACs costed"
    if cov["unsupported_nodes"]:
        ops = ", ".join(cov["unsupported_ops"][:6]) + (", ..." if len(cov["unsupported_ops"]) > 6 else "")
        text += f"; {cov['unsupported_nodes']} node{'s' if cov['unsupported_nodes'] != 1 else ''} not costed ({ops})"
    if cov["macs_unknown_nodes"]:
        text += f"; MACs unknown for {cov['macs_unknown_nodes']} control-flow node(s)"
    return text
