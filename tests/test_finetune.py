"""Fine-tuning: the training loop, the `finetune` pass in pipelines, and `nncc finetune`."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from nncc import models, runtime
from nncc.cli import main
from nncc.errors import NnccError
from nncc.loading import load_model
from nncc.backends.reram import ReramTarget
from nncc.pipeline import PassContext, load_pipeline_toml, run_passes
from nncc.training.finetune import FineTune, TrainConfig, finetune_model
from nncc.training.specs import parse_regularizers

torch.set_num_threads(1)
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "pipelines"
LENET = models.bundled_path("lenet5")


@pytest.fixture(scope="module")
def digits():
    from nncc.models.mnist import mnist_split

    x_train, y_train, x_test, y_test = mnist_split()
    return x_train[:300], y_train[:300], x_test[:200], y_test[:200]


def weights(model):
    return {k: np.array(v.const_value.numpy()) for k, v in model.graph.initializers.items()}


def test_finetune_trains_and_is_deterministic(digits):
    x, y, ex, ey = digits
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=64, seed=1, regularizers=parse_regularizers(["group-lasso:lambda=1e-4"]))
    runs = []
    for _ in range(2):
        model = load_model(LENET)
        stats = finetune_model(model, x, y, config, eval_data=(ex, ey))
        runs.append(weights(model))
    assert stats["samples"] == 300 and stats["eval_samples"] == 200 and len(stats["history"]) == 1
    assert stats["accuracy_after"] > 0.9
    original = weights(load_model(LENET))
    assert any(not np.array_equal(runs[0][k], original[k]) for k in original)
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
    # structure unchanged; onnxruntime runs it and agrees on accuracy with torch
    assert [n.op_type for n in model.graph] == [n.op_type for n in load_model(LENET).graph]
    acc = runtime.top1_accuracy(runtime.session(model), ex, ey)
    assert acc == pytest.approx(stats["accuracy_after"], abs=0.011)


def test_pruned_zeros_stay_zero(digits):
    x, y, _, _ = digits
    ctx = PassContext(data=(x, y))
    passes, _ = load_pipeline_toml(EXAMPLES / "prune_finetune.toml")
    model = load_model(LENET)
    records = run_passes(model, passes, ctx)
    assert [r.name for r in records] == ["prune", "finetune", "prune", "finetune"]
    assert records[1].modified and records[3].modified  # the second finetune trains again (weights changed)
    assert records[3].stats["masked_weights"] >= 1
    for node in model.graph:
        if node.op_type in ("Conv", "Gemm"):
            w = node.inputs[1].const_value.numpy()
            assert np.mean(w == 0) >= 0.74  # prune 0.75 survived the last fine-tuning
    assert records[3].stats["accuracy_after"] > 0.8


@pytest.mark.parametrize("toml", ["ssl_prune_channels.toml", "trp_lowrank.toml", "bitslice_reram.toml", "group_scissor.toml"])
def test_example_pipelines_run(toml, digits):
    x, y, _, _ = digits
    passes, _ = load_pipeline_toml(EXAMPLES / toml)
    model = load_model(LENET)
    # The examples are written for `nncc compile -t reram`: its crossbars reach the passes.
    records = run_passes(model, passes, PassContext(data=(x, y), target="reram", crossbar=ReramTarget().crossbar_geometry()))
    assert all("skipped" not in r.stats for r in records if r.name == "finetune")
    sess = runtime.session(model)
    assert runtime.top1_accuracy(sess, x[:100], y[:100]) > 0.5


def test_pass_without_data_skips_and_is_idempotent_with_data(digits, conv_bn_path):
    model = load_model(conv_bn_path)
    result = FineTune()(model)
    assert not result.modified
    x, y, _, _ = digits
    pass_ = FineTune(epochs=1, holdout=0.0)
    model = load_model(LENET)
    with PassContext(data=(x[:100], y[:100])):
        assert pass_(model).modified
        after = weights(model)
        second = FineTune(epochs=1, holdout=0.0)
        assert not second(model).modified
        assert "already" in second.stats["skipped"][0]["reason"]
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, after[k])


def test_pass_params_from_toml_list_and_bad_spec():
    pass_ = FineTune.from_params({"regularizer": ["group-lasso:lambda=1e-4,groups=filters+channels", "hoyer"]})
    assert [r.name for r in pass_.config().regularizers] == ["group-lasso", "hoyer"]
    with pytest.raises(NnccError, match="unknown regularizer"):
        FineTune(regularizer="nope")(load_model(LENET))


def test_labels_out_of_range(digits):
    x, y, _, _ = digits
    with pytest.raises(NnccError, match="labels"):
        finetune_model(load_model(LENET), x[:10], y[:10] + 10, TrainConfig())


def test_cli_finetune(tmp_path, digits, capsys):
    x, y, ex, ey = digits
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=ex, y=ey)
    out = tmp_path / "ft.onnx"
    rc = main(["finetune", str(LENET), "--data", str(tmp_path / "train.npz"), "--eval", str(tmp_path / "test.npz"),
               "-r", "bitslice-l1:alpha=0.05", "--epochs", "1", "--seed", "3", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.exists(), text
    assert "accuracy" in text and "onnxruntime" in text
    assert runtime.top1_accuracy(runtime.session(load_model(out)), ex, ey) > 0.9
    assert not list(tmp_path.glob(".ft.onnx*"))  # no temporary file left behind
    rc = main(["finetune", str(LENET), "--data", str(tmp_path / "train.npz"), "-r", "hoyer:bogus=1", "-o", str(out)])
    assert rc == 2 and "unknown parameter 'bogus'" in capsys.readouterr().err


def test_compile_with_finetune_pipeline_uses_eval_data(tmp_path, digits, capsys):
    x, y, _, _ = digits
    np.savez(tmp_path / "data.npz", x=x[:200], y=y[:200])
    out = tmp_path / "out"
    rc = main(["compile", str(LENET), "--target", "null", "-o", str(out), "--format", "json", "--verify", "0",
               "--pipeline", str(EXAMPLES / "bitslice_reram.toml"), "--eval", str(tmp_path / "data.npz")])
    assert rc == 0, capsys.readouterr().err
    import json

    report = json.loads((out / "report.json").read_text())
    ft = [p for p in report["passes"] if p["name"] == "finetune"][0]
    assert ft["modified"] and ft["stats"]["samples"] == 180


def test_prox_group_lasso_zeroes_whole_groups(digits):
    x, y, _, _ = digits
    model = load_model(LENET)
    config = TrainConfig(epochs=1, lr=0.01, optimizer="sgd", momentum=0.9, prox=True,
                         regularizers=parse_regularizers(["group-lasso:lambda=20,groups=filters,layers=fc1"]))
    stats = finetune_model(model, x[:200], y[:200], config)
    assert stats["history"][0]["penalty"] > 0  # reported although it is not in the loss
    w = next(n for n in model.graph if n.name == "fc1").inputs[1].const_value.numpy()
    zero = np.abs(w).sum(1) == 0
    assert zero.any() and not zero.all()
    assert np.count_nonzero(w[~zero]) == w[~zero].size  # groups, not single weights
    passes = [FineTune.from_params({"epochs": 0, "optimizer": "sgd", "momentum": 0.5, "prox": True})]
    assert passes[0].config().prox and passes[0].config().momentum == 0.5


def test_cosine_schedule_and_shift_augmentation():
    from nncc.training.finetune import lr_at, random_shift

    config = TrainConfig(lr=0.1, schedule="cosine", min_lr=0.01)
    assert lr_at(config, 0, 11) == pytest.approx(0.1)
    assert lr_at(config, 5, 11) == pytest.approx(0.055)
    assert lr_at(config, 10, 11) == pytest.approx(0.01)
    assert lr_at(TrainConfig(lr=0.1), 10, 11) == 0.1
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5) + 1
    shifted = random_shift(x, torch.Generator().manual_seed(0), 1)
    assert shifted.shape == x.shape
    for i in range(2):  # a translation with zero fill: the values kept are a window of the original
        kept = shifted[i, 0][shifted[i, 0] > 0]
        assert set(kept.tolist()) <= set(x[i, 0].flatten().tolist()) and kept.numel() >= 16
    assert torch.equal(random_shift(x, torch.Generator().manual_seed(0), 0), x)
    with pytest.raises(NnccError, match="schedule"):
        finetune_model(load_model(LENET), np.zeros((4, 28, 28), np.float32), np.zeros(4, np.int64),
                       TrainConfig(schedule="step"))


def test_rank_clipping_during_training(digits):
    x, y, _, _ = digits
    model = load_model(LENET)
    config = TrainConfig(epochs=1, lr=0.01, optimizer="sgd", schedule="cosine", shift=2,
                         clip_every=2, clip_tolerance=0.5, clip_crossbar=64, clip_column_factor=8)
    stats = finetune_model(model, x[:200], y[:200], config)
    clipped = {r["node"]: r for r in stats["rank_clipped"]}
    assert clipped, stats["rank_clipped"]
    for node in model.graph:
        if node.name in clipped:  # the weights end exactly at the clipped rank
            w = node.inputs[1].const_value.numpy()
            assert np.linalg.matrix_rank(w.reshape(w.shape[0], -1) if node.op_type == "Conv" else w) == clipped[node.name]["rank"]
    ft = FineTune.from_params({"epochs": 0, "schedule": "cosine", "shift": 2, "clip_every": 5, "clip_tolerance": 0.2})
    assert ft.config().clip_every == 5 and ft.config().schedule == "cosine" and ft.config().shift == 2
