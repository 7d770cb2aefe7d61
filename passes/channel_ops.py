"""Per-op rules of the channel-coupling analysis in :mod:`nncc.passes.channel_groups`.

Each handler tells the analysis how a node couples the channels of its inputs and outputs
(union of group elements, edits to apply when pruning, or freezing with a reason) and returns
the input indices it understood; ``None`` means the op is not modelled.
"""

from __future__ import annotations

import math
from typing import Callable

import onnx_ir as ir

from nncc.irutils import const_array, static_shape
from nncc.passes.channel_space import ChannelSpaces, Edit
from nncc.weights import layer_name
from nncc.weights import bias_of, weight_of

# Element-wise ops of one tensor: channel c of the output depends on channel c only.
UNARY = frozenset("""Relu LeakyRelu Sigmoid Tanh Elu Selu Celu HardSigmoid HardSwish Softplus Softsign Gelu
    Mish Identity Dropout Neg Abs Sqrt Exp Log Reciprocal Floor Ceil Round Erf Sin Cos Sign ThresholdedRelu
    Cast Clip""".split())
# Broadcasting element-wise ops: operands with the channel dim are coupled; per-channel constants get sliced.
BROADCAST = frozenset("Add Sub Mul Div Max Min Sum Mean Pow PRelu".split())
POOLS = frozenset("MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool".split())
RESHAPES = frozenset("Reshape Flatten Squeeze Unsqueeze".split())
REDUCES = frozenset("ReduceMean ReduceMax ReduceMin ReduceSum ReduceL1 ReduceL2 ReduceLogSumExp".split())


def _all(node: ir.Node) -> set[int]:
    return set(range(len(node.inputs)))


def _has(node: ir.Node, index: int) -> bool:
    return len(node.inputs) > index and node.inputs[index] is not None


