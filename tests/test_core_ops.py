"""legalize-core-ops: crossbar-sized core-ops, reduction ops, precision and activations.

Structure (op counts, block sizes, metadata) and numbers (onnxruntime against the original,
with the quantization bounds written out) on tiny graphs built here, and on LeNet-5.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nncc import runtime
from nncc.errors import NnccError
from nncc.loading import infer_shapes, load_model
from nncc.blocks import BLOCK, LAYER, MARK, conv_plan, fc_plan, quantize_symmetric
from nncc.passes.core_ops import LegalizeCoreOps
from nncc.pipeline import PassContext, run_passes


def _save(tmp_path, nodes, x_shape, y_shape, inits, opset=17, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    path = tmp_path / name
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _gemm(tmp_path, k, m, seed=0, trans_b=1, alpha=1.0, beta=1.0, opset=17):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(m, k) if trans_b else (k, m)).astype(np.float32)
    b = rng.normal(size=m).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=trans_b, alpha=alpha, beta=beta)
    return _save(tmp_path, [node], [1, k], [1, m], {"w": w, "b": b}, opset=opset)


def _conv(tmp_path, c, m, k, hw=8, group=1, pads=1, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(m, c // group, k, k)).astype(np.float32)
    b = rng.normal(size=m).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=group, pads=[pads] * 4)
    out = hw + 2 * pads - k + 1
    return _save(tmp_path, [node], [1, c, hw, hw], [1, m, out, out], {"w": w, "b": b})


def _legalize(path, **params):
    original, model = load_model(path), load_model(path)
    p = LegalizeCoreOps(**params)
    result = p(model)
    infer_shapes(model, path)
    return original, model, p, result.modified


def _error(original, model, samples=4):
    return runtime.compare_outputs(runtime.session(original), runtime.session(model), runtime.sample_inputs(original, samples))


def _layer(pass_, name):
    """The pass's stats record of layer ``name``."""
    (row,) = [r for r in pass_.stats["layers"] if r["name"] == name]
    return row


def _ops(model):
    return Counter(n.op_type for n in model.graph)


# --- structure ------------------------------------------------------------------------------

def test_gemm_300_to_100_splits_fan_in_into_two_core_ops_and_one_reduction(tmp_path):
    original, model, p, modified = _legalize(_gemm(tmp_path, 300, 100))
    assert modified
    assert _ops(model) == {"Split": 1, "Gemm": 2, "Sum": 1}
    blocks = [n for n in model.graph if n.op_type == "Gemm"]
    assert [n.inputs[1].shape for n in blocks] == [(256, 100), (44, 100)]  # <= 256 x 256 each, transB folded
    assert all(n.metadata_props[MARK] == "partial" and n.metadata_props[LAYER] == "fc" for n in blocks)
    assert [n.metadata_props[BLOCK] for n in blocks] == ["in=0:256 out=0:100 groups=1", "in=256:300 out=0:100 groups=1"]
    (reduce,) = [n for n in model.graph if n.op_type == "Sum"]
    assert reduce.metadata_props[MARK] == "reduce" and len(reduce.inputs) == 3  # two partials + the bias
    row = _layer(p, "fc")
    assert (row["fan_in"], row["fan_out"], row["core_ops"], row["reduction_ops"]) == (300, 100, 2, 1)
    assert p.stats["core_ops"] == 2 and p.stats["reduction_ops"] == 1
    assert model.graph.outputs[0].name == "y"


def test_gemm_with_both_fans_too_large_gets_a_grid_of_blocks_and_a_concat(tmp_path):
    original, model, p, _ = _legalize(_gemm(tmp_path, 600, 300), weight_bits=16)
    assert _ops(model) == {"Split": 1, "Gemm": 6, "Sum": 2, "Concat": 1}
    for node in model.graph:
        if node.op_type == "Gemm":
            k, m = node.inputs[1].shape
            assert k <= 256 and m <= 256
    assert _error(original, model)["max_rel_error"] <= 1e-4


def test_fan_out_limit_can_differ_from_fan_in_limit(tmp_path):
    _, model, p, _ = _legalize(_gemm(tmp_path, 300, 300), crossbar=128, fan_out=256)
    assert _layer(p, "fc")["in_chunks"] == 3 and _layer(p, "fc")["out_chunks"] == 2


