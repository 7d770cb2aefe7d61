"""nncc's own speed against TVM's build, and TVM's latency against the mobile-cpu estimate.

On light_resnet50 from the onnx wheel, in one run:
1. ``nncc compile MODEL -t T --verify 0`` for every target, each in its own process: wall time
   and peak resident memory (against the goal 1.5 x weight bytes + 300 MB); then each target's
   ``lower`` + ``estimate`` alone, per node of the model it lowers (the goal: at most 1 ms);
2. ``nncc compare MODEL --targets all --set mobile-cpu.profile=host`` (the CLI, as CI runs it),
   by default (one worker per usable CPU) and with ``--jobs 1``; and, like for like with TVM's
   build, both timed after their imports in fresh processes (onnxruntime, which nncc imports on
   its first session, among the imports, as TVM's ONNX frontend is);
3. the same model built by TVM Relax for ``{"kind": "llvm"}`` through the code path of
   ``nncc compile --emit tvm`` (``tvm_emit.build``): the build time, and compare / build (the
   goal: at most 0.5); then its latency in the Relax VM on one thread;
4. onnxruntime on one thread (what ``nncc compile --measure`` reports);
5. ``nncc compare`` on a ResNet-50 four times deeper (bottleneck blocks 12-16-24-12, seeded
   weights) against the zoo's ResNet-50: the ratio of times beside the ratio of nodes (linear growth
   keeps the two close; both built by the zoo, so their layers differ only in number); and the
   zoo's ResNet-50 timed after imports like 2., since light_resnet50's weights are one constant
   per tensor (ConstantOfShape), which makes reram's ADC search and ucnn's statistics trivial.
Untuned TVM (no MetaSchedule tuning, default schedules) is expected to run far slower.
Prints figures, never asserts. ``--model PATH`` times another model; ``--skip-deep`` skips 5.

    .venv/bin/python benchmarks/compare_tvm.py [--model PATH] [--runs 3] [--skip-deep]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TVM_NUM_THREADS", "1")  # one core, like onnxruntime here and the Pixel 2 profile

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from nncc import analysis, models, runtime  # noqa: E402
from nncc.backends.mobile_cpu import tvm_emit  # noqa: E402
from nncc.loading import load_model  # noqa: E402
from nncc.render import fmt_seconds, md_table  # noqa: E402

LIGHT_RESNET50 = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
NNCC = [sys.executable, "-c", "import sys; from nncc.cli import main; sys.exit(main())"]
TARGETS = ["mobile-cpu", "reram", "sparse-tc", "ucnn", "hypar", "truenorth"]
MB = 1 << 20


def peak_rss_mb(args: list[str]) -> tuple[float, float, int, str]:
    """Like run_measured, with the child's own peak RSS (os.wait4 gives one child's rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*NNCC, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode, (err.strip().splitlines() or [""])[-1]


def per_target(model_path: pathlib.Path, tmp: pathlib.Path) -> None:
    # As loaded: the light models compute their weights with ConstantOfShape nodes.
    weight_mb = analysis.model_summary(load_model(model_path))["weight_bytes"] / MB
    rows = []
    for target in TARGETS:
        wall, rss, code, last = peak_rss_mb(["compile", str(model_path), "-t", target, "--verify", "0",
                                             "--format", "json", "-o", str(tmp / target)])
        rows.append([target, f"{wall:.1f} s", f"{rss:.0f} MB", "ok" if code == 0 else f"exit {code}: {last[:70]}"])
    print(md_table(["target", "compile (own process)", "peak RSS", "outcome"], rows))
    print(f"weights {weight_mb:.0f} MB: memory goal 1.5 x weights + 300 MB = {1.5 * weight_mb + 300:.0f} MB")


def lower_per_node(model_path: pathlib.Path) -> None:
    """Each target's ``lower`` + ``estimate`` alone (the goal: at most 1 ms per node), timed in
    this process on the model its own legalization gives (that part untimed); the first call,
    as a compile makes it."""
    from nncc.driver import costed_copy
    from nncc.errors import NnccError
    from nncc.pass_sharing import SharedPasses
    from nncc.pipeline import PassContext
    from nncc.registry import TARGETS as REGISTRY

    loaded = load_model(model_path)
    shared = SharedPasses(loaded, model_path)
    rows = []
    for name in TARGETS:
        target = REGISTRY.get(name).configure(None, {"profile": "host"} if name == "mobile-cpu" else {})
        model, _ = shared.run(list(target.legalize()), PassContext(target=name, crossbar=target.crossbar_geometry()))
        costed, _ = costed_copy(model, model_path)
        nodes = sum(1 for _ in costed.graph)
        start = time.perf_counter()
        try:
            target.estimate(target.lower(costed))
            outcome = "ok"
        except NnccError as e:
            outcome = f"refused: {e.what[:50]}"
        took = time.perf_counter() - start
        rows.append([name, f"{took:.2f} s", str(nodes), f"{took / nodes * 1e3:.2f} ms", outcome])
    print(md_table(["target", "lower + estimate", "nodes", "per node", "outcome"], rows))


