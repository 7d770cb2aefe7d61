"""Pre-quantized, transposed-convolution and float16 layers on the reram, ucnn and hypar targets.

Small onnx.helper models with hand-checked counts (integer codes minus zero points, crossbar
rows / columns / MVMs, UCNN's per-filter counts, HyPar's per-layer data width), then the corpus
models that exercise them (tests/corpus.py): fully costed on the three targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import corpus
from nncc.analysis import layers
from nncc.backends.hypar import HyparTarget
from nncc.backends.hypar.partition import MP, Level, Precision
from nncc.backends.reram import ReramConfig, ReramTarget
from nncc.backends.ucnn import UcnnTarget
from nncc.driver import CompileOptions, compile_model
from nncc.loading import load_model
from nncc.ops import op_class

U8, I8, I32, F = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32, TensorProto.FLOAT
FAST = dict(adc_bits_from="weights")  # reram: no onnxruntime run


def _save(tmp_path, nodes, inputs, outputs, inits, name="m.onnx", opsets=(("", 17),)):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], ir_version=8)
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def _t(array, name):
    return numpy_helper.from_array(np.asarray(array), name)


def _reram_rows(path):
    t = ReramTarget(dataclasses.replace(ReramConfig(), **FAST))
    mapping = t.lower(load_model(path))
    return {r.name: r for r in mapping.crossbar_layers}, mapping


def _ucnn(path):
    return compile_model(path, UcnnTarget(), [], CompileOptions(verify_samples=0))


def _hypar(path):
    return compile_model(path, HyparTarget(), [], CompileOptions(verify_samples=0))


# Filter 0: 18 x (+1); filter 1: 18 x (+2); filter 2: 6 zeros, 6 x (+1), 6 x (-1); stored as
# uint8 with zero point 128.
CODES = np.stack([np.ones(18), np.full(18, 2), np.repeat([0, 1, -1], 6)]).reshape(3, 2, 3, 3)


def _conv_integer(tmp_path):
    """x uint8 [1, 2, 4, 4] -> ConvInteger 3x3, 3 filters (no padding) -> [1, 3, 2, 2] int32 -> Cast."""
    nodes = [helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["acc"], name="convi"),
             helper.make_node("Cast", ["acc"], ["y"], name="cast", to=F)]
    inits = [_t((CODES + 128).astype(np.uint8), "w"), _t(np.array(0, np.uint8), "xz"), _t(np.array(128, np.uint8), "wz")]
    return _save(tmp_path, nodes, [_vi("x", U8, [1, 2, 4, 4])], [_vi("y", F, [1, 3, 2, 2])], inits, "convi.onnx")


def test_conv_integer_codes_are_the_cells_the_ucnn_codes_and_an_8_bit_hypar_layer(tmp_path):
    path = _conv_integer(tmp_path)
    rows, mapping = _reram_rows(path)
    row = rows["convi"]
    assert mapping.unsupported == []
    assert (row.rows, row.cols, row.groups, row.mvms, row.macs) == (18, 3, 1, 4, 4 * 3 * 18)
    # 8-bit integers, 2-bit cells: 4 slices per polarity; the codes minus 128 are stored as they are
    # (scale: one level per code), so only the least significant slice holds cells: filter 1's
    # 18 x 2 is the largest column sum.
    assert (row.slices, row.polarities) == (4, 2)
    assert row.quantization["weight_scale"] == 255
    assert row.max_column_sum == [0, 0, 0, 36]

    result = _ucnn(path)
    assert result.cost.unsupported == []
    u = result.mapping.layers[0]
    assert (u.kind, u.positions, u.weight_bits, u.act_bits) == ("factorized", 4, 8, 8)
    s = u.stats
    # zeros 6 (zero point removed); unique non-zero 1 + 1 + 2; entries 18 + 18 + 12; adds K - Z - 1 per filter
    assert (s.filters, s.k, s.zeros, s.mults, s.entries, s.adds) == (3, 18, 6, 4, 48, 17 + 17 + 11)
    assert u.dense_weight_bits == 54 * 8

    result = _hypar(path)
    assert result.cost.unsupported == []
    (spec,) = result.mapping.graph.specs
    assert (spec.name, spec.cin, spec.weight_elems, spec.out_elems, spec.data_bits) == ("convi", 2, 54.0, 12.0, 8)
    level = Level([spec], 4, [(0, 0)], Precision(32, 32, 0), set())
    assert level.intra_bytes(0, MP) == 4 * 12 * 8 / 8  # the output maps at 8 bits, not the config's 32


def test_matmul_integer_and_dynamic_quantize_linear(tmp_path):
    """x float [2, 4] -> DynamicQuantizeLinear -> MatMulInteger by int8 [4, 3] -> Cast * scale."""
    w = np.array([[1, 0, -2], [1, 0, 2], [1, 3, -2], [1, 3, 2]], np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"], name="dql"),
             helper.make_node("MatMulInteger", ["q", "w", "qz"], ["acc"], name="mmi"),
             helper.make_node("Cast", ["acc"], ["accf"], name="cast", to=F),
             helper.make_node("Mul", ["accf", "qs"], ["y"], name="rescale")]
    path = _save(tmp_path, nodes, [_vi("x", F, [2, 4])], [_vi("y", F, [2, 3])], [_t(w, "w")], "mmi.onnx")
    assert op_class("DynamicQuantizeLinear") == "elementwise"

    rows, mapping = _reram_rows(path)
    assert mapping.unsupported == []
    row = rows["mmi"]
    assert (row.rows, row.cols, row.mvms, row.macs) == (4, 3, 2, 24)
    # the column sums of the stored codes: |1|*4, |3|*2, |2|*4 (positive and negative columns apart)
    assert row.max_column_sum == [0, 0, 0, 6]
    digital = {r.name: r for r in mapping.layers if not hasattr(r, "crossbars")}
    assert digital["dql"].kind == "digital" and digital["dql"].ops == 8 + 2  # y and its scale, zero point

    result = _ucnn(path)
    assert result.cost.unsupported == []
    by_name = {r.name: r for r in result.mapping.layers}
    u = by_name["mmi"]
    assert (u.kind, u.positions, u.stats.filters, u.stats.k) == ("factorized", 2, 3, 4)
    assert (u.stats.zeros, u.stats.mults) == (2, 1 + 1 + 2)  # column 1 holds two zeros; column 2 is +-2
    assert by_name["dql"].kind == "vector"

    result = _hypar(path)
    assert result.cost.unsupported == []
    (spec,) = result.mapping.graph.specs
    assert (spec.name, spec.cin, spec.data_bits) == ("mmi", 4, 8)


def test_qlinear_conv_maps_with_its_zero_point_removed(tmp_path):
    w = (CODES + 128).astype(np.uint8)
    nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qconv")]
    inits = [_t(np.array(0.1, np.float32), "xs"), _t(np.array(0, np.uint8), "xz"), _t(w, "w"),
             _t(np.array(0.01, np.float32), "ws"), _t(np.array(128, np.uint8), "wz"),
             _t(np.array(0.2, np.float32), "ys"), _t(np.array(0, np.uint8), "yz")]
    path = _save(tmp_path, nodes, [_vi("x", U8, [1, 2, 4, 4])], [_vi("y", U8, [1, 3, 2, 2])], inits, "qconv.onnx")
    rows, mapping = _reram_rows(path)
    row = rows["qconv"]
    assert mapping.unsupported == [] and (row.rows, row.cols, row.mvms) == (18, 3, 4)
    assert row.max_column_sum == [0, 0, 0, 36]
    u = _ucnn(path).mapping.layers[0]
    assert (u.stats.zeros, u.stats.mults, u.stats.entries, u.weight_bits) == (6, 4, 48, 8)
    (spec,) = _hypar(path).mapping.graph.specs
    assert (spec.cin, spec.data_bits) == (2, 8)


def test_conv_transpose_on_crossbars_filters_and_partitions(tmp_path):
    """x [1, 2, 3, 3] -> ConvTranspose 2 -> 3 channels, 2x2 kernel, stride 1 -> [1, 3, 4, 4]."""
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.0, (2, 3, 2, 2)).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up")]
    path = _save(tmp_path, nodes, [_vi("x", F, [1, 2, 3, 3])], [_vi("y", F, [1, 3, 4, 4])], [_t(w, "w")], "up.onnx")
    rows, mapping = _reram_rows(path)
    row = rows["up"]
    assert mapping.unsupported == []
    # per input pixel (9), the [C = 2 rows, M * kh * kw = 12 columns] matrix; 9 x 12 column results
    # land on 48 outputs: 60 overlap adds on the digital units
    assert (row.rows, row.cols, row.mvms, row.macs, row.overlap_adds) == (2, 12, 9, 18 * 12, 9 * 12 - 48)

    result = _ucnn(path)
    assert result.cost.unsupported == []
    u = result.mapping.layers[0]
    assert (u.kind, u.stats.filters, u.stats.k, u.positions) == ("factorized", 3, 8, 9)

    result = _hypar(path)
    assert result.cost.unsupported == []
    (spec,) = result.mapping.graph.specs
    assert (spec.cin, spec.weight_elems, spec.out_elems, spec.data_bits) == (2, 24.0, 48.0, 0)


def _dq_lstm(tmp_path):
    """X [3, 1, 2] -> com.microsoft::DynamicQuantizeLSTM (H = 2, forward; int8 W [1, 2, 8], R [1, 2, 8])."""
    rng = np.random.default_rng(1)
    w = rng.integers(-3, 4, (1, 2, 8)).astype(np.int8)
    r = rng.integers(-3, 4, (1, 2, 8)).astype(np.int8)
    node = helper.make_node("DynamicQuantizeLSTM", ["x", "w", "r", "b", "", "", "", "", "ws", "wz", "rs", "rz"],
                            ["y", "yh", "yc"], name="lstm", domain="com.microsoft", hidden_size=2)
    inits = [_t(w, "w"), _t(r, "r"), _t(np.zeros((1, 16), np.float32), "b"), _t(np.array([0.1], np.float32), "ws"),
             _t(np.array([0], np.int8), "wz"), _t(np.array([0.1], np.float32), "rs"), _t(np.array([0], np.int8), "rz")]
    nodes = [node, helper.make_node("Relu", ["yh"], ["h"], name="relu"), helper.make_node("Identity", ["h"], ["out"], name="id")]
    path = _save(tmp_path, nodes, [_vi("x", F, [3, 1, 2])], [_vi("out", F, [1, 1, 2])], inits, "dqlstm.onnx",
                 opsets=(("", 17), ("com.microsoft", 1)))
    return path, w, r


def test_dynamic_quantize_lstm_shapes_at_load_and_costed_as_an_int8_lstm(tmp_path):
    path, w, r = _dq_lstm(tmp_path)
    model = load_model(path)
    node = next(n for n in model.graph if n.op_type == "DynamicQuantizeLSTM")
    assert [tuple(v.shape) for v in node.outputs] == [(3, 1, 1, 2), (1, 1, 2), (1, 1, 2)]
    relu = next(row for row in layers(model) if row.name == "relu")
    assert relu.output_shapes == [(1, 1, 2)]  # re-inferred downstream

    rows, mapping = _reram_rows(path)
    assert mapping.unsupported == []
    row = rows["lstm"]
    # per direction [W; R] = [I + H = 4 rows, 4H = 8 columns], one MVM per step and batch row
    assert (row.rows, row.cols, row.mvms, row.steps, row.macs) == (4, 8, 3, 3, 3 * 8 * 4)
    codes = np.abs(np.concatenate([w[0], r[0]], axis=0)).astype(int)
    pos = np.where(np.concatenate([w[0], r[0]]) > 0, codes, 0).sum(axis=0)
    neg = np.where(np.concatenate([w[0], r[0]]) < 0, codes, 0).sum(axis=0)
    assert row.max_column_sum[-1] == max(pos.max(), neg.max())  # the int8 codes, as stored
    assert sum(row.gate_mix) > 0

    result = _ucnn(path)
    assert result.cost.unsupported == []
    u = {x.name: x for x in result.mapping.layers}["lstm"]
    assert (u.kind, u.stats.filters, u.stats.k, u.positions, u.weight_bits) == ("factorized", 8, 4, 3, 8)
    assert u.vector_ops > 0

    result = _hypar(path)
    assert result.cost.unsupported == []
    (spec,) = result.mapping.graph.specs
    assert (spec.name, spec.cin, spec.weight_elems, spec.data_bits) == ("lstm", 4, 32.0, 8)


def test_float16_layers_cost_at_16_bits(tmp_path):
    w = np.random.default_rng(0).uniform(0.5, 1.0, (3, 2, 3, 3)).astype(np.float16)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    path = _save(tmp_path, nodes, [_vi("x", TensorProto.FLOAT16, [1, 2, 4, 4])], [_vi("y", TensorProto.FLOAT16, [1, 3, 2, 2])],
                 [_t(w, "w")], "fp16.onnx")
    rows, _ = _reram_rows(path)
    row = rows["conv"]
    assert (row.weight_bits, row.input_bits, row.slices) == (16, 16, 8)  # 16-bit weights on 2-bit cells
    u = compile_model(path, UcnnTarget.configure(sets={"weight_bits": "8", "act_bits": "8"}), [],
                      CompileOptions(verify_samples=0)).mapping.layers[0]
    assert (u.weight_bits, u.act_bits) == (16, 16)
    (spec,) = _hypar(path).mapping.graph.specs
    assert spec.data_bits == 16


# ---------------------------------------------------------------- the corpus models

@pytest.mark.parametrize("target", [ReramTarget, UcnnTarget, HyparTarget], ids=["reram", "ucnn", "hypar"])
@pytest.mark.parametrize("name", ["ddddocr_common_old", "ppocr_det"])
def test_corpus_model_is_fully_costed(name, target):
    entry = corpus.ENTRY[name]
    result = compile_model(corpus.path(name), target(), [],
                           CompileOptions(verify_samples=0, input_shapes=dict(entry.shapes)))
    assert result.cost.unsupported == []
    coverage = result.report["totals"]["coverage"]
    assert coverage["complete"] and coverage["macs_fraction"] == 1.0 and coverage["unsupported_nodes"] == 0
