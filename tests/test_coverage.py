"""Coverage: every report says how much of the model its target costed; compile warns below 100%
and fails with --strict; compare shows a coverage column."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nncc.cli import main
from nncc.driver import CompileOptions, compile_model
from nncc.registry import TARGETS

W1 = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
W2 = np.random.default_rng(1).normal(size=(8, 3, 1, 1)).astype(np.float32)
# Conv 4x3x3x3 over an 8x8 input with padding 1: 4*8*8 outputs x 27 MACs each.
CONV_MACS = 4 * 8 * 8 * 27
BRANCH_MACS = (8 * 8 * 8 * 3, 4 * 8 * 8 * 27)  # the If's then (1x1, 8 channels) and else (3x3, 4 channels) convs


def _branch(name: str, weight: str, channels: int, kernel: int) -> onnx.GraphProto:
    conv = helper.make_node("Conv", ["x", weight], [f"{name}_y"], pads=[kernel // 2] * 4, name=f"{name}_conv")
    pool = helper.make_node("ReduceMean", [f"{name}_y"], [f"{name}_out"], axes=[1], keepdims=1, name=f"{name}_mean")
    return helper.make_graph([conv, pool], name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 1, 8, 8])],
                             value_info=[helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, channels, 8, 8])])


def model_with_if_and_custom_op(path) -> None:
    """A costable Conv, an If whose branches hold the rest of the work, and a custom-domain op."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("If", ["flag"], ["branch"], name="gate", then_branch=_branch("then", "w2", 8, 1),
                         else_branch=_branch("else", "w1", 4, 3)),
        helper.make_node("Mul", ["branch", "c"], ["m"], name="mix"),
        helper.make_node("Blur", ["m"], ["y"], domain="example.custom", name="blur"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                                           helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")],
                              value_info=[helper.make_tensor_value_info("branch", TensorProto.FLOAT, [1, 1, 8, 8]),
                                          helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 4, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("example.custom", 1)],
                              ir_version=8)
    onnx.save(model, path)


def test_an_undecided_if_costs_its_costlier_branch_and_says_so(tmp_path):
    path = tmp_path / "gated.onnx"
    model_with_if_and_custom_op(path)
    result = compile_model(path, TARGETS.create("mobile-cpu"), [], CompileOptions(verify_samples=0))
    (branch,) = result.report["control_flow"]
    assert branch["node"] == "gate" and branch["costed_branch"] == "else"
    assert branch["branch_macs"] == {"then": BRANCH_MACS[0], "else": BRANCH_MACS[1]}
    assert [n.op_type for n in result.model.graph].count("If") == 1  # the compiled model still runs either branch
    costed = {row["name"]: row for row in result.report["layers"]}
    assert costed["else_conv"]["macs"] == BRANCH_MACS[1] and "gate" not in costed
    cov = result.report["totals"]["coverage"]
    assert cov["complete"] is False and cov["unsupported_nodes"] == 1 and cov["unsupported_ops"] == ["example.custom::Blur"]
    assert cov["macs_total"] == cov["macs_costed"] == CONV_MACS + max(BRANCH_MACS)


def test_a_fully_costed_model_is_complete(conv_bn_path):
    result = compile_model(conv_bn_path, TARGETS.create("mobile-cpu"), [], CompileOptions(verify_samples=0))
    cov = result.report["totals"]["coverage"]
    assert cov["complete"] and cov["macs_fraction"] == 1.0 and cov["unsupported_nodes"] == 0
    assert cov["macs_costed"] == cov["macs_total"] == result.report["model"]["macs"] > 0


def test_compile_warns_and_strict_fails(tmp_path, capsys):
    path = tmp_path / "gated.onnx"
    model_with_if_and_custom_op(path)
    out = tmp_path / "out"
    assert main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--verify", "0"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "If 'gate': its condition is not known before inference; the else branch is costed" in err[0]
    assert err[1] == f"nncc: warning: {path}: mobile-cpu: 100.0% of MACs costed; 1 node not costed (example.custom::Blur)"
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["coverage"]["macs_fraction"] == 1.0
    assert "coverage" in (out / "report.md").read_text() and "coverage" in (out / "report.html").read_text()
    assert main(["compile", str(path), "-t", "mobile-cpu", "-o", str(out), "--verify", "0", "--strict"]) == 1
    assert "--strict: mobile-cpu did not cost the whole model" in capsys.readouterr().err


def test_compare_shows_coverage_and_strict_fails(tmp_path, capsys, conv_bn_path):
    path = tmp_path / "gated.onnx"
    model_with_if_and_custom_op(path)
    assert main(["compare", str(path), "--targets", "mobile-cpu,sparse-tc"]) == 0
    out = capsys.readouterr().out
    assert "| coverage |" in out and "100.0% (1 nodes left out)" in out
    assert main(["compare", str(path), "--targets", "mobile-cpu", "--strict"]) == 1
    capsys.readouterr()
    assert main(["compare", str(conv_bn_path), "--targets", "mobile-cpu", "--strict"]) == 0
    assert "100.0% |" in capsys.readouterr().out


def test_a_dot_product_with_unknown_shapes_is_unknown_not_zero():
    # A MatMul by a second input of dynamic width: its MACs cannot be counted, and the share of
    # MACs must not claim 100% of a model whose work may mostly be there.
    import onnx_ir as ir

    from nncc.cost import Unsupported
    from nncc.coverage import coverage

    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Flatten", ["c"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "b"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                                           helper.make_tensor_value_info("b", TensorProto.FLOAT, [256, "n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(W1, "w1")])
    proto = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8))
    cov = coverage(ir.from_proto(proto), [Unsupported("mm", "MatMul", "shapes unknown")])
    assert cov["macs_unknown_nodes"] == 1 and cov["macs_total"] == cov["macs_costed"] == CONV_MACS
    assert cov["macs_fraction"] == 1.0 and not cov["complete"]  # hence: complete, not the share, is the verdict
