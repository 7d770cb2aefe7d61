"""Checks a loaded model must pass before anything costs it: each failure is one precise line.

onnx's checker and shape inference accept some models no runtime can run: a Conv whose weight
has a different number of input channels than the tensor it reads, a normalization whose
scale does not match the axis it scales, an input of strings. onnxruntime then fails deep in
a kernel, and a target would cost shapes that cannot exist. :func:`validate` refuses those
models right after loading, naming the node, the initializer and the numbers that disagree.

Rules are a table: op -> a function returning what is wrong with one node (or None). Only
static shapes are compared; a rule never guesses about a dynamic dimension.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import onnx_ir as ir

from nncc.errors import NnccError
from nncc.irutils import static_shape
from nncc.ops import RECURRENT_GATES
from nncc.safety import MAX_CREATED_TENSOR_BYTES
from nncc.weights import layer_name

# Element types no target computes on (as graph inputs or weights).
UNREPRESENTABLE = {ir.DataType.STRING: "strings"}


def _shapes(node: ir.Node) -> list[tuple[int, ...] | None]:
    return [static_shape(v) if v is not None else None for v in node.inputs]


def _name(value: ir.Value) -> str:
    return f"'{value.name}'" if value.name else "(unnamed)"


def _conv(node: ir.Node) -> str | None:
    problem = _conv_channels(node)
    w = static_shape(node.inputs[1])
    return problem if problem is not None or w is None else _bias_length(node, w[0])


def _conv_channels(node: ir.Node) -> str | None:
    """Conv and ConvInteger (whose third input is a zero point, not a bias)."""
    x, w = _shapes(node)[:2]
    if x is None or w is None or len(x) < 2 or len(w) < 2:
        return None
    group = node.attributes.get_int("group", 1)
    if x[1] != w[1] * group:
        return (f"input has {x[1]} channels but weight {_name(node.inputs[1])} {list(w)} expects {w[1] * group} "
                f"({w[1]} per group x group {group})")
    if group and w[0] % group:
        return f"weight {_name(node.inputs[1])} has {w[0]} filters, not a multiple of group {group}"
    return None


def _conv_transpose(node: ir.Node) -> str | None:
    x, w = _shapes(node)[:2]
    if x is None or w is None or len(x) < 2 or len(w) < 2:
        return None
    if x[1] != w[0]:
        return f"input has {x[1]} channels but weight {_name(node.inputs[1])} {list(w)} takes {w[0]}"
    return _bias_length(node, w[1] * node.attributes.get_int("group", 1))


def _bias_length(node: ir.Node, outputs: int) -> str | None:
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    shape = static_shape(bias) if bias is not None else None
    if shape is not None and shape != (outputs,):
        return f"bias {_name(bias)} has shape {list(shape)}, the layer has {outputs} output channels"
    return None


def _per_channel(first_param: int) -> Callable[[ir.Node], str | None]:
    """BatchNormalization / InstanceNormalization: every parameter holds one value per channel (axis 1)."""

    def check(node: ir.Node) -> str | None:
        shapes = _shapes(node)
        x = shapes[0]
        if x is None or len(x) < 2:
            return None
        for value, shape in zip(node.inputs[first_param:], shapes[first_param:]):
            if shape is not None and value is not None and shape != (x[1],):
                return f"{_name(value)} has shape {list(shape)}, the input has {x[1]} channels (axis 1)"
        return None

    return check


def _layer_norm(node: ir.Node) -> str | None:
    shapes = _shapes(node)
    x = shapes[0]
    if x is None:
        return None
    axis = node.attributes.get_int("axis", -1)
    normalized = x[axis % len(x):] if x else ()
    for value, shape in zip(node.inputs[1:3], shapes[1:3]):
        if value is None or shape is None:
            continue
        # The scale and bias broadcast against the normalized trailing axes.
        if len(shape) > len(normalized) or any(s not in (1, n) for s, n in zip(reversed(shape), reversed(normalized))):
            return f"{_name(value)} has shape {list(shape)}, the normalized axes of the input are {list(normalized)}"
    return None


def _recurrent(node: ir.Node) -> str | None:
    x, w = _shapes(node)[:2]
    if x is None or w is None or len(x) != 3 or len(w) != 3:
        return None
    features = x[2]  # [seq, batch, I], or [batch, seq, I] with layout=1: features last either way
    if w[2] != features:
        return f"input has {features} features but weight {_name(node.inputs[1])} {list(w)} takes {w[2]}"
    hidden = node.attributes.get_int("hidden_size", 0)
    gates = RECURRENT_GATES[node.op_type]
    if hidden and w[1] != gates * hidden:
        return f"weight {_name(node.inputs[1])} {list(w)} has {w[1]} rows, {node.op_type} with hidden_size {hidden} needs {gates * hidden}"
    return None


def _reduction(node: ir.Node, a: tuple[int, ...], k_a: int, b: tuple[int, ...], k_b: int) -> str | None:
    if k_a == k_b:
        return None
    return f"input {_name(node.inputs[0])} {list(a)} has {k_a} columns to reduce, {_name(node.inputs[1])} {list(b)} {k_b}"


def _gemm(node: ir.Node) -> str | None:
    """Gemm: A' [M, K] times B' [K, N] (A', B' transposed when transA/transB)."""
    a, b = _shapes(node)[:2]
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    return _reduction(node, a, a[0] if node.attributes.get_int("transA", 0) else a[1],
                      b, b[1] if node.attributes.get_int("transB", 0) else b[0])


def _matmul(node: ir.Node) -> str | None:
    """MatMul: [..., M, K] times [..., K, N] (1-D operands: the reduced axis is their only one)."""
    a, b = _shapes(node)[:2]
    if not a or not b:
        return None
    return _reduction(node, a, a[-1], b, b[0] if len(b) == 1 else b[-2])


RULES: dict[str, Callable[[ir.Node], str | None]] = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "Conv": _conv,
    "ConvInteger": _conv_channels,
    "ConvTranspose": _conv_transpose,
    "BatchNormalization": _per_channel(1),
    "InstanceNormalization": _per_channel(1),
    "LayerNormalization": _layer_norm,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "RNN": _recurrent,
}


def _value_kind(value: ir.Value) -> str | None:
    """What a target cannot compute on: a string tensor, a sequence, a map, an optional."""
    kind = value.type
    if kind is None:
        return None
    if not isinstance(kind, ir.TensorType):
        return type(kind).__name__.removesuffix("Type").lower()
    return UNREPRESENTABLE.get(kind.dtype)


def validate(model: ir.Model, where: object) -> None:
    """Raise an NnccError naming the first input, initializer or node that cannot be costed."""
    for value in model.graph.inputs:
        kind = _value_kind(value)
        if kind is not None:
            raise NnccError(where, f"input '{value.name}' holds {kind}: no target computes on it")
        shape = static_shape(value)
        if shape is not None and 0 in shape:
            raise NnccError(where, f"input '{value.name}' has an empty axis {shape.index(0)} (shape {list(shape)})")
        elements = math.prod(shape) if shape is not None else 0
        if elements * 8 > MAX_CREATED_TENSOR_BYTES:
            # Verification and calibration sample inputs of this shape as 64-bit numbers: numpy
            # would try to allocate them (a crafted dim of 10^12 asks for terabytes).
            raise NnccError(where, f"input '{value.name}' of shape {list(shape)} has {elements:,} elements: sample data for it "
                                   f"(8 bytes a value) would take {elements * 8:,} bytes, over the "
                                   f"{MAX_CREATED_TENSOR_BYTES:,}-byte cap on one tensor (NNCC_MAX_TENSOR_BYTES)")
    for graph in model.graphs():
        for name, value in graph.initializers.items():
            kind = _value_kind(value)
            if kind is not None:
                raise NnccError(where, f"initializer '{name}' holds {kind}: no target computes on it")
        for node in graph:
            rule = RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            problem = _axis_out_of_range(node) if node.domain in ("", "ai.onnx") else None
            if problem is None and rule is not None:
                problem = rule(node)
            if problem is None:
                problem = _oversized_output(node)
            if problem is not None:
                raise NnccError(where, f"node '{layer_name(node)}' ({node.op_type}): {problem}")


# Ops whose 'axis' attribute indexes the axes of their first input (Flatten's may also be the rank:
# everything into the first dimension). onnx's shape inference reads the attribute as a 32-bit
# int, so an axis of 2^40 or -2^63 passes it as 0, and onnxruntime, which reads 64 bits, fails.
AXIS_OPS = {"Flatten": 1, "Softmax": 0, "LogSoftmax": 0, "Hardmax": 0, "Concat": 0, "Gather": 0, "GatherElements": 0,
            "Split": 0, "ArgMax": 0, "ArgMin": 0, "LpNormalization": 0, "LayerNormalization": 0, "TopK": 0}


def _axis_out_of_range(node: ir.Node) -> str | None:
    attribute = node.attributes.get("axis")
    if node.op_type not in AXIS_OPS or attribute is None or not node.inputs or node.inputs[0] is None:
        return None
    x = static_shape(node.inputs[0])
    if x is None:
        return None
    axis, rank = attribute.as_int(), len(x)
    high = rank - 1 + AXIS_OPS[node.op_type]
    if not -rank <= axis <= high:
        return f"axis {axis} is outside [{-rank}, {high}] for its input of rank {rank}"
    return None


def _oversized_output(node: ir.Node) -> str | None:
    """An output no runtime could hold (a crafted pad or kernel of 2^40 makes a 10^12-element
    activation): onnxruntime fails to allocate it, and a target that walks it position by
    position would not finish."""
    for out in node.outputs:
        shape = static_shape(out) if out is not None else None
        if shape is None:
            continue
        itemsize = out.dtype.itemsize if out.dtype is not None and out.dtype != ir.DataType.UNDEFINED and out.dtype != ir.DataType.STRING else 4
        nbytes = math.ceil(math.prod(shape) * itemsize)
        if nbytes > MAX_CREATED_TENSOR_BYTES:
            return (f"output {_name(out)} of shape {list(shape)} takes {nbytes:,} bytes, over the "
                    f"{MAX_CREATED_TENSOR_BYTES:,}-byte cap on one tensor (NNCC_MAX_TENSOR_BYTES)")
    return None
