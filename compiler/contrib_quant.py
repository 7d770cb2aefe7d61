"""Decompositions of onnxruntime's quantized contrib ops, integer widths kept.

A dot product stays an integer one: ``MatMulInteger`` on the node's own uint8/int8 operands and
zero points (the int32 accumulator a target costs at 8 bits), then ``Cast`` and one ``Mul`` by
the product of the scales, as onnxruntime's kernels dequantize. Quantized element-wise ops
(QLinearAdd, QLinearSigmoid, ...) become DequantizeLinear -> the float op -> QuantizeLinear:
onnxruntime computes them the same way in float (or by a table built so), so a result may
differ from its kernel's by one quantization step where a product rounds the other way.
"""

from __future__ import annotations

import onnx_ir as ir

from nncc.contrib_emit import Emit, Refuse
from nncc.contrib_float import transposed_last, qkv_attention
from nncc.irutils import static_shape


def _dequantized_product(e: Emit, a: ir.Value, b: ir.Value, a_zero: ir.Value | None, b_zero: ir.Value | None,
                         scale: ir.Value, bias: ir.Value | None = None, int_bias: ir.Value | None = None) -> ir.Value:
    """(a - a_zero) @ (b - b_zero) in int32 (+ ``int_bias``, int32), times ``scale`` in float (+ ``bias``)."""
    acc = e.op("MatMulInteger", [a, b, a_zero, b_zero])
    if int_bias is not None:
        acc = e.op("Add", [acc, int_bias])
    y = e.op("Mul", [e.op("Cast", [acc], {"to": e.ftype}), scale])
    return e.op("Add", [y, bias]) if bias is not None else y


def _quantize(e: Emit, x: ir.Value, scale: ir.Value, zero: ir.Value | None) -> ir.Value:
    y = e.op("QuantizeLinear", [x, scale, zero])
    y.dtype = zero.dtype if zero is not None and zero.dtype is not None else ir.DataType.UINT8
    return y


def _dequantize(e: Emit, x: ir.Value, scale: ir.Value, zero: ir.Value | None) -> ir.Value:
    y = e.op("DequantizeLinear", [x, scale, zero])
    y.dtype = scale.dtype
    return y


def _qattention(e: Emit) -> list[ir.Value | None]:
    """QAttention: uint8 input x int8 weights [Hin, q+k+v] as MatMulInteger, dequantized by
    input_scale x weight_scale, + float bias, then attention in float as onnxruntime runs it.
    Inputs: input, weight, bias, input_scale, weight_scale, mask_index, input_zero_point,
    weight_zero_point, past."""
    e.require_absent(8)
    for flag in ("unidirectional", "do_rotary"):
        if e.int_attr(flag, 0):
            raise Refuse(f"{flag}=1 is not decomposed")
    e.outputs_unused(1)
    weights = static_shape(e.input(1))
    if weights is None or len(weights) != 2:
        raise Refuse("the weights' shape is not known")
    scale = e.mul(e.input(3), e.input(4))
    qkv = _dequantized_product(e, e.input(0), e.input(1), e.input(6), e.input(7), scale, e.input(2))
    return [qkv_attention(e, qkv, weights[1], mask_input=5)]


def _qgemm(e: Emit) -> list[ir.Value | None]:
    """QGemm: alpha a_scale b_scale ((A - a_zero)(B - b_zero) + C), C an int32 bias on the
    accumulator's scale; requantized with y_scale/y_zero_point when given, else float.
    Inputs: A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale, y_zero_point."""
    a, b = e.input(0), e.input(3)
    if e.int_attr("transA", 0):
        a = transposed_last(e, a)
    if e.int_attr("transB", 0):
        b = transposed_last(e, b)
    scale = e.mul(e.input(1), e.input(4))
    alpha = e.float_attr("alpha", 1.0)
    if alpha != 1.0:
        scale = e.mul(scale, e.scalar("alpha", alpha))
    y = _dequantized_product(e, a, b, e.input(2), e.input(5), scale, int_bias=e.input(6))
    return [_quantize(e, y, e.input(7), e.input(8)) if e.input(7) is not None else y]


