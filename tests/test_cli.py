"""The CLI contract: outputs, exit codes (0 ok, 1 gate, 2 bad input), one-line errors, plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

from conftest import conv_bn_model
from nncc.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, where: str):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"nncc: error: {where}: "), err
    assert "Traceback" not in err


def test_compile_writes_model_and_three_reports(capsys, conv_bn_path, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "compile", conv_bn_path, "--target", "null", "-o", out, "-p", "fold-batchnorm")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "report.json", "report.md", "report.html"}
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "nncc.report/1"
    assert set(report["totals"]) >= {"latency_s", "energy_j", "area_mm2", "macs", "weight_bytes"}
    assert report["passes"][0]["name"] == "fold-batchnorm" and report["passes"][0]["stats"]["folded"] == 1
    assert report["verification"]["max_abs_error"] <= 1e-5
    assert report["model"]["macs"] == 8 * 6 * 6 * 27 + 5 * 288
    import onnxruntime as ort

    ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.zeros((1, 3, 8, 8), np.float32)})


@pytest.mark.parametrize("kind", ["truncated", "random", "unknown_op", "missing_shape", "missing_file"])
def test_malformed_input_one_line_exit_2(capsys, tmp_path, kind):
    path = tmp_path / f"{kind}.onnx"
    m = conv_bn_model()
    if kind == "truncated":
        data = m.SerializeToString()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 10_000, dtype=np.uint8).tobytes())
    elif kind == "unknown_op":
        m.graph.node[2].op_type = "NoSuchOp"
        onnx.save(m, path)
    elif kind == "missing_shape":
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
        onnx.save(m, path)
    code, _, err = run(capsys, "compile", path, "--target", "null", "-o", tmp_path / "o")
    assert code == 2
    assert_one_line_error(err, str(path))
    assert not (tmp_path / "o").exists()
    if kind == "missing_shape":
        assert "--input-shape x=1x3x8x8" in err
    if kind == "unknown_op":
        assert "NoSuchOp" in err


@pytest.mark.parametrize("args,where", [
    (["--target", "warp-drive"], "--target"),
    (["--target", "null", "-p", "no-such-pass"], "--pass"),
    (["--target", "null", "-p", "fold-batchnorm:bogus=1"], "--pass fold-batchnorm"),
    (["--target", "null", "--set", "foo=1"], "--set (null)"),
    (["--target", "null", "--format", "pdf"], "--format"),
])
def test_bad_usage_exit_2(capsys, conv_bn_path, tmp_path, args, where):
    code, _, err = run(capsys, "compile", conv_bn_path, "-o", tmp_path / "o", *args)
    assert code == 2
    assert_one_line_error(err, where)


def test_missing_option_is_usage_error(capsys, conv_bn_path):
    code, _, err = run(capsys, "compile", conv_bn_path)
    assert code == 2 and err.startswith("nncc: error: ") and len(err.strip().splitlines()) == 1


def test_crash_keeps_old_output(capsys, conv_bn_path, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run(capsys, "compile", conv_bn_path, "--target", "null", "-o", out)[0] == 0
    before = (out / "report.json").read_text()
    from nncc import render_html

    def boom(report):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render_html, "page", boom)
    code, _, err = run(capsys, "compile", conv_bn_path, "--target", "null", "-o", out, "-p", "fold-batchnorm")
    assert code == 2 and "disk full" in err
    assert (out / "report.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


PLUGIN = textwrap.dedent('''
    import dataclasses
    from nncc.pass_base import NnccPass
    from nncc.backends.null import NullTarget

    @dataclasses.dataclass
    class CountNodes(NnccPass):
        name = "count-nodes"
        summary = "records the node count"
        scale: int = 1

        def apply(self, model):
            self.stats["nodes"] = model.graph.num_nodes() * self.scale
            return False

    class EchoTarget(NullTarget):
        name = "echo"
        summary = "null target under another name"
''')


def test_plugin_file_adds_pass_and_target(capsys, conv_bn_path, tmp_path):
    plugin = tmp_path / "myplugin.py"
    plugin.write_text(PLUGIN)
    code, out, _ = run(capsys, "--plugin", plugin, "passes")
    assert code == 0 and "count-nodes" in out
    code, out, _ = run(capsys, "--plugin", plugin, "targets")
    assert "echo" in out
    out_dir = tmp_path / "o"
    code, _, err = run(capsys, "--plugin", plugin, "compile", conv_bn_path, "--target", "echo", "-o", out_dir,
                       "-p", "count-nodes:scale=2")
    assert code == 0, err
    report = json.loads((out_dir / "report.json").read_text())
    assert report["passes"][0]["stats"] == {"nodes": 10}
    assert report["target"]["name"] == "echo"


def test_broken_plugin_is_one_line(capsys, tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise ImportError('needs foo')\n")
    code, _, err = run(capsys, "--plugin", plugin, "passes")
    assert code == 2
    assert_one_line_error(err, str(plugin))


def test_pipeline_toml(capsys, conv_bn_path, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('[[pass]]\nname = "fold-batchnorm"\n\n[[pass]]\nname = "eliminate-dead-code"\n')
    out = tmp_path / "o"
    code, _, err = run(capsys, "compile", conv_bn_path, "--target", "null", "-o", out, "--pipeline", toml)
    assert code == 0, err
    assert [p["name"] for p in json.loads((out / "report.json").read_text())["passes"]] == ["fold-batchnorm", "eliminate-dead-code"]
    toml.write_text('[[pass]]\nratio = 3\n')
    code, _, err = run(capsys, "compile", conv_bn_path, "--target", "null", "-o", out, "--pipeline", toml)
    assert code == 2 and "has no 'name'" in err


def test_compare_gate(capsys, conv_bn_path, tmp_path):
    base = tmp_path / "base.json"
    code, out, err = run(capsys, "compare", conv_bn_path, "--targets", "null", "--json", base)
    assert code == 0, err
    assert out.startswith("### conv_bn.onnx") and "| target |" in out
    data = json.loads(base.read_text())
    # A baseline that was twice as fast: latency now +100% -> the gate fails.
    data["targets"]["null"]["totals"].update(latency_s=1.0, energy_j=1.0)
    new = json.loads(base.read_text())
    new["targets"]["null"]["totals"].update(latency_s=0.5, energy_j=0.5)
    base.write_text(json.dumps(new))
    (tmp_path / "now.json").write_text(json.dumps(data))
    from nncc import compare

    # Per-run totals changed; the per-sample gate (tests/test_workload.py) reads per_sample instead.
    lines, failed = compare._gate(data["targets"], new["targets"], 0.05, "total")
    assert failed and "latency_s (total) +100.0%" in failed
    lines, failed = compare._gate(new["targets"], data["targets"], 0.05, "total")
    assert failed is None
    code, out, err = run(capsys, "compare", conv_bn_path, "--targets", "null", "--baseline", tmp_path / "nope.json")
    assert code == 2 and "no such file" in err


def test_inspect_lists_macs(capsys, conv_bn_path):
    code, out, _ = run(capsys, "inspect", conv_bn_path, "--json")
    assert code == 0
    data = json.loads(out)
    assert {r["op"]: r["macs"] for r in data["layers"]}["Conv"] == 8 * 6 * 6 * 27


def test_console_script_exit_code(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    proc = subprocess.run([sys.executable, "-m", "nncc.cli", "inspect", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"nncc: error: {bad}: ")


def test_listing_survives_a_broken_entry(capsys, monkeypatch):
    from nncc import registry
    from nncc.errors import NnccError

    real_get = registry.PASSES.get

    def get(name, where=None):
        if name == "fold-constants":
            raise NnccError("--pass", "pass 'fold-constants' failed to load: boom")
        return real_get(name, where)

    monkeypatch.setattr(registry.PASSES, "get", get)
    code, out, _ = run(capsys, "passes")
    assert code == 0
    assert "fold-constants           BROKEN" in out and "fold-batchnorm" in out
