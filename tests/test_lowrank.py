"""factorize (FactorizeLowRank): structure, numbers against onnxruntime, error bounds, ranks.

Tolerances: full rank reproduces outputs within 1e-5 absolute (float32 rounding of the two
factors; the outputs here are O(1..10)). Truncated, the per-sample output error of y = Wx is
bounded by ||W - W_r||_2 ||x||_2 = s_{r+1} ||x||_2 (plus the same float32 slack).
"""

from __future__ import annotations

import json
import math
import tempfile

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from nncc import analysis, runtime
from nncc.errors import NnccError
from nncc.loading import infer_shapes, load_model
from nncc.passes.lowrank import MARK, FactorizeLowRank

FULL_RANK_TOL = 1e-5
pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _build(nodes, inputs, outputs, inits, opset: int = 17) -> ir.Model:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                              [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    onnx.checker.check_model(proto)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    return ir.from_proto(proto)


def _copy(model: ir.Model) -> ir.Model:
    return ir.from_proto(ir.to_proto(model))


def _run(model: ir.Model, feed: dict[str, np.ndarray]) -> np.ndarray:
    return runtime.session(model).run(None, feed)[0]


def _max_error(original: ir.Model, model: ir.Model, feed: dict[str, np.ndarray]) -> float:
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    return float(np.max(np.abs(_run(original, feed).astype(np.float64) - _run(model, feed))))


def _ops(model: ir.Model) -> list[str]:
    return [n.op_type for n in model.graph]


def _factorize(model: ir.Model, **params) -> tuple[ir.Model, FactorizeLowRank, bool]:
    pass_ = FactorizeLowRank(**params)
    modified = pass_(model).modified
    return model, pass_, modified


def gemm_model(n=6, k=10, m=3, trans_a=0, trans_b=1, alpha=1.0, beta=1.0, bias=True, seed=0) -> ir.Model:
    rng = np.random.default_rng(seed)
    inits = {"w": rng.normal(size=(n, k) if trans_b else (k, n)) * 0.5}
    if bias:
        inits["c"] = rng.normal(size=n)
    node = helper.make_node("Gemm", ["x", "w"] + (["c"] if bias else []), ["y"], name="fc",
                            transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    return _build([node], [("x", [k, m] if trans_a else [m, k])], [("y", [m, n])], inits)


def conv_model(c=4, n=6, kernel=(3, 3), size=(13, 11), group=1, seed=0, **attrs) -> ir.Model:
    rng = np.random.default_rng(seed)
    inits = {"w": rng.normal(size=(n, c // group, *kernel)) * 0.3, "b": rng.normal(size=n)}
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=group, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, *size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(a, np.float32), k) for k, a in inits.items()])
    proto = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), strict_mode=True)
    return ir.from_proto(proto)


def _feed(model: ir.Model, seed: int = 1, count: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.normal(size=tuple(v.shape)).astype(np.float32) for v in model.graph.inputs}


# --------------------------------------------------------------------------- full rank


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,bias", [(0, 1, 1.0, 1.0, True), (0, 0, 1.0, 1.0, True),
                                                             (1, 1, 0.5, 2.0, True), (1, 0, -1.5, 0.25, True),
                                                             (0, 0, 2.0, 1.0, False)])
def test_gemm_full_rank_reproduces_outputs(trans_a, trans_b, alpha, beta, bias):
    original = gemm_model(trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, bias=bias)
    model, pass_, modified = _factorize(_copy(original), rank_ratio=1.0)
    assert modified and _ops(model) == ["Gemm", "Gemm"]
    layer = pass_.stats["layers"][0]
    assert layer["rank"] == layer["full_rank"] == 6 and layer["spectral_error"] == 0.0
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert _max_error(original, model, _feed(original)) <= FULL_RANK_TOL


