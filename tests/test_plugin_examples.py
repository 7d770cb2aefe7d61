"""The plugin examples work as a newcomer would use them, and a failing plugin is named.

The two packages are really installed (pip, offline, into a temporary folder) and found through
their installed entry points, in a subprocess whose PYTHONPATH holds that folder; nothing is
registered in this test process, so no plugin leaks into other tests' `--targets all`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

from nncc.loading import load_model
from test_registry import check_pass_contract, check_target_contract

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "plugins"
PACKAGES = ("nncc-hoist-maxpool", "nncc-roofline")
LENET5 = ROOT / "models" / "data" / "lenet5.onnx"


def nncc(*args, pythonpath: pathlib.Path | None = None, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "nncc.cli", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    """Both example packages, pip-installed offline from copies (the build writes into its source)."""
    tmp = tmp_path_factory.mktemp("plugins")
    sources = [shutil.copytree(EXAMPLES / name, tmp / "src" / name) for name in PACKAGES]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                    "--target", str(tmp / "site"), *map(str, sources)], check=True, capture_output=True, timeout=300)
    return tmp / "site"


def report(out: pathlib.Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_installed_packages_compile_lenet5(site, tmp_path):
    listed = nncc("targets", pythonpath=site, cwd=tmp_path)
    assert "roofline" in listed.stdout, listed.stderr
    runs = {}
    for label, passes in (("plain", ()), ("hoisted", ("-p", "hoist-maxpool"))):
        proc = nncc("compile", LENET5, *passes, "-t", "roofline", "--tolerance", "0", "--format", "json,md",
                    "-o", tmp_path / label, pythonpath=site, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        runs[label] = report(tmp_path / label)
    got = runs["hoisted"]
    # The pass: both Relu -> MaxPool pairs swapped, exact against the original in onnxruntime.
    stats = got["passes"][0]["stats"]
    assert got["passes"][0]["name"] == "hoist-maxpool" and stats["hoisted"] == 2
    assert [(r["name"], r["elements_before"], r["elements_after"]) for r in stats["layers"]] == [
        ("relu1", 6 * 28 * 28, 6 * 14 * 14), ("relu2", 16 * 10 * 10, 16 * 5 * 5)]
    assert {r["name"] for r in stats["skipped"]} == {"relu3", "relu4"}  # they feed a Gemm
    assert got["verification"]["status"] == "passed" and got["verification"]["max_abs_error"] == 0.0
    ops = [n.op_type for n in onnx.load(tmp_path / "hoisted" / "model.onnx").graph.node]
    assert ops[:6] == ["Conv", "MaxPool", "Relu", "Conv", "MaxPool", "Relu"]
    # The target: its totals, by hand from the defaults (168 PEs at 200 MHz, 1.6 GB/s).
    assert got["target"]["name"] == "roofline" and got["totals"]["area_mm2"] == 12.25
    rows = {r["name"]: r for r in got["layers"]}
    assert rows["conv1"]["latency_s"] == pytest.approx(117_600 / 168 / 200e6)  # compute-bound: 700 cycles
    fc1_bytes = 4 * (400 * 120 + 120)  # weights and bias stream from DRAM
    assert rows["fc1"]["bound"] == "memory" and rows["fc1"]["dram_bytes"] == fc1_bytes
    assert rows["fc1"]["latency_s"] == pytest.approx(fc1_bytes / 1.6e9)
    assert got["totals"]["latency_s"] == pytest.approx(sum(r["latency_s"] for r in got["layers"]))
    assert got["totals"]["coverage"]["complete"]
    # Its own total, labelled by RooflineTarget.report_fields (nothing in nncc names it).
    assert got["totals"]["dram_bytes"] == sum(r["dram_bytes"] for r in got["layers"])
    assert f"| DRAM traffic | {got['totals']['dram_bytes'] / 1e3:.3g} kB |" in (tmp_path / "hoisted" / "report.md").read_text()
    # Relu on pooled tensors: relu1 28 -> 7 cycles, relu2 10 -> 3 (ceil(ops / 168)), 5 ns each.
    saved = runs["plain"]["totals"]["latency_s"] - got["totals"]["latency_s"]
    assert saved == pytest.approx((28 - 7 + 10 - 3) * 5e-9, rel=1e-6)


def test_single_file_plugin(tmp_path):
    proc = nncc("--plugin", EXAMPLES / "audit_weights.py", "compile", LENET5, "-t", "null", "--tolerance", "0",
                "-p", "audit-weights:zero_below=1e-3", "--format", "json", "-o", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = report(tmp_path / "o")
    stats = got["passes"][0]["stats"]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(LENET5).graph.initializer if t.dims and len(t.dims) > 1}
    assert stats["weights"] == sum(w.size for w in weights.values())
    assert stats["zero_fraction"] == pytest.approx(sum(int((abs(w) <= 1e-3).sum()) for w in weights.values()) / stats["weights"])
    assert [r["name"] for r in stats["layers"]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert got["verification"]["max_abs_error"] == 0.0


def test_nonfinite_weight_is_bad_input(tmp_path):
    model = onnx.load(LENET5)
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[0] = np.nan
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(model, tmp_path / "nan.onnx")
    proc = nncc("--plugin", EXAMPLES / "audit_weights.py", "compile", tmp_path / "nan.onnx", "-t", "null",
                "-p", "audit-weights", "-o", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "nncc: error: --pass audit-weights: NaN or Inf weights in conv1 (1)"


FAILING = textwrap.dedent('''
    import dataclasses
    from nncc.plugin import NnccPass

    @dataclasses.dataclass
    class Explode(NnccPass):
        name = "explode"
        summary = "divides by zero"

        def apply(self, model):
            return 1 / 0

    @dataclasses.dataclass
    class BadStats(NnccPass):
        name = "bad-stats"
        summary = "breaks the stats schema"

        def apply(self, model):
            self.stats["layers"] = ["conv1"]
            return False
''')

# A distribution installed by hand (dist-info with entry points): one target whose lowering fails
# in a helper module of its package, one pass whose module does not import.
BROKEN_DIST = {
    "nncc_broken-0.2.dist-info/METADATA": "Metadata-Version: 2.1\nName: nncc-broken\nVersion: 0.2\n",
    "nncc_broken-0.2.dist-info/entry_points.txt": ("[nncc.targets]\nboom = nncc_broken:Boom\n\n"
                                                   "[nncc.passes]\nno-import = nncc_broken.missing:Pass\n"),
    "nncc_broken/__init__.py": textwrap.dedent('''
        from nncc.plugin import CostReport, Target
        from nncc_broken import helper

        class Boom(Target):
            name = "boom"
            Config = helper.Config

            def lower(self, model, calibration=None):
                return helper.place(model)

            def estimate(self, mapping):
                return CostReport([])
    '''),
    "nncc_broken/helper.py": textwrap.dedent('''
        import dataclasses
        from nncc.plugin import HardwareConfig

        @dataclasses.dataclass(frozen=True)
        class Config(HardwareConfig):
            pass

        def place(model):
            raise RuntimeError("no PE left for conv1")
    '''),
    "nncc_broken/missing.py": "import nncc_no_such_module\n",
}


@pytest.mark.parametrize("args, label, message", [
    (("-p", "explode", "-t", "null"), "plugin pass 'explode' ({file})",
     "ZeroDivisionError: division by zero (rerun with --debug for a traceback)"),
    (("-p", "bad-stats", "-t", "null"), "plugin pass 'bad-stats' ({file})",
     "TypeError: pass 'bad-stats': stats['layers'] must be a list of records with name (rerun with --debug for a traceback)"),
    (("-t", "boom"), "plugin target 'boom' (nncc-broken 0.2)",
     "RuntimeError: no PE left for conv1 (rerun with --debug for a traceback)"),
    (("-p", "no-import", "-t", "null"), "plugin pass 'no-import' (nncc-broken 0.2)",
     "entry point 'nncc_broken.missing:Pass' failed to load: ModuleNotFoundError: No module named 'nncc_no_such_module'"),
])
def test_failing_plugin_is_named_on_one_line(tmp_path, args, label, message):
    plugin = tmp_path / "failing.py"
    plugin.write_text(FAILING)
    for path, text in BROKEN_DIST.items():
        (tmp_path / "site" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / path).write_text(text)
    proc = nncc("--plugin", plugin, "compile", LENET5, *args, "-o", tmp_path / "o", pythonpath=tmp_path / "site",
                cwd=tmp_path)
    assert proc.returncode == 2  # like every error that is not a failed gate: the run could not finish
    assert proc.stderr.splitlines() == [f"nncc: error: {label.format(file=plugin)}: {message}"]
    assert not (tmp_path / "o").exists()


def chained_model(path: pathlib.Path) -> pathlib.Path:
    """Relu -> Clip -> MaxPool -> (graph output), and a Relu whose output also feeds an Add."""
    h = onnx.helper
    nodes = [h.make_node("Relu", ["x"], ["r"], name="relu"), h.make_node("Clip", ["r", "lo", "hi"], ["c"], name="clip"),
             h.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Relu", ["x"], ["r2"], name="shared_relu"),
             h.make_node("MaxPool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Add", ["r2", "x"], ["z"], name="add")]
    graph = h.make_graph(nodes, "chain", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 8, 8])],
                         [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, shape) for n, shape in
                          (("y", [1, 2, 4, 4]), ("p2", [1, 2, 4, 4]), ("z", [1, 2, 8, 8]))],
                         [onnx.numpy_helper.from_array(np.float32(v), n) for n, v in (("lo", 0.1), ("hi", 0.6))])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def test_examples_keep_the_builtin_contracts(monkeypatch, conv_bn_path, tmp_path):
    # Imported from their sources, not registered: this process's registries stay nncc's own.
    for name in PACKAGES:
        monkeypatch.syspath_prepend(str(EXAMPLES / name))
    spec = importlib.util.spec_from_file_location("audit_weights_example", EXAMPLES / "audit_weights.py")
    audit = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, audit)  # dataclasses resolve annotations through it
    spec.loader.exec_module(audit)
    from nncc_hoist_maxpool import HoistMaxPool
    from nncc_roofline import RooflineTarget

    chain = chained_model(tmp_path / "chain.onnx")
    for path in (conv_bn_path, LENET5, chain):
        check_pass_contract(HoistMaxPool, path)  # idempotent, and exact in onnxruntime
        check_pass_contract(audit.AuditWeights, path)
    check_target_contract(RooflineTarget, conv_bn_path)
    model = load_model(chain)
    hoist = HoistMaxPool()
    assert hoist(model).modified and [n.op_type for n in model.graph][:3] == ["MaxPool", "Relu", "Clip"]
    assert [r["name"] for r in hoist.stats["layers"]] == ["clip", "relu"]  # past Clip first, then Relu
    assert hoist.stats["skipped"] == [{"name": "shared_relu", "op": "Relu", "reason": "its output feeds 2 nodes"}]
    assert [v.name for v in model.graph.outputs] == ["y", "p2", "z"]


def test_examples_import_only_the_public_plugin_api():
    # A plugin that imports nncc internals breaks when the core is reorganized: nncc.plugin is the contract.
    for path in EXAMPLES.rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        modules += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        internal = [m for m in modules if m.split(".")[0] == "nncc" and m != "nncc.plugin"]
        assert not internal, f"{path.relative_to(ROOT)} imports {internal}"
