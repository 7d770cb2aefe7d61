"""The reram target: crossbar counts by hand, ADC bits from column sums, monotonicity
properties, Group Scissor counts, configuration overrides, the artifact, and the zoo."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nncc import models
from nncc.backends.reram import ReramConfig, ReramTarget, crossbar_area_ratio, group_scissor_counts
from nncc.backends.reram import adc
from nncc.crossbar import layer_scale
from nncc.driver import CompileOptions, compile_model, write_outputs
from nncc.errors import NnccError

FAST = dict(adc_bits_from="weights")  # no onnxruntime run: structural tests


def _model(nodes, inputs, outputs, inits) -> ir.Model:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return ir.from_proto(onnx.shape_inference.infer_shapes(proto))


def gemm_model(w: np.ndarray, batch: int = 1, **attrs) -> ir.Model:
    """y = x @ w.T (Gemm transB), w: [N, K]; with transB=0, y = x @ w, w: [K, N]."""
    attrs = {"transB": 1, **attrs}
    n, k = w.shape if attrs["transB"] else w.shape[::-1]
    return _model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", **attrs)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, k])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n])],
                  [numpy_helper.from_array(w.astype(np.float32), "w")])


def conv_model(w: np.ndarray, hw: int = 8, pad: int = 1, group: int = 1) -> ir.Model:
    n, cg, kh, kw = w.shape
    c = cg * group
    out = hw + 2 * pad - kh + 1
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[pad] * 4, group=group)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n, out, out])],
                  [numpy_helper.from_array(w.astype(np.float32), "w")])


def target(**sets) -> ReramTarget:
    return ReramTarget(dataclasses.replace(ReramConfig(), **sets))


def layer(model: ir.Model, t: ReramTarget, calibration=None, name: str | None = None):
    rows = t.lower(model, calibration).crossbar_layers
    return rows[0] if name is None else next(r for r in rows if r.name == name)


def dense(shape, seed=0) -> np.ndarray:
    """Random weights with no exact zeros and a clear max, so every block holds a non-zero cell."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.3, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    w.flat[0] = 1.0
    return w


def f32(shape, seed=0) -> np.ndarray:
    return dense(shape, seed).astype(np.float32)


# ---------------------------------------------------------------- hand-computed counts

def test_conv_3_to_16_3x3_on_16x16_crossbars():
    t = target(crossbar_size=16, **FAST)
    row = layer(conv_model(dense((16, 3, 3, 3))), t)
    # K = 3*3*3 = 27 rows -> 2 row blocks; N = 16 filters x 4 slices (8 bits / 2 per cell) x 2 polarities = 128 columns
    assert (row.rows, row.cols, row.slices, row.polarities) == (27, 16, 4, 2)
    assert (row.row_blocks, row.col_blocks) == (2, 8)
    assert row.crossbars == row.crossbars_dense == 2 * 8
    assert row.crossbars_logical == math.ceil(27 / 16) * math.ceil(16 / 16) == 2
    assert row.mvms == 8 * 8  # pad 1: 8x8 output pixels, each one MVM on the same crossbars
    # rows driven: 16 + 11 per column block, 8 column blocks, 8 input bits, 64 MVMs
    assert row.dac_drives == 64 * 8 * (16 + 11) * 8
    offset = layer(conv_model(dense((16, 3, 3, 3))), target(crossbar_size=16, weight_encoding="offset", **FAST))
    assert offset.crossbars == 2 * 4 and offset.polarities == 1


def test_gemm_300_to_100_on_128x128_crossbars():
    t = target(**FAST)
    row = layer(gemm_model(dense((100, 300))), t)
    assert (row.row_blocks, row.col_blocks) == (3, 7)  # ceil(300/128), ceil(100*4*2/128) = ceil(800/128)
    assert row.crossbars == 21 and row.crossbars_logical == 3 * 1
    # 800 columns per row block: 6 full crossbars and one of 32 columns, 8 columns per ADC
    assert sum(row.adc_units.values()) == 3 * (6 * 16 + 4)
    report = t.estimate(t.lower(gemm_model(dense((100, 300)))))
    assert report.layers[0].latency_s == pytest.approx(1 * 8 * 10e-9)  # one MVM, 8 input bits, 10 ns read pulse
    assert report.totals()["crossbar_area_mm2"] == pytest.approx(21 * 128 * 128 * 4 * 0.032 ** 2 / 1e6)


