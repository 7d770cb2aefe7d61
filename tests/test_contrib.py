"""onnxruntime's contrib ops are costed as the default-domain ops they compute (nncc.contrib).

Every decomposition is run in onnxruntime against the contrib op itself, on the same inputs
(graph optimizations off for the decomposed copy, so onnxruntime cannot fuse it back):

- float ops (Attention, SkipLayerNormalization, the GELUs, FusedConv, ...): FLOAT_RTOL x
  max(1, the largest output magnitude) -- the same math, only the order of float roundings differs;
- integer dot products dequantized to float (QAttention's projection, QGemm and
  MatMulIntegerToFloat without output quantization, DynamicQuantizeMatMul): FLOAT_RTOL too --
  the int32 accumulation is exact and the scale multiplies the same way;
- ops that requantize (QGemm with y_scale, QLinearAdd/Mul/Sigmoid/LeakyRelu/Concat/pools):
  within QUANT_STEPS integer step -- onnxruntime rescales with one fused multiplier (or a
  table), the decomposition dequantizes and quantizes again, so a value sitting on a rounding
  boundary may round the other way.

Real models, derived with onnxruntime's own optimizer and quantizers: tests/test_contrib_models.py.
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncc.contrib import BUILDERS, decompose_contrib_ops, describe_contrib, has_contrib_ops
from nncc.loading import infer_shapes

FLOAT_RTOL = 1e-5
QUANT_STEPS = 1
MS = "com.microsoft"
RNG = np.random.default_rng(11)


# ------------------------------------------------------------------ helpers

def _session(proto: onnx.ModelProto, optimize: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _decomposed(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, list[dict]]:
    model = ir.from_proto(proto)
    records = decompose_contrib_ops(model)
    infer_shapes(model, "test")
    return ir.to_proto(model), records


def _check(ref: list[np.ndarray], got: list[np.ndarray], quantized: bool) -> None:
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert a.dtype == b.dtype and a.shape == b.shape
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).max() if a.size else 0.0
        if quantized:
            assert diff <= QUANT_STEPS, f"{diff} steps"
        else:
            assert diff <= FLOAT_RTOL * max(1.0, float(np.abs(a).max())), diff


def _single(op: str, feeds: dict[str, np.ndarray], inits: dict[str, np.ndarray], node_inputs: list[str],
            outputs: list[str], opset: int = 17, domain: str = MS, **attrs) -> tuple[list, list, list[dict]]:
    """One contrib node in a model; (its outputs, the decomposition's, the records)."""
    node = helper.make_node(op, node_inputs, outputs, name="n", domain=domain, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in feeds.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs if o],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)], ir_version=10)
    ref = _session(proto).run(None, feeds)
    decomposed, records = _decomposed(proto)
    assert not [n for n in decomposed.graph.node if n.domain not in ("", "ai.onnx")], records
    return ref, _session(decomposed).run(None, feeds), records


def _f(*shape) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _u8(*shape) -> np.ndarray:
    return RNG.integers(0, 256, size=shape).astype(np.uint8)


def _i8(*shape) -> np.ndarray:
    return RNG.integers(-128, 128, size=shape).astype(np.int8)


def _scale(x: float) -> np.ndarray:
    return np.array(x, np.float32)


# ------------------------------------------------------------------ float ops, one node each

def _mask(batch: int, keys: int) -> np.ndarray:
    mask = np.ones((batch, keys), np.int32)
    mask[0, -3:] = 0  # right padding of the first sequence
    return mask


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("sizes", [None, [16, 16, 32]])
def test_attention(opset, sizes):
    hidden = sum(sizes) if sizes else 48
    feeds = {"x": _f(2, 8, 16), "mask": _mask(2, 8)}
    inits = {"w": _f(16, hidden) / 4, "b": _f(hidden)}
    attrs = {"num_heads": 4} | ({"qkv_hidden_sizes": sizes} if sizes else {})
    ref, got, records = _single("Attention", feeds, inits, ["x", "w", "b", "mask"], ["y"], opset, **attrs)
    _check(ref, got, quantized=False)
    assert records[0]["into"].count("MatMul") == 3  # the QKV projection, then two per head group