def test_matmul_batched_full_rank():
    rng = np.random.default_rng(2)
    original = _build([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [("x", [2, 5, 16])], [("y", [2, 5, 12])],
                      {"w": rng.normal(size=(16, 12)) * 0.3})
    model, pass_, _ = _factorize(_copy(original), rank_ratio=1.0)
    assert _ops(model) == ["MatMul", "MatMul"]
    hidden = model.graph.node(0).outputs[0]
    assert list(hidden.shape) == [2, 5, 12]  # full rank = min(16, 12)
    assert _max_error(original, model, _feed(original)) <= FULL_RANK_TOL


def test_matmul_constant_left_operand():
    rng = np.random.default_rng(3)
    original = _build([helper.make_node("MatMul", ["w", "x"], ["y"], name="mm")], [("x", [3, 20, 4])], [("y", [3, 8, 4])],
                      {"w": rng.normal(size=(8, 20)) * 0.3})
    model, pass_, _ = _factorize(_copy(original), rank_ratio=1.0)
    assert _max_error(original, model, _feed(original)) <= FULL_RANK_TOL
    model, pass_, _ = _factorize(_copy(original), rank_ratio=0.5, min_params_saving=False)
    assert list(model.graph.node(0).outputs[0].shape) == [3, 4, 4]


CONV_CASES = {
    "stride2-asym-pads-dilation": dict(kernel=(3, 3), strides=[2, 2], pads=[1, 0, 2, 1], dilations=[2, 1]),
    "nonsquare-kernel-strides": dict(kernel=(3, 2), strides=[2, 3], pads=[0, 1, 2, 0], dilations=[1, 2]),
    "same-upper": dict(kernel=(3, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    "same-lower-5x5": dict(kernel=(5, 5), strides=[2, 1], auto_pad="SAME_LOWER"),
    "valid": dict(kernel=(3, 3), auto_pad="VALID"),
}


@pytest.mark.parametrize("scheme", ["channel", "spatial"])
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_full_rank_reproduces_outputs(scheme, case):
    original = conv_model(**CONV_CASES[case])
    model, pass_, modified = _factorize(_copy(original), rank_ratio=1.0, scheme=scheme)
    assert modified and _ops(model) == ["Conv", "Conv"]
    assert pass_.stats["layers"][0]["scheme"] == scheme
    assert _max_error(original, model, _feed(original)) <= FULL_RANK_TOL


def test_conv1d_and_pointwise_use_channel_under_spatial():
    for model, note in [(conv_model(kernel=(1, 1)), "1x1"), (_conv1d(), "1-D")]:
        original = _copy(model)
        model, pass_, _ = _factorize(model, rank_ratio=1.0, scheme="spatial")
        layer = pass_.stats["layers"][0]
        assert layer["scheme"] == "channel" and note in layer["note"]
        assert _max_error(original, model, _feed(original)) <= FULL_RANK_TOL


def _conv1d() -> ir.Model:
    rng = np.random.default_rng(4)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c1d", strides=[2], pads=[1, 2])
    return _build([node], [("x", [1, 5, 17])], [("y", [1, 7, 9])], {"w": rng.normal(size=(7, 5, 3))})


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("scheme,rank,w1,w2", [("channel", 8, [8, 16, 3, 3], [32, 8, 1, 1]),
                                               ("spatial", 12, [12, 16, 3, 1], [32, 12, 1, 3])])
def test_conv_structure(scheme, rank, w1, w2):
    model = conv_model(c=16, n=32, kernel=(3, 3), size=(16, 16), pads=[1, 1, 1, 1], strides=[2, 2])
    before = sum(layer.macs for layer in analysis.layers(model))
    _, pass_, _ = _factorize(model, rank_ratio=0.25, scheme=scheme)
    first, second = list(model.graph)
    assert (first.op_type, second.op_type) == ("Conv", "Conv")
    assert list(first.inputs[1].shape) == w1 and list(second.inputs[1].shape) == w2
    assert second.inputs[2].name == "b" and len(first.inputs) == 2  # the bias goes to the last conv
    assert first.metadata_props[MARK] == second.metadata_props[MARK] == "1"
    layer = pass_.stats["layers"][0]
    assert layer["rank"] == rank and layer["params_after"] == rank * sum(layer["matrix_shape"])
    # The pass's MAC accounting agrees with the shared layer table of the rewritten graph.
    infer_shapes(model, "test")
    assert layer["macs_before"] == before
    assert layer["macs_after"] == sum(x.macs for x in analysis.layers(model))
    assert pass_.stats["macs_after"] < pass_.stats["macs_before"]


def test_idempotent_through_serialization():
    model = gemm_model(n=24, k=40, m=2)
    model, _, modified = _factorize(model, rank_ratio=0.25)
    assert modified
    reloaded = ir.from_proto(ir.to_proto(model))  # the mark survives a save
    _, pass_, again = _factorize(reloaded, rank_ratio=0.25)
    assert not again and pass_.stats["already_factorized_nodes"] == 2 and pass_.stats["factorized"] == 0


def test_rejects_bad_parameters():
    for bad in [dict(rank_ratio=0.0), dict(rank_ratio=1.5), dict(energy=None), dict(energy=1.2)]:
        with pytest.raises(NnccError):
            FactorizeLowRank(**bad)
    assert FactorizeLowRank.from_params({"rank_ratio": "0.25", "scheme": "spatial"}).rank_ratio == 0.25


# --------------------------------------------------------------------------- error bounds


def test_gemm_output_error_within_spectral_bound():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(20, 32)).astype(np.float32)
    original = _build([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], [("x", [64, 32])], [("y", [64, 20])], {"w": w})
    model, pass_, _ = _factorize(_copy(original), rank_ratio=0.3)
    layer = pass_.stats["layers"][0]
    s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    r = layer["rank"]
    assert r == 6 and math.isclose(layer["spectral_error"], s[r], rel_tol=1e-9)
    assert math.isclose(layer["frobenius_error"], np.sqrt(np.sum(s[r:] ** 2)), rel_tol=1e-9)
    x = rng.normal(size=(64, 32)).astype(np.float32)
    err = np.linalg.norm(_run(original, {"x": x}).astype(np.float64) - _run(model, {"x": x}), axis=1)
    bound = layer["spectral_error"] * np.linalg.norm(x.astype(np.float64), axis=1)
    assert np.all(err <= bound * (1 + 1e-5) + 1e-5)
    assert np.max(err / bound) > 0.3  # the bound is not vacuous


def _layer_stats(op: str, shape: tuple[int, int], seed: int, **params) -> dict:
    rng = np.random.default_rng(seed)
    m, n = shape
    if op == "gemm":
        model = _build([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")], [("x", [1, m])], [("y", [1, n])],
                       {"w": rng.normal(size=(m, n))})
    else:
        model = conv_model(c=m, n=n, kernel=(3, 3), size=(7, 7), seed=seed)
    _, pass_, _ = _factorize(model, min_params_saving=False, **params)
    return pass_.stats["layers"][0]


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["gemm", "channel", "spatial"]), m=st.integers(1, 12), n=st.integers(1, 12),
       ratios=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=2).map(sorted), seed=st.integers(0, 3))
