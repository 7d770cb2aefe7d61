"""Quantize weights and activations, emitted as QDQ ONNX (QuantizeLinear/DequantizeLinear pairs).

Weights of Conv / Gemm / MatMul (and both weights of an LSTM / GRU / RNN: W, and R, which
multiplies the previous hidden state) are stored as int8 initializers followed by a
DequantizeLinear; float activations at the inputs and outputs of those ops get a
QuantizeLinear -> DequantizeLinear pair. The graph's inputs and outputs stay float, so the
same feed runs the original and the quantized model. onnxruntime fuses the 8-bit patterns
into integer kernels (QLinearConv, QGemm, QLinearMatMul, MatMulIntegerToFloat); what it
fused is measured from its optimized graph and recorded as ``onnxruntime_kernels``.

Scales: weights symmetric (``scale = max|w| / (2^(b-1) - 1)``, zero point 0) or asymmetric
(range [min(w, 0), max(w, 0)] over 2^b levels), per output channel or per tensor; every
weight is then within scale/2 of its dequantized value. 8-bit weights use 7 bits by default
(``reduce_range``, see :class:`QuantizeQDQ`). Activations: asymmetric uint8 over
the calibrated range (widened to contain 0, so zero padding stays exact), or symmetric int8.
Below 8 bits the integers are still stored in 8-bit containers, clipped to the b-bit range
(a Clip before the QuantizeLinear enforces it for activations); the stats record the true
width. onnxruntime has no integer kernels below 8 bits: those layers run as float on
dequantized values, which simulates the precision, not the speed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import onnx_ir as ir

from nncc.errors import NnccError
from nncc.irutils import add_initializer, const_array, drop_unused_initializers, unique_name
from nncc.ops import INTEGER_OPS, is_weighted
from nncc.pass_base import NnccPass
from nncc.pipeline import PassContext
from nncc.calibration import calibration_feeds, collect_ranges
from nncc.passes.fold import FoldBatchNorm
from nncc.passes.quant_scales import activation_params, dequantize, quantize_weight, stored_bits
from nncc.passes.ort_kernels import onnxruntime_kernels
from nncc.passes.weighted import skip_record
from nncc.weights import layer_name
from nncc.weights import Weight, bias_of, weight_of

# Weighted ops (nncc.ops) this pass leaves float, and why.
DECLINED = {
    "ConvTranspose": "ConvTranspose is not quantized (not implemented)",
    "Einsum": "Einsum is not quantized (no weight layout)",
    **dict.fromkeys(INTEGER_OPS, "already an integer op (a pre-quantized model)"),
}
# Outputs hold a subset of the input's values: they reuse its scale and zero point, so
# onnxruntime drops the DQ -> op -> Q around them and runs the op on the integers.
PASS_THROUGH = frozenset({"MaxPool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"})
# Activations between a quantized op and its output QuantizeLinear (fused as Conv+Relu+Q).
ABSORBED = frozenset({"Relu", "Clip"})
MIN_OPSET = 13  # per-axis QuantizeLinear / DequantizeLinear


@dataclasses.dataclass
class Target:
    """One quantizable node and its weight (None: only its activations are quantized)."""

    node: ir.Node
    name: str
    weight: Weight | None

    @property
    def weight_index(self) -> int | None:
        return self.weight.layout.index if self.weight is not None else None

    @property
    def axis(self) -> int:
        """The weight's output-channel axis: one scale per channel there."""
        return self.weight.layout.out_axis(len(self.weight.shape)) if self.weight is not None else 0

    @property
    def params(self) -> int:
        return math.prod(self.weight.shape) if self.weight is not None else 0


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    per_channel: bool = True
    symmetric: bool = True
    activations: bool = True
    activation_bits: int = 8
    symmetric_activations: bool = False
    calibrate: Literal["minmax", "percentile"] = "minmax"
    percentile: float = 99.99
    calib_samples: int = 256
    reduce_range: bool = True