def test_layer_within_the_crossbar_is_quantized_in_place_and_marked(tmp_path):
    original, model, p, modified = _legalize(_gemm(tmp_path, 100, 20, trans_b=1, alpha=0.5))
    assert modified and _ops(model) == {"Gemm": 1}
    (node,) = model.graph
    assert node.metadata_props[MARK] == "block"
    assert node.attributes.get_float("alpha") == 0.5 and node.attributes.get_int("transB") == 1
    w = node.inputs[1].const_value.numpy()
    scale = _layer(p, "fc")["weight_scale"]
    levels = np.round(w * 0.5 / scale)  # the grid is over alpha * W, as multiplied
    assert np.allclose(levels * scale, w * 0.5, atol=1e-6) and np.abs(levels).max() == 127


def test_conv_splits_input_channels_by_kernel_area_and_output_channels(tmp_path):
    # 64 -> 300 channels, 3x3: 28 channels x 9 = 252 <= 256 per block: 3 channel chunks (28, 28, 8), 2 output chunks.
    original, model, p, _ = _legalize(_conv(tmp_path, 64, 300, 3), weight_bits=16)
    row = _layer(p, "conv")
    assert (row["in_chunks"], row["out_chunks"], row["core_ops"], row["reduction_ops"]) == (3, 2, 6, 2)
    convs = [n for n in model.graph if n.op_type == "Conv"]
    assert sorted({n.inputs[1].shape[1] for n in convs}) == [8, 28]
    assert all(n.inputs[1].shape[1] * 9 <= 256 and n.inputs[1].shape[0] <= 256 for n in convs)
    assert _ops(model) == {"Split": 1, "Conv": 6, "Sum": 2, "Concat": 1}
    assert _error(original, model)["max_rel_error"] <= 1e-4


@pytest.mark.parametrize("c,m,k,group,blocks", [
    (32, 32, 3, 32, 2),     # depthwise: 28 whole groups per block (28 x 9 = 252 inputs)
    (64, 128, 3, 4, 4),     # 16 channels x 9 = 144 inputs per group: one whole group per block
    (1024, 1024, 7, 128, 256),  # 8 x 49 = 392 inputs per group: split inside each group (5 + 3 channels)
])
def test_grouped_convs_keep_groups_and_stay_exact(tmp_path, c, m, k, group, blocks):
    original, model, p, _ = _legalize(_conv(tmp_path, c, m, k, hw=k + 2, group=group, pads=0), weight_bits=16)
    assert _layer(p, "conv")["core_ops"] == blocks
    for node in model.graph:
        if node.op_type == "Conv":
            w = node.inputs[1].shape
            assert w[1] * w[2] * w[3] <= 256 and w[0] <= 256
    assert _error(original, model, 2)["max_rel_error"] <= 1e-4


def test_matmul_on_a_3d_input_splits_the_last_axis(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(300, 40)).astype(np.float32)
    path = _save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [1, 5, 300], [1, 5, 40], {"w": w})
    original, model, p, _ = _legalize(path, weight_bits=16)
    assert _ops(model) == {"Split": 1, "MatMul": 2, "Sum": 1}
    assert _error(original, model)["max_rel_error"] <= 1e-4


def test_old_opset_split_uses_the_attribute(tmp_path):
    original, model, _, _ = _legalize(_gemm(tmp_path, 300, 10, opset=11), weight_bits=16)
    (split,) = [n for n in model.graph if n.op_type == "Split"]
    assert list(split.attributes.get_ints("split")) == [256, 44] and len(split.inputs) == 1
    assert _error(original, model)["max_rel_error"] <= 1e-4


def test_kernel_wider_than_the_crossbar_is_skipped_with_the_reason(tmp_path):
    _, model, p, modified = _legalize(_conv(tmp_path, 1, 4, 5, hw=8, pads=0), crossbar=16)
    assert not modified and _ops(model) == {"Conv": 1}
    assert "25 inputs" in p.stats["skipped"][0]["reason"]


def test_parameters_are_checked():
    with pytest.raises(NnccError, match="weight_bits"):
        LegalizeCoreOps(weight_bits=1)
    with pytest.raises(NnccError, match="crossbar"):
        LegalizeCoreOps(crossbar=0)


# --- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("trans_b,alpha,beta", [(1, 1.0, 1.0), (0, 0.5, 2.0)])
def test_16_bit_legalized_gemm_matches_within_1e_4(tmp_path, trans_b, alpha, beta):
    original, model, p, _ = _legalize(_gemm(tmp_path, 700, 300, trans_b=trans_b, alpha=alpha, beta=beta), weight_bits=16)
    assert _error(original, model)["max_rel_error"] <= 1e-4
    assert p.stats["max_weight_error"] <= _layer(p, "fc")["error_bound"] * 1.001  # + float32 rounding of the grid


