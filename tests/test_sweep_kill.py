"""A sweep killed with SIGKILL part-way loses only the points in flight: the rerun finds every
finished point in the database, computes only the rest, and ends with each point exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from nncc import models

LENET = str(models.bundled_path("lenet5"))
# A plugin pass that only waits (or kills its own process: a native crash): it makes each point
# take long enough to kill the sweep between two points, and shows that workers load --plugin files.
NAP = '''
import dataclasses, os, signal, time
from nncc.plugin import NnccPass

@dataclasses.dataclass
class Nap(NnccPass):
    name = "nap"
    summary = "sleep, or die; change nothing"
    exact_tolerance = 0.0
    seconds: float = 0.0
    die: int = 0

    def apply(self, model):
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.seconds)
        return False
'''


def _rows(db_path):
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT key, status, attempts, finished_at FROM points").fetchall()
    except sqlite3.OperationalError:  # the file is there, its table not yet
        return []
    finally:
        db.close()


def test_a_killed_sweep_resumes_without_recomputing(tmp_path):
    (tmp_path / "nap.py").write_text(NAP)
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "nncc.cli", "sweep", LENET, "-t", "reram", "--grid", "crossbar_size=64,128,256",
           "--grid", "cell_bits=1,2", "-p", "nap:seconds=0.4", "--plugin", str(tmp_path / "nap.py"), "--jobs", "2",
           "-o", str(out)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    # Its own session: the kill reaches the sweep and its workers at once, as a crash of the machine's job would.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "sweep.sqlite").exists() and len(_rows(out / "sweep.sqlite")) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.communicate()}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = _rows(out / "sweep.sqlite")
    assert 2 <= len(killed) < 6, "kill the sweep part-way"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 points: {6 - len(killed)} computed now, {len(killed)} already" in rerun.stdout
    after = _rows(out / "sweep.sqlite")
    assert len(after) == len({r[0] for r in after}) == 6 and {r[1] for r in after} == {"ok"}
    # A point finished before the kill is the same row: never compiled again.
    assert set(killed) <= set(after) and {r[2] for r in after} == {1}


def test_a_worker_that_dies_or_hangs_fails_its_point_only(tmp_path):
    from nncc.cli import main

    (tmp_path / "nap.py").write_text(NAP)
    out = tmp_path / "sweep"
    args = ["sweep", LENET, "-t", "reram", "-p", "nap:die=0|1", "-p", "nap:seconds=0|30", "--timeout", "3",
            "--plugin", str(tmp_path / "nap.py"), "--jobs", "2", "-o", str(out)]
    assert main(args) == 0
    db = sqlite3.connect(out / "sweep.sqlite")
    got = {tuple(json.loads(p)["passes"]): (s, e) for p, s, e in db.execute("SELECT params, status, error FROM points")}
    assert got[("nap:die=0", "nap:seconds=0")] == ("ok", None)
    assert got[("nap:die=0", "nap:seconds=30")] == ("timeout", "no result within --timeout 3 s")
    # The pool broke while both points were in flight; each was rerun alone and only the killer is blamed.
    for nap in ("nap:seconds=0", "nap:seconds=30"):
        status, error = got[("nap:die=1", nap)]
        assert status == "crashed" and error.startswith("worker process died")
