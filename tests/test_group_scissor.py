"""Group Scissor passes: rank-clip (ClipRanks) and delete-groups (DeleteGroups).

Tolerances: rank-clip changes numbers by design; per sample, the output change of y = W x is
at most ||W - W_K||_2 ||x||_2 <= ||W - W_K||_F ||x||_2 (the recorded Frobenius error), and for
a conv every output pixel sees one patch of the input, so ||x||_F bounds the patch norm; 1e-4
relative slack covers float32 rounding of the two factors. delete-groups is exact against the
same model with those weights zeroed (same kernels on the same values: 1e-6 absolute), and its
change is bounded by the deleted Frobenius norm in the same way.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from nncc import runtime
from nncc.backends.reram.cost import crossbar_area_ratio
from nncc.crossbar import cheapest_rank, dense_crossbars, factored_crossbars, group_scissor_counts, segment_norms
from nncc.backends.reram.column_stats import tree_length
from nncc.backends.reram.target import ReramTarget
from nncc.errors import NnccError
from nncc.passes.delete_groups import DeleteGroups
from nncc.passes.lowrank import MARK
from nncc.passes.rank_clip import ClipRanks
from nncc.pipeline import PassContext

SLACK = 1e-4


@pytest.fixture(autouse=True)
def reram_crossbars():
    """The passes plan for the compile target's crossbars: here, the reram defaults."""
    with PassContext(target="reram", crossbar=ReramTarget().crossbar_geometry()) as context:
        yield context


@pytest.mark.parametrize("pass_", [ClipRanks(), DeleteGroups()])
def test_passes_refuse_a_target_without_crossbars(pass_):
    model = _model([helper.make_node("Gemm", ["x", "w"], ["y"])], [1, 300], [1, 300],
                   {"w": np.ones((300, 300))})
    with PassContext(target="mobile-cpu"), pytest.raises(NnccError, match="target 'mobile-cpu' has none"):
        pass_(model)
    with PassContext(), pytest.raises(NnccError, match="no compile target gave a crossbar geometry"):
        pass_(model)


def _model(nodes, x_shape, y_shape, inits) -> ir.Model:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(proto)
    return ir.from_proto(onnx.shape_inference.infer_shapes(proto, strict_mode=True))


def gemm(w_kn: np.ndarray, trans_b: int = 1, batch: int = 4) -> ir.Model:
    """y = x W + c with W [fan-in K, outputs N] (stored transposed when trans_b)."""
    k, n = w_kn.shape
    rng = np.random.default_rng(1)
    inits = {"w": w_kn.T if trans_b else w_kn, "c": rng.normal(size=n)}
    return _model([helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="fc", transB=trans_b)], [batch, k], [batch, n], inits)


def conv(w: np.ndarray, hw: int = 8) -> ir.Model:
    n, c, kh, kw = w.shape
    inits = {"w": w, "b": np.random.default_rng(2).normal(size=n)}
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])
    return _model([node], [1, c, hw, hw], [1, n, hw, hw], inits)


def low_rank(k: int, n: int, rank: int, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(k, rank)) @ rng.normal(size=(rank, n)) / np.sqrt(rank) + noise * rng.normal(size=(k, n))


def _copy(model: ir.Model) -> ir.Model:
    return ir.from_proto(ir.to_proto(model))


def _run(model: ir.Model, x: np.ndarray) -> np.ndarray:
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    return runtime.session(model).run(None, {"x": x})[0].astype(np.float64)


# ---------------------------------------------------------------- rank-clip: counts by hand


def test_hand_counts_match_calibration_formula():
    # 256 x 256 at rank 64 on 128 x 128: 2*1 + 1*2 = 4 = 2*2, no saving.
    assert dense_crossbars(256, 256, 128) == 4 and factored_crossbars(256, 256, 64, 128) == 4
    # 512 x 512 at rank 64: 4*1 + 1*4 = 8 < 16.
    assert dense_crossbars(512, 512, 128) == 16 and factored_crossbars(512, 512, 64, 128) == 8
    # Physical: 8 columns per weight (four 2-bit slices x two polarities).
    assert dense_crossbars(400, 120, 128, 8) == 4 * 8
    assert factored_crossbars(400, 120, 32, 128, 8) == 4 * 2 + 1 * 8
    for n, m, k, x in [(256, 256, 64, 128), (512, 512, 64, 128), (800, 500, 37, 64)]:
        ref = group_scissor_counts(n, m, k, x)
        assert (dense_crossbars(n, m, x), factored_crossbars(n, m, k, x)) == (ref["before"], ref["after"])


