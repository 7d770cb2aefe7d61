"""Column statistics of one layer's crossbars: what the cells hold, what the calibration inputs
drive through them, and what that provisions.

For each row block (crossbar) of a layer: the largest column sum per slice (the ADC bits),
the columns that hold a non-zero cell (conversions, wires), the crossbars placed (all-zero
blocks get none), the row conductance the inputs see (read energy), and the routing of the
partial sums through an adder tree. ``mapping.map_mvm`` turns these into a CrossbarLayer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nncc.crossbar import CrossbarGeometry, cell_matrix_t, column_slices, logical_blocks, physical_matrix

from . import adc, block_kernels


def levels(n: int, geometry: CrossbarGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Slice of each physical column, and the top cell value of that slice."""
    col_slice = column_slices(n, geometry)
    top = np.array([2 ** b - 1 for b in geometry.slice_bits()], dtype=np.float32)
    return col_slice, top[col_slice]


def block_stats(mats, scale, codes, config) -> dict[str, Any]:
    """Per group, one crossbar row block at a time (a large layer such as VGG's fc6 never
    holds all its cells at once): column sums, non-zero columns, placed crossbars, read conductance."""
    geometry = config.geometry
    X, S = geometry.size, geometry.slices
    k, n = mats[0].shape
    phys_cols = n * geometry.column_factor
    col_slice, level_max = levels(n, geometry)
    st: dict[str, Any] = {"sums": np.zeros(S), "nz_cols": np.zeros(S, dtype=np.int64), "placed": 0, "dac_rows": 0,
                          "read_s": 0.0, "active_rows": 0.0, "logical": 0, "placed_per_cb": np.zeros(-(-phys_cols // X), dtype=np.int64),
                          "live": np.zeros(phys_cols, dtype=bool), "wires": 0, "wire_lengths": 0.0}
    block = _Block(config, col_slice, level_max, n, phys_cols)
    for gi, w in enumerate(mats):
        st["logical"] += logical_blocks(w, X)
        # Routing: a column segment holding a non-zero cell sends a partial sum into its
        # column's adder tree; an all-zero segment (a deleted connection group) sends none.
        stack = np.zeros(phys_cols, dtype=np.int64)
        group_codes = planes = None
        if codes is not None:  # bytes when they fit: the planes of every row block are cut from them
            group_codes = np.ascontiguousarray(codes[gi], dtype=np.uint8 if config.input_bits <= 8 else None)
            if X % 8 == 0:  # row blocks start on a byte of the packed planes: pack the layer's once
                *planes, block_ones = adc.layer_planes(group_codes, config.input_bits, X // 8)
        w_t = block_kernels.transposed_weights(w, geometry, config)
        for r in range(0, k, X):
            # Cells as small integers, transposed ([physical columns, rows]): a column's cells
            # contiguous, and a column-major float buffer for the read conductance without a
            # transposing copy. One block at a time stays in cache. The compiled kernel gives
            # the cells with their column sums, placed crossbars and read conductance, in one pass.
            rows = min(X, k - r)
            cells = None if w_t is None else block_kernels.block_pass(w_t, r, rows, geometry, scale, config)
            if cells is None:
                cells = block_kernels.BlockCells(cell_matrix_t(w[r:r + X], geometry, scale))
            block_planes = None
            if planes is not None:
                b0, b1 = r // 8, -(-(r + X) // 8)
                block_planes = (planes[0][:, b0:b1], planes[1][r:r + X], block_ones[:, r // X])
            block.add(st, stack, cells, None if group_codes is None else group_codes[:, r:r + X], block_planes)
        st["wires"] += int(stack.sum())
        st["wire_lengths"] += float(sum(tree_length(int(h)) * count for h, count in zip(*np.unique(stack[stack > 0], return_counts=True))))
    return st


class _Block:
    """One row block's share of block_stats, from its cells transposed: [physical columns x rows]
    (small integers, ``physical_matrix``'s values)."""

    def __init__(self, config, col_slice, level_max, n, phys_cols):
        self.config, self.col_slice, self.level_max, self.n = config, col_slice, level_max, n
        self.X = config.geometry.size
        self.starts = np.arange(0, phys_cols, self.X)  # first column of each crossbar

    def add(self, st, stack, cells: block_kernels.BlockCells, codes, planes=None) -> None:
        config, X, col_slice = self.config, self.X, self.col_slice
        cells_t, col_sums = cells.cells_t, cells.col_sums
        rows = cells_t.shape[1]
        # Without the kernel's sums, the cells as float32, [physical columns x rows]: their exact
        # integer column sums (one BLAS product; integers below 2^24 are exact in any order) say
        # which columns hold a non-zero cell (cells are >= 0), bound the column sums of the
        # planes and give the weight bound; then the read conductance is computed on them in place.
        cells_f = None
        if col_sums is None:
            cells_f = cells_t.astype(np.float32)
            col_sums = cells_f @ np.ones(rows, dtype=np.float32)
        nz = col_sums > 0
        st["live"] |= nz
        stack += nz
        # A partial parallel read senses every column once per group of rows_parallel rows.
        st["nz_cols"] += np.bincount(col_slice[nz], minlength=config.geometry.slices) * reads(rows, config)
        occupied = cells.placed
        if occupied is None:
            occupied = np.logical_or.reduceat(nz, self.starts) if self.starts.size else np.zeros(0, dtype=bool)
        if not occupied.any():
            # All cells zero: no column sum exceeds what earlier blocks reached (sums are >= 0),
            # and no crossbar is placed to read: nothing to add.
            return
        placed = int(occupied.sum())
        mask = np.repeat(occupied, X)[:nz.size]
        full = bool(mask.all())
        if codes is not None:
            st["sums"], density = adc.slice_sums(codes, cells_t.T, config.input_bits, col_slice, st["sums"],
                                                 col_sums=col_sums.astype(np.float64), cells_t=cells_t if cells_f is None else cells_f,
                                                 planes=planes)
        else:
            density = np.full(rows, 0.5)  # [U] half the bits 1 if unmeasured
            st["sums"] = np.maximum(st["sums"], adc.per_slice_max(col_sums.astype(np.float32), self.n, config.geometry))
        st["placed_per_cb"] += occupied
        st["placed"] += placed
        st["dac_rows"] += rows * placed
        idle = X * placed - int(mask.sum())  # unused columns of a placed crossbar conduct at Roff
        row_g = cells.row_g
        if row_g is None:
            cells_f = cells_t.astype(np.float32) if cells_f is None else cells_f
            row_g = self.row_conductance(cells_f if full else cells_f[mask], mask, full)
        st["read_s"] += float(density @ (row_g + idle * config.g_off))
        st["active_rows"] += float(density.sum()) * placed  # rows whose input bit is 1, per bit

    def row_conductance(self, cells_f, mask, full) -> np.ndarray:
        """Per row, the float32 sum of g_off + cell / top * (g_on - g_off) over the used columns
        (``cells_f``: their cells, float32 [used columns x rows], overwritten).

        The very float32 operations of the one-expression form ``g_off + phys[:, mask] / top *
        (g_on - g_off)``, done in place on one buffer (no temporaries). That form's column
        selection is laid out column-major (numpy's boolean indexing on axis 1), so its row sum
        adds the columns one after another; the buffer is column-major too (the transposed
        cells, row-major), so the float32 sum, hence read_s, is unchanged to the last bit (a
        row-major buffer would sum pairwise)."""
        g = np.asfortranarray(cells_f.T)  # no copy: already column-major
        top = self.level_max if full else self.level_max[mask]
        g_on, g_off = self.config.g_on, self.config.g_off
        if type(g_on) is float and type(g_off) is float:  # python floats act as float32 here, as in the expression
            np.divide(g, top, out=g)
            np.multiply(g, g_on - g_off, out=g)
            np.add(g, g_off, out=g)
        else:
            g = g_off + g / top * (g_on - g_off)
        return g.sum(axis=1)


def packed_stats(mats, scale, codes, config, chunk: int = 256) -> dict[str, Any]:
    """All groups at once for small groups packed block-diagonally (depthwise convs)."""
    geometry = config.geometry
    X, S, bits = geometry.size, geometry.slices, config.input_bits
    w = np.stack(mats)  # [g, k, n]
    g, k, n = w.shape
    col_slice, level_max = levels(n, geometry)
    phys = physical_matrix(w.reshape(g * k, n), geometry, scale).reshape(g, k, -1)
    fast = _pattern_col_max(codes, phys, bits) if codes is not None else None
    if fast is not None:
        col_max, density = fast
    elif codes is not None:
        col_max = np.zeros(phys.shape[2], dtype=np.float32)
        ones = np.zeros((g, k))
        for start in range(0, codes.shape[1], chunk):
            block = codes[:, start:start + chunk]  # [g, V, k]
            planes = np.concatenate([((block >> b) & 1) for b in range(bits)], axis=1).astype(np.float32)
            ones += planes.sum(axis=1)
            np.maximum(col_max, np.matmul(planes, phys).max(axis=(0, 1)), out=col_max)
        density = ones / (codes.shape[1] * bits)
    else:
        col_max, density = phys.sum(axis=1).max(axis=0), np.full((g, k), 0.5)
    nz = np.any(phys != 0, axis=1)  # [g, cols]
    placed = np.any(nz, axis=1)
    g_cells = config.g_off + phys / level_max * (config.g_on - config.g_off)
    row_g = g_cells.sum(axis=2) + (X - phys.shape[2]) * config.g_off  # the crossbar's other columns at Roff
    return {"sums": adc.per_slice_max(col_max, n, geometry),
            "nz_cols": np.array([int(nz[:, col_slice == s].sum()) for s in range(S)], dtype=np.int64) * reads(k, config),
            "active_rows": float(np.sum(density[placed])),
            "live": nz.any(axis=0), "placed_groups": int(placed.sum()), "logical_groups": int(np.any(w != 0, axis=(1, 2)).sum()),
            "dac_rows": int(placed.sum()) * k, "read_s": float(np.sum(density[placed] * row_g[placed]))}


def _pattern_col_max(codes, phys, bits, cells_max: int = 1 << 22):
    """packed_stats' (largest column sum over every input bit plane, 1-bit density per row) for
    groups of few rows (a depthwise 3x3 conv: 9): a plane of a group is one of 2^k row
    patterns, so each group's column sums are computed once per pattern that occurs, not once
    per plane (V x bits of them). Exact: the same integer sums, fewer of them. None where it
    does not apply (more than 12 rows, inputs wider than a byte, no vectors)."""
    g, V, k = codes.shape
    if k > 12 or bits > 8 or V == 0:
        return None
    codes = np.asarray(codes, dtype=np.uint8)  # codes < 2^bits <= 256: exact
    present = np.zeros((g, 1 << k), dtype=bool)
    group = np.arange(g)[:, None]
    plane = np.empty_like(codes)
    for b in range(bits):
        np.right_shift(codes, b, out=plane)
        np.bitwise_and(plane, 1, out=plane)
        packed = np.packbits(plane, axis=2, bitorder="little").astype(np.int64)  # [g, V, ceil(k/8)]
        index = packed[:, :, 0] if packed.shape[2] == 1 else packed[:, :, 0] + (packed[:, :, 1] << 8)
        present[group, index] = True
    patterns = ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(np.float32)  # [2^k, k], row j = bit j
    col_max = np.zeros(phys.shape[2], dtype=np.float32)
    step = max(1, cells_max // ((1 << k) * phys.shape[2]))
    for start in range(0, g, step):
        sums = np.matmul(patterns, phys[start:start + step])  # [groups, 2^k, cols]: integers, exact in float32
        sums[~present[start:start + step]] = 0  # patterns no plane has (sums are >= 0: 0 changes no max)
        np.maximum(col_max, sums.max(axis=(0, 1)), out=col_max)
    ones = adc._popcount(np.bitwise_and(codes, 2 ** bits - 1)).sum(axis=1, dtype=np.int64)  # [g, k] 1 bits per row
    return col_max, ones.astype(np.float64) / (V * bits)


def reads(rows: int, config) -> int:
    """Senses per column and input bit for a block of ``rows`` rows (NeuroSim's partial parallel
    read: rows_parallel rows at a time; 1 when every row is read at once)."""
    return -(-rows // config.rows_parallel)


def tree_length(r: int) -> float:
    """Wire length, in crossbar sides, that one output column of a stack of ``r`` crossbars needs
    to reduce its partial sums through a binary adder tree on an H-tree (as NeuroSim reduces
    sub-array partial sums: AdderTree.cpp, HTree.cpp): level l merges ceil(r / 2^l) pairs whose
    wires span 2^(l-1) sides; plus one side for the result to leave."""
    length, span = 1.0, 1
    while span < r:
        length += -(-r // (2 * span)) * span
        span *= 2
    return length


def add_counts(into: dict[int, int], more: dict[int, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


def adc_units(col_slices: np.ndarray, live: np.ndarray, adc_bits: list[int], config, crossbars: int) -> dict[int, int]:
    """ADCs of ``crossbars`` crossbars with this column layout, by resolution. The columns that
    need converting (not all-zero, and of a slice that needs more than 0 bits) share ADCs
    ``cols_per_adc`` at a time through the column mux, highest resolutions together, each ADC
    at the largest resolution among its columns: ceil(live columns / cols_per_adc) ADCs."""
    if crossbars <= 0:
        return {}
    n = min(len(live), config.crossbar_size, len(col_slices))
    bits = np.asarray(adc_bits, dtype=np.int64)[col_slices[:n]]
    need = np.sort(bits[np.asarray(live[:n], dtype=bool) & (bits > 0)])[::-1]
    # The ADC of each run of cols_per_adc columns (highest first) converts at its first one's bits.
    resolutions, counts = np.unique(need[::config.cols_per_adc], return_counts=True)
    return {int(b): int(c) * crossbars for b, c in zip(resolutions[::-1], counts[::-1])}