def test_worst_case_adc_bits_are_capped_at_isaac_8_bits():
    c = ReramConfig()
    assert adc.worst_case_sums(c.geometry, 300) == [128 * 3] * 4  # a full crossbar of 2-bit cells: 384 -> 9 bits
    assert [adc.bits_for(s, c.adc_bits_max) for s in adc.worst_case_sums(c.geometry, 300)] == [8, 8, 8, 8]
    assert [adc.bits_for(s, 8) for s in adc.worst_case_sums(c.geometry, 20)] == [6] * 4  # 60 -> 6 bits
    assert adc.bits_for(0, 8) == 0 and adc.bits_for(1, 8) == 1 and adc.bits_for(3, 8) == 2 and adc.bits_for(4, 8) == 3


def test_column_sum_by_hand_with_calibration_inputs():
    # All weights +1 (code 255 = slices 3,3,3,3), inputs all 1 (code 255 = every bit plane 1):
    # a positive column adds 20 rows x 3 = 60 -> 6 bits; negative columns hold zeros -> no conversions.
    m = gemm_model(np.ones((4, 20)))
    row = layer(m, target(), {"x": np.ones((3, 1, 20), np.float32)})
    assert row.max_column_sum == [60.0] * 4 and row.adc_bits == [6] * 4
    assert row.conversions == [1 * 8 * 4] * 4  # 1 MVM x 8 input bits x 4 positive columns per slice
    assert row.adc_bits_source == "measured on calibration inputs"
    assert row.quantization["input_signed"] is False and row.quantization["input_scale"] == pytest.approx(1.0)
    half = layer(m, target(), {"x": np.full((3, 1, 20), 0.5, np.float32) * np.r_[np.ones(10), np.zeros(10)]})
    # inputs 0.5 of a max 0.5 on ten rows: code 255 again, but only 10 rows -> 30 -> 5 bits
    assert half.max_column_sum == [30.0] * 4 and half.adc_bits == [5] * 4


def test_pow2_weight_scale_is_the_authors_fixed_point():
    # max |w| = 0.6: the pow2 scale is 1.0, so w = 0.6 takes code round(0.6 * 255) = 153 = 0b10_01_10_01
    # (slices 2,1,2,1) instead of 255 (3,3,3,3); 20 rows of inputs all 1 -> column sums 40,20,40,20.
    m = gemm_model(np.full((4, 20), 0.6))
    assert layer_scale(0.6, target(weight_scale="pow2").config.geometry) == 1.0
    assert layer_scale(0.6, target().config.geometry) == 0.6
    row = layer(m, target(weight_scale="pow2"), {"x": np.ones((3, 1, 20), np.float32)})
    assert row.max_column_sum == [40.0, 20.0, 40.0, 20.0] and row.adc_bits == [6, 5, 6, 5]
    assert "pow2" in row.quantization["weights"]
    with pytest.raises(ValueError, match="weight_scale"):
        ReramConfig(weight_scale="log")


def test_adc_energy_and_latency_follow_the_formula():
    t = target(**FAST)
    mp = t.lower(gemm_model(dense((10, 40)), batch=3))
    row = mp.crossbar_layers[0]
    report = t.estimate(mp)
    lc = report.layers[0]
    c = t.config
    adc_j = sum(n * c.adc_energy_pj(b) for n, b in zip(row.conversions, row.adc_bits)) * 1e-12
    assert lc.energy_breakdown_j["adc"] == pytest.approx(adc_j)
    assert lc.energy_breakdown_j["dac"] == pytest.approx(3 * 8 * 40 * 1 * 0.41667e-12)  # 3 MVMs, 40 rows, 1 crossbar
    cycle = max(10e-9, 8 * max(row.adc_bits) / 8 / 1.2e9)
    assert lc.latency_s == pytest.approx(3 * 8 * cycle)
    assert lc.energy_j == pytest.approx(sum(lc.energy_breakdown_j.values()))


