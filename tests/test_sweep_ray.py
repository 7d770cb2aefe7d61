"""The issue's 36-point sweep (reram crossbar_size × cell_bits × adc_bits_max on the zoo's two
LeNets) on the local process pool and on a real local Ray instance (loopback, no dashboard):
every point finishes on both, and the two result sets are identical."""

from __future__ import annotations

import ipaddress
import sqlite3

import pytest
from nncc import models, sweep_exec
from nncc.cli import main

GRID = ["--grid", "crossbar_size=64,128,256", "--grid", "cell_bits=1,2", "--grid", "adc_bits_max=4,6,8"]
# What a point computed; not when, how long, or on which executor.
RESULT = "key, model_sha256, target, params, totals, accuracy, status, error, nncc_version"


def _results(folder):
    db = sqlite3.connect(folder / "sweep.sqlite")
    try:
        return sorted(db.execute(f"SELECT {RESULT} FROM points")), {r[0] for r in db.execute("SELECT executor FROM points")}
    finally:
        db.close()


@pytest.mark.slow
def test_the_36_point_sweep_is_the_same_on_the_local_pool_and_on_ray(tmp_path, capsys):
    pytest.importorskip("ray")
    lenets = [str(models.bundled_path("lenet5")), str(models.bundled_path("lenet_caffe"))]
    assert main(["sweep", *lenets, "-t", "reram", *GRID, "--jobs", "2", "-o", str(tmp_path / "local")]) == 0
    nodes = []
    close = sweep_exec.RayPool.close

    def close_noting_nodes(pool):  # which addresses the local instance's nodes had, before it stops
        nodes.extend(node["NodeManagerAddress"] for node in pool.ray.nodes())
        close(pool)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_exec.RayPool, "close", close_noting_nodes)
        assert main(["sweep", *lenets, "-t", "reram", *GRID, "--jobs", "2", "--ray", "local", "-o", str(tmp_path / "ray")]) == 0
    assert nodes == [sweep_exec.LOCAL_NODE_ADDRESS] and ipaddress.ip_address(nodes[0]).is_loopback
    out = capsys.readouterr().out
    assert out.count("36 points: 36 computed now, 0 already") == 2 and out.count("; 36 ok") == 2
    local, local_by = _results(tmp_path / "local")
    on_ray, ray_by = _results(tmp_path / "ray")
    assert local_by == {"local"} and ray_by == {"ray"}
    assert len(local) == 36 and local == on_ray


# A running cluster to connect to: a local Ray instance held by another process until its stdin closes.
HEAD = """
import shutil, sys, tempfile, ray
folder = tempfile.mkdtemp(prefix="nncc-ray-test-", dir="/tmp")
ray.init(num_cpus=2, include_dashboard=False, _temp_dir=folder, log_to_driver=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
ray.shutdown()
shutil.rmtree(folder, ignore_errors=True)
"""


@pytest.mark.slow
def test_a_sweep_connects_to_a_running_cluster_by_its_address(tmp_path, capsys, monkeypatch):
    import subprocess
    import sys

    pytest.importorskip("ray")
    head = subprocess.Popen([sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        address = head.stdout.readline().strip()
        assert address, "the head did not start"
        # Ray's rule: a client naming an address enables token authentication only when asked.
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        lenet = str(models.bundled_path("lenet5"))
        assert main(["sweep", lenet, "-t", "reram", "--grid", "crossbar_size=64,128", "--ray", address,
                     "-o", str(tmp_path / "remote")]) == 0
        assert main(["sweep", lenet, "-t", "reram", "--grid", "crossbar_size=64,128", "--jobs", "1",
                     "-o", str(tmp_path / "local")]) == 0
    finally:
        head.stdin.close()
        head.wait(timeout=60)
    assert "2 points: 2 computed now" in capsys.readouterr().out
    (remote, by), (local, _) = _results(tmp_path / "remote"), _results(tmp_path / "local")
    assert by == {"ray"} and remote == local