def _conv(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    weight, x, where = weight_of(node), node.inputs[0], f"Conv '{layer_name(node)}'"
    if weight is None or not weight.is_initializer or len(weight.shape) < 3 or (_has(node, 2) and const_array(node.inputs[2]) is None):
        return None
    layout, shape, x_shape = weight.layout, weight.shape, static_shape(x)
    filters, inputs = layout.out_axis(len(shape)), layout.in_axis(len(shape))  # the weight's channel axes
    bias = [Edit("bias", node, 2, 0)] if _has(node, 2) else []
    if layout.groups == 1:
        element, _ = a.obtain(x, 1, 1, where)
        a.edit(element, Edit("consumer", node, layout.index, inputs))
        out = a.new(weight.outputs)
        a.edit(out, Edit("filter", node, layout.index, filters), *bias)
    elif x_shape is not None and layout.groups == x_shape[1] == weight.outputs and shape[inputs] == 1:
        # Depthwise: output channel c reads input channel c only, so both are one space.
        out, _ = a.obtain(x, 1, 1, where)
        a.edit(out, Edit("dwfilter", node, layout.index, filters), *bias, Edit("group", node, layout.index, 0))
    else:
        return None  # grouped conv: channels are coupled in blocks; not modelled
    a.attach(node.outputs[0], out, 1, 1, where)
    return _all(node)


def _matmul_like(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    """Gemm and MatMul X @ W: the weight's outputs are a new channel space, its reduction axis
    slices the input's features (a W @ X product, weight first, is not modelled)."""
    weight, x, where = weight_of(node), node.inputs[0], f"{node.op_type} '{layer_name(node)}'"
    x_shape, out_shape = static_shape(x), static_shape(node.outputs[0])
    if weight is None or not weight.is_initializer or weight.layout.index != 1 or len(weight.shape) != 2:
        return None
    if x_shape is None or out_shape is None:
        return None
    bias_value = bias_of(node)  # Gemm's C
    bias = const_array(bias_value)
    if bias_value is not None and bias is None:
        return None
    k_axis_w, n_axis_w = weight.layout.in_axis(2), weight.layout.out_axis(2)
    k_axis_x = 0 if node.attributes.get_int("transA", 0) else len(x_shape) - 1  # transA: Gemm only
    element, block = a.obtain(x, k_axis_x, None, where)
    a.edit(element, Edit("consumer", node, weight.layout.index, k_axis_w, block))
    n = weight.shape[n_axis_w]
    out = a.new(n)
    a.edit(out, Edit("filter", node, weight.layout.index, n_axis_w))
    if bias is not None and bias.ndim >= 1 and bias.shape[-1] == n:
        a.edit(out, Edit("bias", node, 2, bias.ndim - 1))
    a.attach(node.outputs[0], out, len(out_shape) - 1, 1, where)
    return _all(node)


def _norm(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    params = node.inputs[1:]
    if any(const_array(v) is None or const_array(v).ndim != 1 for v in params):
        return None
    if any(o.uses() or o in a.graph.outputs for o in node.outputs[1:]):
        return None  # training-mode statistics outputs
    entry = a.follow(node, node.inputs[0], axis=1)
    if entry is not None:
        kinds = ["scale"] + ["param"] * (len(params) - 1)
        a.edit(entry[0], *(Edit(kind, node, i + 1, 0) for i, kind in enumerate(kinds)))
        a.attach(node.outputs[0], entry[0], 1, 1, f"{node.op_type} '{layer_name(node)}'")
    return _all(node)


def _unary(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    entry = a.follow(node, node.inputs[0])
    if entry is not None:
        for out in node.outputs:
            a.attach(out, entry[0], entry[1], entry[2], f"{node.op_type} '{layer_name(node)}'")
    return {0}


def _pool(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    if any(o.uses() or o in a.graph.outputs for o in node.outputs[1:]):
        return None  # MaxPool indices are flat offsets that include the channel
    entry = a.follow(node, node.inputs[0], axis=1)
    if entry is not None:
        a.attach(node.outputs[0], entry[0], 1, 1, f"{node.op_type} '{layer_name(node)}'")
    return _all(node)


def _broadcast(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    where, out = f"{node.op_type} '{layer_name(node)}'", node.outputs[0]
    out_shape = static_shape(out)
    rank = len(out_shape or ())
    operands = [(i, v, static_shape(v)) for i, v in enumerate(node.inputs) if v is not None]
    if not rank or any(shape is None for _, _, shape in operands):
        return None
    # Operands that carry the full channel dim (a tracked [N,1,H,W] map just broadcasts).
    tracked = [(v, shape) for _, v, shape in operands if v in a.info and v.const_value is None
               and shape[a.info[v][1]] == out_shape[a.info[v][1] + rank - len(shape)]]
    if not tracked:
        return _all(node)
    places = {(a.info[v][1] + rank - len(shape), a.info[v][2]) for v, shape in tracked}
    root = a.info[tracked[0][0]][0]
    if len(places) > 1:
        for v, _ in tracked:
            a.freeze(a.info[v][0], f"{where} broadcasts channels of its operands onto different axes")
        return _all(node)
    ((axis, block),) = places
    size = a.count[a.find(root)] * block
    for index, value, shape in operands:
        own_axis = axis - (rank - len(shape))
        if own_axis < 0 or shape[own_axis] == 1:
            continue  # broadcast along the channels: no channel structure to keep
        if shape[own_axis] != size:
            a.freeze(root, f"{where} operand {index} has {shape[own_axis]} entries on the channel axis, not {size}")
        elif value.const_value is not None:
            a.edit(root, Edit("param", node, index, own_axis, block))
        else:
            element, _ = a.obtain(value, own_axis, block, where)
            root = a.union(root, element, where)
    a.attach(out, root, axis, block, where)
    return _all(node)


def _reshape(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    x, y, where = node.inputs[0], node.outputs[0], f"{node.op_type} '{layer_name(node)}'"
    if x not in a.info:
        return _all(node)
    element, axis, block = a.info[x]
    d, e = static_shape(x), static_shape(y)
    if d is None or e is None:
        a.freeze(element, f"{where} has no static shapes")
        return _all(node)
    count = a.count[a.find(element)]
    # Channel c covers [c*stride, (c+1)*stride) of the flattened dims from `axis` on; it stays a
    # contiguous block of the output axis `out` when the leading dims match and the dims after
    # `out` tile that stride.
    stride, prefix = block * math.prod(d[axis + 1:]), math.prod(d[:axis])
    found = None
    for out in range(len(e)):
        inner = math.prod(e[out + 1:])
        if math.prod(e[:out]) == prefix and inner and stride % inner == 0 and e[out] == count * (stride // inner):
            found = (out, stride // inner)
            break
    if found is None:
        a.freeze(element, f"{where} splits or mixes channels with other axes")
        return _all(node)
    out, out_block = found
    if node.op_type == "Reshape":
        shape = const_array(node.inputs[1])
        allow_zero = node.attributes.get_int("allowzero", 0)
        if shape is None:
            a.freeze(element, f"{where} has a computed shape")
        elif shape[out] > 0:
            a.edit(element, Edit("reshape", node, 1, out, out_block))
        elif shape[out] == 0 and (allow_zero or out != axis or out_block != block):
            a.freeze(element, f"{where} copies a dimension that pruning changes")
        elif out != axis and not allow_zero and axis < len(shape) and shape[axis] == 0:
            a.freeze(element, f"{where} copies the channel dimension to another axis")
    a.attach(y, element, out, out_block, where)
    return _all(node)


def _concat(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    where, out = f"Concat '{layer_name(node)}'", node.outputs[0]
    rank = len(static_shape(out) or ())
    tracked = [v for v in node.inputs if v in a.info]
    if not rank or not tracked:
        return _all(node) if tracked == [] else None
    concat_axis = node.attributes.get_int("axis", 0) % rank
    places = {a.info[v][1:] for v in tracked}
    if len(places) > 1:
        for v in tracked:
            a.freeze(a.info[v][0], f"{where} joins operands whose channels lie differently")
        return _all(node)
    ((axis, block),) = places
    elements = [a.obtain(v, axis, block, where)[0] for v in node.inputs]
    if axis != concat_axis:  # stacking along another axis: every operand carries the same channels
        root = elements[0]
        for element in elements[1:]:
            root = a.union(root, element, where)
    else:
        root = a.new(sum(a.count[a.find(el)] for el in elements))
        a.concats[root].append((layer_name(node), list(node.inputs)))
    a.attach(out, root, axis, block, where)
    return _all(node)


def _reduce(a: ChannelSpaces, node: ir.Node) -> set[int] | None:
    """Reducing other axes (statistics pooling over time, a spatial mean) keeps channels apart."""
    entry, shape = a.follow(node, node.inputs[0]), static_shape(node.inputs[0])
    axes = node.attributes.get_ints("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_array(node.inputs[1])
    if entry is None or shape is None or axes is None or len(axes) == 0:
        return _all(node) if entry is None else None
    axes = {int(x) % len(shape) for x in axes}
    if entry[1] in axes:
        return None
    out_axis = entry[1] - (0 if node.attributes.get_int("keepdims", 1) else sum(1 for x in axes if x < entry[1]))
    a.attach(node.outputs[0], entry[0], out_axis, entry[2], f"{node.op_type} '{layer_name(node)}'")
    return _all(node)


HANDLERS: dict[str, Callable[[ChannelSpaces, ir.Node], set[int] | None]] = {
    "Conv": _conv, "Gemm": _matmul_like, "MatMul": _matmul_like,
    "BatchNormalization": _norm, "InstanceNormalization": _norm,
    "Concat": _concat,
    **{op: _unary for op in UNARY}, **{op: _broadcast for op in BROADCAST}, **{op: _pool for op in POOLS},
    **{op: _reshape for op in RESHAPES}, **{op: _reduce for op in REDUCES},
}  # fmt: skip

