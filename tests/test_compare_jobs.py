"""``nncc compare --jobs N``: the same table and JSON as one target after another, and a worker
that dies costs its own target only."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import pytest

from nncc import calibration, models
from nncc.cli import main
from nncc.compare_jobs import CRASHED

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="--jobs forks its workers")


def _compare(capsys, tmp_path, jobs: int, name: str) -> tuple[str, dict]:
    out = tmp_path / f"{name}.json"
    code = main(["compare", str(models.bundled_path("lenet5")), "--targets", "all", "--jobs", str(jobs), "--json", str(out)])
    assert code == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_jobs_give_the_same_table_and_json(capsys, tmp_path):
    serial_table, serial = _compare(capsys, tmp_path, 1, "serial")
    parallel_table, parallel = _compare(capsys, tmp_path, 3, "parallel")
    assert parallel_table == serial_table
    assert parallel == serial
    assert list(parallel["targets"]) == list(serial["targets"])  # the targets' order, not their finishing order


def test_a_worker_that_dies_costs_only_its_target(capsys, tmp_path, monkeypatch):
    import nncc.compare

    real = nncc.compare.compile_model

    def dying_on_hypar(path, target, *args, **kwargs):
        if target.name == "hypar":  # the first: the targets still queued break with it
            os.kill(os.getpid(), signal.SIGKILL)  # in the forked worker: the pool breaks
        return real(path, target, *args, **kwargs)

    monkeypatch.setattr(nncc.compare, "compile_model", dying_on_hypar)
    _, result = _compare(capsys, tmp_path, 2, "crash")
    targets = result["targets"]
    assert targets["hypar"] == {"error": CRASHED}
    assert all("totals" in row for name, row in targets.items() if name != "hypar")


def test_workers_share_the_calibration_threads(monkeypatch):
    """Each worker calibrates on its share of the cores among the busy ones, never below one
    thread; the last one busy gets them all."""
    busy = multiprocessing.get_context("fork").Value("i", 0)
    monkeypatch.setattr(calibration, "CALIBRATION_THREADS", 4)
    monkeypatch.setattr(calibration, "_busy_workers", None)
    assert calibration.threads() == 4  # not a worker
    calibration.share_cores(busy)
    with calibration.working():
        assert calibration.threads() == 4  # alone
        busy.value += 1  # another worker starts
        assert calibration.threads() == 2
        busy.value += 7
        assert calibration.threads() == 1
        busy.value -= 8
    assert busy.value == 0


def test_the_targets_that_run_the_model_start_first(monkeypatch):
    """reram (``runs_model``: its calibration runs) is compare's longest compile: it starts
    before the others, which fill the other workers meanwhile; the results keep the spec order."""
    from nncc import compare_jobs
    from nncc.registry import TARGETS

    assert TARGETS.get("reram").runs_model
    assert not any(TARGETS.get(name).runs_model for name in TARGETS.names() if name != "reram")
    submitted = []

    def pool(specs, workers, done, advance):
        submitted.extend(name for name, _ in specs)
        done.update({name: {"totals": {}} for name, _ in specs})
        return []

    monkeypatch.setattr(compare_jobs, "_pool", pool)
    specs = [(name, {}) for name in ["hypar", "mobile-cpu", "reram", "sparse-tc"]]
    results = compare_jobs.run_targets(specs, lambda name, values: {}, jobs=2, first={"reram"})
    assert submitted == ["reram", "hypar", "mobile-cpu", "sparse-tc"]
    assert list(results) == ["hypar", "mobile-cpu", "reram", "sparse-tc"]


def test_default_jobs_take_the_usable_cpus_as_memory_allows(monkeypatch):
    """Without --jobs: one worker per usable CPU, no more than the targets, and no more than the
    available memory holds at 1.5 W + 300 MB each (at least one)."""
    from nncc import compare_jobs

    monkeypatch.setattr(compare_jobs, "usable_cpus", lambda: 4)
    monkeypatch.setattr(compare_jobs, "available_memory", lambda: None)
    assert compare_jobs.default_jobs(6, 100 << 20) == 4
    assert compare_jobs.default_jobs(3, 100 << 20) == 3
    peak = 1.5 * (100 << 20) + (300 << 20)  # 450 MB per compile of a 100 MB model
    monkeypatch.setattr(compare_jobs, "available_memory", lambda: int(2.5 * peak))
    assert compare_jobs.default_jobs(6, 100 << 20) == 2
    monkeypatch.setattr(compare_jobs, "available_memory", lambda: 10 << 20)
    assert compare_jobs.default_jobs(6, 100 << 20) == 1


def test_the_machine_figures_are_this_process_own():
    """The CPUs are the affinity mask's (a taskset or container limit), the memory at most the
    machine's."""
    from nncc import machine

    if hasattr(os, "sched_getaffinity"):
        assert machine.usable_cpus() == len(os.sched_getaffinity(0))
    free = machine.available_memory()
    if os.path.exists("/proc/meminfo"):
        total = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal:")).split()[1]) * 1024
        assert free is not None and 0 < free <= total


def test_compare_without_jobs_uses_the_default_workers(capsys, tmp_path, monkeypatch):
    """No --jobs: compare asks default_jobs, and its table is the one --jobs 1 gives."""
    from nncc import compare

    asked = []

    def two(targets, weight_bytes):
        asked.append((targets, weight_bytes))
        return 2

    monkeypatch.setattr(compare, "default_jobs", two)
    out = tmp_path / "default.json"
    assert main(["compare", str(models.bundled_path("lenet5")), "--targets", "reram,ucnn,hypar", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    serial_table, serial_json = _compare(capsys, tmp_path, 1, "serial")
    assert asked and asked[0][0] == 3 and asked[0][1] > 0
    assert json.loads(out.read_text())["targets"] == {k: v for k, v in serial_json["targets"].items() if k in ("reram", "ucnn", "hypar")}
    rows = {line.split("|")[1].strip(): line for line in serial_table.splitlines() if line.startswith("| ")}
    assert sorted(line for line in table.splitlines() if line.startswith("| ") and line.split("|")[1].strip() in
                  ("hypar", "reram", "ucnn")) == [rows["hypar"], rows["reram"], rows["ucnn"]]


def test_the_allocator_is_tuned_unless_the_user_tuned_it(monkeypatch):
    """glibc malloc keeps freed memory for reuse (nncc.cli applies it at start); a user's own
    MALLOC_* or GLIBC_TUNABLES settings are left alone."""
    import platform

    from nncc import machine

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert machine.tune_memory() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    for key in [k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"]:
        monkeypatch.delenv(key)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert machine.tune_memory() is True


def test_numpy_huge_pages_are_off_unless_the_user_wants_them(monkeypatch):
    """numpy's madvised huge pages stalled on the kernel's compaction: tune_memory turns them off,
    also for a numpy imported before it, and keeps NUMPY_MADVISE_HUGEPAGE where the user set it."""
    import numpy as np

    from nncc import machine

    get = np._core.multiarray._get_madvise_hugepage
    set_ = np._core.multiarray._set_madvise_hugepage
    before = get()
    try:
        set_(True)
        monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
        machine.tune_memory()
        assert get() is False and os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0"
        set_(True)
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        machine.tune_memory()
        assert get() is True
    finally:
        set_(before)
