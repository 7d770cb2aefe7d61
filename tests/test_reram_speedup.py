"""reram lowering's fast paths give, bit for bit, what the plain per-block computations give:
cells built once per block as small integers (crossbar.cell_matrices), the vectorized column
statistics (column_stats.block_stats, its read conductance summed in the same float32 order),
the flat-gather conv patches (adc.conv_patches) and the block counts (crossbar.logical_blocks,
placed_crossbars). The references below are the straightforward forms the fast code replaced."""

from __future__ import annotations

import numpy as np
import pytest

from nncc import crossbar
from nncc.backends.reram import adc, column_stats
from nncc.registry import TARGETS
from test_reram_adc import every_column_sum  # the plain computation, kept in one place


def reference_cells(w, geometry, scale):
    """physical_matrix as first written: quantize_weights, slice_codes, concatenate."""
    pos, neg, _ = crossbar.quantize_weights(w, geometry.weight_bits, geometry.encoding, scale)
    parts = []
    for codes in ([pos, neg] if geometry.polarities == 2 else [pos]):
        parts += crossbar.slice_codes(codes, geometry.slice_bits())
    return np.concatenate(parts, axis=1).astype(np.float32)


def reference_block_stats(mats, scale, codes, config):
    """block_stats one row block at a time on float32 cells, numpy reductions as they come."""
    geometry = config.geometry
    X, S = geometry.size, geometry.slices
    k, n = mats[0].shape
    phys_cols = n * geometry.column_factor
    col_slice, level_max = column_stats.levels(n, geometry)
    st = {"sums": np.zeros(S), "nz_cols": np.zeros(S, dtype=np.int64), "placed": 0, "dac_rows": 0, "read_s": 0.0,
          "active_rows": 0.0, "logical": 0, "placed_per_cb": np.zeros(-(-phys_cols // X), dtype=np.int64),
          "live": np.zeros(phys_cols, dtype=bool), "wires": 0, "wire_lengths": 0.0}
    for gi, w in enumerate(mats):
        st["logical"] += sum(bool(np.any(w[r:r + X, c:c + X])) for r in range(0, k, X) for c in range(0, n, X))
        stack = np.zeros(phys_cols, dtype=np.int64)
        for r in range(0, k, X):
            phys = reference_cells(w[r:r + X], geometry, scale)
            if codes is not None and len(codes[gi]):
                st["sums"], density = every_column_sum(codes[gi][:, r:r + X], phys, config.input_bits, col_slice, st["sums"])
            else:
                density = np.full(phys.shape[0], 0.5)
                if codes is None:
                    st["sums"] = np.maximum(st["sums"], adc.per_slice_max(phys.sum(axis=0), n, geometry))
            nz = np.any(phys != 0, axis=0)
            st["live"] |= nz
            stack += nz
            st["nz_cols"] += np.bincount(col_slice[nz], minlength=S) * column_stats.reads(phys.shape[0], config)
            occupied = np.array([bool(np.any(nz[c:c + X])) for c in range(0, phys_cols, X)])
            if not occupied.any():
                continue
            st["placed_per_cb"] += occupied
            st["placed"] += int(occupied.sum())
            st["dac_rows"] += phys.shape[0] * int(occupied.sum())
            mask = np.repeat(occupied, X)[:phys_cols]
            g_cells = config.g_off + phys[:, mask] / level_max[mask] * (config.g_on - config.g_off)
            idle = X * int(occupied.sum()) - int(mask.sum())
            st["read_s"] += float(density @ (g_cells.sum(axis=1) + idle * config.g_off))
            st["active_rows"] += float(density.sum()) * int(occupied.sum())
        st["wires"] += int(stack.sum())
        st["wire_lengths"] += float(sum(column_stats.tree_length(int(h)) * c
                                        for h, c in zip(*np.unique(stack[stack > 0], return_counts=True))))
    return st


def assert_same(got, want, where=""):
    assert got.keys() == want.keys()
    for key in want:
        a, b = np.asarray(got[key]), np.asarray(want[key])
        assert a.shape == b.shape and np.array_equal(a, b), f"{where} {key}: {a} != {b}"


SETTINGS = [{}, {"cell_bits": 1}, {"cell_bits": 4, "crossbar_size": 64}, {"input_bits": 12}, {"input_bits": 4},
            {"weight_bits": 6, "cell_bits": 4}, {"weight_encoding": "offset"}, {"crossbar_size": 32, "parallel_read": 8},
            {"weight_scale": "pow2"}]


@pytest.mark.parametrize("sets", SETTINGS)
def test_block_stats_equal_the_per_block_reference(sets):
    config = TARGETS.create("reram").configure(None, dict(sets)).config
    rng = np.random.default_rng(len(str(sets)))
    for trial in range(6):
        g = int(rng.choice([1, 2]))
        k, n = int(rng.integers(1, 300)), int(rng.integers(1, 80))
        mats = [(rng.standard_normal((k, n)) * rng.choice([1.0, 0.01])).astype(rng.choice([np.float32, np.float64]))
                for _ in range(g)]
        for m in mats:
            m[rng.random(m.shape) < rng.choice([0.0, 0.5, 0.95])] = 0
            if trial == 1:
                m[: k // 2] = 0  # all-zero row blocks and crossbars: not placed
                m[:, : n // 2] = 0
        if trial == 2:
            mats = [np.zeros_like(m) for m in mats]
        scale = crossbar.layer_scale(float(max(np.abs(m).max() for m in mats)), config.geometry)
        codes = None
        if trial % 3:
            codes = (rng.random((g, int(rng.integers(1, 400)), k)) ** rng.choice([1, 4]) * 2 ** config.input_bits).astype(np.int64)
            codes[rng.random(codes.shape) < 0.3] = 0
        assert_same(column_stats.block_stats(mats, scale, codes, config),
                    reference_block_stats(mats, scale, codes, config), f"{sets} trial {trial}")


def test_read_conductance_is_summed_in_the_reference_order():
    """The float32 row sums of the read conductance depend on the order of the additions: a
    buffer laid out differently from the reference's column selection changes read_s."""
    config = TARGETS.create("reram").configure(None, {}).config
    rng = np.random.default_rng(3)
    w = rng.standard_normal((128, 300)).astype(np.float32)
    got = column_stats.block_stats([w], float(np.abs(w).max()), None, config)["read_s"]
    assert got == reference_block_stats([w], float(np.abs(w).max()), None, config)["read_s"]


@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_cells_equal_quantize_then_slice(encoding):
    rng = np.random.default_rng(4)
    for cell_bits, weight_bits in [(2, 8), (1, 8), (3, 8), (4, 12), (2, 16)]:
        geometry = crossbar.CrossbarGeometry(64, cell_bits, weight_bits, encoding)
        w = rng.standard_normal((150, 37)).astype(np.float32)
        w[rng.random(w.shape) < 0.3] = 0
        for scale in (float(np.abs(w).max()), 0.5 * float(np.abs(w).max()), 0.0, None):
            want = reference_cells(w, geometry, scale if scale is not None else float(np.abs(w).max()))
            cells, cells_t = crossbar.cell_matrices(w, geometry, scale)
            assert np.array_equal(cells, want) and np.array_equal(cells_t, want.T)
            assert np.array_equal(crossbar.physical_matrix(w, geometry, scale), want)


def test_block_counts_equal_the_per_block_loops():
    rng = np.random.default_rng(5)
    geometry = crossbar.CrossbarGeometry(32)
    for _ in range(20):
        w = rng.standard_normal((int(rng.integers(1, 150)), int(rng.integers(1, 90))))
        w[rng.random(w.shape) < rng.choice([0.5, 0.99])] = 0
        x = geometry.size
        want = sum(bool(np.any(w[r:r + x, c:c + x])) for r in range(0, w.shape[0], x) for c in range(0, w.shape[1], x))
        assert crossbar.logical_blocks(w, x) == want
        phys = reference_cells(w, geometry, float(np.abs(w).max()))
        placed = sum(sum(bool(np.any(nz[c:c + x])) for c in range(0, phys.shape[1], x))
                     for nz in (np.any(phys[r:r + x] != 0, axis=0) for r in range(0, w.shape[0], x)))
        assert crossbar.placed_crossbars(w, geometry) == placed


def reference_patches(x, w_shape, attrs, out_spatial, picks):
    """conv_patches as first written: pad the whole tensor, then a 4-index gather (2-D)."""
    k = tuple(w_shape[2:])
    strides, dil = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    pads = adc._pads(attrs, x.shape[2:], k, strides, dil, out_spatial)
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    run, rest = np.divmod(picks, out_spatial[0] * out_spatial[1])
    r, c = np.divmod(rest, out_spatial[1])
    rows = r[:, None] * strides[0] + np.arange(k[0])[None, :] * dil[0]
    cols = c[:, None] * strides[1] + np.arange(k[1])[None, :] * dil[1]
    ch = np.arange(x.shape[1])
    return xp[run[:, None, None, None], ch[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]].reshape(len(picks), x.shape[1], -1)


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_patches_equal_pad_then_gather(auto_pad):
    rng = np.random.default_rng(6)
    for _ in range(30):
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        h, w = (int(v) for v in rng.integers(3, 10, 2))
        strides, dil = [int(v) for v in rng.integers(1, 3, 2)], [int(v) for v in rng.integers(1, 3, 2)]
        attrs = {"strides": strides, "dilations": dil}
        if auto_pad == "NOTSET":
            attrs["pads"] = [int(v) for v in rng.integers(0, 3, 4)]
            p = attrs["pads"]
        else:
            attrs["auto_pad"] = auto_pad
            p = [0, 0, 0, 0]
        if auto_pad.startswith("SAME"):
            oh, ow = -(-h // strides[0]), -(-w // strides[1])
        else:
            oh = (h + p[0] + p[2] - (kh - 1) * dil[0] - 1) // strides[0] + 1
            ow = (w + p[1] + p[3] - (kw - 1) * dil[1] - 1) // strides[1] + 1
        if oh < 1 or ow < 1:
            continue
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        picks = adc.pick_positions(2 * oh * ow, 40, seed=1)
        got = adc.conv_patches(x, (4, 3, kh, kw), attrs, (oh, ow), picks)
        want = reference_patches(x, (4, 3, kh, kw), attrs, (oh, ow), picks)
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_depthwise_pattern_search_equals_every_plane():
    """packed_stats' per-pattern column sums (groups of <= 12 rows) against every plane's."""
    rng = np.random.default_rng(7)
    for g, k, bits in [(40, 9, 8), (7, 1, 8), (25, 12, 4), (3, 4, 1)]:
        phys = rng.integers(0, 4, (g, k, 8)).astype(np.float32)
        phys[rng.random(phys.shape) < 0.3] = 0
        codes = (rng.random((g, 300, k)) ** 3 * 2 ** bits).astype(np.int64)
        planes = np.concatenate([((codes >> b) & 1) for b in range(bits)], axis=1).astype(np.float32)
        want_max = np.matmul(planes, phys).max(axis=(0, 1))
        want_density = planes.sum(axis=1).astype(np.float64) / (codes.shape[1] * bits)  # float64, as packed_stats' counts
        got_max, got_density = column_stats._pattern_col_max(codes, phys, bits, cells_max=1 << 12)  # several group chunks
        assert np.array_equal(got_max, want_max) and np.array_equal(got_density, want_density)
    assert column_stats._pattern_col_max(np.zeros((2, 5, 13), np.int64), np.zeros((2, 13, 8), np.float32), 8) is None
