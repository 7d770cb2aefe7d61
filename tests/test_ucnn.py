"""The ucnn target: factorized dot-product counts by hand and by brute force, indirection-table
jumps, the baseline's zero gating, both designs in one report, the contract, and the zoo."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nncc import models
from nncc.backends.ucnn import UcnnConfig, UcnnTarget
from nncc.backends.ucnn.weight_stats import filter_stats, quantize_codes, rlc_bits
from nncc.cli import main
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc.passes.share import ShareWeights
from nncc.pipeline import PassContext


def _conv_1x4(tmp_path, weights, width=6):
    """One 1x4 filter sliding over a 1x1x1xwidth input: width - 3 output positions."""
    w = np.asarray(weights, dtype=np.float32).reshape(1, 1, 1, 4)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, width - 3])],
                              [numpy_helper.from_array(w, "w")])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _compile(path, passes=(), **sets):
    return compile_model(path, UcnnTarget.configure(sets=sets), list(passes), CompileOptions(verify_samples=1))


def _reference(codes: np.ndarray, group: int):
    """Brute-force UCNN on a block of G filters: build the prefix tree with dicts, count every
    add and multiply while evaluating it on random activations, and check against the dot product."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=codes.shape[1])
    mults = adds = entries = cycles = 0
    for start in range(0, codes.shape[0], group):
        block = codes[start:start + group]
        g = block.shape[0]
        active = [i for i in range(block.shape[1]) if block[:, i].any()]
        entries += len(active)
        sums: dict[tuple, float] = {}
        for i in active:  # leaf sums: the first activation of a group is loaded, the others added
            key = tuple(block[:, i])
            adds += key in sums
            sums[key] = sums.get(key, 0.0) + a[i]
        levels = [sums]
        for level in range(g - 1, 0, -1):  # merge children into their prefix, up the tree
            parent: dict[tuple, float] = {}
            for key, value in levels[0].items():
                adds += key[:level] in parent
                parent[key[:level]] = parent.get(key[:level], 0.0) + value
            levels.insert(0, parent)
        per_filter = []
        for f in range(g):
            products = [key[f] * value for key, value in levels[f].items() if key[f] != 0]
            mults += len(products)
            adds += max(len(products) - 1, 0)
            assert math.isclose(sum(products), float(block[f] @ a), rel_tol=1e-9, abs_tol=1e-9)
            per_filter.append(len(products))
        cycles += max(len(active), max(per_filter, default=0))
    return mults, adds, entries, cycles


# --- hand computations ------------------------------------------------------------------

def test_a_1x4_filter_by_hand():
    # [2, 2, 0, -1]: groups {2: a0, a1}, {-1: a3}; 2*(a0 + a1) + (-1)*a3
    s = filter_stats(np.array([[2, 2, 0, -1]]))
    assert (s.unique, s.zeros, s.entries, s.mults, s.act_adds, s.psum_adds, s.adds) == (2, 1, 3, 2, 1, 1, 2)
    assert s.cycles() == 3  # one indirection entry per cycle, the zero weight skipped
    # jumps per group, positions ascending: {2: 0, 1} -> 1, 1; {-1: 3} -> 4. Widths 1..3 bits
    # (ceil(log2(K+1)) = 3); 1 bit pads the 4-jump with 3 entries, 2 bits with 1, 3 bits with none.
    assert s.padding == {1: 3, 2: 1, 3: 0}
    # table bits = (entries + padding) * (jump + 1 transition bit) + U * 16: 12 + 32 at every width
    assert [s.table_bits(j) for j in (1, 2, 3)] == [44, 44, 44]
    assert s.jump_bits == 3  # the tie goes to the width without padding
    assert filter_stats(np.array([[2, 2, 0, -1]]), index_bits=2).padding == {2: 1}  # --set index_bits=2 fixes it
    # dense filter: 4 multiplies; all-distinct weights: no gain over one multiply per non-zero
    dense = filter_stats(np.array([[1, 2, 3, 4]]))
    assert (dense.mults, dense.adds, dense.entries) == (4, 3, 4)


