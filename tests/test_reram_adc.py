"""reram's ADC measurement: the fast column-sum search (adc.slice_sums: equal planes once,
most ones first, columns dropped once they cannot matter) gives exactly what computing every
column sum of every bit plane gives, on the zoo's real weights and calibration inputs; so
the ADC bits and the max column sums in the report are unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from nncc import calibration, models
from nncc.backends.reram import adc
from nncc.driver import CompileOptions, compile_model
from nncc.registry import TARGETS


def every_column_sum(codes, phys, bits, col_slice, floor):
    """The plain computation: every bit plane of every vector against every column."""
    planes = np.concatenate([((codes >> b) & 1) for b in range(bits)]).astype(np.float32)
    col_max = (planes @ phys.astype(np.float32)).max(axis=0) if len(planes) else np.zeros(phys.shape[1])
    best = np.array(floor, dtype=np.float64)
    np.maximum.at(best, col_slice, col_max)
    density = planes.sum(axis=0, dtype=np.float64) / len(planes) if len(planes) else np.full(phys.shape[0], 0.5)
    return best, density


def _compile_checking(monkeypatch, path, sets=None):
    fast = adc.slice_sums
    calls = []

    def both(codes, phys, bits, col_slice, floor, chunk=256, **known):  # known: what the caller has measured (col_sums)
        got = fast(codes, phys, bits, col_slice, floor, chunk, **known)
        want = every_column_sum(codes, phys, bits, col_slice, floor)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
        calls.append(1)
        return got

    monkeypatch.setattr(adc, "slice_sums", both)
    target = TARGETS.create("reram").configure(None, sets or {})
    compile_model(path, target, [], CompileOptions(verify_samples=0))
    return len(calls)


FAST_MODELS = ["lenet5", "lenet_caffe", "convnet", "tdnn"]
SLOW_MODELS = ["alexnet", "resnet18", "mobilenet_v2", "vargfacenet", "bert_tiny"]


@pytest.mark.parametrize("name", FAST_MODELS)
def test_fast_search_equals_every_column_sum(tmp_path, monkeypatch, name):
    assert _compile_checking(monkeypatch, models.export(name, tmp_path / f"{name}.onnx")) > 0


@pytest.mark.parametrize("sets", [{"cell_bits": 1}, {"cell_bits": 4, "crossbar_size": 64}, {"input_bits": 12}])
def test_fast_search_across_geometries(tmp_path, monkeypatch, sets):
    """1- and 4-bit cells (other level counts), small crossbars, inputs wider than a byte."""
    assert _compile_checking(monkeypatch, models.export("lenet5", tmp_path / "lenet5.onnx"), sets) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_MODELS)
def test_fast_search_equals_every_column_sum_on_larger_models(tmp_path, monkeypatch, name):
    assert _compile_checking(monkeypatch, models.export(name, tmp_path / f"{name}.onnx")) > 0


def test_an_all_zero_input_block_reaches_nothing():
    phys = np.ones((4, 6), np.float32)
    best, density = adc.slice_sums(np.zeros((3, 4), np.int64), phys, 8, np.arange(6) % 2, np.array([5.0, 0.0]))
    assert list(best) == [5.0, 0.0] and not density.any()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_search_split_among_threads_finds_every_column_sums_maxima(monkeypatch, tmp_path, threads):
    """Each row block's columns shared among threads (interleaved, each thread pruning with its
    own maxima): the same sums on random blocks and on LeNet-5's real ones."""
    monkeypatch.setattr(calibration, "CALIBRATION_THREADS", threads)
    monkeypatch.setattr(adc, "_THREADED_WORK", 0)  # every block split, however small
    rng = np.random.default_rng(threads)
    for rows, cols in ((128, 200), (37, 5), (64, 2)):
        codes = (rng.integers(0, 256, (300, rows)) * (rng.random((300, rows)) < 0.7)).astype(np.uint8)
        phys = (rng.integers(0, 4, (rows, cols)) * (rng.random((rows, cols)) < 0.6)).astype(np.float32)
        col_slice, floor = np.arange(cols) % 4, np.array([0.0, 3.0, 0.0, 500.0])
        np.testing.assert_array_equal(adc.slice_sums(codes, phys, 8, col_slice, floor)[0],
                                      every_column_sum(codes, phys, 8, col_slice, floor)[0])
    assert _compile_checking(monkeypatch, models.export("lenet5", tmp_path / "lenet5.onnx")) > 0
