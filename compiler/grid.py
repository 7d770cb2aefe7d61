"""Weights on a symmetric grid, and weights scaled per channel, computed in float64 and rounded
once, as numpy computes them (a float32 weight widens to float64 exactly).

By the compiled kernel (``_grid_kernels.c``, built at install: one pass where numpy makes five
through float64 temporaries) for float32 weights (a strided block of one read in place by the
grid functions, copied first by scaled_along); by numpy otherwise, and wherever the kernel is not
built or ``NNCC_NUMPY_KERNELS=1`` (:mod:`nncc.native`). The two agree to the
last bit (tests/test_grid_kernels.py). Users: ucnn's weight codes, legalize-core-ops'
quantize_symmetric, fold-batchnorm's scaled weights.
"""

from __future__ import annotations

import numpy as np

from nncc import native
from nncc.crossbar import max_abs

KERNELS = "nncc._grid_kernels"


def _float32_kernels(*arrays: np.ndarray):
    """The compiled module where every array is non-empty float32, else None."""
    if any(a.dtype != np.float32 or not a.size for a in arrays):
        return None
    return native.kernels(KERNELS)


def grid_codes(w: np.ndarray, scale: float, dtype=np.int32) -> np.ndarray:
    """``rint(w / scale)`` in float64, as ``dtype`` (numpy's cast where a code does not fit)."""
    kernels = _float32_kernels(w) if np.dtype(dtype) == np.int32 else None
    if kernels is not None:
        codes = np.empty(w.shape, np.int32)
        if kernels.grid(w, float(scale), codes, False):  # strided w read in place
            return codes
    codes = np.divide(w, scale, dtype=np.float64)
    return np.rint(codes, out=codes).astype(dtype)


def grid_values(w: np.ndarray, scale: float, chunk: int = 1 << 16) -> tuple[np.ndarray, float]:
    """(``rint(w / scale) * scale`` in float64, rounded to w's dtype; max |that - w| in float64,
    NaN where one is)."""
    kernels = _float32_kernels(w)
    if kernels is not None:
        q = np.empty(w.shape, np.float32)
        return q, kernels.grid(w, float(scale), q, True)  # strided w read in place
    # numpy: a cache-sized chunk at a time on one float64 buffer, the same values as on the
    # whole array, 3x faster on ResNet-50's 2.4M-weight convs, whose float64 copy does not fit a cache.
    flat = w.reshape(-1)
    q = np.empty_like(flat)
    grid = np.empty(min(chunk, flat.size), dtype=np.float64)
    errors = []
    for start in range(0, flat.size, chunk):
        part, out = flat[start:start + chunk], q[start:start + chunk]
        g = grid[:part.size]
        np.divide(part, scale, out=g, dtype=np.float64)
        np.round(g, out=g)
        np.multiply(g, scale, out=g)
        out[...] = g
        np.subtract(out, part, out=g, dtype=np.float64)
        errors.append(max_abs(g))
    return q.reshape(w.shape), float(np.max(errors))  # np.max: a NaN error stays NaN


def scaled_along(weight: np.ndarray, scale: np.ndarray, axis: int, block_elements: int = 1 << 16) -> np.ndarray:
    """weight x scale (one factor per index of ``axis``), computed in float64 and rounded to the
    weight's dtype."""
    factors = np.ascontiguousarray(scale, dtype=np.float64)
    kernels = _float32_kernels(weight)
    if kernels is not None and factors.size == weight.shape[axis]:
        out = np.empty(weight.shape, np.float32)
        kernels.scaled(np.ascontiguousarray(weight), factors, int(np.prod(weight.shape[axis + 1:], dtype=np.int64)), out)
        return out
    # numpy: a block of channels at a time through one small float64 buffer (a float64 temporary
    # of a whole 9 MB weight is fresh memory on every call, and its page faults cost 5x the
    # arithmetic: fold-batchnorm on ResNet-50, 245 ms against 50 ms).
    out = np.empty_like(weight)
    src, dst = np.moveaxis(weight, axis, 0), np.moveaxis(out, axis, 0)
    per_channel = max(1, weight.size // max(1, weight.shape[axis]))
    rows = max(1, block_elements // per_channel)
    factors = scale.reshape(-1, *([1] * (weight.ndim - 1)))
    buffer = np.empty((min(rows, len(scale)), *src.shape[1:]), np.float64)
    for start in range(0, len(scale), rows):
        n = min(rows, len(scale) - start)
        np.multiply(src[start:start + n], factors[start:start + n], out=buffer[:n], dtype=np.float64)
        dst[start:start + n] = buffer[:n]
    return out
