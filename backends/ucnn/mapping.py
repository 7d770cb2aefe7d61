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

from nncc.analysis import Layer, layers, outputs_known
from nncc.backends.base import Mapping
from nncc.calibration import Calibration, calibration_feeds, run_exposing
from nncc.cost import Unsupported
from nncc.errors import NnccError
from nncc.irutils import static_shape
from nncc.irutils import constant_value
from nncc.ops import CONTRIB_RECURRENT, DEFAULT_DOMAINS, INTEGER_OPS, NO_OPS, RECURRENT_OPS, WEIGHTED_OPS

# The weighted ops whose filters UCNN factorizes (its indirection tables walk one filter's
# weights against a window of activations).
FACTORIZED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"}) | RECURRENT_OPS | INTEGER_OPS
NOT_FACTORIZED = ("a dot-product op other than Conv/ConvTranspose/Gemm/MatMul/LSTM/GRU/RNN and their integer forms: "
                  "UCNN's indirection tables are defined for filters of those ops only")
# The weight zero point's input slot of each integer op.
WEIGHT_ZERO_POINT = {"ConvInteger": 3, "MatMulInteger": 3, "QLinearConv": 5, "QLinearMatMul": 5}
CHUNK_ELEMENTS = 1 << 22  # filters are processed in chunks of about this many weights (bounds memory on VGG fc6)


