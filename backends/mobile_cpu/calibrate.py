"""``nncc calibrate mobile-cpu``: measure the ``host`` profile on the machine running nncc.

Everything is measured with onnxruntime on one thread (what ``nncc compile --measure``
reports) and written as a ``[mobile-cpu]`` TOML table (``--config FILE``) plus the cache
the ``host`` profile reads (``config.host_cache_path()``).

Measured:   overhead_s (chains of tiny Relu/MaxPool/Conv/Gemm ops), invoke_overhead_s
            (one tiny op), dram_bandwidth (Add of 3 x 64 MB), cache_bandwidth (Relu chain
            on 64x56x56 maps), op_cycles (chain of each common element-wise op), cache_bytes (the largest weight footprint that still streams at
            cache speed, capped by the sysfs size), simd_bits (CPU flags).
Fitted:     frequency_hz (effective clock: best fp32 MAC/s of the conv/gemm micro-graphs
            divided by lanes x FMA units), eff_conv / eff_pointwise / eff_depthwise /
            eff_grouped / eff_gemm / work_half_macs (:func:`fit_efficiencies`: least squares
            in log time over chains of each layer class, through the same
            ``cost.kernel_cost`` the estimate uses), eff_int8 (QLinearConv chain),
            transcendental_ops (from Sigmoid's cycles).
Per-kernel: kernel_fits (:func:`fit_kernels`, nn-Meter style): random synthetic graphs
            (:mod:`.kernel_bench`) profiled with onnxruntime, each kernel's time matched to
            :func:`kernels.detect`, one predictor per kernel kind (:mod:`.kernel_fit`). Only
            synthetic kernels are used: no model that the accuracy benchmark evaluates.
Rerun any of it with ``nncc calibrate mobile-cpu -o host.toml``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import platform
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from . import config as hwconfig
from . import cost, kernel_bench, kernel_fit, kernels, mapping, synthetic_graphs
from . import microbench as mb

# (class, builder, kwargs): chains of identical layers per efficiency class.
FULL_POINTS: list[tuple[str, Callable, dict[str, int]]] = [
    *[("conv", mb.conv_chain, {"channels": c, "size": s}) for c, s in [(64, 56), (128, 28), (256, 14), (512, 7), (16, 56), (32, 28)]],
    *[("pointwise", mb.conv_chain, {"channels": c, "size": s, "kernel": 1}) for c, s in [(64, 56), (256, 14), (512, 7), (1024, 7), (32, 28)]],
    *[("depthwise", mb.conv_chain, {"channels": c, "size": s, "group": c}) for c, s in [(32, 112), (144, 56), (576, 14), (1024, 7)]],
    ("grouped", mb.conv_chain, {"channels": 240, "size": 28, "kernel": 1, "group": 3}),
    ("grouped", mb.conv_chain, {"channels": 128, "size": 28, "group": 4}),
    *[("gemm", mb.gemm_chain, {"rows": r, "width": w}) for r, w in [(256, 1024), (64, 512), (1, 1024), (1, 256)]],
]
QUICK_POINTS = [FULL_POINTS[i] for i in (1, 4, 6, 8, 12, 14, 17, 19)]
EFF_CLASSES = ("conv", "pointwise", "depthwise", "grouped", "gemm")
# Synthetic graphs per family sampled for the per-kernel fits (synthetic_graphs.FAMILIES).
FULL_KERNEL_GRAPHS = {"conv": 160, "conv1d": 16, "gemm": 30, "fc": 16, "misc": 40, "transformer": 24}
QUICK_KERNEL_GRAPHS = {"conv": 24, "conv1d": 3, "gemm": 6, "fc": 2, "misc": 8, "transformer": 4}
FULL_NETWORKS, QUICK_NETWORKS = 30, 6  # whole synthetic networks for the composition fit


def host_sources() -> dict[str, str]:
    """Where each value of a host calibration comes from (shown by ``describe``)."""
    fitted = "fitted constant: calibrate.fit_efficiencies on onnxruntime chains of that layer class (rerun: nncc calibrate mobile-cpu)"
    return {
        "device": "measured: CPU model name (/proc/cpuinfo or platform)",
        "calibration": "nncc calibrate mobile-cpu (date, quick or full)",
        "frequency_hz": "fitted constant: effective clock = best fp32 MAC/s of the conv/gemm micro-graphs / (fp32 lanes x fma_units)",
        "simd_bits": "measured: CPU flags (avx512f 512, avx/avx2 256, else 128)",
        "fma_units": hwconfig.HOST_STATIC_SOURCES["fma_units"],
        **{f"eff_{c}": fitted for c in EFF_CLASSES},
        "work_half_macs": fitted,
        "eff_int8": "fitted constant: QLinearConv 3x3 chain (calibrate.measure) relative to eff_conv at int8 lanes",
        "eff_elementwise": "[U] assumed 1.0 on the host: element-wise ops are memory-bound there",
        "transcendental_ops": "fitted constant: Sigmoid's measured cycles per element x fp32 lanes - 1",
        "overhead_s": "measured: mean per-op time of chains of tiny Relu, MaxPool, Conv and Gemm ops, (T(60) - T(10)) / 50",
        "invoke_overhead_s": "measured: one tiny Relu graph minus one Relu's overhead",
        "dram_bandwidth": "measured: onnxruntime Add of two 64 MB tensors (12 bytes per element)",
        "cache_bandwidth": "measured: chain of Relu ops on 64x56x56 fp32 maps (1.6 MB moved per op)",
        "cache_bytes": "measured: largest footprint of 1 MB MatMul weights still read at >= 70% of the best "
                       "bandwidth (capped by the largest cache in /sys/devices/system/cpu/cpu0/cache)",
        "weight_stream_bandwidth": "measured (full calibration; a quick one leaves 0: the DRAM bandwidth): rate a batch-1 "
                                   "MatMul chain reads 256 MB of weights (calibrate._last_level_cache)",
        "llc_bytes": "measured (full calibration; a quick one takes cache_bytes): largest footprint of 1 MB MatMul "
                     "weights still read at >= 1.25x the rate of a 256 MB footprint (calibrate._last_level_cache; at "
                     "least cache_bytes)",
        "op_cycles": "measured: chain of each op on zero-mean 64x56x56 maps, (time - overhead) x clock / elements",
        "static_power_w": hwconfig.HOST_STATIC_SOURCES["static_power_w"],
        "fuse_residual_add": "[V] onnxruntime NCHWc Conv+Add/Sum fusion, used on x86 with AVX2 (measured: CPU flags)",
        "kernel_fits": "fitted: calibrate.fit_kernels, per-kernel predictors on sampled synthetic graphs profiled with "
                       "onnxruntime (kernel_bench; no evaluated model among them)",
        "reference_conv_s": "measured: microbench.reference_conv_s, mean of before and after the kernel samples",
    }


def toml_comments() -> dict[str, str]:
    """Every field's source for the TOML: the host's where calibration sets it, else the built-in one."""
    built_in = {f.name: f.metadata["source"] for f in dataclasses.fields(hwconfig.MobileCpuConfig)}
    return {**built_in, **host_sources()}


def _cpu_facts() -> dict[str, Any]:
    text = pathlib.Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    flags = set((info.get("flags") or info.get("Features") or "").split())
    model = info.get("model name") or platform.processor() or platform.machine()
    simd = 512 if "avx512f" in flags else 256 if ({"avx2", "avx"} & flags) else 128
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686")
    cache = 0
    for index in pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (index / "size").read_text().strip().upper()
            cache = max(cache, int(size[:-1]) * {"K": 1024, "M": 1 << 20}[size[-1]] if size[-1] in "KM" else int(size))
        except (OSError, ValueError):
            continue
    return {"model": model, "mhz": float(info.get("cpu MHz") or 0), "simd_bits": simd, "fma_units": 2 if x86 and "fma" in flags else 1,
            "cache_bytes": cache or 8 << 20, "avx2": "avx2" in flags}


def _chain_lengths(macs_per_layer: float) -> tuple[int, int]:
    return (1, 3) if macs_per_layer > 5e7 else (2, 6) if macs_per_layer > 2e6 else (2, 12)


def _row(build: Callable, kwargs: dict[str, int], config: Any) -> tuple[mapping.KernelRow, bool]:
    """The kernel row the estimate sees for one layer of this chain, and whether the weights
    of the longest chain measured stay in the cache."""
    proto = onnx.shape_inference.infer_shapes(build(3, **kwargs)[0])
    lowered = mapping.map_model(ir.serde.deserialize_model(proto), config)
    row = lowered.layers[1]
    return row, row.weight_bytes * _chain_lengths(row.macs)[1] <= config.cache_bytes


def predict(points: list[tuple[mapping.KernelRow, bool, float]], config: Any) -> np.ndarray:
    return np.array([cost.kernel_cost(row, config, resident).latency_s for row, resident, _ in points])


def fit_efficiencies(points: dict[str, list[tuple[mapping.KernelRow, bool, float]]], config: Any) -> dict[str, float]:
    """Per-class efficiency and the shared work_half_macs minimizing squared log error.

    ``points[cls]`` holds (kernel row, weights resident, measured seconds per layer). A grid
    search (work_half_macs on a log grid, each class's efficiency on a 1% grid) keeps
    the fit deterministic and dependency-free.
    """
    effs = np.linspace(0.01, 1.0, 100)
    best: tuple[float, dict[str, float]] | None = None
    for half in [0.0, *np.logspace(1, 5, 17)]:
        total, chosen = 0.0, {"work_half_macs": float(half)}
        for cls, pts in points.items():
            measured = np.log([t for _, _, t in pts])
            errors = [np.sum((np.log(predict(pts, dataclasses.replace(config, work_half_macs=float(half), **{f"eff_{cls}": float(e)}))) - measured) ** 2)
                      for e in effs]
            i = int(np.argmin(errors))
            total += errors[i]
            chosen[f"eff_{cls}"] = round(float(effs[i]), 3)
        if best is None or total < best[0]:
            best = (total, chosen)
    return best[1]


def measure(quick: bool = False, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Calibrate on this machine; returns a value for every Config field."""
    min_time = 0.05 if quick else 0.2
    facts = _cpu_facts()
    values: dict[str, Any] = dataclasses.asdict(hwconfig.MobileCpuConfig())
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    values.update(device=f"host: {facts['model']}", calibration=f"measured {stamp} ({'quick' if quick else 'full'})",
                  simd_bits=facts["simd_bits"], fma_units=facts["fma_units"], cache_bytes=facts["cache_bytes"],
                  eff_elementwise=1.0, fuse_residual_add=facts["avx2"])
    tiny = {kind: mb.per_layer(mb.tiny_chain, 10, 60, min_time, kind=kind) for kind in ("Relu", "MaxPool", "conv", "gemm")}
    values["overhead_s"] = float(np.mean(list(tiny.values())))
    values["invoke_overhead_s"] = max(mb.time_graph(*mb.tiny_chain(1, "Relu"), min_time_s=min_time) - tiny["Relu"], 0.0)
    elements = 16 << 20  # 192 MB moved: beyond a server last-level cache (~100 MB) even in a quick calibration
    values["dram_bandwidth"] = 12 * elements / (mb.time_graph(*mb.add_graph(elements), min_time_s=min_time) - values["invoke_overhead_s"])
    n = 64 * 56 * 56
    relu = mb.per_layer(mb.elementwise_chain, 2, 6, min_time, op="Relu")
    values["cache_bandwidth"] = 8 * n / max(relu - values["overhead_s"], 1e-9)
    values["cache_bytes"] = _effective_cache(facts["cache_bytes"], values["invoke_overhead_s"], min_time, quick)
    # Reading 256 MB of weights takes ~1.2 GB at peak and seconds: a full calibration only (a
    # quick one keeps the cache as the last level: large weights priced at DRAM speed, as before).
    llc, stream = (values["cache_bytes"], 0.0) if quick else _last_level_cache(values["invoke_overhead_s"], min_time)
    values["llc_bytes"], values["weight_stream_bandwidth"] = max(llc, values["cache_bytes"]), stream
    log(f"overhead {values['overhead_s'] * 1e6:.2f} us/op ({', '.join(f'{k} {v * 1e6:.2f}' for k, v in tiny.items())}), "
        f"invoke {values['invoke_overhead_s'] * 1e6:.2f} us, DRAM {values['dram_bandwidth'] / 1e9:.1f} GB/s "
        f"(weights streamed by a MatMul: {stream / 1e9:.1f}), "
        f"cache {values['cache_bandwidth'] / 1e9:.1f} GB/s (effective size {values['cache_bytes'] / 2**20:.0f} MB, "
        f"sysfs {facts['cache_bytes'] / 2**20:.0f} MB; last level {values['llc_bytes'] / 2**20:.0f} MB)")

    config = hwconfig.from_values(values)
    points: dict[str, list] = {}
    best_rate = 0.0
    for cls, build, kwargs in QUICK_POINTS if quick else FULL_POINTS:
        row, resident = _row(build, kwargs, config)
        seconds = mb.per_layer(build, *_chain_lengths(row.macs), min_time, **kwargs)
        points.setdefault(cls, []).append((row, resident, seconds))
        if cls in ("conv", "pointwise") or (cls == "gemm" and kwargs["rows"] > 1):
            best_rate = max(best_rate, row.macs / seconds)
        log(f"{cls:9s} {kwargs}: {row.macs / 1e6:8.2f} MMAC, {seconds * 1e6:9.1f} us, {row.macs / seconds / 1e9:6.2f} GMAC/s")
    values["frequency_hz"] = best_rate / (config.lanes(32) * config.fma_units)
    config = hwconfig.from_values(values)
    values.update(fit_efficiencies(points, config))
    config = hwconfig.from_values(values)
    int8 = _fit_int8(config, min_time)
    if int8 is not None:
        values["eff_int8"] = int8

    cycles = {}
    for op in mb.ELEMENTWISE:
        seconds = relu if op == "Relu" else mb.per_layer(mb.elementwise_chain, 2, 6, min_time, op=op)
        cycles[op] = round(max(seconds - values["overhead_s"], 0.0) * values["frequency_hz"] / n, 2)
    values["op_cycles"] = " ".join(f"{op}={c:g}" for op, c in cycles.items())
    values["transcendental_ops"] = round(max(1.0, cycles["Sigmoid"] * config.lanes(32) * values["eff_elementwise"] - 1.0), 2)
    log(f"effective clock {values['frequency_hz'] / 1e9:.2f} GHz (cpuinfo {facts['mhz']:.0f} MHz), fitted "
        + ", ".join(f"{k}={values[k]:.3g}" for k in [*(f"eff_{c}" for c in EFF_CLASSES), "work_half_macs", "eff_int8", "transcendental_ops"]))
    log(f"cycles per element: {values['op_cycles']}")
    before = mb.reference_conv_s()
    values["kernel_fits"] = fit_kernels(hwconfig.from_values(values), quick, log).to_json()
    after = mb.reference_conv_s()
    values["reference_conv_s"] = (before + after) / 2
    log(f"reference conv kernel: {before * 1e6:.0f} us before the kernel samples, {after * 1e6:.0f} us after")
    hwconfig.from_values(values)  # validates
    return values


def kernel_samples(config: Any, counts: dict[str, int], seed: int = 0, min_time_s: float = 0.1,
                   log: Callable[[str], None] = lambda line: None) -> tuple[dict[str, list], list[tuple[int, float, float]], int]:
    """Profile sampled synthetic graphs: (features, seconds) by kernel kind,
    (kernels, run - kernel sum, run) per graph, and how many profiled onnxruntime kernels no detected kernel matched."""
    samples: dict[str, list] = {}
    results = []
    for _, model, shape in synthetic_graphs.sample_graphs(counts, seed):
        try:
            results.append(kernel_bench.profile_graph(model, shape, config, min_time_s=min_time_s))
        except Exception as e:  # noqa: BLE001 - a sampled graph onnxruntime refuses: skip it, say so
            log(f"skipped a sampled graph: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    excess = _profiling_excess(results, config)
    gaps, unmatched = [], 0
    for result in results:
        apportioned = kernel_bench.apportion(result, config, excess)
        for kind, features, seconds in apportioned:
            if features and seconds > 0:
                samples.setdefault(kind, []).append((features, seconds))
                if kind.startswith("eltwise:"):
                    samples.setdefault("eltwise:*", []).append((features, seconds))
        if result["kernels"]:
            gaps.append((result["kernels"], result["run_s"] - sum(s for *_, s in apportioned), result["run_s"]))
        unmatched += len(result["unmatched"])
    log(f"kernel samples: {sum(len(v) for k, v in samples.items() if k != 'eltwise:*')} kernels of {len(samples)} kinds "
        f"from {sum(counts.values())} synthetic graphs ({unmatched} onnxruntime kernels not matched by detection); "
        f"profiling adds {excess * 1e6:.2f} us per kernel (median over the graphs of small kernels), taken off each")
    return samples, gaps, unmatched


# Graphs whose kernels take less than this on average show profiling's per-kernel excess; in
# graphs of larger kernels it is lost in their run-to-run noise (a few percent of milliseconds).
SMALL_KERNEL_S = 20e-6


def _profiling_excess(results: list[dict[str, Any]], config: Any) -> float:
    """What profiling adds to each kernel: the median excess (kernel_bench.profiling_excess) over
    the graphs of small kernels (all graphs when fewer than 3 are), never negative."""
    small = [kernel_bench.profiling_excess(r, config) for r in results if r["kernels"] and r["run_s"] / r["kernels"] < SMALL_KERNEL_S]
    every = [e for e in (kernel_bench.profiling_excess(r, config) for r in results) if e is not None]
    chosen = small if len(small) >= 3 else every
    return max(float(np.median(chosen)), 0.0) if chosen else 0.0


def fit_kernels(config: Any, quick: bool = False, log: Callable[[str], None] = lambda line: None, seed: int = 0) -> kernel_fit.KernelFits:
    """Per-kernel fits from synthetic graphs (never the evaluated models). The time between
    kernels: median over small graphs of (run time - sum of kernel times - invoke) / kernels,
    with invoke_overhead_s as measured for the roofline."""
    samples, _, _ = kernel_samples(config, QUICK_KERNEL_GRAPHS if quick else FULL_KERNEL_GRAPHS, seed,
                                      0.05 if quick else 0.1, log)
    fits = kernel_fit.fit_all(samples, 0.0, config.invoke_overhead_s)
    fits.scale, fits.per_kernel_s = compose(fits, config, QUICK_NETWORKS if quick else FULL_NETWORKS, seed, log)
    errors = [abs(e) for errs in kernel_fit.relative_errors(fits, samples).values() for e in errs]
    log(f"per-kernel fits: {len(fits.kinds)} kinds, in-sample median |error| {np.median(errors) if errors else 0:.1%}, "
        f"in a network: x{fits.scale:.3f} + {fits.per_kernel_s * 1e6:.2f} us/kernel, invoke {fits.invoke_s * 1e6:.1f} us")
    return fits


def compose(fits: kernel_fit.KernelFits, config: Any, count: int, seed: int = 0,
            log: Callable[[str], None] = lambda line: None, fit_scale: bool = False) -> tuple[float, float]:
    """(scale, per-kernel seconds) composing fitted kernel times into whole synthetic networks'
    measured CPU times (kernel_fit's docstring); (1, 0) without networks.

    ``fit_scale=False`` (the default) keeps scale = 1 and fits the per-kernel term alone, by
    plain least squares: kernel times are already apportioned from CPU-time medians
    (kernel_bench), on the footing of a measured model, and what a kernel in a network costs
    beyond (or below: kernel_fit's docstring) its fit is one constant. Constrained to be
    non-negative it stayed at 0 while the synthetic networks ran 4.6% (median) faster than
    predicted; free, it came out at -0.53 us (2026-11-30). Fitting the scale too gave 0.87-0.90
    and made the accuracy benchmark's real models 13-19% too fast, so it is an option, not
    the default."""
    rows = []
    for _, model, shape in synthetic_graphs.sample_graphs({"network": count}, seed + 1):
        lowered = mapping.map_model(ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(model)), config)
        found = kernels.detect(lowered, config)
        predicted = sum(fits.predict(k.kind, k.features) or 0.0 for k in found)
        measured = kernel_bench.run_time(model, shape) - fits.invoke_s
        if measured > 0 and predicted > 0:
            rows.append((predicted, sum(k.kind not in kernel_fit.IN_PLACE_KINDS for k in found), measured))
    if len(rows) < 2:
        return 1.0, 0.0
    measured = np.array([m for *_, m in rows])
    if fit_scale:
        a = np.array([[p, n] for p, n, _ in rows]) / measured[:, None]
        scale, per_kernel = kernel_fit.nnls(a, np.ones(len(rows)))
    else:
        scale = 1.0
        per_kernel = np.linalg.lstsq(np.array([[n] for _, n, _ in rows]) / measured[:, None],
                                     1.0 - np.array([p for p, _, _ in rows]) / measured, rcond=None)[0][0]
    ratios = [m / (scale * p + per_kernel * n) - 1 for p, n, m in rows]
    log(f"composition on {len(rows)} synthetic networks: median |error| {np.median(np.abs(ratios)):.1%} after the fit")
    return float(scale), float(per_kernel)


def _effective_cache(sysfs_bytes: int, invoke_s: float, min_time: float, quick: bool) -> int:
    """Largest footprint of weights that one batch-1 MatMul chain still reads at cache speed."""
    sizes = [1, 4, 16, 32] if quick else [1, 2, 4, 8, 12, 16, 24, 32]
    rates = []
    for megabytes in sizes:
        seconds = mb.time_graph(*mb.matmul_chain(megabytes, 1, 512), min_time_s=min_time / 2) - invoke_s
        rates.append(megabytes * 2**20 / max(seconds, 1e-9))
    best = max(rates)
    fits = [size for size, rate in zip(sizes, rates) if rate >= 0.7 * best]
    return int(min(max(fits) * 2**20, sysfs_bytes or 2**62))


def _last_level_cache(invoke_s: float, min_time: float) -> tuple[int, float]:
    """(largest footprint of weights that a batch-1 MatMul chain still reads faster than from
    DRAM: at >= 1.25x the rate of a footprint far beyond any cache (256 MB); that 256 MB rate).
    On the 2-core Xeon VM (2026-11-30): 21-23 GB/s up to 64 MB, 19.5 at 96 MB, 13.2-13.8 from
    128 MB on. The 256 MB rate is what a matrix-vector kernel streams its weights from DRAM at:
    11.9-12.2 GB/s there while an Add of 64 MB tensors measured 13.6-14.6 (19:50 UTC), and
    AlexNet's three fully connected layers read theirs at 11.0 under onnxruntime's profiler."""
    sizes = [16, 32, 64, 96, 128, 192]
    dram = 256 * 2**20 / max(mb.time_graph(*mb.matmul_chain(256, 1, 512), min_time_s=min_time / 2) - invoke_s, 1e-9)
    cached = [0]
    for megabytes in sizes:
        seconds = mb.time_graph(*mb.matmul_chain(megabytes, 1, 512), min_time_s=min_time / 2) - invoke_s
        if megabytes * 2**20 / max(seconds, 1e-9) >= 1.25 * dram:
            cached.append(megabytes)
    return max(cached) * 2**20, dram


def _fit_int8(config: Any, min_time: float) -> float | None:
    try:
        kwargs = {"channels": 128, "size": 28}
        row, resident = _row(mb.qlinearconv_chain, kwargs, config)
        seconds = mb.per_layer(mb.qlinearconv_chain, 1, 3, min_time, **kwargs)
    except Exception:  # noqa: BLE001 - an onnxruntime build without int8 conv kernels: keep the [U] default
        return None
    base = dataclasses.replace(config, eff_int8=1.0)
    needed = row.macs / max(seconds - config.overhead_s, 1e-9)
    return round(min(1.5, needed / (base.peak_macs_per_s("int8") * cost.efficiency(row, base))), 3)


def host_profile() -> hwconfig.MobileCpuConfig:
    """The ``host`` profile: the cached calibration, else a quick one (cached for next time)."""
    cached = hwconfig.cached_host()
    if cached is not None:
        return cached
    values = measure(quick=True)
    write_cache(values)
    return hwconfig.from_values(values)


def write_cache(values: dict[str, Any]) -> pathlib.Path | None:
    path = hwconfig.host_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(hwconfig.to_toml(values, toml_comments()))
        os.replace(tmp, path)
        return path
    except OSError:
        return None  # a read-only home: the profile still works, it just recalibrates next time


def run(output: str | os.PathLike | None) -> str:
    """Full calibration; writes ``output`` (if given) and the host cache; returns the summary."""
    lines: list[str] = []
    values = measure(quick=False, log=lines.append)
    text = hwconfig.to_toml(values, toml_comments())
    if output is not None:
        out = pathlib.Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        lines.append(f"wrote {out} (use: --config {out})")
    cache = write_cache(values)
    if cache is not None:
        lines.append(f"cached as the `host` profile: {cache} (use: --set profile=host)")
    return "\n".join(lines) + "\n\n" + text
