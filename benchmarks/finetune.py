"""Training-aware compression on LeNet-5 / MNIST (mnist_split: 4,000 train, 1,000 test digits).

    python benchmarks/finetune.py [--part ssl|bitslice|all] [--epochs N] [--lams ...] [--alphas ...]

(a) SSL: group-lasso training as a proximal step (SGD momentum 0.9, exact-zero groups; by default
    filters of the conv layers, lambda * sqrt(filter size) per layer) -> prune-channels of exactly
    the zeroed filters (per layer, criterion group-lasso) -> short Adam fine-tune, against plain
    prune-channels (criterion l1, ratio 0.5, every layer) -> the same fine-tune. Prints test accuracy
    (onnxruntime) and the realized onnxruntime latency (1 thread, batch 1) vs the dense model.
(b) Bit-slice L1 vs plain L1 (SGD momentum 0.5, lr 0.01, 8 epochs: the authors' setup): several
    strengths of each (bit-slice L1 with its ``scale`` modes max, pow2, max-grad); prints test
    accuracy with float weights and with the weights rounded to 8-bit codes (max|w| or power-of-two
    scale), the bit-slice density (fraction of non-zero 2-bit slices of the 8-bit |w| codes) under
    the ReRAM target's quantizer (one scale max|w| per layer), under the authors' fixed point
    (2^ceil(log2 max|w|)) and under the regularizer's own scale, and the ReRAM target's derived ADC
    bits per slice (MSB first, max over layers, calibrated on 64 test digits) and their sum over the
    5 layers x 4 slices. Compare rows of equal (8-bit) accuracy.

Every run: seed 0, one torch thread. Timings are this machine's; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from nncc import models, runtime
from nncc.loading import load_model
from nncc.passes.prune_channels import PruneChannels
from nncc.pipeline import PassContext, run_passes
from nncc.training.finetune import TrainConfig, finetune_model
from nncc.training.specs import parse_regularizers


def test_accuracy(model, x, y) -> float:
    return runtime.top1_accuracy(runtime.session(model, threads=1), x, y)


def latency_ms(model, repeats: int = 3) -> float:
    """onnxruntime latency (1 thread, batch 1): the lowest of ``repeats`` medians over 1 s each, which
    damps the machine's transient load (single medians of this ~40 us model move by ~10%)."""
    sess = runtime.session(model, threads=1)
    feeds = runtime.sample_inputs(model, 1, seed=1)[0]
    return 1e3 * min(runtime.measure_latency(sess, feeds, min_time_s=1.0)["median_s"] for _ in range(repeats))


def train(model, x, y, epochs, lr, regs=(), optimizer="adam", prox=False, momentum=0.9):
    config = TrainConfig(epochs=epochs, lr=lr, seed=0, optimizer=optimizer, momentum=momentum, prox=prox,
                         regularizers=parse_regularizers(list(regs)))
    return finetune_model(model, x, y, config)


def zero_filters(model) -> dict[str, tuple[int, int]]:
    """Per Conv/Gemm producer: (filters that are exactly zero, filters)."""
    out = {}
    for node in model.graph:
        if node.op_type in ("Conv", "Gemm") and node.inputs[1].const_value is not None:
            w = node.inputs[1].const_value.numpy()
            if node.op_type == "Gemm" and not node.attributes.get_int("transB", 0):
                w = w.T
            f = w.reshape(w.shape[0], -1)
            out[node.name] = (int((np.abs(f).sum(1) == 0).sum()), f.shape[0])
    return out


def prune_zero_groups(model) -> dict[str, int]:
    """prune-channels per layer (criterion group-lasso, ``layers`` = that producer) with the ratio
    its exactly-zero filters give: removes the groups SSL drove to 0 and nothing else."""
    removed = {}
    for name, (zeros, total) in zero_filters(model).items():
        if 0 < zeros < total and name != model.graph[len(model.graph) - 1].name:
            ratio = (zeros + 0.5) / total  # floor(ratio * C) = zeros
            run_passes(model, [PruneChannels(ratio=ratio, criterion="group-lasso", layers=f"^{name}$")], PassContext())
            removed[name] = zeros
    return removed