def test_attention_with_lengths_mask():
    """The 1-D mask_index (valid lengths per row) EmbedLayerNormalization gives Attention."""
    feeds = {"x": _f(2, 8, 16), "lengths": np.array([5, 8], np.int32)}
    inits = {"w": _f(16, 48) / 4, "b": _f(48)}
    ref, got, records = _single("Attention", feeds, inits, ["x", "w", "b", "lengths"], ["y"], num_heads=2)
    _check(ref, got, quantized=False)
    assert {"Range", "Less", "Where"} <= set(records[0]["into"])


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_embedding_attention_chain(opset):
    """EmbedLayerNormalization -> Attention on its mask_index -> SkipLayerNormalization, as the
    BERT optimizer fuses a model with token types and an attention mask; Attention's mask layout
    is known only once the embedding's rewrite has shapes (a second round)."""
    hidden, seq = 16, 8
    mask = np.ones((2, seq), np.int32)
    mask[1, 5:] = 0
    feeds = {"ids": RNG.integers(0, 30, (2, seq)).astype(np.int32), "segments": RNG.integers(0, 2, (2, seq)).astype(np.int32),
             "mask": mask}
    inits = {"words": _f(30, hidden), "positions": _f(12, hidden), "types": _f(2, hidden), "g": _f(hidden), "be": _f(hidden),
             "w": _f(hidden, 3 * hidden) / 4, "b": _f(3 * hidden)}
    nodes = [helper.make_node("EmbedLayerNormalization", ["ids", "segments", "words", "positions", "types", "g", "be", "mask"],
                              ["emb", "mask_index", "emb_sum"], name="embed", domain=MS, epsilon=1e-12),
             helper.make_node("Attention", ["emb", "w", "b", "mask_index"], ["att"], name="attention", domain=MS, num_heads=2),
             helper.make_node("SkipLayerNormalization", ["att", "emb", "g", "be"], ["y"], name="skip", domain=MS, epsilon=1e-12)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.INT32, v.shape) for k, v in feeds.items()],
        [onnx.ValueInfoProto(name="y"), onnx.ValueInfoProto(name="emb_sum")],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)], ir_version=10)
    decomposed, records = _decomposed(proto)
    assert [r["node"] for r in records] == ["embed", "attention", "skip"] and all("into" in r for r in records), records
    _check(_session(proto).run(None, feeds), _session(decomposed).run(None, feeds), quantized=False)


def test_multi_head_attention_with_bias():
    feeds = {"q": _f(2, 6, 16), "k": _f(2, 8, 16), "v": _f(2, 8, 16)}
    ref, got, _ = _single("MultiHeadAttention", feeds, {"bias": _f(48)}, ["q", "k", "v", "bias"], ["y"], num_heads=2)
    _check(ref, got, quantized=False)


@pytest.mark.parametrize("opset", [11, 17, 18])
@pytest.mark.parametrize("op", ["SkipLayerNormalization", "SkipSimplifiedLayerNormalization"])
def test_skip_layer_norm(op, opset):
    feeds = {"x": _f(2, 5, 16), "skip": _f(2, 5, 16)}
    if op == "SkipLayerNormalization":
        inits, inputs = {"gamma": _f(16), "beta": _f(16), "bias": _f(16)}, ["x", "skip", "gamma", "beta", "bias"]
    else:
        inits, inputs = {"gamma": _f(16), "bias": _f(16)}, ["x", "skip", "gamma", "bias"]
    ref, got, _ = _single(op, feeds, inits, inputs, ["y", "", "", "sum"], opset, epsilon=1e-5)
    _check(ref, got, quantized=False)


@pytest.mark.parametrize("op, inputs, opset", [("SimplifiedLayerNormalization", ["x", "g"], 17),
                                               ("LayerNormalization", ["x", "g", "b"], 14)])
def test_default_domain_norms_of_onnxruntime(op, inputs, opset):
    """Norms onnxruntime registers in the default domain: RMS norm, and LayerNormalization
    below opset 17 (what its optimizer writes for an older model; ONNX has none there)."""
    inits = {"g": _f(16), "b": _f(16)}
    ref, got, records = _single(op, {"x": _f(2, 5, 16)}, {k: inits[k] for k in inputs[1:]}, inputs, ["y"], opset,
                                domain="", epsilon=1e-6, axis=-1)
    _check(ref, got, quantized=False)
    assert records[0]["domain"] == "ai.onnx" and "LayerNormalization" not in records[0]["into"]