def test_grouped_conv_packs_groups_and_depthwise_counts():
    w = dense((32, 1, 3, 3))  # depthwise 32 channels: 9 rows, 1 filter x 8 columns per group
    row = layer(conv_model(w, group=32), target(**FAST))
    assert row.groups == 32 and row.groups_per_crossbar == min(128 // 9, 128 // 8) == 14
    assert row.crossbars == math.ceil(32 / 14) == 3
    assert row.crossbars_logical == math.ceil(32 / min(128 // 9, 128 // 1)) == 3


# ---------------------------------------------------------------- properties (hypothesis)

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 300), n=st.integers(1, 80), x1=st.integers(4, 128), grow=st.integers(1, 128))
def test_a_larger_crossbar_never_needs_more_crossbars(k, n, x1, grow):
    m = gemm_model(dense((n, k), seed=k * n))
    small = layer(m, target(crossbar_size=x1, **FAST))
    large = layer(m, target(crossbar_size=x1 + grow, **FAST))
    assert large.crossbars <= small.crossbars and large.crossbars_logical <= small.crossbars_logical


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 200), n=st.integers(1, 40), x=st.sampled_from([8, 16, 32, 64]), density=st.floats(0.0, 1.0))
def test_a_larger_crossbar_never_needs_more_crossbars_with_zero_blocks(k, n, x, density):
    rng = np.random.default_rng(k + 7 * n)
    w = dense((n, k)) * (rng.random((n, k)) < density)
    m = gemm_model(w)
    assert layer(m, target(crossbar_size=2 * x, **FAST)).crossbars <= layer(m, target(crossbar_size=x, **FAST)).crossbars


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 300), n=st.integers(1, 60), c1=st.integers(1, 64), grow=st.integers(1, 64), pruned=st.floats(0, 0.9))
def test_more_columns_per_adc_never_raise_the_adc_count(k, n, c1, grow, pruned):
    rng = np.random.default_rng(k * 31 + n)
    w = dense((n, k)) * (rng.random((n, k)) >= pruned)
    m = gemm_model(w)
    few, many = target(cols_per_adc=c1, **FAST), target(cols_per_adc=c1 + grow, **FAST)
    assert many.estimate(many.lower(m)).totals()["adcs"] <= few.estimate(few.lower(m)).totals()["adcs"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(2, 200), n=st.integers(1, 20), seed=st.integers(0, 1000), signed=st.booleans())
def test_calibrated_adc_bits_never_exceed_the_bounds(k, n, seed, signed):
    rng = np.random.default_rng(seed)
    m = gemm_model(rng.normal(size=(n, k)))
    x = rng.random((4, 1, k)).astype(np.float32) - (0.5 if signed else 0.0)
    measured = layer(m, target(), {"x": x})
    bound = layer(m, target(adc_bits_from="weights"))
    worst = layer(m, target(adc_bits_from="worst-case"))
    assert all(a <= b <= c for a, b, c in zip(measured.adc_bits, bound.adc_bits, worst.adc_bits))
    assert measured.adc_bits_source == "measured on calibration inputs"
    assert all(a <= b for a, b in zip(measured.adc_bits, measured.worst_case_bits))
    assert measured.quantization["input_signed"] == bool(signed and x.min() < 0)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(8, 150), n=st.integers(2, 24), keep=st.floats(0.05, 0.9), seed=st.integers(0, 1000))
