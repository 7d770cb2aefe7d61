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

from collections.abc import Callable

import onnx_ir as ir

from nncc.errors import NnccError
from nncc.irutils import static_shape
from nncc.ops import RECURRENT_GATES
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


RULES: dict[str, Callable[[ir.Node], str | None]] = {
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
    for graph in model.graphs():
        for name, value in graph.initializers.items():
            kind = _value_kind(value)
            if kind is not None:
                raise NnccError(where, f"initializer '{name}' holds {kind}: no target computes on it")
        for node in graph:
            rule = RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            problem = rule(node) if rule is not None else None
            if problem is not None:
                raise NnccError(where, f"node '{layer_name(node)}' ({node.op_type}): {problem}")
