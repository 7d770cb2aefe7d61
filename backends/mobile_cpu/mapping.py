"""Lowering for the mobile-cpu target: one kernel row per layer of the graph.

Each layer gets an op class (which efficiency applies), a compute dtype (fp32 or int8),
its work (MACs, or element-wise ops) and the bytes it moves. Two runtime facts are
modelled here because they change what runs as its own kernel:

- epilogue fusion (``fuse_epilogue``): BatchNorm, per-channel scale/bias and activations
  right after a Conv/Gemm run inside it (TFLite and onnxruntime both do this); the fused
  layer stays in the table with ``bound = "fused"`` and zero latency;
- quantization: a Conv/Gemm/MatMul fed by DequantizeLinear of int8/uint8 tensors (QDQ
  format), or a QLinearConv/ConvInteger/QLinearMatMul/MatMulInteger, computes in int8;
  its DequantizeLinear inputs and QuantizeLinear output fuse into it (onnxruntime's QDQ
  fusion, TFLite's quantized kernels).

Recurrent layers (LSTM, GRU, RNN): the gate GEMMs of every time step ([W R] by
[x_t; h_{t-1}], batch rows = the model's batch, k = I + H) plus the gate's element-wise work,
the steps one after another (``steps``: the row holds the totals; each step pays the
dispatch overhead). Weight traffic as onnxruntime's CPU kernels move it: W (and B) once, as
they multiply W by every x_t in one GEMM before the steps, R once per step.

com.microsoft's DynamicQuantizeLSTM (:data:`nncc.ops.CONTRIB_RECURRENT`) is the same LSTM
with int8 W and R: an int8 recurrent row (onnxruntime's CPU kernel quantizes x_t and h_{t-1}
and runs int8 GEMMs), weights at their stored width. DynamicQuantizeLinear is an element-wise
row that reads its input twice (the min/max reduction, then the quantization: scale, round,
add the zero point, saturate), ``OP_ELEMENT_OPS``.

fp16 tensors (an fp16 model): the Kryo 280 is ARMv8.0, without FP16 arithmetic (that came
with ARMv8.2), so kernels compute in fp32: every fp16 operand is widened and every fp16 result
narrowed (FCVTL/FCVTN, one SIMD op per 4 elements, like an fp32 element-wise op), added to the
row's simple ops (``fp16_converted``); bytes stay those of the stored fp16 tensors, weights
included (widened as they are loaded). The host profile is costed the same way.

Ops with no estimator (custom domains, control flow, anything without a class in
:mod:`nncc.ops`, or a layer whose shapes are unknown) go to ``unsupported`` — never a
silent zero.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import onnx_ir as ir

from nncc.analysis import Layer, outputs_known, recurrence
from nncc.backends.base import Mapping, partition_layers
from nncc.cost import Unsupported
from nncc.irutils import static_shape
from nncc.ops import (CONTRIB_RECURRENT, DATA_OPS, DEFAULT_DOMAINS, ELEMENTWISE_OPS, EPILOGUE_OPS, INTEGER_OPS, NO_OPS, POOL_OPS,
                      TRANSCENDENTAL_OPS, WEIGHTED_OPS, is_recurrent, op_class)

# SIMD ops per output element (simple arithmetic, transcendental evaluations) of each op
# class: one simple op, plus one series/table evaluation for a transcendental function ...
CLASS_ELEMENT_OPS: dict[str, tuple[float, float]] = {"elementwise": (1, 0), "transcendental": (1, 1)}
# ... and the ops whose kernels do a different amount of work per element.
OP_ELEMENT_OPS: dict[str, tuple[float, float]] = {
    "BatchNormalization": (2, 0), "InstanceNormalization": (4, 0), "LayerNormalization": (5, 0),  # scale + shift, statistics
    "Gelu": (4, 1), "Softmax": (3, 1), "LogSoftmax": (3, 1),
    "Sqrt": (1, 0), "Reciprocal": (1, 0), "Pow": (1, 0),  # [U] no series: NEON has vector FSQRT and FRECPE; Pow alike
    "LRN": (6, 1),  # x^2, 5-wide window sum, scale, pow (generic model; see config.op_cycles)
    # min and max (the reduction), then x / scale, round, + zero point, saturate [U]
    "DynamicQuantizeLinear": (6, 0),
}
COSTABLE = WEIGHTED_OPS | ELEMENTWISE_OPS | TRANSCENDENTAL_OPS | POOL_OPS | DATA_OPS | NO_OPS


def element_ops(op: str) -> tuple[float, float]:
    """(simple SIMD ops, transcendental evaluations) per output element of an element-wise op."""
    return OP_ELEMENT_OPS.get(op) or CLASS_ELEMENT_OPS[op_class(op)]


@dataclasses.dataclass
class KernelRow:
    name: str
    op: str
    op_class: str          # conv, pointwise, depthwise, grouped, gemm, elementwise, pool, data, noop, fused
    dtype: str             # fp32 or int8 (compute precision)
    macs: int
    ops: float             # simple element-wise SIMD ops (add, max, compare, ...)
    transcendental: float  # evaluations of exp/tanh/erf/... (each config.transcendental_ops SIMD ops)
    weight_bytes: int
    input_bytes: int       # activations read
    output_bytes: int      # activations written
    channel_macs: float = 0.0  # MACs per output channel (the work one weight filter does)
    elements: int = 0          # output elements of an element-wise op (for config.op_cycles)
    fused_into: str | None = None
    fused: list[str] = dataclasses.field(default_factory=list)
    steps: int = 1             # serial repeats of the kernel (a recurrent layer's time steps); the fields are totals
    fp16_converted: int = 0    # fp16 elements widened to / narrowed from fp32 (included in ops)
    layer: Layer | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class MobileCpuMapping(Mapping[KernelRow]):
    model_weight_bytes: int = 0


def value_bytes(value: ir.Value | None) -> int:
    if value is None:
        return 0
    if value.const_value is not None:
        return int(value.const_value.nbytes)
    shape = static_shape(value)
    return math.prod(shape) * value.dtype.itemsize if shape is not None and value.dtype is not None else 0


def _producer(value: ir.Value | None) -> ir.Node | None:
    return value.producer() if value is not None else None


def _is_int8(value: ir.Value | None) -> bool:
    return value is not None and value.dtype in (ir.DataType.INT8, ir.DataType.UINT8)


def _dq_source(value: ir.Value | None) -> ir.Value | None:
    """The int8 tensor behind ``value`` when a DequantizeLinear produces it."""
    node = _producer(value)
    if node is not None and node.op_type == "DequantizeLinear" and node.domain in DEFAULT_DOMAINS and _is_int8(node.inputs[0]):
        return node.inputs[0]
    return None


def fp16_elements(node: ir.Node) -> int:
    """Elements of the node's fp16 operands and results (each converted once, fp16 <-> fp32)."""
    total = 0
    for value in [*node.inputs, *node.outputs]:
        if value is None or value.dtype != ir.DataType.FLOAT16:
            continue
        shape = value.const_value.shape if value.const_value is not None else static_shape(value)
        total += math.prod(shape) if shape is not None else 0
    return total


