"""The Verifier runs the original and each distinct compiled model in onnxruntime once, and gives
the same verification as a compile that verifies on its own."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncc import models, runtime
from nncc.compare import compare_targets
from nncc.driver import CompileOptions, compile_model
from nncc.loading import load_model
from nncc.registry import PASSES, TARGETS
from nncc.verification import Verifier


@pytest.fixture
def counted_sessions(monkeypatch):
    made = []
    real = runtime.session_from

    def counting(proto, shared, *args, **kwargs):
        if sys._getframe(1).f_globals["__name__"] == "nncc.verification":  # not calibration's sessions
            made.append(len(proto))
        return real(proto, shared, *args, **kwargs)

    monkeypatch.setattr(runtime, "session_from", counting)
    return made


def _alone(path, target: str, passes=()) -> dict:
    """The verification of a compile that verifies on its own (no shared Verifier)."""
    return compile_model(path, TARGETS.create(target), [PASSES.get(p)() for p in passes], CompileOptions())\
        .report["verification"]


def test_compare_runs_each_distinct_model_once_with_the_same_verification(tmp_path, counted_sessions, monkeypatch):
    lenet = models.bundled_path("lenet5")
    targets = "hypar,mobile-cpu,reram,sparse-tc,ucnn"
    seen = {}
    real_compile = compile_model

    def noting(path, target, passes, options, progress=lambda s: None, **shared_state):
        result = real_compile(path, target, passes, options, progress, **shared_state)
        seen[target.name] = result.report["verification"]
        return result

    monkeypatch.setattr("nncc.compare.compile_model", noting)
    # In this process (jobs=1), where the counting and noting patches see every compile; forked
    # workers inherit the same Verifier.
    compare_targets(str(lenet), targets, [], CompileOptions(), {}, None, None, None, "5%", jobs=1)
    # LeNet-5 has no BatchNormalization: no target's passes change it, so only the original runs.
    assert len(counted_sessions) == 1
    assert all(v["unchanged"] and v["max_abs_error"] == 0.0 and v["samples"] == 4 for v in seen.values())
    monkeypatch.undo()
    counted_sessions.clear()
    assert _alone(lenet, "reram") == seen["reram"]


def test_a_changed_model_runs_once_and_errs_as_when_verified_alone(conv_bn_path, counted_sessions):
    loaded = load_model(conv_bn_path)
    verifier = Verifier(loaded, conv_bn_path)
    shared = [compile_model(conv_bn_path, TARGETS.create(t), [], CompileOptions(), loaded=loaded, verifier=verifier)
              .report["verification"] for t in ("reram", "sparse-tc", "ucnn")]
    # The original, then the model fold-batchnorm gave: the same for the three targets.
    assert len(counted_sessions) == 2
    assert shared[0] == shared[1] == shared[2] and "unchanged" not in shared[0]
    assert 0 < shared[0]["max_abs_error"] < 1e-4
    counted_sessions.clear()
    assert _alone(conv_bn_path, "sparse-tc") == shared[0]
    assert len(counted_sessions) == 2  # alone: the original and the compiled model too


def _matmul_model(weight: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weight.shape[1]])],
                              [numpy_helper.from_array(weight, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_one_changed_value_in_a_shared_weight_is_another_model(tmp_path, counted_sessions):
    weight = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)  # 2 MiB: shared, not in the proto
    assert weight.nbytes > runtime.SHARE_WEIGHT_BYTES
    onnx.save(_matmul_model(weight), tmp_path / "a.onnx")
    changed = weight.copy()
    changed[300, 700] += 1.0
    onnx.save(_matmul_model(changed), tmp_path / "b.onnx")
    verifier = Verifier(load_model(tmp_path / "a.onnx"), "a.onnx")
    same = verifier.verify(load_model(tmp_path / "a.onnx"), 2, None)
    other = verifier.verify(load_model(tmp_path / "b.onnx"), 2, None)
    assert same["unchanged"] and same["max_abs_error"] == 0.0
    assert "unchanged" not in other and other["max_abs_error"] > 0.01
    assert len(counted_sessions) == 2


def test_eval_data_top1_is_kept_per_model(tmp_path, counted_sessions):
    lenet = models.bundled_path("lenet5")
    verifier = Verifier(load_model(lenet), lenet)
    x = np.random.default_rng(1).random((8, 1, 28, 28), dtype=np.float32)
    y = np.arange(8) % 10
    first = verifier.verify(load_model(lenet), 0, None, (x, y), "data.npz")
    again = verifier.verify(load_model(lenet), 0, None, (x, y), "data.npz")
    assert first == again and first["accuracy"]["top1_original"] == first["accuracy"]["top1_compiled"]
    assert len(counted_sessions) == 1
