"""The weight matrices a reram layer places: per group [K rows = fan-in, N columns = outputs]
(``layer.weight.layout.matrices()``; an integer op's codes minus their zero point, a
DynamicQuantizeLSTM's [W; R] per direction), with the matrix-vector products one inference
runs on them, or why the layer has no crossbar form; and the widths it is placed at. The
mapping of :mod:`.mapping` places what these give (its docstring has the formulas).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from nncc.analysis import Layer, recurrence, stored_widths
from nncc.irutils import constant_value, is_constant
from nncc.ops import INTEGER_OPS

# The weight of a mapped layer is its op's second operand (a matrix or a convolution filter).
WEIGHT_OPERAND = 1
MATRIX_PRODUCTS = frozenset({"Gemm", "MatMul"})
# The weight zero point's input slot of each integer op (its weight slot is the layout's index).
WEIGHT_ZERO_POINT = {"ConvInteger": 3, "MatMulInteger": 3, "QLinearConv": 5, "QLinearMatMul": 5}
UNMAPPED: dict[str, str] = {
    "Einsum": "Einsum: no weight layout for a general contraction (no reram estimator)",
}
STATIC_ONLY = ("both operands are activations (e.g. attention scores Q*K^T): a crossbar computes with weights "
               "programmed before inference; rewriting ReRAM cells for every input is not modelled "
               "(write energy, latency and endurance)")
FIRST_OPERAND = "constant first operand (W*X) is not mapped: transpose the product so the weight is second"


def _unmapped(layer: Layer) -> str | None:
    """Why a weighted layer has no crossbar form, or None when it maps."""
    if layer.op in UNMAPPED:
        return UNMAPPED[layer.op]
    weight = layer.weight
    if weight is not None and (weight.layout.index == WEIGHT_OPERAND or layer.op in INTEGER_OPS):
        return None
    if layer.op in MATRIX_PRODUCTS and is_constant(layer.node.inputs[0]):
        return FIRST_OPERAND
    return STATIC_ONLY if layer.op in MATRIX_PRODUCTS else "conv weights are not constant: " + STATIC_ONLY


def layer_matrices(layer: Layer) -> tuple[list[np.ndarray], int, str | None]:
    """Per-group [K x N] weight matrices and MVMs per inference, or a reason it cannot map."""
    reason = _unmapped(layer)
    if reason:
        return [], 0, reason
    if layer.weight.recurrence is not None:  # counted from X: the graph may omit Y
        rec = recurrence(layer.node)
        if rec is None:
            return [], 0, "shapes unknown: cannot count the time steps"
        return layer.weight.crossbar_matrices(), rec.steps * rec.batch, None
    out = layer.output_shapes[0]
    if out is None:
        return [], 0, "output shape unknown: cannot count matrix-vector products"
    layout = layer.weight.layout
    w = _centered(layer)
    if layout.kind == "in_first" and w.ndim != 2:
        return [], 0, f"{layer.op} weight of rank {w.ndim}: only a 2-D constant second operand maps onto crossbars"
    mats = layout.matrices(w)
    if layout.scale != 1.0:  # a Gemm's alpha: the crossbar stores the product's true matrix
        mats = [m * layout.scale for m in mats]
    if layout.kind == "conv_transpose":  # one MVM per input pixel, its columns overlap-added into the output
        x = layer.input_shapes[0]
        if x is None:
            return [], 0, "input shape unknown: cannot count matrix-vector products"
        return mats, math.prod(x) // w.shape[0], None
    # One MVM per output vector (a conv: per output pixel, on the same crossbars).
    return mats, math.prod(out) // layout.outputs(w.shape), None


def _centered(layer: Layer) -> np.ndarray:
    """The weight as the crossbar holds it: an integer op's stored codes minus its weight zero point."""
    w = layer.weight.array()
    if layer.op not in WEIGHT_ZERO_POINT:
        return w
    w = w.astype(np.float64)
    zp_slot = WEIGHT_ZERO_POINT[layer.op]
    zp = constant_value(layer.node.inputs[zp_slot]) if zp_slot < len(layer.node.inputs) and layer.node.inputs[zp_slot] is not None else None
    if zp is None or np.size(zp) == 0:
        return w
    zp = np.asarray(zp, dtype=np.float64)
    if zp.ndim == 1 and zp.size > 1 and layer.weight.layout.kind == "out_first":  # per output channel
        zp = zp.reshape((-1,) + (1,) * (w.ndim - 1))
    return w - zp


def contrib_recurrent_matrices(layer: Layer) -> tuple[list[np.ndarray], int, str | None]:
    """DynamicQuantizeLSTM: per direction [W - zp_W; R - zp_R], [I + H, 4H]; MVMs = steps x batch."""
    rec = recurrence(layer.node)
    ins = layer.node.inputs
    w, r = (constant_value(v) if v is not None else None for v in ins[1:3])
    if rec is None or w is None or r is None:
        return [], 0, "weights not constant or shapes unknown: cannot place the recurrent matrices"

    def centered(array, slot):
        zp = constant_value(ins[slot]) if len(ins) > slot and ins[slot] is not None else None
        array = np.asarray(array, dtype=np.float64)
        return array - np.asarray(zp, dtype=np.float64).reshape(-1, 1, 1) if zp is not None else array

    w, r = centered(w, 9), centered(r, 11)
    return [np.concatenate([w[d], r[d]], axis=0) for d in range(w.shape[0])], rec.steps * rec.batch, None


def layer_widths(layer: Layer, config) -> tuple[int, int]:
    """(weight bits, input bits) of one crossbar layer: the widths the model stores (integer and
    float16 layers, :func:`nncc.analysis.stored_widths`), else the config's."""
    weight_bits, input_bits = stored_widths(layer)
    return weight_bits or config.weight_bits, input_bits or config.input_bits


def layer_config(layer: Layer, config):
    wb, ib = layer_widths(layer, config)
    if (wb, ib) == (config.weight_bits, config.input_bits):
        return config
    return dataclasses.replace(config, weight_bits=max(wb, config.cell_bits), input_bits=ib)