def test_8_bit_error_of_one_layer_is_within_sum_of_half_steps_times_inputs(tmp_path):
    path = _gemm(tmp_path, 300, 50, seed=3)
    original, model, p, _ = _legalize(path, weight_bits=8)
    scale = _layer(p, "fc")["weight_scale"]
    ref, got = runtime.session(original), runtime.session(model)
    for feed in runtime.sample_inputs(original, 8, seed=5):
        x = feed["x"].astype(np.float64)
        error = np.abs(ref.run(None, feed)[0] - got.run(None, feed)[0])
        bound = scale / 2 * np.abs(x).sum()  # |sum_i dw_i x_i| <= sum_i (scale / 2) |x_i|
        assert np.all(error <= bound + 1e-4), (error.max(), bound)
    assert p.stats["max_weight_error"] <= scale / 2 * (1 + 1e-6)


def test_lenet5_legalized_runs_and_matches(tmp_path):
    from nncc import models
    from nncc.models import mnist

    path = models.export("lenet5", tmp_path / "lenet5.onnx")
    original, model, p, _ = _legalize(path, weight_bits=16, crossbar=64)
    assert _error(original, model)["max_rel_error"] <= 1e-4
    assert _layer(p, "fc1")["in_chunks"] == 7 and _layer(p, "conv2")["in_chunks"] == 3  # 2 ch x 25 <= 64
    _, _, x_te, y_te = mnist.mnist_split()
    _, model8, _, _ = _legalize(path, weight_bits=8)
    sess = runtime.session(model8)
    assert runtime.top1_accuracy(sess, x_te[:500], y_te[:500]) >= 0.97


# --- idempotence ----------------------------------------------------------------------------

@pytest.mark.parametrize("k", [100, 300])
def test_second_run_changes_nothing(tmp_path, k):
    path = _gemm(tmp_path, k, 20)
    _, model, _, modified = _legalize(path)
    assert modified
    again = LegalizeCoreOps()(model)
    assert not again.modified


# --- activations ----------------------------------------------------------------------------

