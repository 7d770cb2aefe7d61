"""Real models through nncc.contrib: graphs onnxruntime's own tools write, derived from the zoo.

Derived in the test into a temporary folder, deterministically (the same bytes on every run;
their sha256s under onnxruntime DERIVED_WITH are checked), not as corpus entries: onnxruntime is
not pinned, and a new version may fuse or quantize differently.

- ``bert_tiny_optimized``: onnxruntime.transformers' optimizer on the zoo BERT-tiny
  (Attention, SkipLayerNormalization, BiasGelu);
- ``bert_tiny_quantized``: that, dynamically quantized (QAttention; MatMulInteger with
  DynamicQuantizeLinear);
- ``lenet5_qoperator``, ``resnet18_qoperator``: the static QOperator quantizer on LeNet-5
  (calibrated on 16 real MNIST training digits) and ResNet-18 (4 seeded random images):
  QLinearConv, QGemm, QLinearAdd, QLinearGlobalAveragePool.

Each is decomposed and run in onnxruntime against itself (tolerances in DERIVED; the float ones
FLOAT_RTOL, the statically quantized exact), each of its contrib nodes is checked alone on the
activations the real model feeds it, and each is costed by every target with full coverage.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from nncc import analysis, models, runtime
from nncc.contrib import decompose_contrib_ops, has_contrib_ops
from nncc.coverage import coverage
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc.loading import infer_shapes, load_model
from nncc.registry import TARGETS
from test_contrib import FLOAT_RTOL, MS, _check, _decomposed, _session

# The dynamically quantized BERT end to end: a float difference of 1e-6 upstream can make a
# later DynamicQuantizeLinear round one activation the other way: one step of that activation's
# scale, about 1e-3 of the output range (each node alone is within FLOAT_RTOL, tested below).
DYNAMIC_QUANT_RTOL = 5e-3
COSTING_TARGETS = ["mobile-cpu", "sparse-tc", "reram", "ucnn", "hypar"]


def _optimized_bert(folder):
    from onnxruntime.transformers.optimizer import optimize_model

    source = models.export("bert_tiny", folder / "bert_tiny.onnx")
    # opt_level 0: the fusions of the Python optimizer alone, no onnxruntime session rewrite.
    optimized = optimize_model(str(source), model_type="bert", num_heads=2, hidden_size=128, opt_level=0)
    path = folder / "bert_tiny_optimized.onnx"
    optimized.save_model_to_file(str(path))
    return path


def _quantized_bert(folder):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = folder / "bert_tiny_quantized.onnx"
    # The fused graph's contrib outputs have no inferred type: the quantizer asks for a default.
    quantize_dynamic(_optimized_bert(folder), path, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
    return path


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: one feed per call, None at the end."""

    def __init__(self, name, batch):
        self._feeds = iter([{name: x[None]} for x in batch])

    def get_next(self):
        return next(self._feeds, None)


def _qoperator(folder, name, calibration):
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = models.export(name, folder / f"{name}.onnx")
    prepared = folder / f"{name}_prepared.onnx"
    quant_pre_process(str(source), str(prepared))  # folds BatchNorm, as onnxruntime's docs ask first
    path = folder / f"{name}_qoperator.onnx"
    quantize_static(prepared, path, _Reader("input", calibration), quant_format=QuantFormat.QOperator)
    return path


def _lenet5_qoperator(folder):
    from nncc.models.mnist import mnist_split

    return _qoperator(folder, "lenet5", mnist_split()[0][:16])  # 16 real training digits


def _resnet18_qoperator(folder):
    return _qoperator(folder, "resnet18", np.random.default_rng(0).random((4, 3, 224, 224), dtype=np.float32))


