"""prune-channels: coupled groups, consistent reslicing, and exactness when only dead channels go.

Pruning changes outputs by design, so the numerical check is exact only on models whose
removed channels are planted dead: producer filter, bias, BN gamma and beta all zero, so the
channel is exactly 0 after BN (and after Relu/Clip/PRelu/Mul) and removing it from every
consumer changes no sum. Then the pruned model must match the original to EXACT_TOL, which
is float32 re-association noise (the kernels sum fewer, re-blocked terms).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nncc import runtime
from nncc.loading import infer_shapes, load_model
from nncc.passes.prune_channels import METADATA_KEY, PruneChannels

EXACT_TOL = 1e-5


def _save(tmp_path, nodes, inits, x_shape=(1, 3, 8, 8), outputs=("y",), name="m"):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10))
    onnx.checker.check_model(model)  # inference gave the outputs their shapes
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _rand(rng, *shape, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def _dead(array, channels, axis=0):
    """Zero ``channels`` of ``array`` along ``axis`` (planting dead channels)."""
    out = np.array(array, dtype=np.float32)
    index = [slice(None)] * out.ndim
    index[axis] = list(channels)
    out[tuple(index)] = 0
    return out


def _bn(rng, c, dead=()):
    return {"g": _dead(rng.uniform(0.5, 1.5, c), dead), "be": _dead(rng.normal(size=c), dead),
            "m": rng.normal(size=c).astype(np.float32), "v": rng.uniform(0.5, 2, c).astype(np.float32)}


def _bn_node(prefix, x, y):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}{k}" for k in ("g", "be", "m", "v")], [y], name=f"{prefix}bn")


def _prefixed(prefix, params):
    return {f"{prefix}{k}": v for k, v in params.items()}


def _run(path, **params):
    original, model = load_model(path), load_model(path)
    pass_ = PruneChannels(**params)
    result = pass_(model)
    assert result.model is model
    infer_shapes(model, path)
    onnx.checker.check_model(ir.to_proto(model))
    error = runtime.compare_outputs(runtime.session(original), runtime.session(model), runtime.sample_inputs(original, 2))
    return model, pass_.stats, result.modified, error["max_abs_error"]


def _shapes(model):
    return {name: tuple(v.const_value.shape) for name, v in model.graph.initializers.items()}


def _weight(model, node_name, index=1):
    node = next(n for n in model.graph if n.name == node_name)
    return node.inputs[index].const_value.numpy()


def _chain(tmp_path, rng, dead_a=(), dead_b=(), reshape=False):
    """x -> Conv A(3->8) -> BN -> Relu -> MaxPool -> Conv B(8->6) -> Relu -> Flatten/Reshape -> Gemm -> y."""
    inits = {"wa": _dead(_rand(rng, 8, 3, 3, 3), dead_a), "ba": _dead(_rand(rng, 8), dead_a),
             **_prefixed("a", _bn(rng, 8, dead_a)),
             "wb": _dead(_rand(rng, 6, 8, 3, 3), dead_b), "bb": _dead(_rand(rng, 6), dead_b),
             "fc": _rand(rng, 5, 6 * 4 * 4, scale=0.1), "fcb": _rand(rng, 5), "shape": np.array([1, 96], np.int64)}
    flat = (helper.make_node("Reshape", ["rb", "shape"], ["f"], name="reshape") if reshape
            else helper.make_node("Flatten", ["rb"], ["f"], name="flatten"))
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["ca"], name="convA", pads=[1, 1, 1, 1]),
             _bn_node("a", "ca", "na"), helper.make_node("Relu", ["na"], ["ra"], name="reluA"),
             helper.make_node("MaxPool", ["ra"], ["pa"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["pa", "wb", "bb"], ["cb"], name="convB", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["cb"], ["rb"], name="reluB"), flat,
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1)]
    return _save(tmp_path, nodes, inits, name="chain")


@pytest.mark.parametrize("reshape", [False, True])
def test_chain_dead_channels_removed_exactly(tmp_path, reshape):
    rng = np.random.default_rng(0)
    path = _chain(tmp_path, rng, dead_a=[0, 2, 5, 7], dead_b=[1, 2, 4], reshape=reshape)
    model, stats, modified, error = _run(path, ratio=0.5)
    assert modified and error <= EXACT_TOL
    assert _weight(model, "convA").shape == (4, 3, 3, 3)
    assert _weight(model, "convB").shape == (3, 4, 3, 3)
    assert _weight(model, "fc").shape == (5, 3 * 16)  # whole 4x4 blocks of columns went
    assert _weight(model, "abn").shape == (4,) and _weight(model, "abn", 4).shape == (4,)
    if reshape:
        assert list(_weight(model, "reshape")) == [1, 48]
    rows = {tuple(r["producers"]): r for r in stats["groups"]}
    assert rows[("convA",)]["removed"] == [0, 2, 5, 7] and rows[("convB",)]["removed"] == [1, 2, 4]
    assert rows[("fc",)]["status"] == "frozen" and "graph output" in rows[("fc",)]["reason"]
    assert stats["macs_after"] < stats["macs_before"] and stats["params_after"] < stats["params_before"]


def test_depthwise_channels_follow_the_producer(tmp_path):
    rng = np.random.default_rng(1)
    dead = [1, 2, 6, 7]
    inits = {"w1": _dead(_rand(rng, 8, 3, 1, 1), dead), **_prefixed("p", _bn(rng, 8, dead)),
             "dw": _dead(_rand(rng, 8, 1, 3, 3), dead), "dwb": _dead(_rand(rng, 8), dead),
             **_prefixed("d", _bn(rng, 8, dead)), "lo": np.float32(0), "hi": np.float32(6),
             "w2": _rand(rng, 4, 8, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="expand"), _bn_node("p", "c1", "n1"),
             helper.make_node("Clip", ["n1", "lo", "hi"], ["r1"], name="relu6"),
             helper.make_node("Conv", ["r1", "dw", "dwb"], ["c2"], name="dw", group=8, pads=[1, 1, 1, 1]),
             _bn_node("d", "c2", "n2"), helper.make_node("Relu", ["n2"], ["r2"], name="relu"),
             helper.make_node("Conv", ["r2", "w2"], ["y"], name="project")]
    model, stats, modified, error = _run(_save(tmp_path, nodes, inits), ratio=0.5)
    assert modified and error <= EXACT_TOL
    dw = next(n for n in model.graph if n.name == "dw")
    assert dw.attributes.get_int("group") == 4 and _weight(model, "dw").shape == (4, 1, 3, 3)
    assert _weight(model, "project").shape == (4, 4, 1, 1) and _weight(model, "expand").shape == (4, 3, 1, 1)
    (row,) = [r for r in stats["groups"] if r["status"] == "pruned"]
    assert row["removed"] == dead and {"expand", "dw", "pbn", "dbn", "project"} <= set(row["members"])


def _residual(tmp_path, rng, dead=(), scales=(1.0, 1.0, 1.0)):
    """Three producers joined by two residual Adds -> one group (like a ResNet stage)."""
    inits, nodes, prev = {"fc": _rand(rng, 5, 8), "fcb": _rand(rng, 5)}, [], None
    for i in range(3):
        inits[f"w{i}"] = _dead(_rand(rng, 8, 8 if i else 3, 3, 3, scale=scales[i]), dead)
        inits.update(_prefixed(f"n{i}", _bn(rng, 8, dead)))
        nodes += [helper.make_node("Conv", [prev or "x", f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  _bn_node(f"n{i}", f"c{i}", f"b{i}")]
        if prev is not None:
            nodes.append(helper.make_node("Add", [f"b{i}", prev], [f"s{i}"], name=f"add{i}"))
        nodes.append(helper.make_node("Relu", [f"s{i}" if prev else f"b{i}"], [f"r{i}"], name=f"relu{i}"))
        prev = f"r{i}"
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc", "fcb"], ["y"], name="fc", transB=1)]
    return _save(tmp_path, nodes, inits, name="residual")


def test_residual_branches_pruned_together(tmp_path):
    rng = np.random.default_rng(2)
    model, stats, modified, error = _run(_residual(tmp_path, rng, dead=[1, 3, 4, 6]), ratio=0.5)
    assert modified and error <= EXACT_TOL
    (row,) = [r for r in stats["groups"] if r["status"] == "pruned"]
    assert sorted(row["producers"]) == ["conv0", "conv1", "conv2"] and row["removed"] == [1, 3, 4, 6]
    assert [_weight(model, f"conv{i}").shape for i in range(3)] == [(4, 3, 3, 3), (4, 4, 3, 3), (4, 4, 3, 3)]
    assert _weight(model, "fc").shape == (5, 4)


def test_residual_group_shares_one_ranking(tmp_path):
    rng = np.random.default_rng(3)
    path = _residual(tmp_path, rng, scales=(1.0, 0.01, 3.0))
    original = load_model(path)
    summed = sum(np.abs(_weight(original, f"conv{i}")).reshape(8, -1).sum(1) for i in range(3))
    _, stats, modified, _ = _run(path, ratio=0.5)
    (row,) = [r for r in stats["groups"] if r["status"] == "pruned"]
    assert row["removed"] == sorted(np.argsort(summed, kind="stable")[:4].tolist())


def test_concat_maps_pruned_channels_to_offsets(tmp_path):
    rng = np.random.default_rng(4)
    inits = {"wa": _dead(_rand(rng, 4, 3, 3, 3), [0, 2]), "wb": _dead(_rand(rng, 6, 3, 3, 3), [1, 3, 5]),
             "wc": _rand(rng, 5, 10, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "wa"], ["ca"], name="convA"), helper.make_node("Relu", ["ca"], ["ra"], name="reluA"),
             helper.make_node("Conv", ["x", "wb"], ["cb"], name="convB"), helper.make_node("Relu", ["cb"], ["rb"], name="reluB"),
             helper.make_node("Concat", ["ra", "rb"], ["cat"], name="cat", axis=1),
             helper.make_node("Conv", ["cat", "wc"], ["y"], name="convC")]
    path = _save(tmp_path, nodes, inits)
    original = load_model(path)
    model, stats, modified, error = _run(path, ratio=0.5)
    assert modified and error <= EXACT_TOL
    kept = [1, 3] + [4 + c for c in (0, 2, 4)]
    np.testing.assert_array_equal(_weight(model, "convC"), _weight(original, "convC")[:, kept])
    (composite,) = [r for r in stats["groups"] if "concat" in r]
    assert composite["channels_before"] == 10 and composite["channels_after"] == 5


def test_nested_concat_followed_by_residual_add(tmp_path):
    rng = np.random.default_rng(14)
    dead = {"a": [0], "b": [1, 2], "c": [0, 3]}
    inits = {"wa": _dead(_rand(rng, 2, 3, 1, 1), dead["a"]), "wb": _dead(_rand(rng, 4, 3, 1, 1), dead["b"]),
             "wc": _dead(_rand(rng, 4, 3, 1, 1), dead["c"]), "wd": _dead(_rand(rng, 10, 3, 1, 1), [0, 3, 4, 6, 9]),
             "wo": _rand(rng, 3, 10, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", f"w{k}"], [f"c{k}"], name=f"conv{k}") for k in "dabc"]
    nodes += [helper.make_node("Concat", ["ca", "cb"], ["ab"], name="cat1", axis=1),
              helper.make_node("Concat", ["ab", "cc"], ["abc"], name="cat2", axis=1),
              helper.make_node("Add", ["cd", "abc"], ["s"], name="add"),  # a producer coupled to a composite
              helper.make_node("Conv", ["s", "wo"], ["y"], name="out")]
    path = _save(tmp_path, nodes, inits)
    original = load_model(path)
    model, stats, modified, error = _run(path, ratio=0.5)
    assert modified and error <= EXACT_TOL
    kept = [1, 2 + 0, 2 + 3, 6 + 1, 6 + 2]
    np.testing.assert_array_equal(_weight(model, "out"), _weight(original, "out")[:, kept])
    np.testing.assert_array_equal(_weight(model, "convd"), _weight(original, "convd")[kept])


def test_statistics_pooling_concat_of_one_group_twice(tmp_path):
    """x-vector pooling: mean and std over time of the same channels, concatenated into a Gemm."""
    rng = np.random.default_rng(15)
    dead = [0, 2, 3, 7]  # the std's Clip floor is 0 so a dead channel's std is exactly 0
    inits = {"w": _dead(_rand(rng, 8, 3, 3), dead), "b": _dead(_rand(rng, 8), dead), "two": np.float32(2),
             "eps": np.float32(0), "ax": np.array([2], np.int64), "fc": _rand(rng, 4, 16), "fcb": _rand(rng, 4)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="frame"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("ReduceMean", ["r"], ["mean"], name="mean", axes=[2], keepdims=0),
             helper.make_node("Unsqueeze", ["mean", "ax"], ["m3"], name="unsq"),
             helper.make_node("Sub", ["r", "m3"], ["d"], name="sub"), helper.make_node("Pow", ["d", "two"], ["d2"], name="pow"),
             helper.make_node("ReduceMean", ["d2"], ["var"], name="var", axes=[2], keepdims=0),
             helper.make_node("Clip", ["var", "eps"], ["vc"], name="clip"), helper.make_node("Sqrt", ["vc"], ["std"], name="sqrt"),
             helper.make_node("Concat", ["mean", "std"], ["stats"], name="cat", axis=1),
             helper.make_node("Gemm", ["stats", "fc", "fcb"], ["y"], name="segment", transB=1)]
    path = _save(tmp_path, nodes, inits, x_shape=(1, 3, 12))
    original = load_model(path)
    model, stats, modified, error = _run(path, ratio=0.5)
    assert modified and error <= EXACT_TOL
    kept = [1, 4, 5, 6]
    np.testing.assert_array_equal(_weight(model, "segment"), _weight(original, "segment")[:, kept + [8 + c for c in kept]])


def test_per_channel_constants_prelu_and_matmul(tmp_path):
    rng = np.random.default_rng(5)
    dead = [0, 1, 2, 7]
    inits = {"w": _dead(_rand(rng, 8, 3, 3, 3), dead), "mul": _rand(rng, 8, 1, 1), "add": _dead(_rand(rng, 8, 1, 1), dead),
             "slope": rng.uniform(0, 0.3, (8, 1, 1)).astype(np.float32), "shape": np.array([1, -1], np.int64),
             "mm": _rand(rng, 8 * 36, 6, scale=0.1), "mmb": _rand(rng, 6)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Mul", ["c", "mul"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "add"], ["a"], name="add"), helper.make_node("PRelu", ["a", "slope"], ["p"], name="prelu"),
             helper.make_node("Reshape", ["p", "shape"], ["f"], name="reshape"),
             helper.make_node("MatMul", ["f", "mm"], ["h"], name="matmul"), helper.make_node("Add", ["h", "mmb"], ["y"], name="bias")]
    model, stats, modified, error = _run(_save(tmp_path, nodes, inits), ratio=0.5)
    assert modified and error <= EXACT_TOL
    assert _weight(model, "mul").shape == _weight(model, "add").shape == _weight(model, "prelu").shape == (4, 1, 1)
    assert _weight(model, "matmul").shape == (4 * 36, 6)


def test_matmul_and_gemm_producers_prune_features(tmp_path):
    rng = np.random.default_rng(6)
    inits = {"w1": _dead(_rand(rng, 12, 8), [0, 5, 6, 7], axis=1),  # MatMul: output features are columns
             "w2": _dead(_rand(rng, 8, 8), [2, 3, 4, 7]), "b2": _dead(_rand(rng, 8), [2, 3, 4, 7]),  # Gemm transB
             "w3": _rand(rng, 8, 4)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"), helper.make_node("Relu", ["h1"], ["r1"], name="r1"),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="gemm", transB=1),
             helper.make_node("Relu", ["h2"], ["r2"], name="r2"), helper.make_node("MatMul", ["r2", "w3"], ["y"], name="mm3")]
    model, stats, modified, error = _run(_save(tmp_path, nodes, inits, x_shape=(2, 12)), ratio=0.5)
    assert modified and error <= EXACT_TOL
    assert _weight(model, "mm1").shape == (12, 4) and _weight(model, "gemm").shape == (4, 4)
    assert _weight(model, "gemm", 2).shape == (4,) and _weight(model, "mm3").shape == (4, 4)


@pytest.mark.parametrize("barrier, reason", [
    (lambda: helper.make_node("Transpose", ["r"], ["t"], name="tr", perm=[0, 2, 3, 1]), "Transpose"),
    (lambda: helper.make_node("Softmax", ["r"], ["t"], name="sm", axis=1), "Softmax"),
    (lambda: helper.make_node("Reshape", ["r", "split"], ["t"], name="rs"), "splits or mixes"),
    (lambda: helper.make_node("Conv", ["r", "wg"], ["t"], name="grouped", group=2), "Conv 'grouped'"),
])  # fmt: skip
def test_unmodelled_consumers_freeze_the_group(tmp_path, barrier, reason):
    rng = np.random.default_rng(7)
    inits = {"w": _rand(rng, 8, 3, 3, 3), "split": np.array([1, 2, 4, 36], np.int64), "wg": _rand(rng, 8, 4, 1, 1),
             "w2": _rand(rng, 4, 8, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             barrier(), helper.make_node("Conv", ["r", "w2"], ["y"], name="other")]
    path = _save(tmp_path, nodes, inits, outputs=("y", "t"))
    model, stats, modified, error = _run(path, ratio=0.5)
    row = next(r for r in stats["groups"] if r["producers"] == ["conv"])
    assert row["status"] == "frozen" and reason in row["reason"]
    assert _weight(model, "conv").shape == (8, 3, 3, 3) and error == 0.0


def test_idempotent_through_metadata(tmp_path):
    path = _chain(tmp_path, np.random.default_rng(8))
    model = load_model(path)
    assert PruneChannels(ratio=0.5)(model).modified
    infer_shapes(model, path)
    record = json.loads(model.metadata_props[METADATA_KEY])["groups"]
    assert record["convA"] == {"ratio": 0.5, "criterion": "l1", "channels": 4}
    second = PruneChannels(ratio=0.5)
    assert not second(model).modified
    assert {r["status"] for r in second.stats["groups"]} == {"already pruned", "frozen"}
    saved = tmp_path / "pruned.onnx"
    ir.save(model, saved)
    assert not PruneChannels(ratio=0.5)(load_model(saved)).modified  # the record travels with the file
    again = load_model(saved)
    assert PruneChannels(ratio=0.25)(again).modified  # another ratio is another request
    assert _weight(again, "convA").shape == (3, 3, 3, 3)


def test_criteria_rank_differently(tmp_path):
    # Channel 0: one large weight (L1 3, L2 3). Channel 1: nine weights 0.5 (L1 4.5, L2 1.5).
    # Channel 2: tiny filter but its consumer slice is huge (group lasso keeps it). Channel 3: strong.
    w = np.zeros((4, 1, 3, 3), np.float32)
    w[0, 0, 1, 1] = 3.0
    w[1] = 0.5
    w[2] = 0.1
    w[3] = 2.0
    consumer = np.ones((2, 4, 1, 1), np.float32)
    consumer[:, 2] = 100.0
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="next")]
    path = _save(tmp_path, nodes, {"w": w, "w2": consumer}, x_shape=(1, 1, 6, 6))
    removed = {}
    for criterion in ("l1", "l2", "group-lasso"):
        _, stats, _, _ = _run(path, ratio=0.5, criterion=criterion)
        removed[criterion] = next(r["removed"] for r in stats["groups"] if r["status"] == "pruned")
    assert removed == {"l1": [0, 2], "l2": [1, 2], "group-lasso": [0, 1]}


@pytest.mark.parametrize("params, kept", [({"ratio": 0.9}, 1), ({"ratio": 0.9, "min_channels": 3}, 3),
                                          ({"ratio": 0.9, "round_to": 4}, 4), ({"ratio": 0.3, "round_to": 4}, 8),
                                          ({"ratio": 0.0}, 8)])
def test_min_channels_and_round_to(tmp_path, params, kept):
    path = _chain(tmp_path, np.random.default_rng(9))
    model, stats, modified, _ = _run(path, **params)
    assert _weight(model, "convA").shape[0] == kept
    assert modified == (stats["groups_pruned"] > 0)


def test_layers_selects_groups(tmp_path):
    path = _chain(tmp_path, np.random.default_rng(10))
    model, stats, _, _ = _run(path, ratio=0.5, layers="^convB$")
    assert _weight(model, "convA").shape[0] == 8 and _weight(model, "convB").shape[0] == 3
    assert next(r for r in stats["groups"] if r["producers"] == ["convA"])["status"] == "not selected"


def test_bad_parameters_are_usage_errors(tmp_path):
    from nncc.errors import NnccError

    model = load_model(_chain(tmp_path, np.random.default_rng(11)))
    for params in ({"ratio": 1.0}, {"ratio": -0.1}, {"min_channels": 0}, {"round_to": 0}, {"layers": "("}):
        with pytest.raises(NnccError):
            PruneChannels(**params)(model)


@settings(max_examples=12, deadline=None)
@given(ratio=st.floats(0.0, 0.9), criterion=st.sampled_from(["l1", "l2", "group-lasso"]), round_to=st.integers(1, 3))
def test_pruning_never_raises_macs(tmp_path_factory, ratio, criterion, round_to):
    tmp = tmp_path_factory.mktemp("h")
    for path in (_residual(tmp, np.random.default_rng(12)), _chain(tmp, np.random.default_rng(13), reshape=True)):
        model = load_model(path)
        pass_ = PruneChannels(ratio=ratio, criterion=criterion, round_to=round_to)
        pass_(model)
        assert pass_.stats["macs_after"] <= pass_.stats["macs_before"]
        assert pass_.stats["params_after"] <= pass_.stats["params_before"]
        infer_shapes(model, path)
        runtime.session(model).run(None, runtime.sample_inputs(model, 1)[0])
