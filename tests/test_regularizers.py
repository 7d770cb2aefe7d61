"""Each regularizer's value on a hand-computed tensor, and that its gradient lowers it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nncc.errors import NnccError
from nncc.training.quantization import slice_values
from nncc.training.regularizers import LayerWeight
from nncc.training.specs import parse_regularizer, parse_regularizers, split_specs
from nncc.weights import WeightLayout

torch.set_num_threads(1)


def conv(values) -> LayerWeight:
    return LayerWeight("conv", "w", torch.tensor(values, dtype=torch.float32, requires_grad=True), WeightLayout("out_first", 1))


def fc(values, trans_b=1) -> LayerWeight:
    layout = WeightLayout("out_first" if trans_b else "in_first", 1)
    return LayerWeight("fc", "fc", torch.tensor(values, dtype=torch.float32, requires_grad=True), layout)


# W: 2 filters x 2 channels x 1x1: [[3, 4], [0, 0]] -> filter norms 5, 0; channel norms 3, 4
W = [[[[3.0]], [[4.0]]], [[[0.0]], [[0.0]]]]


def value(spec, weights):
    return float(parse_regularizer(spec).penalty(weights).detach())


def test_group_lasso_values():
    assert value("group-lasso:lambda=1,groups=filters", [conv(W)]) == pytest.approx(5.0, abs=1e-5)
    assert value("group-lasso:lambda=1,groups=channels", [conv(W)]) == pytest.approx(7.0, abs=1e-5)
    assert value("group-lasso:lambda=0.5,groups=filters+channels", [conv(W)]) == pytest.approx(6.0, abs=1e-5)
    assert value("group-lasso:lambda=1,groups=depth", [conv(W)]) == pytest.approx(5.0, abs=1e-5)
    assert value("group-lasso:lambda=1,groups=shapes", [conv(W)]) == pytest.approx(7.0, abs=1e-5)  # W[:, c, 0, 0]
    # Gemm transB=0 (in, out): filters are columns
    assert value("group-lasso:lambda=1,groups=filters", [fc([[3.0, 0.0], [4.0, 0.0]], trans_b=0)]) == pytest.approx(5.0, abs=1e-5)


def test_l1_value():
    assert value("l1:lambda=0.1", [fc([[1.0, -2.0]]), conv(W)]) == pytest.approx(1.0, rel=1e-5)


def test_hoyer_values():
    w = [[1.0, -1.0], [2.0, 0.0]]  # (1+1+2)^2 / (1+1+4) = 16/6
    assert value("hoyer:lambda=1", [fc(w)]) == pytest.approx(16 / 6, rel=1e-5)
    # group-hoyer over filters: norms sqrt(2), 2 -> (sqrt2+2)^2 / 6
    assert value("group-hoyer:lambda=1,groups=filters", [fc(w)]) == pytest.approx((math.sqrt(2) + 2) ** 2 / 6, rel=1e-5)


def test_nuclear_value():
    w = [[3.0, 0.0], [0.0, -4.0]]
    assert value("nuclear:lambda=1", [fc(w)]) == pytest.approx(7.0, rel=1e-5)
    # conv (N=2, C=1, 1x2) channel-wise: [[1, 0], [0, 2]] -> 3
    assert value("nuclear:lambda=1", [conv([[[[1.0, 0.0]]], [[[0.0, 2.0]]]])]) == pytest.approx(3.0, rel=1e-5)


def test_force_values():
    # orthogonal unit filters: euclidean distance sqrt2, one pair, /N=2; cosine 0
    w = [[2.0, 0.0], [0.0, 5.0]]
    assert value("force:lambda=1", [fc(w)]) == pytest.approx(math.sqrt(2) / 2, rel=1e-4)
    assert value("force:lambda=1,kind=cosine", [fc([[1.0, 0.0], [1.0, 0.0]])]) == pytest.approx(-0.5, rel=1e-5)


def test_bitslice_value():
    # max 1.0 -> codes round(|w| * 255): 255 = 3,3,3,3 (sum 12); 0.5 -> 128 = 0b10000000: slices 2,0,0,0 (sum 2);
    # 5/255 -> 5 = 0b101: slices 0,0,1,1 (sum 2); 0 -> 0
    w = [[1.0, -0.5], [5 / 255, 0.0]]
    s = slice_values(torch.tensor(w))
    assert s.sum(dim=(1, 2)).tolist() == [4.0, 4.0, 3.0, 5.0]  # per slice, least significant first
    assert float(s.sum()) == 16.0
    assert value("bitslice-l1", [fc(w)]) == pytest.approx(0.5 * 16 / 4)


def test_bitslice_scales():
    # max|w| 0.75: scale=max -> 0.75 is code 255 (12), 0.375 is 128 (2); scale=pow2 -> 1.0:
    # 0.75 is 191 = 0b10111111 (2+3+3+3 = 11), 0.375 is 96 = 0b01100000 (1+2 = 3)
    w = [[0.75, -0.375]]
    assert value("bitslice-l1:alpha=1", [fc(w)]) == pytest.approx(14 / 2)
    assert value("bitslice-l1:alpha=1,scale=pow2", [fc(w)]) == pytest.approx(14 / 2)
    assert float(slice_values(torch.tensor(w), scale=1.0).sum()) == 14.0
    assert float(slice_values(torch.tensor([[2.0]]), scale=1.0).sum()) == 12.0  # saturates at code 255
    # scale=fixed: the first max|w| stays the scale, so halving the weights halves the codes
    reg = parse_regularizer("bitslice-l1:alpha=1,scale=fixed")
    assert float(reg.penalty([fc(w)]).detach()) == pytest.approx(7.0)
    assert reg.layer_scale("fc", torch.tensor([[0.1]])) == 0.75
    # 0.375 -> 128 (2), 0.1875 -> 64 = 0b01000000 (1)
    assert float(reg.penalty([fc([[0.375, -0.1875]])]).detach()) == pytest.approx(3 / 2)
    with pytest.raises(NnccError, match="scale"):
        parse_regularizer("bitslice-l1:scale=log")


def test_bitslice_max_scale_gradient_raises_the_largest_weight():
    # scale=max-grad: the codes divide by max|w|, so the gradient pushes the largest |w| up (every
    # other code falls) and the rest toward 0; scale=max pushes every weight toward 0
    w = [[1.0, -0.5, 0.1]]
    grad = {}
    for scale in ("max", "max-grad"):
        weight = fc(w)
        parse_regularizer(f"bitslice-l1:alpha=1,scale={scale}").penalty([weight]).backward()
        grad[scale] = weight.param.grad[0].tolist()
    assert grad["max-grad"][0] < 0 and grad["max-grad"][1] < 0 and grad["max-grad"][2] > 0  # |1.0| up, |-0.5| down
    assert grad["max"][0] > 0 and grad["max"][1] < 0 and grad["max"][2] > 0


def test_quant_reg_value():
    # 3 levels over [-2, 2]: {-2, 0, 2}; w = 2, 0.8, -1.2 -> q = 2, 0, -2 -> (0.8^2 + 0.8^2)
    assert value("quant-reg:lambda=1,levels=3", [fc([[2.0, 0.8, -1.2]])]) == pytest.approx(1.28, rel=1e-5)


@pytest.mark.parametrize("spec", ["l1:lambda=1", "group-lasso:lambda=1", "hoyer:lambda=1", "group-hoyer:lambda=1", "nuclear:lambda=1",
                                  "force:lambda=1", "force:lambda=1,kind=cosine", "bitslice-l1", "bitslice-l1:scale=pow2",
                                  "bitslice-l1:scale=fixed", "bitslice-l1:scale=max-grad", "quant-reg:lambda=1"])
def test_gradient_step_lowers_penalty(spec):
    torch.manual_seed(0)
    weight = LayerWeight("conv", "w", torch.randn(6, 4, 3, 3, requires_grad=True), WeightLayout("out_first", 1))
    reg = parse_regularizer(spec)
    before = reg.penalty([weight])
    before.backward()
    step = 1e-3 if spec.startswith(("bitslice", "hoyer", "group-hoyer")) else 1e-2
    if spec.startswith("bitslice"):
        step = 2e-2
    with torch.no_grad():
        weight.param -= step * weight.param.grad / weight.param.grad.abs().max()
    assert float(reg.penalty([weight]).detach()) < float(before.detach())


def test_group_lasso_drives_weak_group_to_zero():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    w[2] *= 0.05  # a weak filter
    weight = LayerWeight("conv", "w", w.clone().requires_grad_(True), WeightLayout("out_first", 1))
    reg = parse_regularizer("group-lasso:lambda=1,groups=filters")
    opt = torch.optim.SGD([weight.param], lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        reg.penalty([weight]).backward()
        opt.step()
    norms = weight.param.detach().reshape(4, -1).norm(dim=1)
    assert norms[2] < 1e-2
    assert (norms[[0, 1, 3]] > 1.0).all()


def test_parsing():
    reg = parse_regularizer("group-lasso:lambda=1e-4,groups=filters+channels")
    assert reg.lam == 1e-4 and reg.groups == "filters+channels"
    assert split_specs("group-lasso:groups=filters+channels+hoyer:lambda=2") == ["group-lasso:groups=filters+channels", "hoyer:lambda=2"]
    assert [r.name for r in parse_regularizers("group-lasso+nuclear:scheme=spatial")] == ["group-lasso", "nuclear"]
    assert parse_regularizer("bitslice-l1:alpha=0.25").lam == 0.25
    with pytest.raises(NnccError, match="unknown regularizer"):
        parse_regularizer("l7")
    with pytest.raises(NnccError, match="unknown parameter 'foo'"):
        parse_regularizer("hoyer:foo=1")
    with pytest.raises(NnccError, match="groups"):
        parse_regularizer("group-lasso:groups=rows")
    with pytest.raises(NnccError, match="kind"):
        parse_regularizer("force:kind=magnetic")


def test_layers_regex_selects():
    reg = parse_regularizer("hoyer:lambda=1,layers=^fc$")
    assert float(reg.penalty([conv(W)]).detach()) == 0.0
    assert float(reg.penalty([fc([[1.0, 1.0]])]).detach()) == pytest.approx(2.0)


# --- proximal steps ------------------------------------------------------------------------------

def test_group_lasso_prox_zeroes_small_groups_exactly():
    w = conv([[[[3.0]], [[4.0]]], [[[0.3]], [[0.4]]]])  # filter norms 5, 0.5
    reg = parse_regularizer("group-lasso:lambda=1,groups=filters")
    reg.prox_([w], 1.0)
    f = w.param.detach()
    assert torch.all(f[1] == 0)  # norm 0.5 <= threshold 1: gone
    assert torch.allclose(f[0].reshape(-1), torch.tensor([3.0, 4.0]) * (1 - 1 / 5))  # shrunk by 1 in norm


def test_crossbar_groups_are_column_segments():
    # Gemm (out=2, in=5), crossbar of 2 rows: segments per output [0:2], [2:4], [4:5]
    w = fc([[3.0, 4.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.1, 0.0, 0.0]])
    assert value("group-lasso:lambda=1,groups=crossbar,crossbar=2", [w]) == pytest.approx(5 + 1 + 0.1, abs=1e-5)
    reg = parse_regularizer("group-lasso:lambda=1,groups=crossbar,crossbar=2")
    reg.prox_([w], 0.5)
    p = w.param.detach()
    assert p[1].abs().sum() == 0 and p[0, 4] == pytest.approx(0.5) and p[0, 0] == pytest.approx(3 * 0.9)
    # transB=0 (in, out) writes back in its own layout
    wt = fc([[3.0, 0.0], [4.0, 0.0], [0.0, 0.1], [0.0, 0.0], [1.0, 0.0]], trans_b=0)
    reg.prox_([wt], 0.5)
    assert torch.allclose(wt.param.detach().t(), p)


def test_nuclear_and_l1_prox():
    w = fc([[2.0, 0.0], [0.0, 0.5]])
    parse_regularizer("nuclear:lambda=1").prox_([w], 0.6)  # singular values 2, 0.5 -> 1.4, 0
    assert torch.allclose(w.param.detach(), torch.tensor([[1.4, 0.0], [0.0, 0.0]]), atol=1e-6)
    v = fc([[0.3, -0.05], [-1.0, 0.0]])
    parse_regularizer("l1:lambda=1").prox_([v], 0.1)
    assert torch.allclose(v.param.detach(), torch.tensor([[0.2, 0.0], [-0.9, 0.0]]), atol=1e-6)
    with pytest.raises(NotImplementedError):
        parse_regularizer("hoyer").prox_([v], 0.1)


def test_each_regularizer_module_imports_on_its_own():
    # The families share only their base class; the spec table imports both.
    import subprocess
    import sys

    for first in ("nncc.training.quantization", "nncc.training.regularizers", "nncc.training.specs"):
        code = (f"import {first}; import nncc.training.quantization as q; from nncc.training.specs import REGULARIZERS; "
                "assert REGULARIZERS['bitslice-l1'] is q.BitSliceL1")
        subprocess.run([sys.executable, "-c", code], check=True)


def test_command_line_does_not_load_torch():
    # `nncc --help` and every command that trains nothing start without torch (about 2 s here).
    import subprocess
    import sys

    code = "import sys, nncc.cli; assert 'torch' not in sys.modules, 'nncc.cli imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_crossbar_groups_are_the_core_column_segments():
    # The group lasso's crossbar groups are exactly the segments delete-groups and reram count.
    from nncc.crossbar import segment_norms
    from nncc.training.regularizers import group_norms

    w = torch.randn(5, 3, 7, 7, generator=torch.Generator().manual_seed(0))  # fan-in 147 over 64-row blocks
    torch_norms = group_norms(w, "crossbar", crossbar=64).reshape(5, -1).t()  # [row blocks, outputs]
    matrix = WeightLayout("out_first", 1).matrices(w.numpy())[0]              # [fan-in, outputs]
    assert np.allclose(torch_norms.numpy(), segment_norms(matrix, 64), rtol=1e-6)