def ssl_specs(model, lam: float, layers: str, groups: str, sqrt_scale: bool) -> list[str]:
    """One group-lasso spec per Conv/Gemm layer whose name matches ``layers`` (never the classifier):
    ``lambda = lam * sqrt(filter size)`` with ``sqrt_scale`` (SSL's per-group weighting by the square root
    of the group size: conv1 25 -> 5 lam, conv2 150 -> 12.2 lam, fc1 400 -> 20 lam), else ``lam``."""
    import math
    import re

    last = model.graph[len(model.graph) - 1].name
    specs = []
    for node in model.graph:
        if node.op_type in ("Conv", "Gemm") and node.name != last and re.search(layers, node.name):
            size = int(np.prod(node.inputs[1].shape[1:]))
            lam_l = lam * math.sqrt(size) if sqrt_scale else lam
            specs.append(f"group-lasso:lambda={lam_l:.4g},groups={groups},layers=^{node.name}$")
    return specs


def part_ssl(data, epochs: int, ratio: float, lams: list[float], ssl_epochs: int, lr: float, layers: str,
             groups: str, sqrt_scale: bool, fc_ratio: float = 0.0) -> None:
    x, y, xt, yt = data
    dense = load_model(models.bundled_path("lenet5"))
    acc0, lat0 = test_accuracy(dense, xt, yt), latency_ms(dense)
    scheme = "lambda * sqrt(group size) per layer" if sqrt_scale else "one lambda"
    print(f"\n(a) SSL: group lasso ({groups}; layers /{layers}/; {scheme}) as a proximal step, SGD momentum 0.9 "
          f"lr {lr:g}, {ssl_epochs} epochs -> prune-channels of the exactly-zero filters -> fine-tune {epochs} "
          f"epoch(s) (Adam 5e-4)")
    print(f"    baseline: prune-channels ratio {ratio} by l1 (every layer) -> the same fine-tune")
    print(f"dense LeNet-5: test accuracy {acc0:.4f}, onnxruntime latency {lat0:.4f} ms (1 thread, batch 1)")
    print(f"{'flow':34s} {'after reg':>9s} {'pruned':>7s} {'+ft':>7s} {'loss pts':>8s} {'latency ms':>10s} "
          f"{'speedup':>7s} {'time s':>6s}  channels removed")
    if fc_ratio:
        print(f"    '+ l1 fc': SSL on the conv layers, then also prune-channels ratio {fc_ratio} by l1 on fc1/fc2 "
              "(Gemm producers but the classifier)")
    runs = [("plain prune-channels (l1)", None, 0.0)] + [(f"SSL prox lambda={lam:g}", lam, 0.0) for lam in lams]
    if fc_ratio:
        runs += [(f"SSL prox lambda={lam:g} + l1 fc", lam, fc_ratio) for lam in lams]
    for label, lam, fc in runs:
        t0 = time.perf_counter()
        model = load_model(models.bundled_path("lenet5"))
        if lam is None:
            acc_reg = acc0
            run_passes(model, [PruneChannels(ratio=ratio, criterion="l1")], PassContext())
            removed = {"every group": f"{ratio:g}"}
        else:
            specs = ssl_specs(model, lam, layers, groups, sqrt_scale)
            if lam == lams[0] and not fc:
                print("    " + "; ".join(specs))
            train(model, x, y, ssl_epochs, lr, specs, optimizer="sgd", prox=True)
            acc_reg = test_accuracy(model, xt, yt)
            removed = prune_zero_groups(model)
            if fc:
                last = model.graph[len(model.graph) - 1].name
                fcs = [n.name for n in model.graph if n.op_type == "Gemm" and n.name != last]
                run_passes(model, [PruneChannels(ratio=fc, criterion="l1", layers="^(" + "|".join(fcs) + ")$")],
                           PassContext())
                removed = {**removed, "fc (l1)": fc}
        acc_pruned = test_accuracy(model, xt, yt)
        train(model, x, y, epochs, 5e-4)
        acc_ft = test_accuracy(model, xt, yt)
        lat = latency_ms(model)
        print(f"{label:34s} {acc_reg:9.4f} {acc_pruned:7.4f} {acc_ft:7.4f} {100 * (acc0 - acc_ft):8.2f} {lat:10.4f} "
              f"{lat0 / lat:6.2f}x {time.perf_counter() - t0:6.1f}  {removed}", flush=True)


