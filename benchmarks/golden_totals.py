"""Record, or check against a recording, every target's totals and layer rows on the zoo and light models.

A refactor that must not change behaviour is checked by recording before it and checking after:

    .venv/bin/python benchmarks/golden_totals.py --write before.json     # on the old code
    .venv/bin/python benchmarks/golden_totals.py --check before.json     # on the new code

Each (model, target) pair is compiled as ``nncc compile MODEL -t TARGET --verify 0`` does, and the
report's totals, per-layer rows and unsupported ops are kept. ``--check`` prints every differing
figure (relative tolerance ``--rtol``, default exact) and exits 1 if any differs; with
``--ignore-added``, figures the recording does not have yet (a new total) are not differences. ``--models``
and ``--targets`` narrow the run. Prints, never asserts in the test suite: the zoo export alone takes
minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile
import time

import onnx

from nncc import models
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc.registry import TARGETS

LIGHT = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def model_paths(folder: pathlib.Path, only: set[str] | None) -> dict[str, pathlib.Path]:
    paths = {}
    for entry in models.list_models():
        if only and entry.name not in only:
            continue
        path = folder / f"{entry.name}.onnx"
        models.export(entry.name, path)
        paths[entry.name] = path
    for path in sorted(LIGHT.glob("*.onnx")):
        if not only or path.stem in only:
            paths[path.stem] = path
    return paths


def record(path: pathlib.Path, target_name: str) -> dict:
    target = TARGETS.get(target_name).configure(None, {})
    try:
        result = compile_model(path, target, [], CompileOptions(verify_samples=0))
    except NnccError as e:
        return {"error": e.what}
    report = result.report
    return {"totals": report["totals"], "layers": report["layers"], "unsupported": report["unsupported"]}


def differences(old, new, where: str, rtol: float, ignore_added: bool = False) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                out.append(f"{where}.{key}: removed")
            elif key not in old:
                if not ignore_added:
                    out.append(f"{where}.{key}: added")
            else:
                out += differences(old[key], new[key], f"{where}.{key}", rtol, ignore_added)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} items -> {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}[{i}]", rtol, ignore_added)]
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool):
        if old == new or (rtol and math.isclose(old, new, rel_tol=rtol)):
            return []
        return [f"{where}: {old!r} -> {new!r}"]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="FILE")
    mode.add_argument("--check", metavar="FILE")
    parser.add_argument("--models", help="comma-separated model names (zoo or light_*)")
    parser.add_argument("--targets", default="all")
    parser.add_argument("--rtol", type=float, default=0.0)
    parser.add_argument("--ignore-added", action="store_true", help="new figures are not differences")
    args = parser.parse_args()
    only = set(args.models.split(",")) if args.models else None
    targets = [t for t in TARGETS.names() if t != "null"] if args.targets == "all" else args.targets.split(",")
    old = json.loads(pathlib.Path(args.check).read_text()) if args.check else None
    results: dict[str, dict] = {}
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in model_paths(pathlib.Path(tmp), only).items():
            results[name] = {}
            for target in targets:
                start = time.perf_counter()
                results[name][target] = record(path, target)
                line = f"{name:22s} {target:11s} {time.perf_counter() - start:6.1f} s"
                if old is not None:
                    if name not in old or target not in old[name]:
                        print(f"{line}  not in the recording")
                        continue
                    diff = differences(old[name][target], results[name][target], f"{name}/{target}", args.rtol, args.ignore_added)
                    failed += bool(diff)
                    line += f"  {'same' if not diff else f'{len(diff)} differences'}"
                    for d in diff[:20]:
                        line += f"\n    {d}"
                print(line, flush=True)
    if args.write:
        pathlib.Path(args.write).write_text(json.dumps(results, indent=1, sort_keys=True))
        print(f"wrote {args.write}")
    else:
        print(f"{failed} (model, target) pairs differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