def find_targets(graph: ir.Graph) -> tuple[list[Target], list[dict[str, Any]]]:
    """Weighted nodes not yet quantized (an input from a DequantizeLinear means done), and the
    ``skipped`` records of the weighted nodes (or weights) this pass leaves float."""
    targets, skipped = [], []
    for node in graph:
        if not is_weighted(node.op_type, node.domain):
            continue
        name = layer_name(node)
        reason = DECLINED.get(node.op_type) or _not_quantizable(node)
        if reason:
            skipped.append(skip_record(node, name, reason))
            continue
        weight = weight_of(node)  # None: both operands are activations (attention scores), quantized as such
        kept = _float_weight_kept(weight) if weight is not None else None
        if kept:
            weight = None
            if not any(v is not None and v.const_value is None for v in node.inputs[:2]):
                skipped.append(skip_record(node, name, f"{kept}, and no operand is an activation"))
                continue
            skipped.append(skip_record(node, name, f"{kept}: the weight stays float, only the activations are quantized"))
        targets.append(Target(node, name, weight))
    return targets, skipped


def _not_quantizable(node: ir.Node) -> str | None:
    """Why ``node`` is left alone whole (weight and activations), or None."""
    if any(v is not None and v.producer() is not None and v.producer().op_type == "DequantizeLinear" for v in node.inputs):
        return "already quantized (reads a DequantizeLinear)"
    if node.outputs[0].dtype not in (None, ir.DataType.FLOAT):
        return f"output dtype {node.outputs[0].dtype} is not float32"
    return None


def _float_weight_kept(weight: Weight) -> str | None:
    """Why ``weight`` stays float, or None when it is quantized (per output channel)."""
    if weight.layout.index == 0:
        return "constant first operand (W @ X): per-row weight scales are not implemented"
    if not weight.is_initializer or weight.value.dtype != ir.DataType.FLOAT:
        return "weight is not a float32 initializer"
    if weight.layout.kind == "in_first" and len(weight.shape) != 2:
        return f"{len(weight.shape)}-D MatMul weight: per-column scales of batched weights are not implemented"
    return None


# --- graph edits ------------------------------------------------------------------------

def _node(graph: ir.Graph, op: str, inputs: list[ir.Value], out_name: str, dtype: ir.DataType, shape, axis: int | None = None) -> ir.Node:
    attrs = [ir.AttrInt64("axis", axis)] if axis is not None else []
    out = ir.Value(name=unique_name(graph, out_name), type=ir.TensorType(dtype), shape=shape)
    return ir.Node("", op, inputs, attrs, outputs=[out], name=out.name)


def _insert_activation_qdq(graph: ir.Graph, value: ir.Value, scale, zp, levels, clip: bool) -> None:
    """value -> [Clip] -> QuantizeLinear -> DequantizeLinear; every reader now reads the DQ output."""
    uses = list(value.uses())
    s = add_initializer(graph, f"{value.name}_scale", np.asarray(scale, np.float32))
    z = add_initializer(graph, f"{value.name}_zero_point", np.asarray(zp))
    nodes, src = [], value
    if clip:  # fewer than 8 bits: saturate at the b-bit range, as b-bit hardware would
        bounds = [(float(q) - float(zp)) * float(scale) for q in levels]
        lo = add_initializer(graph, f"{value.name}_clip_min", np.asarray(bounds[0], np.float32))
        hi = add_initializer(graph, f"{value.name}_clip_max", np.asarray(bounds[1], np.float32))
        nodes.append(_node(graph, "Clip", [src, lo, hi], f"{value.name}_clipped", ir.DataType.FLOAT, value.shape))
        src = nodes[-1].outputs[0]
    nodes.append(_node(graph, "QuantizeLinear", [src, s, z], f"{value.name}_quantized", ir.DataType.from_numpy(np.asarray(zp).dtype), value.shape))
    nodes.append(_node(graph, "DequantizeLinear", [nodes[-1].outputs[0], s, z], f"{value.name}_dequantized", ir.DataType.FLOAT, value.shape))
    for node, index in uses:
        node.replace_input_with(index, nodes[-1].outputs[0])
    producer = value.producer()
    if producer is not None:
        graph.insert_after(producer, nodes)
    else:  # a graph input: quantize first thing
        graph.insert_before(next(iter(graph)), nodes)


