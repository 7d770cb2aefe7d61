"""Lowering for the ucnn target: per filter, the unique weights and the factorized dot product.

UCNN rewrites a filter's dot product by grouping the activations that meet the same weight:

    sum_i w_i a_i  =  sum_{u in U} u * (sum_{i: w_i = u} a_i)         (zero weights skipped)

so a filter of K weights with Z zeros and U distinct non-zero values costs U multiplies and
(K - Z - U) + (U - 1) = K - Z - 1 adds per output, and reads K - Z indirection-table entries
(each the jump to the next activation of its weight group; a plain address would take
ceil(log2 K) bits, see ``filter_stats``) plus U unique weights instead of K weights. With activation group
reuse (``group`` = G filters, paper Sec. on G > 1 [U]) the entries of G filters are sorted by
their weight tuples: one entry per input where any of the G weights is non-zero, the sums of
activations are formed once per distinct tuple prefix and shared by the G filters, and filter
g multiplies once per distinct prefix (w_1..w_g) with w_g != 0:

    entries E, distinct prefixes D_g (g = 1..G), multiplies M_g
    adds = (E - D_1)  [activation sums, merged level by level up the prefix tree]
           + sum_g max(M_g - 1, 0)  [accumulating each filter's products]

The weights are counted as the hardware stores them: float weights are quantized per layer
to ``weight_bits`` (symmetric, scale = max|w| / (2^(b-1)-1)) *inside the model only*, so
16-bit and 8-bit schemes are measured without touching the graph; weights already shared to
U values (``weight-share``) keep at most U values (rounding only merges values).

Recurrent layers (LSTM, GRU, RNN) are filters too: each gate row of [W R] (one per gate output
and direction, I + H weights) slides over [x_t; h_{t-1}] at every time step and batch row
(positions = steps x batch); the gate's element-wise work (``vector_ops``) runs on the adders
as for the element-wise layers, the same in both designs. com.microsoft's DynamicQuantizeLSTM is
such an LSTM whose int8 W [dirs, I, 4H] and R [dirs, H, 4H] are read transposed into gate rows.

Integer ops of pre-quantized models (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul,
DynamicQuantizeLSTM): the stored integers minus the weight zero point *are* the codes whose
repetition UCNN counts (no re-quantization), at their own width (``Weight.integer_bits``); the
activations are the op's integers too (act bits = their width). A float16 layer (weight or
activation of dtype float16) counts 16-bit weights and activations whatever the config says.
ConvTranspose's filters are its per-output-channel [C/g x kh x kw] filters (``filter_view``),
each applied at every input pixel (positions = batch x H_in x W_in; the scattered partial
sums are the accumulations UCNN already counts).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.analysis import Layer, layers, outputs_known, stored_widths
from nncc.backends.base import Mapping
from nncc.calibration import Calibration, calibration_feeds, run_exposing
from nncc.cost import Unsupported
from nncc.errors import NnccError
from nncc.irutils import constant_value, static_shape
from nncc.ops import CONTRIB_RECURRENT, DEFAULT_DOMAINS, INTEGER_OPS, NO_OPS, RECURRENT_OPS, WEIGHTED_OPS

from .weight_stats import WeightStats, filter_stats, quantize_codes, rlc_bits

# The weighted ops whose filters UCNN factorizes (its indirection tables walk one filter's
# weights against a window of activations).
FACTORIZED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"}) | RECURRENT_OPS | INTEGER_OPS
NOT_FACTORIZED = ("a dot-product op other than Conv/ConvTranspose/Gemm/MatMul/LSTM/GRU/RNN and their integer forms: "
                  "UCNN's indirection tables are defined for filters of those ops only")
# The weight zero point's input slot of each integer op.
WEIGHT_ZERO_POINT = {"ConvInteger": 3, "MatMulInteger": 3, "QLinearConv": 5, "QLinearMatMul": 5}


@dataclasses.dataclass
class UcnnLayer:
    name: str
    op: str
    kind: str                  # factorized | dense (weights are activations) | vector | noop
    macs: int
    positions: int = 0         # outputs per filter (batch x output pixels, or GEMM rows)
    stats: WeightStats | None = None
    dense_weight_bits: int = 0
    rlc_weight_bits: int = 0   # baseline's run-length-coded weights
    input_elems: int = 0
    output_elems: int = 0
    vector_ops: int = 0        # element-wise ops (a factorized recurrent layer: its gate work)
    weight_bits: int = 0       # the layer's own weight / activation widths (integer and float16 layers); 0: the config's
    act_bits: int = 0
    act_density: float | None = None  # measured on calibration data; None: config.activation_density
    note: str = ""
    layer: Layer | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class UcnnMapping(Mapping[UcnnLayer]):
    artifact_name = "ucnn_tables.json"
    weight_bits: int = 16
    group: int = 1
    density_source: str = ""

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.update({"weight_bits": self.weight_bits, "group": self.group, "activation_density_source": self.density_source,
                    "formula": "per output: multiplies = sum_g M_g (G=1: U non-zero unique), adds = (E - D_1) + "
                               "sum_g (M_g - 1), entries E read from the indirection table"})
        return out


# ------------------------------------------------------------------ the layers

def _weight_matrix(layer: Layer) -> np.ndarray | None:
    """The constant weight as [filters, K], or None when the op multiplies two activations."""
    if layer.weight is None:
        return None
    w = layer.weight.array()
    if w.dtype.kind not in "fiu":
        return None
    if layer.weight.recurrence is not None:  # gate rows of [W R]
        return layer.weight.filter_matrix()
    return layer.weight.layout.filter_view(w)


def _zero_point(node: ir.Node, slot: int) -> np.ndarray | None:
    value = node.inputs[slot] if slot < len(node.inputs) else None
    zp = constant_value(value) if value is not None else None
    return None if zp is None or np.size(zp) == 0 else np.asarray(zp, dtype=np.int64)


def _integer_codes(layer: Layer) -> np.ndarray | None:
    """[filters, K] integer codes minus the weight zero point of an integer op (DynamicQuantizeLSTM:
    gate rows of [W R]), or None for a float layer."""
    node = layer.node
    if (layer.domain, layer.op) in CONTRIB_RECURRENT:
        w, r = (constant_value(v) if v is not None else None for v in node.inputs[1:3])
        if w is None or r is None:
            return None
        parts = []
        for array, slot in ((w, 9), (r, 11)):
            array = np.asarray(array, dtype=np.int64)
            zp = _zero_point(node, slot)
            if zp is not None:
                array = array - zp.reshape(-1, 1, 1)
            parts.append(np.swapaxes(array, 1, 2))  # [dirs, 4H, K]
        return np.concatenate(parts, axis=2).reshape(-1, parts[0].shape[2] + parts[1].shape[2])
    if layer.op not in WEIGHT_ZERO_POINT or layer.weight is None or layer.weight.integer_bits is None:
        return None
    w = np.asarray(layer.weight.array(), dtype=np.int64)
    zp = _zero_point(node, WEIGHT_ZERO_POINT[layer.op])
    if zp is not None:
        if zp.ndim == 1 and zp.size > 1 and layer.weight.layout.kind == "out_first":  # per output channel
            zp = zp.reshape((-1,) + (1,) * (w.ndim - 1))
        w = w - zp
    return layer.weight.layout.filter_view(w)


def layer_widths(layer: Layer, config: Any) -> tuple[int, int]:
    """(weight bits, activation bits) of a factorized layer: the widths the model stores (integer
    and float16 layers, :func:`nncc.analysis.stored_widths`), else the config's."""
    weight_bits, act_bits = stored_widths(layer)
    return weight_bits or config.weight_bits, act_bits or config.act_bits


