"""``nncc optimize --jobs N``: the search's points compiled on the sweep's local pool give the
same search, point for point, as compiling them in the process one after another."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nncc import models
from nncc.cli import main
from nncc.models import mnist


@pytest.mark.slow  # ~10 s: two searches and a pool's start (the fast suite keeps to ~30 s)
def test_optimize_on_the_pool_finds_the_same_points(tmp_path):
    _, _, x, y = mnist.mnist_split()
    data = tmp_path / "test.npz"
    np.savez(data, x=x[:200], y=y[:200])
    lenet = str(models.bundled_path("lenet5"))
    reports = []
    for extra in ([], ["--jobs", "2"]):
        out = tmp_path / f"out{len(reports)}"
        assert main(["optimize", lenet, "-t", "reram", "--data", str(data), "--max-evals", "11", "-o", str(out), *extra]) == 0
        reports.append(json.loads((out / "report.json").read_text()))
    for r in reports:
        r["optimize"].pop("seconds")
    search = reports[0]["optimize"]
    assert len(search["points"]) == 11 and {p["stage"] for p in search["points"]} >= {"one-at-a-time", "greedy"}
    assert reports[0]["optimize"] == reports[1]["optimize"]
    assert reports[0]["totals"] == reports[1]["totals"]  # the chosen point, compiled again in the parent