def deeper_resnet50(path: pathlib.Path) -> pathlib.Path:
    """ResNet-50 with four times the bottleneck blocks (12-16-24-12), seeded weights."""
    import torch

    from nncc.models._export import export_module
    from nncc.models.resnet import Bottleneck, ResNet

    torch.manual_seed(0)
    module = ResNet(Bottleneck, (12, 16, 24, 12)).eval()
    return export_module(module, {"input": torch.randn(1, 3, 224, 224)}, path)


def default_workers(model_path: pathlib.Path) -> int:
    """The workers ``nncc compare --targets all`` takes without --jobs on this machine, now."""
    from nncc.compare_jobs import default_jobs

    return default_jobs(len(TARGETS), analysis.model_summary(load_model(model_path))["weight_bytes"])


def timed_compare(model_path: pathlib.Path, out: pathlib.Path | None = None, jobs: int | None = None) -> tuple[float, str, int]:
    """``nncc compare`` as the CLI runs it; ``jobs`` None: its default workers."""
    args = ["compare", str(model_path), "--targets", "all", "--set", "mobile-cpu.profile=host",
            *(["--jobs", str(jobs)] if jobs else [])]
    start = time.perf_counter()
    proc = subprocess.run([*NNCC, *args, *(["--json", str(out)] if out else [])], capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc.stdout.strip() or proc.stderr.strip(), proc.returncode


# Both tools timed alike, after their imports, in a fresh process: nncc's compare as the CLI
# runs it, TVM's build as tvm_emit.build runs it (TVM's own import, ~2 s, and its ONNX
# frontend's left out, as nncc's and its six targets' modules are).
_AFTER_IMPORTS = """
import sys, time
kind, model, jobs = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "nncc":
    from nncc.cli import main  # first: it sets OPENBLAS_NUM_THREADS before numpy loads, as the CLI does
    import onnxruntime  # noqa: F401  (imported by nncc's first session, inside the timer otherwise)
    import nncc.compare  # noqa: F401  (the command's own modules, imported by the CLI when it runs)
    from nncc.registry import TARGETS
    for name in TARGETS.names():  # the targets' modules, as TVM's frontend is imported before its timer
        TARGETS.get(name)
    start = time.perf_counter()
    try:
        main(["compare", model, "--targets", "all", "--set", "mobile-cpu.profile=host", *(["--jobs", jobs] if jobs != "0" else [])])
    except SystemExit:
        pass
else:
    import tvm  # noqa: F401
    from nncc.backends.mobile_cpu import tvm_emit
    from nncc.loading import load_model
    from tvm.relax.frontend import onnx  # noqa: F401
    loaded = load_model(model)
    start = time.perf_counter()
    tvm_emit.build(loaded, tvm_emit.HOST_TARGET)
print(f"elapsed {time.perf_counter() - start:.4f}", file=sys.stderr)
"""


def after_imports(kind: str, model_path: pathlib.Path, jobs: int = 0) -> float:
    """Seconds of nncc's compare (``kind`` = nncc; ``jobs`` 0: its default workers) or TVM's build
    (tvm), timed after the imports."""
    env = {**os.environ, "TVM_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _AFTER_IMPORTS, kind, str(model_path), str(jobs)], capture_output=True,
                          text=True, check=False, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("elapsed ")]
    if not lines:
        raise SystemExit(f"{kind} failed: {proc.stderr.strip()[-300:]}")
    return float(lines[-1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(LIGHT_RESNET50))
    parser.add_argument("--runs", type=int, default=3, help="timed TVM runs (after one warm-up)")
    parser.add_argument("--skip-deep", action="store_true", help="skip the 4x deeper ResNet-50")
    args = parser.parse_args()
    model_path = pathlib.Path(args.model)
    print(f"model: {model_path.name}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        per_target(model_path, pathlib.Path(tmp))
        lower_per_node(model_path)
        out = pathlib.Path(tmp) / "compare.json"
        compare_s, table, code = timed_compare(model_path, out)
        print(table)
        print(f"(nncc compare --targets all, default workers ({default_workers(model_path)}): {compare_s:.1f} s)")
        if code != 0:
            sys.exit(code)
        serial_s, _, code = timed_compare(model_path, jobs=1)
        print(f"(nncc compare --targets all --jobs 1: {serial_s:.1f} s, exit {code})")
        estimate = json.loads(out.read_text())["targets"]["mobile-cpu"]["totals"]["latency_s"]

    model = load_model(model_path)
    feed = runtime.sample_inputs(model, 1)[0]
    ort = runtime.measure_latency(runtime.session(model, threads=1), feed)["median_s"]

    import tvm
    from tvm import relax

    start = time.perf_counter()
    executable = tvm_emit.build(model, tvm_emit.HOST_TARGET)
    build_s = time.perf_counter() - start
    vm = relax.VirtualMachine(executable, tvm.cpu())
    inputs = [tvm.runtime.tensor(feed[v.name]) for v in model.graph.inputs]
    got = vm["main"](*inputs)
    got = got.numpy() if hasattr(got, "numpy") else got[0].numpy()
    error = float(np.max(np.abs(got - runtime.session(model).run(None, feed)[0])))
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        vm["main"](*inputs)
        times.append(time.perf_counter() - t0)
    tvm_s = float(np.median(times))

    print()
    print(md_table(["executor", "latency", "note"], [
        ["mobile-cpu estimate (host profile)", fmt_seconds(estimate), "analytical, calibrated on this machine"],
        ["onnxruntime, 1 thread", fmt_seconds(ort), "median"],
        ["TVM Relax llvm (untuned), 1 thread", fmt_seconds(tvm_s), f"median of {args.runs}; build {build_s:.1f} s; "
                                                                    f"max abs diff vs onnxruntime {error:.2g}"],
    ]))
    print(f"\nTVM / mobile-cpu host estimate: {tvm_s / estimate:.1f}x; TVM / onnxruntime: {tvm_s / ort:.1f}x; "
          f"estimate / onnxruntime: {estimate / ort:.2f}")
    print(f"\nnncc compare --targets all {compare_s:.1f} s / TVM build {build_s:.1f} s = {compare_s / build_s:.2f} (goal <= 0.5); "
          f"with --jobs 1: {serial_s:.1f} s = {serial_s / build_s:.2f}")
    # Like for like: each timed after its own imports in a fresh process (the CLI figure above
    # includes starting Python and importing nncc, ~0.5 s; TVM's build figure excludes its imports).
    nncc_d, nncc_1, tvm_cold = after_imports("nncc", model_path), after_imports("nncc", model_path, 1), after_imports("tvm", model_path)
    print(f"after imports, fresh processes: compare {nncc_d:.2f} s (--jobs 1: {nncc_1:.2f} s), TVM build {tvm_cold:.2f} s: "
          f"{nncc_d / tvm_cold:.2f} and {nncc_1 / tvm_cold:.2f}")
    if not args.skip_deep:
        with tempfile.TemporaryDirectory() as tmp:
            # Both from the zoo's builder, so the layers differ only in number.
            base = models.export("resnet50", pathlib.Path(tmp) / "resnet50.onnx")
            deep = deeper_resnet50(pathlib.Path(tmp) / "resnet50_x4.onnx")
            base_s, _, _ = timed_compare(base)
            deep_s, _, code = timed_compare(deep)
            layers = len(onnx.load(str(deep)).graph.node) / len(onnx.load(str(base)).graph.node)
            print(f"zoo ResNet-50 {base_s:.1f} s; 4x deeper: {deep_s:.1f} s = {deep_s / base_s:.2f}x the time for "
                  f"{layers:.2f}x the nodes (exit {code})")
            # The light model's weights are ConstantOfShape fills (one value per tensor): reram's
            # ADC search and ucnn's weight statistics are trivial on them. The zoo's ResNet-50 has
            # seeded random weights: the same network timed on weights that look like weights.
            zoo_d, zoo_1 = after_imports("nncc", base), after_imports("nncc", base, 1)
            print(f"zoo ResNet-50 (seeded weights) after imports: compare {zoo_d:.2f} s (--jobs 1: {zoo_1:.2f} s) "
                  f"= {zoo_d / tvm_cold:.2f} and {zoo_1 / tvm_cold:.2f} of TVM's build of light_resnet50")


if __name__ == "__main__":
    main()