def test_activation_group_reuse_g2_by_hand():
    # f1 = [1, 1, 2, 0], f2 = [3, 0, 3, 3]: tuples (1,3) (1,0) (2,3) (0,3), all inputs active.
    # f1 multiplies per prefix {1, 2} (2); f2 per tuple with w2 != 0 {(1,3), (2,3), (0,3)} (3).
    # Adds: S(1) = S(1,3) + S(1,0) (1), f1: 1*S(1) + 2*S(2) (1), f2: three products (2) -> 4.
    codes = np.array([[1, 1, 2, 0], [3, 0, 3, 3]])
    s = filter_stats(codes, group=2)
    assert (s.entries, s.mults, s.adds, s.cycles()) == (4, 5, 4, 4)
    assert (s.mults, s.adds, s.entries, s.base_cycles) == _reference(codes, 2)
    g1 = filter_stats(codes, group=1)
    assert (g1.mults, g1.entries) == (2 + 1, 3 + 3)  # f2 alone: one multiply by 3


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.integers(1, 3), st.integers(1, 4), st.integers(0, 10_000))
def test_counts_match_a_brute_force_evaluation(filters, k, values, group, seed):
    codes = np.random.default_rng(seed).integers(-values, values + 1, size=(filters, k))
    s = filter_stats(codes, group=group)
    assert (s.mults, s.adds, s.entries, s.base_cycles) == _reference(codes, group)
    # every multiply takes one group of activations, and every non-zero weight puts its
    # activation in exactly one group of its filter
    assert sum(s.group_sizes.values()) == s.mults
    assert sum(n * count for n, count in s.group_sizes.items()) == s.nnz
    assert s.mults_performed(1.0) == pytest.approx(s.mults)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(2, 16), st.integers(0, 10_000))
def test_fewer_unique_values_never_more_work(filters, k, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(-4, 5, size=(filters, k))
    merged = np.where(codes == 3, 2, codes)  # merge one value into another
    zeroed = np.where(codes == 1, 0, codes)  # or prune it
    s = filter_stats(codes)
    for other in (merged, zeroed):
        o = filter_stats(other)
        assert o.mults <= s.mults and o.adds <= s.adds and o.table_bits() <= s.table_bits()
        assert all(o.cycles(j) <= s.cycles(j) for j in s.padding)  # at the same jump width


def test_jump_padding_and_rlc():
    # one group holding positions 0 and 9 of K = 10: jumps 1 and 9
    s = filter_stats(np.array([[5] + [0] * 8 + [5]]))
    assert s.padding == {1: 8, 2: 2, 3: 1, 4: 0}  # ceil(9 / (2^j - 1)) - 1
    # run-length coding: 2 values; a run of 8 zeros fits 5-bit runs, of 40 zeros does not
    assert rlc_bits(np.array([5] + [0] * 8 + [5]), 16, 5) == 2 * 21
    assert rlc_bits(np.array([5] + [0] * 40 + [5]), 16, 5) == 3 * 21


def _rlc_pairs_walked(stream: list[int], run_bits: int) -> int:
    """The (run, value) pairs of ``stream``, written out one element at a time: a full run field
    (2^run_bits - 1 zeros) plus one more zero is a pair of its own (that zero as its value);
    zeros after the last value are never written."""
    pairs, run = 0, 0
    for v in stream:
        if v == 0:
            run += 1
        else:
            pairs, run = pairs + 1 + run // 2 ** run_bits, 0
    return pairs


@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 0.7, 0.97, 1.0])
def test_rlc_counts_the_pairs_of_the_stream_walked_out(density):
    """rlc_bits counts from the values of a sparse stream and from the zero runs of a dense one:
    both give the pairs a walk over the stream writes, trailing zeros included."""
    rng = np.random.default_rng(int(density * 100))
    for _ in range(200):
        n = int(rng.integers(0, 80))
        stream = np.where(rng.random(n) < density, rng.integers(1, 4, n), 0)
        for run_bits in (1, 2, 3):
            assert rlc_bits(stream, 8, run_bits) == _rlc_pairs_walked(stream.tolist(), run_bits) * (8 + run_bits)


def test_quantization_counts_distinct_values_without_changing_weights():
    w = np.linspace(-1, 1, 1001)
    assert len(np.unique(quantize_codes(w, 8))) == 255
    assert len(np.unique(quantize_codes(w, 16))) == 1001
    assert quantize_codes(np.zeros(4), 8).tolist() == [0, 0, 0, 0]
    shared = np.repeat([-0.3, 0.0, 0.2, 0.7], 5)
    assert len(np.unique(quantize_codes(shared, 8))) == 4  # rounding never splits a value