@dataclasses.dataclass
class WeightStats:
    """Per-position counts of one layer's filters (summed over filters / filter groups)."""

    filters: int = 0
    k: int = 0                 # weights per filter (fan-in)
    zeros: int = 0
    unique: int = 0            # sum over filters of distinct non-zero values
    unique_max: int = 0
    entries: int = 0           # indirection-table entries (G = 1: non-zero weights)
    act_adds: int = 0          # adds forming the sums of activations
    psum_adds: int = 0         # adds accumulating the products
    mults: int = 0
    base_cycles: int = 0       # PE cycles for one output position of every filter (one entry per cycle), before padding
    group: int = 1
    weight_bits: int = 16
    jump_bits: int = 0         # width of one indirection entry's jump: the smallest table (cost.py may pick another)
    padding: dict[int, int] = dataclasses.field(default_factory=dict)  # jump width -> padding entries

    def pad_entries(self, jump: int | None = None) -> int:
        """Extra entries for jumps longer than 2^jump - 1."""
        return self.padding.get(jump or self.jump_bits, 0)

    def cycles(self, jump: int | None = None) -> int:
        return self.base_cycles + self.pad_entries(jump)  # a padding entry takes its cycle like any other

    def table_bits(self, jump: int | None = None) -> int:
        """Indirection tables (jump + G transition bits per entry) + unique-weight tables: the compressed model."""
        j = jump or self.jump_bits
        return (self.entries + self.pad_entries(j)) * (j + self.group) + self.mults * self.weight_bits

    @property
    def nnz(self) -> int:
        return self.filters * self.k - self.zeros

    @property
    def adds(self) -> int:
        return self.act_adds + self.psum_adds

    def add(self, other: WeightStats) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("k", "unique_max", "jump_bits", "group", "weight_bits", "padding"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.unique_max = max(self.unique_max, other.unique_max)


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


# ------------------------------------------------------------------ weight statistics

def quantize_codes(weight: np.ndarray, bits: int) -> np.ndarray:
    """Integer codes of ``weight`` on a symmetric per-layer grid of ``bits`` bits (0 stays 0)."""
    w = np.asarray(weight, dtype=np.float64)
    peak = float(np.abs(w).max(initial=0.0))
    if peak == 0.0 or not np.isfinite(peak):
        return np.zeros(w.shape, dtype=np.int64)
    scale = peak / (2 ** (bits - 1) - 1)
    return np.rint(w / scale).astype(np.int64)


def _distinct_rows(matrix: np.ndarray, ignore: int | None = None) -> np.ndarray:
    """Distinct values per row, not counting ``ignore``."""
    if matrix.shape[1] == 0:
        return np.zeros(matrix.shape[0], dtype=np.int64)
    ordered = np.sort(matrix, axis=1)
    new = np.ones(ordered.shape, dtype=bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    if ignore is not None:
        new &= ordered != ignore
    return new.sum(axis=1)


def _dense_ranks(codes: np.ndarray) -> np.ndarray:
    """Each value's rank among its row's distinct values (0-based), so tuples pack into int64."""
    order = np.argsort(codes, axis=1, kind="stable")
    ordered = np.take_along_axis(codes, order, axis=1)
    step = np.zeros(ordered.shape, dtype=np.int64)
    step[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ranks = np.empty_like(step)
    np.put_along_axis(ranks, order, np.cumsum(step, axis=1), axis=1)
    return ranks


def filter_stats(codes: np.ndarray, group: int = 1, weight_bits: int = 16, index_bits: int = 0,
                 multipliers: int = 1) -> WeightStats:
    """Counts for a [filters, K] matrix of integer weight codes (0 = zero weight).

    The indirection table lists, per group of equal weights (tuples when G > 1), the
    activation positions in ascending order, each stored as the jump from the previous entry
    of its group (the first from the window's start) in ``j`` bits; a jump longer than
    2^j - 1 takes padding entries, like run-length coding (j = ceil(log2(K+1)) needs none:
    plain addresses). ``index_bits`` = 0 counts every width (``padding``) and records the one
    that makes the layer's table smallest; each entry also carries G transition bits.
    """
    f, k = codes.shape
    widths = [index_bits] if index_bits else list(range(1, max(1, math.ceil(math.log2(k + 1))) + 1))
    total = WeightStats(k=k, group=group, weight_bits=weight_bits)
    padding = dict.fromkeys(widths, 0)
    rows = max(group, (CHUNK_ELEMENTS // max(k, 1)) // group * group)
    for start in range(0, f, rows):
        chunk, jumps = _chunk_stats(codes[start:start + rows], group, multipliers)
        total.add(chunk)
        for j in widths:
            padding[j] += int((-(-jumps // ((1 << j) - 1)) - 1).sum())
    total.padding = padding
    total.jump_bits = min(widths, key=lambda j: (total.table_bits(j), padding[j]))
    return total


def _chunk_stats(codes: np.ndarray, g: int, multipliers: int) -> tuple[WeightStats, np.ndarray]:
    f, k = codes.shape
    nonzero = codes != 0
    per_filter_unique = _distinct_rows(codes, ignore=0)
    stats = WeightStats(filters=f, k=k, zeros=int(f * k - nonzero.sum()), unique=int(per_filter_unique.sum()),
                        unique_max=int(per_filter_unique.max(initial=0)))
    if g == 1:
        active = nonzero
        leaf = np.where(active, codes, np.iinfo(np.int64).max)
        mults = [per_filter_unique]
        d1 = per_filter_unique
    else:
        blocks = -(-f // g)
        padded = np.zeros((blocks * g, k), dtype=np.int64)
        padded[:f] = codes
        ranks = _dense_ranks(padded).reshape(blocks, g, k)
        nz = (padded != 0).reshape(blocks, g, k)
        active = nz.any(axis=1)
        prefix = np.zeros((blocks, k), dtype=np.int64)
        mults, d1 = [], None
        for level in range(g):
            prefix = prefix * (k + 1) + ranks[:, level]
            if level == 0:
                d1 = _distinct_rows(np.where(active, prefix, -1), ignore=-1)
            # filter `level` multiplies once per distinct prefix whose own weight is non-zero
            mults.append(_distinct_rows(np.where(active & nz[:, level], prefix, -1), ignore=-1))
        leaf = np.where(active, prefix, np.iinfo(np.int64).max)
    entries = active.sum(axis=1)
    m = np.stack(mults)                                    # [G, blocks]
    stats.entries = int(entries.sum())
    stats.mults = int(m.sum())
    stats.act_adds = int((entries - d1).sum())
    stats.psum_adds = int(np.maximum(m - 1, 0).sum())
    stats.base_cycles = int(np.maximum(entries, -(-m.max(axis=0) // multipliers)).sum())
    # Jumps: positions sorted by (group, position); a stable sort by group keeps positions ascending.
    order = np.argsort(leaf, axis=1, kind="stable")
    ordered = np.take_along_axis(leaf, order, axis=1)
    same = np.zeros(order.shape, dtype=bool)
    same[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    previous = np.full(order.shape, -1, dtype=np.int64)
    previous[:, 1:] = order[:, :-1]
    jumps = order - np.where(same, previous, -1)
    return stats, jumps[ordered != np.iinfo(np.int64).max]


def rlc_bits(codes: np.ndarray, weight_bits: int, run_bits: int) -> int:
    """Eyeriss-style run-length coding of a weight stream: (run of zeros, value) pairs; a run
    longer than 2^run_bits - 1 zeros costs an extra pair."""
    flat = codes.reshape(-1)
    pos = np.flatnonzero(flat)
    gaps = np.diff(np.concatenate([[-1], pos])) - 1
    limit = (1 << run_bits) - 1
    pairs = int(pos.size + (gaps // (limit + 1)).sum())
    return pairs * (weight_bits + run_bits)


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


def _float16(value: ir.Value | None) -> bool:
    return value is not None and value.dtype == ir.DataType.FLOAT16


def layer_widths(layer: Layer, config: Any) -> tuple[int, int]:
    """(weight bits, activation bits) of a factorized layer: the integers' widths for an integer op,
    16 for a float16 layer, else the config's."""
    node = layer.node
    if (layer.domain, layer.op) in CONTRIB_RECURRENT:
        dtype = node.inputs[1].dtype
        return (dtype.bitwidth if dtype is not None and dtype.is_integer() else config.weight_bits), 8
    weight = layer.weight
    if weight is None:
        return config.weight_bits, config.act_bits
    act = node.inputs[weight.layout.activation_index]
    if weight.integer_bits is not None and layer.op in INTEGER_OPS:
        act_bits = act.dtype.bitwidth if act is not None and act.dtype is not None and act.dtype.is_integer() else config.act_bits
        return weight.integer_bits, act_bits
    if _float16(weight.value) or _float16(act):
        return 16, 16
    return config.weight_bits, config.act_bits


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
