"""Built-in clean-up passes: structure and numbers against onnxruntime (max abs error <= 1e-5)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import conv_bn_model, light_model
from nncc import runtime
from nncc.crossbar import CrossbarGeometry
from nncc.loading import load_model
from nncc.pass_base import check_stats
from nncc.passes.cleanup import EliminateDeadCode
from nncc.passes.fold import FoldBatchNorm, FoldConstants
from nncc.pipeline import PassContext, parse_pass_spec, run_passes, DumpIR
from nncc.registry import PASSES

CLEANUP_TOL = 1e-5


def _max_error(original, model, samples=3):
    return runtime.compare_outputs(runtime.session(original), runtime.session(model), runtime.sample_inputs(original, samples))["max_abs_error"]


def test_fold_batchnorm_conv(conv_bn_path):
    original = load_model(conv_bn_path)
    model = load_model(conv_bn_path)
    result = FoldBatchNorm()(model)
    assert result.modified
    assert [n.op_type for n in model.graph] == ["Conv", "Relu", "Reshape", "Gemm"]
    assert _max_error(original, model) <= CLEANUP_TOL
    again = FoldBatchNorm()(model)
    assert not again.modified


def _gemm_bn_model(trans_b: int) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 4) if trans_b else (4, 6)).astype(np.float32)
    stats = [rng.uniform(0.5, 1.5, 6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6)]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(rng.normal(size=6).astype(np.float32), "b")]
    inits += [numpy_helper.from_array(a.astype(np.float32), n) for a, n in zip(stats, ["g", "be", "m", "v"])]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=trans_b),
             helper.make_node("BatchNormalization", ["h", "g", "be", "m", "v"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_fold_batchnorm_gemm_graph_output(tmp_path, trans_b):
    path = tmp_path / "gemm_bn.onnx"
    onnx.save(_gemm_bn_model(trans_b), path)
    original, model = load_model(path), load_model(path)
    assert FoldBatchNorm()(model).modified
    assert [n.op_type for n in model.graph] == ["Gemm"]
    assert [v.name for v in model.graph.outputs] == ["y"]  # the graph's interface is kept
    assert _max_error(original, model) <= CLEANUP_TOL


def test_fold_batchnorm_skips_shared_conv_output(tmp_path):
    m = conv_bn_model()
    m.graph.node.append(helper.make_node("Relu", ["c"], ["c2"]))
    m.graph.output.append(helper.make_tensor_value_info("c2", TensorProto.FLOAT, [1, 8, 6, 6]))
    path = tmp_path / "shared.onnx"
    onnx.save(m, path)
    model = load_model(path)
    assert not FoldBatchNorm()(model).modified  # the un-normalized conv output is still needed


def test_fold_batchnorm_on_light_resnet50():
    original = load_model(light_model("light_resnet50"))
    model = load_model(light_model("light_resnet50"))
    records = run_passes(model, [FoldBatchNorm(), EliminateDeadCode()])
    assert records[0].stats == {"folded": 53, "remaining_batchnorm": 0}
    assert _max_error(original, model, samples=1) <= CLEANUP_TOL


def test_fold_constants_evaluates_shape_subgraph(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([2.0], np.float32), "two")]
    nodes = [helper.make_node("Mul", ["w", "two"], ["w2"]), helper.make_node("Transpose", ["w2"], ["wt"]),
             helper.make_node("MatMul", ["x", "wt"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    path = tmp_path / "cf.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    original, model = load_model(path, fold=False), load_model(path, fold=False)
    assert FoldConstants()(model).modified
    assert [n.op_type for n in model.graph] == ["MatMul"]
    assert _max_error(original, model) <= CLEANUP_TOL
    assert not FoldConstants()(model).modified


def test_eliminate_dead_code(tmp_path):
    m = conv_bn_model()
    m.graph.node.append(helper.make_node("Sigmoid", ["r"], ["unused"], name="dead"))
    path = tmp_path / "dead.onnx"
    onnx.save(m, path)
    # fold=False: loading's constant folding already drops dead nodes.
    original, model = load_model(path, fold=False), load_model(path, fold=False)
    result = EliminateDeadCode()(model)
    assert result.modified and "dead" not in {n.name for n in model.graph}
    assert _max_error(original, model) <= CLEANUP_TOL
    assert not EliminateDeadCode()(model).modified


def test_pipeline_spec_and_instruments(conv_bn_path, tmp_path):
    model = load_model(conv_bn_path)
    ctx = PassContext(disabled={"eliminate-dead-code"}, instruments=[DumpIR(tmp_path / "ir")])
    records = run_passes(model, [parse_pass_spec("fold-batchnorm"), parse_pass_spec("eliminate-dead-code")], ctx)
    assert [r.name for r in records] == ["fold-batchnorm"]
    assert records[0].time_s >= 0
    dumps = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert dumps == ["01-fold-batchnorm.txt"]
    assert "BatchNormalization" not in (tmp_path / "ir" / dumps[0]).read_text()


@pytest.mark.parametrize("zoo_name", ["resnet18", "mobilenet_v2", "vargfacenet"])
def test_fold_batchnorm_on_zoo_models(tmp_path, zoo_name):
    """Deep nets: float32 rounding of W*s vs s*(Wx) accumulates; bound it relative to the output scale."""
    from nncc import models

    path = models.export(zoo_name, tmp_path / f"{zoo_name}.onnx")
    original, model = load_model(path), load_model(path)
    assert FoldBatchNorm()(model).modified
    assert not any(n.op_type == "BatchNormalization" for n in model.graph)
    error = runtime.compare_outputs(runtime.session(original), runtime.session(model), runtime.sample_inputs(original, 2))
    assert error["max_rel_error"] <= 1e-5, error


@pytest.mark.parametrize("name", PASSES.names())
def test_every_pass_keeps_the_stats_schema(conv_bn_path, name):
    """Each registered pass, run twice with its defaults on a Conv + Gemm model, leaves stats that
    pass check_stats (NnccPass.call checks them; called again here so a pass that bypasses call is
    caught too) and that the report can store as JSON."""
    model = load_model(conv_bn_path)
    context = PassContext(target="reram", crossbar=CrossbarGeometry(size=64))  # for the crossbar planners
    for _ in range(2):  # the second run meets the first one's output (already done, declined)
        (record,) = run_passes(model, [PASSES.create(name)], context)
        check_stats(record.stats, name)
        json.dumps(record.stats)


def _four_layouts_model() -> onnx.ModelProto:
    """One weighted layer of each layout: Conv, ConvTranspose, Gemm (transB) and a MatMul W @ X."""
    rng = np.random.default_rng(2)
    arrays = {"conv_w": (4, 3, 3, 3), "deconv_w": (4, 2, 2, 2), "fc_w": (5, 512), "wx_w": (4, 6)}
    inits = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name) for name, shape in arrays.items()]
    inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "flat"))
    nodes = [helper.make_node("Conv", ["x", "conv_w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("ConvTranspose", ["r", "deconv_w"], ["d"], name="deconv", strides=[2, 2]),
             helper.make_node("Reshape", ["d", "flat"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w"], ["y"], name="fc", transB=1),
             helper.make_node("MatMul", ["wx_w", "x2"], ["y2"], name="wx")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
              helper.make_tensor_value_info("x2", TensorProto.FLOAT, [6, 5])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5]),
               helper.make_tensor_value_info("y2", TensorProto.FLOAT, [4, 5])]
    graph = helper.make_graph(nodes, "four_layouts", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("name", PASSES.names())
def test_layer_passes_account_for_every_weighted_layer(tmp_path, name):
    """A pass that reports layer by layer lists each weighted layer as worked on or skipped (with
    the reason): declining a ConvTranspose or a W @ X product is never silent."""
    path = tmp_path / "four.onnx"
    onnx.save(_four_layouts_model(), path)
    model = load_model(path)
    context = PassContext(target="reram", crossbar=CrossbarGeometry(size=64))
    (record,) = run_passes(model, [PASSES.create(name)], context)
    if "layers" not in record.stats:
        pytest.skip(f"{name} does not report layer by layer")
    seen = {r["name"] for r in record.stats["layers"] + record.stats.get("skipped", [])}
    assert {"conv", "deconv", "fc", "wx"} <= seen, record.stats.get("skipped")