# --- cost model --------------------------------------------------------------------------

def test_the_1x4_conv_cost_by_hand(tmp_path):
    path = _conv_1x4(tmp_path, [2, 2, 0, -1])
    result = _compile(path, activation_density=1.0)
    row = result.cost.layers[0]
    c = result.target.config
    assert (row.positions, row.zeros, row.mults_per_position) == (3, 1, 2)
    u, b = row.ucnn, row.baseline
    # UCNN: 3 positions x 2 multiplies; baseline: 3 positions x 3 non-zero weights (zero gated)
    assert (u.mults, u.adds, b.mults) == (6, 6, 9)
    e_mult, e_add = c.e_mult16_pj, c.e_add16_pj
    assert math.isclose(u.arithmetic_j, (6 * e_mult + 6 * e_add) * 1e-12)
    assert math.isclose(b.arithmetic_j, 9 * (e_mult + e_add) * 1e-12)
    # cycles: baseline 3 x 4 MAC slots (gating saves none), UCNN 3 x 3 entries, over 168 PEs
    assert (b.cycles, u.cycles) == (1, 1)
    # RF: baseline 12 activation reads + 9 x (weight + psum read + write) of 16 bits
    mac = c.e_mac16_pj
    assert math.isclose(b.rf_j, (12 + 9 * 3) * mac * 1e-12)
    # UCNN: 3 x (3 entries x (jump 3 + 1) bits + 3 activations + 2 x (weight + 2 psum)) bits / 16
    assert u.jump_bits == 3 and u.pad_entries == 0
    assert math.isclose(u.rf_j, 3 * (3 * 4 + 3 * 16 + 2 * 48) / 16 * mac * 1e-12)
    # DRAM: weights (UCNN 44-bit table, baseline min(64 dense, 3 x 21 RLC) = 63) + 6 in + 3 out words
    assert math.isclose(u.dram_j, (44 + 9 * 16) / 16 * 200 * mac * 1e-12)
    assert math.isclose(b.dram_j, (63 + 9 * 16) / 16 * 200 * mac * 1e-12)
    # The report row: the UCNN-only counts appear in the UCNN breakdown alone.
    report_row = result.report["layers"][0]
    assert report_row["ucnn"]["jump_bits"] == 3 and "jump_bits" not in report_row["baseline"]
    assert report_row["baseline"]["rf_reads"] == 12 + 9 * 3 and report_row["positions"] == 3


def test_ucnn_gates_multiplies_on_all_zero_sums(tmp_path):
    # [2, 2, 0, -1]: the multiply by 2 sums two activations, the one by -1 a single one. At
    # density 0.5 they are skipped with probability 0.25 and 0.5: 1.25 multiplies per position.
    s = filter_stats(np.array([[2, 2, 0, -1]]))
    assert s.group_sizes == {1: 1, 2: 1} and s.mults_performed(0.5) == pytest.approx(1.25)
    path = _conv_1x4(tmp_path, [2, 2, 0, -1])
    gated = _compile(path, activation_density=0.5).cost.layers[0].ucnn
    plain = _compile(path, activation_density=0.5, gate_zero_sums=False).cost.layers[0].ucnn
    assert (gated.mults, plain.mults) == (pytest.approx(3 * 1.25), 6)
    # adds: 3 x (1 activation add x 0.5 + 1 product add x 1.25 / 2)
    assert gated.adds == pytest.approx(3 * (0.5 + 1.25 / 2)) and plain.adds == pytest.approx(3 * (0.5 + 1))
    assert gated.cycles == plain.cycles and gated.energy_j < plain.energy_j  # energy saved, never cycles
    c = UcnnConfig()
    mac = c.e_mac16_pj
    assert plain.rf_j - gated.rf_j == pytest.approx(3 * (2 - 1.25) * 48 / 16 * mac * 1e-12)
    # G = 2: f1 multiplies on S(1) (2 activations) and S(2); f2 on three single activations
    assert filter_stats(np.array([[1, 1, 2, 0], [3, 0, 3, 3]]), group=2).group_sizes == {1: 4, 2: 1}