def _quantize_weight_input(graph: ir.Graph, target: Target, bits: int, config: QuantConfig) -> dict[str, Any]:
    node, index = target.node, target.weight_index
    value = target.weight.value
    w = const_array(value)
    axis = target.axis if config.per_channel else None
    q, scale, zp = quantize_weight(w, stored_bits(bits, config.reduce_range), axis, config.symmetric)
    q_init = add_initializer(graph, f"{value.name}_quantized", q)
    s_init = add_initializer(graph, f"{value.name}_scale", scale)
    z_init = add_initializer(graph, f"{value.name}_zero_point", zp)
    dq = _node(graph, "DequantizeLinear", [q_init, s_init, z_init], f"{value.name}_dequantized", ir.DataType.FLOAT, value.shape, axis)
    graph.insert_before(node, dq)
    node.replace_input_with(index, dq.outputs[0])
    error = float(np.max(np.abs(dequantize(q, scale, zp, axis) - w))) if w.size else 0.0
    return {"bits": bits, "effective_bits": stored_bits(bits, config.reduce_range), "per_channel": axis is not None, "max_weight_error": error,
            "error_bound": float(np.max(scale)) / 2, "channels": int(scale.size), "_scale": scale}


def _quantize_recurrence(graph: ir.Graph, target: Target, bits: int, config: QuantConfig) -> dict[str, Any]:
    """A recurrent op's R quantized as its W is (the two weights multiply x_t and h_{t-1} every
    step), or why it stays float."""
    recurrence = target.weight.recurrence
    kept = _float_weight_kept(recurrence)
    if kept:
        return {"kept_float": kept}
    row = _quantize_weight_input(graph, Target(target.node, target.name, recurrence), bits, config)
    row.pop("_scale")
    return row


def _quantize_bias(graph: ir.Graph, node: ir.Node, x_scale: np.float32, w_scale: np.ndarray) -> bool:
    """Bias as int32 with scale x_scale * w_scale (the accumulator's scale), as the QDQ format wants."""
    value = bias_of(node)
    if value is None:
        return False
    if node.op_type == "Gemm" and (node.attributes.get_float("alpha", 1.0) != 1.0 or node.attributes.get_float("beta", 1.0) != 1.0):
        return False
    b = const_array(value)
    if b is None or b.ndim != 1 or b.dtype != np.float32 or (w_scale.size not in (1, b.size)):
        return False
    scale = (np.float32(x_scale) * np.broadcast_to(w_scale, b.shape)).astype(np.float32)
    q = np.round(b.astype(np.float64) / scale)
    if np.any(np.abs(q) > np.iinfo(np.int32).max):
        return False
    q_init = add_initializer(graph, f"{value.name}_quantized", q.astype(np.int32))
    s_init = add_initializer(graph, f"{value.name}_scale", scale)
    z_init = add_initializer(graph, f"{value.name}_zero_point", np.zeros(b.shape, np.int32))
    dq = _node(graph, "DequantizeLinear", [q_init, s_init, z_init], f"{value.name}_dequantized", ir.DataType.FLOAT, value.shape, 0)
    graph.insert_before(node, dq)
    node.replace_input_with(list(node.inputs).index(value), dq.outputs[0])
    return True


def _output_point(graph: ir.Graph, node: ir.Node) -> ir.Value | None:
    """Where the node's output is requantized: after a single-reader Relu/Clip chain."""
    value = node.outputs[0]
    while value not in graph.outputs:
        uses = list(value.uses())
        if len(uses) != 1 or uses[0][0].op_type not in ABSORBED or uses[0][0].domain != "" or uses[0][1] != 0:
            return value
        value = uses[0][0].outputs[0]
    return None  # graph outputs stay float and keep their names


