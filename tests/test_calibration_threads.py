"""Calibration runs onnxruntime on several threads (calibration.CALIBRATION_THREADS): every
tensor it exposes must be bit for bit what one thread computes, or reram's ADC bits and ucnn's
input statistics would depend on the machine's core count."""

from __future__ import annotations

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
    """In a sweep's worker, while it compiles: the busy workers and the threads calibration may use."""
    return {"busy": calibration._busy_workers.value, "threads": calibration.threads()}


def test_a_sweeps_workers_share_the_cores(monkeypatch):
    from nncc import sweep_exec

    results = [r for _, r in sweep_exec.LocalPool(2).run([{"i": 0}, {"i": 1}, {"i": 2}], fn=worker_threads)]
    assert all(1 <= r["busy"] <= 2 and r["threads"] == max(1, calibration.CALIBRATION_THREADS // r["busy"]) for r in results)