def compute_dtype(node: ir.Node) -> str:
    """int8 for the integer ops, DynamicQuantizeLSTM, and QDQ Conv/Gemm/MatMul (both operands dequantized int8)."""
    if node.op_type in INTEGER_OPS or (node.domain, node.op_type) in CONTRIB_RECURRENT:
        return "int8"
    operands = [v for v in node.inputs[:2] if v is not None]
    if len(operands) == 2 and all(_dq_source(v) is not None or _is_int8(v) for v in operands):
        return "int8"
    return "fp32"


def conv_class(layer: Layer) -> str:
    """The efficiency class of a convolution, from its weight ([M, C/group, k...]) and input."""
    weight = layer.weight
    w = weight.shape if weight is not None else None
    if w is None or weight.layout.kind == "conv_transpose":
        return "conv"
    group, x = weight.layout.groups, layer.input_shapes[0]
    if group > 1 and x is not None and group == x[1] and w[1] == 1:
        return "depthwise"
    if group > 1:
        return "grouped"
    return "pointwise" if all(k == 1 for k in w[2:]) else "conv"


def _elementwise_ops(layer: Layer) -> tuple[float, float]:
    simple, trans = element_ops(layer.op)
    elems = layer.elementwise_ops
    return simple * elems, trans * elems


def _pool_ops(node: ir.Node) -> float:
    x, y = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    if node.op_type in ("MaxPool", "AveragePool", "LpPool") and y is not None:
        return math.prod(y) * math.prod(node.attributes.get_ints("kernel_shape", [1]))
    return math.prod(x) if x is not None else 0


