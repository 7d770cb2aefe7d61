"""weight-share: at most U values per filter/layer, zeros kept, and numbers against onnxruntime.

Tolerance: for one linear layer y = W x, |dy_i| = |sum_j dW_ij x_j| <= max|W - W'| * sum_j |x_j|
(per sample), plus float32 rounding of both runs, FP_SLACK * sum_j |W_ij| |x_j|.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import conv_bn_model
from nncc import models, runtime
from nncc.loading import load_model
from nncc.weights import WeightLayout
from nncc.passes.share import ShareWeights, share_values, unique_counts
from test_prune import FP_SLACK, SHAPES, gemm_model, layer_model, run, weight


def _conv_bn_with_zeros() -> ir.Model:
    model = ir.from_proto(conv_bn_model())
    for name in ("w", "fc"):
        value = model.graph.initializers[name]
        array = value.const_value.numpy().copy()
        array.reshape(-1)[::5] = 0  # every filter gets zeros
        value.const_value = ir.tensor(array)
    return model


@pytest.mark.parametrize("per", ["filter", "layer"])
@pytest.mark.parametrize("unique", [1, 2, 3, 17])
def test_share_structure(per, unique):
    model = _conv_bn_with_zeros()
    before = {n: weight(model, n) for n in ("w", "fc", "b", "fcb")}
    p = ShareWeights(unique=unique, per=per)
    assert p(model).modified
    for name, layout in (("w", "out_first"), ("fc", "out_first")):
        after = weight(model, name)
        assert after.shape == before[name].shape and after.dtype == before[name].dtype
        groups = WeightLayout(layout, 1).filter_view(after) if per == "filter" else after.reshape(1, -1)
        assert unique_counts(groups).max() <= unique
        zero = before[name] == 0
        assert np.all(after[zero] == 0)  # zero stays zero ...
        if unique > 1:  # ... and each group has zero among its U values, plus non-zero ones
            assert all(0 in row and np.count_nonzero(row) > 0 for row in groups)
    assert np.array_equal(weight(model, "b"), before["b"]) and np.array_equal(weight(model, "fcb"), before["fcb"])
    (stats,) = [r for r in p.stats["layers"] if r["name"] == "conv1"]
    assert stats["unique_max"] <= unique and stats["groups"] == (8 if per == "filter" else 1)
    assert stats["index_bits"] == max(1, int(np.ceil(np.log2(max(stats["unique_max"], 2)))))
    assert stats["compression"] == 32 / stats["index_bits"]
    assert stats["max_abs_error"] == pytest.approx(float(np.abs(weight(model, "w") - before["w"]).max()))
    assert not ShareWeights(unique=unique, per=per)(model).modified  # idempotent


def test_share_leaves_groups_with_few_values():
    w = np.tile(np.array([[-0.5, 0.0, 0.25, 1.0]], np.float32), (3, 2))  # 4 values per filter
    w[1, 0] = 7.0  # row 1: 5 distinct values
    model = gemm_model(w, 1)
    p = ShareWeights(unique=4)
    assert p(model).modified
    new = weight(model, "w")
    assert np.array_equal(new[[0, 2]], w[[0, 2]])  # rows with <= 4 values untouched
    assert len(np.unique(new[1])) <= 4 and new[1, 1] == 0
    assert [r["unique_before_max"] for r in p.stats["layers"] if r["name"] == "fc"] == [5]
    assert not ShareWeights(unique=4)(gemm_model(w[[0, 2]], 1)).modified


@pytest.mark.parametrize("op,shape,layout,group,x_shape", SHAPES)
def test_share_filters_follow_the_layout(op, shape, layout, group, x_shape):
    """Filters are output channels: Gemm transB=0 and MatMul columns, ConvTranspose's axis 1 per group."""
    w = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    model = layer_model(op, w, group, x_shape)
    ShareWeights(unique=3)(model)
    new = weight(model, "w")
    if op in ("Conv", "GemmT"):
        filters = [new[m] for m in range(shape[0])]
    elif op == "Gemm":
        filters = [new[:, n] for n in range(shape[1])]
    elif op == "MatMul":
        filters = [new[b, :, n] for b in range(shape[0]) for n in range(shape[2])]
    else:
        cg = shape[0] // group
        filters = [new[g * cg:(g + 1) * cg, m] for g in range(group) for m in range(shape[1])]
    assert all(len(np.unique(f)) <= 3 for f in filters)
    assert len(np.unique(new)) > 3  # each filter has its own values


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("unique,per", [(17, "filter"), (3, "filter"), (3, "layer")])
def test_share_gemm_error_bound(trans_b, unique, per):
    rng = np.random.default_rng(4)
    w = rng.normal(size=(12, 64) if trans_b else (64, 12)).astype(np.float32)
    model, original = gemm_model(w, trans_b), gemm_model(w, trans_b)
    p = ShareWeights(unique=unique, per=per)
    p(model)
    x = rng.uniform(-1, 1, size=(4, 64)).astype(np.float32)
    max_dw = float(np.abs(weight(model, "w").astype(np.float64) - w).max())
    assert max_dw == pytest.approx(p.stats["max_abs_error"])
    error = np.abs(run(model, x) - run(original, x)).max(axis=1)  # per sample
    w_rows = w if trans_b else w.T
    slack = FP_SLACK * (np.abs(x) @ np.abs(w_rows.T)).max(axis=1)
    assert np.all(error <= max_dw * np.abs(x).sum(axis=1) + slack)


