"""Comparable figures: every report declares its workload and its figures per sample; --batch
and --gate (nncc.workload, nncc.compare)."""

from __future__ import annotations

import json
import math

import onnx
import pytest

from conftest import conv_bn_model
from nncc import compare, models
from nncc.cli import main
from nncc.cost import CostReport, LayerCost
from nncc.driver import CompileOptions, compile_model
from nncc.registry import TARGETS
from nncc.render import fmt_joules, fmt_seconds
from nncc.target import Mapping, Target
from nncc.workload import Workload, label, model_batch

SIX = ("mobile-cpu", "reram", "truenorth", "sparse-tc", "ucnn", "hypar")
# Each target's default workload, as its class docstring and config sources state it.
DEFAULT_WORKLOAD = {name: {"kind": "inference", "batch": 1} for name in SIX + ("null",)}
DEFAULT_WORKLOAD["hypar"] = {"kind": "training-step", "batch": 256, "accelerators": 16}


@pytest.fixture(scope="module")
def lenet5(tmp_path_factory):
    return models.export("lenet5", tmp_path_factory.mktemp("zoo") / "lenet5.onnx")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def totals(path, target: str, **sets):
    target_obj = TARGETS.get(target).configure(None, sets)
    return compile_model(path, target_obj, [], CompileOptions(verify_samples=0)).report["totals"]


@pytest.mark.parametrize("name", SIX + ("null",))
def test_every_report_declares_workload_and_per_sample(tmp_path, capsys, lenet5, name):
    code, _, err = run(capsys, "compile", lenet5, "-t", name, "-o", tmp_path / "out", "--verify", "0", "--format", "json")
    assert code == 0, err
    t = json.loads((tmp_path / "out" / "report.json").read_text())["totals"]
    assert t["workload"] == DEFAULT_WORKLOAD[name]
    batch = t["workload"]["batch"]
    # TrueNorth streams frames through its core pipeline: one frame per interval, not per latency.
    run_time = 1 / t["throughput_fps"] if name == "truenorth" else t["latency_s"]
    assert math.isclose(t["per_sample"]["latency_s"], run_time / batch, rel_tol=1e-12)
    assert math.isclose(t["per_sample"]["energy_j"], t["energy_j"] / batch, rel_tol=1e-12)
    if name != "null":
        assert 0 < t["per_sample"]["latency_s"] and 0 < t["per_sample"]["energy_j"]
    if name == "truenorth":
        assert t["per_sample"]["latency_s"] < t["latency_s"]  # the pipeline depth is latency, not throughput


class _PlainTarget(Target):
    """A plugin-style target that declares nothing about its workload."""

    name = "plain-test"
    Config = TARGETS.get("null").Config

    def lower(self, model, calibration=None):
        return TARGETS.get("null")().lower(model)

    def estimate(self, mapping: Mapping) -> CostReport:
        return CostReport([LayerCost(r.name, r.op, r.macs, 1e-6, 2e-6) for r in mapping.layers])


def test_a_target_that_declares_nothing_gets_an_inference_of_the_models_batch(tmp_path):
    proto = conv_bn_model()
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 3
    onnx.save(proto, tmp_path / "batch3.onnx")
    t = compile_model(tmp_path / "batch3.onnx", _PlainTarget(), [], CompileOptions(verify_samples=0)).report["totals"]
    assert t["workload"] == {"kind": "inference", "batch": 3}
    assert math.isclose(t["per_sample"]["latency_s"], t["latency_s"] / 3)
    assert math.isclose(t["per_sample"]["energy_j"], t["energy_j"] / 3)


def test_workload_checks_its_fields_and_reads_the_batch_axis(lenet5):
    with pytest.raises(ValueError):
        Workload("training", 1)
    with pytest.raises(ValueError):
        Workload("inference", 0)
    assert label({"kind": "training-step", "batch": 256, "accelerators": 16}) == "train step ×256 (16 accelerators)"
    from nncc.loading import load_model

    assert model_batch(load_model(lenet5)) == 1


def test_compare_shows_workload_and_per_sample_for_all_six(tmp_path, capsys, lenet5):
    out = tmp_path / "compare.json"
    code, table, err = run(capsys, "compare", lenet5, "--targets", ",".join(SIX), "--json", out)
    assert code == 0, err
    header = table.splitlines()[2]
    assert "| workload | latency / sample | energy / sample |" in header
    results = json.loads(out.read_text())["targets"]
    for name in SIX:
        t = results[name]["totals"]
        assert t["workload"] == DEFAULT_WORKLOAD[name] and "latency_s" in t and "energy_j" in t  # raw totals kept
        row = f"| {name} | {label(t['workload'])} | {fmt_seconds(t['per_sample']['latency_s'])} | {fmt_joules(t['per_sample']['energy_j'])} |"
        assert row in table, row
    assert "| hypar | train step ×256 (16 accelerators) |" in table and "| mobile-cpu | inference ×1 |" in table
    assert "truenorth: the pipeline interval" in table


