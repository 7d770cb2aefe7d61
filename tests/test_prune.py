"""prune and vector-sparsify: structure (exact sparsity, N-of-L balance) and numbers against onnxruntime.

Tolerances: ratio=0 must reproduce the outputs exactly (abs err 0). Otherwise, for one
linear layer y = W x the error is bounded by the weights removed:
|dy_i| = |sum_j dW_ij x_j| <= sum_j |dW_ij| * max|x|; the test allows float32 rounding of
both runs on top, FP_SLACK * sum_j |W_ij| |x_j|.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from conftest import conv_bn_model
from nncc import analysis, models, runtime
from nncc.loading import load_model
from nncc.passes.prune import PruneWeights, SparsifyVectors, keep_largest_per_vector, vector_sparsity_pattern
from nncc.weights import WeightLayout

FP_SLACK = 1e-6  # float32 accumulation rounding, relative to sum |w||x| (eps 6e-8 x short dot products)


def build(nodes, inputs, outputs, inits, opset=17) -> ir.Model:
    """An in-memory onnx-ir model from onnx.helper pieces (checked by onnx.checker)."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    onnx.checker.check_model(proto, full_check=True)
    return ir.from_proto(proto)


def gemm_model(w: np.ndarray, trans_b: int, batch: int = 4, bias: bool = True) -> ir.Model:
    """y = x @ W^T (transB=1, W [N, K]) or x @ W (transB=0, W [K, N]), plus a bias."""
    n, k = (w.shape[0], w.shape[1]) if trans_b else (w.shape[1], w.shape[0])
    inits = {"w": w.astype(np.float32)}
    inputs = ["x", "w"]
    if bias:
        inits["b"] = np.linspace(-1, 1, n, dtype=np.float32)
        inputs.append("b")
    return build([helper.make_node("Gemm", inputs, ["y"], name="fc", transB=trans_b)], [("x", [batch, k])], [("y", [batch, n])], inits)


def weight(model: ir.Model, name: str) -> np.ndarray:
    return model.graph.initializers[name].const_value.numpy()


def layer_stats(pass_, name: str) -> dict:
    """The pass's ``layers`` record of layer ``name``."""
    (record,) = [r for r in pass_.stats["layers"] if r["name"] == name]
    return record


def names(records: list[dict]) -> set[str]:
    return {r["name"] for r in records}


def run(model: ir.Model, x: np.ndarray) -> np.ndarray:
    return runtime.session(model).run(None, {model.graph.inputs[0].name: x})[0]


def removed_weight_bound(w_old: np.ndarray, w_new: np.ndarray, trans_b: int, x: np.ndarray) -> float:
    """max over outputs of sum |removed w| * max|x|, plus float32 rounding slack."""
    w_old, w_new = (w_old, w_new) if trans_b else (w_old.T, w_new.T)  # rows = outputs
    removed = np.abs(w_old.astype(np.float64) - w_new).sum(axis=1).max()
    slack = FP_SLACK * (np.abs(x.astype(np.float64)) @ np.abs(w_old.T.astype(np.float64))).max()
    return float(removed * np.abs(x).max() + slack)


def conv_bn() -> ir.Model:
    return ir.from_proto(conv_bn_model())


def nonzero_params(model: ir.Model) -> int:
    return sum(int(np.count_nonzero(v.const_value.numpy())) for v in model.graph.initializers.values())


# --- prune: structure -------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_prune_layer_scope_exact_count(ratio):
    model = conv_bn()
    before = {name: weight(model, name) for name in ("w", "b", "fc", "fcb")}
    ops = [n.op_type for n in model.graph]
    p = PruneWeights(ratio=ratio)
    assert p(model).modified == (ratio > 0)
    for name in ("w", "fc"):  # the Conv and Gemm weights
        after = weight(model, name)
        assert after.shape == before[name].shape
        assert after.size - np.count_nonzero(after) == round(ratio * after.size)
        kept = after != 0
        assert np.array_equal(after[kept], before[name][kept])  # survivors are untouched
        if 0 < ratio < 1:  # the largest removed |w| is below the smallest kept
            assert np.abs(before[name][~kept]).max() <= np.abs(before[name][kept]).min()
    for name in ("b", "fcb"):
        assert np.array_equal(weight(model, name), before[name])  # biases are never pruned
    assert [n.op_type for n in model.graph] == ops
    assert layer_stats(p, "conv1")["sparsity"] == round(ratio * 216) / 216
    assert layer_stats(p, "fc1")["weight"] == "fc"
    assert not PruneWeights(ratio=ratio)(model).modified  # idempotent


