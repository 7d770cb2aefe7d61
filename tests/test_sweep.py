"""``nncc sweep``: the points of a grid, their keys, the Pareto front, the results database and
the report, on small grids of the zoo's LeNet-5 (the 36-point sweep and Ray: test_sweep_ray.py;
killing a sweep: test_sweep_kill.py)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from nncc import models
from nncc.cli import main
from nncc.errors import NnccError
from nncc.sweep_grid import (
    SweepSpec,
    check_spec,
    count,
    parse_grid,
    parse_pass_grid,
    points,
)
from nncc.sweep_report import front_keys

LENET = str(models.bundled_path("lenet5"))


def spec(grids=(), passes=(), targets=("reram",), **kw) -> SweepSpec:
    pipeline, pass_axes = parse_pass_grid(passes)
    return SweepSpec([LENET], list(targets), parse_grid(grids) + pass_axes, pipeline, **kw)


def test_the_product_of_the_grids_and_a_target_scoped_key_multiplies_only_its_target():
    s = spec(["crossbar_size=64,128,256", "cell_bits=1,2"], ["prune:ratio=0.3|0.6,scope=layer"])
    pts = points(s)
    assert count(s) == len(pts) == 12
    assert len({p.key for p in pts}) == 12
    combos = {(p.params["set"]["crossbar_size"], p.params["set"]["cell_bits"], p.params["passes"][0]) for p in pts}
    assert ("256", "2", "prune:scope=layer,ratio=0.6") in combos and len(combos) == 12
    both = spec(["reram.cell_bits=1,2", "mobile-cpu.bandwidth_gbs=10,20,30"], targets=("reram", "mobile-cpu"))
    by_target = [p.target for p in points(both)]
    assert by_target.count("reram") == 2 and by_target.count("mobile-cpu") == 3  # 2 + 3, not 2 x 3 each


def test_a_pass_grid_reads_list_values_as_compile_does():
    pipeline, axes = parse_pass_grid(("mixed-precision:bits=4,8,size_ratio=0.25|0.5",))
    assert pipeline == [("mixed-precision", {"bits": "4,8"})]
    assert [(a.key, a.values, a.pass_index) for a in axes] == [("size_ratio", ("0.25", "0.5"), 0)]


def test_random_samples_are_seeded_distinct_and_part_of_the_product():
    full = {p.key for p in points(spec(["crossbar_size=32,64,128,256", "cell_bits=1,2,4", "adc_bits_max=4,5,6,7,8"]))}
    a = points(spec(["crossbar_size=32,64,128,256", "cell_bits=1,2,4", "adc_bits_max=4,5,6,7,8"], samples=7, seed=3))
    b = points(spec(["crossbar_size=32,64,128,256", "cell_bits=1,2,4", "adc_bits_max=4,5,6,7,8"], samples=7, seed=3))
    c = points(spec(["crossbar_size=32,64,128,256", "cell_bits=1,2,4", "adc_bits_max=4,5,6,7,8"], samples=7, seed=4))
    assert [p.key for p in a] == [p.key for p in b] and len({p.key for p in a}) == 7
    assert {p.key for p in a} <= full and {p.key for p in a} != {p.key for p in c}


def test_the_key_follows_model_target_and_parameters_only():
    one, = points(spec(["crossbar_size=64"]))
    again, = points(spec(["crossbar_size=64"]))
    other, = points(spec(["crossbar_size=128"]))
    fixed, = points(spec(["crossbar_size=64"], sets={"cell_bits": "1"}))
    assert one.key == again.key and len({one.key, other.key, fixed.key}) == 3


@pytest.mark.parametrize("grids,targets,message", [
    (["cell_bits=1,2"], ("reram", "mobile-cpu"), "target 'mobile-cpu' has no constant 'cell_bits' (write 'reram.cell_bits'"),
    (["crossbar=64"], ("reram",), "target 'reram' has no constant 'crossbar'"),
    (["truenorth.cell_bits=1"], ("reram",), "'truenorth' is not among the swept targets"),
])
def test_a_grid_key_a_target_does_not_have_is_a_usage_error(grids, targets, message):
    with pytest.raises(NnccError, match=None) as e:
        check_spec(spec(grids, targets=targets))
    assert message in str(e.value)


def test_the_cli_refuses_a_bad_grid_in_one_line(tmp_path, capsys):
    assert main(["sweep", LENET, "-t", "reram", "-t", "mobile-cpu", "--grid", "cell_bits=1,2", "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("nncc: error: --grid:")
    assert not (tmp_path / "s").exists()  # nothing created before the grid is checked


def test_the_front_is_the_points_no_other_point_beats():
    def row(key, e, lat, area, acc=None, model="m"):
        return {"key": key, "model_sha256": model, "status": "ok", "accuracy": acc,
                "totals": {"per_sample": {"energy_j": e, "latency_s": lat}, "area_mm2": area}}
    rows = [row("a", 1, 1, 5), row("b", 2, 2, 1), row("c", 2, 2, 6), row("d", 1, 1, 5), row("e", 0.5, 3, 9, model="n"),
            {"key": "f", "model_sha256": "m", "status": "error", "accuracy": None, "totals": None}]
    # c is beaten by a; a and d tie (neither beats the other); e is alone for its model.
    assert front_keys(rows) == {"a", "b", "d", "e"}
    with_acc = [row("a", 1, 1, 1, 0.9), row("b", 1, 1, 1, 0.95), row("c", 0.5, 1, 1, 0.5)]
    assert front_keys(with_acc) == {"b", "c"}  # accuracy is maximized


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from nncc.models import mnist

    _, _, x, y = mnist.mnist_split()
    path = tmp_path_factory.mktemp("data") / "test.npz"
    np.savez(path, x=x[:200], y=y[:200])
    return str(path)


def test_a_sweep_with_accuracy_resumes_and_reports_its_front(tmp_path, digits, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", LENET, "-t", "reram", "--grid", "crossbar_size=64,128", "-p", "prune:ratio=0.2|0.9",
            "--eval", digits, "--jobs", "2", "-o", str(out), "--csv", str(tmp_path / "p.csv"), "--json", str(tmp_path / "p.json")]
    assert main(args) == 0
    assert "4 points: 4 computed now, 0 already" in capsys.readouterr().out
    db = sqlite3.connect(out / "sweep.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = db.execute("SELECT key, status, accuracy, totals, params, attempts FROM points").fetchall()
    assert len(rows) == 4 and {r[1] for r in rows} == {"ok"} and {r[5] for r in rows} == {1}
    acc = {json.loads(r[4])["passes"][0]: r[2] for r in rows}
    assert acc["prune:ratio=0.2"] > 0.9 > acc["prune:ratio=0.9"]  # heavy pruning of LeNet-5 costs accuracy
    totals = json.loads(rows[0][3])
    assert {"per_sample", "coverage", "energy_j"} <= set(totals)
    exported = json.loads((tmp_path / "p.json").read_text())["points"]
    assert len(exported) == 4 and any(p["front"] for p in exported)
    assert (tmp_path / "p.csv").read_text().count("\n") == 5
    html = (out / "report.html").read_text()
    fronts = {p["key"] for p in exported if p["front"]}
    for key in fronts:
        assert f"class='front' data-key='{key}'" in html  # highlighted in the plots
    assert "<script>" in html and "http" not in html.split("<body>")[1].replace("http://www.w3.org/2000/svg", "")
    # The same command again computes nothing.
    assert main(args) == 0
    assert "4 points: 0 computed now, 4 already" in capsys.readouterr().out
    assert db.execute("SELECT count(*), max(attempts) FROM points").fetchone() == (4, 1)


def test_failed_points_are_recorded_and_retried_only_when_asked(tmp_path, capsys):
    out = tmp_path / "sweep"
    # cell_bits 16 > weight_bits 8: the target refuses that point; the others still run.
    args = ["sweep", LENET, "-t", "reram", "--grid", "cell_bits=2,16", "--jobs", "1", "-o", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "1 error, 1 ok" in captured.out and "nncc: warning: 1 point(s) error:" in captured.err
    db = sqlite3.connect(out / "sweep.sqlite")
    error = db.execute("SELECT error, attempts FROM points WHERE status = 'error'").fetchone()
    assert "cell_bits 16" in error[0] and error[1] == 1
    # Each result is its own point's (a worker's answer filed under another key would still be "ok").
    from nncc.driver import compile_model
    from nncc.registry import TARGETS

    direct = compile_model(LENET, TARGETS.get("reram").configure(None, {"cell_bits": "2"}), []).report["totals"]
    (stored,) = db.execute("SELECT totals FROM points WHERE status = 'ok'").fetchone()
    assert json.loads(stored)["energy_j"] == direct["energy_j"] and json.loads(stored)["area_mm2"] == direct["area_mm2"]
    assert main(args) == 0
    assert "0 computed now" in capsys.readouterr().out
    assert main(args + ["--retry-failed"]) == 0
    assert "1 computed now" in capsys.readouterr().out
    assert db.execute("SELECT status, attempts FROM points ORDER BY attempts").fetchall() == [("ok", 1), ("error", 2)]