def _act_model(tmp_path, op, **attrs):
    inits = {}
    inputs = ["x"]
    if op == "Clip":
        inits = {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
        inputs += ["lo", "hi"]
    return _save(tmp_path, [helper.make_node(op, inputs, ["y"], name="act", **attrs)], [1, 8], [1, 8], inits)


def test_exact_substitute_is_applied_and_recorded(tmp_path):
    original, model, p, modified = _legalize(_act_model(tmp_path, "LeakyRelu", alpha=0.0))
    assert modified and _ops(model) == {"Relu": 1}
    assert p.stats["replaced"] == [{"name": "act", "from": "LeakyRelu", "to": "Relu", "exact": True, "note": "LeakyRelu with alpha 0"}]
    assert _error(original, model)["max_abs_error"] == 0.0
    assert not LegalizeCoreOps()(model).modified


def test_relu6_becomes_relu_only_on_request(tmp_path):
    path = _act_model(tmp_path, "Clip")
    _, model, p, modified = _legalize(path)
    assert not modified and p.stats["unsupported_activations"] == {"Clip": ["act"]}
    _, model, p, modified = _legalize(path, approximate=True)
    assert modified and _ops(model) == {"Relu": 1}
    assert p.stats["replaced"][0]["exact"] is False and "not exact" in p.stats["replaced"][0]["note"]


def test_sigmoid_is_listed_as_unsupported_and_kept(tmp_path):
    _, model, p, modified = _legalize(_act_model(tmp_path, "Sigmoid"))
    assert not modified and _ops(model) == {"Sigmoid": 1}
    assert p.stats["unsupported_activations"] == {"Sigmoid": ["act"]}
    _, _, p, _ = _legalize(_act_model(tmp_path, "Sigmoid"), supported_activations="Relu,Sigmoid")
    assert p.stats["unsupported_activations"] == {}


def test_activation_bits_quantize_layer_inputs_from_calibration(tmp_path):
    path = _gemm(tmp_path, 300, 10)
    original, model = load_model(path), load_model(path)
    calib = {"x": np.random.default_rng(0).random((16, 1, 300)).astype(np.float32)}
    p = LegalizeCoreOps(weight_bits=16, activation_bits=4)
    run_passes(model, [p], PassContext(calibration=calib))
    assert _ops(model)["Round"] == 1
    feed = {"x": calib["x"][0]}
    hi = float(calib["x"].max())  # non-negative inputs: 15 unsigned levels up to the calibration maximum
    w = np.abs(numpy_helper.to_array(onnx.load(path).graph.initializer[0])).astype(np.float64)
    error = np.abs(runtime.session(original).run(None, feed)[0] - runtime.session(model).run(None, feed)[0])
    assert np.all(error <= (hi / 15 / 2) * w.sum(axis=1) + 1e-3)  # |dx| <= step / 2 on every input
    assert not LegalizeCoreOps(weight_bits=16, activation_bits=4)(model).modified
    with pytest.raises(NnccError, match="calibration"):
        LegalizeCoreOps(activation_bits=4)(load_model(path))


# --- the plans ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 1500), m=st.integers(1, 1500), x=st.integers(16, 512))
def test_fc_plan_tiles_the_matrix_exactly_within_the_crossbar(k, m, x):
    seen = np.zeros((k, m), np.int32)
    for group in fc_plan(k, m, x):
        assert len({(b.out0, b.out1) for b in group}) == 1
        for b in group:
            assert 0 < b.in1 - b.in0 <= x and 0 < b.out1 - b.out0 <= x
            seen[b.in0:b.in1, b.out0:b.out1] += 1
    assert np.all(seen == 1)
    assert sum(len(g) for g in fc_plan(k, m, x)) == -(-k // x) * -(-m // x)


@settings(max_examples=60, deadline=None)
@given(groups=st.integers(1, 16), cg=st.integers(1, 40), mg=st.integers(1, 40), kernel=st.sampled_from([1, 4, 9, 25]),
       x=st.integers(25, 300))
def test_conv_plan_covers_every_group_weight_once_within_the_crossbar(groups, cg, mg, kernel, x):
    plan = conv_plan(groups * cg, groups * mg, groups, kernel, x)
    seen = np.zeros((groups * mg, cg), np.int32)  # weight [M, C/group]
    for group in plan:
        for b in group:
            per_group_in = b.w_in[1] - b.w_in[0]
            assert per_group_in * b.groups * kernel <= x and b.out1 - b.out0 <= x
            seen[b.out0:b.out1, b.w_in[0]:b.w_in[1]] += 1
    assert np.all(seen == 1)


def test_opset_9_gemm_blocks_get_a_zero_c_and_run_in_onnxruntime(tmp_path):
    # Gemm's C is optional only from opset 11: a 2-input block would fail the ONNX checker
    # ("Node with schema(::Gemm:9) has input size 2") and onnxruntime.
    rng = np.random.default_rng(4)
    w = rng.normal(size=(10, 300)).astype(np.float32)
    inits = {"w": w, "b": rng.normal(size=10).astype(np.float32)}
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)
    path = _save(tmp_path, [node], [1, 300], [1, 10], inits, opset=9)
    original, model, _, _ = _legalize(path, weight_bits=16)
    gemms = [n for n in model.graph if n.op_type == "Gemm"]
    assert len(gemms) == 2 and all(len(n.inputs) == 3 for n in gemms)
    for n in gemms:
        assert not np.any(n.inputs[2].const_value.numpy())  # partial blocks: zero C, the bias goes to the Sum
    onnx.checker.check_model(ir.serde.serialize_model(model), full_check=True)
    assert _error(original, model)["max_rel_error"] <= 1e-4


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_quantize_symmetric_is_the_whole_array_formula(dtype):
    """The grid values, scale and max error of the whole-array float64 formula (by the compiled
    kernel for float32, numpy's chunks otherwise: tests/test_grid_kernels.py); a NaN weight
    gives a NaN error."""
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((37, 11, 3, 3)) * 0.1).astype(dtype)
    peak = float(np.max(np.abs(w)))
    scale = peak / 127
    whole = np.round(w.astype(np.float64) / scale) * scale
    q, s, err = quantize_symmetric(w, 8)
    assert q.dtype == w.dtype and q.shape == w.shape and s == scale
    assert np.array_equal(q, whole.astype(dtype))
    assert err == float(np.max(np.abs(whole.astype(dtype).astype(np.float64) - w.astype(np.float64))))
    w[5, 3, 1, 1] = np.nan
    assert np.isnan(quantize_symmetric(w, 8)[2])
