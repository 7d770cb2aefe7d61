"""What compile warns about (nncc.notices): on stderr as `nncc: warning: <file>: ...`, in
report["warnings"], and --strict turns any of them into exit 1."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncc import models, notices
from nncc.calibration import calibration_feeds
from nncc.cli import main
from nncc.loading import load_model


def _matmul_model(tmp_path, weight):
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(weight, "w")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _compile(path, out, *args):
    return main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--format", "json", *args])


def test_nan_and_inf_weights_are_reported(tmp_path, capsys):
    w = np.ones((4, 3), np.float32)
    w[0, 0], w[2, 1] = np.nan, np.inf
    path = _matmul_model(tmp_path, w)
    assert _compile(path, tmp_path / "out", "--verify", "0") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nncc: warning: {path}: 2 NaN or infinite weight value(s) in 1 initializer(s): w (2); "
                   "the model's outputs are not meaningful"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [w["kind"] for w in report["warnings"]] == ["weights"]
    assert _compile(path, tmp_path / "out", "--verify", "0", "--strict") == 1
    assert "--strict: 1 warning(s) above" in capsys.readouterr().err


def test_what_reports_say_of_the_original_is_worked_out_once_per_model(tmp_path, monkeypatch):
    """compare's targets share it (driver.original_facts); a changed weight or node is seen again."""
    from nncc import analysis, driver
    import onnx_ir as ir

    w = np.ones((4, 3), np.float32)
    w[0, 0] = np.nan
    model = load_model(_matmul_model(tmp_path, w))
    calls = []
    summary = analysis.model_summary
    monkeypatch.setattr(analysis, "model_summary", lambda m: calls.append(m) or summary(m))
    first = driver.original_facts(model)
    assert driver.original_facts(model) is first and len(calls) == 1
    assert first["nonfinite_weights"] == {"w": 1} and first["summary"]["params"] == 12
    model.graph.initializers["w"].const_value = ir.tensor(np.ones((4, 3), np.float32))
    assert driver.original_facts(model)["nonfinite_weights"] == {} and len(calls) == 2


def test_finite_weights_give_no_warning(tmp_path, capsys):
    path = _matmul_model(tmp_path, np.ones((4, 3), np.float32))
    assert _compile(path, tmp_path / "out", "--strict") == 0
    assert capsys.readouterr().err == ""
    assert json.loads((tmp_path / "out" / "report.json").read_text())["warnings"] == []


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    return models.export("lenet5", tmp_path_factory.mktemp("zoo") / "lenet5.onnx")


def test_quantize_on_random_inputs_is_said(tmp_path, capsys, lenet):
    assert _compile(lenet, tmp_path / "out", "-p", "quantize", "--verify", "0") == 0
    err = capsys.readouterr().err
    assert "nncc: warning" in err and "quantize: activation ranges measured on random uniform [0,1) inputs" in err
    kinds = [w["kind"] for w in json.loads((tmp_path / "out" / "report.json").read_text())["warnings"]]
    assert kinds == ["calibration"]
    assert _compile(lenet, tmp_path / "out", "-p", "quantize", "--verify", "0", "--strict") == 1
    capsys.readouterr()
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32))
    assert _compile(lenet, tmp_path / "out", "-p", "quantize", "--verify", "0", "--calib", str(calib), "--strict") == 0
    assert capsys.readouterr().err == ""


def test_reram_adc_bits_on_random_inputs_are_said(tmp_path, capsys, lenet):
    code = main(["compile", str(lenet), "-t", "reram", "-o", str(tmp_path / "out"), "--format", "json", "--verify", "0"])
    assert code == 0 and "reram: ADC resolution (adc_bits_from=calibration) measured on random" in capsys.readouterr().err


def test_compare_prints_a_warning_once_for_all_targets(tmp_path, capsys):
    w = np.ones((4, 3), np.float32)
    w[1, 1] = np.nan
    path = _matmul_model(tmp_path, w)
    assert main(["compare", str(path), "--targets", "mobile-cpu,sparse-tc"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 NaN or infinite weight value(s)" in err[0]
    assert main(["compare", str(path), "--targets", "mobile-cpu,sparse-tc", "--strict"]) == 1


def test_outside_a_compile_nothing_is_collected(tmp_path):
    model = load_model(_matmul_model(tmp_path, np.ones((4, 3), np.float32)))
    feeds, _ = calibration_feeds(model, None, 4)  # a library caller: no collector, no error
    assert len(feeds) == 16
    with notices.collecting() as found:
        calibration_feeds(model, None, 4, purpose="test")
        calibration_feeds(model, None, 4, purpose="test")
    assert len(found) == 1 and found[0]["message"].startswith("test measured on random")


def test_reports_show_the_warnings_first(tmp_path, capsys):
    w = np.ones((4, 3), np.float32)
    w[0, 0] = np.inf
    path = _matmul_model(tmp_path, w)
    out = tmp_path / "out"
    assert main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--verify", "0"]) == 0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "**Warnings (1)**" in md and md.index("Warnings") < md.index("Cost")
    assert "Warnings (1)</h2>" in html and "1 NaN or infinite weight value(s)" in html
    assert html.index("Warnings (1)") < html.index("Cost")