def test_choose_rank_takes_largest_rank_of_the_cheapest_step():
    s = np.linspace(10, 0.1, 512)
    rank, error = cheapest_rank(s, 512, 512, 128, 1, tolerance=0.9)
    r_min = next(r for r in range(1, 513) if np.sqrt(np.sum(s[r:] ** 2) / np.sum(s ** 2)) <= 0.9)
    assert r_min <= 128 and rank == 128  # every rank up to 128 costs 4 + 4 crossbars
    assert error == pytest.approx(np.sqrt(np.sum(s[128:] ** 2) / np.sum(s ** 2)))


@pytest.mark.parametrize("seed", range(5))
def test_larger_tolerance_never_needs_more_crossbars(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(50, 700)), int(rng.integers(50, 700))
    s = np.sort(rng.exponential(size=min(n, m)))[::-1]
    for x, cf in [(128, 1), (128, 8), (64, 8), (32, 2)]:
        costs = [factored_crossbars(n, m, cheapest_rank(s, n, m, x, cf, t)[0], x, cf) for t in np.linspace(0, 1, 21)]
        assert all(a >= b for a, b in zip(costs, costs[1:])), (x, cf, costs)
        errors = [cheapest_rank(s, n, m, x, cf, t)[1] for t in np.linspace(0, 1, 21)]
        assert all(e <= t + 1e-12 for e, t in zip(errors, np.linspace(0, 1, 21)))


# ---------------------------------------------------------------- rank-clip: rewrite and numbers


def test_rank_clip_512_gemm_is_clipped_within_its_error_bound():
    w = low_rank(512, 512, 64)
    model = gemm(w)
    original = _copy(model)
    pass_ = ClipRanks(tolerance=0.05, crossbar=128, count="logical")
    assert pass_(model).modified
    layer = pass_.stats["layers"][0]
    assert (layer["N"], layer["M"], layer["full_rank"]) == (512, 512, 512)
    assert layer["rank"] == 128  # the whole 4 + 4 crossbar step, not just rank ~64
    assert (layer["crossbars_logical_before"], layer["crossbars_logical_after"]) == (16, 8)
    assert layer["relative_frobenius_error"] <= 0.05
    assert [n.op_type for n in model.graph] == ["Gemm", "Gemm"]
    assert all(n.metadata_props.get(MARK) == "1" for n in model.graph)
    x = np.random.default_rng(3).normal(size=(4, 512)).astype(np.float32)
    diff = np.linalg.norm(_run(original, x) - _run(model, x), axis=1)
    bound = layer["frobenius_error"] * np.linalg.norm(x.astype(np.float64), axis=1)
    assert np.all(diff <= bound * (1 + SLACK) + SLACK)
    assert not ClipRanks(tolerance=0.05, crossbar=128, count="logical")(model).modified  # idempotent


def test_rank_clip_skips_a_layer_without_crossbar_saving():
    model = gemm(low_rank(256, 256, 8))
    pass_ = ClipRanks(tolerance=0.5, crossbar=128, count="logical")
    assert not pass_(model).modified
    kept = pass_.stats["skipped"][0]
    assert (kept["crossbars_logical_before"], kept["crossbars_logical_after"]) == (4, 4)


