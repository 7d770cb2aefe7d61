"""Pipeline heads shared between the targets of one compare (nncc.pass_sharing)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from nncc.cli import cli
from nncc.compare import compare_targets
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc.loading import load_model
from nncc.pass_base import NnccPass
from nncc.pass_sharing import SharedPasses, shareable_head
from nncc.pipeline import PassContext
from nncc.registry import PASSES, TARGETS

from conftest import light_model


class _Counting:
    """Counts the runs of a registered pass class's apply."""

    def __init__(self, monkeypatch, cls):
        self.runs = 0
        original = cls.apply

        def apply(pass_self, model):
            self.runs += 1
            return original(pass_self, model)

        monkeypatch.setattr(cls, "apply", apply)


def test_a_head_runs_once_and_each_caller_gets_its_own_copy(conv_bn_path, monkeypatch):
    fold = PASSES.get("fold-batchnorm")
    counter = _Counting(monkeypatch, fold)
    original = load_model(conv_bn_path)
    shared = SharedPasses(original)
    context = PassContext()
    shared.prepare([[PASSES.create("fold-batchnorm")], [PASSES.create("fold-batchnorm")]], context)
    first, records_1 = shared.run([PASSES.create("fold-batchnorm")], context)
    second, records_2 = shared.run([PASSES.create("fold-batchnorm")], context)
    assert counter.runs == 1
    assert first is not second and first.graph is not second.graph
    assert [n.op_type for n in first.graph] == [n.op_type for n in second.graph]
    assert "BatchNormalization" not in [n.op_type for n in first.graph]
    assert "BatchNormalization" in [n.op_type for n in original.graph]  # the original is never changed
    assert records_1 == records_2 and records_1[0].stats is not records_2[0].stats
    # The head's new weights are shared by both copies: read-only, so no caller can change the other's.
    folded = next(v for v in first.graph.initializers.values() if v.name.endswith("_bnfold")).const_value.numpy()
    with pytest.raises(ValueError):
        folded[...] = 0


def test_a_head_only_one_caller_runs_is_not_kept(conv_bn_path, monkeypatch):
    # Kept, it would cost a second copy of the model for nothing; its shapes are inferred once.
    counter = _Counting(monkeypatch, PASSES.get("fold-batchnorm"))
    shared = SharedPasses(load_model(conv_bn_path))
    model, records = shared.run([PASSES.create("fold-batchnorm")], PassContext())
    assert counter.runs == 1 and records[0].modified and not shared._heads
    assert "BatchNormalization" not in [n.op_type for n in model.graph]
    assert all(o.shape is not None for n in model.graph for o in n.outputs)


def test_a_longer_head_continues_from_a_shorter_one(conv_bn_path, monkeypatch):
    counter = _Counting(monkeypatch, PASSES.get("fold-batchnorm"))
    shared = SharedPasses(load_model(conv_bn_path))
    shared.prepare([[PASSES.create("fold-batchnorm")], [PASSES.create("fold-batchnorm")]], PassContext())
    model, records = shared.run([PASSES.create("fold-batchnorm"), PASSES.create("eliminate-dead-code")], PassContext())
    assert counter.runs == 1
    assert [r.name for r in records] == ["fold-batchnorm", "eliminate-dead-code"]


def test_target_dependent_passes_are_not_shared():
    rank_clip = PASSES.create("rank-clip")
    assert not rank_clip.target_independent  # it plans for the target's crossbars
    passes = [PASSES.create("fold-batchnorm"), rank_clip, PASSES.create("fold-constants")]
    assert shareable_head(passes, PassContext()) == 1

    @dataclasses.dataclass
    class Plugin(NnccPass):  # a plugin that says nothing is not shared
        name = "plugin-pass"

        def apply(self, model):
            return False

    assert shareable_head([Plugin(), PASSES.create("fold-batchnorm")], PassContext()) == 0