def quantized_accuracy(model, x, y, scale: str = "max") -> float:
    """Test accuracy with every Conv/Gemm/MatMul weight rounded to 8-bit |w| codes (sign kept
    apart, as the differential pair stores it), ``scale`` as in :func:`slice_density`: ``max``
    is the ReRAM target's quantizer, ``pow2`` the authors' fixed point."""
    import onnx_ir as ir

    saved = []
    for node in model.graph:
        if node.op_type in ("Conv", "Gemm", "MatMul") and node.inputs[1].const_value is not None:
            value = node.inputs[1]
            w = value.const_value.numpy()
            m = float(np.abs(w).max())
            if scale == "pow2" and m > 0:
                m = 2.0 ** np.ceil(np.log2(m))
            q = np.minimum(np.rint(np.abs(w) / m * 255), 255) * m / 255 * np.sign(w) if m > 0 else w
            saved.append((value, value.const_value))
            value.const_value = ir.Tensor(q.astype(w.dtype), name=value.name)
    try:
        return test_accuracy(model, x, y)
    finally:
        for value, old in saved:
            value.const_value = old


def slice_density(model, scale: str = "max", reg=None) -> float:
    """Fraction of non-zero 2-bit slices of the 8-bit |w| codes over every Conv/Gemm/MatMul weight.

    ``scale``: ``max`` -- one scale per layer max|w|, the ReRAM target's quantizer (what its
    crossbars hold); ``pow2`` -- dynamic fixed point 2^ceil(log2 max|w|) (the authors' quantizer);
    ``reg`` -- the bit-slice regularizer's own scale (``reg.layer_scale``)."""
    import math

    from nncc.training.quantization import slice_values

    nonzero = total = 0
    for node in model.graph:
        if node.op_type in ("Conv", "Gemm", "MatMul") and node.inputs[1].const_value is not None:
            w = torch.tensor(node.inputs[1].const_value.numpy())
            m = float(w.abs().max())
            if scale == "reg":
                sc = reg.layer_scale(node.inputs[1].name, w)
            else:
                sc = 2.0 ** math.ceil(math.log2(m)) if scale == "pow2" and m > 0 else m
            s = slice_values(w, 8, 2, sc)
            nonzero += int((s > 0).sum())
            total += s.numel()
    return nonzero / total


def adc_bits(model, calib, scale: str = "max") -> tuple[list[int], int]:
    """The ReRAM target's derived ADC bits (``--set weight_scale=SCALE``): (per slice, MSB first,
    the max over layers; the sum over every layer and slice)."""
    from nncc.registry import TARGETS

    target = TARGETS.get("reram").configure(sets={"weight_scale": scale})
    with PassContext(calibration={"input": calib}):
        mapping = target.lower(model)
    rows = mapping.crossbar_layers
    return [max(r.adc_bits[s] for r in rows) for s in range(len(rows[0].adc_bits))], sum(sum(r.adc_bits) for r in rows)