def test_rank_clip_tolerance_zero_changes_nothing():
    model = gemm(low_rank(512, 512, 64))
    x = np.random.default_rng(4).normal(size=(4, 512)).astype(np.float32)
    before = _run(model, x)
    assert not ClipRanks(tolerance=0.0)(model).modified
    np.testing.assert_array_equal(_run(model, x), before)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_rank_clip_physical_count_on_gemm_layouts(trans_b):
    model = gemm(low_rank(400, 120, 16, noise=0.001), trans_b=trans_b)
    original = _copy(model)
    pass_ = ClipRanks(tolerance=0.05)
    assert pass_(model).modified
    layer = pass_.stats["layers"][0]
    # 8 physical columns per weight: ranks 1..16 all cost 4*1 + 1*8 = 12 < 32.
    assert (layer["rank"], layer["crossbars_before"], layer["crossbars_after"]) == (16, 32, 12)
    x = np.random.default_rng(5).normal(size=(4, 400)).astype(np.float32)
    diff = np.linalg.norm(_run(original, x) - _run(model, x), axis=1)
    assert np.all(diff <= layer["frobenius_error"] * np.linalg.norm(x, axis=1) * (1 + SLACK) + SLACK)


def test_rank_clip_conv_within_bound_and_mapped_counts():
    rng = np.random.default_rng(6)
    w = (rng.normal(size=(64, 8)) @ rng.normal(size=(8, 64 * 9)) / 8).reshape(64, 64, 3, 3)
    model = conv(w)
    original = _copy(model)
    pass_ = ClipRanks(tolerance=0.2, crossbar=128)
    assert pass_(model).modified
    layer = pass_.stats["layers"][0]
    assert (layer["N"], layer["M"], layer["rank"]) == (576, 64, 16)
    assert (layer["crossbars_before"], layer["crossbars_after"]) == (5 * 4, 5 * 1 + 1 * 4)
    assert [n.op_type for n in model.graph] == ["Conv", "Conv"]
    x = rng.normal(size=(1, 64, 8, 8)).astype(np.float32)
    diff = np.max(np.abs(_run(original, x) - _run(model, x)))
    assert diff <= layer["frobenius_error"] * np.linalg.norm(x) * (1 + SLACK) + SLACK
    # The reram mapping places what the pass counted (dense weights: every block non-zero).
    target = ReramTarget.configure(sets={"adc_bits_from": "weights"})
    ratio = crossbar_area_ratio(target.lower(original), target.lower(model))
    assert ratio["crossbars"] == pytest.approx(9 / 20)


def test_rank_clip_rejects_bad_parameters():
    with pytest.raises(NnccError):
        ClipRanks(tolerance=1.5)
    with pytest.raises(NnccError):
        ClipRanks(crossbar=0)


# ---------------------------------------------------------------- delete-groups


