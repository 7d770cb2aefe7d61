"""nncc.reuse: a sweep's worker and optimize's search load a model file once and run the
pipeline heads their points share once, and every point's totals are those of a fresh compile."""

from __future__ import annotations

import shutil

import numpy as np
import onnx_ir as ir
import pytest
from conftest import light_model
from nncc import loading, models, pass_sharing, reuse, sweep_exec
from nncc.backends.reram import activations
from nncc.driver import CompileOptions, compile_model
from nncc.pipeline import PassContext, parse_pass_spec
from nncc.registry import TARGETS

RESNET = light_model("light_resnet50")  # BatchNorm after every conv: fold-batchnorm heads sparse-tc's pipeline


@pytest.fixture(autouse=True)
def nothing_kept():
    reuse.forget()
    yield
    reuse.forget()


@pytest.fixture
def counted(monkeypatch):
    """Counts of model loads and of pipeline heads run."""
    calls = {"load": 0, "head": 0}
    load, run_head = loading.load_model, pass_sharing.SharedPasses._run_head

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return load(*args, **kwargs)

    def counting_head(model, passes, context):
        calls["head"] += bool(passes)
        return run_head(model, passes, context)

    monkeypatch.setattr(reuse, "load_model", counting_load)
    monkeypatch.setattr(pass_sharing.SharedPasses, "_run_head", staticmethod(counting_head))
    return calls


def fresh_totals(path, target: str, sets: dict[str, str], passes=(), eval_data=None) -> dict:
    reuse.forget()  # nothing measured before
    configured = TARGETS.get(target).configure(None, dict(sets))
    options = CompileOptions({}, verify_samples=0, eval_data=eval_data, context=PassContext())
    return compile_model(path, configured, [parse_pass_spec(p) for p in passes], options).report["totals"]


def task(path, sets: dict[str, str], target: str = "sparse-tc", passes=()) -> dict:
    return {"model": str(path), "target": target, "sets": sets, "passes": list(passes), "config_file": None,
            "eval_data": None, "input_shapes": {}}


def test_a_workers_points_load_the_file_once_and_fold_its_batchnorms_once(counted):
    points = [{"sm_count": "80"}, {"sm_count": "40"}, {"sm_count": "80", "batch": "4"}]
    results = [sweep_exec.evaluate(task(RESNET, sets)) for sets in points]
    assert [r["status"] for r in results] == ["ok"] * 3
    assert counted == {"load": 1, "head": 1}
    for sets, result in zip(points, results):
        assert result["totals"] == fresh_totals(RESNET, "sparse-tc", sets)


def test_a_changed_file_is_loaded_again(counted, tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copyfile(RESNET, path)
    first = sweep_exec.evaluate(task(path, {}))
    shutil.copyfile(light_model("light_squeezenet"), path)  # another model under the same name
    second = sweep_exec.evaluate(task(path, {}))
    assert counted["load"] == 2
    assert second["totals"] == fresh_totals(path, "sparse-tc", {}) != first["totals"]


def test_kept_heads_are_bounded_and_each_pass_setting_has_its_own(counted, monkeypatch):
    monkeypatch.setattr(reuse, "MAX_HEADS", 1)
    prune = ["prune:ratio=0.3", "prune:ratio=0.6", "prune:ratio=0.3"]
    results = [sweep_exec.evaluate(task(RESNET, {}, passes=[p])) for p in prune]
    assert counted == {"load": 1, "head": 3}  # the 0.3 head was dropped for the 0.6 one, then run again
    assert results[0]["totals"] == results[2]["totals"] == fresh_totals(RESNET, "sparse-tc", {}, [prune[0]])
    assert results[1]["totals"] == fresh_totals(RESNET, "sparse-tc", {}, [prune[1]])


def test_optimizes_points_load_the_file_once(counted):
    from nncc import optimize

    lenet = str(models.bundled_path("lenet5"))
    name = loading.load_model(lenet).graph.inputs[0].name
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    y = np.zeros(8, dtype=np.int64)
    base = {"model": lenet, "target": "reram", "config_file": None, "input_shapes": {}, "input_name": name,
            "x": x, "y": y, "train": None}
    points = [({}, []), ({"cell_bits": "1"}, ["prune:ratio=0.5"])]
    runs = [optimize.evaluate_option({**base, "sets": sets, "passes": passes}) for sets, passes in points]
    assert counted["load"] == 1
    for (sets, passes), run in zip(points, runs):
        options = CompileOptions({}, verify_samples=0, context=PassContext(calibration={name: x[:64]}))
        fresh = compile_model(lenet, TARGETS.get("reram").configure(None, dict(sets)),
                              [parse_pass_spec(p) for p in passes], options).report["totals"]
        assert run["totals"] == {k: v for k, v in fresh.items() if isinstance(v, (int, float, str)) or v is None}


def test_reram_calibrates_once_per_model_and_inputs(monkeypatch, tmp_path):
    lenet = str(models.bundled_path("lenet5"))
    data = tmp_path / "data.npz"  # as many samples as the random inputs: only their values differ
    rng = np.random.default_rng(1)
    np.savez(data, x=rng.random((8, 1, 28, 28), dtype=np.float32), y=np.zeros(8, dtype=np.int64))
    points = [({"crossbar_size": "64"}, [], None), ({"crossbar_size": "128", "cell_bits": "1"}, [], None),
              # Other weights: measured again; its ratios to the unpruned model reuse the first measurement.
              ({"crossbar_size": "64"}, ["prune:ratio=0.5"], None),
              ({}, [], str(data))]  # other inputs: measured again
    fresh = [fresh_totals(lenet, "reram", sets, passes, eval_data) for sets, passes, eval_data in points]
    reuse.forget()
    runs = []
    measure = activations.run_exposing
    monkeypatch.setattr(activations, "run_exposing", lambda *a: runs.append(1) or measure(*a))
    results = [sweep_exec.evaluate({**task(lenet, sets, "reram", passes), "eval_data": eval_data})
               for sets, passes, eval_data in points]
    assert len(runs) == 3
    assert [r["totals"] for r in results] == fresh


def test_a_fingerprint_tells_a_copy_from_a_changed_model():
    model = loading.load_model(RESNET)
    assert reuse.ModelFingerprint(loading.copy_model(model)) == reuse.ModelFingerprint(model)
    renamed, other_weight, other_attr = (loading.copy_model(model) for _ in range(3))
    renamed.graph.inputs[0].name = "renamed"
    value = next(iter(other_weight.graph.initializers.values()))
    value.const_value = ir.tensor(value.const_value.numpy().copy())  # equal values, another tensor
    conv = next(n for n in other_attr.graph if n.op_type == "Conv")
    conv.attributes["strides"] = ir.AttrInt64s("strides", [3, 3])
    for changed in (renamed, other_weight, other_attr):
        assert reuse.ModelFingerprint(changed) != reuse.ModelFingerprint(model)
