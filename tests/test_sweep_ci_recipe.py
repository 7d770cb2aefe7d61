"""examples/ci: the workflow's "Cost gate" step, run locally with the same command line: exit 0
and the table appended to the summary file against an equal baseline, exit 1 against a cheaper
one (``nncc compare --summary``)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import yaml
from nncc import models

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "ci" / "nncc-cost-gate.yml"


def _gate_step() -> tuple[dict[str, str], str]:
    flow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = flow["jobs"].values()
    step = next(s for s in job["steps"] if s.get("id") == "gate")
    return {**flow["env"], **step.get("env", {})}, step["run"]


def test_the_workflow_gate_passes_then_fails_and_writes_the_summary(tmp_path):
    env_vars, command = _gate_step()
    assert "--summary \"$GITHUB_STEP_SUMMARY\"" in command and "--baseline" in command
    (tmp_path / pathlib.Path(env_vars["MODEL"]).parent).mkdir(parents=True)
    shutil.copy(models.bundled_path("lenet5"), tmp_path / env_vars["MODEL"])
    (tmp_path / pathlib.Path(env_vars["BASELINE"]).parent).mkdir(parents=True)
    env = {**os.environ, **env_vars, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.txt"),
           "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # The baseline as the recipe's README writes it.
    subprocess.run(["nncc", "compare", env_vars["MODEL"], "--targets", env_vars["TARGETS"], "--json", env_vars["BASELINE"]],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    ok = subprocess.run(["bash", "-e", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    summary = (tmp_path / "summary.txt").read_text()
    assert "### model.onnx" in summary and "| reram" in summary and "Gate passed" in summary
    # A baseline that cost 20% less: the same step fails the check, and the summary says why.
    baseline = json.loads((tmp_path / env_vars["BASELINE"]).read_text())
    for row in baseline["targets"].values():
        row["totals"]["per_sample"]["energy_j"] *= 0.8
    (tmp_path / env_vars["BASELINE"]).write_text(json.dumps(baseline))
    bad = subprocess.run(["bash", "-e", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 1, bad.stderr
    assert "nncc: gate failed:" in bad.stderr
    summary = (tmp_path / "summary.txt").read_text()
    assert summary.count("### model.onnx") == 2  # appended, the first table kept
    assert "**Gate failed:**" in summary and "energy_j (per-sample) +25.0%" in summary