def test_a_pass_wrongly_marked_independent_fails_loudly(conv_bn_path):
    @dataclasses.dataclass
    class ReadsTarget(NnccPass):
        name = "reads-target"
        target_independent = True  # wrong: it reads the geometry

        def apply(self, model):
            PassContext.current().crossbar_for(self.name)
            return False

    context = PassContext(target="reram", crossbar=TARGETS.get("reram").configure(None, {}).crossbar_geometry())
    with pytest.raises(NnccError, match="no compile target"):
        SharedPasses(load_model(conv_bn_path)).run([ReadsTarget()], context)


def test_compare_folds_once_for_every_target_and_reports_as_compile_does(monkeypatch):
    path = light_model("light_shufflenet")
    counter = _Counting(monkeypatch, PASSES.get("fold-batchnorm"))
    options = CompileOptions(verify_samples=0)
    _, _, _ = compare_targets(str(path), "reram,sparse-tc,ucnn", [], options, {}, None, None, None, "5%")
    assert counter.runs == 1
    for name in ("reram", "sparse-tc"):
        alone = compile_model(path, TARGETS.get(name).configure(None, {}), [], CompileOptions(verify_samples=0))
        assert [r.name for r in alone.records] == ["fold-batchnorm"]


def test_compare_json_is_the_same_as_each_compile(tmp_path):
    path = light_model("light_shufflenet")
    out = tmp_path / "c.json"
    result = CliRunner().invoke(cli, ["compare", str(path), "--targets", "sparse-tc,ucnn,hypar",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    compared = json.loads(out.read_text())["targets"]
    for name in ("sparse-tc", "ucnn", "hypar"):
        alone = compile_model(path, TARGETS.get(name).configure(None, {}), [], CompileOptions(verify_samples=0))
        assert compared[name]["totals"] == json.loads(json.dumps(alone.report["totals"]))
    assert np.isfinite(compared["ucnn"]["totals"]["energy_j"])


def test_a_shared_head_that_fails_fails_only_the_targets_that_run_it(monkeypatch):
    def refuse(self, model):
        raise NnccError("fold-batchnorm", "refused")

    monkeypatch.setattr(PASSES.get("fold-batchnorm"), "apply", refuse)
    table, _, _ = compare_targets(str(light_model("light_shufflenet")), "sparse-tc,ucnn,hypar", [],
                                  CompileOptions(verify_samples=0), {}, None, None, None, "5%")
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "refused" in rows["sparse-tc"] and "refused" in rows["ucnn"]
    assert "refused" not in rows["hypar"] and "100.0%" in rows["hypar"]



_KEEPS_SHAPES = sorted(name for name in PASSES.names() if PASSES.get(name).keeps_shapes)


@pytest.mark.parametrize("pass_name", _KEEPS_SHAPES)
@pytest.mark.parametrize("model", ["light_shufflenet", "light_inception_v2", "ppocr_cls"])
def test_a_pass_that_keeps_shapes_gives_the_shapes_inference_gives(pass_name, model):
    """NnccPass.keeps_shapes skips shape inference after the pass: each value's shape and type
    as the pass left them must be what onnx's inference gives (grouped and depthwise convs,
    BatchNorm, concats, residual Sums and Reshapes; legalize-core-ops at 64 splits most layers)."""
    import corpus
    from nncc.pipeline import run_passes
    from nncc.shapes import infer_shapes

    if model.startswith("light_"):
        path, loaded = light_model(model), load_model(light_model(model))
    else:
        path = corpus.path(model)
        loaded = load_model(path, corpus.ENTRY[model].shapes)
    params = {"crossbar": 64} if pass_name == "legalize-core-ops" else {}
    assert run_passes(loaded, [PASSES.create(pass_name, **params)], PassContext())[0].modified

    def shapes():
        return {v.name: (v.shape, v.type) for g in loaded.graphs() for n in g for v in n.outputs}

    kept = shapes()
    infer_shapes(loaded, path)
    assert [k for k, v in shapes().items() if kept.get(k) != v] == []
