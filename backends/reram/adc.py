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

import math

import numpy as np

from nncc.crossbar import CrossbarGeometry, column_slices


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
    """Activation codes as unsigned integers 0 .. 2^bits - 1 (two's complement when signed)."""
    if scale <= 0:
        return np.zeros(x.shape, dtype=np.int64)
    if signed:
        q = np.clip(np.rint(x / scale * (2 ** (bits - 1) - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(np.int64)
        return q & (2 ** bits - 1)
    return np.clip(np.rint(x / scale * (2 ** bits - 1)), 0, 2 ** bits - 1).astype(np.int64)


def _distinct_rows(planes: np.ndarray) -> np.ndarray:
    """The distinct rows of a 0/1 matrix, in no particular order: rows packed to bytes and
    compared as fixed-width byte strings (much faster than numpy's row-wise unique)."""
    packed = np.packbits(planes, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first = np.unique(keys, return_index=True)
    return planes[first]


def _bit_planes(codes: np.ndarray, bits: int) -> np.ndarray:
    """[V x rows] codes below 2^bits -> [V*bits x rows] 0/1 planes (in no particular order)."""
    if bits <= 8:  # one byte per code: numpy unpacks the bits in a single pass
        unpacked = np.unpackbits(codes.astype(np.uint8)[..., None], axis=-1)[..., 8 - bits:]  # [V x rows x bits]
        return np.ascontiguousarray(unpacked.transpose(2, 0, 1)).reshape(-1, codes.shape[1])
    return np.concatenate([((codes >> b) & 1) for b in range(bits)]).astype(np.uint8)


class _ColumnBound:
    """The most a plane with ``p`` ones can add up in each column: the sum of its ``p`` largest
    cells, from how many cells of each level the column holds (cells are small integers)."""

    def __init__(self, phys: np.ndarray):
        top = int(phys.max(initial=0))
        self.counts = [(phys == level).sum(axis=0) for level in range(top, 0, -1)]  # highest level first

    def __call__(self, ones: int, cols: np.ndarray) -> np.ndarray:
        left = np.full(cols.size, ones, dtype=np.int64)
        bound = np.zeros(cols.size)
        for level, count in zip(range(len(self.counts), 0, -1), self.counts):
            take = np.minimum(count[cols], left)
            bound += level * take
            left -= take
        return bound


def slice_sums(codes: np.ndarray, phys: np.ndarray, bits: int, col_slice: np.ndarray, floor: np.ndarray,
               chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For one crossbar row block: per slice, the larger of ``floor`` (what earlier row blocks
    reached) and this block's largest column sum over the input vectors ``codes`` [V x rows]
    and all their bit planes; and the density of 1 bits per row (for the read energy).

    Exact -- the figures of computing every column sum of every plane -- but faster: equal
    planes count once, planes go most ones first, and a column leaves the computation as soon
    as no remaining plane can lift it above its slice's maximum so far (a plane with p ones
    adds at most the column's p largest cells). Column sums are integers below 2^24: float32
    is exact."""
    best = np.array(floor, dtype=np.float64)
    rows = phys.shape[0]
    if len(codes) == 0:
        return best, np.full(rows, 0.5)
    planes = _bit_planes(codes, bits)
    density = planes.sum(axis=0, dtype=np.float64) / len(planes)
    planes = _distinct_rows(planes)
    ones = planes.sum(axis=1, dtype=np.int64)
    order = np.argsort(-ones, kind="stable")
    planes, ones = planes[order], ones[order]
    planes, ones = planes[ones > 0], ones[ones > 0]
    if not len(planes):
        return best, density
    bound = _ColumnBound(phys)
    cells = phys.astype(np.float32)
    cols = np.arange(phys.shape[1])
    cols = cols[bound(int(ones[0]), cols) > best[col_slice]]
    for start in range(0, len(planes), chunk):
        if not cols.size:
            break
        sums = planes[start:start + chunk].astype(np.float32) @ cells[:, cols]
        np.maximum.at(best, col_slice[cols], sums.max(axis=0))
        rest = int(ones[start + chunk]) if start + chunk < len(ones) else 0
        cols = cols[bound(rest, cols) > best[col_slice[cols]]]
    return best, density


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
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh, ow = out_spatial
    run, rest = np.divmod(picks, oh * ow)
    r, c = np.divmod(rest, ow)
    rows = r[:, None] * strides[0] + np.arange(k[0])[None, :] * dil[0]
    cols = c[:, None] * strides[1] + np.arange(k[1])[None, :] * dil[1]
    channels = np.arange(x.shape[1])
    patches = xp[run[:, None, None, None], channels[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    return patches.reshape(len(picks), x.shape[1], -1)


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


def pick_positions(total: int, limit: int, seed: int = 0) -> np.ndarray:
    """All positions when they are few, else a uniform sample without replacement (seeded)."""
    if total <= limit:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=limit, replace=False))
