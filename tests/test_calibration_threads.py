"""Calibration runs onnxruntime on several threads (calibration.CALIBRATION_THREADS): every
tensor it exposes must be bit for bit what one thread computes, or reram's ADC bits and ucnn's
input statistics would depend on the machine's core count."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nncc import calibration, models, runtime
from nncc.loading import load_model


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "bert_tiny"])
def test_exposed_tensors_are_the_same_on_one_and_several_threads(tmp_path, monkeypatch, name):
    model = load_model(models.export(name, tmp_path / f"{name}.onnx"))
    values = [v for node in model.graph for v in node.outputs if v is not None and v.type is not None]
    feeds = runtime.sample_inputs(model, 2, seed=0)
    outputs = {}
    for threads in (1, 3):
        monkeypatch.setattr(calibration, "CALIBRATION_THREADS", threads)
        outputs[threads] = list(calibration.run_exposing(model, values, feeds))
    assert len(outputs[1]) == len(feeds) and len(outputs[1][0]) == len(dict.fromkeys(v.name for v in values))
    for one, several in zip(outputs[1], outputs[3]):
        for key, array in one.items():
            assert np.array_equal(array, several[key]), key


def worker_threads(task):
    """In a sweep's worker: the threads calibration may use there."""
    return {"threads": calibration.CALIBRATION_THREADS}


def test_a_sweeps_workers_share_the_cores(monkeypatch):
    from nncc import sweep_exec

    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # as the parent sees the machine (a worker alone would take 2+)
    results = [r for _, r in sweep_exec.LocalPool(2).run([{"i": 0}, {"i": 1}], fn=worker_threads)]
    assert [r["threads"] for r in results] == [1, 1]


@pytest.mark.parametrize("given, threads", [("3", 3), ("0", 1), ("", 5), ("many", 5)])
def test_the_share_given_to_a_process(monkeypatch, given, threads):
    monkeypatch.setenv("NNCC_CALIBRATION_THREADS", given)
    assert calibration._threads_allowed(5) == threads