def map_model(model: ir.Model, config: Any) -> MobileCpuMapping:
    supported, unsupported = partition_layers(model, COSTABLE, "no mobile-cpu estimator for this op")
    graph_outputs = set(model.graph.outputs)
    rows: list[KernelRow] = []
    head_of: dict[ir.Value, KernelRow] = {}   # values a fused chain may extend
    absorbed: dict[ir.Node, str] = {}          # DequantizeLinear nodes folded into an int8 consumer

    def single_use(value: ir.Value) -> bool:
        return len(value.uses()) == 1 and value not in graph_outputs

    for layer in supported:
        node = layer.node
        if node.op_type in WEIGHTED_OPS and compute_dtype(node) == "int8":
            for value in node.inputs:
                dq = _producer(value)
                if dq is not None and dq.op_type == "DequantizeLinear" and _is_int8(dq.inputs[0]):
                    absorbed.setdefault(dq, layer.name)
    for layer in supported:
        node = layer.node
        if node.op_type not in NO_OPS and not outputs_known(node):
            unsupported.append(Unsupported(layer.name, layer.op, "output shape unknown: cannot cost"))
            continue
        row = _row(layer, node, head_of, absorbed, config, single_use)
        if row is None:
            unsupported.append(Unsupported(layer.name, layer.op, "shapes unknown: cannot count MACs"))
            continue
        if row.op_class not in ("noop", "fused"):
            converted = fp16_elements(node)
            if converted:
                row.fp16_converted = converted
                row.ops += converted
        rows.append(row)
    weights = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    return MobileCpuMapping(layers=rows, unsupported=unsupported, model_weight_bytes=int(weights))


def _row(layer: Layer, node: ir.Node, head_of, absorbed, config, single_use) -> KernelRow | None:
    op = layer.op
    out = node.outputs[0] if node.outputs else None
    if op in NO_OPS:
        return KernelRow(layer.name, op, "noop", "fp32", 0, 0, 0, 0, 0, 0, layer=layer)
    if node in absorbed:
        return KernelRow(layer.name, op, "fused", "int8", 0, 0, 0, 0, 0, 0, fused_into=absorbed[node], layer=layer)
    if op == "DequantizeLinear" and node.inputs[0] is not None and node.inputs[0].const_value is not None:
        # Weight-only quantization: dequantized once at load time by every runtime.
        consumer = next((n.name for n, _ in out.uses()), None) if out is not None else None
        return KernelRow(layer.name, op, "fused", "fp32", 0, 0, 0, 0, 0, 0, fused_into=consumer, layer=layer)
    if is_recurrent(layer.op, layer.domain):
        return _recurrent_row(layer, node)
    if op in WEIGHTED_OPS:
        if layer.macs <= 0:
            return None
        row = _compute_row(layer, node)
        if out is not None and single_use(out):
            head_of[out] = row
        return row
    head = head_of.get(node.inputs[0]) if node.inputs else None
    if head is not None and _fusible(node, head, config):
        return _fuse(layer, node, head, node.inputs[0], head_of, single_use)
    if config.fuse_residual_add and op in ("Add", "Sum") and len(node.inputs) == 2:
        for index, value in enumerate(node.inputs):
            head = head_of.get(value)
            if head is not None and head.op_class != "gemm" and static_shape(node.inputs[1 - index]) == static_shape(out):
                row = _fuse(layer, node, head, value, head_of, single_use)
                head.input_bytes += value_bytes(node.inputs[1 - index])
                return row
    in_bytes = sum(value_bytes(v) for v in node.inputs if v is not None and v.const_value is None)
    w_bytes = sum(value_bytes(v) for v in node.inputs if v is not None and v.const_value is not None)
    if op in DATA_OPS:
        return KernelRow(layer.name, op, "data", "fp32", 0, 0, 0, w_bytes, in_bytes, layer.output_bytes, layer=layer)
    if op in POOL_OPS:
        return KernelRow(layer.name, op, "pool", "fp32", 0, _pool_ops(node), 0, w_bytes, in_bytes, layer.output_bytes, layer=layer)
    simple, trans = _elementwise_ops(layer)
    if op == "DynamicQuantizeLinear":
        in_bytes *= 2  # the min/max pass, then the quantization pass
    return KernelRow(layer.name, op, "elementwise", "fp32", 0, simple, trans, w_bytes, in_bytes, layer.output_bytes,
                     elements=layer.elementwise_ops, layer=layer)