def test_layer_normalization_of_onnx_is_left_alone():
    graph = helper.make_graph([helper.make_node("LayerNormalization", ["x", "g"], ["y"], axis=-1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [numpy_helper.from_array(_f(4), "g")])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert decompose_contrib_ops(model) == [] and not has_contrib_ops(model)


@pytest.mark.parametrize("opset", [11, 20])
@pytest.mark.parametrize("op, bias", [("Gelu", False), ("BiasGelu", True), ("FastGelu", True), ("FastGelu", False),
                                      ("QuickGelu", False)])
def test_gelus(op, bias, opset):
    inputs, inits = (["x", "b"], {"b": _f(16)}) if bias else (["x"], {})
    ref, got, records = _single(op, {"x": _f(2, 5, 16) * 2}, inits, inputs, ["y"], opset)
    _check(ref, got, quantized=False)
    assert ("Gelu" in records[0]["into"]) == (opset >= 20 and op != "QuickGelu")


@pytest.mark.parametrize("attrs", [{}, {"transA": 1}, {"transB": 1, "alpha": 0.25}])
def test_fused_matmul(attrs):
    a = _f(3, 8, 6) if attrs.get("transA") else _f(3, 6, 8)
    b = _f(5, 8) if attrs.get("transB") else _f(8, 5)
    ref, got, _ = _single("FusedMatMul", {"a": a}, {"b": b}, ["a", "b"], ["y"], **attrs)
    _check(ref, got, quantized=False)


@pytest.mark.parametrize("activation, params", [("Relu", None), ("LeakyRelu", [0.1]), ("Clip", [0.0, 6.0]),
                                                ("Sigmoid", None), ("HardSigmoid", [0.2, 0.5])])
def test_fused_conv(activation, params):
    feeds = {"x": _f(1, 3, 8, 8), "z": _f(1, 4, 8, 8)}
    attrs = {"activation": activation, "pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    if params:
        attrs["activation_params"] = params
    ref, got, _ = _single("FusedConv", feeds, {"w": _f(4, 3, 3, 3), "b": _f(4)}, ["x", "w", "b", "z"], ["y"], **attrs)
    _check(ref, got, quantized=False)


# ------------------------------------------------------------------ quantized ops, one node each

def test_qattention_keeps_the_integer_projection():
    feeds = {"x": _u8(2, 8, 16), "mask": _mask(2, 8)}
    inits = {"w": _i8(16, 48), "b": _f(48), "xs": _scale(0.02), "ws": _scale(0.003),
             "xz": np.array(128, np.uint8), "wz": np.array(0, np.int8)}
    ref, got, records = _single("QAttention", feeds, inits, ["x", "w", "b", "xs", "ws", "mask", "xz", "wz"], ["y"],
                                num_heads=4)
    _check(ref, got, quantized=False)
    assert records[0]["into"][:3] == ["MatMulInteger", "Cast", "Mul"]  # the scales fold into one constant


@pytest.mark.parametrize("quantized_output", [False, True])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_qgemm(quantized_output, alpha):
    feeds = {"a": _u8(4, 16)}
    inits = {"as": _scale(0.05), "az": np.array(120, np.uint8), "b": _i8(8, 16), "bs": np.linspace(0.01, 0.02, 8, dtype=np.float32),
             "bz": np.zeros(8, np.int8), "c": RNG.integers(-2000, 2000, 8).astype(np.int32)}
    inputs = ["a", "as", "az", "b", "bs", "bz", "c"]
    if quantized_output:
        inits |= {"ys": _scale(0.5), "yz": np.array(128, np.uint8)}
        inputs += ["ys", "yz"]
    ref, got, records = _single("QGemm", feeds, inits, inputs, ["y"], transB=1, alpha=alpha)
    _check(ref, got, quantized=quantized_output)
    assert records[0]["into"][:2] == ["MatMulInteger", "Add"]  # the int32 bias on the accumulator


def test_dynamic_quantize_matmul():
    inits = {"b": _i8(16, 8), "bs": np.linspace(0.01, 0.02, 8, dtype=np.float32), "bz": np.zeros(8, np.int8), "bias": _f(8)}
    ref, got, records = _single("DynamicQuantizeMatMul", {"a": _f(2, 4, 16)}, inits, ["a", "b", "bs", "bz", "bias"], ["y"])
    _check(ref, got, quantized=False)
    assert records[0]["into"][:3] == ["DynamicQuantizeLinear", "Mul", "MatMulInteger"]


def test_matmul_integer_to_float():
    inits = {"b": _i8(16, 8), "as": _scale(0.02), "bs": _scale(0.01), "az": np.array(3, np.uint8), "bias": _f(8)}
    ref, got, _ = _single("MatMulIntegerToFloat", {"a": _u8(2, 4, 16)}, inits, ["a", "b", "as", "bs", "az", "", "bias"], ["y"])
    _check(ref, got, quantized=False)


QPARAMS = {"s1": _scale(0.04), "z1": np.array(100, np.uint8), "s2": _scale(0.03), "z2": np.array(140, np.uint8),
           "sy": _scale(0.05), "zy": np.array(128, np.uint8)}


@pytest.mark.parametrize("op, inputs, attrs", [
    ("QLinearAdd", ["a", "s1", "z1", "b", "s2", "z2", "sy", "zy"], {}),
    ("QLinearMul", ["a", "s1", "z1", "b", "s2", "z2", "sy", "zy"], {}),
    ("QLinearSigmoid", ["a", "s1", "z1", "sy", "zy"], {}),
    ("QLinearLeakyRelu", ["a", "s1", "z1", "sy", "zy"], {"alpha": 0.1}),
    ("QLinearGlobalAveragePool", ["a", "s1", "z1", "sy", "zy"], {}),
    ("QLinearAveragePool", ["a", "s1", "z1", "sy", "zy"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("QLinearConcat", ["sy", "zy", "a", "s1", "z1", "b", "s2", "z2"], {"axis": 1}),
])
def test_qlinear_elementwise(op, inputs, attrs):
    feeds = {"a": _u8(1, 4, 6, 6), "b": _u8(1, 4, 6, 6)}
    feeds = {k: v for k, v in feeds.items() if k in inputs}
    ref, got, _ = _single(op, feeds, QPARAMS, inputs, ["y"], **attrs)
    _check(ref, got, quantized=True)


@pytest.mark.parametrize("per_axis", [False, True])
def test_contrib_quantize_dequantize(per_axis):
    """The QDQ quantizer's com.microsoft QuantizeLinear/DequantizeLinear, 8-bit: the ONNX ops."""
    scale = np.linspace(0.01, 0.04, 4, dtype=np.float32) if per_axis else _scale(0.02)
    zero = np.full(scale.shape, 3, np.int8)
    attrs = {"axis": 1} if per_axis else {}
    ref, got, _ = _single("QuantizeLinear", {"x": _f(2, 4, 5)}, {"s": scale, "z": zero}, ["x", "s", "z"], ["y"], **attrs)
    _check(ref, got, quantized=True)
    ref, got, _ = _single("DequantizeLinear", {"q": _i8(2, 4, 5)}, {"s": scale, "z": zero}, ["q", "s", "z"], ["y"], **attrs)
    _check(ref, got, quantized=False)


# ------------------------------------------------------------------ what stays, and why

@pytest.mark.parametrize("attrs, extra, reason", [
    ({"unidirectional": 1}, [], "unidirectional=1"),
    ({}, ["mask3d"], "only a raw 2-D"),
])
def test_attention_forms_left_with_a_reason(attrs, extra, reason):
    inputs = {"x": helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8]),
              "mask3d": helper.make_tensor_value_info("mask3d", TensorProto.INT32, [1, 4, 4])}
    node = helper.make_node("Attention", ["x", "w", "b", *extra], ["y"], domain=MS, num_heads=2, **attrs)
    graph = helper.make_graph([node], "g", [inputs["x"], *(inputs[e] for e in extra)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(_f(8, 24), "w"), numpy_helper.from_array(_f(24), "b")])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]))
    [record] = decompose_contrib_ops(model)
    assert reason in record["reason"] and "into" not in record
    assert [n.op_type for n in model.graph] == ["Attention"] and len(model.graph.initializers) == 2
    assert describe_contrib(record).startswith("com.microsoft::Attention '")


def test_unknown_contrib_op_and_old_opset_left_with_a_reason():
    nodes = [helper.make_node("Inverse", ["x"], ["y"], name="inv", domain=MS),
             helper.make_node("Gelu", ["y"], ["z"], name="gelu", domain=MS)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10), helper.make_opsetid(MS, 1)]))
    records = decompose_contrib_ops(model)
    assert [r["reason"] for r in records] == ["no decomposition of com.microsoft::Inverse",
                                             "opset 10: decompositions need opset 11 or later"]


def test_every_decomposition_is_checked_here():
    """A new entry of nncc.contrib.BUILDERS comes with its onnxruntime check in this file."""
    source = pathlib.Path(__file__).read_text()
    assert not [op for _, op in BUILDERS if f'"{op}"' not in source]