def activation_input(layer: Layer) -> ir.Value:
    """The operand the filters slide over: the first input, or the one beside a leading weight (W @ X)."""
    return layer.node.inputs[layer.weight.layout.activation_index if layer.weight is not None else 0]


def _elems(shapes) -> int:
    return int(sum(math.prod(s) for s in shapes if s is not None))


def map_layer(layer: Layer, config: Any) -> UcnnLayer | Unsupported:
    c = config
    outs = _elems(layer.output_shapes)
    contrib = (layer.domain, layer.op) in CONTRIB_RECURRENT
    if layer.domain not in DEFAULT_DOMAINS and not contrib:
        return Unsupported(layer.name, f"{layer.domain}::{layer.op}", "custom-domain op: no UCNN estimator")
    if layer.op in WEIGHTED_OPS and layer.op not in FACTORIZED_OPS:
        return Unsupported(layer.name, layer.op, NOT_FACTORIZED)
    if contrib:
        codes = _integer_codes(layer)
        if codes is None or layer.macs <= 0:
            return Unsupported(layer.name, f"{layer.domain}::{layer.op}", "weights not constant or shapes unknown")
        return _factorized(layer, codes, config, outs, _elems([static_shape(layer.node.inputs[0])]), recurrent=True)
    if layer.op in FACTORIZED_OPS:
        if not outputs_known(layer.node) or layer.macs <= 0:
            return Unsupported(layer.name, layer.op, "output shape unknown: cannot count the output positions")
        matrix = _weight_matrix(layer)
        if matrix is None:
            acts = _elems(s for s, v in zip(layer.input_shapes, layer.node.inputs) if v is not None and v.const_value is None)
            return UcnnLayer(layer.name, layer.op, "dense", layer.macs, input_elems=acts, output_elems=outs, layer=layer,
                             note="both operands are activations: no weight tables to build, run as plain MACs in both designs")
        codes = _integer_codes(layer)
        if codes is None:
            wb, _ = layer_widths(layer, c)
            codes = quantize_codes(matrix, wb)
        ins = _elems([static_shape(activation_input(layer))])
        return _factorized(layer, codes, c, outs, ins, recurrent=layer.op in RECURRENT_OPS)
    if layer.op in NO_OPS:
        return UcnnLayer(layer.name, layer.op, "noop", 0, note="no data movement or arithmetic at inference time", layer=layer)
    if all(v is None or v.const_value is not None for v in layer.node.inputs):
        return UcnnLayer(layer.name, layer.op, "noop", 0, note="all inputs constant: folded before inference", layer=layer)
    if any(s is None for s in layer.output_shapes) or any(
            s is None for s, v in zip(layer.input_shapes, layer.node.inputs) if v is not None and v.const_value is None):
        return Unsupported(layer.name, layer.op, "shape unknown: cannot count the element-wise work")
    acts = _elems(s for s, v in zip(layer.input_shapes, layer.node.inputs) if v is not None and v.const_value is None)
    # Pooling, activation functions, BatchNorm, Add...: one simple op per element on the
    # PE array's adders, operands through the global buffer; the same in both designs.
    return UcnnLayer(layer.name, layer.op, "vector", 0, input_elems=acts, output_elems=outs, vector_ops=max(acts, outs),
                     note="element-wise / window op: one add-equivalent per element, identical in both designs", layer=layer)


