"""Loop and Scan are costed as their body once per trip (nncc.unroll).

The unrolled copy a target costs must compute what the loop computes: each test runs both in
onnxruntime on the same inputs, within UNROLL_ATOL (the same kernels on the same data, in the
same order: exact in practice). A torch-exported decoder loop (a Python list appended once per
step) is the real-exporter case."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncc import analysis, runtime
from nncc.cli import main
from nncc.driver import CompileOptions, compile_model, costed_copy
from nncc.loading import load_model, parse_trip_counts
from nncc.errors import NnccError
from nncc.registry import TARGETS
from nncc.unroll import unroll_loops

UNROLL_ATOL = 1e-6
H, I = 16, 8
RNG = np.random.default_rng(5)
W_OUTER = RNG.normal(size=(H, H)).astype(np.float32) / 4
W_BODY = RNG.normal(size=(I, H)).astype(np.float32) / 4


def _save(tmp_path, graph, name="m.onnx", opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _rnn_loop(tmp_path, trips: int | None, name="m.onnx"):
    """h_t = tanh(h_{t-1} W_outer + x W_body + iter_num); y stacks every h_t (a scan output).
    W_outer is a main-graph initializer read from the body, W_body a body initializer, the
    iteration count a body Constant: all three ways exporters write a body's weights.
    ``trips=None``: the count is the graph input ``steps``."""
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.array(1.0, np.float32))),
         helper.make_node("MatMul", ["h_in", "w_outer"], ["hw"], name="body/recur"),
         helper.make_node("MatMul", ["x", "w_body"], ["xw"], name="body/input"),
         helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT, name="body/cast"),
         helper.make_node("Mul", ["i_f", "one"], ["i_s"], name="body/scale"),
         helper.make_node("Add", ["hw", "xw"], ["pre0"], name="body/add"),
         helper.make_node("Add", ["pre0", "i_s"], ["pre"], name="body/add_iter"),
         helper.make_node("Tanh", ["pre"], ["h_out"], name="body/tanh"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body/cond"),
         helper.make_node("Identity", ["h_out"], ["y_t"], name="body/emit")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, H])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, H]),
         helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [1, H])],
        [numpy_helper.from_array(W_BODY, "w_body")])
    inits = [numpy_helper.from_array(W_OUTER, "w_outer"), numpy_helper.from_array(np.zeros((1, H), np.float32), "h0")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, I])]
    if trips is None:
        inputs.append(helper.make_tensor_value_info("steps", TensorProto.INT64, []))
    else:
        inits.append(numpy_helper.from_array(np.array(trips, np.int64), "steps"))
    graph = helper.make_graph(
        [helper.make_node("Loop", ["steps", "", "h0"], ["h_last", "ys"], name="rnn", body=body)], "g", inputs,
        [helper.make_tensor_value_info("h_last", TensorProto.FLOAT, [1, H]),
         helper.make_tensor_value_info("ys", TensorProto.FLOAT, ["T", 1, H])], inits)
    return _save(tmp_path, graph, name)


def _run(model_or_path, feeds):
    if isinstance(model_or_path, (str, bytes)) or hasattr(model_or_path, "read_bytes"):
        sess = ort.InferenceSession(str(model_or_path), providers=["CPUExecutionProvider"])
    else:
        sess = runtime.session(model_or_path)
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feeds.items() if k in names})


def test_unrolled_loop_computes_the_loop(tmp_path):
    path = _rnn_loop(tmp_path, trips=4)
    model = load_model(path)
    records = unroll_loops(model)
    assert records == [{"node": "rnn", "op": "Loop", "trips": 4, "trips_from": "constant"}]
    assert not any(n.op_type == "Loop" for n in model.graph)
    x = RNG.normal(size=(1, I)).astype(np.float32)
    for got, want in zip(_run(model, {"x": x}), _run(path, {"x": x})):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=UNROLL_ATOL, rtol=0)
    # The body's weights are held once, read by every copy.
    matmuls = [n for n in model.graph if n.op_type == "MatMul"]
    assert len(matmuls) == 8 and len({id(n.inputs[1]) for n in matmuls}) == 2


def _scan(tmp_path, reverse: int, out_axis: int):
    """s_t = s_{t-1} + x_t W; out_t = relu(x_t W), scanned over axis 1 of x [2, T, I]."""
    w = RNG.normal(size=(I, H)).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_t", "w"], ["xw"], name="scan/matmul"),
         helper.make_node("Add", ["s_in", "xw"], ["s_out"], name="scan/acc"),
         helper.make_node("Relu", ["xw"], ["o_t"], name="scan/relu")],
        "body",
        [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [2, H]),
         helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [2, I])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2, H]),
         helper.make_tensor_value_info("o_t", TensorProto.FLOAT, [2, H])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["s0", "x"], ["s_last", "outs"], name="scan", body=body, num_scan_inputs=1,
                          scan_input_axes=[1], scan_input_directions=[reverse], scan_output_axes=[out_axis])],
        "g", [helper.make_tensor_value_info("s0", TensorProto.FLOAT, [2, H]),
              helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, I])],
        [helper.make_tensor_value_info("s_last", TensorProto.FLOAT, [2, H]),
         helper.make_tensor_value_info("outs", TensorProto.FLOAT, [None, None, None])],
        [numpy_helper.from_array(w, "w")])
    return _save(tmp_path, graph, f"scan_{reverse}_{out_axis}.onnx")


@pytest.mark.parametrize("reverse,out_axis", [(0, 0), (1, 1), (1, -1)])
def test_unrolled_scan_computes_the_scan(tmp_path, reverse, out_axis):
    path = _scan(tmp_path, reverse, out_axis)
    model = load_model(path)
    assert unroll_loops(model) == [{"node": "scan", "op": "Scan", "trips": 5, "trips_from": "scanned axis"}]
    feeds = {"s0": RNG.normal(size=(2, H)).astype(np.float32), "x": RNG.normal(size=(2, 5, I)).astype(np.float32)}
    for got, want in zip(_run(model, feeds), _run(path, feeds)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=UNROLL_ATOL, rtol=0)


def _compile(path, target="reram", **options):
    return compile_model(path, TARGETS.create(target), [], CompileOptions(verify_samples=0, **options))


def test_loop_costs_its_body_per_trip_on_every_target(tmp_path):
    """MACs are trips x body; a crossbar target holds the weights once (area does not grow with
    trips) while latency and energy do."""
    body_macs = H * H + I * H
    short, long = (_compile(_rnn_loop(tmp_path, t, f"t{t}.onnx"), "reram").report for t in (2, 6))
    for report, trips in ((short, 2), (long, 6)):
        cov = report["totals"]["coverage"]
        assert cov["complete"] and cov["macs_total"] == trips * body_macs == cov["macs_costed"]
    assert long["totals"]["area_mm2"] == short["totals"]["area_mm2"]
    assert long["totals"]["latency_s"] > 2.5 * short["totals"]["latency_s"]
    assert long["totals"]["energy_j"] > 2.5 * short["totals"]["energy_j"]
    for target in ("mobile-cpu", "sparse-tc", "ucnn", "hypar"):
        cov = _compile(tmp_path / "t6.onnx", target).report["totals"]["coverage"]
        assert cov["complete"] and cov["macs_costed"] == 6 * body_macs, target


def test_runtime_trip_count_needs_trip_count_option(tmp_path, capsys):
    path = _rnn_loop(tmp_path, trips=None)
    out = tmp_path / "out"
    code = main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--format", "json", "--verify", "0"])
    err = capsys.readouterr().err
    assert code == 0
    assert "nncc: warning" in err and "Loop 'rnn' not costed: trip count not known before inference: give --trip-count rnn=N" in err
    report = json.loads((out / "report.json").read_text())
    assert not report["totals"]["coverage"]["complete"] and report["unsupported"][0]["op"] == "Loop"
    code = main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--format", "json", "--verify", "0", "--strict"])
    assert code == 1

    code = main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--format", "json", "--trip-count", "rnn=6"])
    assert code == 0, capsys.readouterr().err
    given = json.loads((out / "report.json").read_text())
    assert given["control_flow"] == [{"node": "rnn", "op": "Loop", "trips": 6, "trips_from": "--trip-count"}]
    # Verification ran the original with sampled trip counts (1-3), against the compiled model.
    assert given["verification"]["max_abs_error"] <= UNROLL_ATOL
    constant = _compile(_rnn_loop(tmp_path, 6, "c6.onnx"), "mobile-cpu").report
    assert given["totals"]["latency_s"] == constant["totals"]["latency_s"]
    assert given["totals"]["coverage"] == constant["totals"]["coverage"]


def test_trip_count_option_errors(tmp_path, capsys):
    path = _rnn_loop(tmp_path, trips=3)
    out = tmp_path / "out"
    code = main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--trip-count", "rnn"])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [
        "nncc: error: --trip-count: 'rnn' is not NODE=N with N a whole number (e.g. decode=32)"]
    code = main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--format", "json", "--verify", "0",
                 "--trip-count", "decoder=4"])
    err = capsys.readouterr().err
    assert code == 0 and "--trip-count 'decoder' not costed: no Loop of that name" in err
    with pytest.raises(NnccError):
        parse_trip_counts(["rnn=-2"])


def test_too_many_trips_are_left_out_and_counted(tmp_path):
    path = _rnn_loop(tmp_path, trips=100_000)
    model = load_model(path)
    costed, records = costed_copy(model, path)
    assert records[0]["node"] == "rnn" and "over 100000 nodes" in records[0]["reason"]
    assert any(n.op_type == "Loop" for n in costed.graph)


class _Decoder:
    """A torch decoder: h = tanh(cell(h) + inp(x)) for `steps` steps, outputs stacked from a list."""

    @staticmethod
    def export(path, steps_input: bool = True):
        torch = pytest.importorskip("torch")

        class Dec(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.cell, self.inp = torch.nn.Linear(H, H), torch.nn.Linear(I, H)
                self.hidden = H

            def forward(self, x, steps: int):
                h = torch.zeros(1, self.hidden)
                outs = []
                for _ in range(steps):
                    h = torch.tanh(self.cell(h) + self.inp(x))
                    outs.append(h)
                return torch.stack(outs)

        torch.manual_seed(0)
        with pytest.warns(DeprecationWarning):  # the TorchScript exporter: the one that writes Loop
            torch.onnx.export(torch.jit.script(Dec()), (torch.randn(1, I), 5), str(path), dynamo=False,
                              input_names=["x", "steps"], opset_version=17)
        return path


def test_torch_exported_loop_is_fully_costed(tmp_path, capsys):
    """torch's TorchScript exporter writes a scripted for-loop as Loop and the list as
    SequenceInsert/ConcatFromSequence; with the step count fixed, every target but TrueNorth
    costs all of it (TrueNorth refuses the tanh in one line)."""
    path = _Decoder.export(tmp_path / "decoder.onnx")
    macs = 5 * (H * H + I * H)
    for target in ("mobile-cpu", "reram", "sparse-tc", "ucnn", "hypar"):
        result = compile_model(path, TARGETS.create(target), [], CompileOptions(verify_samples=2, input_values={"steps": 5}))
        cov = result.report["totals"]["coverage"]
        assert cov["complete"] and cov["macs_costed"] == macs == cov["macs_total"], (target, cov)
        assert result.report["verification"]["max_abs_error"] <= UNROLL_ATOL
    gemms = [layer for layer in analysis.layers(costed_copy(load_model(path, input_values={"steps": 5}), path)[0])
             if layer.op == "Gemm"]
    assert len(gemms) == 10
    code = main(["compile", str(path), "-t", "truenorth", "-o", str(tmp_path / "tn"), "--input-value", "steps=5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("nncc: error: truenorth:") and "Tanh" in err[0]
