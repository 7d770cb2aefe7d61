"""The core's compiled grid kernels (compiler/_grid_kernels.c) give numpy's figures to the last
bit: grid codes (ucnn), grid values and their largest error (legalize-core-ops'
quantize_symmetric), per-channel scaling (fold-batchnorm), on random weights with the edge
cases that matter (ties, zeros, negative zero, NaN, infinity, codes outside int32) and on the
zoo's, through whole passes and reports. Built at install wherever a C compiler is."""

from __future__ import annotations

import numpy as np
import pytest
from native_kernels import kernel_checks

from nncc import grid

BUILT, needs_kernel, test_kernel_is_built_where_a_compiler_is = kernel_checks(grid.KERNELS, "compiler/_grid_kernels.c")


def weights(kind: str, rng) -> np.ndarray:
    w = (rng.standard_normal((61, 7, 3, 3)) * 0.05).astype(np.float32)
    if kind == "ties":  # exact halves of the grid step: rounded to even, as np.rint does
        w = (rng.integers(-255, 256, w.shape) * 0.5).astype(np.float32)
    elif kind == "zeros":
        w[rng.random(w.shape) < 0.7] = 0.0
        w[0, 0, 0, :2] = -0.0
    elif kind == "nan":
        w[3, 2, 1, 1] = np.nan
    elif kind == "inf":
        w[1, 1, 1, 1] = -np.inf
    return w


@pytest.fixture
def numpy_only(monkeypatch):
    def run(fn, *args, **kwargs):
        with monkeypatch.context() as m:
            m.setenv("NNCC_NUMPY_KERNELS", "1")
            return fn(*args, **kwargs)
    return run


def same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@needs_kernel
@pytest.mark.parametrize("kind", ["plain", "ties", "zeros", "nan", "inf"])
@pytest.mark.parametrize("scale", [0.5, 0.05 / 127, 3.7e-9, 1e30, -0.01])
def test_grid_codes_and_values_are_numpys(kind, scale, numpy_only):
    w = weights(kind, np.random.default_rng(0))
    with np.errstate(invalid="ignore"):  # numpy's own warnings on NaN, infinity, codes beyond int32
        q, err = grid.grid_values(w, scale)
        q_np, err_np = numpy_only(grid.grid_values, w, scale)
        assert same(q, q_np)
        assert err == err_np or (np.isnan(err) and np.isnan(err_np))
        assert same(grid.grid_codes(w, scale), numpy_only(grid.grid_codes, w, scale))
        assert same(grid.grid_codes(w, scale, np.int64), numpy_only(grid.grid_codes, w, scale, np.int64))


def test_grid_values_by_numpy_are_the_whole_array_formula_in_any_chunk(numpy_only):
    """numpy's path takes the weights a cache-sized chunk at a time: the same values and error as
    the whole-array formula, for every float dtype (the kernel takes float32 only)."""
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float16, np.float64):
        w = (rng.standard_normal((37, 11, 3, 3)) * 0.1).astype(dtype)
        scale = float(np.max(np.abs(w))) / 127
        whole = (np.round(w.astype(np.float64) / scale) * scale).astype(dtype)
        for chunk in (64, 1000, 1 << 16):
            q, err = numpy_only(grid.grid_values, w, scale, chunk=chunk)
            assert same(q, whole)
            assert err == float(np.max(np.abs(whole.astype(np.float64) - w.astype(np.float64))))


@pytest.mark.parametrize("shape, axis", [((64, 3, 7, 7), 0), ((512, 256, 3, 3), 0), ((2048, 1000), 1), ((16, 8, 3), 1),
                                         ((7,), 0), ((4, 5, 6), 2)])
def test_scaled_along_is_one_float64_product_rounded_back(shape, axis, numpy_only):
    """Kernel and numpy's blockwise product (one small float64 buffer) both equal the
    whole-tensor float64 product rounded back, bit for bit."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal(shape).astype(np.float32)
    scale = rng.uniform(0.01, 5.0, shape[axis])
    factors = scale.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    expected = np.multiply(weight, factors, dtype=np.float64).astype(np.float32)
    assert same(grid.scaled_along(weight, scale, axis), expected)
    assert same(numpy_only(grid.scaled_along, weight, scale, axis, block_elements=4096), expected)
    transposed = np.asfortranarray(weight)  # not C-ordered: the kernel reads a contiguous copy
    assert same(grid.scaled_along(transposed, scale, axis), expected)


@needs_kernel
@pytest.mark.parametrize("target", ["ucnn", "truenorth", "reram"])
def test_zoo_reports_are_the_same_with_the_kernels_off(target, monkeypatch):
    """fold-batchnorm, legalize-core-ops and ucnn's codes on a real model: every figure of the
    report the same with the kernels as with numpy."""
    from nncc import models
    from nncc.driver import CompileOptions, compile_model
    from nncc.registry import TARGETS

    path = models.bundled_path("lenet5")

    def report():
        result = compile_model(path, TARGETS.get(target).configure(None, {}), [], CompileOptions(verify_samples=0))
        passes = [{k: v for k, v in record.items() if k != "time_s"} for record in result.report["passes"]]
        return result.report["totals"], result.report["layers"], passes

    kernel = report()
    monkeypatch.setenv("NNCC_NUMPY_KERNELS", "1")
    assert report() == kernel


@needs_kernel
def test_strided_blocks_are_read_in_place_with_numpys_figures(numpy_only):
    """A block cut out of a layer's weight (channel ranges of a conv, a column range of a
    matrix, a transposed or reversed view) is quantized as its contiguous copy is."""
    w = weights("zeros", np.random.default_rng(3))
    fc = np.random.default_rng(4).standard_normal((300, 70)).astype(np.float32)
    scale = float(np.max(np.abs(w))) / 127
    for part in (w[10:40, 2:5], w[:, 3:4], w[5:6, :, 1:, ::2], fc[17:200, 40:70], fc.T[3:9], fc[::-1, ::3]):
        assert not part.flags.c_contiguous
        q, err = grid.grid_values(part, scale)
        q_np, err_np = numpy_only(grid.grid_values, np.ascontiguousarray(part), scale)
        assert same(q, q_np) and err == err_np
        assert same(grid.grid_codes(part, scale), numpy_only(grid.grid_codes, np.ascontiguousarray(part), scale))
