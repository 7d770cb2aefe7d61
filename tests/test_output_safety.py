"""Outputs survive a kill: a folder written through nncc.files.replace_folder_atomically holds
the complete old output or the complete new one at every moment (the issue's kill test)."""

from __future__ import annotations

import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from nncc import models
from nncc.files import exchange_paths, replace_folder_atomically

PARTS = 20
# Writes versions without end, each a folder of PARTS files and a 'complete' marker written last.
WRITER = """
import itertools, pathlib, sys
from nncc.files import replace_folder_atomically
out = pathlib.Path(sys.argv[1])
print("started", flush=True)  # imports done: the parent times its kill from here
for version in itertools.count(int(sys.argv[2])):
    with replace_folder_atomically(out) as tmp:
        for i in range(%d):
            (tmp / f"part{i}.txt").write_text(f"{version}\\n" * 2000)
        (tmp / "complete").write_text(str(version))
""" % PARTS


def _complete_version(out: pathlib.Path) -> int:
    """The version ``out`` holds; fails unless it is whole."""
    assert out.is_dir(), "the output folder is gone"
    version = int((out / "complete").read_text())
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([*(f"part{i}.txt" for i in range(PARTS)), "complete"]), files
    for i in range(PARTS):
        assert (out / f"part{i}.txt").read_text() == f"{version}\n" * 2000
    return version


def _kill_writer_repeatedly(tmp_path, kills: int, seed: int) -> list[int]:
    out = tmp_path / "out"
    with replace_folder_atomically(out) as first:
        for i in range(PARTS):
            (first / f"part{i}.txt").write_text("0\n" * 2000)
        (first / "complete").write_text("0")
    rng = random.Random(seed)
    seen = []
    version = 1
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(version)], stdout=subprocess.PIPE, text=True)
        # From the end of the writer's start-up (slow on a busy machine), so that kills land
        # before, during and between versions whatever the load.
        proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        seen.append(_complete_version(out))
        version = seen[-1] + 1_000  # the next writer's versions are new ones
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "out"]
    with replace_folder_atomically(out) as last:  # a later run clears what killed runs left
        (last / "complete").write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["out"], leftovers
    return seen


def test_a_killed_writer_leaves_the_old_or_the_new_output(tmp_path):
    seen = _kill_writer_repeatedly(tmp_path, kills=20, seed=1)
    assert len(set(seen)) > 5, f"the kills did not land while versions were written: {seen}"


@pytest.mark.slow
def test_one_hundred_kills_in_a_row(tmp_path):
    seen = _kill_writer_repeatedly(tmp_path, kills=100, seed=2)
    assert len(set(seen)) > 30


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a"), (b / "x").write_text("b")
    if not exchange_paths(a, b):
        pytest.skip("no atomic exchange on this system (the two-rename fallback is used)")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_a_failed_block_leaves_the_old_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("old")
    with pytest.raises(RuntimeError):
        with replace_folder_atomically(out) as tmp:
            (tmp / "report.json").write_text("half")
            raise RuntimeError("compile failed")
    assert (out / "report.json").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.slow
def test_killed_compile_keeps_a_whole_output(tmp_path):
    """The real command: `nncc compile -o` killed at random moments."""
    model = models.export("lenet5", tmp_path / "lenet5.onnx")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nncc.cli", "compile", str(model), "-t", "mobile-cpu", "-o", str(out), "--verify", "0"]
    subprocess.run(cmd, check=True, capture_output=True)
    expected = sorted(p.name for p in out.iterdir())
    rng = random.Random(3)
    for _ in range(10):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert sorted(p.name for p in out.iterdir()) == expected
        assert (out / "report.json").read_text().rstrip().endswith("}")
