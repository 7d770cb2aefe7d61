"""The layer view: per-layer workload facts every pass and target starts from.

One :class:`Layer` per compute node of the (shape-inferred) graph: op, shapes, MACs,
parameters, bytes, and for weighted ops the weight with its layout (:mod:`nncc.weights`).
MACs count the multiply-accumulates of the dense operation as the ONNX node defines it;
element-wise work is counted separately in ``elementwise_ops``. Which class an op belongs
to is :mod:`nncc.ops`' table.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.irutils import static_shape
from nncc.ops import NO_OPS
from nncc.weights import Weight, bias_of, layer_name, weight_of

@dataclasses.dataclass
class Layer:
    name: str
    op: str
    domain: str
    input_shapes: list[tuple[int, ...] | None]
    output_shapes: list[tuple[int, ...] | None]
    macs: int
    params: int            # elements of constant (initializer) inputs
    weight_bytes: int
    input_bytes: int       # non-constant inputs, bytes
    output_bytes: int
    elementwise_ops: int   # output elements for non-MAC ops (one op each)
    attributes: dict[str, Any]
    node: ir.Node = dataclasses.field(repr=False, compare=False)
    weight: Weight | None = dataclasses.field(default=None, repr=False, compare=False)  # constant weight and its layout
    bias: ir.Value | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def is_weighted(self) -> bool:
        """A dot-product op with a constant weight operand (see :mod:`nncc.weights`)."""
        return self.weight is not None




def _nbytes(value: ir.Value | None) -> int:
    shape = static_shape(value)
    if shape is None or value.dtype is None:
        return 0
    return math.prod(shape) * value.dtype.itemsize


def _attrs(node: ir.Node) -> dict[str, Any]:
    out = {}
    for name, attr in node.attributes.items():
        value = attr.value
        if isinstance(value, (int, float, str)):
            out[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value):
            out[name] = list(value)
    return out


def node_macs(node: ir.Node) -> int:
    """Multiply-accumulates of one node; 0 for ops without a dot-product core."""
    op = node.op_type
    out = static_shape(node.outputs[0]) if node.outputs else None
    if op == "Conv" and out is not None:
        w = static_shape(node.inputs[1])
        if w is None:
            return 0
        return math.prod(out) * math.prod(w[1:])  # w: [M, C/group, k...]
    if op == "ConvTranspose":
        x, w = static_shape(node.inputs[0]), static_shape(node.inputs[1])
        if x is None or w is None:
            return 0
        return math.prod(x) * math.prod(w[1:])  # w: [C, M/group, k...]
    if op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul") and out is not None:
        a = static_shape(node.inputs[0])
        if a is None:
            return 0
        k = a[0] if (op == "Gemm" and node.attributes.get_int("transA", 0)) else a[-1]
        return math.prod(out) * k
    if op in ("QLinearConv", "ConvInteger") and out is not None:
        w = static_shape(node.inputs[3 if op == "QLinearConv" else 1])
        return math.prod(out) * math.prod(w[1:]) if w else 0
    if op == "Einsum" and out is not None:
        return _einsum_macs(node)
    return 0


def _einsum_macs(node: ir.Node) -> int:
    equation = node.attributes.get_string("equation", "").replace(" ", "")
    lhs, _, _ = equation.partition("->")
    sizes: dict[str, int] = {}
    for term, value in zip(lhs.split(","), node.inputs):
        shape = static_shape(value)
        if shape is None or "..." in term or len(term) != len(shape):
            return 0
        sizes.update(zip(term, shape))
    return math.prod(sizes.values())


def layers(model: ir.Model) -> list[Layer]:
    """The layer table of ``model``'s main graph, in topological order."""
    rows: list[Layer] = []
    taken: set[str] = set()
    for index, node in enumerate(model.graph):
        name = layer_name(node)
        if name in taken:  # ONNX does not require unique node names; a row's name must be unique
            name = f"{name}#{index}"
        taken.add(name)
        consts = [v for v in node.inputs if v is not None and v.const_value is not None]
        activations = [v for v in node.inputs if v is not None and v.const_value is None]
        macs = node_macs(node)
        out_elems = sum(math.prod(s) for s in (static_shape(o) for o in node.outputs) if s is not None)
        rows.append(
            Layer(
                name=name,
                op=node.op_type,
                domain=node.domain,
                input_shapes=[static_shape(v) for v in node.inputs],
                output_shapes=[static_shape(v) for v in node.outputs],
                macs=macs,
                params=sum(v.const_value.size for v in consts),
                weight_bytes=sum(v.const_value.nbytes for v in consts),
                input_bytes=sum(_nbytes(v) for v in activations),
                output_bytes=sum(_nbytes(v) for v in node.outputs),
                elementwise_ops=0 if macs or node.op_type in NO_OPS else out_elems,
                attributes=_attrs(node),
                node=node,
                weight=weight_of(node),
                bias=bias_of(node),
            )
        )
    return rows


def model_summary(model: ir.Model) -> dict[str, Any]:
    """Totals for the report's ``model`` section."""
    rows = layers(model)
    params = sum(v.const_value.size for v in model.graph.initializers.values() if v.const_value is not None)
    weight_bytes = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    return {
        "params": int(params),
        "weight_bytes": int(weight_bytes),
        "macs": int(sum(r.macs for r in rows)),
        "nodes": len(rows),
        "ops": dict(sorted(_count(r.op for r in rows).items())),
        "inputs": [{"name": v.name, "shape": list(static_shape(v) or []), "dtype": str(v.dtype)} for v in model.graph.inputs],
        "outputs": [{"name": v.name, "shape": list(static_shape(v) or []), "dtype": str(v.dtype)} for v in model.graph.outputs],
    }


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def input_specs(model: ir.Model) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """(name, static shape, numpy dtype) of every graph input."""
    return [(v.name, static_shape(v) or (), v.dtype.numpy()) for v in model.graph.inputs]
