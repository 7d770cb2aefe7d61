"""reram's compiled row-block kernel (backends/reram/_block_kernels.c) computes numpy's figures
to the last bit: the cells, column sums, placed crossbars and read conductance of a block on
random and edge-case weights across geometries, and every figure of whole reports on zoo models
(kernel on against NNCC_NUMPY_KERNELS=1). The kernel is built at install wherever a C compiler
is (CI has one): its absence there is a failure, not a skip."""

from __future__ import annotations

import numpy as np
import pytest
from native_kernels import kernel_checks

from nncc import models
from nncc.backends.reram import block_kernels, column_stats
from nncc.crossbar import cell_matrix_t
from nncc.driver import CompileOptions, compile_model
from nncc.registry import TARGETS

BUILT, needs_kernel, test_kernel_is_built_where_a_compiler_is = kernel_checks(block_kernels.MODULE, "backends/reram/_block_kernels.c")


def numpy_block(w, start, rows, geometry, scale, config):
    """What column_stats computes without the kernel, for the block of ``rows`` rows at ``start``."""
    cells_t = cell_matrix_t(w[start:start + rows], geometry, scale)
    cells_f = cells_t.astype(np.float32)
    col_sums = cells_f @ np.ones(rows, dtype=np.float32)
    X = geometry.size
    placed = np.logical_or.reduceat(col_sums > 0, np.arange(0, len(col_sums), X))
    mask = np.repeat(placed, X)[:len(col_sums)]
    _, level_max = column_stats.levels(w.shape[1], geometry)
    block = column_stats._Block(config, None, level_max, w.shape[1], len(col_sums))
    row_g = block.row_conductance(cells_f if mask.all() else cells_f[mask], mask, bool(mask.all())) if placed.any() else None
    return cells_t, col_sums.astype(np.int64), placed, row_g


