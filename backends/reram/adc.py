"""ADC resolution per weight bit slice, derived from column sums.

A crossbar column adds, for one input bit plane, sum_i x_bit_i * cell_ij over the rows of
one crossbar (bit-serial binary inputs, cell values 0 .. 2^c - 1). The ADC behind it must
resolve every value that sum reaches, so its resolution is

    bits(slice) = min(ceil(log2(1 + max column sum)), adc_bits_max)

(docs/sources.md, "ReRAM"; the bit-slice sparsity idea of arXiv 1909.08496). The max is taken over
calibration input vectors, all input bit planes, every column of that slice and every
row-block (crossbar) of the layer. Two input-free bounds are also available: ``weights``
(every input bit 1: the largest column sum the stored weights allow, safe for any input)
and ``worst-case`` (every row of a full crossbar at the top cell value: what a design that
knows nothing about the weights provisions: 128 rows x 3 = 384 needs 9 bits, capped at 8).
A slice whose cells are all zero needs no conversion: 0 bits.

Quantization (recorded per layer): weights with one scale per layer (max |w|; how weights
become cells is :mod:`nncc.crossbar`'s, shared with the Group Scissor passes), inputs with
one scale per layer (max |x| on the calibration runs), unsigned when the layer's input was
never negative, else two's complement (as ISAAC handles signed inputs).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import math
import os
import sys

import numpy as np

from nncc import calibration
from nncc.crossbar import CrossbarGeometry, column_slices

from . import block_kernels


def bits_for(max_sum: float, cap: int) -> int:
    return 0 if max_sum <= 0 else min(int(math.ceil(math.log2(1 + max_sum))), cap)


def worst_case_sums(geometry: CrossbarGeometry, rows: int) -> list[float]:
    """Every row of a full crossbar (or of the layer, if it has fewer rows) at the top cell value."""
    r = min(rows, geometry.size)
    return [float(r * (2 ** b - 1)) for b in geometry.slice_bits()]


def per_slice_max(col_values: np.ndarray, n: int, geometry: CrossbarGeometry) -> np.ndarray:
    """Max of per-column values over the columns of each slice (MSB first)."""
    slices = column_slices(n, geometry)
    return np.array([float(col_values[slices == s].max()) if np.any(slices == s) else 0.0 for s in range(geometry.slices)])


def quantize_inputs(x: np.ndarray, bits: int, scale: float, signed: bool) -> np.ndarray:
    """Activation codes as unsigned integers 0 .. 2^bits - 1 (two's complement when signed), in
    the smallest unsigned dtype that holds them (uint8 up to 8 bits: what the bit-plane search
    reads; an int64 copy of every sampled patch was 8x the bytes to write and convert)."""
    dtype = np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.int64
    if scale <= 0:
        return np.zeros(x.shape, dtype=dtype)
    kernels = block_kernels.compiled()
    if kernels is not None and x.dtype == np.float32 and dtype is not np.int64 and type(scale) is float and x.size:
        codes = np.empty(x.shape, dtype=dtype)
        if kernels.input_codes(np.ascontiguousarray(x), scale, bits, signed, codes):
            return codes
    if signed:
        q = np.clip(np.rint(x / scale * (2 ** (bits - 1) - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if dtype is np.int64:
            return q.astype(np.int64) & (2 ** bits - 1)
        np.add(q, 2 ** bits, out=q, where=q < 0)  # two's complement: integers below 2^17, exact in float32
        return q.astype(dtype)
    return np.clip(np.rint(x / scale * (2 ** bits - 1)), 0, 2 ** bits - 1).astype(dtype)


def _bit_planes(codes: np.ndarray, bits: int) -> np.ndarray:
    """[V x rows] codes below 2^bits -> [V*bits x rows] 0/1 planes (in no particular order)."""
    if bits <= 8:  # one byte per code: numpy unpacks the bits in a single pass
        unpacked = np.unpackbits(codes.astype(np.uint8)[..., None], axis=-1)[..., 8 - bits:]  # [V x rows x bits]
        return np.ascontiguousarray(unpacked.transpose(2, 0, 1)).reshape(-1, codes.shape[1])
    return np.concatenate([((codes >> b) & 1) for b in range(bits)]).astype(np.uint8)


def packed_planes(codes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """([V*bits x ceil(rows/8)] bit planes packed 8 rows a byte, [rows] 1 bits per row over all planes).

    Packed planes are what the search needs (distinct planes, ones per plane): for codes of a
    byte or less, one shift, mask and packbits per bit is ~40x faster than unpacking every bit
    of every code and transposing the result. Rows are packed 8 to a byte along each plane, so
    a block of rows starting at a multiple of 8 is a slice of the bytes: a layer's codes are
    packed once for all its crossbar row blocks."""
    if bits > 8:
        planes = _bit_planes(codes, bits)
        return np.packbits(planes, axis=1), planes.sum(axis=0, dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)  # codes < 2^bits <= 256: exact
    out = np.empty((bits, len(codes), -(-codes.shape[1] // 8)), dtype=np.uint8)
    plane = np.empty_like(codes)
    for b in range(bits):
        np.right_shift(codes, b, out=plane)
        np.bitwise_and(plane, 1, out=plane)
        out[b] = np.packbits(plane, axis=1)
    if bits < 8:  # the planes hold only the low ``bits`` bits: so does the count
        np.bitwise_and(codes, 2 ** bits - 1, out=plane)
        codes = plane
    return out.reshape(bits * len(codes), -1), _popcount(codes).sum(axis=0, dtype=np.int64)


def layer_planes(codes: np.ndarray, bits: int, block_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(:func:`packed_planes` of a layer's codes [V x rows], then :func:`ones_per_block` of its
    planes): by the compiled kernel in one pass for codes of a byte or less, numpy otherwise."""
    kernels = block_kernels.compiled()
    if kernels is not None and bits <= 8 and codes.dtype == np.uint8 and sys.byteorder == "little":
        codes = np.ascontiguousarray(codes)
        v, rows = codes.shape
        nbytes = -(-rows // 8)
        packed = np.empty((bits * v, nbytes), dtype=np.uint8)
        row_ones = np.empty(rows, dtype=np.int64)
        block_ones = np.empty((bits * v, -(-nbytes // block_bytes)), dtype=np.int32)
        kernels.packed_planes(codes, v, rows, bits, block_bytes, packed, row_ones, block_ones)
        return packed, row_ones, block_ones
    packed, row_ones = packed_planes(codes, bits)
    return packed, row_ones, ones_per_block(packed, block_bytes)


def ones_per_block(packed: np.ndarray, block_bytes: int) -> np.ndarray:
    """[planes x blocks] int32: the 1 bits of each packed plane in each run of ``block_bytes``
    bytes (a crossbar row block's rows, 8 a byte). One pass per layer, where counting each
    block's bytes again cost ResNet-50 0.08 s over its 434 row blocks, and a running count
    before every byte was 30x the sums the blocks read."""
    return np.add.reduceat(_popcount(packed), np.arange(0, packed.shape[1], block_bytes), axis=1, dtype=np.int32)


def _popcount(a: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(a)
    return _POP8[a]


_POP8 = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)


def _distinct_rows(packed: np.ndarray) -> np.ndarray:
    """Indices of distinct rows of a packed 0/1 matrix (may keep a few duplicates: harmless, a
    duplicate plane only repeats a column sum). Rows are hashed to one 64-bit key and sorted by
    it; neighbours that are fully equal are dropped (much faster than numpy's unique over
    byte strings or rows)."""
    if not len(packed):
        return np.arange(0)
    width = -(-packed.shape[1] // 8) * 8
    wide = np.zeros((len(packed), width), dtype=np.uint8)
    wide[:, :packed.shape[1]] = packed
    words = wide.view(np.uint64)
    key = words[:, 0].copy()
    for i in range(1, words.shape[1]):
        key *= np.uint64(0x9E3779B97F4A7C15)  # wraps: any mixing will do, equality is checked below
        key ^= words[:, i]
    order = np.argsort(key)
    ordered = words[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    return order[new]


class _LevelBound:
    """The most a plane with ``p`` ones can add up in each of some columns: the sum of its ``p``
    largest cells, from how many cells of each level the column holds (cells are small
    integers). ``cells``: float32, one row per column; counted by the compiled kernel (one pass,
    a histogram per column) or one numpy bincount."""

    def __init__(self, cells: np.ndarray):
        top = int(cells.max(initial=0))
        self.levels = range(top, 0, -1)  # highest level first
        kernels = block_kernels.compiled()
        if kernels is not None and cells.dtype == np.float32 and cells.ndim == 2 and top <= 255:
            self.counts = np.empty((top, len(cells)), dtype=np.int64)
            kernels.level_counts(np.ascontiguousarray(cells), len(cells), top, self.counts)
            return
        # Every column's cells counted by level in one bincount: column c's cells land in bins
        # c * (top + 1) + level (what comparing with each level and summing counted).
        bins = cells.astype(np.intp) + (np.arange(len(cells), dtype=np.intp) * (top + 1))[:, None]
        per_level = np.bincount(bins.ravel(), minlength=len(cells) * (top + 1)).reshape(len(cells), top + 1)
        self.counts = np.ascontiguousarray(per_level[:, top:0:-1].T, dtype=np.int64)

    def keep(self, mask: np.ndarray) -> None:
        self.counts = self.counts[:, mask]

    def subset(self, index: np.ndarray) -> _LevelBound:
        """The bound of some of the columns (a copy: each thread drops its own)."""
        part = object.__new__(_LevelBound)
        part.levels, part.counts = self.levels, self.counts[:, index]
        return part

    def __call__(self, ones: int) -> np.ndarray:
        left = np.full(self.counts.shape[1], ones, dtype=np.int64)
        bound = np.zeros(self.counts.shape[1])
        for level, count in zip(self.levels, self.counts):
            take = np.minimum(count, left)
            bound += level * take
            left -= take
        return bound


def slice_sums(codes: np.ndarray, phys: np.ndarray, bits: int, col_slice: np.ndarray, floor: np.ndarray,
               chunk: int = 256, col_sums: np.ndarray | None = None, cells_t: np.ndarray | None = None,
               planes: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For one crossbar row block: per slice, the larger of ``floor`` (what earlier row blocks
    reached) and this block's largest column sum over the input vectors ``codes`` [V x rows]
    and all their bit planes; and the density of 1 bits per row (for the read energy).
    ``phys`` holds the block's cells (integers; any numeric dtype).

    Exact -- the figures of computing every column sum of every plane -- but faster: equal
    planes count once, planes go most ones first, and a column leaves the computation as soon
    as no remaining plane can lift it above its slice's maximum so far (a plane with p ones
    adds at most the column's p largest cells). Column sums are integers below 2^24: float32
    is exact. Where the caller has them: ``col_sums``, the block's column sums,
    ``cells_t``, ``phys`` transposed (float32 or its small integers), and ``planes``,
    :func:`packed_planes` of ``codes``, to which may follow the 1 bits of each plane (see
    :func:`ones_per_block`)."""
    best = np.array(floor, dtype=np.float64)
    rows = phys.shape[0]
    if len(codes) == 0:
        return best, np.full(rows, 0.5)
    packed, row_ones, *given = planes if planes is not None else packed_planes(codes, bits)
    density = row_ones.astype(np.float64) / len(packed)  # the count of 1s is an exact integer: same as a float sum
    ones = given[0] if given else _popcount(packed).sum(axis=1, dtype=np.int64)
    most = int(ones.max(initial=0))
    if not most:
        return best, density
    # The cells one row per column (float32, exact small integers), filtered along with the
    # live columns ``cols`` rather than gathered and converted for every chunk of planes.
    cells = cells_t if cells_t is not None else phys.T
    if col_sums is None:
        cells = cells.astype(np.float32, copy=False)
        col_sums = cells @ np.ones(rows, dtype=np.float32)  # integers below 2^24: exact
    # Two bounds on what the densest plane adds to a column: its sum (cheap, for every column),
    # then its ``most`` largest cells (counted per level) for the columns the sum leaves. Most
    # row blocks end here (ResNet-50: 375 of 434): no column can pass its slice's maximum, and
    # the planes need not be told apart, sorted or unpacked.
    cols = np.flatnonzero(col_sums > best[col_slice])
    cells = cells[cols].astype(np.float32, copy=False)
    bound = _LevelBound(cells)
    keep = bound(most) > best[col_slice[cols]]
    cols, cells = cols[keep], cells[keep]
    if not cols.size:
        return best, density
    bound.keep(keep)
    distinct = _distinct_rows(packed)
    packed, ones = packed[distinct], ones[distinct]
    order = np.argsort(-ones, kind="stable")
    packed, ones = packed[order], ones[order]
    packed, ones = packed[ones > 0], ones[ones > 0]
    unpacked = np.unpackbits(packed, axis=1, count=rows).astype(np.float32)  # only the distinct planes are unpacked
    # The columns split among threads, each searching its share with its own maxima (a thread
    # prunes with what it found; the maxima are the same, found in parallel). BLAS does the
    # work and lets go of the GIL; calibration.threads() is this process's share of the cores.
    parts = min(calibration.threads(), cols.size) if unpacked.size * cols.size >= _THREADED_WORK else 1
    if parts <= 1:
        return _search(unpacked, ones, cols, cells, bound, best, col_slice, chunk), density
    shares = [np.arange(i, cols.size, parts) for i in range(parts)]  # interleaved: every slice in every share
    found = _threads().map(lambda share: _search(unpacked, ones, cols[share], cells[share], bound.subset(share),
                                                 best.copy(), col_slice, chunk), shares)
    return np.maximum.reduce(list(found)), density


# Planes x columns x rows above which a row block's search is split among threads (a few ms of
# BLAS work: a thread's hand-over costs tens of microseconds).
_THREADED_WORK = 1 << 24
_pool: tuple[int, cf.ThreadPoolExecutor] | None = None


def _threads() -> cf.ThreadPoolExecutor:
    """A pool of this process (a forked child makes its own: it inherits no threads)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), cf.ThreadPoolExecutor(max_workers=max(2, calibration.CALIBRATION_THREADS),
                                                    thread_name_prefix="nncc-adc"))
    return _pool[1]


def _search(unpacked: np.ndarray, ones: np.ndarray, cols: np.ndarray, cells: np.ndarray, bound: _LevelBound,
            best: np.ndarray, col_slice: np.ndarray, chunk: int) -> np.ndarray:
    """``best`` raised to the largest sums of the planes ``unpacked`` (most ones first) over the
    columns ``cols`` (their cells ``cells``), each column dropped once its ``bound`` leaves it
    no way above its slice's maximum."""
    for start in range(0, len(unpacked) + chunk, chunk):
        keep = bound(int(ones[start]) if start < len(ones) else 0) > best[col_slice[cols]]
        if not keep.all():
            cols, cells = cols[keep], cells[keep]
            bound.keep(keep)
        if not cols.size or start >= len(unpacked):
            break
        top = (unpacked[start:start + chunk] @ cells.T).max(axis=0)
        slices = col_slice[cols]
        for s in range(len(best)):  # np.maximum.at(best, slices, top), without ufunc.at's per-element cost
            here = top[slices == s]
            if here.size:
                best[s] = max(best[s], float(here.max()))
    return best


# ---------------------------------------------------------------- input vectors of a layer

def conv_patches(x: np.ndarray, w_shape: tuple[int, ...], attrs: dict, out_spatial: tuple[int, ...],
                 picks: np.ndarray) -> np.ndarray:
    """Input patches [V x C x kh*kw] at flat output positions ``picks`` (indices into
    batch x out_h x out_w); group g uses channels g*C/groups .. (g+1)*C/groups - 1.
    1-D convs are treated as 2-D with height 1."""
    if x.ndim == 3:
        x = x[:, :, None, :]
        out_spatial = (1, *out_spatial)
        attrs = _as_2d(attrs)
    k = tuple(w_shape[2:]) if len(w_shape) == 4 else (1, w_shape[2])
    strides = attrs.get("strides", [1, 1])
    dil = attrs.get("dilations", [1, 1])
    pads = _pads(attrs, x.shape[2:], k, strides, dil, out_spatial)
    oh, ow = out_spatial
    run, rest = np.divmod(picks, oh * ow)
    r, c = np.divmod(rest, ow)
    rows = r[:, None] * strides[0] + np.arange(k[0])[None, :] * dil[0]  # [V, kh], padded coordinates
    cols = c[:, None] * strides[1] + np.arange(k[1])[None, :] * dil[1]  # [V, kw]
    _, channels, h, w = x.shape
    if rows.size and cols.size and (rows.max() >= h + pads[0] + pads[2] or cols.max() >= w + pads[1] + pads[3]):
        xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))  # raises IndexError, as it always did
        return xp[run[:, None, None, None], np.arange(channels)[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    # Gathered from the unpadded tensor (no padded copy of the whole activation): one channel
    # vector per (vector, window cell), two index arrays instead of four broadcast ones. Window
    # cells in the padding read any element and are then set to 0, what np.pad put there.
    rows, cols = rows - pads[0], cols - pads[1]
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # [V, kh, kw]
    spatial = (np.clip(rows, 0, h - 1)[:, :, None] * w + np.clip(cols, 0, w - 1)[:, None, :]).reshape(len(picks), -1)
    patches = x.reshape(x.shape[0], channels, h * w)[run[:, None], :, spatial].transpose(0, 2, 1)  # [V, C, kh*kw]
    if not inside.all():
        patches = np.where(inside.reshape(len(picks), 1, -1), patches, np.zeros((), dtype=patches.dtype))
    return np.ascontiguousarray(patches)


def _as_2d(attrs: dict) -> dict:
    out = dict(attrs)
    for key, pad_value in (("strides", 1), ("dilations", 1)):
        if key in attrs:
            out[key] = [pad_value, *attrs[key]]
    if "pads" in attrs:
        out["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
    if "kernel_shape" in attrs:
        out["kernel_shape"] = [1, *attrs["kernel_shape"]]
    return out


def _pads(attrs, in_hw, k, strides, dil, out_hw) -> list[int]:
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i in range(2):
            total = max(0, (out_hw[i] - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - in_hw[i])
            small = total // 2
            pads[i], pads[i + 2] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
        return pads
    if auto == "VALID":
        return [0, 0, 0, 0]
    return list(attrs.get("pads", [0, 0, 0, 0]))


@functools.lru_cache(maxsize=256)
def pick_positions(total: int, limit: int, seed: int = 0) -> np.ndarray:
    """All positions when they are few, else a uniform sample without replacement (seeded).

    Remembered (read-only): every layer of one output size draws the same sample in a given
    run, and drawing it (a shuffle of ``total`` positions) cost ResNet-50's calibration 0.15 s
    over 432 layer-runs that hold 40 distinct draws."""
    picks = np.arange(total) if total <= limit else np.sort(np.random.default_rng(seed).choice(total, size=limit, replace=False))
    picks.setflags(write=False)
    return picks
