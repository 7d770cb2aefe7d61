"""Decompositions of onnxruntime's float contrib ops (transformer fusions, fused activations).

Each builder takes an :class:`~nncc.contrib_emit.Emit` for one node and returns the values that
replace its outputs, in order (None for an output it does not make, which must then be unread).
The forms these ops take in what onnxruntime's transformer optimizer writes are covered; the
rest (past key/value caches, causal or rotary attention, packed QKV, 3-D/4-D masks) are refused
with a reason.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nncc.contrib_emit import Emit, NeedShapes, Refuse, attention, gelu, layer_norm, slice_last
from nncc.irutils import const_array, static_shape


def _check_attention_form(e: Emit, past_inputs: tuple[int, ...]) -> None:
    e.require_absent(*past_inputs)
    for flag in ("unidirectional", "do_rotary", "past_present_share_buffer"):
        if e.int_attr(flag, 0):
            raise Refuse(f"{flag}=1 is not decomposed")
    e.outputs_unused(1, 2)  # present key/value


def key_mask(e: Emit, index: int, keys_from: ir.Value) -> ir.Value | None:
    """Which keys each row attends, boolean [B, L], from the mask input ``index``: the raw 2-D
    [batch, keys] mask (nonzero: attend), or the 1-D [batch] valid lengths (keys 0..len-1, what
    EmbedLayerNormalization's mask_index gives). Refuses the other layouts (start and end
    positions, 3-D/4-D masks). ``keys_from``: a [B, L, ...] tensor whose axis 1 is L."""
    mask = e.input(index)
    if mask is None:
        return None
    shape, batch = static_shape(mask), static_shape(keys_from)
    if shape is None or (len(shape) == 1 and batch is None):
        raise NeedShapes(f"the layout of mask '{mask.name}' needs its shape")
    if len(shape) == 2:
        return e.op("Greater", [mask, e.const("zero", np.array(0, dtype=mask.dtype.numpy()))])
    if len(shape) != 1 or shape[0] != batch[0]:
        raise Refuse(f"mask '{mask.name}' of shape {list(shape)}: only a raw 2-D [batch, keys] mask or 1-D lengths are decomposed")
    length = e.op("Gather", [e.op("Shape", [keys_from]), e.const("axis1", np.array(1, np.int64))])
    positions = e.op("Range", [e.const("start", np.array(0, np.int64)), length, e.const("step", np.array(1, np.int64))])
    lengths = e.op("Reshape", [e.op("Cast", [mask], {"to": ir.DataType.INT64}), e.ints("column", [-1, 1])])
    return e.op("Less", [e.op("Reshape", [positions, e.ints("row", [1, -1])]), lengths])


def qkv_attention(e: Emit, qkv: ir.Value, hidden: int, mask_input: int = 3) -> ir.Value:
    """Split a packed [B, S, q+k+v] projection (``qkv_hidden_sizes``, else three equal parts
    of ``hidden``) and attend; the mask is input ``mask_input`` (Attention's 3, QAttention's 5)."""
    sizes = list(e.node.attributes.get_ints("qkv_hidden_sizes", []) or [hidden // 3] * 3)
    heads = e.int_attr("num_heads", 0)
    if heads <= 0 or sizes[0] % heads:
        raise Refuse(f"num_heads={heads} does not divide the query size {sizes[0]}")
    mask = key_mask(e, mask_input, e.input(0))
    bounds = np.cumsum([0] + sizes)
    q, k, v = (slice_last(e, qkv, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]))
    return attention(e, q, k, v, heads, sizes[0] // heads, mask)


def _attention(e: Emit) -> list[ir.Value | None]:
    """Attention: input [B, S, Hin] x weights [Hin, q+k+v] + bias in one MatMul, then heads."""
    _check_attention_form(e, (4, 5, 6, 7))  # past, attention_bias, past_sequence_length, ...
    weights = static_shape(e.input(1))
    if weights is None or len(weights) != 2:
        raise Refuse("the weights' shape is not known")
    qkv = e.op("MatMul", [e.input(0), e.input(1)])
    if e.input(2) is not None:
        qkv = e.op("Add", [qkv, e.input(2)])
    return [qkv_attention(e, qkv, weights[1])]


def _multi_head_attention(e: Emit) -> list[ir.Value | None]:
    """MultiHeadAttention with separate, already projected query, key and value (+ bias)."""
    _check_attention_form(e, (4, 5, 6, 7, 8, 9))  # key_padding_mask, attention_bias, past key/value, ...
    query, key, value, bias = (e.input(i) for i in range(4))
    q_shape, k_shape = static_shape(query), static_shape(key)
    if key is None or value is None:
        raise Refuse("packed QKV or KV (no separate key and value) is not decomposed")
    if q_shape is None or k_shape is None:
        raise NeedShapes("the query's and key's shapes are not known yet")
    if len(k_shape) != 3 or len(q_shape) != 3:
        raise Refuse(f"query {list(q_shape)} and key {list(k_shape)}: only 3-D [batch, sequence, hidden] are decomposed")
    heads = e.int_attr("num_heads", 0)
    if heads <= 0 or q_shape[2] % heads:
        raise Refuse(f"num_heads={heads} does not divide the query size {q_shape[2]}")
    if bias is not None:
        d = q_shape[2]
        query, key, value = (e.op("Add", [x, slice_last(e, bias, a, b)])
                             for x, (a, b) in zip((query, key, value), ((0, d), (d, 2 * d), (2 * d, 2 * d + k_shape[2]))))
    return [attention(e, query, key, value, heads, q_shape[2] // heads, None)]


def _skip_layer_norm(e: Emit, simplified: bool = False) -> list[ir.Value | None]:
    """(Skip)(Simplified)LayerNormalization: s = input + skip (+ bias), then the norm of s;
    output 3 is s itself (the residual the next block reads)."""
    e.outputs_unused(1, 2)  # mean, inv_std_var: training outputs
    beta, bias = (None, e.input(3)) if simplified else (e.input(3), e.input(4))
    total = e.op("Add", [e.input(0), e.input(1)])
    if bias is not None:
        total = e.op("Add", [total, bias])
    return [layer_norm(e, total, e.input(2), beta, e.float_attr("epsilon", 1e-12), simplified), None, None, total]


def _layer_norm_op(e: Emit, simplified: bool) -> list[ir.Value | None]:
    """onnxruntime's default-domain norms: SimplifiedLayerNormalization (RMS norm) and
    LayerNormalization below opset 17 (ONNX defines it from 17). Inputs X, scale (, bias)."""
    axis, shape = e.int_attr("axis", -1), static_shape(e.input(0))
    if axis != -1 and shape is None:
        raise NeedShapes(f"axis={axis} needs the input's rank")
    if axis != -1 and axis != len(shape) - 1:
        raise Refuse(f"axis={axis}: only the last axis is decomposed")
    e.outputs_unused(1, 2)  # mean, inv_std_var: training outputs
    beta = None if simplified else e.input(2)
    return [layer_norm(e, e.input(0), e.input(1), beta, e.float_attr("epsilon", 1e-5), simplified)]


def _embed_layer_norm(e: Emit) -> list[ir.Value | None]:
    """EmbedLayerNormalization: LayerNorm(word[ids] + position[position_ids or 0..S-1] +
    segment[segment_ids]); mask_index = the mask's row sums (valid lengths), embedding_sum the
    sum before the norm. Inputs: input_ids, segment_ids, word_embedding, position_embedding,
    segment_embedding, gamma, beta, mask, position_ids."""
    ids, segments, words, positions, segment_table, gamma, beta, mask, position_ids = (e.input(i) for i in range(9))
    if mask is None:
        e.outputs_unused(1)  # onnxruntime fills it without a mask; nothing reads it in its fusions
    total = e.op("Gather", [words, ids])
    if position_ids is None:  # rows 0..S-1 of the table, S read from the ids at run time
        length = e.op("Slice", [e.op("Shape", [ids]), e.ints("one", [1]), e.ints("two", [2])])
        position = e.op("Slice", [positions, e.ints("zero", [0]), length, e.ints("axis0", [0])])
    else:
        position = e.op("Gather", [positions, position_ids])
    total = e.op("Add", [total, position])
    if segments is not None and segment_table is not None:
        total = e.op("Add", [total, e.op("Gather", [segment_table, segments])])
    lengths = None
    if mask is not None:
        if e.opset >= 13:  # ReduceSum's axes became an input at 13
            summed = e.op("ReduceSum", [mask, e.ints("axes", [1])], {"keepdims": 0})
        else:
            summed = e.op("ReduceSum", [mask], {"axes": [1], "keepdims": 0})
        lengths = e.op("Cast", [summed], {"to": ir.DataType.INT32})
        lengths.dtype = ir.DataType.INT32
    return [layer_norm(e, total, gamma, beta, e.float_attr("epsilon", 1e-12)), lengths, total]


def _with_bias(e: Emit) -> ir.Value:
    x = e.input(0)
    return e.op("Add", [x, e.input(1)]) if e.input(1) is not None else x


def _quick_gelu(e: Emit) -> list[ir.Value | None]:
    """QuickGelu: x sigmoid(alpha x), alpha 1.702 by default."""
    x = e.input(0)
    return [e.op("Mul", [x, e.op("Sigmoid", [e.op("Mul", [x, e.scalar("alpha", e.float_attr("alpha", 1.702))])])])]


def transposed_last(e: Emit, x: ir.Value) -> ir.Value:
    """x with its last two axes swapped: a new constant when x is one (a weight stays a weight
    the targets can read), else a Transpose of a tensor whose rank is known."""
    array = const_array(x)
    if array is not None:
        return e.const("transposed", np.ascontiguousarray(np.swapaxes(array, -1, -2)))
    shape = static_shape(x)
    if shape is None:
        raise NeedShapes(f"transposing '{x.name}' needs its rank")
    perm = list(range(len(shape)))
    perm[-2:] = perm[-1], perm[-2]
    return e.op("Transpose", [x], {"perm": perm})


def _fused_matmul(e: Emit) -> list[ir.Value | None]:
    """FusedMatMul: alpha op(A) op(B) with optional transposes of the last two axes."""
    if e.int_attr("transBatchA", 0) or e.int_attr("transBatchB", 0):
        raise Refuse("transBatchA/transBatchB are not decomposed")
    a, b = e.input(0), e.input(1)
    if e.int_attr("transA", 0):
        a = transposed_last(e, a)
    if e.int_attr("transB", 0):
        b = transposed_last(e, b)
    y = e.op("MatMul", [a, b])
    alpha = e.float_attr("alpha", 1.0)
    return [y if alpha == 1.0 else e.op("Mul", [y, e.scalar("alpha", alpha)])]


_CONV_ATTRIBUTES = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def _fused_conv(e: Emit) -> list[ir.Value | None]:
    """FusedConv: activation(Conv(X, W, B) + Z), the activation an attribute with its params."""
    name = e.node.attributes.get_string("activation", "")
    params = list(e.node.attributes.get_floats("activation_params", []) or [])
    attrs = {k: a.value for k, a in e.node.attributes.items() if k in _CONV_ATTRIBUTES}
    y = e.op("Conv", [e.input(0), e.input(1), e.input(2)], attrs)
    if e.input(3) is not None:
        y = e.op("Add", [y, e.input(3)])
    if name in ("", "Identity"):
        return [y]
    if name in ("Relu", "Tanh", "Sigmoid"):
        return [e.op(name, [y])]
    if name == "LeakyRelu":
        return [e.op("LeakyRelu", [y], {"alpha": params[0] if params else 0.01})]
    if name == "HardSigmoid":
        return [e.op("HardSigmoid", [y], {"alpha": params[0], "beta": params[1]} if len(params) == 2 else {})]
    if name == "Clip" and len(params) == 2:
        return [e.op("Clip", [y, e.scalar("min", params[0]), e.scalar("max", params[1])])]
    raise Refuse(f"activation '{name}' with params {params} is not decomposed")


BUILDERS = {
    ("com.microsoft", "Attention"): _attention,
    ("com.microsoft", "MultiHeadAttention"): _multi_head_attention,
    ("com.microsoft", "EmbedLayerNormalization"): _embed_layer_norm,
    ("com.microsoft", "SkipLayerNormalization"): _skip_layer_norm,
    ("com.microsoft", "SkipSimplifiedLayerNormalization"): lambda e: _skip_layer_norm(e, simplified=True),
    ("", "SimplifiedLayerNormalization"): lambda e: _layer_norm_op(e, simplified=True),
    ("", "LayerNormalization"): lambda e: _layer_norm_op(e, simplified=False),  # below opset 17 only
    ("com.microsoft", "Gelu"): lambda e: [gelu(e, e.input(0))],
    ("com.microsoft", "BiasGelu"): lambda e: [gelu(e, _with_bias(e))],
    ("com.microsoft", "FastGelu"): lambda e: [gelu(e, _with_bias(e), approximate=True)],
    ("com.microsoft", "QuickGelu"): _quick_gelu,
    ("com.microsoft", "FusedMatMul"): _fused_matmul,
    ("com.microsoft", "FusedConv"): _fused_conv,
}