def _compute_row(layer: Layer, node: ir.Node) -> KernelRow:
    dtype = compute_dtype(node)
    kernel_class = conv_class(layer) if "Conv" in node.op_type else "gemm"
    weight = activation = 0
    for value in node.inputs:
        if value is None:
            continue
        source = _dq_source(value) or value
        if source.const_value is not None:
            weight += value_bytes(source)
        else:
            activation += value_bytes(source)
    out = static_shape(node.outputs[0])
    channels = (out[1] if kernel_class != "gemm" else out[-1]) if out and len(out) > 1 else 1
    return KernelRow(layer.name, layer.op, kernel_class, dtype, layer.macs, 0, 0, weight, activation, layer.output_bytes,
                     channel_macs=layer.macs / max(channels, 1), layer=layer)


def _recurrent_row(layer: Layer, node: ir.Node) -> KernelRow | None:
    """A recurrent layer: ``steps`` gate GEMMs (m = gates*H per direction, n = batch, k = I + H)
    and their element-wise gate work, one step after another."""
    rec = recurrence(node)
    if rec is None or rec.macs <= 0:
        return None
    weight = activation = 0
    for index, value in enumerate(node.inputs):
        if value is None:
            continue
        source = _dq_source(value) or value
        if source.const_value is not None:
            weight += value_bytes(source) * (rec.steps if index == 2 else 1)  # R is re-read every step
        else:
            activation += value_bytes(source)
    simple, trans = rec.step_elementwise
    return KernelRow(layer.name, layer.op, "gemm", compute_dtype(node), rec.macs, simple * rec.steps, trans * rec.steps,
                     weight, activation, layer.output_bytes, channel_macs=rec.reduction * rec.batch,
                     steps=rec.steps, layer=layer)


def _fusible(node: ir.Node, head: KernelRow, config: Any) -> bool:
    op = node.op_type
    if op == "QuantizeLinear":
        return head.dtype == "int8"
    if not config.fuse_epilogue or op not in EPILOGUE_OPS:
        return False
    if op in ("Add", "Sub", "Mul", "Div"):
        # Only a per-channel constant (bias/scale), not a second activation.
        other = node.inputs[1]
        return other is not None and other.const_value is not None and other.const_value.size <= 65536
    return all(v is None or v is node.inputs[0] or v.const_value is not None for v in node.inputs)


def _fuse(layer: Layer, node: ir.Node, head: KernelRow, value: ir.Value, head_of, single_use) -> KernelRow:
    head_of.pop(value, None)
    out = node.outputs[0]
    head.output_bytes = value_bytes(out)
    head.fused.append(layer.name)
    if single_use(out):
        head_of[out] = head
    return KernelRow(layer.name, layer.op, "fused", head.dtype, 0, 0, 0, 0, 0, 0, fused_into=head.name, layer=layer)
