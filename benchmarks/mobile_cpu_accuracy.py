"""How close is the mobile-cpu `host` estimate to measured onnxruntime latency?

For every zoo model (``nncc.models.list_models()``, exported to a temp folder) and the
nine light models shipped in the onnx wheel: the host-profile estimate against the
median single-thread onnxruntime latency of the same compiled model (what
``nncc compile --measure`` reports). Prints a table and the share of models within
+-10% (nn-Meter's bar: 99% within +-10% on its own device). Prints, never asserts.

    .venv/bin/python benchmarks/mobile_cpu_accuracy.py [--calibrate] [--quick] [--only NAME,...]

``--calibrate`` runs a full ``nncc calibrate mobile-cpu`` first (refreshing the cached
host profile); otherwise the cached profile is used (or a quick calibration is made).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import onnx

from nncc.backends.mobile_cpu import MobileCpuTarget
from nncc.driver import CompileOptions, compile_model
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
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from nncc import models

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="run a full calibration first")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--no-pixel2", action="store_true", help="skip the pixel2 check against the LPIRC figure")
    args = parser.parse_args()
    if args.calibrate:
        print(MobileCpuTarget.calibrate(None).split("\n\n")[0])
    target = MobileCpuTarget.configure(sets={"profile": "host"})
    cfg = target.config
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"host profile: {cfg.device}, {cfg.calibration}")
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    rows, errors, errors_min = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in model_paths(pathlib.Path(tmp), only):
            start = time.perf_counter()
            try:
                result = compile_model(path, target, [], CompileOptions(verify_samples=0, measure=True))
            except Exception as e:  # noqa: BLE001
                print(f"skip {name}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            estimate = result.report["totals"]["latency_s"]
            measured = result.report["measured"]["median_s"]
            error = estimate / measured - 1
            errors.append(error)
            error_min = estimate / result.report["measured"]["min_s"] - 1
            errors_min.append(error_min)
            bounds = result.report["totals"].get("layers_by_bound", {})
            rows.append([name, fmt_count(result.report["totals"]["macs"]), fmt_seconds(estimate), fmt_seconds(measured),
                         f"{error:+.1%}", "yes" if abs(error) <= 0.10 else "no", f"{error_min:+.1%}",
                         len(result.report["unsupported"]), " ".join(f"{k}:{v}" for k, v in bounds.items())])
            print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(md_table(["model", "MACs", "estimate", "measured (ORT 1 thread, median)", "error", "within ±10%", "error vs min run",
                    "unsupported", "layers by bound"], rows))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other work on the machine inflates the measured side)")
    if errors:
        within = sum(abs(e) <= 0.10 for e in errors)
        within25 = sum(abs(e) <= 0.25 for e in errors)
        mean_abs = sum(abs(e) for e in errors) / len(errors)
        print(f"\n{within}/{len(errors)} models ({within / len(errors):.0%}) within ±10% "
              f"(nn-Meter: 99% on its own device); {within25}/{len(errors)} within ±25%; mean |error| {mean_abs:.1%}")
        within_min = sum(abs(e) <= 0.10 for e in errors_min)
        print(f"against the fastest run instead of the median (less exposed to other load on the machine): "
              f"{within_min}/{len(errors_min)} ({within_min / len(errors_min):.0%}) within ±10%, "
              f"mean |error| {sum(abs(e) for e in errors_min) / len(errors_min):.1%}")
    if not args.no_pixel2:
        with tempfile.TemporaryDirectory() as tmp:
            pixel2_check(pathlib.Path(tmp))


if __name__ == "__main__":
    main()
