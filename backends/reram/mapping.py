"""Lowering for the reram target: every Conv/Gemm/MatMul with constant weights onto crossbars.

A layer is the matrix [K rows = fan-in (C/g*kh*kw for a conv), N columns = outputs] of its
weight's layout (``layer.weight.layout.matrices()``, one per group; :mod:`nncc.weights`);
each weight takes ``slices`` = ceil(weight_bits/cell_bits) cells per polarity (two
polarities with the differential encoding), so with X x X crossbars (:mod:`nncc.crossbar`;
docs/sources.md, "Crossbar geometry")

    crossbars_logical = ceil(K/X) * ceil(N/X)                        (one cell per weight;
                        Group Scissor's count)
    crossbars         = ceil(K/X) * ceil(N*slices*polarities/X) * replicate

counting only crossbars that hold a non-zero cell (a block of zeros, e.g. a deleted
connection group, is not placed). A grouped conv packs whole groups block-diagonally,
min(X // K_g, X // N_g-columns) groups per crossbar. Partial sums of the row blocks are
reduced digitally (shift-add); a conv reuses its crossbars for every output pixel, so it
runs MVMs = batch * H_out * W_out matrix-vector products of ``input_bits`` cycles each.
Crossbars go to IMAs (``crossbars_per_ima``), IMAs to tiles (``imas_per_tile``), layer by
layer (an IMA serves one layer: ISAAC has "some crossbars dedicated for each neural network
layer" [V, ISAAC abstract]).

A recurrent layer (LSTM, GRU, RNN) holds, per direction, [W; R] as one [I + H, gates*H]
matrix (``Weight.crossbar_matrices``): [x_t; h_{t-1}] drives its rows, so every time step is one
MVM per batch row (MVMs = steps x batch; the directions run side by side on their own
crossbars). The gate non-linearities and state updates run on the tile's digital units
after each step's MVMs (``gate_mix``), and the next step waits for them: the steps are serial.
com.microsoft's DynamicQuantizeLSTM is such an LSTM with int8 W [dirs, I, 4H] and R [dirs, H, 4H]
(already [K, N] per direction): its codes minus their zero points are the cell codes.

Integer ops of pre-quantized models (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul)
map like their float forms: the stored integers minus the weight zero point are the cell codes
(weight bits = ``Weight.integer_bits``, scale 1 code per level wherever the codes fit), and
their integer activations drive the rows with their own width (input bits = the activation's
integer width). Zero-point corrections and requantization run with the digital reduction.

ConvTranspose holds, per group, the [C/g rows, M/g*kh*kw columns] matrix of its layout: each
input pixel drives it once (MVMs = batch x H_in x W_in), and the digital units overlap-add the
column results into the output (``overlap_adds``, part of ``shift_adds``).

Float16 layers (a weight or activation of dtype float16) run at 16-bit weights and inputs
instead of the configured ``weight_bits`` / ``input_bits``; the row records its widths.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.analysis import Layer, layers, recurrence
from nncc.backends.base import Mapping
from nncc.cost import Unsupported
from nncc.calibration import CALIBRATION_THREADS
from nncc.crossbar import column_slices, dense_crossbars, layer_scale, max_abs, row_blocks
from nncc.ops import CONTRIB_RECURRENT, DEFAULT_DOMAINS, INTEGER_OPS, RECURRENT_OPS, WEIGHTED_OPS

from . import adc, activations
from .column_stats import adc_units, add_counts, block_stats, packed_stats
from .column_stats import reads as column_reads
from .digital import DigitalLayer, digital_row, dynamic_product_row, is_digital
from .layer_matrices import STATIC_ONLY, contrib_recurrent_matrices, layer_config, layer_matrices
from .placement import pipeline_speedups, place

# Every weighted op is a matrix-vector product; the crossbar mapping covers those whose weight
# layout is a convolution filter or a matrix, held in the op's second operand
# (:mod:`.layer_matrices` says why the others are not placed).
MVM_OPS = WEIGHTED_OPS
# ADC modes that run the calibration inputs (the input bits also set the array read energy).
MEASURED_MODES = ("calibration", "fixed")

@dataclasses.dataclass
class CrossbarLayer:
    name: str
    op: str
    macs: int
    rows: int                  # fan-in per group (K)
    cols: int                  # outputs per group (N)
    groups: int
    mvms: int                  # matrix-vector products per inference
    slices: int
    polarities: int
    row_blocks: int            # per group
    col_blocks: int            # per group
    groups_per_crossbar: int
    crossbars_logical: int
    crossbars_dense: int       # the formula, before zero blocks are skipped and before replication
    crossbars: int             # placed (non-zero blocks) x replicate
    empty_blocks: int          # all-zero blocks that got no crossbar
    replicate: int
    adc_bits: list[int]        # per slice, most significant first
    max_column_sum: list[float]
    worst_case_bits: list[int]
    adc_bits_source: str
    adc_units: dict[int, int]  # provisioned ADCs by resolution (one per cols_per_adc used columns of a placed crossbar)
    conversions: list[int]     # per slice, per inference
    dac_drives: int
    shift_adds: int
    buffer_accesses: int
    psum_flits: int
    act_flits: int
    wires: int                 # crossbar output columns routed to a reduction point or out of the layer
    wire_lengths: float        # their lengths, in crossbar sides
    read_siemens: float        # sum over driven rows of (1-bit density x row conductance), per MVM and input bit
    busiest_adc_columns: int   # most columns one ADC converts per input bit
    quantization: dict[str, Any]
    imas: int = 0
    ima_first: int = 0
    tiles: list[int] = dataclasses.field(default_factory=list)
    weight_bits: int = 0       # the layer's weight / input widths where they differ from the config (integer and
    input_bits: int = 0        # float16 layers); 0: the config's
    overlap_adds: int = 0      # ConvTranspose: adds merging overlapping column results into the output
    steps: int = 0             # recurrent: serial time steps (mvms = steps x batch); 0 for a feed-forward layer
    gate_mix: tuple[float, float, float] = (0, 0, 0)  # recurrent: gate work (simple, multiplies, transcendentals), all steps
    gate_accesses: int = 0     # recurrent: the gate work's eDRAM accesses, all steps
    held_by: str | None = None  # the earlier layer whose crossbars hold this one's weight (an unrolled loop's body)
    active_rows: float = 0.0   # sum over placed crossbars of the rows whose input bit is 1, per MVM and input bit (measured)
    reads: int = 1             # senses per column and input bit (partial parallel read), in the tallest row block
    layer: Layer | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class ReramMapping(Mapping[CrossbarLayer | DigitalLayer]):
    artifact_name = "crossbar_map.json"
    calibration: str = ""
    imas: int = 0
    tiles: int = 0

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.update({"calibration": self.calibration, "imas": self.imas, "tiles": self.tiles,
                    "formula": "crossbars = ceil(K/X) * ceil(N*slices*polarities/X) * replicate (non-zero blocks); "
                               "crossbars_logical = ceil(K/X) * ceil(N/X)",
                    "slice_order": "most significant first"})
        return out

    @property
    def crossbar_layers(self) -> list[CrossbarLayer]:
        return [row for row in self.layers if isinstance(row, CrossbarLayer)]


# ---------------------------------------------------------------- one layer onto crossbars

def map_mvm(layer: Layer, mats: list[np.ndarray], mvms: int, config, vectors, integer: bool = False) -> CrossbarLayer:
    """Place one layer. ``vectors(groups) -> (codes [groups x V x K], quantization dict) | None``
    gives its calibration inputs as activation codes. ``integer``: the matrices hold integer codes,
    stored as they are wherever they fit the weight bits (one level per code)."""
    geometry = config.geometry
    X, S, P, bits = geometry.size, geometry.slices, geometry.polarities, config.input_bits
    g = len(mats)
    k, n = mats[0].shape
    phys_cols = n * geometry.column_factor
    rb, cb = row_blocks(k, X), -(-phys_cols // X)
    packed = g > 1 and k <= X and phys_cols <= X
    gpc = min(X // k, X // phys_cols) if packed else 1
    scale = layer_scale(max(max_abs(m) for m in mats), geometry)
    if integer and scale:
        top = 2 ** geometry.weight_bits - 1 if geometry.polarities == 2 else 2 ** (geometry.weight_bits - 1) - 1
        scale = max(scale, float(top))
    mode = config.adc_bits_from
    got = vectors(g) if mode in MEASURED_MODES else None
    quant: dict[str, Any] = {"weights": f"{config.weight_encoding}, {config.weight_bits} bits, one scale per layer ({config.weight_scale} |w|)",
                             "weight_scale": scale, **(got[1] if got else {})}
    codes = got[0] if got else None
    st = packed_stats(mats, scale, codes, config) if packed else block_stats(mats, scale, codes, config)
    sums = st["sums"]
    if mode == "worst-case":
        sums = np.array(adc.worst_case_sums(geometry, k))
        source = "worst case: every row of a crossbar at the top cell value"
    elif mode == "fixed":
        source = "fixed: adc_bits_max on every converted column (column sums and input bits measured)"
    elif codes is None:
        source = "weight bound: every input bit 1" + ("" if mode == "weights" else " (no calibration vectors for this layer)")
    else:
        source = "measured on calibration inputs"
    conversions = st["nz_cols"] * mvms * bits
    # A slice with non-zero cells is converted: at least 1 bit even if no calibration input reached it.
    adc_bits = [max(adc.bits_for(s, config.adc_bits_max), 1 if conversions[i] else 0) for i, s in enumerate(sums)]
    if mode == "fixed":  # one ADC design for the whole chip (NeuroSim's levelOutput)
        adc_bits = [config.adc_bits_max if conversions[i] else 0 for i in range(len(sums))]
    worst = [adc.bits_for(s, config.adc_bits_max) for s in adc.worst_case_sums(geometry, k)]
    r_eff = max(1, min(config.replicate, mvms))
    col_slice = column_slices(n, geometry)
    units: dict[int, int] = {}
    if packed:
        # Whole groups side by side on one crossbar: each output column leaves after one crossbar side.
        crossbars, dense = -(-st["placed_groups"] // gpc), -(-g // gpc)
        logical = -(-st["logical_groups"] // min(X // k, X // n))
        add_counts(units, adc_units(np.tile(col_slice, gpc), np.tile(st["live"], gpc), adc_bits, config, crossbars))
        wires = lengths = float(st["placed_groups"] * phys_cols)
    else:
        crossbars, dense, logical = st["placed"], g * dense_crossbars(k, n, X, geometry.column_factor), st["logical"]
        wires, lengths = st["wires"], st["wire_lengths"]
        for c, placed in enumerate(st["placed_per_cb"]):
            cols = col_slice[c * X:(c + 1) * X]
            add_counts(units, adc_units(cols, st["live"][c * X:(c + 1) * X], adc_bits, config, int(placed)))
    n_total = n * g
    # One shift-add per conversion, then per output: row-block partial sums, pos - neg, bias/offset/rescale.
    reduce_adds = mvms * n_total * ((rb - 1) + (P - 1) + 1)
    return CrossbarLayer(
        name=layer.name, op=layer.op, macs=layer.macs, rows=k, cols=n, groups=g, mvms=mvms, slices=S, polarities=P,
        row_blocks=rb, col_blocks=cb, groups_per_crossbar=gpc, crossbars_logical=int(logical), crossbars_dense=int(dense),
        crossbars=int(crossbars) * r_eff, empty_blocks=int(dense - crossbars), replicate=r_eff,
        adc_bits=adc_bits, max_column_sum=[float(s) for s in sums], worst_case_bits=worst, adc_bits_source=source,
        adc_units={b: c * r_eff for b, c in sorted(units.items())}, conversions=[int(c) for c in conversions],
        dac_drives=int(mvms * bits * st["dac_rows"]), shift_adds=int(conversions.sum() + reduce_adds),
        buffer_accesses=int(mvms * (-(-k * g * bits // config.bus_bits) + -(-n_total * bits // config.bus_bits))),
        psum_flits=int(mvms * -(-n_total * (rb - 1) * config.psum_bits // config.bus_bits)),
        act_flits=int(mvms * -(-n_total * bits // config.bus_bits)),
        wires=int(wires) * r_eff, wire_lengths=float(lengths) * r_eff, read_siemens=st["read_s"],
        active_rows=float(st["active_rows"]), reads=column_reads(min(k, X), config),
        busiest_adc_columns=int(min(config.cols_per_adc, phys_cols * gpc)), quantization=quant, layer=layer)


# ---------------------------------------------------------------- the whole model

def map_model(model: ir.Model, config, calibration: dict[str, np.ndarray] | None = None) -> ReramMapping:
    table = layers(model)
    rows: list[Any] = []
    unsupported: list[Unsupported] = []
    plans = {}
    products: dict[int, DigitalLayer | Unsupported] = {}
    for layer in table:
        if (layer.domain, layer.op) in CONTRIB_RECURRENT:
            mats, mvms, reason = contrib_recurrent_matrices(layer)
            if reason:
                unsupported.append(Unsupported(layer.name, f"{layer.domain}::{layer.op}", reason))
            else:
                plans[id(layer.node)] = (layer, mats, mvms)
        elif layer.domain not in DEFAULT_DOMAINS:
            unsupported.append(Unsupported(layer.name, f"{layer.domain}::{layer.op}", "custom-domain op: no reram estimator"))
        elif layer.op in MVM_OPS:
            mats, mvms, reason = layer_matrices(layer)
            if reason == STATIC_ONLY:  # a product of two activations: the digital units compute it
                products[id(layer.node)] = dynamic_product_row(layer, config)
            elif reason:
                unsupported.append(Unsupported(layer.name, layer.op, reason))
            else:
                plans[id(layer.node)] = (layer, mats, mvms)
    # Recurrent layers read [x_t; h_{t-1}]: no sampler for it, their ADC bits come from the weight bound;
    # so do integer, float16 and transposed-convolution layers (the sampler quantizes float
    # inputs to the config's input bits over a convolution's window).
    sampled = [p[0] for p in plans.values() if p[0].op not in RECURRENT_OPS and p[0].op != "ConvTranspose"
               and p[0].domain in DEFAULT_DOMAINS and layer_config(p[0], config) is config and p[0].op not in INTEGER_OPS]
    calib = activations.Calibration(model, sampled, config, calibration) if config.adc_bits_from in MEASURED_MODES \
        else activations.Calibration.none(f"not used: adc_bits_from = {config.adc_bits_from}")
    speedups = pipeline_speedups([p[0] for p in plans.values()], config.pipeline_speedup) if config.pipeline_speedup else {}
    # The layers are placed on threads, each on its own (the row-block kernel, BLAS and numpy's
    # large array operations let go of the GIL): a compare's reram worker uses the cores the
    # others have left. Rows are taken in the table's order, as placed one after another.
    with cf.ThreadPoolExecutor(CALIBRATION_THREADS, thread_name_prefix="nncc-reram-layers") as pool:
        placed = {key: pool.submit(_map_planned, layer, mats, mvms, config, speedups.get(key), calib)
                  for key, (layer, mats, mvms) in plans.items()}
        for layer in table:
            _add_row(layer, placed, products, rows, unsupported, config)
    mapping = ReramMapping(layers=rows, unsupported=unsupported, calibration=calib.source)
    mapping.imas, mapping.tiles = place(mapping.crossbar_layers, config)
    return mapping


def _map_planned(layer: Layer, mats: list[np.ndarray], mvms: int, config, replicate: int | None,
                 calib: activations.Calibration) -> tuple[CrossbarLayer, Any]:
    """(The row of a planned MVM layer, the config it was placed with)."""
    k = mats[0].shape[0]
    contrib = (layer.domain, layer.op) in CONTRIB_RECURRENT
    lay_config = layer_config(layer, config)
    if replicate is not None:
        lay_config = dataclasses.replace(lay_config, replicate=replicate)
    vectors = (lambda groups: None) if contrib else (lambda groups: calib.vectors(layer, groups, k))
    row = map_mvm(layer, mats, mvms, lay_config, vectors, integer=contrib or layer.op in INTEGER_OPS)
    if layer.op == "ConvTranspose" and layer.output_shapes[0] is not None:
        row.overlap_adds = max(0, mvms * row.cols * row.groups - math.prod(layer.output_shapes[0]))
        row.shift_adds += row.overlap_adds
    return row, lay_config


def _add_row(layer: Layer, placed: dict, products: dict, rows: list, unsupported: list, config) -> None:
    """The table row(s) of ``layer``: its placed MVM (from ``placed``), its product of two
    activations, its digital op, or why it is not costed."""
    if id(layer.node) in placed:
        row, lay_config = placed[id(layer.node)].result()
        if lay_config is not config:
            row.weight_bits, row.input_bits = lay_config.weight_bits, lay_config.input_bits
        rows.append(row)
        if layer.op in RECURRENT_OPS or (layer.domain, layer.op) in CONTRIB_RECURRENT:
            _add_gates(row, layer, lay_config)
    elif id(layer.node) in products:
        row = products[id(layer.node)]
        (unsupported if isinstance(row, Unsupported) else rows).append(row)
    elif layer.domain in DEFAULT_DOMAINS and layer.op not in MVM_OPS:
        if is_digital(layer.op):
            row = digital_row(layer, config)
            (unsupported if isinstance(row, Unsupported) else rows).append(row)
        else:
            unsupported.append(Unsupported(layer.name, layer.op, "no reram estimator for this op (not an MVM, "
                                                                 "not in the digital-unit table)"))


def _add_gates(row: CrossbarLayer, layer: Layer, config) -> None:
    """A recurrent layer's steps and its gate work on the digital units."""
    rec = recurrence(layer.node)
    units = rec.steps * rec.step_units
    products = rec.multiply_ops
    row.steps = rec.steps
    row.gate_mix = (float(units * (rec.simple_ops - products)), float(units * products), float(units * rec.transcendental_ops))
    states = 2 if rec.op == "LSTM" else 1
    # Per unit and step: the gate pre-activations in, the states read and written.
    row.gate_accesses = -(-units * (rec.gates + 2 * states) * config.input_bits // config.bus_bits)