def test_pruning_lowers_column_sums_adc_bits_and_conversions(k, n, keep, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, k))
    pruned = np.where(np.abs(w) >= np.quantile(np.abs(w), 1 - keep), w, 0.0)  # magnitude pruning keeps the max
    pruned[:, : max(1, k // 3)] = 0.0  # and whole input rows ("zero-weight columns" of the crossbar's rows)
    pruned.flat[np.argmax(np.abs(w))] = w.flat[np.argmax(np.abs(w))]
    x = {"x": rng.random((4, 1, k)).astype(np.float32)}
    before = layer(gemm_model(w), target(), x)
    after = layer(gemm_model(pruned), target(), x)
    assert all(a <= b for a, b in zip(after.max_column_sum, before.max_column_sum))
    assert all(a <= b for a, b in zip(after.adc_bits, before.adc_bits))
    assert sum(after.conversions) <= sum(before.conversions)


def test_pruned_slices_drop_to_zero_bits_and_lose_their_adcs():
    # Weights at most 63/255 of the max: the top 2-bit slice of every weight but the max is 0.
    w = np.full((16, 64), 0.2)
    w[0, 0] = 1.0
    row = layer(gemm_model(w), target(**FAST))
    one = layer(gemm_model(np.where(np.arange(16)[:, None] == 0, w, 0.0)), target(**FAST))  # outputs 1..15 pruned
    assert row.adc_bits[0] == 2  # MSB slice: only the max weight's cell (3) in its column -> ceil(log2(4)) = 2 bits
    # 0.2 -> code 51 = 0b00_11_00_11: slices (MSB first) 0, 3, 0, 3; the max (255) fills all four slices of output 0.
    # Live columns: 1 + 16 + 1 + 16 = 34 (negative columns are all zero) -> ceil(34 / 8) = 5 ADCs:
    # 32 columns of 64 rows x 3 = 192 -> 8 bits (4 ADCs), two columns of sum 3 -> 2 bits (1 ADC).
    assert row.adc_bits == [2, 8, 2, 8] and row.adc_units == {8: 4, 2: 1}
    assert one.adc_bits[0] == 2 and sum(one.adc_units.values()) == 1 < sum(row.adc_units.values())


# ---------------------------------------------------------------- configuration, errors, artifact

def test_set_crossbar_size_via_configure():
    t = ReramTarget.configure(sets={"crossbar_size": "256"})
    assert t.config.crossbar_size == 256
    row = layer(gemm_model(dense((100, 300))), ReramTarget.configure(sets={"crossbar_size": "256", "adc_bits_from": "weights"}))
    assert (row.row_blocks, row.col_blocks, row.crossbars) == (2, 4, 8)
    with pytest.raises(NnccError, match="weight_encoding"):
        ReramTarget.configure(sets={"weight_encoding": "twos"})
    with pytest.raises(NnccError, match="adc_bits_max"):
        ReramTarget.configure(sets={"adc_bits_max": "12"})


def test_every_config_field_names_a_source_and_its_valid_values():
    for f in dataclasses.fields(ReramConfig):
        assert f.metadata.get("source"), f.name
    fields = {f.name: f.metadata for f in dataclasses.fields(ReramConfig)}
    assert (fields["crossbar_size"]["minimum"], fields["read_pulse_s"]["above"]) == (1, 0)
    with pytest.raises(ValueError, match=r"read_pulse_s must be > 0 \(got 0\)"):
        ReramConfig(read_pulse_s=0)
    with pytest.raises(ValueError, match="cell_bits 4 > weight_bits 3"):  # a rule across fields (check())
        ReramConfig(cell_bits=4, weight_bits=3)
    c = ReramConfig(crossbar_size=64, weight_bits=6, weight_encoding="offset")
    assert (c.geometry.size, c.geometry.slices, c.polarities) == (64, 3, 1)




def test_max_tiles_gives_a_one_line_limit_error():
    t = target(max_tiles=1, crossbar_size=16, **FAST)
    with pytest.raises(NnccError) as info:
        t.lower(gemm_model(dense((300, 400))))
    assert "fc" in info.value.where and "max_tiles = 1" in info.value.what and "\n" not in str(info.value)


def test_replication_multiplies_crossbars_and_divides_latency():
    m = conv_model(dense((16, 3, 3, 3)))
    one, four = target(**FAST), target(replicate=4, **FAST)
    r1, r4 = one.estimate(one.lower(m)), four.estimate(four.lower(m))
    assert r4.totals()["crossbars"] == 4 * r1.totals()["crossbars"]
    assert r4.layers[0].latency_s == pytest.approx(r1.layers[0].latency_s / 4)
    assert r4.layers[0].energy_j == pytest.approx(r1.layers[0].energy_j)


def test_group_scissor_counts():
    # ceil(N/X)ceil(M/X) before, ceil(N/X)ceil(K/X) + ceil(K/X)ceil(M/X) after rank-K clipping
    assert group_scissor_counts(800, 500, 10, 128) == {"before": 7 * 4, "after": 7 * 1 + 1 * 4, "ratio": 11 / 28}
    assert group_scissor_counts(128, 128, 128, 128)["after"] == 2
    with pytest.raises(ValueError):
        group_scissor_counts(0, 1, 1, 1)


def test_rank_clipped_layer_ratio_against_unclipped_mapping():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(500, 800))  # N=500 outputs, M=800 inputs
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    k = 10
    before = gemm_model(w)
    nodes = [helper.make_node("Gemm", ["x", "v"], ["h"], name="fc_v", transB=1),
             helper.make_node("Gemm", ["h", "u"], ["y"], name="fc_u", transB=1)]
    after = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 800])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 500])],
                   [numpy_helper.from_array((s[:k, None] * vt[:k]).astype(np.float32), "v"),
                    numpy_helper.from_array(u[:, :k].astype(np.float32), "u")])
    t = target(**FAST)
    rb, ra = t.estimate(t.lower(before)), t.estimate(t.lower(after))
    ratio = crossbar_area_ratio(rb, ra)
    assert ratio["crossbars_logical"] == pytest.approx(group_scissor_counts(800, 500, k, 128)["ratio"])
    assert ratio["crossbar_area"] == pytest.approx(ra.totals()["crossbars"] / rb.totals()["crossbars"])
    assert 0 < ratio["routing_area"] < 1
    assert crossbar_area_ratio(t.lower(before), t.lower(after))["crossbars"] == ratio["crossbars"]