def test_higher_rank_never_raises_error_bound(op, m, n, ratios, seed):
    scheme = "spatial" if op == "spatial" else "channel"
    lo, hi = (_layer_stats("gemm" if op == "gemm" else "conv", (m, n), seed, rank_ratio=r, scheme=scheme) for r in ratios)
    assert lo["rank"] <= hi["rank"]
    assert hi["spectral_error"] <= lo["spectral_error"] + 1e-12
    assert hi["frobenius_error"] <= lo["frobenius_error"] + 1e-12
    assert hi["params_after"] >= lo["params_after"]


@settings(max_examples=25, deadline=None)
@given(m=st.integers(2, 16), n=st.integers(2, 16), energies=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=2).map(sorted))
def test_higher_energy_keeps_at_least_that_energy(m, n, energies):
    lo, hi = (_layer_stats("gemm", (m, n), 0, energy=e) for e in energies)
    assert lo["rank"] <= hi["rank"] and hi["frobenius_error"] <= lo["frobenius_error"] + 1e-12
    assert hi["energy_kept"] >= energies[1] - 1e-9


# --------------------------------------------------------------------------- randomized SVD


def test_randomized_always_on_small_matrix_and_in_stats():
    rng = np.random.default_rng(6)
    original = _build([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [("x", [4, 40])], [("y", [4, 30])],
                      {"w": rng.normal(size=(40, 30))})
    model, pass_, _ = _factorize(_copy(original), rank_ratio=1.0, randomized="always")
    layer = pass_.stats["layers"][0]
    assert layer["svd"] == "randomized" and layer["frobenius_error"] < 1e-9
    assert _max_error(original, model, _feed(original)) <= FULL_RANK_TOL


# --------------------------------------------------------------------------- skips


def test_skips_are_recorded():
    rng = np.random.default_rng(7)
    inits = {"dw": rng.normal(size=(4, 1, 3, 3)) * 0.3, "gw": rng.normal(size=(8, 2, 3, 3)) * 0.3, "sq": rng.normal(size=(8, 8)) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "dw"], ["a"], name="depthwise", group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "gw"], ["b"], name="grouped", group=2, pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["b", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "sq"], ["g"], name="square"),
             helper.make_node("MatMul", ["g", "f2"], ["y"], name="activations")]
    nodes.insert(0, helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([-1, 8], np.int64))))
    nodes.insert(0, helper.make_node("Transpose", ["x2"], ["f2"], perm=[1, 0]))
    model = _build(nodes, [("x", [1, 4, 4, 4]), ("x2", [3, 8])], [("y", [16, 3])], inits)
    original = _copy(model)
    _, pass_, modified = _factorize(model)
    reasons = {s["name"]: s["reason"] for s in pass_.stats["skipped"]}
    assert not modified and pass_.stats["factorized"] == 0
    assert "depthwise" in reasons["depthwise"] and "grouped" in reasons["grouped"]
    assert "no saving" in reasons["square"] and "constant operand" in reasons["activations"]
    # rank_ratio=1.0 forces the factorization even where it costs parameters.
    _, pass_, modified = _factorize(model, rank_ratio=1.0)
    assert modified and [layer["name"] for layer in pass_.stats["layers"]] == ["square"]
    assert _max_error(original, model, _feed(original)) <= FULL_RANK_TOL


