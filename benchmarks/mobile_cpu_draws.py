"""How much does the `host` predictor's accuracy depend on which synthetic graphs calibration drew?

Calibration fits the per-kernel predictors on randomly sampled synthetic graphs (seeded:
``calibrate.fit_kernels(seed=...)``). This benchmark measures the 21 models of
``mobile_cpu_accuracy.py`` once before and once after the draws (their mean is the measured
figure, as there), then, for each seed, samples and profiles a full set of synthetic graphs,
fits the kernels, and counts the models estimated within +-10%. The other constants (overheads,
bandwidths, caches) are the cached host profile's. Every draw is fitted only on synthetic
graphs; the spread between draws is the calibration's own sampling error, apart from this
machine's drift while the draws run (the reference conv kernel is printed for each).

    .venv/bin/python benchmarks/mobile_cpu_draws.py [--seeds 0,1,2,3] [--only NAME,...]

Prints, never asserts. About 2.5 minutes per draw on the 2-core build machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import tempfile

import numpy as np
from nncc.backends.mobile_cpu import MobileCpuTarget, calibrate, microbench
from nncc.driver import CompileOptions, compile_model

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from mobile_cpu_accuracy import measure, model_paths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated calibration seeds")
    parser.add_argument("--only", default="", help="comma-separated model names")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    base = MobileCpuTarget.configure(sets={"profile": "host"}).config
    print(f"host profile constants: {base.device}, {base.calibration}; kernel fits redrawn for seeds {seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = model_paths(pathlib.Path(tmp), only)
        before = {name: measure(path)[0] for name, path in paths}
        estimates: dict[int, dict[str, float]] = {}
        for seed in seeds:
            reference = microbench.reference_conv_s()
            fits = calibrate.fit_kernels(base, seed=seed)
            target = MobileCpuTarget(dataclasses.replace(base, kernel_fits=fits.to_json()))
            estimates[seed] = {name: compile_model(path, target, [], CompileOptions(verify_samples=0)).report["totals"]["latency_s"]
                               for name, path in paths}
            print(f"  seed {seed}: drawn and fitted (reference conv kernel {reference * 1e6:.0f} us before it)", flush=True)
        after = {name: measure(path)[0] for name, path in paths}
    measured = {name: (before[name] + after[name]) / 2 for name in before}
    print(f"\nmodels measured before and after the draws; moved by {min(after[n] / before[n] - 1 for n in before):+.1%} "
          f"to {max(after[n] / before[n] - 1 for n in before):+.1%}")
    counts = []
    for seed, est in estimates.items():
        errors = {name: est[name] / measured[name] - 1 for name in measured}
        counts.append(sum(abs(e) <= 0.10 for e in errors.values()))
        misses = ", ".join(f"{name} {e:+.1%}" for name, e in errors.items() if abs(e) > 0.10)
        print(f"seed {seed}: {counts[-1]}/{len(errors)} within ±10%, mean |error| "
              f"{np.mean(np.abs(list(errors.values()))):.1%}; outside: {misses or 'none'}")
    print(f"\nwithin ±10% over {len(counts)} draws: {min(counts)} to {max(counts)} of {len(measured)}, mean {np.mean(counts):.1f}")
    for name in measured:
        errs = [estimates[s][name] / measured[name] - 1 for s in estimates]
        if any(abs(e) > 0.10 for e in errs):
            print(f"  {name}: {sum(abs(e) <= 0.10 for e in errs)}/{len(errs)} draws within ±10% "
                  f"(errors {min(errs):+.1%} to {max(errs):+.1%})")


if __name__ == "__main__":
    main()