def test_digital_ops_and_the_attention_product_are_costed_on_the_digital_units():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["q"], name="proj"),
             helper.make_node("Transpose", ["q"], ["qt"], name="t", perm=[1, 0]),
             helper.make_node("MatMul", ["q", "qt"], ["s"], name="scores"),
             helper.make_node("Softmax", ["s"], ["y"], name="softmax", axis=-1)]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])],
               [numpy_helper.from_array(dense((8, 8)).astype(np.float32), "w")])
    t = target(**FAST)
    report = t.estimate(t.lower(m))
    assert report.unsupported == []
    rows = {r.name: r for r in report.layers}
    assert rows["softmax"].energy_j > 0 and rows["softmax"].latency_s > 0 and rows["t"].kind == "data"
    assert rows["proj"].mvms == 4
    # q [4, 8] x qt [8, 4]: 128 MACs, each a multiply (digital_mul_ops simple ops) and an add, on 16 lanes
    scores = rows["scores"]
    assert scores.kind == "digital" and scores.macs == 4 * 4 * 8 and "two activations" in scores.note
    assert scores.ops == 128 * (1 + t.config.digital_mul_ops)
    assert [r.name for r in report.layers] == ["proj", "t", "scores", "softmax"]  # graph order kept


def test_report_rows_are_typed_and_totals_sum_their_fields():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"), helper.make_node("Relu", ["h"], ["y"], name="relu")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 200])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 30])], [numpy_helper.from_array(f32((200, 30)), "w")])
    t = target(**FAST)
    report = t.estimate(t.lower(m))
    proj, relu = report.layers
    base = ["name", "op", "macs", "latency_s", "energy_j", "utilization", "kind"]
    assert list(proj.to_json()) == base + [
        "crossbars", "crossbars_logical", "grid", "mvms", "adc_bits", "adcs", "adc_conversions", "dac_drives", "shift_adds",
        "buffer_accesses", "router_flits", "cycle_s", "tiles", "crossbar_area_mm2", "adc_area_mm2", "routing_area_mm2",
        "area_mm2", "energy_breakdown_j"]
    # A digital row's energy parts feed the totals' breakdown but are not one of its columns.
    assert list(relu.to_json()) == base + ["ops", "buffer_accesses", "note", "area_mm2"]
    assert (proj.kind, proj.grid, proj.crossbars, relu.kind, relu.ops) == ("crossbar", "2x2", 4, "digital", 4 * 30)
    totals = report.totals()
    assert totals["crossbars"] == 4 and totals["energy_breakdown_j"]["digital"] == relu.energy_breakdown_j["digital"] > 0
    assert totals["energy_breakdown_j"]["buffer"] == proj.energy_breakdown_j["buffer"] + relu.energy_breakdown_j["buffer"]


