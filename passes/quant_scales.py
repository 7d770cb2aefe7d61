"""Scale arithmetic of the quantization passes: weight grids, (de)quantization, activation scales.

Weights: symmetric (``scale = max|w| / (2^(b-1) - 1)``, zero point 0) or asymmetric (range
[min(w, 0), max(w, 0)] over 2^b levels), per channel along one axis or per tensor; every weight
is then within scale/2 of its dequantized value. Activations: asymmetric uint8 over the
calibrated range (widened to contain 0), or symmetric int8.
"""

from __future__ import annotations

import numpy as np


def stored_bits(bits: int, reduce_range: bool) -> int:
    """The width the weights really use: 7 for 8 with ``reduce_range`` (see QuantizeQDQ)."""
    return 7 if reduce_range and bits == 8 else bits


def weight_levels(bits: int, symmetric: bool) -> tuple[int, int]:
    half = 1 << (bits - 1)
    return (-(half - 1), half - 1) if symmetric else (-half, half - 1)


def quantize_weight(w: np.ndarray, bits: int, axis: int | None, symmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q int8, scale float32, zero point int8); scale/zero point per ``axis`` or scalars."""
    qmin, qmax = weight_levels(bits, symmetric)
    w64 = w.astype(np.float64)
    reduce = tuple(i for i in range(w.ndim) if i != axis) if axis is not None else None
    if symmetric:
        scale = np.max(np.abs(w64), axis=reduce) / qmax
        zp = np.zeros_like(scale)
    else:
        lo = np.minimum(np.min(w64, axis=reduce), 0.0)
        hi = np.maximum(np.max(w64, axis=reduce), 0.0)
        scale = (hi - lo) / (qmax - qmin)
        scale = np.where(scale > 0, scale, 1.0)
        zp = np.clip(np.round(qmin - lo / scale), qmin, qmax)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)  # all-zero channel: any scale is exact
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.clip(np.round(w64 / scale.reshape(shape).astype(np.float64)) + zp.reshape(shape), qmin, qmax)
    return q.astype(np.int8), scale, zp.astype(np.int8)


def dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int | None) -> np.ndarray:
    shape = [1] * q.ndim
    if axis is not None:
        shape[axis] = -1
    return ((q.astype(np.float32) - zp.reshape(shape).astype(np.float32)) * scale.reshape(shape)).astype(np.float32)


def activation_params(lo: float, hi: float, bits: int, symmetric: bool) -> tuple[np.float32, np.integer, tuple[int, int]]:
    """(scale, zero point typed uint8/int8, (qmin, qmax) of the b-bit range)."""
    if symmetric:
        qmax = (1 << (bits - 1)) - 1
        scale = max(abs(lo), abs(hi)) / qmax
        return np.float32(scale if scale > 0 else 1.0), np.int8(0), (-qmax, qmax)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmax = (1 << bits) - 1
    scale = np.float32((hi - lo) / qmax if hi > lo else 1.0)
    return scale, np.uint8(np.clip(round(-lo / float(scale)), 0, qmax)), (0, qmax)