# name -> (derivation, the zoo model it computes, the contrib ops it has, end-to-end tolerance as a
# share of the largest output: None for exact). sha256s are those onnxruntime 1.32.0 writes.
DERIVED = {
    "bert_tiny_optimized": (_optimized_bert, "bert_tiny", {"Attention", "SkipLayerNormalization", "BiasGelu"}, FLOAT_RTOL,
                            "a0fc6f22a47a13efec266addedd3735a33196ff2814f10f0c955bff05544f2c6"),
    "bert_tiny_quantized": (_quantized_bert, "bert_tiny", {"QAttention", "SkipLayerNormalization", "BiasGelu"},
                            DYNAMIC_QUANT_RTOL, "ecd4376c52fbd46550d64798e26dc96f01564c5df87db2336be0a1e7084f06bd"),
    "lenet5_qoperator": (_lenet5_qoperator, "lenet5", {"QGemm"}, None,
                         "9c0ce152174ef90ca7d3e2a63ecf4f1b3afc9285a6be8affbf22854d371cff59"),
    "resnet18_qoperator": (_resnet18_qoperator, "resnet18", {"QGemm", "QLinearAdd", "QLinearGlobalAveragePool"}, None,
                           "075214af4f3f503588b4d301a6631ef125db33258d142d766f6831d62e6b2faf"),
}
DERIVED_WITH = "1.32.0"


@pytest.fixture(scope="module")
def derived(tmp_path_factory):
    paths = {}
    for name, (derive, *_rest) in DERIVED.items():
        paths[name] = derive(tmp_path_factory.mktemp(name))
    return paths


@pytest.mark.parametrize("name", list(DERIVED))
def test_derived_model_decomposed_computes_the_same(derived, name):
    _, zoo, ops, rtol, sha256 = DERIVED[name]
    path = derived[name]
    if sha256 and ort.__version__ == DERIVED_WITH:  # the derivation is deterministic: the same bytes
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    model = load_model(path, {})
    assert ops <= {n.op_type for n in model.graph if n.domain == MS}
    reference = runtime.session(model, where=path)
    records = decompose_contrib_ops(model)
    infer_shapes(model, path)
    assert all("into" in r for r in records) and {r["op"] for r in records} >= ops
    assert not [n for n in model.graph if n.domain not in ("", "ai.onnx")]
    feeds = runtime.sample_inputs(model, 4)
    result = runtime.compare_outputs(reference, runtime.session(model, optimize=False, where=path), feeds)
    assert result["max_rel_error"] <= (rtol or 0.0), result
    int8 = [v.const_value.size for v in model.graph.initializers.values() if v.dtype == ir.DataType.INT8]
    assert sum(int8) == sum(v.const_value.size for v in load_model(path, {}).graph.initializers.values() if v.dtype == ir.DataType.INT8)
    # The real MACs: those of the zoo model the fusions and the quantizer started from.
    assert analysis.model_summary(model)["macs"] == analysis.model_summary(load_model(models.export(zoo, path.parent / "zoo.onnx"), {}))["macs"]


@pytest.mark.parametrize("name", list(DERIVED))
def test_each_real_contrib_node_alone(derived, name):
    """Each contrib node of the real graph, decomposed alone, on the activations the real model
    feeds it: float outputs within FLOAT_RTOL, requantized ones within QUANT_STEPS."""
    proto = onnx.load(derived[name])
    contrib = [n for n in proto.graph.node if n.domain == MS]
    wanted = {v for n in contrib for v in [*n.input, *n.output] if v}
    inits = {t.name: t for t in proto.graph.initializer}
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    known = {o.name for o in exposed.graph.output} | {i.name for i in exposed.graph.input}
    exposed.graph.output.extend(onnx.ValueInfoProto(name=v) for v in sorted(wanted - set(inits) - known))
    sess = _session(exposed, optimize=True)
    feeds = runtime.sample_inputs(load_model(derived[name], {}), 1)[0]
    values = dict(feeds) | dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    for node in contrib:
        live = [i for i in node.input if i and i not in inits]
        graph = helper.make_graph(
            [node], "one", [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(values[i].dtype), values[i].shape) for i in live],
            [onnx.ValueInfoProto(name=o) for o in node.output if o and o in values],
            [inits[i] for i in dict.fromkeys(node.input) if i in inits])
        one = helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)
        decomposed, records = _decomposed(one)
        assert "into" in records[0], records
        inputs = {i: values[i] for i in live}
        ref, got = _session(one).run(None, inputs), _session(decomposed).run(None, inputs)
        _check(ref, got, quantized=ref[0].dtype in (np.uint8, np.int8))