def test_gemm_weight_layouts_map_the_same_matrix_and_alpha_scales_it():
    w = dense((6, 10))
    rows = [layer(gemm_model(w, 2, alpha=0.5), target()), layer(gemm_model(w.T, 2, transB=0, alpha=0.5), target())]
    fields = [f.name for f in dataclasses.fields(rows[0]) if f.name != "layer"]
    assert [getattr(rows[0], f) for f in fields] == [getattr(rows[1], f) for f in fields]
    assert (rows[0].rows, rows[0].cols, rows[0].mvms) == (10, 6, 2)
    assert rows[0].quantization["weight_scale"] == 0.5 * layer(gemm_model(w, 2), target()).quantization["weight_scale"]


def test_weighted_ops_without_a_crossbar_form_say_why():
    # (ConvTranspose and the integer ops map: tests/test_quantized_models.py)
    f = TensorProto.FLOAT
    cases = [  # node, (x shape, type), (y shape, type), weight, reason
        (helper.make_node("Einsum", ["x", "w"], ["y"], equation="ij,jk->ik"), ([4, 3], f), ([4, 5], f), f32((3, 5)), "no weight layout"),
        (helper.make_node("MatMul", ["w", "x"], ["y"]), ([4, 3], f), ([5, 3], f), f32((5, 4)), "constant first operand (W*X)"),
    ]
    for node, (xs, xt), (ys, yt), w, why in cases:
        m = _model([node], [helper.make_tensor_value_info("x", xt, xs)], [helper.make_tensor_value_info("y", yt, ys)],
                   [numpy_helper.from_array(w, "w")])
        (row,) = target(**FAST).lower(m).unsupported
        assert row.op == node.op_type and why in row.reason, row


def test_digital_ops_cost_their_class_default_unless_refined():
    nodes = [helper.make_node("Tan", ["x"], ["t"], name="tan"), helper.make_node("Mod", ["t", "x"], ["m"], name="mod", fmod=1),
             helper.make_node("Cast", ["m"], ["y"], name="cast", to=TensorProto.FLOAT16)]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 8])], [])
    t = target(**FAST)
    rows = {r.name: r for r in t.estimate(t.lower(m)).layers}
    assert rows["tan"].ops == 16 * t.config.transcendental_ops  # the transcendental class: one table lookup per element
    assert rows["mod"].ops == 16 * (2 + 2 * t.config.digital_mul_ops)  # refined: a - floor(a / b) * b
    assert rows["cast"].kind == "data" and rows["cast"].ops == 0  # a cast only moves data


def test_artifact_and_contract_on_conv_bn(conv_bn_path, tmp_path):
    result = compile_model(conv_bn_path, ReramTarget(), [], CompileOptions(verify_samples=1))
    out = write_outputs(result, tmp_path / "out", ["json"])
    data = json.loads((out / "crossbar_map.json").read_text())
    conv = next(row for row in data["layers"] if row["name"] == "conv1")
    for key in ("row_blocks", "col_blocks", "slices", "adc_bits", "tiles", "crossbars", "crossbars_logical"):
        assert key in conv
    assert len(conv["adc_bits"]) == 4 and data["slice_order"] == "most significant first"
    assert "random uniform" in data["calibration"]
    names = {r.name for r in result.cost.layers} | {u.name for u in result.cost.unsupported}
    assert names == {n.name for n in result.model.graph}
    assert result.report["totals"]["area_mm2"] > 0


