"""The A100 preset, the single-GEMM rows and the wider leave-one-out of ``sparse-tc``'s fidelity module.

As in tests/test_fidelity_references.py, nothing here asserts how close nncc comes to a published
figure: that is the fidelity table's to print. What is asserted: the A100 preset is the spec sheet's
arithmetic, the sparse path never beats the math ratio the format allows, and the leave-one-out
tables have the shape the references and README quote.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from nncc.backends.sparse_tc import config as stc_config
from nncc.backends.sparse_tc import cost, fidelity
from nncc.backends.sparse_tc.config import A100, SparseTcConfig, a100


def test_a100_preset_names_only_fields_and_gives_the_spec_sheet_peaks():
    fields = {f.name for f in dataclasses.fields(SparseTcConfig)}
    assert set(A100) <= fields
    c = a100()
    assert 2 * c.peak_fma_per_s / 1e12 == pytest.approx(312.0, rel=1e-3)   # dense FP16, whitepaper
    assert c.sm_count * c.cuda_fma_per_sm_cycle * 2 * c.clock_hz / 1e12 == pytest.approx(78.0, rel=0.01)
    assert c.vector_length == 4 and c.index_bits == 2 and c.hardware_overhead == 0.0
    # the default (V100) config is untouched by the preset
    assert SparseTcConfig().sm_count == 80 and SparseTcConfig().vector_length == 16


def test_a100_config_through_the_set_path_is_the_preset():
    assert fidelity.a100_config() == a100()


@pytest.mark.parametrize("size", [512, 4096, 16384])
def test_a100_sparse_gemm_never_beats_the_two_to_four_math_ratio(size):
    g = fidelity.a100_gemm(size, size, size)
    assert 1.0 <= g["speedup"] <= 2.0 + 1e-9
    assert g["dense_tflops"] <= 312.0 * 1.001 and g["sparse_tflops"] <= 624.0 * 1.001
    # a decode overhead can only slow the sparse kernel down
    assert fidelity.a100_gemm(size, size, size, 0.5)["speedup"] <= g["speedup"] + 1e-12


def test_gemm_row_is_what_the_cost_model_prices_as_a_balanced_sparse_matmul():
    row = fidelity.gemm_row(256, 128, 1024)
    assert row.kind == "gemm" and row.macs == 256 * 128 * 1024
    assert row.pattern.keep == 2 and row.pattern.vector == 4 and row.pattern.vectors_per_row == 256
    dense, chosen = cost.row_paths(row, a100(), "hardware")
    assert chosen.k_eff == 512 and dense.k_eff == 1024


def test_a100_references_are_unfitted_checks_with_their_sources():
    for ref in fidelity.A100_REFERENCES:
        assert not ref.fitted and ref.target == "sparse-tc" and "github.com/NVIDIA" in ref.source
        assert math.isfinite(ref.measure()) and ref.measure() > 0
    assert fidelity.A100_REFERENCES[0].gain  # a speedup: its excess over 1 is compared


def test_a100_transfer_reports_measured_spec_and_zhu_fitted_speedups():
    table = fidelity.a100_transfer()
    assert set(table) == set(fidelity.A100_SPEEDUPS)
    for row in table.values():
        assert set(row) == {"measured", "spec", "zhu_fitted"}
        assert 1.0 <= row["zhu_fitted"] <= row["spec"] <= 2.0 + 1e-9


def test_tensorrt_references_are_unfitted_and_cite_the_measurement():
    trt = [r for r in fidelity.REFERENCES if "TensorRT" in r.quantity]
    assert [int(r.quantity.rsplit(" ", 1)[1]) for r in trt] == [16, 128, 256]
    assert all(not r.fitted and fidelity.TENSORRT_V100 in r.source for r in trt)


def test_loo_table_shape_on_small_networks():
    table = fidelity.loo_table(("lenet5", "convnet"))
    assert set(table) == set(fidelity.PAPER)
    for mode, rows in table.items():
        assert set(rows) == {"lenet5", "convnet"}
        for row in rows.values():
            assert set(row) == {"fitted", "predicted", "error", "own"}
            assert row["fitted"] >= 0 and row["own"] >= 0 and row["predicted"] >= 1.0 - 1e-9
            assert row["error"] == pytest.approx((row["predicted"] - 1) / (fidelity.PAPER[mode] - 1) - 1)
    worst = fidelity.loo_errors(("lenet5", "convnet"))
    assert all(abs(worst[m]) == max(abs(r["error"]) for r in table[m].values()) for m in table)


@pytest.mark.slow
def test_wider_leave_one_out_errors_are_the_recorded_ones():
    recomputed = fidelity.loo_errors(fidelity.LOO_MODELS)
    assert recomputed.keys() == fidelity.LOO_ERROR_WIDE.keys()
    for mode, error in recomputed.items():
        assert error == pytest.approx(fidelity.LOO_ERROR_WIDE[mode], abs=1e-3), mode


def test_config_module_exposes_the_preset_factory():
    assert stc_config.a100 is a100
