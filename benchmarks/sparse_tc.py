"""Sparse Tensor Core (Zhu et al., MICRO 2019) on the nncc zoo: speedups per mode and keep, the
fit of the two overhead constants, and LeNet-5/MNIST accuracy after ``vector-sparsify``.

    .venv/bin/python benchmarks/sparse_tc.py [--fit] [--quick] [--loo] [--a100] [--models resnet18,vgg16,alexnet]

--loo: the two overheads left out one network at a time over AlexNet, VGG-16, ResNet-18 and
ResNet-50 (backends/sparse_tc/fidelity.py ``loo_table``; a few minutes). --a100: the measured
A100 2:4 GEMM speedups beside config.a100()'s (spec constants, decode cost 0) and beside the
Zhu-fitted hardware overhead carried over (``a100_transfer``; instant).

Paper [V, abstract]: the VectorSparse pruning gives +63% performance on stock Tensor Cores
(1.63x), the added instruction and micro-architecture another +58% (2.58x in all).
Workload [U]: the paper's CNNs at 75% vector-wise sparsity (N=4 of L=16) — the zoo's
AlexNet and VGG-16 stand in (the fit), run at PAPER_BATCH inputs per GEMM; ResNet-18 is printed too.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time
from typing import Any

PAPER_MODELS = ("alexnet", "vgg16")  # [U] fitted on these two; resnet18 is printed beside them
ZOO_MODELS = ("resnet18", "vgg16", "alexnet")
PAPER_KEEP = 4          # [U] 75% sparsity, N=4 of L=16
PAPER_BATCH = 16        # [U] inputs per GEMM for the fit; the paper's batch is not confirmed
PAPER_RATIOS = {"software": 1.63, "hardware": 2.58}  # [V] Zhu et al. abstract
KEEPS = (16, 8, 4, 2)


def _compile(path: pathlib.Path, keep: int | None, **sets: Any):
    from nncc.backends.sparse_tc import SparseTensorCoreTarget
    from nncc.driver import CompileOptions, compile_model
    from nncc.passes.prune import SparsifyVectors

    passes = [] if keep is None else [SparsifyVectors(vector=16, keep=keep)]
    return compile_model(path, SparseTensorCoreTarget.configure(sets=sets), passes, CompileOptions(verify_samples=0))


def lowered(name: str, keep: int, batch: int, tmp: pathlib.Path, path: pathlib.Path | None = None):
    """(mapping, target) of a zoo model after vector-sparsify keep-of-16."""
    from nncc import models

    path = path or models.export(name, tmp / f"{name}.onnx")
    result = _compile(path, keep, batch=batch)
    return result.mapping, result.target


def paper_workload(models_: tuple[str, ...] = PAPER_MODELS, keep: int = PAPER_KEEP, batch: int = PAPER_BATCH) -> tuple[dict, Any]:
    """{network: kernel rows} of the paper's kind of workload, and the config they were lowered with."""
    workload, config = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name in models_:
            mapping, target = lowered(name, keep, batch, pathlib.Path(tmp))
            workload[name] = mapping.layers
            config = target.config
    return workload, config


def fit(models_: tuple[str, ...] = PAPER_MODELS) -> dict[str, float]:
    """Recompute the fitted constants software_overhead / hardware_overhead."""
    from nncc.backends.sparse_tc import cost

    workload, config = paper_workload(models_)
    return cost.fit_overheads(workload, config, PAPER_RATIOS)


def speedups(models_: tuple[str, ...], keeps: tuple[int, ...], batch: int) -> list[dict[str, Any]]:
    from nncc import models

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models_:
            path = models.export(name, pathlib.Path(tmp) / f"{name}.onnx")
            for keep in keeps:
                for mode in ("software", "hardware"):
                    t = _compile(path, keep, batch=batch, mode=mode).report["totals"]
                    rows.append({"model": name, "keep": keep, "mode": mode, "batch": batch, "latency_s": t["latency_s"],
                                 "latency_dense_s": t["latency_dense_s"], "speedup": t["speedup_vs_dense"],
                                 "gemm_speedup": t["gemm_speedup_vs_dense"], "energy_j": t["energy_j"]})
    return rows


