"""onnxruntime's transformer fusions, as kernel detection (:mod:`.kernels`) sees them.

At its default optimization level onnxruntime's CPU provider rewrites the usual transformer
subgraphs before running them (its optimizer's GeluFusion, SkipLayerNormFusion,
MatMulAddFusion and MatMulScaleFusion; read off the optimized graph of nncc's BERT-tiny and of
sampled transformer pieces with onnxruntime 1.32):

- ``Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5`` (or ``Mul 0.5`` before ``Mul x``;
  ``Mul(x, 1/sqrt 2)`` for the Div) runs as one Gelu kernel;
- ``Add(a, b)`` of two computed 3-D tensors of one shape, read only by a LayerNormalization
  over the last axis, runs as one SkipLayerNormalization kernel;
- ``MatMul`` by a constant matrix, then ``Add`` of a constant bias over its last axis, runs as
  a Gemm; an input of more than two dimensions gets a Reshape kernel before and after it;
- ``MatMul`` then a ``Mul``/``Div`` by a scalar constant runs as one FusedMatMul kernel.

:func:`find` returns these groups by the row that heads them (the first in execution order).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx_ir as ir
from nncc.irutils import static_shape

from .mapping import KernelRow, MobileCpuMapping

SQRT2 = math.sqrt(2.0)


@dataclasses.dataclass
class Fusion:
    kind: str                     # the kernel's kind; "" where the members join a Gemm head's kernel
    members: list[KernelRow]      # rows the head's kernel runs besides its own, in order
    reshapes: bool = False        # a Gemm over a >2-D input: onnxruntime reshapes before and after it


def find(mapping: MobileCpuMapping) -> dict[str, Fusion]:
    """Fusions by the name of the row heading them."""
    rows = {id(row.layer.node): row for row in mapping.layers if row.layer is not None}
    fusions: dict[str, Fusion] = {}
    taken: set[str] = set()
    for row in mapping.layers:
        if row.layer is None or row.name in taken or row.fused_into is not None:
            continue
        for match in (_gelu, _skip_layer_norm, _matmul_add):
            fusion = match(row.layer.node, rows)
            if fusion is not None and not any(m.name in taken for m in fusion.members):
                fusions[row.name] = fusion
                taken.update(m.name for m in fusion.members)
                break
    return fusions


def absorbed(fusions: dict[str, Fusion]) -> set[str]:
    """Rows that run inside another row's kernel."""
    return {m.name for f in fusions.values() for m in f.members}


def scale_joins_matmul(head: ir.Node, member: ir.Node) -> bool:
    """A Mul/Div by a scalar constant right after a MatMul: one FusedMatMul kernel."""
    return head.op_type == "MatMul" and member.op_type in ("Mul", "Div") and _scalar_operand(member) is not None


def _gelu(node: ir.Node, rows: dict[int, KernelRow]) -> Fusion | None:
    if node.op_type not in ("Div", "Mul"):
        return None
    c = _scalar_operand(node)
    if c is None or node.inputs[0] is None or node.inputs[0].const_value is not None:
        return None
    if not math.isclose(c, SQRT2 if node.op_type == "Div" else 1 / SQRT2, rel_tol=1e-3):
        return None
    x = node.inputs[0]
    erf = _only_reader(node)
    add = _only_reader(erf) if erf is not None and erf.op_type == "Erf" else None
    if add is None or add.op_type != "Add" or not _close(_scalar_operand(add), 1.0):
        return None
    first = _only_reader(add)
    second = _only_reader(first) if first is not None and first.op_type == "Mul" else None
    if second is None or second.op_type != "Mul":
        return None
    # ((1 + erf) * x) * 0.5 or ((1 + erf) * 0.5) * x
    by_x, by_half = (first, second) if x in first.inputs else (second, first)
    if x not in by_x.inputs or not _close(_scalar_operand(by_half), 0.5):
        return None
    return _fusion("eltwise:Gelu", [erf, add, first, second], rows)


def _skip_layer_norm(node: ir.Node, rows: dict[int, KernelRow]) -> Fusion | None:
    if node.op_type != "Add" or len(node.inputs) != 2 or any(v is None or v.const_value is not None for v in node.inputs):
        return None
    shapes = [static_shape(v) for v in node.inputs]
    if shapes[0] is None or shapes[0] != shapes[1] or len(shapes[0]) != 3:
        return None
    norm = _only_reader(node)
    if norm is None or norm.op_type != "LayerNormalization" or norm.attributes.get_int("axis", -1) not in (-1, 2):
        return None
    return _fusion("eltwise:SkipLayerNormalization", [norm], rows)


def _matmul_add(node: ir.Node, rows: dict[int, KernelRow]) -> Fusion | None:
    if node.op_type != "MatMul" or node.inputs[1] is None or node.inputs[1].const_value is None:
        return None
    weight = node.inputs[1].const_value.shape
    add = _only_reader(node)
    if len(weight) != 2 or add is None or add.op_type != "Add":
        return None
    bias = next((v for v in add.inputs if v is not None and v.const_value is not None), None)
    if bias is None or math.prod(bias.const_value.shape) != weight[1] or bias.const_value.shape[-1] != weight[1]:
        return None
    shape = static_shape(node.inputs[0])
    reshapes = shape is not None and len(shape) > 2
    add_row, head_row = rows.get(id(add)), rows.get(id(node))
    if add_row is not None and head_row is not None and add_row.fused_into == head_row.name:
        return Fusion("", [], reshapes) if reshapes else None  # the mapping already runs the Add in the MatMul's kernel
    return _fusion("", [add], rows, reshapes)


def _fusion(kind: str, nodes: list[ir.Node], rows: dict[int, KernelRow], reshapes: bool = False) -> Fusion | None:
    members = [rows.get(id(n)) for n in nodes]
    if any(m is None or m.fused_into is not None for m in members):
        return None  # a node the mapping does not carry as a row of its own
    return Fusion(kind, members, reshapes)


def _only_reader(node: ir.Node | None) -> ir.Node | None:
    """The one node reading ``node``'s only output (None if it is a graph output or read twice)."""
    if node is None or len(node.outputs) != 1:
        return None
    out = node.outputs[0]
    uses = list(out.uses())
    if len(uses) != 1 or out.is_graph_output():
        return None
    return uses[0][0]


def _scalar_operand(node: ir.Node) -> float | None:
    """The value of a binary node's one-element constant operand (the second, or the first of a
    commutative Add/Mul), else None."""
    candidates = node.inputs[1:2] if node.op_type in ("Div", "Sub") else node.inputs[:2]
    for value in candidates:
        if value is not None and value.const_value is not None and math.prod(value.const_value.shape) == 1:
            return float(np.asarray(value.const_value.numpy()).reshape(-1)[0])
    return None


def _close(value: float | None, target: float) -> bool:
    return value is not None and math.isclose(value, target, rel_tol=1e-3)