def test_default_parameters_on_conv_bn_model(conv_bn_path):
    original, model = load_model(conv_bn_path), load_model(conv_bn_path)
    pass_ = FactorizeLowRank()
    pass_(model)
    for layer in pass_.stats["layers"]:
        assert layer["energy_kept"] >= 0.9 - 1e-9 and layer["params_after"] < layer["params_before"]
    assert pass_.stats["factorized"] + len(pass_.stats["skipped"]) == 2
    json.dumps(pass_.stats)  # the report stores it as is
    infer_shapes(model, conv_bn_path)
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    error = runtime.compare_outputs(runtime.session(original), runtime.session(model), runtime.sample_inputs(original, 2))
    assert np.isfinite(error["max_abs_error"])


# --------------------------------------------------------------------------- accuracy and speed


_LENET = None


def lenet5_accuracy(**params) -> tuple[float, dict]:
    """Top-1 of the trained LeNet-5 on the MNIST test split after ``factorize`` (and the stats)."""
    from nncc import models
    from nncc.models import mnist

    global _LENET
    _, _, x_te, y_te = mnist.mnist_split()
    if _LENET is None:
        with tempfile.TemporaryDirectory() as tmp:
            _LENET = ir.to_proto(load_model(models.export("lenet5", f"{tmp}/lenet5.onnx")))
    model = ir.from_proto(_LENET)
    pass_ = FactorizeLowRank(**params)
    pass_(model)
    return runtime.top1_accuracy(runtime.session(model), x_te, y_te), pass_.stats


def test_lenet5_accuracy():
    """Printed figures; only full rank and the defaults (energy 0.9) are asserted.

    Uniform rank_ratio without fine-tuning cuts the 10-way classifier (fc3) and conv1 too,
    so 0.5 and 0.25 lose much more than the energy rule does.
    """
    base, _ = lenet5_accuracy(rank_ratio=1.0)
    assert base >= 0.975  # full rank keeps the trained model's 98.1%
    for params in [{}, {"scheme": "spatial"}, {"rank_ratio": 0.5}, {"rank_ratio": 0.25}]:
        acc, stats = lenet5_accuracy(**params)
        ranks = {layer["name"]: f"{layer['rank']}/{layer['full_rank']}" for layer in stats["layers"]}
        print(f"lenet5 factorize {params or 'defaults'}: top-1 {acc:.2%} (full rank {base:.2%}); ranks {ranks}; "
              f"weights {stats['params_before']} -> {stats['params_after']}; MACs {stats['macs_before']} -> {stats['macs_after']}")
        if not params:
            assert acc >= base - 0.03


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_zoo_mac_reduction(name, tmp_path):
    """rank_ratio=0.25 on the zoo nets: MACs fall and outputs stay finite. Realized onnxruntime
    speedups are timings, so they live in benchmarks/compression.py."""
    from nncc import models

    path = models.export(name, tmp_path / f"{name}.onnx")
    original, model = load_model(path), load_model(path)
    pass_ = FactorizeLowRank(rank_ratio=0.25)
    pass_(model)
    infer_shapes(model, path)
    macs_before = sum(layer.macs for layer in analysis.layers(original))
    macs_after = sum(layer.macs for layer in analysis.layers(model))
    error = runtime.compare_outputs(runtime.session(original), runtime.session(model), runtime.sample_inputs(original, 1, seed=1))
    print(f"{name} factorize rank_ratio=0.25: MACs {macs_before} -> {macs_after}; {error}")
    assert macs_before / macs_after > 1.5 and np.isfinite(error["max_abs_error"])
