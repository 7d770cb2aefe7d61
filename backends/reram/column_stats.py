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

from nncc.crossbar import CrossbarGeometry, column_slices, logical_blocks, physical_matrix

from . import adc


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
    for gi, w in enumerate(mats):
        st["logical"] += logical_blocks(w, X)
        # Routing: a column segment holding a non-zero cell sends a partial sum into its
        # column's adder tree; an all-zero segment (a deleted connection group) sends none.
        stack = np.zeros(phys_cols, dtype=np.int64)
        for r in range(0, k, X):
            phys = physical_matrix(w[r:r + X], geometry, scale)
            if codes is not None:
                st["sums"], density = adc.slice_sums(codes[gi][:, r:r + X], phys, config.input_bits, col_slice, st["sums"])
            else:
                density = np.full(phys.shape[0], 0.5)  # [U] half the bits 1 if unmeasured
                st["sums"] = np.maximum(st["sums"], adc.per_slice_max(phys.sum(axis=0), n, geometry))
            nz = np.any(phys != 0, axis=0)
            st["live"] |= nz
            stack += nz
            # A partial parallel read senses every column once per group of rows_parallel rows.
            st["nz_cols"] += np.bincount(col_slice[nz], minlength=S) * reads(phys.shape[0], config)
            occupied = np.array([bool(np.any(nz[c:c + X])) for c in range(0, phys_cols, X)])
            if not occupied.any():
                continue
            st["placed_per_cb"] += occupied
            st["placed"] += int(occupied.sum())
            st["dac_rows"] += phys.shape[0] * int(occupied.sum())
            mask = np.repeat(occupied, X)[:phys_cols]
            g_cells = config.g_off + phys[:, mask] / level_max[mask] * (config.g_on - config.g_off)
            idle = X * int(occupied.sum()) - int(mask.sum())  # unused columns of a placed crossbar conduct at Roff
            st["read_s"] += float(density @ (g_cells.sum(axis=1) + idle * config.g_off))
            st["active_rows"] += float(density.sum()) * int(occupied.sum())  # rows whose input bit is 1, per bit
        st["wires"] += int(stack.sum())
        st["wire_lengths"] += float(sum(tree_length(int(h)) * count for h, count in zip(*np.unique(stack[stack > 0], return_counts=True))))
    return st


def packed_stats(mats, scale, codes, config, chunk: int = 256) -> dict[str, Any]:
    """All groups at once for small groups packed block-diagonally (depthwise convs)."""
    geometry = config.geometry
    X, S, bits = geometry.size, geometry.slices, config.input_bits
    w = np.stack(mats)  # [g, k, n]
    g, k, n = w.shape
    col_slice, level_max = levels(n, geometry)
    phys = physical_matrix(w.reshape(g * k, n), geometry, scale).reshape(g, k, -1)
    if codes is not None:
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
    need = sorted((adc_bits[s] for s, on in zip(col_slices[:config.crossbar_size], live) if on and adc_bits[s] > 0), reverse=True)
    out: dict[int, int] = {}
    for start in range(0, len(need), config.cols_per_adc):
        out[need[start]] = out.get(need[start], 0) + crossbars
    return out
