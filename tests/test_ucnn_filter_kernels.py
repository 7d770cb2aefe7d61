"""ucnn's compiled filter statistics (backends/ucnn/_filter_kernels.c) count what numpy's sort
counts: every field of filter_stats on random codes of every shape that matters (zeros, few
values, many, negative, one filter, wide codes), and every figure of whole reports on zoo
models, kernel on against NNCC_NUMPY_KERNELS=1. Built at install wherever a C compiler is."""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest
from native_kernels import kernel_checks

from nncc import models, native
from nncc.backends.ucnn import weight_stats
from nncc.driver import CompileOptions, compile_model
from nncc.registry import TARGETS

BUILT, needs_kernel, test_kernel_is_built_where_a_compiler_is = kernel_checks(weight_stats.KERNELS, "backends/ucnn/_filter_kernels.c")


def codes_of(kind: str, rng) -> np.ndarray:
    if kind == "sparse":
        c = rng.integers(-127, 128, (37, 300))
        c[rng.random(c.shape) < 0.8] = 0
    elif kind == "few":  # a handful of values: long groups, long jumps
        c = rng.choice([-3, 0, 2, 5], (64, 1000))
    elif kind == "wide":  # 16-bit codes
        c = rng.integers(-32767, 32768, (9, 4000))
    elif kind == "one-filter":
        c = rng.integers(-7, 8, (1, 25))
    elif kind == "all-zero":
        c = np.zeros((5, 40))
    else:
        c = rng.integers(-127, 128, (200, 576))
    return c.astype(np.int32)


@needs_kernel
@pytest.mark.parametrize("kind", ["dense", "sparse", "few", "wide", "one-filter", "all-zero"])
@pytest.mark.parametrize("multipliers, index_bits", [(1, 0), (4, 0), (3, 4)])
def test_filter_stats_equal_numpy(monkeypatch, kind, multipliers, index_bits):
    codes = codes_of(kind, np.random.default_rng(len(kind) + multipliers))
    compiled = weight_stats.filter_stats(codes, 1, 8, index_bits, multipliers)
    monkeypatch.setenv("NNCC_NUMPY_KERNELS", "1")
    assert native.kernels(weight_stats.KERNELS) is None
    sorted_ = weight_stats.filter_stats(codes, 1, 8, index_bits, multipliers)
    assert dataclasses.asdict(compiled) == dataclasses.asdict(sorted_)


@needs_kernel
@pytest.mark.parametrize("name, sets", [("lenet5", {}), ("convnet", {"multipliers_per_pe": 4}), ("tdnn", {"index_bits": 3})])
def test_reports_equal_numpy(tmp_path, monkeypatch, name, sets):
    path = models.export(name, tmp_path / f"{name}.onnx")

    def report():
        return compile_model(path, TARGETS.create("ucnn").configure(None, sets), [], CompileOptions(verify_samples=0)).report

    with_kernel = report()
    monkeypatch.setenv("NNCC_NUMPY_KERNELS", "1")
    without = report()
    assert with_kernel["totals"] == without["totals"]
    assert with_kernel["layers"] == without["layers"]
