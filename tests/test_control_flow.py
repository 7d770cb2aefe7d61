"""Control flow in real graphs: an If on a scalar input (silero VAD's sample rate) or on a
Shape chain is specialized to its branch; the branches of an If that stays get shapes.

Every rewrite is checked in onnxruntime against the original file, fed the same fixed inputs,
within an explicit tolerance (the same kernels run on the same data: exact in practice).
-1 dims and Shape-chain folding are in test_loading.py."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncc import analysis, runtime
from nncc.cli import main
from nncc.control_flow import specialize_if
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc.loading import load_model, parse_input_shapes, parse_input_values
from nncc.registry import TARGETS

OPSET = [helper.make_opsetid("", 17)]
SPECIALIZE_ATOL = 1e-6


def _save(tmp_path, graph, name="m.onnx"):
    model = helper.make_model(graph, opset_imports=OPSET, ir_version=8)
    onnx.checker.check_model(model)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _run_original(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _run_loaded(model, feeds):
    sess = runtime.session(model)
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feeds.items() if k in names})


def _static(model):
    """Every node output of the main graph (optional ones aside) has a static shape."""
    return all(o.shape is not None and all(isinstance(d, int) for d in o.shape)
               for n in model.graph for o in n.outputs if o.name)


# --- If on a scalar input -----------------------------------------------------------------

def _conv_branch(tag, out_channels, kernel, seed):
    """A branch graph: Conv(x) -> Relu, weights in Constant nodes (as exporters write them)."""
    w = np.random.default_rng(seed).normal(size=(out_channels, 2, kernel)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], [f"{tag}_w"], value=numpy_helper.from_array(w)),
             helper.make_node("Conv", ["x", f"{tag}_w"], [f"{tag}_c"], name=f"{tag}/conv", pads=[kernel // 2] * 2),
             helper.make_node("Relu", [f"{tag}_c"], [f"{tag}_out"], name=f"{tag}/relu")]
    return helper.make_graph(nodes, tag, [], [helper.make_tensor_value_info(f"{tag}_out", TensorProto.FLOAT, [None] * 3)])


def _if_model(tmp_path, condition=None):
    """y = If(sr == 16000, Conv(2->4, k3), Conv(2->4, k5))(x) -> Sigmoid; like silero's sample-rate If."""
    nodes = []
    if condition is None:
        nodes += [helper.make_node("Constant", [], ["k16"], value=numpy_helper.from_array(np.array(16000, np.int64))),
                  helper.make_node("Equal", ["sr", "k16"], ["cond"], name="equal")]
    else:
        nodes.append(helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(condition))))
    nodes += [helper.make_node("If", ["cond"], ["z"], name="if_sr",
                               then_branch=_conv_branch("then", 4, 3, 0), else_branch=_conv_branch("else", 4, 5, 1)),
              helper.make_node("Sigmoid", ["z"], ["y"], name="sigmoid")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "T"])]
    if condition is None:
        inputs.append(helper.make_tensor_value_info("sr", TensorProto.INT64, []))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 3)
    return _save(tmp_path, helper.make_graph(nodes, "if_model", inputs, [y]))


@pytest.mark.parametrize("sr,kernel", [(16000, 3), (8000, 5)])
def test_input_value_specializes_the_if_to_its_branch(tmp_path, sr, kernel):
    path = _if_model(tmp_path)
    model = load_model(path, parse_input_shapes(["x=1x2x32"]), input_values=parse_input_values([f"sr={sr}"]))
    assert [n.op_type for n in model.graph] == ["Conv", "Relu", "Sigmoid"]
    assert [v.name for v in model.graph.inputs] == ["x"]
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert _static(model)
    conv = next(r for r in analysis.layers(model) if r.op == "Conv")
    assert conv.weight is not None and conv.params == 4 * 2 * kernel
    assert conv.output_shapes[0] == (1, 4, 32) and conv.macs == 4 * 2 * kernel * 32
    x = np.random.default_rng(4).normal(size=(1, 2, 32)).astype(np.float32)
    want = _run_original(path, {"x": x, "sr": np.array(sr, np.int64)})[0]
    np.testing.assert_allclose(_run_loaded(model, {"x": x})[0], want, rtol=0, atol=SPECIALIZE_ATOL)


