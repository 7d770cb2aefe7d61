"""Esser et al.'s 5-core MNIST network on truenorth: seeded and trained, against NIPS 2015.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/truenorth_esser.py [--epochs 10]

Prints, for the seeded network (the one backends/truenorth/fidelity.py measures) and for the
network trained here as the paper's abstract and pytruenorth describe (backends/truenorth/esser.py;
on the 4,000 training digits of nncc.models.mnist, not the paper's 60,000), nncc's cores,
pipeline depth, frames/s and energy per image at one tick, for one copy and 64 copies, against
the paper's 0.408 uJ / 121 uJ (proceedings abstract; a PDF copy: 0.268 uJ / 108 uJ). The
trained network's energy uses its own connected synapses and its spike rate per connected
synapse measured by the one-tick deployment on the 1,000 test digits (``spike_rate``), and its
accuracy at 1 and 64 copies is printed beside the paper's 92.7% / 99.42%. Takes a few minutes
(training).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import numpy as np
from nncc.backends.truenorth import esser
from nncc.driver import CompileOptions, compile_model
from nncc.models import mnist
from nncc.registry import TARGETS

PAPER = {1: (0.408e-6, 0.268e-6, 0.927), 64: (121e-6, 108e-6, 0.9942)}


def compile_totals(path: pathlib.Path, **sets) -> dict:
    target = TARGETS.get("truenorth").configure(None, sets)
    return compile_model(path, target, [], CompileOptions(verify_samples=0)).report["totals"]


def row(label: str, copies: int, t: dict, accuracy: float | None) -> str:
    ref, pdf, acc = PAPER[copies]
    got = f"{100 * accuracy:.1f}%" if accuracy is not None else "-"
    return (f"{label:<9} {copies:>2} cop. {t['cores']:>4} cores  depth {t['pipeline_depth_ticks']} ticks  "
            f"{t['throughput_fps']:.0f} fps  {t['energy_j'] * 1e6:8.3f} uJ  x{t['energy_j'] / ref:5.2f} of "
            f"{ref * 1e6:g} uJ (x{t['energy_j'] / pdf:5.2f} of {pdf * 1e6:g})  accuracy {got} (paper {100 * acc:.2f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seeded = esser.export(pathlib.Path(tmp) / "seeded.onnx", seed=args.seed)
        for copies in (1, 64):
            print(row("seeded", copies, compile_totals(seeded, ticks=1, copies=copies), None))

        x_train, y_train, x_test, y_test = mnist.mnist_split()
        start = time.time()
        params = esser.train(x_train, y_train, epochs=args.epochs, seed=args.seed)
        rng = np.random.default_rng(args.seed + 1)
        copies = [esser.sample(params, rng) for _ in range(64)]
        print(f"trained {args.epochs} epochs on {len(y_train)} digits in {time.time() - start:.0f} s; connected "
              f"fraction per core {[round(float((w != 0).mean()), 3) for w in copies[0]]}")
        trained = esser.export(pathlib.Path(tmp) / "trained.onnx", weights=copies[0], leaks=params["b"])
        for n in (1, 64):
            run = esser.run(copies[:n], params["b"], x_test, rng)
            accuracy = float((run["votes"].argmax(1) == y_test).mean())
            print(f"          measured spike rates: input {run['input_rate']:.3f}, hidden {run['hidden_rate']:.3f}, "
                  f"per connected synapse {run['synapse_rate']:.3f} spikes/tick")
            t = compile_totals(trained, ticks=1, copies=n, spike_rate=round(run["synapse_rate"], 4))
            print(row("trained", n, t, accuracy))


if __name__ == "__main__":
    main()
