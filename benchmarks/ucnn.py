"""UCNN vs its Eyeriss-style sparse baseline: energy and cycle ratios per model and weight scheme.

    .venv/bin/python benchmarks/ucnn.py [--models lenet5,alexnet,resnet50] [--set key=value ...]

Weight schemes (the paper's [V abstract; docs/sources.md, "UCNN"]: 16-bit, 8-bit, INQ ~17 unique, TTQ 3):
  16-bit, 8-bit   the float weights quantized per layer inside the cost model (--set weight_bits)
  U=17, U=3       the ``weight-share`` pass (per-filter 1-D k-means), then 16-bit storage
  tern50          ``prune:ratio=0.5`` then ``weight-share:unique=3``: {-a, 0, +b} per filter with half
                  the weights zero, closer to TTQ's ternary weights (TTQ's own sparsity [U])

Paper: UCNN improves throughput-normalized energy by 1.2x-4x over the baseline (Hegde et al.,
ISCA 2018). The trained LeNet-5 is real; the zoo AlexNet and ResNet-50 carry random
(untrained, deterministic) weights, so their weight statistics are those of Gaussian filters,
not of trained ones. U=3 from weight-share has no zeros unless the filter had some, so
it under-states TTQ's sparsity gains; tern50 adds them. Nothing here
is fitted to land in the paper's range.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

# (label, config overrides, weight-share U, magnitude-prune ratio)
SCHEMES = (("16-bit", {"weight_bits": 16}, None, None), ("8-bit", {"weight_bits": 8}, None, None),
           ("U=17", {"weight_bits": 16}, 17, None), ("U=3", {"weight_bits": 16}, 3, None),
           ("tern50", {"weight_bits": 16}, 3, 0.5))


def run(models_: list[str], sets: dict[str, str]) -> list[dict]:
    from nncc import models
    from nncc.backends.ucnn import UcnnTarget
    from nncc.loading import load_model
    from nncc.passes.prune import PruneWeights
    from nncc.passes.share import ShareWeights
    from nncc.models import mnist
    from nncc.pipeline import PassContext, run_passes

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models_:
            path = models.export(name, pathlib.Path(tmp) / f"{name}.onnx")
            # The trained LeNet-5 sees real digits: its layers' activation densities are measured
            # (64 MNIST test digits); the random-weight zoo models use config.activation_density.
            calibration = {"input": mnist.mnist_split()[2][:64]} if name == "lenet5" else None
            for scheme, scheme_sets, unique, prune in SCHEMES:
                start = time.perf_counter()
                target = UcnnTarget.configure(sets={**sets, **scheme_sets})
                model = load_model(path)
                passes = (([PruneWeights(ratio=prune)] if prune else []) + ([ShareWeights(unique=unique)] if unique else [])
                          + target.legalize())
                with PassContext(calibration=calibration) as context:
                    run_passes(model, passes, context)
                    report = target.estimate(target.lower(model, calibration=context.calibration))
                t = report.totals()
                convs = [row for row in report.layers if row.op == "Conv"]
                conv_tne = None
                if convs:  # the Conv layers alone, as the fidelity rows (an Eyeriss-style array runs convolutions)
                    eu, eb = sum(r.ucnn.energy_j for r in convs), sum(r.baseline.energy_j for r in convs)
                    cu, cb = sum(r.ucnn.cycles for r in convs), sum(r.baseline.cycles for r in convs)
                    conv_tne = eb * cb / (eu * cu) if eu * cu else None
                rows.append({"model": name, "scheme": scheme, "energy_ratio": t["energy_ratio"], "cycles_ratio": t["cycles_ratio"],
                             "tne_ratio": t["throughput_normalized_energy_ratio"], "conv_tne_ratio": conv_tne,
                             "ucnn_uj": t["ucnn"]["energy_j"] * 1e6, "baseline_uj": t["baseline"]["energy_j"] * 1e6,
                             "ucnn_mb": t["ucnn"]["weight_dram_bytes"] / 1e6, "baseline_mb": t["baseline"]["weight_dram_bytes"] / 1e6,
                             "density": t["activation_density_source"], "seconds": time.perf_counter() - start})
                print(_line(rows[-1]), flush=True)
            print(f"  ({name}: activation density from {rows[-1]['density']})", flush=True)
            path.unlink()
    return rows


HEADER = (f"{'model':10} {'scheme':7} {'energy':>7} {'cycles':>7} {'TNE':>6} {'convTNE':>7} {'UCNN uJ':>10} {'base uJ':>10} "
          f"{'UCNN MB':>8} {'base MB':>8}")


def _line(r: dict) -> str:
    conv = f"{r['conv_tne_ratio']:6.2f}x" if r.get("conv_tne_ratio") is not None else f"{'-':>7}"
    return (f"{r['model']:10} {r['scheme']:7} {r['energy_ratio']:6.2f}x {r['cycles_ratio']:6.2f}x {r['tne_ratio']:5.2f}x "
            f"{conv} {r['ucnn_uj']:10.1f} {r['baseline_uj']:10.1f} {r['ucnn_mb']:8.3f} {r['baseline_mb']:8.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,alexnet,resnet50")
    parser.add_argument("--set", action="append", default=[], help="ucnn config override, key=value")
    args = parser.parse_args(argv)
    sets = dict(item.split("=", 1) for item in args.set)
    print("ratios are baseline / UCNN (> 1: UCNN better); TNE = throughput-normalized energy = energy x cycles "
          "(whole network; convTNE: the Conv layers alone)")
    print(HEADER)
    run(args.models.split(","), sets)
    print("paper [V abstract]: 1.2x-4x lower throughput-normalized energy; PE area +17-24% (not modelled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