def test_activations_cross_dram_run_length_coded(tmp_path):
    # density 0.5: half the elements as (5-bit run, 16-bit value) pairs, plus a pair per 32 zeros
    share = (0.5 + 0.5 ** 32) * 21 / 16
    path = _conv_1x4(tmp_path, [2, 2, 0, -1])
    coded = _compile(path, activation_density=0.5).cost.layers[0]
    dense = _compile(path, activation_density=0.5, compress_activations=False).cost.layers[0]
    mac = UcnnConfig().e_mac16_pj
    for design in ("ucnn", "baseline"):  # 6 inputs + 3 outputs, the same in both designs
        saved = getattr(dense, design).dram_j - getattr(coded, design).dram_j
        assert saved == pytest.approx(9 * 16 * (1 - share) / 16 * 200 * mac * 1e-12)
    # never more than dense: at density 1 the pairs cost 21 bits an element, so dense is kept
    full = _compile(path, activation_density=1.0).cost.layers[0].baseline
    assert full.dram_j == pytest.approx(_compile(path, activation_density=1.0, compress_activations=False)
                                        .cost.layers[0].baseline.dram_j)


def test_baseline_gating_saves_energy_never_cycles(tmp_path):
    dense = _compile(_conv_1x4(tmp_path, [2, 3, 4, 5], width=400), activation_density=1.0).cost.layers[0].baseline
    tmp2 = tmp_path / "b"
    tmp2.mkdir()
    sparse = _compile(_conv_1x4(tmp2, [2, 0, 0, 5], width=400), activation_density=0.5).cost.layers[0].baseline
    assert sparse.cycles == dense.cycles == math.ceil(397 * 4 / 168)
    assert sparse.arithmetic_j == pytest.approx(dense.arithmetic_j / 4)
    assert sparse.energy_j < dense.energy_j


def test_activation_density_is_measured_on_calibration_data(tmp_path):
    path = _conv_1x4(tmp_path, [2, 2, 0, -1], width=8)
    x = np.tile(np.array([1, 0, 2, 0, 3, 0, 0, 4], dtype=np.float32), (4, 1, 1, 1, 1))  # 4 runs, 50% zeros
    options = CompileOptions(verify_samples=1, context=PassContext(calibration={"x": x}))
    result = compile_model(path, UcnnTarget(), [], options)
    row = result.cost.layers[0]
    assert row.activation_density == 0.5
    assert result.report["totals"]["activation_density_source"].startswith("measured on calibration data: 4 model runs")
    assert _compile(path).cost.layers[0].activation_density == UcnnConfig().activation_density


def test_both_designs_in_the_report_and_design_picks_the_headline(tmp_path, conv_bn_path):
    path = _conv_1x4(tmp_path, [2, 2, 0, -1])
    ucnn = _compile(path)
    base = _compile(path, design="baseline")
    for result in (ucnn, base):
        t = result.report["totals"]
        assert t["energy_ratio"] == pytest.approx(t["baseline"]["energy_j"] / t["ucnn"]["energy_j"])
        assert t["cycles_ratio"] == pytest.approx(t["baseline"]["cycles"] / t["ucnn"]["cycles"])
        assert t["throughput_normalized_energy_ratio"] == pytest.approx(t["energy_ratio"] * t["cycles_ratio"])
        assert t["pe_area_overhead"] == "17-24%"
    assert ucnn.report["totals"]["energy_j"] == pytest.approx(ucnn.report["totals"]["ucnn"]["energy_j"])
    assert base.report["totals"]["energy_j"] == pytest.approx(base.report["totals"]["baseline"]["energy_j"])


def test_weight_share_lowers_multiplies_and_weight_bytes(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])], [numpy_helper.from_array(w, "w")])
    path = tmp_path / "c.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    plain = _compile(path).cost.layers[0]
    shared = _compile(path, [ShareWeights(unique=3)]).cost.layers[0]
    assert plain.unique_nonzero_max == 27 and shared.unique_nonzero_max == 3
    assert shared.mults_per_position == 8 * 3 < plain.mults_per_position == 8 * 27
    assert shared.ucnn.weight_dram_bytes < plain.ucnn.weight_dram_bytes
    assert shared.energy_ratio > plain.energy_ratio


