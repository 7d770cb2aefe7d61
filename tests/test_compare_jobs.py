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
