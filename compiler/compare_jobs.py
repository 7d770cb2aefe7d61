"""``nncc compare --jobs N``: the targets compiled at once, in forked worker processes.

Without ``--jobs``, one worker per CPU this process may use (:func:`default_jobs`), as ninja
and onnxruntime take the machine's cores, fewer where the memory available would not hold
that many compiles at their expected peak; ``--jobs 1`` compiles in this process.

Each target's compile is independent and deterministic, so the table is the same whatever
``N`` is; only the wall time changes (on ResNet-50 the six targets' compiles take 0.1-2 s each).
Workers are forked after the model was loaded, checked and shape-inferred once: each inherits it
(copy-on-write) instead of importing nncc and loading the model again. Fork needs Linux or
macOS; elsewhere (or with one target, or ``--jobs 1``) the targets compile one after another in
this process. A worker that dies (a crash, out of memory) costs its target only, recorded as
that target's error, like a target's own limit.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable
from typing import Any

from nncc import calibration
from nncc.machine import available_memory, usable_cpus

CRASHED = "the worker process compiling this target died (a crash, a signal or out of memory)"

# The compile function of the compare in progress, for the forked workers (a closure over the
# loaded model cannot be pickled; a fork inherits it).
_compile_one: Callable[[str, dict[str, str]], dict[str, Any]] | None = None


# A compile's expected peak resident memory, for a model holding W bytes of weights: the
# issue-13 goal every target is measured against (benchmarks/compare_tvm.py prints each one's
# peak): 1.5 W + 300 MB.
PEAK_PER_WEIGHT_BYTE = 1.5
PEAK_FIXED_BYTES = 300 << 20


def default_jobs(targets: int, weight_bytes: int) -> int:
    """Workers for ``targets`` compiles when ``--jobs`` is not given: one per usable CPU, no more
    than there are targets, and no more than the available memory holds at each one's expected
    peak (at least one: a single compile runs whatever memory says)."""
    workers = min(usable_cpus(), max(1, targets))
    free = available_memory()
    if free is not None:
        workers = min(workers, max(1, int(free // (PEAK_PER_WEIGHT_BYTE * weight_bytes + PEAK_FIXED_BYTES))))
    return workers


def _in_worker(name: str, values: dict[str, str]) -> dict[str, Any]:
    assert _compile_one is not None
    with calibration.working():
        return _compile_one(name, values)


def run_targets(specs: list[tuple[str, dict[str, str]]], compile_one: Callable[[str, dict[str, str]], dict[str, Any]],
                jobs: int = 1, progress=None, first: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """``{target: compile_one(target, values)}`` for each ``(target, values)`` of ``specs``, in
    their order, on up to ``jobs`` worker processes; the targets ``first`` names (the longest:
    ``Target.runs_model``) start before the others, which fill the other workers meanwhile."""
    task = progress.add_task("comparing", total=len(specs)) if progress else None
    workers = min(jobs, len(specs))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        results = {}
        for name, values in specs:
            if progress:
                progress.update(task, description=f"target {name}")
            results[name] = compile_one(name, values)
            if progress:
                progress.update(task, advance=1)
        return results
    global _compile_one
    _compile_one = compile_one
    done: dict[str, dict[str, Any]] = {}
    try:
        started = sorted(specs, key=lambda spec: spec[0] not in first)  # stable: the others in their order
        broken = _pool(started, workers, done, lambda: progress and progress.update(task, advance=1))
        # A dead worker breaks the pool for every target still in it: each of those runs again
        # alone, so that only the one that kills its worker is recorded as crashed.
        for name, values in broken:
            if _pool([(name, values)], 1, done, lambda: None):
                done[name] = {"error": CRASHED}
            if progress:
                progress.update(task, advance=1)
    finally:
        _compile_one = None
    return {name: done[name] for name, _ in specs}


def _pool(specs, workers: int, done: dict[str, dict[str, Any]], advance) -> list[tuple[str, dict[str, str]]]:
    """Runs ``specs`` on a pool of ``workers`` forked processes into ``done``; returns those a
    broken pool did not finish."""
    broken = []
    # The workers share the cores: calibration (onnxruntime, reram's ADC search) in each takes its
    # share among the busy ones (two workers each calibrating on two threads of a 2-core machine
    # made ResNet-50's compare 10% slower than one thread each).
    context = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=calibration.share_cores,
                                initargs=(context.Value("i", 0),)) as pool:
        futures = {pool.submit(_in_worker, name, values): (name, values) for name, values in specs}
        for future in cf.as_completed(futures):
            try:
                done[futures[future][0]] = future.result()
                advance()
            except cf.process.BrokenProcessPool:
                broken.append(futures[future])
    return broken