def test_batch_scales_the_run_and_amortizes_per_sample(lenet5):
    one, eight = totals(lenet5, "sparse-tc", batch=1), totals(lenet5, "sparse-tc", batch=8)
    assert eight["workload"]["batch"] == 8
    assert eight["latency_s"] > one["latency_s"] and eight["energy_j"] > one["energy_j"]
    # Batched kernels fill more of each tile and share each launch: cheaper per sample.
    assert eight["per_sample"]["latency_s"] <= one["per_sample"]["latency_s"] / 2
    assert eight["per_sample"]["energy_j"] <= one["per_sample"]["energy_j"]
    base, big = totals(lenet5, "hypar"), totals(lenet5, "hypar", batch=512)
    assert big["workload"] == {"kind": "training-step", "batch": 512, "accelerators": 16}
    assert big["latency_s"] > base["latency_s"] and big["energy_j"] > base["energy_j"]
    # The weight-gradient exchange does not grow with the batch: a larger step costs less per sample.
    assert big["per_sample"]["latency_s"] < base["per_sample"]["latency_s"]
    assert big["per_sample"]["energy_j"] < base["per_sample"]["energy_j"]


def test_batch_option_applies_agrees_or_refuses(tmp_path, capsys, lenet5):
    out = tmp_path / "out"
    code, _, err = run(capsys, "compile", lenet5, "-t", "sparse-tc", "--batch", "4", "-o", out, "--verify", "0", "--format", "json")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["workload"]["batch"] == 4 and report["target"]["config"]["batch"] == 4
    code, _, err = run(capsys, "compile", lenet5, "-t", "sparse-tc", "--batch", "4", "--set", "batch=4", "-o", out, "--verify", "0")
    assert code == 0, err
    code, _, err = run(capsys, "compile", lenet5, "-t", "sparse-tc", "--batch", "4", "--set", "batch=2", "-o", out)
    assert code == 2 and err.strip() == "nncc: error: --batch: --batch 4 and --set batch=2 disagree for target 'sparse-tc'"
    code, _, err = run(capsys, "compile", lenet5, "-t", "reram", "--batch", "4", "-o", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "target 'reram' has no batch setting" in err
    code, _, err = run(capsys, "compare", lenet5, "--targets", "reram,ucnn", "--batch", "4")
    assert code == 2 and "has no batch setting" in err
    code, table, err = run(capsys, "compare", lenet5, "--targets", "reram,sparse-tc", "--batch", "4")
    assert code == 0, err
    assert "| sparse-tc | inference ×4 |" in table and "| reram | inference ×1 |" in table
    assert "`--batch 4`: reram has no batch setting" in table
    # No per-target MACs column (sparse-tc's run of 4 would count 4x the MACs of reram's run of
    # one); the model's own MACs once, under the table.
    header = next(line for line in table.splitlines() if line.startswith("| target |"))
    assert "MACs" not in header
    assert "The model as exported (batch 1): 417k MACs per run, 61.7k parameters;" in table


def test_gate_per_sample_and_total(tmp_path, capsys, lenet5):
    base = tmp_path / "base.json"
    code, _, err = run(capsys, "compare", lenet5, "--targets", "sparse-tc", "--json", base)
    assert code == 0, err
    # Batch 8 against a batch-1 baseline: each run costs more, each sample far less.
    code, table, err = run(capsys, "compare", lenet5, "--targets", "sparse-tc", "--batch", "8", "--baseline", base)
    assert code == 0, err
    assert "Gate passed (per-sample)" in table and "Δ latency (per-sample)" in table
    code, table, err = run(capsys, "compare", lenet5, "--targets", "sparse-tc", "--batch", "8", "--baseline", base,
                           "--gate", "total", "--max-regression", "0.1%")
    assert code == 1 and "sparse-tc energy_j (total)" in err
    assert "the workload changed (inference ×1 → inference ×8)" in table
    # The same figures gated by hand, both ways.
    data = json.loads(base.read_text())["targets"]
    worse = json.loads(json.dumps(data))
    worse["sparse-tc"]["totals"]["per_sample"]["latency_s"] *= 2
    assert compare._gate(worse, data, 0.05)[1] and not compare._gate(worse, data, 0.05, "total")[1]
    worse = json.loads(json.dumps(data))
    worse["sparse-tc"]["totals"]["energy_j"] *= 2
    assert compare._gate(worse, data, 0.05, "total")[1] and not compare._gate(worse, data, 0.05)[1]


def test_gate_on_an_old_baseline_falls_back_to_totals(tmp_path, capsys, lenet5):
    base = tmp_path / "base.json"
    assert run(capsys, "compare", lenet5, "--targets", "mobile-cpu", "--json", base)[0] == 0
    data = json.loads(base.read_text())
    for row in data["targets"].values():  # as written before reports declared workloads
        del row["totals"]["workload"], row["totals"]["per_sample"]
    row["totals"]["latency_s"] /= 2
    base.write_text(json.dumps(data))
    code, table, err = run(capsys, "compare", lenet5, "--targets", "mobile-cpu", "--baseline", base)
    assert code == 1 and "mobile-cpu latency_s (per-sample) +100.0%" in err
    assert "the baseline has no per-sample figures" in table
