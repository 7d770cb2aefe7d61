"""Crossbar geometry: how a weight matrix is cut into crossbars, cells and column segments.

The one definition the reram target (placement and cost), the Group Scissor passes
(``rank-clip``, ``delete-groups``) and the crossbar group lasso of training all plan with.
A compile target that has crossbars describes them as a :class:`CrossbarGeometry`
(``Target.crossbar_geometry()``); passes receive it through the pass context, never by
importing a target.

A weighted layer is the matrix [K rows = fan-in, N columns = outputs] (per group, see
:meth:`nncc.weights.WeightLayout.matrices`). Each weight takes ``slices`` =
ceil(weight_bits / cell_bits) cells per polarity (two polarities with the differential
encoding), so its column factor is ``cf = slices * polarities`` physical columns, and on
X x X crossbars (docs/sources.md, "Group Scissor")

    logical crossbars  = ceil(K/X) * ceil(N/X)                  (one cell per weight)
    physical crossbars = ceil(K/X) * ceil(N*cf/X)               (bit slices, polarities)
    after rank-r clipping W ~= U V:  ceil(K/X) ceil(r cf/X) + ceil(r/X) ceil(N cf/X)

A *column segment* is one output's weights within one row block of X fan-in rows: the
partial sum one crossbar column sends to the adder tree that reduces the row blocks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

Encoding = Literal["differential", "offset"]
WeightScale = Literal["max", "pow2"]


@dataclasses.dataclass(frozen=True)
class CrossbarGeometry:
    """What a pass needs to know of a crossbar target to plan for it."""

    size: int                    # rows = columns X
    cell_bits: int = 2
    weight_bits: int = 8
    encoding: Encoding = "differential"
    weight_scale: WeightScale = "max"

    def __post_init__(self) -> None:
        if min(self.size, self.cell_bits, self.weight_bits) < 1:
            raise ValueError(f"crossbar size, cell_bits and weight_bits must be >= 1 ({self})")
        if self.encoding not in ("differential", "offset") or self.weight_scale not in ("max", "pow2"):
            raise ValueError(f"unknown encoding '{self.encoding}' or weight_scale '{self.weight_scale}'")

    @property
    def slices(self) -> int:
        """Cells (columns) per weight and polarity: ceil(weight_bits / cell_bits)."""
        return -(-self.weight_bits // self.cell_bits)

    @property
    def polarities(self) -> int:
        return 2 if self.encoding == "differential" else 1

    @property
    def column_factor(self) -> int:
        """Physical columns per output: slices x polarities."""
        return self.slices * self.polarities

    def slice_bits(self) -> list[int]:
        """Bits held by each slice, most significant first (the top slice may hold fewer)."""
        low = [self.cell_bits] * (self.weight_bits // self.cell_bits)
        rest = self.weight_bits % self.cell_bits
        return ([rest] if rest else []) + low


# ---------------------------------------------------------------- counts

def row_blocks(fan_in: int, size: int) -> int:
    """Crossbar row blocks a fan-in of ``fan_in`` rows spans."""
    return -(-fan_in // size)


def dense_crossbars(fan_in: int, outputs: int, size: int, column_factor: int = 1) -> int:
    """Crossbars of a fan-in x outputs matrix, ``column_factor`` physical columns per output."""
    return math.ceil(fan_in / size) * math.ceil(outputs * column_factor / size)


def factored_crossbars(fan_in: int, outputs: int, rank: int, size: int, column_factor: int = 1) -> int:
    """Crossbars of the rank-r pair U [fan_in, r], V [r, outputs]."""
    return (math.ceil(fan_in / size) * math.ceil(rank * column_factor / size)
            + math.ceil(rank / size) * math.ceil(outputs * column_factor / size))


def group_scissor_counts(n: int, m: int, k: int, x: int) -> dict[str, float]:
    """Logical crossbar counts of an N x M matrix on X x X crossbars before and after rank-K
    clipping, and their ratio (Group Scissor's figure of merit)."""
    if min(n, m, k, x) < 1:
        raise ValueError("N, M, K and X must be >= 1")
    before, after = dense_crossbars(n, m, x), factored_crossbars(n, m, k, x)
    return {"before": before, "after": after, "ratio": after / before}


def cheapest_rank(s: np.ndarray, fan_in: int, outputs: int, size: int, column_factor: int,
                  tolerance: float) -> tuple[int, float]:
    """(rank, relative Frobenius error): the largest rank costing what the smallest rank within
    ``tolerance`` costs. Ranks are 1..len(s); len(s) = full rank means "no rank reduction".

    :func:`factored_crossbars` is a non-decreasing step function of the rank, so every rank up
    to the end of the cheapest step costs the same: the largest of them has the lowest error."""
    s = np.asarray(s, dtype=np.float64)
    full = s.size
    energy = s ** 2
    total = float(energy.sum())
    # tail[r] = ||W - W_r||_F^2 for r = 0..full (Eckart-Young), summed from the small end
    # so the tails of tiny singular values are not lost to cancellation.
    tail = np.concatenate([np.cumsum(energy[::-1])[::-1], [0.0]])
    rel = np.sqrt(tail / total) if total > 0 else np.zeros(full + 1)
    ok = np.nonzero(rel[1:] <= tolerance)[0]
    r_min = int(ok[0]) + 1 if ok.size else full
    cost = factored_crossbars(fan_in, outputs, r_min, size, column_factor)
    r = r_min
    while r < full and factored_crossbars(fan_in, outputs, r + 1, size, column_factor) <= cost:
        r += 1
    return r, float(rel[r])


# ---------------------------------------------------------------- column segments

def segment_norms(matrix: np.ndarray, size: int) -> np.ndarray:
    """[row blocks, N]: L2 norm of each output's weights within each row block of ``size`` rows
    (``matrix`` is [K fan-in, N outputs])."""
    k, n = matrix.shape
    squares = np.zeros((row_blocks(k, size), n), dtype=np.float64)
    for b, start in enumerate(range(0, k, size)):
        block = matrix[start:start + size].astype(np.float64)
        squares[b] = np.sum(block * block, axis=0)
    return np.sqrt(squares)


def logical_blocks(matrix: np.ndarray, size: int) -> int:
    """Non-zero X x X blocks of a [K, N] matrix (one cell per weight)."""
    k, n = matrix.shape
    if not k or not n:
        return 0
    # Two segmented ORs (rows, then columns) instead of one np.any per block: a fc layer has
    # thousands of blocks and the per-call overhead dominated.
    rows = np.logical_or.reduceat(matrix != 0, np.arange(0, k, size), axis=0)
    return int(np.logical_or.reduceat(rows, np.arange(0, n, size), axis=1).sum())


# ---------------------------------------------------------------- cells

def quantize_weights(w: np.ndarray, bits: int, encoding: str, scale: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """-> (positive codes, negative codes, scale); codes are integers 0 .. 2^bits - 1.

    ``differential``: |w| on ``bits`` bits, split by sign. ``offset``: signed value on
    ``bits`` bits stored as value + 2^(bits-1) (negative codes are all zero). ``scale``
    defaults to max |w| (a grouped layer passes the layer's max for every group).
    """
    w = np.asarray(w, dtype=np.float64)
    if scale is None:
        scale = max_abs(w)
    if scale == 0.0:
        zeros = np.zeros(w.shape, dtype=np.int64)
        return zeros, zeros.copy(), 0.0
    if encoding == "differential":
        q = np.rint(np.abs(w) / scale * (2 ** bits - 1)).astype(np.int64)
        return np.where(w > 0, q, 0), np.where(w < 0, q, 0), scale
    half = 2 ** (bits - 1) - 1
    q = np.rint(w / scale * half).astype(np.int64) + 2 ** (bits - 1)
    return q, np.zeros_like(q), scale


def slice_codes(codes: np.ndarray, slice_bits: list[int]) -> list[np.ndarray]:
    """Cut integer codes into cell values, most significant slice first."""
    out, shift = [], sum(slice_bits)
    for bits in slice_bits:
        shift -= bits
        out.append((codes >> shift) & (2 ** bits - 1))
    return out


def layer_scale(peak: float, geometry: CrossbarGeometry) -> float:
    """The |w| that maps to the top weight code: max |w| itself, or the power of two at or
    above it (``weight_scale=pow2``, the bit-slice L1 authors' dynamic fixed point)."""
    if geometry.weight_scale == "pow2" and peak > 0:
        return 2.0 ** math.ceil(math.log2(peak))
    return peak


def max_abs(m: np.ndarray) -> float:
    """max |m| (0 for an empty array) without an |m| copy for floats: the larger of max m and
    -min m (abs() turns the -0.0 of an all-zero matrix into 0.0; a NaN stays NaN, as
    np.max(np.abs(m)))."""
    if not m.size:
        return 0.0
    if m.dtype.kind != "f":
        return float(np.max(np.abs(m)))
    return abs(max(float(m.max()), -float(m.min())))


def physical_matrix(w_kn: np.ndarray, geometry: CrossbarGeometry, scale: float | None = None) -> np.ndarray:
    """[K x N] weights -> [K x N*slices*polarities] cell values.

    Column order: polarity, then slice (MSB first), then output: col = (p*S + s)*N + n, so
    the columns of one slice sit together and an ADC shared by neighbouring columns mostly
    serves a single slice.
    """
    return cell_matrix(w_kn, geometry, scale).astype(np.float32)


def cell_matrix(w_kn: np.ndarray, geometry: CrossbarGeometry, scale: float | None = None) -> np.ndarray:
    """:func:`physical_matrix` as small unsigned integers (uint8 for cells of up to 8 bits):
    the same values, a quarter of the memory, and no float copies for the statistics that
    only compare or count cells.

    The codes are computed as :func:`quantize_weights` computes them (float64 |w| / scale *
    (2^bits - 1), rounded), so the cells are identical; only the integer width differs."""
    return cell_matrices(w_kn, geometry, scale, transposed=False)[0]


def cell_matrices(w_kn: np.ndarray, geometry: CrossbarGeometry, scale: float | None = None,
                  transposed: bool = True, rows_major: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(:func:`cell_matrix`, its transpose [N*slices*polarities x K] row-major), from one
    quantization; either is None when not asked for (``rows_major``, ``transposed``). The
    transpose is cut from transposed codes: transposing the cells themselves costs ~5x more
    (numpy transposes bytes slowly, and there are slices x polarities times more cells)."""
    w = np.asarray(w_kn)
    bits = geometry.weight_bits
    if scale is None:
        scale = max_abs(w)
    codes = _codes_small(w, bits, geometry.encoding, scale)
    if codes is None:  # zero or non-finite scale, codes out of range: the general (int64) path
        pos, neg, _ = quantize_weights(w, bits, geometry.encoding, scale)
        parts = []
        for c in ([pos, neg] if geometry.polarities == 2 else [pos]):
            parts += slice_codes(c, geometry.slice_bits())
        cells = np.concatenate(parts, axis=1)
        return cells, (np.ascontiguousarray(cells.T) if transposed else None)
    k = w.shape[0]
    signed = np.stack([codes * (w > 0), codes * (w < 0)], axis=1) if geometry.polarities == 2 else codes[:, None, :]  # [k, P, n]
    shifts, masks = slice_cuts(geometry.slice_bits(), codes.dtype)
    # slice_codes of each polarity at once, broadcast over the slices: cells[i, p, s, j] (the
    # column order (p*S + s)*N + j), two numpy calls whatever the slice count.
    cells = None
    if rows_major:
        cells = np.right_shift(signed[:, :, None, :], shifts[:, None])
        np.bitwise_and(cells, masks[:, None], out=cells)
        cells = cells.reshape(k, -1)
    if not transposed:
        return cells, None
    signed_t = np.ascontiguousarray(signed.transpose(1, 2, 0))  # [P, n, k]: only the codes are transposed
    cells_t = np.right_shift(signed_t[:, None], shifts[:, None, None])
    np.bitwise_and(cells_t, masks[:, None, None], out=cells_t)
    return cells, cells_t.reshape(-1, k)


def cell_matrix_t(w_kn: np.ndarray, geometry: CrossbarGeometry, scale: float | None = None) -> np.ndarray:
    """The transpose of :func:`cell_matrix`, [N*slices*polarities x K], row-major."""
    return cell_matrices(w_kn, geometry, scale, rows_major=False)[1]


def slice_cuts(slice_bits: list[int], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Per slice (MSB first), the shift and mask slice_codes applies."""
    shifts = np.cumsum([0] + slice_bits[::-1])[:-1][::-1]  # bits below each slice
    return shifts.astype(dtype), np.array([2 ** b - 1 for b in slice_bits], dtype=dtype)


def _codes_small(w: np.ndarray, bits: int, encoding: str, scale: float) -> np.ndarray | None:
    """quantize_weights' codes (|w| codes for differential, offset codes else) in the smallest
    unsigned dtype that holds them, computed in place on one float64 buffer; None where the
    general path must run (2-D only, finite non-zero scale, codes within 0 .. 65535)."""
    if w.ndim != 2 or not scale or not math.isfinite(scale) or bits > 16:
        return None
    q = np.asarray(w, dtype=np.float64).copy() if w.dtype == np.float64 else w.astype(np.float64)
    if encoding == "differential":
        np.abs(q, out=q)
        np.divide(q, scale, out=q)
        np.multiply(q, 2 ** bits - 1, out=q)
        np.rint(q, out=q)
    else:
        np.divide(q, scale, out=q)
        np.multiply(q, 2 ** (bits - 1) - 1, out=q)
        np.rint(q, out=q)
        np.add(q, 2 ** (bits - 1), out=q)  # exact: rint gives integers, far below 2^53
    if not q.size:
        return q.astype(np.uint8)
    high = q.max()
    low = 0.0 if encoding == "differential" else q.min()  # |w| codes are >= 0 (or NaN: caught by high)
    if not (low >= 0 and high <= 65535):  # also catches NaN
        return None
    return q.astype(np.uint8 if high <= 255 else np.uint16)


def column_slices(n: int, geometry: CrossbarGeometry) -> np.ndarray:
    """Slice index (0 = MSB) of each physical column of a matrix with ``n`` outputs."""
    return np.tile(np.repeat(np.arange(geometry.slices), n), geometry.polarities)


def placed_crossbars(matrix: np.ndarray, geometry: CrossbarGeometry, max_cells: int | None = None) -> int | None:
    """Crossbars a [K, N] matrix occupies once its zero blocks are left out (the non-zero
    physical X x X blocks); None when the matrix has more than ``max_cells`` cells."""
    k, n = matrix.shape
    x, cols = geometry.size, n * geometry.column_factor
    if max_cells is not None and k * cols > max_cells:
        return None
    scale = layer_scale(max_abs(matrix), geometry)
    placed = 0
    for start in range(0, k, x):
        nz = np.any(cell_matrix(matrix[start:start + x], geometry, scale) != 0, axis=0)
        placed += int(np.logical_or.reduceat(nz, np.arange(0, cols, x)).sum()) if cols else 0
    return placed
