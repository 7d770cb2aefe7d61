"""Recurrent layers (LSTM, GRU, RNN): the layer view's weight, MACs and per-step shapes, and
every target's cost of them (truenorth refuses with a reason)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncc.analysis import layers, recurrence
from nncc.ops import RECURRENT_GATES, RECURRENT_OPS, WEIGHTED_OPS, op_class
from nncc.errors import NnccError
from nncc.registry import TARGETS
from nncc.weight_refs import weight_refs
from nncc.weights import weight_of

I, H, BATCH = 12, 16, 2
TARGET_NAMES = ("mobile-cpu", "sparse-tc", "hypar", "ucnn", "reram")


def recurrent_model(op: str = "LSTM", seq: int = 5, direction: str = "forward", sequence_lens: bool = False,
                    batch: int = BATCH, input_size: int = I, hidden: int = H, seed: int = 0) -> ir.Model:
    """X [seq, batch, I] -> op (layout 0) -> Y [seq, dirs, batch, H] -> Relu, as onnx.helper builds it."""
    rng = np.random.default_rng(seed)
    gates, dirs = RECURRENT_GATES[op], 2 if direction == "bidirectional" else 1
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (dirs, gates * hidden, input_size)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.normal(0, 0.3, (dirs, gates * hidden, hidden)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.normal(0, 0.1, (dirs, 2 * gates * hidden)).astype(np.float32), "B")]
    inputs = ["X", "W", "R", "B"]
    if sequence_lens:
        inits.append(numpy_helper.from_array(np.full((batch,), seq, dtype=np.int32), "lens"))
        inputs.append("lens")
    node = helper.make_node(op, inputs, ["Y", "Y_h"], name="rnn", hidden_size=hidden, direction=direction, layout=0)
    relu = helper.make_node("Relu", ["Y"], ["out"], name="relu")
    graph = helper.make_graph(
        [node, relu], "recurrent", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, batch, input_size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    proto.ir_version = 8
    proto = onnx.shape_inference.infer_shapes(proto)
    return ir.from_proto(proto)


def _layer(model: ir.Model):
    return next(layer for layer in layers(model) if layer.op in RECURRENT_OPS)


# ---------------------------------------------------------------- the core: op class, weight, MACs

def test_recurrent_ops_are_weighted():
    assert RECURRENT_OPS == {"LSTM", "GRU", "RNN"} <= WEIGHTED_OPS
    assert all(op_class(op) == "weighted" for op in RECURRENT_OPS)
    assert op_class("LSTM", "com.microsoft") is None


@pytest.mark.parametrize("op", sorted(RECURRENT_GATES))
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_weight_layout_describes_w_and_r(op, direction):
    model = recurrent_model(op, direction=direction)
    gates, dirs = RECURRENT_GATES[op], 2 if direction == "bidirectional" else 1
    layer = _layer(model)
    weight = layer.weight
    assert weight is weight_of(layer.node) or weight.value is weight_of(layer.node).value
    assert weight.layout.kind == "recurrent" and weight.layout.index == 1 and weight.layout.groups == dirs
    assert weight.recurrence.layout.index == 2 and weight.recurrence.value.name == "R"
    assert weight.shape == (dirs, gates * H, I) and weight.recurrence.shape == (dirs, gates * H, H)
    assert weight.fan_in == I + H and weight.outputs == dirs * gates * H
    assert weight.elements == dirs * gates * H * (I + H)
    assert layer.bias is not None and layer.bias.name == "B"
    w, r = weight.array(), weight.recurrence.array()
    joint = weight.gemm_matrix()
    assert joint.shape == (dirs * gates * H, I + H)
    np.testing.assert_array_equal(joint[:, :I], w.reshape(-1, I))
    np.testing.assert_array_equal(joint[:, I:], r.reshape(-1, H))
    np.testing.assert_array_equal(weight.filter_matrix(), joint)
    mats = weight.crossbar_matrices()
    assert len(mats) == dirs and all(m.shape == (I + H, gates * H) for m in mats)
    np.testing.assert_array_equal(mats[-1], np.concatenate([w[-1].T, r[-1].T]))
    # The single-tensor views stay exact reshapes, and invert.
    layout = weight.layout
    np.testing.assert_array_equal(layout.from_gemm_view(layout.gemm_view(w), w.shape), w)
    assert layout.out_axis(3) == 1 and layout.in_axis(3) == 2 and layout.spatial_axes(3) == ()
    # Passes that rewrite weights leave the W/R pair alone, with a reason.
    refs, skipped = weight_refs(model.graph)
    assert not refs and skipped[0]["name"] == "rnn" and "recurrent" in skipped[0]["reason"]


def _expected_elementwise(op: str, units: int) -> int:
    return units * {"LSTM": 12 + 5, "GRU": 12 + 3, "RNN": 2 + 1}[op]


@pytest.mark.parametrize("op", sorted(RECURRENT_GATES))
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("lens", [False, True])
def test_macs_by_hand(op, direction, lens):
    seq = 7
    model = recurrent_model(op, seq=seq, direction=direction, sequence_lens=lens)
    gates, dirs = RECURRENT_GATES[op], 2 if direction == "bidirectional" else 1
    layer = _layer(model)
    # Per step and batch row, every direction multiplies [W R] (gates*H x (I + H)) by [x_t; h_{t-1}].
    assert layer.macs == seq * BATCH * dirs * gates * H * (I + H)
    assert layer.elementwise_ops == _expected_elementwise(op, seq * BATCH * dirs * H)
    rec = recurrence(layer.node)
    assert (rec.steps, rec.batch, rec.directions, rec.hidden, rec.input_size) == (seq, BATCH, dirs, H, I)
    assert rec.step_gemm == (dirs, gates * H, BATCH, I + H)
    assert rec.input_gemm == (gates * H, BATCH, I) and rec.recurrent_gemm == (gates * H, BATCH, H)
    assert rec.macs == layer.macs and rec.steps * rec.step_macs == layer.macs
    assert layer.output_shapes[0] == (seq, dirs, BATCH, H)


def test_layout_1_reads_batch_first():
    model = recurrent_model("GRU")
    node = _layer(model).node
    node.attributes["layout"] = ir.AttrInt64("layout", 1)
    x = node.inputs[0]
    x.shape = ir.Shape([BATCH + 1, 5, I])  # [batch, seq, I]
    rec = recurrence(node)
    assert (rec.batch, rec.steps) == (BATCH + 1, 5)


@pytest.mark.parametrize("op", sorted(RECURRENT_GATES))
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_analysis_shapes_match_onnxruntime(op, direction):
    ort = pytest.importorskip("onnxruntime")
    model = recurrent_model(op, seq=6, direction=direction, sequence_lens=True)
    layer = _layer(model)
    sess = ort.InferenceSession(ir.to_proto(model).SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(6, BATCH, I)).astype(np.float32)
    out, y_h = sess.run(["out", "Y_h"], {"X": x})
    assert out.shape == layer.output_shapes[0]
    assert y_h.shape == layer.output_shapes[1]
    rec = recurrence(layer.node)
    assert out.shape == (rec.steps, rec.directions, rec.batch, rec.hidden)


# ---------------------------------------------------------------- every target costs them

def _cost(target_name: str, model: ir.Model):
    target = TARGETS.create(target_name)
    return target.estimate(target.lower(model))


def _row(report, name="rnn"):
    return next(r for r in report.layers if r.name == name)


@pytest.mark.parametrize("op", sorted(RECURRENT_GATES))
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("target_name", TARGET_NAMES)
def test_every_target_costs_recurrent_layers(target_name, op, direction):
    model = recurrent_model(op, direction=direction)
    report = _cost(target_name, model)
    assert not report.unsupported, report.unsupported
    row = _row(report)
    assert row.macs == _layer(model).macs
    assert row.latency_s > 0 and row.energy_j > 0


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("target_name", TARGET_NAMES)
def test_latency_grows_linearly_with_seq_length(target_name, op):
    rows = {seq: _row(_cost(target_name, recurrent_model(op, seq=seq, direction="bidirectional"))) for seq in (4, 8, 16)}
    lat = {seq: row.latency_s for seq, row in rows.items()}
    assert lat[4] < lat[8] < lat[16]
    # Training (hypar) adds the weight-gradient exchange once per step of training, whatever the
    # sequence length: its compute is what the time steps multiply.
    work = {seq: row.compute_s if target_name == "hypar" else row.latency_s for seq, row in rows.items()}
    assert work[16] / work[8] == pytest.approx(2.0, rel=0.02)
    assert work[8] / work[4] == pytest.approx(2.0, rel=0.02)
    # The whole latency is affine in the sequence length: equal steps add equal time.
    assert lat[16] - lat[8] == pytest.approx(2 * (lat[8] - lat[4]), rel=0.02)


def test_truenorth_refuses_with_a_reason():
    with pytest.raises(NnccError, match=r"layer 'rnn'.*\(LSTM\) has no form on TrueNorth cores: .*state.*host_fallback") as e:
        _cost("truenorth", recurrent_model("LSTM"))
    assert "\n" not in str(e.value)
    # With a host beside the chip the layer is listed, with the same reason, and not costed.
    target = TARGETS.get("truenorth").configure(sets={"host_fallback": "true"})
    report = target.estimate(target.lower(recurrent_model("LSTM")))
    reasons = {u.name: u.reason for u in report.unsupported}
    assert "state" in reasons["rnn"] and "\n" not in reasons["rnn"]


# ---------------------------------------------------------------- com.microsoft::DynamicQuantizeLSTM

def dynamic_quantize_lstm_model(seq: int = 5) -> ir.Model:
    """onnxruntime's contrib LSTM: int8 W [dirs, I, 4H], R [dirs, H, 4H] with per-direction scales."""
    rng = np.random.default_rng(0)
    dirs = 2
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (dirs, I, 4 * H), dtype=np.int8), "Wq"),
             numpy_helper.from_array(rng.integers(-127, 128, (dirs, H, 4 * H), dtype=np.int8), "Rq"),
             numpy_helper.from_array(np.zeros((dirs, 8 * H), np.float32), "B"),
             numpy_helper.from_array(np.full((dirs,), 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros((dirs,), np.int8), "w_zp"),
             numpy_helper.from_array(np.full((dirs,), 0.01, np.float32), "r_scale"),
             numpy_helper.from_array(np.zeros((dirs,), np.int8), "r_zp")]
    node = helper.make_node("DynamicQuantizeLSTM", ["X", "Wq", "Rq", "B", "", "", "", "", "w_scale", "w_zp", "r_scale", "r_zp"],
                            ["Y"], name="rnn", domain="com.microsoft", hidden_size=H, direction="bidirectional")
    graph = helper.make_graph([node], "dq_lstm", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, BATCH, I])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14), helper.make_opsetid("com.microsoft", 1)])
    proto.ir_version = 8
    return ir.from_proto(proto)