def _two_scales_model() -> ir.Model:
    rng = np.random.default_rng(3)
    big = rng.normal(size=(16, 8)).astype(np.float32)          # |w| ~ 1
    small = 0.01 * rng.normal(size=(4, 16)).astype(np.float32)  # |w| ~ 0.01
    nodes = [helper.make_node("Gemm", ["x", "big"], ["h"], name="big", transB=1),
             helper.make_node("Gemm", ["h", "small"], ["y"], name="small", transB=1)]
    return build(nodes, [("x", [1, 8])], [("y", [1, 4])], {"big": big, "small": small})


def test_prune_global_and_layer_scope_differ():
    layer, glob = _two_scales_model(), _two_scales_model()
    p_layer, p_global = PruneWeights(ratio=0.5), PruneWeights(ratio=0.5, scope="global")
    p_layer(layer), p_global(glob)
    assert layer_stats(p_layer, "big")["sparsity"] == layer_stats(p_layer, "small")["sparsity"] == 0.5
    # One threshold over both: the whole small-scale layer (64) goes first, then 32 of the big one's 128.
    assert layer_stats(p_global, "small")["sparsity"] == 1.0
    assert layer_stats(p_global, "big")["sparsity"] == (96 - 64) / 128
    assert p_global.stats["sparsity"] == 0.5 and p_global.stats["zeros"] == 96
    assert p_global.stats["threshold"] == pytest.approx(float(np.sort(np.abs(weight(_two_scales_model(), "big")).ravel())[31]))
    assert not PruneWeights(ratio=0.5, scope="global")(glob).modified


def test_prune_shared_weight_pruned_once_and_skips():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 6)).astype(np.float32)
    add = rng.normal(size=(6, 6)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h1"], name="mm1"),
             helper.make_node("MatMul", ["h1", "w"], ["h2"], name="mm2"),
             helper.make_node("MatMul", ["h2", "add"], ["h3"], name="mm3"),
             helper.make_node("Add", ["h3", "add"], ["y"], name="add")]
    model = build(nodes, [("x", [6, 6])], [("y", [6, 6])], {"w": w, "add": add})
    p = PruneWeights(ratio=0.5)
    assert p(model).modified
    mm1, mm2 = list(model.graph)[:2]
    assert mm1.inputs[1] is mm2.inputs[1]  # still one tensor
    assert np.count_nonzero(weight(model, "w")) == 18
    assert layer_stats(p, "mm1")["shared_with"] == ["mm1", "mm2"]
    # mm3's weight is also read by the Add: skipped, per layer, naming the weight
    assert {(r["name"], r["weight"]) for r in p.stats["skipped"]} == {("mm3", "add")}
    assert np.array_equal(weight(model, "add"), add)
    assert sorted(model.graph.initializers) == ["add", "w"]


def test_prune_skip_first_last_and_min_params():
    model = ir.from_proto(models_lenet_proto())
    p = PruneWeights(ratio=0.5, skip_first_last=True)
    p(model)
    assert names(p.stats["layers"]) == {"conv2", "fc1", "fc2"}  # conv1 first, fc3 last
    assert np.count_nonzero(weight(model, "conv1.weight")) == 150
    model = ir.from_proto(models_lenet_proto())
    p = PruneWeights(ratio=0.5, min_params=1000)
    p(model)
    assert names(p.stats["layers"]) == {"conv2", "fc1", "fc2"}  # conv1 has 150 weights, fc3 840
    assert names(p.stats["skipped"]) == {"conv1", "fc3"}
    assert {r["weight"] for r in p.stats["skipped"]} == {"conv1.weight", "fc3.weight"}


def models_lenet_proto() -> onnx.ModelProto:
    return onnx.load(models.bundled_path("lenet5"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0, 1), st.floats(0, 1), st.sampled_from(["layer", "global"]))
def test_prune_properties(r1, r2, scope):
    """Never more MACs or non-zero params; a higher ratio never lowers sparsity; pruning
    to r1 then to r2 >= r1 equals pruning to r2 at once (the stable order is nested)."""
    lo, hi = sorted((r1, r2))
    base = conv_bn()
    macs = sum(layer.macs for layer in analysis.layers(base))
    low, high, chained = conv_bn(), conv_bn(), conv_bn()
    p_low, p_high = PruneWeights(ratio=lo, scope=scope), PruneWeights(ratio=hi, scope=scope)
    p_low(low), p_high(high)
    PruneWeights(ratio=lo, scope=scope)(chained)
    PruneWeights(ratio=hi, scope=scope)(chained)
    for m in (low, high):
        assert sum(layer.macs for layer in analysis.layers(m)) <= macs
        assert nonzero_params(m) <= nonzero_params(base)
    assert p_high.stats["sparsity"] >= p_low.stats["sparsity"]
    if scope == "layer":
        for name in names(p_low.stats["layers"]):
            assert layer_stats(p_high, name)["sparsity"] >= layer_stats(p_low, name)["sparsity"]
    for name in ("w", "fc"):
        assert np.array_equal(weight(chained, name), weight(high, name))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 40)), elements=st.integers(-3, 3).map(float)),
       st.floats(0, 1), st.integers(1, 9), st.data())