def test_activation_times_activation_runs_dense_and_other_dot_products_are_unsupported(tmp_path):
    # Y = A @ B with both operands activations (attention scores): no weight tables to build.
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"], name="scores"),
             helper.make_node("Einsum", ["m", "w"], ["y"], name="up", equation="abij,jk->abik")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 1, 4, 8]),
                                           helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 1, 8, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 5])],
                              [numpy_helper.from_array(np.ones((4, 5), np.float32), "w")])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    result = _compile(path)
    (row,) = result.cost.layers
    assert row.kind == "dense" and row.macs == 4 * 4 * 8
    assert row.ucnn.energy_j == row.baseline.energy_j > 0
    assert [(u.name, u.op) for u in result.cost.unsupported] == [("up", "Einsum")]
    assert "Conv/ConvTranspose/Gemm/MatMul" in result.cost.unsupported[0].reason


def test_a_leading_weight_is_factorized_over_the_other_operand(tmp_path):
    # Y = W @ X with W constant [2, 4]: two filters of 4 weights, each over the 3 columns of X.
    w = numpy_helper.from_array(np.array([[1, 1, 0, 2], [3, 0, 0, 3]], np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["w", "x"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    path = tmp_path / "wx.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    x = np.tile(np.array([[1, 0, 2], [0, 3, 0], [4, 0, 0], [0, 5, 6]], np.float32), (2, 1, 1))  # 6 of 12 non-zero
    options = CompileOptions(verify_samples=1, context=PassContext(calibration={"x": x}))
    (row,) = compile_model(path, UcnnTarget(), [], options).cost.layers
    assert (row.kind, row.filters, row.k, row.positions, row.zeros, row.unique_nonzero_max) == ("factorized", 2, 4, 3, 3, 2)
    assert row.activation_density == 0.5  # measured on X, the operand the filters slide over


def test_config_sources_overrides_and_errors(tmp_path):
    config = UcnnConfig()
    for field in dataclasses.fields(config):
        assert field.metadata["source"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pes = 1
    assert UcnnTarget.configure(sets={"weight_bits": "8", "group": "2"}).config.group == 2
    for key, value in [("design", "eyeriss"), ("weight_bits", "1"), ("activation_density", "0"), ("group", "9")]:
        with pytest.raises(NnccError):
            UcnnTarget.configure(sets={key: value})


def test_cli_writes_the_table_artifact_and_one_line_errors(tmp_path, conv_bn_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(conv_bn_path), "-t", "ucnn", "-o", str(out), "--set", "weight_bits=8"]) == 0
    tables = json.loads((out / "ucnn_tables.json").read_text())
    assert tables["weight_bits"] == 8 and {row["name"] for row in tables["layers"]} >= {"conv1", "fc1"}
    report = json.loads((out / "report.json").read_text())
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["conv1"]["kind"] == "factorized" and rows["relu1"]["kind"] == "vector"
    assert main(["compile", str(conv_bn_path), "-t", "ucnn", "-o", str(out), "--set", "design=nope"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_group_two_shares_entries_on_lenet():
    model_path = models.export("lenet5", __import__("tempfile").mkdtemp() + "/lenet5.onnx")
    g1 = _compile(model_path).report["totals"]
    g2 = _compile(model_path, group=2).report["totals"]
    assert g2["ucnn"]["cycles"] < g1["ucnn"]["cycles"]  # one entry serves two filters


# --- the zoo ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", [e.name for e in models.list_models()])
def test_every_zoo_model_compiles(name, tmp_path):
    path = models.export(name, tmp_path / f"{name}.onnx")
    result = compile_model(path, UcnnTarget(), [], CompileOptions(verify_samples=0))
    t = result.report["totals"]
    costed = {row.name for row in result.cost.layers} | {u.name for u in result.cost.unsupported}
    assert len(costed) == result.model.graph.num_nodes()
    assert t["energy_j"] > 0 and t["ucnn"]["cycles"] > 0 and t["baseline"]["cycles"] > 0
    assert t["macs"] > 0


@pytest.mark.slow
def test_weight_share_u3_on_lenet_lands_in_the_paper_range(tmp_path):
    path = models.export("lenet5", tmp_path / "lenet5.onnx")
    t = _compile(path, [ShareWeights(unique=3)]).report["totals"]
    assert 1.2 <= t["throughput_normalized_energy_ratio"] <= 4.0  # Hegde et al. ISCA 2018 [V abstract]