@pytest.mark.parametrize("condition", [True, False])
def test_constant_condition_in_the_file_is_specialized(tmp_path, condition):
    path = _if_model(tmp_path, condition)
    model = load_model(path, parse_input_shapes(["x=1x2x16"]))
    assert [n.op_type for n in model.graph] == ["Conv", "Relu", "Sigmoid"]
    x = np.random.default_rng(5).normal(size=(1, 2, 16)).astype(np.float32)
    np.testing.assert_allclose(_run_loaded(model, {"x": x})[0], _run_original(path, {"x": x})[0], rtol=0, atol=SPECIALIZE_ATOL)


def test_without_input_value_the_if_stays_and_its_branches_get_shapes(tmp_path):
    model = load_model(_if_model(tmp_path), parse_input_shapes(["x=1x2x32"]))
    if_node = next(n for n in model.graph if n.op_type == "If")
    for branch in ("then_branch", "else_branch"):
        conv = next(n for n in if_node.attributes[branch].as_graph() if n.op_type == "Conv")
        assert tuple(conv.outputs[0].shape) == (1, 4, 32)


def test_if_output_that_is_a_graph_output_keeps_its_name(tmp_path):
    """The If's output is the model's output (no node reads it)."""
    rng = np.random.default_rng(6)
    then_g = _conv_branch("then", 2, 3, 0)
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["same"], name="same")], "else", [],
                               [helper.make_tensor_value_info("same", TensorProto.FLOAT, [None] * 3)])
    nodes = [helper.make_node("Greater", ["gain", "half"], ["cond"], name="greater"),
             helper.make_node("If", ["cond"], ["y"], name="if_gain", then_branch=then_g, else_branch=else_g)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8]),
              helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 3)],
                              [numpy_helper.from_array(np.array([0.5], np.float32), "half")])
    path = _save(tmp_path, graph)
    x = rng.normal(size=(1, 2, 8)).astype(np.float32)
    for gain, ops in [(0.9, ["Conv", "Relu"]), (0.1, ["Identity"])]:
        model = load_model(path, input_values={"gain": gain})
        assert [n.op_type for n in model.graph] == ops
        assert [v.name for v in model.graph.outputs] == ["y"]
        want = _run_original(path, {"x": x, "gain": np.array([gain], np.float32)})[0]
        np.testing.assert_allclose(_run_loaded(model, {"x": x})[0], want, rtol=0, atol=SPECIALIZE_ATOL)