def test_selection_matches_stable_argsort(w, ratio, vector, data):
    """Heavy ties: the O(n) selections pick exactly what a stable argsort picks."""
    model = gemm_model(w, 1, bias=False)
    PruneWeights(ratio=ratio)(model)
    expected = w.copy().ravel()
    expected[np.argsort(np.abs(expected), kind="stable")[:round(ratio * w.size)]] = 0
    assert np.array_equal(weight(model, "w"), expected.reshape(w.shape))
    keep = data.draw(st.integers(0, vector))
    blocks = np.zeros((w.shape[0], -(-w.shape[1] // vector) * vector), np.float32)
    blocks[:, :w.shape[1]] = w
    blocks = blocks.reshape(w.shape[0], -1, vector)
    order = np.argsort(-np.abs(blocks), axis=-1, kind="stable")
    np.put_along_axis(blocks, order[..., keep:], 0, axis=-1)
    assert np.array_equal(keep_largest_per_vector(w, vector, keep), blocks.reshape(w.shape[0], -1)[:, :w.shape[1]])


# --- prune: numbers against onnxruntime -------------------------------------------


def test_prune_ratio_zero_is_exact():
    model, original = conv_bn(), conv_bn()
    assert not PruneWeights(ratio=0.0)(model).modified
    feeds = runtime.sample_inputs(original, 3)
    assert runtime.compare_outputs(runtime.session(original), runtime.session(model), feeds)["max_abs_error"] == 0.0


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.9])
def test_prune_gemm_error_bounded_by_removed_weights(trans_b, ratio):
    rng = np.random.default_rng(7)
    w = rng.normal(size=(12, 40) if trans_b else (40, 12)).astype(np.float32)
    model, original = gemm_model(w, trans_b), gemm_model(w, trans_b)
    PruneWeights(ratio=ratio)(model)
    x = rng.uniform(-2, 2, size=(4, 40)).astype(np.float32)
    error = np.abs(run(model, x) - run(original, x)).max()
    bound = removed_weight_bound(w, weight(model, "w"), trans_b, x)
    assert 0 < error <= bound


# --- vector-sparsify ----------------------------------------------------------------

SHAPES = [  # (op, weight shape, layout, group, input shape)
    ("Conv", (8, 3, 3, 3), "out_first", 1, (1, 3, 6, 6)),       # C*k*k = 27: one short vector per row
    ("Conv", (12, 5, 3, 3), "out_first", 1, (1, 5, 5, 5)),      # 45
    ("Conv", (8, 4, 3, 3), "out_first", 2, (1, 8, 5, 5)),       # grouped
    ("GemmT", (10, 40), "out_first", 1, (2, 40)),               # transB=1: [N, K]
    ("Gemm", (40, 10), "in_first", 1, (2, 40)),                 # transB=0: [K, N]
    ("MatMul", (2, 33, 7), "in_first", 1, (2, 5, 33)),          # batched B [b, K, N]
    ("ConvTranspose", (40, 3, 3, 3), "conv_transpose", 2, (1, 40, 4, 4)),  # reduction C/g = 20
]


def layer_model(op: str, w: np.ndarray, group: int, x_shape) -> ir.Model:
    if op in ("Gemm", "GemmT"):
        return gemm_model(w, int(op == "GemmT"), batch=x_shape[0], bias=False)
    attrs = {"group": group} if op != "MatMul" else {}
    node = helper.make_node(op, ["x", "w"], ["y"], name="layer", **attrs)
    proto = helper.make_model(helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                                [numpy_helper.from_array(w, "w")]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return ir.from_proto(onnx.shape_inference.infer_shapes(proto, strict_mode=True))


def reduction_vectors(w: np.ndarray, op: str, group: int, vector: int):
    """The vectors spelled out with explicit indexing, independently of gemm_view."""
    if op in ("Conv", "GemmT"):
        rows = [w[m].ravel() for m in range(w.shape[0])]
    elif op == "Gemm":
        rows = [w[:, n] for n in range(w.shape[1])]
    elif op == "MatMul":
        rows = [w[b, :, n] for b in range(w.shape[0]) for n in range(w.shape[2])]
    else:  # ConvTranspose [C, M/g, kh, kw]: one row per (group, m, kh, kw) over the group's C/g inputs
        cg = w.shape[0] // group
        rows = [w[g * cg:(g + 1) * cg, m, i, j] for g in range(group) for m in range(w.shape[1])
                for i in range(w.shape[2]) for j in range(w.shape[3])]
    return [row[s:s + vector] for row in rows for s in range(0, len(row), vector)]


@pytest.mark.parametrize("op,shape,layout,group,x_shape", SHAPES)
@pytest.mark.parametrize("vector,keep", [(16, 8), (4, 1), (8, 6)])
def test_vector_sparsify_balanced(op, shape, layout, group, x_shape, vector, keep):
    rng = np.random.default_rng(11)
    w = rng.normal(size=shape).astype(np.float32)
    model, original = layer_model(op, w, group, x_shape), layer_model(op, w, group, x_shape)
    p = SparsifyVectors(vector=vector, keep=keep)
    assert p(model).modified
    new = weight(model, "w")
    assert new.shape == w.shape
    for piece, old in zip(reduction_vectors(new, op, group, vector), reduction_vectors(w, op, group, vector)):
        assert np.count_nonzero(piece) == min(keep, len(piece))  # full vectors: exactly keep
        if np.count_nonzero(piece) < len(piece):
            assert np.abs(old[piece == 0]).max() <= np.abs(old[piece != 0]).min(initial=np.inf)
    pattern = vector_sparsity_pattern(new, vector, WeightLayout(layout, 1, group))
    assert pattern["keep"] == keep and pattern["exact_fraction"] == 1.0 and pattern["balanced_fraction"] == 1.0
    assert pattern["min_nonzero_full"] == keep
    (stats,) = p.stats["layers"]
    assert stats["balanced_fraction"] == 1.0 and stats["vector"] == vector and stats["keep"] == keep
    assert stats["sparsity"] == pytest.approx(1 - np.count_nonzero(new) / new.size)
    assert not SparsifyVectors(vector=vector, keep=keep)(model).modified
    # Numbers: the same removed-weight bound as pruning, per output row of the GEMM view.
    x = rng.uniform(-1, 1, size=x_shape).astype(np.float32)
    # Rows of filter_view are output channels: every output sums over (part of) one row.
    view = WeightLayout(layout, 1, group).filter_view
    per_output = np.abs(view(w).astype(np.float64) - view(new)).sum(axis=1).max()
    slack = FP_SLACK * np.abs(w).sum() * np.abs(x).max()
    assert np.abs(run(model, x) - run(original, x)).max() <= per_output * np.abs(x).max() + slack


def test_vector_sparsify_detects_unbalanced_and_sparsity_parameter():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 32)).astype(np.float32)
    w[0, :12] = 0  # first vector of row 0 has 4 non-zeros (fits 8 slots), the other 7 have 16
    pattern = vector_sparsity_pattern(w, 16, WeightLayout("out_first", 1), keep=8)
    assert pattern["balanced_fraction"] == 1 / 8 and pattern["exact_fraction"] == 0.0
    model = gemm_model(w, 1)
    p = SparsifyVectors(sparsity=0.75)  # keep = 16 - 12 = 4
    p(model)
    assert p.stats["keep"] == 4
    assert vector_sparsity_pattern(weight(model, "w"), 16, WeightLayout("out_first", 1))["keep"] == 4
    assert layer_stats(p, "fc")["exact_fraction"] == 1.0


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SHAPES), st.integers(1, 20), st.data())
def test_gemm_view_roundtrip_and_balance(case, vector, data):
    op, shape, layout, group, _ = case
    keep = data.draw(st.integers(0, vector))
    w = np.random.default_rng(vector).normal(size=shape).astype(np.float32)
    view = WeightLayout(layout, 1, group)
    assert np.array_equal(view.from_gemm_view(view.gemm_view(w), shape), w)
    model = layer_model(op, w, group, case[4])
    SparsifyVectors(vector=vector, keep=keep)(model)
    pattern = vector_sparsity_pattern(weight(model, "w"), vector, view, keep)
    assert pattern["balanced_fraction"] == 1.0 and pattern["exact_fraction"] == 1.0


# --- accuracy on the trained LeNet-5 (MNIST test split, 1,000 digits) ---------------


@pytest.fixture(scope="module")
def mnist_test():
    from nncc.models import mnist

    _, _, x_te, y_te = mnist.mnist_split()
    return x_te, y_te


def lenet_accuracy(pass_, data) -> float:
    model = load_model(models.bundled_path("lenet5"))
    pass_(model)
    return runtime.top1_accuracy(runtime.session(model), *data)


@pytest.mark.parametrize("pass_,floor", [(PruneWeights(ratio=0.5), 0.95), (PruneWeights(ratio=0.5, scope="global"), 0.95),
                                         (SparsifyVectors(), 0.90)], ids=str)
def test_lenet5_accuracy(pass_, floor, mnist_test):
    base = runtime.top1_accuracy(runtime.session(load_model(models.bundled_path("lenet5"))), *mnist_test)
    acc = lenet_accuracy(pass_, mnist_test)
    print(f"\nLeNet-5 MNIST top-1: {base:.3f} -> {acc:.3f} after {pass_} (sparsity {pass_.stats['sparsity']:.3f})")
    assert acc >= floor