def test_dynamic_quantize_lstm_is_counted_and_costed_as_an_int8_lstm():
    model = dynamic_quantize_lstm_model(seq=5)
    layer = next(iter(layers(model)))
    assert layer.macs == 5 * BATCH * 2 * 4 * H * (I + H)
    assert layer.elementwise_ops == _expected_elementwise("LSTM", 5 * BATCH * 2 * H)
    assert op_class(layer.op, layer.domain) is None and layer.weight is None
    # mobile-cpu and sparse-tc cost it as the LSTM it computes, with int8 weights (once Y has its shape).
    model.graph.outputs[0].shape = ir.Shape([5, 2, BATCH, H])
    cpu = next(r for r in _mapping("mobile-cpu", model).layers if r.name == layer.name)
    assert (cpu.dtype, cpu.macs, cpu.steps) == ("int8", layer.macs, 5)
    tc = next(r for r in _mapping("sparse-tc", model).layers if r.name == layer.name)
    assert (tc.kind, tc.int8, tc.batch, tc.m, tc.k, tc.steps) == ("recurrent", True, 2, 4 * H, I + H, 5)


def _mapping(target_name: str, model: ir.Model):
    return TARGETS.create(target_name).lower(model)


@pytest.mark.parametrize("op", sorted(RECURRENT_GATES))
def test_targets_place_the_per_step_gemm(op):
    seq, gates = 6, RECURRENT_GATES[op]
    model = recurrent_model(op, seq=seq, direction="bidirectional")
    # reram: per direction [W; R] as one [I + H, gates*H] matrix, one MVM per step and batch row.
    xbar = next(r for r in _mapping("reram", model).crossbar_layers if r.name == "rnn")
    assert (xbar.groups, xbar.rows, xbar.cols, xbar.mvms, xbar.steps) == (2, I + H, gates * H, seq * BATCH, seq)
    assert xbar.gate_mix[2] == seq * 2 * BATCH * H * {"LSTM": 5, "GRU": 3, "RNN": 1}[op]
    # sparse-tc: per step a batched GEMM, batch = directions.
    tc = next(r for r in _mapping("sparse-tc", model).layers if r.name == "rnn")
    assert (tc.kind, tc.batch, tc.m, tc.n, tc.k, tc.steps) == ("recurrent", 2, gates * H, BATCH, I + H, seq)
    # mobile-cpu: the totals, repeated over the steps.
    cpu = next(r for r in _mapping("mobile-cpu", model).layers if r.name == "rnn")
    assert (cpu.steps, cpu.macs) == (seq, _layer(model).macs)
    # ucnn: gate rows of [W R] are the filters, positions = steps x batch.
    uc = next(r for r in _mapping("ucnn", model).layers if r.name == "rnn")
    assert (uc.kind, uc.stats.filters, uc.stats.k, uc.positions) == ("factorized", 2 * gates * H, I + H, seq * BATCH)
    assert uc.vector_ops == _layer(model).elementwise_ops
    # hypar: a weighted layer holding W + R; the batch is X's axis 1.
    hy = _mapping("hypar", model)
    spec = next(s for s in hy.graph.specs if s.name == "rnn")
    assert hy.graph.batch == BATCH
    assert spec.weight_elems == 2 * gates * H * (I + H) and spec.cin == I + H
    assert spec.macs == _layer(model).macs / BATCH