def lenet_accuracy(keeps: tuple[int, ...] = (16, 8, 6, 4, 3, 2, 1)) -> list[dict[str, Any]]:
    """Top-1 of LeNet-5 on the MNIST test split after vector-sparsify keep-of-16 (no fine-tuning)."""
    from nncc import models, runtime
    from nncc.models import mnist

    _, _, x_te, y_te = mnist.mnist_split()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = models.export("lenet5", pathlib.Path(tmp) / "lenet5.onnx")
        for keep in keeps:
            result = _compile(path, keep)
            acc = runtime.top1_accuracy(runtime.session(result.model), x_te, y_te)
            t = result.report["totals"]
            rows.append({"keep": keep, "sparsity": 1 - keep / 16, "accuracy": acc, "speedup_hw_batch1": t["speedup_vs_dense"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ZOO_MODELS))
    ap.add_argument("--fit", action="store_true", help="refit the two overhead constants on the paper workload")
    ap.add_argument("--quick", action="store_true", help="keep=4 only, no LeNet sweep")
    ap.add_argument("--batch", type=int, default=PAPER_BATCH)
    ap.add_argument("--loo", action="store_true", help="leave-one-network-out of the two overheads over four networks, then exit")
    ap.add_argument("--a100", action="store_true", help="measured A100 2:4 GEMM speedups against the model, then exit")
    args = ap.parse_args(argv)
    names = tuple(n for n in args.models.split(",") if n)
    start = time.time()
    if args.a100 or args.loo:
        from nncc.backends.sparse_tc import fidelity
        if args.a100:
            print("A100 2:4 over dense, one square FP16 GEMM: measured | config.a100() (decode 0) | Zhu-fitted hardware_overhead")
            for label, row in fidelity.a100_transfer().items():
                print(f"  {label:16} {row['measured']:6.3f}x | {row['spec']:6.3f}x | {row['zhu_fitted']:6.3f}x")
        if args.loo:
            print(f"leave one network out, keep {PAPER_KEEP}/16, batch {PAPER_BATCH}; each network assumed to show the paper's ratio [U]")
            print(f"{'mode':9} {'held out':9} {'fit on rest':>11} {'predicted':>9} {'gain err':>8} {'own':>6}")
            for mode, rows in fidelity.loo_table().items():
                for name, r in rows.items():
                    print(f"{mode:9} {name:9} {r['fitted']:11.4f} {r['predicted']:8.2f}x {100 * r['error']:+7.0f}% {r['own']:6.3f}")
        print(f"\n({time.time() - start:.0f} s)", file=sys.stderr)
        return 0
    if args.fit:
        print("fitted constants (paste into config.py):", fit())
    print(f"\nspeedup over dense HMMA, batch {args.batch} (whole network | GEMM kernels only); paper: "
          f"software {PAPER_RATIOS['software']}x, hardware {PAPER_RATIOS['hardware']}x at keep {PAPER_KEEP}/16 [U]")
    print(f"{'model':10} {'keep':>4} {'mode':9} {'dense us':>10} {'us':>10} {'net x':>7} {'gemm x':>7} {'mJ':>8}")
    for r in speedups(names, (PAPER_KEEP,) if args.quick else KEEPS, args.batch):
        print(f"{r['model']:10} {r['keep']:>4} {r['mode']:9} {r['latency_dense_s'] * 1e6:10.1f} {r['latency_s'] * 1e6:10.1f} "
              f"{r['speedup']:7.2f} {r['gemm_speedup']:7.2f} {r['energy_j'] * 1e3:8.2f}")
    if not args.quick:
        print("\nLeNet-5 / MNIST test split after vector-sparsify (L=16, no fine-tuning), hardware mode batch 1")
        for r in lenet_accuracy():
            print(f"keep {r['keep']:>2}/16 sparsity {r['sparsity']:.3f}: top-1 {100 * r['accuracy']:.1f}%  speedup {r['speedup_hw_batch1']:.2f}x")
    print(f"\n({time.time() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
