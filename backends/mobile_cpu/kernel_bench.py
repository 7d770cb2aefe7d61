"""Training data for the per-kernel fits: sampled synthetic graphs, profiled with onnxruntime.

Like nn-Meter, kernels are measured in sampled configurations, never in the models that are
evaluated (:mod:`.synthetic_graphs`). :func:`profile_graph` runs one with onnxruntime (one thread, default optimization level,
profiling on) and returns each kernel's profiled time, matched to :func:`kernels.detect`'s
kernels by name; :func:`apportion` makes them samples.

Timing under load: onnxruntime's profile gives wall-clock durations per kernel. For every
run, ``time.thread_time()`` (CPU time of the calling thread, where a one-thread session runs
its kernels) and the wall time are taken too. A run whose wall time exceeds its CPU time by
more than 3% (+5 us) was descheduled; each kernel's time is the median over the undisturbed
runs, or, with fewer than 3 of them, the lower quartile over all runs (descheduling only adds
time). Profiling itself adds a few microseconds to every kernel (1.5-3 us on the build
machine, 2026-11-30: LeNet-5's ten kernels profile at 40 us in all, while the whole unprofiled
run takes 24-32 us), which would make small kernels look slow: the median excess per kernel
over the sampled graphs of small kernels (:func:`profiling_excess`, in
``calibrate``) is taken off each kernel first. What is left
gives each kernel's *share*; the times themselves apportion the graph's median CPU time per
run (a session without profiling, as the accuracy benchmark measures models) less
invoke_overhead_s and overhead_s per kernel, so that kernel times and measured model times
are on the same footing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from . import kernels, mapping, ort_kernel_names
from .microbench import time_graph


def run_time(model: onnx.ModelProto, shape: list[int], min_runs: int = 5, min_time_s: float = 0.2) -> float:
    """Median CPU time (``time.thread_time``) of one run, one thread, no profiling."""
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    return time_graph(model, feeds, min_time_s, min_runs, clock=time.thread_time, max_runs=200)


def _session(model: onnx.ModelProto, optimized: str | None, profile_prefix: str | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if optimized:
        options.optimized_model_filepath = optimized
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def profile_graph(model: onnx.ModelProto, shape: list[int], config: Any, min_time_s: float = 0.1, min_runs: int = 8,
                  seed: int = 0) -> dict[str, Any]:
    """Profile one graph: {"profiled": {onnxruntime kernel: median profiled seconds}, "matches":
    [(kind, features, onnxruntime kernel)] for each detected kernel found in the profile,
    "run_s": median thread time of an unprofiled run, "wall_s", "kernels": number of profiled
    kernels, "unmatched": names of onnxruntime kernels not detected}. :func:`apportion` turns
    it into (kind, features, seconds) samples."""
    feeds = {"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}
    with tempfile.TemporaryDirectory() as tmp:
        opt = os.path.join(tmp, "opt.onnx")
        sess = _session(model, opt, os.path.join(tmp, "prof"))
        for _ in range(2):
            sess.run(None, feeds)
        runs: list[tuple[float, float]] = []
        start = time.perf_counter()
        while len(runs) < min_runs or (time.perf_counter() - start < min_time_s and len(runs) < 300):
            w, t = time.perf_counter(), time.thread_time()
            sess.run(None, feeds)
            runs.append((time.perf_counter() - w, time.thread_time() - t))
        with open(sess.end_profiling()) as f:
            events = json.load(f)
        optimized = onnx.load(opt, load_external_data=False)
    ort_names = {node.name: key for node, (key, _) in zip(optimized.graph.node, ort_kernel_names.ort_kernels(optimized))}
    model_runs = [e for e in events if e.get("name") == "model_run"][2:]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    clean = [abs(wall - thread) <= 0.03 * wall + 5e-6 for wall, thread in runs]
    use_clean = sum(clean) >= 3
    per_node: dict[str, list[float]] = {}
    for ok, run in zip(clean, model_runs):
        if use_clean and not ok:
            continue
        for e in nodes:
            if run["ts"] <= e["ts"] <= run["ts"] + run["dur"]:
                per_node.setdefault(ort_names.get(e["name"][:-len("_kernel_time")], e["name"]), []).append(e["dur"] * 1e-6)
    # Undisturbed runs: their median; none (a loaded machine, long graphs): the lower quartile,
    # as being descheduled only ever adds wall time.
    measured = {name: float(np.median(v) if use_clean else np.percentile(v, 25)) for name, v in per_node.items()}
    run_s = run_time(model, shape, min_runs=max(10, min_runs), min_time_s=min_time_s)
    lowered = mapping.map_model(ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(model)), config)
    detected = kernels.detect(lowered, config)
    matches, matched = [], set()
    for k in detected:
        for key in (k.name, k.out, *k.aliases):
            if key in measured and key not in matched:
                matched.add(key)
                matches.append((k.kind, k.features, key))
                break
    return {"profiled": measured, "matches": matches, "run_s": run_s, "clean_runs": int(sum(clean)),
            "profiled_s": sum(measured.values()), "wall_s": float(np.median([w for w, _ in runs])),
            "kernels": len(measured), "detected": len(detected), "unmatched": sorted(set(measured) - matched)}


def profiling_excess(result: dict[str, Any], config: Any) -> float | None:
    """Seconds per kernel that profiling adds to a graph's kernel times: (sum of the profiled
    kernel times - what the same graph's unprofiled run leaves for its kernels) / kernels. None
    for a graph without kernels."""
    if not result["kernels"]:
        return None
    unprofiled = result["run_s"] - config.invoke_overhead_s - config.overhead_s * result["kernels"]
    return (result["profiled_s"] - unprofiled) / result["kernels"]


def apportion(result: dict[str, Any], config: Any, excess_s: float = 0.0) -> list[tuple[str, tuple[float, ...], float]]:
    """(kind, features, seconds) of each matched kernel of a :func:`profile_graph` result: its
    profiled time less ``excess_s`` (what profiling adds to every kernel, :func:`profiling_excess`
    as a median over many graphs), then all scaled so that they add up to the graph's median CPU
    time per run (a session without profiling, as the accuracy benchmark measures models) less
    invoke_overhead_s and overhead_s per kernel: kernel times and measured model times on the
    same footing. Without the excess a small kernel keeps the few microseconds profiling adds
    to each kernel, and a network of many small kernels is predicted too slow."""
    run_s, measured = result["run_s"], result["profiled"]
    # A kernel never drops below a tenth of its profiled time (a tiny kernel the median excess overshoots).
    net = {name: max(seconds - excess_s, 0.1 * seconds) for name, seconds in measured.items()}
    profiled = sum(net.values())
    if profiled > 0:
        share = max(run_s - config.invoke_overhead_s - config.overhead_s * len(measured), 0.05 * run_s) / profiled
        net = {name: seconds * share for name, seconds in net.items()}
    return [(kind, features, net[key]) for kind, features, key in result["matches"]]