def test_nested_shape_driven_if_is_specialized_after_the_outer_one(tmp_path):
    """Inside the taken branch, an If tests the input's length (a Shape chain): silero's decoder."""
    rng = np.random.default_rng(7)
    w_long = rng.normal(size=(3, 2, 3)).astype(np.float32)
    w_short = rng.normal(size=(3, 2, 1)).astype(np.float32)

    def conv_graph(tag, w):
        return helper.make_graph([helper.make_node("Constant", [], [f"{tag}_w"], value=numpy_helper.from_array(w)),
                                  helper.make_node("Conv", ["x", f"{tag}_w"], [f"{tag}_y"], name=f"{tag}/conv")],
                                 tag, [], [helper.make_tensor_value_info(f"{tag}_y", TensorProto.FLOAT, [None] * 3)])

    inner = [helper.make_node("Shape", ["x"], ["len"], name="shape", start=2),
             helper.make_node("Constant", [], ["limit"], value=numpy_helper.from_array(np.array([8], np.int64))),
             helper.make_node("Greater", ["len", "limit"], ["long1"], name="greater"),
             helper.make_node("Squeeze", ["long1"], ["long"], name="squeeze"),
             helper.make_node("If", ["long"], ["inner_y"], name="if_len",
                              then_branch=conv_graph("long", w_long), else_branch=conv_graph("short", w_short))]
    outer_then = helper.make_graph(inner, "outer_then", [], [helper.make_tensor_value_info("inner_y", TensorProto.FLOAT, [None] * 3)])
    outer_else = helper.make_graph([helper.make_node("Neg", ["x"], ["neg"], name="neg")], "outer_else", [],
                                   [helper.make_tensor_value_info("neg", TensorProto.FLOAT, [None] * 3)])
    nodes = [helper.make_node("Constant", [], ["k16"], value=numpy_helper.from_array(np.array(16000, np.int64))),
             helper.make_node("Equal", ["sr", "k16"], ["cond"], name="equal"),
             helper.make_node("If", ["cond"], ["y"], name="if_sr", then_branch=outer_then, else_branch=outer_else)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "T"]),
              helper.make_tensor_value_info("sr", TensorProto.INT64, [])]
    path = _save(tmp_path, helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 3)]))
    for length, params in [(16, w_long.size), (4, w_short.size)]:
        model = load_model(path, {"x": (1, 2, length)}, input_values={"sr": 16000})
        assert [n.op_type for n in model.graph] == ["Conv"]
        assert analysis.layers(model)[0].params == params
        assert _static(model)
        x = rng.normal(size=(1, 2, length)).astype(np.float32)
        want = _run_original(path, {"x": x, "sr": np.array(16000, np.int64)})[0]
        np.testing.assert_allclose(_run_loaded(model, {"x": x})[0], want, rtol=0, atol=SPECIALIZE_ATOL)


def test_specialize_if_renames_a_clashing_branch_value(tmp_path):
    """A branch value named like a value elsewhere in the model gets a fresh name."""
    import onnx_ir as ir

    model = load_model(_if_model(tmp_path, True), parse_input_shapes(["x=1x2x8"]), fold=False)
    if_node = next(n for n in model.graph if n.op_type == "If")
    sigmoid = next(n for n in model.graph if n.op_type == "Sigmoid")
    sigmoid.outputs[0].name = "then_c"  # the Conv output's name inside then_branch
    model.graph.outputs[0].name = "then_c"
    assert specialize_if(model) == 1 and if_node.graph is None
    names = [v.name for n in model.graph for v in n.outputs]
    assert len(names) == len(set(names)) and "then_c_1" in names
    assert ir.serde.serialize_model(model)  # a valid graph again


def test_parse_input_values_and_errors(tmp_path):
    assert parse_input_values(["sr=16000", "gain=0.5", "on=true"]) == {"sr": 16000, "gain": 0.5, "on": True}
    with pytest.raises(NnccError, match="not NAME=VALUE"):
        parse_input_values(["sr"])
    with pytest.raises(NnccError, match="not a number"):
        parse_input_values(["sr=fast"])
    path = _if_model(tmp_path)
    shapes = parse_input_shapes(["x=1x2x8"])
    for values, match in [({"rate": 1}, r"model has no input 'rate' \(inputs: x, sr\)"),
                          ({"x": 1}, "input 'x' is given by both --input-shape and --input-value"),
                          ({"sr": 16000.5}, "input 'sr' is INT64, got 16000.5")]:
        with pytest.raises(NnccError, match=match):
            load_model(path, shapes, input_values=values)
    with pytest.raises(NnccError, match=r"input 'x' has shape 1x2xT; --input-value fixes scalar inputs only"):
        load_model(path, input_values={"x": 1})


def test_compile_options_carry_input_values(tmp_path):
    """CompileOptions.input_values reaches every load_model of a compile (original, compiled)."""
    result = compile_model(_if_model(tmp_path), TARGETS.create("mobile-cpu"), [],
                           CompileOptions({"x": (1, 2, 8)}, verify_samples=2, input_values={"sr": 8000}))
    assert [n.op_type for n in result.model.graph] == ["Conv", "Relu", "Sigmoid"]
    assert result.report["verification"]["max_abs_error"] == 0.0