def _zeroed_reference(w_kn: np.ndarray, x: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    norms = segment_norms(w_kn, x)
    flat = norms.ravel()
    drop = np.zeros(flat.size, dtype=bool)
    drop[np.argsort(flat, kind="stable")[: int(np.floor(ratio * flat.size))]] = True
    drop = drop.reshape(norms.shape)
    return np.where(np.repeat(drop, x, axis=0)[: w_kn.shape[0]], 0, w_kn), drop


@pytest.mark.parametrize("trans_b", [0, 1])
def test_delete_groups_is_exact_and_bounded(trans_b):
    w = np.random.default_rng(7).normal(size=(300, 20))
    model = gemm(w, trans_b=trans_b)
    original = _copy(model)
    pass_ = DeleteGroups(ratio=0.5, crossbar=128)
    assert pass_(model).modified
    layer = pass_.stats["layers"][0]
    assert (layer["row_blocks"], layer["groups_total"], layer["groups_deleted"]) == (3, 60, 30)
    zeroed, drop = _zeroed_reference(w, 128, 0.5)
    reference = gemm(zeroed, trans_b=trans_b)
    x = np.random.default_rng(8).normal(size=(4, 300)).astype(np.float32)
    got = _run(model, x)
    assert np.max(np.abs(got - _run(reference, x))) <= 1e-6
    assert layer["deleted_frobenius"] == pytest.approx(np.linalg.norm(w - zeroed))
    diff = np.linalg.norm(_run(original, x) - got, axis=1)
    assert np.all(diff <= layer["deleted_frobenius"] * np.linalg.norm(x, axis=1) * (1 + SLACK) + SLACK)
    second = DeleteGroups(ratio=0.5, crossbar=128)
    assert not second(model).modified  # idempotent: the zero groups already make up half


def test_delete_groups_threshold_is_idempotent_and_keeps_the_largest():
    w = np.random.default_rng(9).normal(size=(256, 16)) * np.linspace(0.1, 1, 16)
    model = gemm(w)
    pass_ = DeleteGroups(threshold=0.5, crossbar=128)
    assert pass_(model).modified
    norms = segment_norms(w, 128)
    assert pass_.stats["layers"][0]["groups_deleted"] == int(np.sum(norms < 0.5 * norms.max()))
    assert not DeleteGroups(threshold=0.5, crossbar=128)(model).modified


def test_delete_groups_empties_a_crossbar_and_the_mapping_places_fewer():
    # Fan-in 256 = two row blocks; 16 outputs x 8 physical columns = one column block: 2 crossbars.
    rng = np.random.default_rng(10)
    w = rng.normal(size=(256, 16))
    w[128:] *= 0.1  # the second row block holds the 16 smallest groups (still non-zero at 8 bits)
    model = gemm(w)
    original = _copy(model)
    pass_ = DeleteGroups(ratio=0.5, crossbar=128)
    assert pass_(model).modified
    layer = pass_.stats["layers"][0]
    assert (layer["crossbars_before"], layer["crossbars_after"], layer["blocks_emptied"]) == (2, 1, 1)
    target = ReramTarget.configure(sets={"adc_bits_from": "weights"})
    ratio = crossbar_area_ratio(target.lower(original), target.lower(model))
    assert ratio["crossbars"] == pytest.approx(0.5)
    assert ratio["routing_area"] < 1


def test_deleted_groups_remove_their_wires_without_emptying_a_crossbar():
    # Fan-in 256 (two row blocks), 16 outputs x 8 physical columns: every column has a stack
    # of 2 partial sums. Deleting output 0's group in row block 0 leaves both crossbars placed
    # but its 8 physical columns then route one partial sum each, not two.
    w = np.random.default_rng(11).normal(size=(256, 16))
    target = ReramTarget.configure(sets={"adc_bits_from": "weights"})
    before = target.lower(gemm(w)).crossbar_layers[0]
    w[:128, 0] = 0.0
    after = target.lower(gemm(w)).crossbar_layers[0]
    cols = target.config.slices * target.config.polarities
    assert before.crossbars == after.crossbars == 2
    assert before.wires == 16 * cols * 2 and after.wires == before.wires - cols
    assert after.wire_lengths == pytest.approx(before.wire_lengths - cols * (tree_length(2) - tree_length(1)))


def test_delete_groups_leaves_single_row_block_layers_alone():
    model = gemm(np.random.default_rng(11).normal(size=(100, 10)))
    pass_ = DeleteGroups(ratio=0.9, crossbar=128)
    assert not pass_(model).modified
    assert "row block" in pass_.stats["skipped"][0]["reason"]
    assert DeleteGroups(ratio=0.5, crossbar=128, min_row_blocks=1)(model).modified


# ---------------------------------------------------------------- LeNet-5 / MNIST, one point


def test_lenet5_rank_clip_lowers_crossbar_area_and_keeps_accuracy(tmp_path):
    from nncc import models
    from nncc.driver import CompileOptions, compile_model
    from nncc.models import mnist

    path = models.export("lenet5", tmp_path / "lenet5.onnx")
    _, _, x, y = mnist.mnist_split()
    x, y = x[:1000], y[:1000]
    target = ReramTarget.configure(sets={"adc_bits_from": "weights"})
    options = CompileOptions(verify_samples=0)
    base = compile_model(path, target, [], options)
    clipped = compile_model(path, target, [ClipRanks(tolerance=0.4)], options)
    ratio = crossbar_area_ratio(base.cost, clipped.cost)
    acc0 = runtime.top1_accuracy(runtime.session(base.model), x, y)
    acc = runtime.top1_accuracy(runtime.session(clipped.model), x, y)
    # Measured: 0.619 of the crossbar area, 0.981 -> 0.980 top-1 on these 1000 digits.
    assert ratio["crossbar_area"] < 0.7
    assert acc >= acc0 - 0.02
