"""LeNet-5 / MNIST on TrueNorth: cores, ticks, energy and accuracy against copies.

    python -m nncc.backends.truenorth.benchmark [--digits 1000] [--quick]

Compiles the trained LeNet-5 for the ``truenorth`` target (default config), measures the
accuracy of the float model, of the legalized model (onnxruntime), of the analog network with
TrueNorth's 4-level weights, and of the spiking network at 1, 2 and 4 ticks against the
number of averaged copies (simulate.py; the test digits of ``mnist.mnist_split``, thresholds
calibrated on the first 500 training digits). Cores, latency and energy per row come from the
cost model with the spike rates the simulation measured. Paper figures beside them:
Esser et al. NIPS 2015 [U] 92.7% at 1 copy, 99.42% at 64; Wen et al. DAC 2016 [V] up to
68.8% fewer cores or 6.5x speedup than copy averaging.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import tempfile
import time
from typing import Any

import numpy as np

from nncc import models, runtime
from nncc.analysis import layers as layer_table
from nncc.driver import CompileOptions, compile_model
from nncc.loading import load_model
from nncc.models import mnist

from . import simulate
from .mapping import WEIGHTED
from .target import TrueNorthTarget

SWEEPS = {1: (1, 2, 4, 8, 16, 32, 64), 2: (1, 2, 4, 8, 16), 4: (1, 2, 4, 8)}
QUICK_SWEEPS = {1: (1, 4, 16), 4: (1, 4)}


def measure(digits: int = 1000, sweeps: dict[int, tuple[int, ...]] = SWEEPS, calib: int = 500, seed: int = 0) -> dict[str, Any]:
    x_tr, _, x_te, y_te = mnist.mnist_split()
    x, y = x_te[:digits], y_te[:digits]
    target = TrueNorthTarget()
    with tempfile.TemporaryDirectory() as tmp:
        path = models.export("lenet5", pathlib.Path(tmp) / "lenet5.onnx")
        result = compile_model(path, target, [], CompileOptions(verify_samples=0))
        original = load_model(path)
    out: dict[str, Any] = {"digits": len(x), "config": dataclasses.asdict(target.config),
                           "cores_per_copy": result.mapping.cores_per_copy, "depth_ticks": result.mapping.depth_ticks,
                           "formula_cores": formula_cores(original, target.config),
                           "cores_by_kind": _by_kind(result.mapping),
                           "float_accuracy": runtime.top1_accuracy(runtime.session(original), x, y),
                           "legalized_accuracy": runtime.top1_accuracy(runtime.session(result.model), x, y)}
    layers = simulate.build(original, target.config)
    out["calibration"] = simulate.calibrate(layers, x_tr[:calib])
    logits, _ = simulate.analog(layers, x.astype(np.float64))
    out["analog_accuracy"] = float(np.mean(logits.argmax(1) == y))
    rows = []
    for ticks, copies in sweeps.items():
        start = time.perf_counter()
        sim = simulate.run(layers, x, ticks, max(copies), seed, v_init=target.config.initial_potential)
        seconds = time.perf_counter() - start
        for k in copies:
            config = dataclasses.replace(target.config, ticks=ticks, copies=k)
            mapping = dataclasses.replace(result.mapping, config=config, input_rates=sim.input_rates)
            cost = TrueNorthTarget(config).estimate(mapping)
            totals = cost.totals()
            rows.append({"ticks": ticks, "copies": k, "accuracy": sim.accuracy(y, k), "cores": totals["cores"],
                         "chips": totals["chips"], "latency_ms": totals["latency_s"] * 1e3, "energy_uj": totals["energy_j"] * 1e6,
                         "dynamic_uj": totals["dynamic_energy_j"] * 1e6, "synaptic_events": totals["synaptic_events"],
                         "sim_seconds": seconds})
        synapses = {row.layer: 0 for row in result.mapping.layers}
        for row in result.mapping.layers:
            synapses[row.layer] += row.synapses
        weighted = sum(sim.input_rates.get(k, 0.0) * s for k, s in synapses.items()) / max(1, sum(synapses.values()))
        out.setdefault("spike_rate", {})[ticks] = {"per_layer": sim.input_rates, "synapse_weighted": weighted}
    out["rows"] = rows
    return out


def formula_cores(model, config) -> int:
    """The count of docs/sources.md, "TrueNorth": sum over weighted layers of ceil(fan-in / 256) x ceil(neurons / 256)."""
    total = 0
    for layer in layer_table(model):
        if layer.op in WEIGHTED and layer.is_weighted:
            neurons = math.prod(layer.output_shapes[0])
            total += -(-layer.weight.fan_in // config.inputs_per_core) * -(-neurons // config.neurons_per_core)
    return total


def _by_kind(mapping) -> dict[str, int]:
    kinds = {"crossbar (weighted layers)": 0, "pooling": 0, "merge": 0, "splitter": 0}
    for row in mapping.layers:
        kinds["pooling" if row.kind == "pool" else "crossbar (weighted layers)"] += row.cores
        kinds["merge"] += row.merge_cores
        kinds["splitter"] += row.splitter_cores
    return kinds


def render(m: dict[str, Any]) -> str:
    c = m["config"]
    lines = [f"LeNet-5 / MNIST on TrueNorth ({m['digits']} test digits; weight scheme {c['weight_scheme']}, "
             f"pooling {c['pooling']}, {c['copy_mode']} copies)",
             f"cores per copy {m['cores_per_copy']} ({', '.join(f'{k} {v}' for k, v in m['cores_by_kind'].items())}; "
             f"docs/sources.md's sum of ceil(fan-in/256) x ceil(neurons/256) over weighted layers: {m['formula_cores']}), "
             f"pipeline depth {m['depth_ticks']} ticks",
             f"top-1: float {m['float_accuracy']:.2%} | legalized (9-bit weights, onnxruntime) {m['legalized_accuracy']:.2%} | "
             f"analog with 4 levels per neuron {m['analog_accuracy']:.2%}", "",
             "| ticks | copies | accuracy | cores | chips | latency ms | energy uJ (dynamic) | synaptic events |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in m["rows"]:
        lines.append(f"| {r['ticks']} | {r['copies']} | {r['accuracy']:.2%} | {r['cores']} | {r['chips']} | {r['latency_ms']:.0f} | "
                     f"{r['energy_uj']:.2f} ({r['dynamic_uj']:.2f}) | {r['synaptic_events']:.3g} |")
    rates = ", ".join(f"{t} ticks: {v['synapse_weighted']:.3f}" for t, v in m["spike_rate"].items())
    lines += ["", f"mean spikes per axon per tick (synapse-weighted, measured): {rates}",
              "papers: Esser et al. NIPS 2015 [U] MNIST 92.7% at 1 copy, 99.42% at 64 copies (1 tick per frame, "
              "network trained for TrueNorth); Wen et al. DAC 2016 [V] up to 68.8% fewer cores or 6.5x speedup than copy "
              "averaging, accuracy slightly better (training-side, not reproduced here)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="fewer ticks/copies settings")
    args = parser.parse_args(argv)
    print(render(measure(args.digits, QUICK_SWEEPS if args.quick else SWEEPS)))


if __name__ == "__main__":
    main()