def test_cli_compile_with_input_value_costs_the_branch(capsys, tmp_path):
    path = _if_model(tmp_path)
    out = tmp_path / "out"
    code = main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--input-shape", "x=1x2x32",
                 "--input-value", "sr=16000", "--format", "json"])
    _, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["unsupported"] == []
    conv = next(layer for layer in report["layers"] if layer["op"] == "Conv")
    assert conv["macs"] == 4 * 2 * 3 * 32
    assert report["verification"]["max_abs_error"] <= SPECIALIZE_ATOL

    code = main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--input-shape", "x=1x2x32", "--input-value", "sr"])
    _, err = capsys.readouterr()
    assert code == 2 and err.strip().splitlines() == ["nncc: error: --input-value: 'sr' is not NAME=VALUE (e.g. sr=16000)"]


def test_loop_body_gets_shapes(tmp_path):
    """A Loop stays (its trip count is not ours), but its body's values get shapes."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
         helper.make_node("Relu", ["x"], ["r"], name="body/relu"),
         helper.make_node("Add", ["acc_in", "r"], ["acc_out"], name="body/add")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [None, None])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [None, None])])
    nodes = [helper.make_node("Loop", ["trips", "go", "x"], ["y"], name="loop", body=body)]
    inits = [numpy_helper.from_array(np.array(3, np.int64), "trips"), numpy_helper.from_array(np.array(True), "go")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])], inits)
    path = _save(tmp_path, graph)
    model = load_model(path, parse_input_shapes(["x=2x4"]))
    loop = next(n for n in model.graph if n.op_type == "Loop")
    # onnx leaves a loop-carried value's dims open (they may change per iteration); a body
    # value computed from the outer scope, and what broadcasts against it, are static.
    body = {n.op_type: n for n in loop.attributes["body"].as_graph()}
    assert tuple(body["Relu"].outputs[0].shape) == (2, 4) and tuple(body["Add"].outputs[0].shape) == (2, 4)
    x = np.random.default_rng(8).normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_array_equal(_run_loaded(model, {"x": x})[0], _run_original(path, {"x": x})[0])


def _if_with_bad_dead_branch(tmp_path):
    """The else branch cannot run on the given shape (a Squeeze of a 32-long axis), as silero's
    8 kHz branch cannot run on a 16 kHz window."""
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    else_g = helper.make_graph([helper.make_node("Squeeze", ["x", "axes"], ["e"], name="else/squeeze")], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [None] * 2)], [axes])
    then_g = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["t"], name="then/mean", axes=[2], keepdims=0)],
                               "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [None] * 2)])
    nodes = [helper.make_node("Constant", [], ["k16"], value=numpy_helper.from_array(np.array(16000, np.int64))),
             helper.make_node("Equal", ["sr", "k16"], ["cond"], name="equal"),
             helper.make_node("If", ["cond"], ["y"], name="if_sr", then_branch=then_g, else_branch=else_g)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "T"]),
              helper.make_tensor_value_info("sr", TensorProto.INT64, [])]
    return _save(tmp_path, helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 2)]))


def test_a_branch_that_cannot_infer_asks_for_input_value(tmp_path):
    path = _if_with_bad_dead_branch(tmp_path)
    with pytest.raises(NnccError, match=r"shape inference failed: .*else/squeeze.*fix it with --input-value sr=VALUE\)$"):
        load_model(path, parse_input_shapes(["x=1x2x32"]))
    model = load_model(path, parse_input_shapes(["x=1x2x32"]), input_values={"sr": 16000})
    assert [n.op_type for n in model.graph] == ["ReduceMean"] and tuple(model.graph.outputs[0].shape) == (1, 2)
    x = np.random.default_rng(9).normal(size=(1, 2, 32)).astype(np.float32)
    want = _run_original(path, {"x": x, "sr": np.array(16000, np.int64)})[0]
    np.testing.assert_allclose(_run_loaded(model, {"x": x})[0], want, rtol=0, atol=SPECIALIZE_ATOL)
