"""A crossbar row block's cells and what column_stats reads off them, by the compiled kernel
(``_block_kernels.c``, built at install) where it applies; None where it does not, and the
caller computes the same with numpy (``nncc.crossbar.cell_matrix_t`` and column_stats' code).

The kernel's figures are numpy's to the last bit (tests/test_reram_block_kernels.py compares
the two on random and zoo weights): a speed-up, never a second model. It does in one pass over a
block's weights what took numpy about ten: the weight codes, the cells [physical columns x rows],
their column sums, the crossbars placed and the read conductance of each row.
``NNCC_NUMPY_KERNELS=1`` turns it off (the numpy path, for comparing the two).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nncc import native
from nncc.crossbar import CrossbarGeometry, slice_cuts

MODULE = "nncc.backends.reram._block_kernels"


def compiled():
    """The compiled module, or None (not built, or turned off: :func:`nncc.native.kernels`)."""
    return native.kernels(MODULE)


class BlockCells(NamedTuple):
    cells_t: np.ndarray               # [physical columns x rows] small integers: cell_matrix_t of the block
    col_sums: np.ndarray | None = None  # int64 [physical columns]
    placed: np.ndarray | None = None    # bool per crossbar of X columns: holds a non-zero cell
    row_g: np.ndarray | None = None     # float32 [rows]: read conductance of the placed crossbars' columns


def transposed_weights(w: np.ndarray, geometry: CrossbarGeometry, config) -> np.ndarray | None:
    """A layer's [k x n] matrix as the kernel reads it, [n x k] row-major float32 (a conv's
    weights already are: no copy), or None where the kernel does not apply: no kernel, other
    dtypes (numpy's float64 codes of them), cells wider than a byte, codes wider than 16 bits,
    conductances that are not Python floats (numpy's expression then rounds otherwise)."""
    if (compiled() is None or w.ndim != 2 or w.dtype != np.float32 or not 1 <= geometry.weight_bits <= 16
            or geometry.cell_bits > 8 or type(config.g_on) is not float or type(config.g_off) is not float):
        return None
    return np.ascontiguousarray(w.T)


def block_pass(w_t: np.ndarray, start: int, rows: int, geometry: CrossbarGeometry, scale: float, config) -> BlockCells | None:
    """The rows ``start`` .. ``start + rows - 1`` of the matrix ``w_t`` is the transpose of
    (:func:`transposed_weights`), quantized with ``scale``; None where numpy's general path must
    run (a zero or non-finite scale, a NaN weight, a code outside 0 .. 65535)."""
    kernels = compiled()
    if kernels is None or not scale or not np.isfinite(scale):
        return None
    n, k = w_t.shape
    shifts, masks = slice_cuts(geometry.slice_bits(), np.uint8)  # cell_matrix_t's cuts, one byte each
    cols, size = n * geometry.column_factor, geometry.size
    cells_t = np.empty((cols, rows), dtype=np.uint8)
    col_sums = np.empty(cols, dtype=np.int64)
    placed = np.empty(-(-cols // size), dtype=bool)
    row_g = np.empty(rows, dtype=np.float32)
    # Python floats act as float32 in numpy's expression g_off + cell / top * (g_on - g_off).
    ok = kernels.block_pass(w_t, k, start, rows, float(scale), geometry.weight_bits, geometry.encoding == "differential", size,
                            shifts.tobytes(), masks.tobytes(), masks.astype(np.float32),  # a slice's top cell value = its mask
                            np.float32(config.g_on - config.g_off), np.float32(config.g_off), cells_t, col_sums, placed, row_g)
    return BlockCells(cells_t, col_sums, placed, row_g) if ok else None