def part_bitslice(data, epochs: int, lr: float, l1s: list[str], alphas: list[str]) -> None:
    """The authors' setup (zjysteven/bitslice_sparsity, mnist/finetune_*.py): SGD momentum 0.5,
    lr 0.01, penalty alpha * sum(slices) / N against plain L1 at several strengths; compare rows
    of equal accuracy. An ``alphas`` entry ``A`` or ``A:SCALE`` (bitslice-l1 ``scale=SCALE``)."""
    x, y, xt, yt = data
    base = load_model(models.bundled_path("lenet5"))
    print(f"\n(b) bit-slice L1 vs plain L1, {epochs} epoch(s) each, SGD momentum 0.5, lr {lr:g}")
    print("    test acc: float weights; 8b max / 8b pow2: weights rounded to 8-bit codes with either scale")
    print("    slice density: non-zero 2-bit slices of the 8-bit |w| codes -- 'reram': one scale max|w| per "
          "layer (the ReRAM target's quantizer);\n    'pow2': 2^ceil(log2 max|w|) (the authors' fixed point); "
          "'reg': the regularizer's own scale")
    print("    ADC bits: the reram target's (max |w| scale), per slice MSB first and summed; 'pow2 sum': with --set weight_scale=pow2")
    print(f"{'regularizer':34s} {'test acc':>8s} {'8b max':>6s} {'8b pow2':>7s} {'reram':>7s} {'pow2':>7s} {'reg':>7s} {'ADC bits (MSB first)':>21s} {'sum':>4s} {'pow2 sum':>8s} {'s':>4s}")

    def row(label, model, reg=None, t0=None):
        bits, bits_pow2 = adc_bits(model, xt[:64]), adc_bits(model, xt[:64], "pow2")
        own = f"{slice_density(model, 'reg', reg):7.4f}" if reg is not None else f"{'':7s}"
        print(f"{label:34s} {test_accuracy(model, xt, yt):8.4f} {quantized_accuracy(model, xt, yt):6.4f} "
              f"{quantized_accuracy(model, xt, yt, 'pow2'):7.4f} "
              f"{slice_density(model):7.4f} "
              f"{slice_density(model, 'pow2'):7.4f} {own} {str(bits[0]):>21s} {bits[1]:4d} {bits_pow2[1]:8d} "
              f"{time.perf_counter() - t0 if t0 else 0:4.0f}", flush=True)

    row("none (trained LeNet-5)", base)
    t0 = time.perf_counter()
    model = load_model(models.bundled_path("lenet5"))
    train(model, x, y, epochs, lr, optimizer="sgd", momentum=0.5)
    row("none, fine-tuned", model, t0=t0)
    specs = [f"l1:lambda={v}" for v in l1s]
    for v in alphas:
        alpha, _, scale = v.partition(":")
        specs.append(f"bitslice-l1:alpha={alpha}" + (f",scale={scale}" if scale else ""))
    for spec in specs:
        t0 = time.perf_counter()
        model = load_model(models.bundled_path("lenet5"))
        regs = parse_regularizers([spec])
        finetune_model(model, x, y, TrainConfig(epochs=epochs, lr=lr, seed=0, optimizer="sgd", momentum=0.5,
                                                regularizers=regs))
        row(spec, model, regs[0] if hasattr(regs[0], "layer_scale") else None, t0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["ssl", "bitslice", "all"], default="all")
    ap.add_argument("--epochs", type=int, default=10, help="SSL: fine-tune epochs after pruning")
    ap.add_argument("--bitslice-epochs", type=int, default=8)
    ap.add_argument("--bitslice-lr", type=float, default=0.01)
    ap.add_argument("--l1s", default="2e-3,3e-3,4e-3,5e-3,6e-3", help="plain L1 strengths")
    ap.add_argument("--alphas", default="0.35,0.5,1:pow2,1.5:pow2,1:max-grad,2:max-grad,4:max-grad,16:max-grad",
                    help="bit-slice L1 alphas, each ALPHA or ALPHA:SCALE (bitslice-l1 scale=)")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--lams", default="0.04,0.06,0.12", help="SSL group-lasso strengths (proximal; per layer "
                    "times sqrt(filter size) unless --ssl-uniform)")
    ap.add_argument("--ssl-epochs", type=int, default=20)
    ap.add_argument("--ssl-lr", type=float, default=0.01)
    ap.add_argument("--ssl-layers", default="^conv", help="regex over layer names the group lasso acts on")
    ap.add_argument("--ssl-groups", default="filters", help="group kinds (+-joined)")
    ap.add_argument("--ssl-fc-ratio", type=float, default=0.5, help="also run SSL (conv) + prune-channels of this "
                    "ratio by l1 on the fully-connected layers (0: skip)")
    ap.add_argument("--ssl-uniform", action="store_true", help="one lambda for every layer (default: lambda * "
                    "sqrt(filter size) per layer, as SSL weights its groups)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from nncc.models.mnist import mnist_split

    data = mnist_split()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    if args.part in ("ssl", "all"):
        part_ssl(data, args.epochs, args.ratio, [float(v) for v in args.lams.split(",")], args.ssl_epochs, args.ssl_lr,
                 args.ssl_layers, args.ssl_groups, not args.ssl_uniform, args.ssl_fc_ratio)
    if args.part in ("bitslice", "all"):
        part_bitslice(data, args.bitslice_epochs, args.bitslice_lr, args.l1s.split(","), args.alphas.split(","))


if __name__ == "__main__":
    main()