def _dynamic_quantize_matmul(e: Emit) -> list[ir.Value | None]:
    """DynamicQuantizeMatMul: A quantized to uint8 at run time (DynamicQuantizeLinear, as the
    kernel does), MatMulInteger with the int8 B, scaled by a_scale x b_scale, + bias.
    Inputs: A, B, b_scale, b_zero_point, bias."""
    a_q, a_scale, a_zero = e.op("DynamicQuantizeLinear", [e.input(0)], outputs=3)
    scale = e.op("Mul", [a_scale, e.input(2)])
    return [_dequantized_product(e, a_q, e.input(1), a_zero, e.input(3), scale, e.input(4))]


def _matmul_integer_to_float(e: Emit) -> list[ir.Value | None]:
    """MatMulIntegerToFloat: inputs A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias."""
    scale = e.mul(e.input(2), e.input(3))
    return [_dequantized_product(e, e.input(0), e.input(1), e.input(4), e.input(5), scale, e.input(6))]


def _qlinear(op: str, operands: int, *, attributes: tuple[str, ...] = (), first: int = 0):
    """A builder for a QLinear element-wise op: ``operands`` (x, scale, zero point) triples from
    input ``first``, then (y_scale, y_zero_point) -- or, with ``first`` = 2 (QLinearConcat),
    (y_scale, y_zero_point) first and any number of triples after."""

    def build(e: Emit) -> list[ir.Value | None]:
        if e.int_attr("channels_last", 0):
            raise Refuse("channels_last=1 is not decomposed")
        inputs = list(e.node.inputs)
        count = (len(inputs) - first) // 3 if first else operands
        xs = [_dequantize(e, inputs[first + 3 * i], inputs[first + 3 * i + 1], e.input(first + 3 * i + 2))
              for i in range(count)]
        y_scale, y_zero = (e.input(0), e.input(1)) if first else (e.input(3 * count), e.input(3 * count + 1))
        attrs = {k: a.value for k, a in e.node.attributes.items() if k in attributes}
        return [_quantize(e, e.op(op, xs, attrs), y_scale, y_zero)]

    return build


def _quantize_op(op: str):
    """com.microsoft's QuantizeLinear / DequantizeLinear (what the QDQ quantizer writes with
    use_qdq_contrib_ops) as the ONNX op, where the ONNX op of the model's opset has the same
    meaning: 8-bit integers, per tensor (per axis from opset 13), no blocks."""

    def build(e: Emit) -> list[ir.Value | None]:
        zero = e.input(2)
        integer = zero.dtype if zero is not None else ir.DataType.UINT8
        if integer not in (ir.DataType.UINT8, ir.DataType.INT8):
            raise Refuse(f"{integer} is not an integer type of opset {e.opset}'s {op}")
        scale = static_shape(e.input(1))
        if e.int_attr("block_size", 0) or scale is None or (len(scale) > 0 and max(scale) > 1 and e.opset < 13):
            raise Refuse("blocked, per-axis before opset 13, or scale of unknown shape: not decomposed")
        axis = e.int_attr("axis", 1) if "axis" in e.node.attributes else None
        y = e.op(op, [e.input(0), e.input(1), zero], {"axis": axis} if e.opset >= 13 else {})
        y.dtype = integer if op == "QuantizeLinear" else e.input(1).dtype
        return [y]

    return build


BUILDERS = {
    ("com.microsoft", "QAttention"): _qattention,
    ("com.microsoft", "QGemm"): _qgemm,
    ("com.microsoft", "DynamicQuantizeMatMul"): _dynamic_quantize_matmul,
    ("com.microsoft", "MatMulIntegerToFloat"): _matmul_integer_to_float,
    ("com.microsoft", "QLinearAdd"): _qlinear("Add", 2),
    ("com.microsoft", "QLinearMul"): _qlinear("Mul", 2),
    ("com.microsoft", "QLinearSigmoid"): _qlinear("Sigmoid", 1),
    ("com.microsoft", "QLinearLeakyRelu"): _qlinear("LeakyRelu", 1, attributes=("alpha",)),
    ("com.microsoft", "QLinearGlobalAveragePool"): _qlinear("GlobalAveragePool", 1),
    ("com.microsoft", "QLinearAveragePool"): _qlinear(
        "AveragePool", 1, attributes=("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides")),
    ("com.microsoft", "QLinearConcat"): _qlinear("Concat", 0, attributes=("axis",), first=2),
    ("com.microsoft", "QuantizeLinear"): _quantize_op("QuantizeLinear"),
    ("com.microsoft", "DequantizeLinear"): _quantize_op("DequantizeLinear"),
}
