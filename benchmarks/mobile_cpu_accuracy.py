"""How close is the mobile-cpu `host` estimate to measured onnxruntime latency?

For every zoo model (``nncc.models.list_models()``, exported to a temp folder) and the
nine light models shipped in the onnx wheel, two host-profile estimates from one run:
"roofline" (the profile without its per-kernel fits, ``kernel_fits = ""``) and "kernels"
(the profile as calibrated: onnxruntime kernels detected and costed by per-kernel fits,
nn-Meter style; fitted on synthetic kernels only, none of these models). Both are compared
with the measured onnxruntime latency of the same model (one thread, random input, 3
warm-up runs, then at least 20 runs and 1 s):

    measured = median over runs of time.thread_time() around sess.run()

a one-thread session runs its kernels in the calling thread, so this is its CPU time,
robust to the process being descheduled by other load on the machine; the median wall time
is printed beside it. With ``--calibrate`` every model is measured before and after the
calibration and compared with the mean of the two (this VM's speed moved by up to 10%
within minutes; the mean brackets the calibration); the move between the two is shown. Prints a table and the share of models within +-10% (nn-Meter's bar:
99% within +-10% on its own device) and +-25%, and the mean |error|; and one of calibrate's
conv kernels timed before and after the models, for how much the machine's speed moved
meanwhile, against the same kernel's time recorded by the calibration (with, as a diagnostic
only, the share within +-10% once the estimates are scaled by that drift). Prints, never
asserts.

    .venv/bin/python benchmarks/mobile_cpu_accuracy.py [--calibrate] [--quick] [--only NAME,...]

``--calibrate`` runs a full ``nncc calibrate mobile-cpu`` first (refreshing the cached
host profile); otherwise the cached profile is used (or a quick calibration is made).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from nncc import runtime
from nncc.backends.mobile_cpu import MobileCpuTarget, microbench
from nncc.driver import CompileOptions, compile_model
from nncc.loading import load_model
from nncc.render import fmt_count, fmt_seconds, md_table

LIGHT_DIR = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def model_paths(tmp: pathlib.Path, only: set[str] | None) -> list[tuple[str, pathlib.Path]]:
    paths = []
    try:
        from nncc import models

        for entry in models.list_models():
            if only and entry.name not in only:
                continue
            try:
                paths.append((entry.name, models.export(entry.name, tmp / f"{entry.name}.onnx")))
            except Exception as e:  # noqa: BLE001 - a zoo model still being written must not stop the rest
                print(f"skip zoo model {entry.name}: {type(e).__name__}: {e}", file=sys.stderr)
    except ImportError as e:
        print(f"no model zoo: {e}", file=sys.stderr)
    for path in sorted(LIGHT_DIR.glob("*.onnx")):
        if not only or path.stem in only:
            paths.append((path.stem, path))
    return paths


def pixel2_check(tmp: pathlib.Path) -> None:
    """The pixel2 profile against the published figure: LPIRC 2018's winner, a quantized
    MobileNet V2 on one Snapdragon 835 core, 27-28 ms (docs/sources.md, "Mobile CPU"; its width and
    resolution are [U], so 1.0 / 224 is assumed). The zoo model is quantized here with
    onnxruntime's static QDQ quantizer (int8 weights, uint8 activations, random calibration)."""
    try:
        import numpy as np
        from nncc import models
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        fp32 = models.export("mobilenet_v2", tmp / "mobilenet_v2.onnx")

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.left = 4

            def get_next(self):
                self.left -= 1
                return {"input": np.random.default_rng(self.left).random((1, 3, 224, 224), dtype=np.float32)} if self.left >= 0 else None

        quant_pre_process(str(fp32), str(tmp / "pre.onnx"), skip_symbolic_shape=True)
        quantize_static(str(tmp / "pre.onnx"), str(tmp / "mobilenet_v2_int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    except Exception as e:  # noqa: BLE001
        print(f"pixel2 check skipped: {type(e).__name__}: {e}")
        return
    rows = []
    for name, path in [("mobilenet_v2 fp32", fp32), ("mobilenet_v2 int8 (QDQ)", tmp / "mobilenet_v2_int8.onnx")]:
        result = compile_model(path, MobileCpuTarget(), [], CompileOptions(verify_samples=0))
        rows.append([name, fmt_seconds(result.report["totals"]["latency_s"]), "27 ms (arXiv 1903.06791), 28 ms (Qualcomm write-up)"
                     if "int8" in name else "", len(result.report["unsupported"])])
    print("\npixel2 profile (default) vs the published LPIRC 2018 figure:\n")
    print(md_table(["model", "pixel2 estimate", "published (quantized, 1 big core)", "unsupported"], rows))


def measure(path: pathlib.Path, min_runs: int = 20, min_time_s: float = 1.0) -> tuple[float, float]:
    """(median thread CPU time, median wall time) of one single-thread onnxruntime run."""
    model = load_model(path)
    sess = runtime.session(model, threads=1, where=path)
    feed = runtime.sample_inputs(model, 1, seed=1)[0]
    for _ in range(3):
        sess.run(None, feed)
    cpu, wall = [], []
    start = time.perf_counter()
    while len(cpu) < min_runs or time.perf_counter() - start < min_time_s:
        w, t = time.perf_counter(), time.thread_time()
        sess.run(None, feed)
        cpu.append(time.thread_time() - t)
        wall.append(time.perf_counter() - w)
    return float(np.median(cpu)), float(np.median(wall))


def summary(label: str, errors: list[float]) -> str:
    n = len(errors)
    within = sum(abs(e) <= 0.10 for e in errors)
    within25 = sum(abs(e) <= 0.25 for e in errors)
    return (f"{label}: {within}/{n} models ({within / n:.0%}) within ±10%, {within25}/{n} within ±25%, "
            f"mean |error| {sum(abs(e) for e in errors) / n:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="run a full calibration first (the models are then "
                        "measured before and after it, and compared with the mean of the two)")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--no-pixel2", action="store_true", help="skip the pixel2 check against the LPIRC figure")
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    with tempfile.TemporaryDirectory() as tmp:
        paths = model_paths(pathlib.Path(tmp), only)
        first: dict[str, tuple[float, float]] = {}
        if args.calibrate:
            # The models measured on both sides of the calibration, in the same order: this
            # machine's speed moves by up to 10% within minutes, and the mean of the two
            # brackets the calibration instead of following it by several minutes.
            first = {name: measure(path) for name, path in paths}
            print(MobileCpuTarget.calibrate(None).split("\n\n")[0])
        compare(paths, first)
    if not args.no_pixel2:
        with tempfile.TemporaryDirectory() as tmp:
            pixel2_check(pathlib.Path(tmp))


def compare(paths: list[tuple[str, pathlib.Path]], first: dict[str, tuple[float, float]]) -> None:
    """Estimate and measure every model; ``first``: times measured before the calibration."""
    target = MobileCpuTarget.configure(sets={"profile": "host"})
    cfg = target.config
    roofline = MobileCpuTarget(dataclasses.replace(cfg, kernel_fits=""))
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"host profile: {cfg.device}, {cfg.calibration}, per-kernel fits: {'yes' if cfg.kernel_fits else 'no'}")
    print("measured: median over >= 20 runs (>= 1 s) of time.thread_time() around sess.run() (CPU time of the one "
          "onnxruntime thread); the wall-time median is shown beside it"
          + ("; with --calibrate, the mean of the medians before and after the calibration" if first else ""))
    reference_before = microbench.reference_conv_s()
    rows, errors, errors_roof, errors_wall, errors_after = [], [], [], [], []
    for name, path in paths:
        start = time.perf_counter()
        try:
            result = compile_model(path, target, [], CompileOptions(verify_samples=0))
            before = compile_model(path, roofline, [], CompileOptions(verify_samples=0))
            after_cpu, after_wall = measure(path)
        except Exception as e:  # noqa: BLE001
            print(f"skip {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        first_cpu, first_wall = first.get(name, (after_cpu, after_wall))
        cpu, wall = (first_cpu + after_cpu) / 2, (first_wall + after_wall) / 2
        estimate = result.report["totals"]["latency_s"]
        estimate_roof = before.report["totals"]["latency_s"]
        error, error_roof = estimate / cpu - 1, estimate_roof / cpu - 1
        errors.append(error)
        errors_roof.append(error_roof)
        errors_wall.append(estimate / wall - 1)
        errors_after.append(estimate / after_cpu - 1)
        moved = [f"{after_cpu / first_cpu - 1:+.1%}"] if first else []
        rows.append([name, fmt_count(result.report["totals"]["macs"]), fmt_seconds(cpu), *moved, fmt_seconds(wall),
                     fmt_seconds(estimate_roof), f"{error_roof:+.1%}", fmt_seconds(estimate), f"{error:+.1%}",
                     "yes" if abs(error) <= 0.10 else "no", len(result.report["unsupported"])])
        print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    moved_header = ["after / before calibration"] if first else []
    print(md_table(["model", "MACs", "measured (CPU time, median)", *moved_header, "wall median", "roofline", "error",
                    "kernels (fits)", "error", "within ±10%", "unsupported"], rows))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (the CPU-time median is robust to it; the wall median is not)")
    reference_after = microbench.reference_conv_s()
    print(f"reference conv kernel (64 channels, 56 x 56, 3 x 3): {reference_before * 1e6:.0f} us before the models, "
          f"{reference_after * 1e6:.0f} us after ({reference_after / reference_before - 1:+.1%}): how far this machine's "
          "speed moved while they were measured")
    drift = (reference_before + reference_after) / 2 / cfg.reference_conv_s - 1 if cfg.reference_conv_s else None
    if drift is not None:
        print(f"the same kernel took {cfg.reference_conv_s * 1e6:.0f} us while the profile was calibrated: this machine ran "
              f"{drift:+.1%} {'slower' if drift > 0 else 'faster'} while the models were measured")
    if errors:
        print("\n" + summary("before (roofline)", errors_roof))
        print(summary("after (per-kernel fits)", errors) + " (nn-Meter: 99% on its own device)")
        print(summary("after, against the wall-time median instead", errors_wall))
        if first:
            print(summary("after, against the times measured after the calibration only", errors_after))
        if drift is not None:  # a diagnostic of how much of the error is the machine's drift, not the estimate
            print(summary("diagnostic only, the estimates scaled by that drift", [(1 + e) * (1 + drift) - 1 for e in errors]))


if __name__ == "__main__":
    main()
