"""Weight statistics of UCNN: per filter (or group of G filters), the distinct non-zero weights,
the indirection-table entries, the multiplies and adds of the factorized dot product (see the
module docstring of :mod:`.mapping` for the formulas), and the baseline's run-length coding."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from nncc import native
from nncc.crossbar import max_abs
from nncc.grid import grid_codes

# Filters are processed in chunks of about this many weights: it bounds memory on VGG's fc6,
# and keeps each chunk's sort temporaries (8 MB of int64) small enough for the allocator to
# reuse instead of mapping fresh pages each time (ResNet-50's ucnn compile 1.0 -> 0.9 s against 4M).
CHUNK_ELEMENTS = 1 << 20


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
    # activations summed per multiply -> multiplies (sum = mults): what zero-sum gating needs (cost.py)
    group_sizes: dict[int, int] = dataclasses.field(default_factory=dict, repr=False)

    def pad_entries(self, jump: int | None = None) -> int:
        """Extra entries for jumps longer than 2^jump - 1."""
        return self.padding.get(jump or self.jump_bits, 0)

    def cycles(self, jump: int | None = None) -> int:
        return self.base_cycles + self.pad_entries(jump)  # a padding entry takes its cycle like any other

    def table_bits(self, jump: int | None = None) -> int:
        """Indirection tables (jump + G transition bits per entry) + unique-weight tables: the compressed model."""
        j = jump or self.jump_bits
        return (self.entries + self.pad_entries(j)) * (j + self.group) + self.mults * self.weight_bits

    def mults_performed(self, density: float) -> float:
        """Expected multiplies per position when a multiply is skipped for an all-zero sum of
        activations: a group of n activations, each non-zero with probability ``density``
        (independently), sums to zero with probability (1 - density)^n (post-ReLU activations are
        non-negative, so only all-zero groups sum to zero)."""
        if not self.group_sizes:
            return float(self.mults)
        return float(sum(count * (1.0 - (1.0 - density) ** n) for n, count in self.group_sizes.items()))

    @property
    def nnz(self) -> int:
        return self.filters * self.k - self.zeros

    @property
    def adds(self) -> int:
        return self.act_adds + self.psum_adds

    def add(self, other: WeightStats) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("k", "unique_max", "jump_bits", "group", "weight_bits", "padding", "group_sizes"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.unique_max = max(self.unique_max, other.unique_max)
        for n, count in other.group_sizes.items():
            self.group_sizes[n] = self.group_sizes.get(n, 0) + count


def quantize_codes(weight: np.ndarray, bits: int) -> np.ndarray:
    """Integer codes of ``weight`` on a symmetric per-layer grid of ``bits`` bits (0 stays 0)."""
    w = np.asarray(weight)
    peak = max_abs(w)
    if peak == 0.0 or not np.isfinite(peak):
        return np.zeros(w.shape, dtype=np.int64)
    scale = peak / (2 ** (bits - 1) - 1)
    # Codes of up to 32 bits kept as int32 (half the memory the sorts and counts below walk through).
    return grid_codes(w, scale, np.int32 if bits <= 32 else np.int64)


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
        # Jumps are at most K: each length counted once, then every width priced on the counts
        # (one pass over the weights instead of one per width).
        chunk, counts = _chunk_stats(codes[start:start + rows], group, multipliers)
        total.add(chunk)
        lengths = np.arange(counts.size, dtype=np.int64)
        for j in widths:
            padding[j] += int((counts * (-(-lengths // ((1 << j) - 1)) - 1).clip(min=0)).sum())
    total.padding = padding
    total.jump_bits = min(widths, key=lambda j: (total.table_bits(j), padding[j]))
    return total


def _chunk_stats(codes: np.ndarray, g: int, multipliers: int) -> tuple[WeightStats, np.ndarray]:
    """(The counts of a chunk of filters, its entries counted by jump length)."""
    f, k = codes.shape
    if g == 1 and (compiled := _compiled_single(codes, multipliers)) is not None:
        return compiled
    nonzero = codes != 0
    if g == 1:
        stats, jumps = _chunk_stats_single(codes, nonzero, multipliers)
        return stats, np.bincount(jumps, minlength=1)
    per_filter_unique = _distinct_rows(codes, ignore=0)
    stats = WeightStats(filters=f, k=k, zeros=int(f * k - nonzero.sum()), unique=int(per_filter_unique.sum()),
                        unique_max=int(per_filter_unique.max(initial=0)))
    sizes = np.zeros(1, dtype=np.int64)   # histogram: activations summed per multiply -> multiplies
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
        # filter `level` multiplies once per distinct prefix whose own weight is non-zero,
        # on the sum of the activations under that prefix
        own = active & nz[:, level]
        mults.append(_distinct_rows(np.where(own, prefix, -1), ignore=-1))
        sizes = _add_histograms(sizes, _group_size_histogram(np.where(own, prefix, np.iinfo(np.int64).max)))
    leaf = np.where(active, prefix, np.iinfo(np.int64).max)
    entries = active.sum(axis=1)
    m = np.stack(mults)                                    # [G, blocks]
    stats.entries = int(entries.sum())
    stats.mults = int(m.sum())
    stats.act_adds = int((entries - d1).sum())
    stats.psum_adds = int(np.maximum(m - 1, 0).sum())
    stats.base_cycles = int(np.maximum(entries, -(-m.max(axis=0) // multipliers)).sum())
    stats.group_sizes = {int(n): int(c) for n, c in enumerate(sizes) if n and c}
    # Jumps: positions sorted by (group, position); a stable sort by group keeps positions ascending.
    order = np.argsort(leaf, axis=1, kind="stable")
    ordered = np.take_along_axis(leaf, order, axis=1)
    return stats, np.bincount(_jumps(order, ordered, ordered != np.iinfo(np.int64).max), minlength=1)


KERNELS = "nncc.backends.ucnn._filter_kernels"


def _compiled_single(codes: np.ndarray, multipliers: int) -> tuple[WeightStats, np.ndarray] | None:
    """:func:`_chunk_stats` for G = 1 by the compiled kernel (``_filter_kernels.c``: the same
    counts, each filter's groups found in one pass, not by sorting it), or None where it does
    not apply (not built, codes other than int32, codes spanning more than 2^20 values: its tables would outgrow a cache)."""
    kernel = native.kernels(KERNELS)
    f, k = codes.shape
    if kernel is None or codes.dtype != np.int32 or not codes.size:
        return None
    low, high = int(codes.min()), int(codes.max())
    if high - low >= 1 << 20:
        return None
    sizes, jumps = np.zeros(k + 1, dtype=np.int64), np.zeros(k + 1, dtype=np.int64)
    zeros, unique, unique_max, entries, act_adds, psum_adds, base_cycles = kernel.single_group_stats(
        np.ascontiguousarray(codes), f, low, high - low + 1, multipliers, sizes, jumps)
    stats = WeightStats(filters=f, k=k, zeros=zeros, unique=unique, unique_max=unique_max, entries=entries, mults=unique,
                        act_adds=act_adds, psum_adds=psum_adds, base_cycles=base_cycles)
    stats.group_sizes = {int(n): int(c) for n, c in enumerate(sizes) if n and c}
    return stats, jumps


def _chunk_stats_single(codes: np.ndarray, nonzero: np.ndarray, multipliers: int) -> tuple[WeightStats, np.ndarray]:
    """``_chunk_stats`` for G = 1, from one stable sort of each filter's codes: the distinct
    values, the group sizes and the jumps all follow from it. Codes spanning fewer than 2^16
    values sort as uint16 (numpy sorts those by radix) with a zero weight as the largest key:
    the order an int64 key with int64-max for zeros gives, at a fraction of the time."""
    f, k = codes.shape
    low, high = int(codes.min(initial=0)), int(codes.max(initial=0))
    if high - low < np.iinfo(np.uint16).max:
        keys, sentinel = (codes - low).astype(np.uint16), np.iinfo(np.uint16).max
    else:
        keys, sentinel = codes.astype(np.int64), np.iinfo(np.int64).max
    keys[~nonzero] = sentinel
    order = np.argsort(keys, axis=1, kind="stable")
    ordered = np.sort(keys, axis=1)  # the keys in that order: a radix sort of uint16 is ~5x faster than gathering them by ``order``
    valid = ordered != sentinel
    start = np.ones(ordered.shape, dtype=bool)
    start[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    start &= valid
    unique = start.sum(axis=1)
    entries = valid.sum(axis=1)
    stats = WeightStats(filters=f, k=k, zeros=int(f * k - entries.sum()), unique=int(unique.sum()),
                        unique_max=int(unique.max(initial=0)))
    stats.entries = int(entries.sum())
    stats.mults = int(unique.sum())
    stats.act_adds = int((entries - unique).sum())
    stats.psum_adds = int(np.maximum(unique - 1, 0).sum())
    stats.base_cycles = int(np.maximum(entries, -(-unique // multipliers)).sum())
    sizes = _sizes_of_sorted(start, valid)
    stats.group_sizes = {int(n): int(c) for n, c in enumerate(sizes) if n and c}
    return stats, _jumps(order, ordered, valid)


def _jumps(order: np.ndarray, ordered: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each entry's jump from the previous entry of its group (the first: from -1), for rows
    sorted stably by group (``order``: positions, ``ordered``: their keys)."""
    if order.shape[1] < np.iinfo(np.int32).max:  # positions as int32: half the bytes of argsort's int64 to walk
        order = order.astype(np.int32)
    jumps = order + 1  # from -1: a group's first entry
    same = ordered[:, 1:] == ordered[:, :-1]
    np.subtract(order[:, 1:], order[:, :-1], out=jumps[:, 1:], where=same)
    return jumps[valid]


def _sizes_of_sorted(start: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The group-size histogram of rows already sorted: ``start`` marks each group's first entry."""
    # Valid entries lead each row (no entry sorts last), and every row's first one starts a
    # group: a group runs from its start to the next start, or to the end of its row's entries.
    firsts = np.flatnonzero(start)  # flat index of each group's first entry
    if not firsts.size:
        return np.zeros(1, dtype=np.int64)
    rows, k = firsts // start.shape[1], start.shape[1]
    ends = np.empty_like(firsts)
    ends[:-1] = firsts[1:]
    last = np.ones(firsts.size, dtype=bool)  # the last group of its row ends with the row's entries
    last[:-1] = rows[1:] != rows[:-1]
    ends[last] = rows[last] * k + valid.sum(axis=1)[rows[last]]
    return np.bincount(ends - firsts)


def _group_size_histogram(keys: np.ndarray) -> np.ndarray:
    """Counts of the group sizes of equal keys per row (int64 max = no entry): entry n is the
    number of groups holding n entries."""
    sentinel = np.iinfo(np.int64).max
    ordered = np.sort(keys, axis=1)
    valid = ordered != sentinel
    start = np.ones(ordered.shape, dtype=bool)
    start[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    start &= valid
    return _sizes_of_sorted(start, valid)


def _add_histograms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(max(a.size, b.size), dtype=np.int64)
    out[:a.size] += a
    out[:b.size] += b
    return out


def rlc_bits(codes: np.ndarray, weight_bits: int, run_bits: int) -> int:
    """Eyeriss-style run-length coding of a weight stream: (run of zeros, value) pairs; a run
    longer than 2^run_bits - 1 zeros costs an extra pair (run // 2^run_bits of them; zeros
    after the last value need no pair). Counted from whichever is fewer, the values or the
    zeros: a dense layer has few zero runs (ResNet-50: 0.12 -> 0.02 s)."""
    flat = codes.reshape(-1)
    values = int(np.count_nonzero(flat))
    if 2 * values <= flat.size:
        pos = np.flatnonzero(flat)
        runs = np.empty_like(pos)  # zeros before each value
        runs[:1] = pos[:1]
        np.subtract(pos[1:], pos[:-1], out=runs[1:])
        runs[1:] -= 1
    else:
        zeros = np.flatnonzero(flat == 0)
        ends = np.flatnonzero(np.diff(zeros) != 1)  # index in ``zeros`` of each run's last zero, but the final run's
        runs = np.diff(ends, prepend=-1, append=zeros.size - 1)  # every run's length
        if zeros.size and zeros[-1] == flat.size - 1:
            runs = runs[:-1]  # the stream ends in zeros: no value follows them
    np.right_shift(runs, run_bits, out=runs)  # extra pairs (runs >= 0)
    return int(values + runs.sum()) * (weight_bits + run_bits)
