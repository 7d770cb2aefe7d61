"""A compile lets the model as loaded go once the passes have made their copy, when nothing after
them reads it (no verification, no ratios to the uncompressed model): fold-batchnorm gives the
copy new weights, and holding the loaded ones too would keep two models in memory while the
target lowers. The report is the same either way."""

from __future__ import annotations

import gc
import weakref

import onnx

from conftest import conv_bn_model
from nncc.driver import CompileOptions, compile_model
from nncc.loading import load_model
from nncc.pipeline import parse_pass_spec
from nncc.registry import TARGETS


def _compile(path, target: str, verify: int, passes=()):
    return compile_model(path, TARGETS.get(target).configure(None, {}), [parse_pass_spec(p) for p in passes],
                         CompileOptions(verify_samples=verify))


def test_the_loaded_weights_go_when_nothing_reads_them_again(tmp_path, monkeypatch):
    path = tmp_path / "conv_bn.onnx"
    onnx.save(conv_bn_model(), path)
    loaded_weights = []
    load = load_model

    def watching_load(*args, **kwargs):  # a weak reference to each weight the compile loads
        model = load(*args, **kwargs)
        loaded_weights.extend(weakref.ref(v.const_value) for v in model.graph.initializers.values())
        return model

    monkeypatch.setattr("nncc.driver.load_model", watching_load)
    gc.disable()  # nothing freed by a cycle collection: only what reference counts let go
    try:
        released = _compile(path, "sparse-tc", 0)
        alive = [ref() for ref in loaded_weights if ref() is not None]
    finally:
        gc.enable()
    assert released.original is None
    # The conv's loaded weight, replaced by its folded one, is gone (the Gemm's, shared by the
    # copy, stays).
    assert loaded_weights and not any(tensor.shape == (8, 3, 3, 3) for tensor in alive)
    kept = _compile(path, "sparse-tc", 2)
    assert kept.original is not None and len(kept.original.graph.initializers) > 0
    assert released.report["totals"] == kept.report["totals"]
    assert released.report["model"] == kept.report["model"]
    assert released.original_facts == kept.original_facts


def test_a_target_with_ratios_after_a_user_pass_keeps_it(tmp_path):
    path = tmp_path / "conv_bn.onnx"
    onnx.save(conv_bn_model(), path)
    result = _compile(path, "reram", 0, ["prune:ratio=0.5"])
    assert result.original is not None and "vs_uncompressed" in result.report["totals"]