def _factorized(layer: Layer, codes: np.ndarray, c: Any, outs: int, ins: int, recurrent: bool) -> UcnnLayer:
    wb, ab = layer_widths(layer, c)
    stats = filter_stats(codes, c.group, wb, c.index_bits, c.multipliers_per_pe)
    positions = layer.macs // (stats.filters * stats.k) if stats.filters * stats.k else 0
    dense = codes.size * wb
    row = UcnnLayer(layer.name, layer.op, "factorized", layer.macs, positions, stats, dense,
                    min(dense, rlc_bits(codes, wb, c.rlc_run_bits)), ins, outs, layer=layer,
                    vector_ops=layer.elementwise_ops if recurrent else 0)
    if (wb, ab) != (c.weight_bits, c.act_bits):
        row.weight_bits, row.act_bits = wb, ab
    return row


def measure_densities(model: ir.Model, rows: list[UcnnLayer], samples: int,
                      calibration: Calibration | None) -> tuple[dict[str, float], str]:
    """Fraction of non-zero input activations per factorized/dense layer, measured with
    onnxruntime on the user's calibration data (``--calib`` / ``--eval``); without such data
    the config's constant is used (random inputs say nothing about real sparsity)."""
    if not calibration:
        return {}, "config.activation_density (no --calib/--eval data)"
    rows = [r for r in rows if r.kind in ("factorized", "dense") and r.layer is not None]
    if not rows:
        return {}, "no factorized layers"
    feeds, source = calibration_feeds(model, calibration, samples)
    graph_inputs = {v.name for v in model.graph.inputs}
    inputs = {r.name: activation_input(r.layer) for r in rows}
    values = [value for value in inputs.values() if value.name not in graph_inputs]
    nonzero = dict.fromkeys((r.name for r in rows), 0)
    total = dict.fromkeys((r.name for r in rows), 0)
    try:
        for feed, out in zip(feeds, run_exposing(model, values, feeds)):
            for r in rows:
                name = inputs[r.name].name
                x = np.asarray(feed.get(name, out.get(name)))
                nonzero[r.name] += int(np.count_nonzero(x))
                total[r.name] += x.size
    except NnccError as e:
        return {}, f"calibration run failed ({e.what}); config.activation_density"
    return {name: nonzero[name] / total[name] for name in total if total[name]}, f"measured on {source}"


def map_model(model: ir.Model, config: Any, calibration: Calibration | None = None) -> UcnnMapping:
    rows, unsupported = [], []
    for layer in layers(model):
        row = map_layer(layer, config)
        (unsupported if isinstance(row, Unsupported) else rows).append(row)
    densities, source = measure_densities(model, rows, config.density_samples, calibration)
    for row in rows:
        row.act_density = densities.get(row.name)
    return UcnnMapping(rows, unsupported, weight_bits=config.weight_bits, group=config.group, density_source=source)