# ---------------------------------------------------------------- zoo models

def _compile_zoo(name, tmp_path, calibration=None):
    path = tmp_path / f"{name}.onnx"
    models.export(name, path)
    options = CompileOptions(verify_samples=0)
    if calibration is not None:
        options.context.calibration = calibration
    return compile_model(path, ReramTarget(), [], options)


def _print_report(name, result):
    totals = result.report["totals"]
    print(f"\n{name} on reram: crossbars {totals['crossbars']} (logical {totals['crossbars_logical']}), "
          f"area {totals['area_mm2']:.4f} mm2 (crossbar {totals['crossbar_area_mm2']:.5f}, routing "
          f"{totals['routing_area_mm2']:.5f}, ADC {totals['adc_area_mm2']:.4f}), energy {totals['energy_j'] * 1e6:.3f} uJ, "
          f"latency {totals['latency_s'] * 1e6:.2f} us; calibration: {totals['calibration']}")
    for row in result.mapping.crossbar_layers:
        print(f"  {row.name:6s} K={row.rows:4d} N={row.cols:4d} grid {row.row_blocks}x{row.col_blocks} crossbars "
              f"{row.crossbars:3d} (logical {row.crossbars_logical}) ADC bits per slice (MSB first) {row.adc_bits} "
              f"max column sums {[int(s) for s in row.max_column_sum]}")


def test_lenet5_report(tmp_path):
    from nncc.models import mnist

    x_tr, *_ = mnist.mnist_split()
    result = _compile_zoo("lenet5", tmp_path, {"input": x_tr[:64]})
    _print_report("lenet5", result)
    totals = result.report["totals"]
    # conv1 25x6 -> 1; conv2 150x16 -> 2x1; fc1 400x120 -> 4x8; fc2 120x84 -> 1x6; fc3 84x10 -> 1x1
    assert totals["crossbars"] == 1 + 2 + 32 + 6 + 1 and totals["crossbars_logical"] == 1 + 2 + 4 + 1 + 1
    assert totals["unsupported_ops"] == 0 and "calibration data" in totals["calibration"]
    assert all(0 < b <= 8 for row in result.mapping.crossbar_layers for b in row.adc_bits)


def test_convnet_and_bert_tiny_compile(tmp_path):
    conv = _compile_zoo("convnet", tmp_path)
    _print_report("convnet", conv)
    assert conv.report["totals"]["crossbars"] == 2 + 14 + 28 + 8 and conv.report["totals"]["crossbars_logical"] == 23
    bert = _compile_zoo("bert_tiny", tmp_path)
    assert bert.report["unsupported"] == [] and bert.report["totals"]["coverage"]["complete"]
    dynamic = [r for r in bert.report["layers"] if r["op"] == "MatMul" and r["kind"] == "digital"]
    assert len(dynamic) == 4  # Q*K^T and P*V of two layers, on the digital units
    assert bert.report["totals"]["crossbars_logical"] == 24


@pytest.mark.slow
@pytest.mark.parametrize("name", [e.name for e in models.list_models() if e.name not in ("lenet5", "convnet", "bert_tiny")])
def test_zoo_model_compiles_for_reram(name, tmp_path):
    result = _compile_zoo(name, tmp_path)
    _print_report(name, result)
    totals = result.report["totals"]
    assert totals["crossbars"] > 0 and totals["energy_j"] > 0 and totals["area_mm2"] > 0
    assert totals["unsupported_ops"] == 0


def test_adder_tree_wire_length():
    from nncc.backends.reram.column_stats import tree_length

    assert [tree_length(r) for r in (1, 2, 3, 4, 8)] == [1, 2, 5, 5, 13]  # 8: 4x1 + 2x2 + 1x4, + 1
    assert all(tree_length(r) <= tree_length(r + 1) for r in range(1, 300))