def test_share_unique_one_and_bad_parameter():
    w = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    model = gemm_model(w, 1)
    ShareWeights(unique=1)(model)
    new = weight(model, "w")
    assert all(len(np.unique(row)) == 1 for row in new)
    np.testing.assert_allclose(new[:, 0], w.mean(axis=1), rtol=1e-6)  # the one centroid is the mean
    with pytest.raises(Exception, match="unique=0"):
        ShareWeights(unique=0)(gemm_model(w, 1))


finite = st.floats(-100, 100, allow_nan=False, allow_subnormal=False, width=32)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 200), elements=st.one_of(finite, st.just(0.0))), st.integers(1, 20))
def test_share_values_properties(values, unique):
    wide = values.astype(np.float64)
    out = share_values(wide, unique)
    centroids = np.unique(out)
    assert centroids.size <= unique
    assert np.all(out[wide == 0] == 0)
    if np.any(wide == 0) and unique > 1:
        assert 0 in centroids or np.all(wide == 0)
    if unique > 1 or not np.any(wide == 0):
        # Every non-zero value sits on its nearest centroid (Lloyd's final assignment).
        moving = wide != 0
        nearest = np.abs(wide[moving, None] - centroids[None, :]).min(axis=1)
        np.testing.assert_allclose(np.abs(wide[moving] - out[moving]), nearest, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def mnist_test():
    from nncc.models import mnist

    _, _, x_te, y_te = mnist.mnist_split()
    return x_te, y_te


@pytest.mark.parametrize("pass_,floor", [(ShareWeights(), 0.97), (ShareWeights(per="layer"), 0.96),
                                         (ShareWeights(unique=3), 0.90)], ids=str)
def test_lenet5_accuracy(pass_, floor, mnist_test):
    """LeNet-5 on the 1,000 MNIST test digits (baseline 98.1%)."""
    path = models.bundled_path("lenet5")
    base = runtime.top1_accuracy(runtime.session(load_model(path)), *mnist_test)
    model = load_model(path)
    pass_(model)
    acc = runtime.top1_accuracy(runtime.session(model), *mnist_test)
    stats = pass_.stats["layers"]
    print(f"\nLeNet-5 MNIST top-1: {base:.3f} -> {acc:.3f} after {pass_} "
          f"(unique per filter max {max(s['unique_max'] for s in stats)}, "
          f"rel. L2 error {max(s['relative_l2_error'] for s in stats):.3f})")
    assert acc >= floor