def activation_points(graph: ir.Graph, targets: list[Target]) -> list[ir.Value]:
    points: dict[ir.Value, None] = {}
    for t in targets:
        bias = bias_of(t.node)
        for i, v in enumerate(t.node.inputs):
            if v is None or i == t.weight_index or v is bias:
                continue
            if v.const_value is None and v.dtype == ir.DataType.FLOAT:
                points[v] = None
        out = _output_point(graph, t.node)
        if out is not None and out.dtype == ir.DataType.FLOAT:
            points[out] = None
    return list(points)


def _pass_through_source(value: ir.Value, points: set[ir.Value]) -> ir.Value | None:
    """The quantized tensor ``value`` is a reshaped / max-pooled view of, if any."""
    while (producer := value.producer()) is not None and producer.op_type in PASS_THROUGH and producer.domain == "":
        value = producer.inputs[0]
        if value in points:
            return value
    return None


def quantize_targets(model: ir.Model, targets: list[Target], layer_bits: dict[str, int], config: QuantConfig) -> dict[str, Any]:
    """Quantize ``targets`` in place (weights at ``layer_bits[name]``); return the stats."""
    graph = model.graph
    stats: dict[str, Any] = {}
    params: dict[ir.Value, tuple] = {}
    if config.activations:
        points = activation_points(graph, targets)
        sources = {p: _pass_through_source(p, set(points)) for p in points}
        measured = [p for p in points if sources[p] is None]
        feeds, source = calibration_feeds(model, PassContext.current().calibration, config.calib_samples,
                                          purpose="quantize: activation ranges")
        ranges = collect_ranges(model, measured, feeds, config.calibrate, config.percentile)
        for p in measured:
            lo, hi = ranges.get(p.name, (0.0, 0.0))
            if not (np.isfinite(lo) and np.isfinite(hi)):  # NaN/Inf weights upstream: no scale exists
                raise NnccError("quantize", f"activation '{p.name}' ranges over [{lo}, {hi}] on the calibration data: "
                                            "not finite (NaN or infinite weights upstream?), so it has no 8-bit scale")
            params[p] = (*activation_params(lo, hi, config.activation_bits, config.symmetric_activations), config.activation_bits < 8)
        for p in points:
            if sources[p] is not None:
                params[p] = (*params[sources[p]][:3], False)  # already within the source's range
        stats["calibration"] = {"source": source, "samples": len(feeds), "method": config.calibrate,
                                **({"percentile": config.percentile} if config.calibrate == "percentile" else {})}
        stats["activation_bits"] = config.activation_bits
        stats["activation_dtype"] = "int8 symmetric" if config.symmetric_activations else "uint8 asymmetric"
        stats["activation_points"] = len(points)
        stats["activation_ranges"] = {p.name: [float(ranges[p.name][0]), float(ranges[p.name][1])] for p in measured if p.name in ranges}
    layers = []
    biases = 0
    for t in targets:
        row: dict[str, Any] = {"name": t.name, "op": t.node.op_type}
        if t.weight is not None:
            row.update(_quantize_weight_input(graph, t, layer_bits[t.name], config))
            x = t.node.inputs[0]
            w_scale = row.pop("_scale")
            if x in params and _quantize_bias(graph, t.node, params[x][0], w_scale):
                biases += 1
            if t.weight.recurrence is not None:  # an LSTM/GRU/RNN's R: the same bits, per gate row
                row["recurrence"] = _quantize_recurrence(graph, t, layer_bits[t.name], config)
        layers.append(row)
    for p, (scale, zp, levels, clip) in params.items():
        _insert_activation_qdq(graph, p, scale, zp, levels, clip)
    drop_unused_initializers(graph)
    stats["layers"] = layers
    stats["weight_bits"] = {row["name"]: row["bits"] for row in layers if "bits" in row}
    stats["biases_int32"] = biases
    # Bytes as stored (8-bit containers) and as packed at the nominal widths.
    stored = sum(v.const_value.nbytes for v in graph.initializers.values() if v.const_value is not None)
    quantized = {t.name: t.params for t in targets}
    for t, row in zip(targets, layers):
        if "bits" in row.get("recurrence", {}):
            quantized[t.name] += math.prod(t.weight.recurrence.shape)
    packed = stored - sum(count * (1 - stats["weight_bits"][name] / 8) for name, count in quantized.items() if name in stats["weight_bits"])
    stats.update(weight_bytes_stored=int(stored), weight_bytes_packed=int(round(packed)))
    return stats