@pytest.mark.parametrize("name", list(DERIVED))
def test_derived_model_fully_costed_on_every_target(derived, name):
    path = derived[name]
    model = load_model(path, {})
    decompose_contrib_ops(model)
    infer_shapes(model, path)
    for target_name in COSTING_TARGETS:
        target = TARGETS.create(target_name)
        cost = target.estimate(target.lower(model, calibration=None))
        cov = coverage(model, cost.unsupported)
        assert cov["complete"] and cov["macs_fraction"] == 1.0, (target_name, cov)
    with pytest.raises(NnccError) as refused:  # its cores hold no integer op, nor a product of two activations
        truenorth = TARGETS.create("truenorth")
        truenorth.estimate(truenorth.lower(model, calibration=None))
    assert "\n" not in str(refused.value)
    if name == "bert_tiny_quantized":  # the projections stay 8-bit x 8-bit on every target
        widths = {analysis.stored_widths(layer) for layer in analysis.layers(model) if layer.op == "MatMulInteger"}
        assert widths == {(8, 8)}


def test_compile_costs_the_decomposed_copy_and_keeps_the_model(derived):
    result = compile_model(derived["bert_tiny_quantized"], TARGETS.create("mobile-cpu"), [], CompileOptions(verify_samples=1))
    cov = result.report["totals"]["coverage"]
    assert cov["complete"] and cov["macs_fraction"] == 1.0 and cov["macs_total"] == 27_262_976
    assert has_contrib_ops(result.model)  # the compiled model keeps its contrib ops; only the costed copy changes
    assert result.report["verification"]["max_abs_error"] == 0.0
    assert not [w for w in result.report["warnings"] if w["kind"] in ("control-flow", "contrib")]
    assert "QAttention" in {r["op"] for r in result.report["contrib"]}


def test_optimized_bert_at_opset_14(tmp_path):
    """What the optimizer writes for a model exported at an older opset (most published
    model_optimized.onnx): explicit LayerNorm and GELU forms, and the embedding's
    LayerNormalization is onnxruntime's own default-domain op (ONNX defines it from 17).
    Loading sets that node aside for the ONNX checker and shape inference (no schema at
    opset 14) and checks the rest; the costed copy decomposes it."""
    from onnxruntime.transformers.optimizer import optimize_model

    source = models.export("bert_tiny", tmp_path / "bert_tiny_14.onnx", opset=14)
    path = tmp_path / "optimized.onnx"
    optimize_model(str(source), model_type="bert", num_heads=2, hidden_size=128, opt_level=0).save_model_to_file(str(path))
    model = load_model(path)
    reference = runtime.session(model, where=path)
    records = decompose_contrib_ops(model, path)
    assert {r["op"] for r in records} == {"LayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu"}
    assert all("into" in r for r in records), records
    infer_shapes(model, path)
    assert not {"LayerNormalization", "Gelu"} & {n.op_type for n in model.graph}  # neither exists at opset 14
    result = runtime.compare_outputs(reference, runtime.session(model, optimize=False, where=path), runtime.sample_inputs(model, 2))
    assert result["max_rel_error"] <= FLOAT_RTOL, result
    target = TARGETS.create("mobile-cpu")
    cov = coverage(model, target.estimate(target.lower(model, calibration=None)).unsupported)
    assert cov["complete"] and cov["macs_total"] == 27_262_976


def test_the_rest_of_a_model_with_onnxruntime_default_domain_ops_is_still_checked(tmp_path):
    """Setting onnxruntime's own LayerNormalization aside must not let other errors through."""
    from onnx import helper

    ln = helper.make_node("LayerNormalization", ["x", "g"], ["y"], name="ln", axis=-1)
    bad = helper.make_node("Relu", ["y"], ["z"], name="relu", alpha=1.0)  # Relu has no attribute alpha
    graph = helper.make_graph([ln, bad], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
                              [onnx.numpy_helper.from_array(np.ones(4, np.float32), "g")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), path)
    with pytest.raises(NnccError, match="alpha"):
        load_model(path)
    graph.node.remove(bad)
    graph.output[0].name = "y"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), path)
    model = load_model(path)
    assert tuple(model.graph.outputs[0].shape) == (1, 4)