def weights(kind: str, k: int, n: int, rng) -> np.ndarray:
    w = rng.standard_normal((k, n)).astype(np.float32)
    if kind == "pruned":  # whole rows, columns and crossbars of zeros, and -0.0
        w[:, : n // 3] = 0.0
        w[rng.random((k, n)) < 0.5] = -0.0
    elif kind == "ties":  # with scale 255 and 8-bit codes, each code lies halfway between two: rint's ties (to even)
        w = (rng.integers(-250, 250, (k, n)) + 0.5).astype(np.float32)
    elif kind == "tiny":  # below half a code step: all codes 0 but the largest
        w *= np.float32(1e-4)
        w[0, 0] = 1.0
    return w


@needs_kernel
@pytest.mark.parametrize("kind", ["normal", "pruned", "ties", "tiny"])
@pytest.mark.parametrize("sets", [{}, {"cell_bits": 1}, {"cell_bits": 3, "crossbar_size": 64}, {"cell_bits": 4, "weight_bits": 12},
                                  {"weight_encoding": "offset"}, {"crossbar_size": 100, "weight_bits": 6},
                                  {"weight_scale": "pow2", "r_off_ratio": 7.0}])
def test_block_equals_numpy(kind, sets):
    config = TARGETS.create("reram").configure(None, sets).config
    geometry = config.geometry
    rng = np.random.default_rng(len(kind) * 31 + len(sets))
    k, n = 300, 70  # a partial last row block, columns that do not fill the last crossbar
    w = weights(kind, k, n, rng)
    scale = float(np.abs(w).max()) if kind != "ties" else 255.0
    w_t = block_kernels.transposed_weights(w, geometry, config)
    X = geometry.size
    for start in range(0, k, X):
        rows = min(X, k - start)
        got = block_kernels.block_pass(w_t, start, rows, geometry, scale, config)
        cells_t, col_sums, placed, row_g = numpy_block(w, start, rows, geometry, scale, config)
        np.testing.assert_array_equal(got.cells_t, cells_t)
        np.testing.assert_array_equal(got.col_sums, col_sums)
        np.testing.assert_array_equal(got.placed, placed)
        if row_g is not None:
            assert got.row_g.dtype == np.float32
            np.testing.assert_array_equal(got.row_g, row_g)  # bit for bit


@needs_kernel
def test_out_of_range_weights_go_to_numpy():
    config = TARGETS.create("reram").configure(None, {}).config
    w = np.ones((8, 4), dtype=np.float32)
    w_t = block_kernels.transposed_weights(w, config.geometry, config)
    w_t[1, 3] = np.nan
    assert block_kernels.block_pass(w_t, 0, 8, config.geometry, 1.0, config) is None
    w_t[1, 3] = 1e30  # a code far above 65535
    assert block_kernels.block_pass(w_t, 0, 8, config.geometry, 1.0, config) is None
    assert block_kernels.block_pass(w_t, 0, 8, config.geometry, 0.0, config) is None  # a zero scale
    assert block_kernels.transposed_weights(w.astype(np.float64), config.geometry, config) is None  # numpy's float64 codes


@needs_kernel
@pytest.mark.parametrize("name, sets", [("lenet5", {}), ("convnet", {"cell_bits": 1}), ("tdnn", {"weight_encoding": "offset"}),
                                        ("lenet_caffe", {"crossbar_size": 64, "cell_bits": 4})])
def test_reports_equal_numpy(tmp_path, monkeypatch, name, sets):
    """Every total and every layer row of a compile, kernel on and off."""
    path = models.export(name, tmp_path / f"{name}.onnx")

    def report():
        target = TARGETS.create("reram").configure(None, sets)
        return compile_model(path, target, [], CompileOptions(verify_samples=0)).report

    with_kernel = report()
    monkeypatch.setenv("NNCC_NUMPY_KERNELS", "1")
    assert block_kernels.compiled() is None
    without = report()
    assert with_kernel["totals"] == without["totals"]
    assert with_kernel["layers"] == without["layers"]


@needs_kernel
@pytest.mark.parametrize("bits", [1, 4, 8, 12, 16])
@pytest.mark.parametrize("signed", [False, True])
def test_input_codes_are_numpys(bits, signed, monkeypatch):
    """The sampled input vectors' codes (adc.quantize_inputs): float32 x / scale * levels, rint,
    clip, two's complement, as numpy computes them, on ties, values beyond the range, -0.0,
    infinities; a NaN leaves them to numpy."""
    from nncc.backends.reram import adc

    rng = np.random.default_rng(bits)
    levels = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
    x = rng.normal(0.0, 0.6, (37, 5, 9)).astype(np.float32)
    x.flat[:40] = (np.arange(40) - 20) / max(levels, 1) * 0.5  # exact halves of a step: ties to even
    x.flat[40:44] = [-0.0, 3.5, -7.25, 1e30]
    x.flat[44:46] = [np.inf, -np.inf]
    for scale in (1.0, 0.37, 1e-30):
        kernel = adc.quantize_inputs(x, bits, scale, signed)
        with monkeypatch.context() as m, np.errstate(invalid="ignore", over="ignore"):
            m.setenv("NNCC_NUMPY_KERNELS", "1")
            expected = adc.quantize_inputs(x, bits, scale, signed)
        assert kernel.dtype == expected.dtype and np.array_equal(kernel, expected), (scale, signed)
    x.flat[7] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):
        with_nan = adc.quantize_inputs(x, bits, 0.5, signed)
        monkeypatch.setenv("NNCC_NUMPY_KERNELS", "1")
        assert np.array_equal(with_nan, adc.quantize_inputs(x, bits, 0.5, signed))


@needs_kernel
@pytest.mark.parametrize("bits", [1, 3, 8])
@pytest.mark.parametrize("rows, block_bytes", [(64, 8), (133, 16), (7, 1), (4608, 16)])
def test_layer_planes_are_numpys(bits, rows, block_bytes, monkeypatch):
    """A layer's packed bit planes, their 1 bits per row and per row block: the one-pass kernel
    gives numpy's arrays (rows not a multiple of 8 included, codes wider than ``bits``)."""
    from nncc.backends.reram import adc

    codes = np.random.default_rng(rows + bits).integers(0, 256, (37, rows), dtype=np.uint8)
    codes[0] = 0
    codes[1] = 255
    kernel = adc.layer_planes(codes, bits, block_bytes)
    monkeypatch.setenv("NNCC_NUMPY_KERNELS", "1")
    expected = adc.layer_planes(codes, bits, block_bytes)
    for got, want in zip(kernel, expected):
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


@needs_kernel
@pytest.mark.parametrize("top, shape", [(3, (40, 128)), (15, (7, 33)), (1, (5, 9)), (0, (4, 16)), (3, (0, 128))])
def test_level_counts_are_numpys(top, shape, monkeypatch):
    """The search's bound counts each column's cells by level, highest first: the kernel's
    histogram gives numpy's bincount."""
    from nncc.backends.reram import adc

    cells = np.random.default_rng(top).integers(0, top + 1, shape).astype(np.float32)
    kernel = adc._LevelBound(cells)
    monkeypatch.setenv("NNCC_NUMPY_KERNELS", "1")
    expected = adc._LevelBound(cells)
    assert list(kernel.levels) == list(expected.levels)
    assert kernel.counts.dtype == expected.counts.dtype and np.array_equal(kernel.counts, expected.counts)