def check_opset(model: ir.Model, where: str) -> None:
    version = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
    if version < MIN_OPSET:
        raise NnccError(where, f"model opset {version} is below {MIN_OPSET} (per-axis QuantizeLinear); "
                        "convert it first, e.g. onnx.version_converter.convert_version(model, 17)")


@dataclasses.dataclass
class QuantizeQDQ(NnccPass):
    """Quantize Conv/Gemm/MatMul/LSTM/GRU/RNN weights and activations to ``bits`` (2-8), as QDQ ONNX.

    Parameters: ``bits`` (weights, and activations unless ``activation_bits`` is set);
    ``per_channel`` / ``symmetric`` for weights; ``activations`` (False: weights only);
    ``symmetric_activations`` (int8 instead of uint8); ``calibrate`` minmax or percentile
    (``percentile``, two-sided); ``calib_samples`` (model runs used from the calibration
    data); ``fold_batchnorm`` (fold BatchNorm into Conv/Gemm first, which the integer
    kernels need).

    ``reduce_range`` (default on): 8-bit weights use 7 bits (+-63). onnxruntime's uint8 x
    int8 kernels on x86 CPUs without VNNI (AVX2, as on the build machine) add pairs of
    products in saturating 16-bit lanes (VPMADDUBSW): 2 * 255 * 127 overflows, 2 * 255 * 63
    does not. Measured there with full-range weights: LeNet-5 97.8% through the integer
    kernels against 98.1% for the same QDQ graph evaluated in float; a depthwise-separable
    MNIST net lost 2-3 points. Turn it off for VNNI CPUs or other backends.
    """

    name = "quantize"
    target_independent = True
    summary = "quantize weights and activations (2-8 bits) to QDQ ONNX that onnxruntime runs on integer kernels"

    bits: int = 8
    per_channel: bool = True
    symmetric: bool = True
    activations: bool = True
    activation_bits: int | None = None
    symmetric_activations: bool = False
    calibrate: Literal["minmax", "percentile"] = "minmax"
    percentile: float = 99.99
    calib_samples: int = 256
    fold_batchnorm: bool = True
    reduce_range: bool = True

    def config(self) -> QuantConfig:
        for label, b in (("bits", self.bits), ("activation_bits", self.activation_bits or self.bits)):
            if not 2 <= b <= 8:
                raise NnccError("quantize", f"{label}={b} is outside 2..8")
        if not 50.0 < self.percentile <= 100.0:
            raise NnccError("quantize", f"percentile={self.percentile} is outside (50, 100]")
        return QuantConfig(self.per_channel, self.symmetric, self.activations, self.activation_bits or self.bits,
                           self.symmetric_activations, self.calibrate, self.percentile, self.calib_samples, self.reduce_range)

    def apply(self, model: ir.Model) -> bool:
        config = self.config()
        folded = prepare(model, self.fold_batchnorm, self.stats, "quantize")
        targets, self.stats["skipped"] = find_targets(model.graph)
        self.stats["quantized_layers"] = len(targets)
        if not targets:
            return folded
        self.stats.update(quantize_targets(model, targets, {t.name: self.bits for t in targets}, config))
        self.stats["onnxruntime_kernels"] = onnxruntime_kernels(model)
        return True


def prepare(model: ir.Model, fold_batchnorm: bool, stats: dict[str, Any], where: str) -> bool:
    """Check the opset (before any change), then fold BatchNorm into the preceding Conv/Gemm
    so that the integer kernels see one op."""
    if find_targets(model.graph)[0]:
        check_opset(model, where)
    if not fold_batchnorm:
        return False
    fold = FoldBatchNorm()
    modified = fold(model).modified
    stats["batchnorm_folded"] = fold.stats.get("folded", 0)
    return modified
