"""``nncc sweep``: compile every point of a design space, resumably, and report the Pareto fronts.

The pieces, one idea each: ``sweep_grid`` (the points and their keys), ``sweep_exec`` (where
they are compiled: a local process pool, or Ray), ``sweep_store`` (the SQLite results, written
by this process only, as points finish) and ``sweep_report`` (fronts, report.html, exports).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from typing import Any

from nncc.files import write_text_atomic
from nncc.sweep_exec import make_executor
from nncc.sweep_grid import SweepSpec, check_spec, points
from nncc.sweep_report import export_csv, export_json, page
from nncc.sweep_store import FAILED, Store


@dataclasses.dataclass
class Outcome:
    total: int
    computed: int
    reused: int
    rows: list[dict[str, Any]]
    out_dir: pathlib.Path

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def summary(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        missing = self.total - len(self.rows)
        return (f"{self.total} points: {self.computed} computed now, {self.reused} already in {self.out_dir}; {counts}"
                + (f"; {missing} not run" if missing else "") + f" -> {self.out_dir / 'report.html'}")

    def failures(self) -> list[str]:
        """One line per distinct error of the failed points, for the CLI's warnings."""
        seen: dict[str, int] = {}
        for r in self.rows:
            if r["status"] in FAILED:
                seen[f"{r['status']}: {r['error']}"] = seen.get(f"{r['status']}: {r['error']}", 0) + 1
        return [f"{n} point(s) {line}" for line, n in seen.items()]


@contextlib.contextmanager
def _bar(total: int, enabled: bool):
    """A progress bar with ETA on stderr, when stderr is a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not enabled or not console.is_terminal or not total:
        yield lambda text: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task("sweeping", total=total)
        yield lambda text: progress.update(task, advance=1, description=text)


def run_sweep(spec: SweepSpec, out_dir: str | pathlib.Path, *, jobs: int | None = None, ray: str | None = None,
              retry_failed: bool = False, csv_out: str | None = None, json_out: str | None = None,
              progress: bool = True) -> Outcome:
    check_spec(spec)
    out_dir = pathlib.Path(out_dir)
    wanted = list({p.key: p for p in points(spec)}.values())  # a model given twice is one set of points
    store = Store(out_dir)
    try:
        known = store.statuses()
        todo = [p for p in wanted if p.key not in known or (retry_failed and known[p.key] in FAILED)]
        by_key = {p.key: p for p in todo}
        if todo:
            executor = make_executor(jobs, ray)
            try:
                with _bar(len(todo), progress) as step:
                    for task, result in executor.run([p.task(spec) for p in todo]):
                        point = by_key[task["key"]]
                        store.put(point, result, executor.name)
                        step(f"{pathlib.Path(point.model).stem} {point.target} {result['status']}")
            finally:
                executor.close()
        rows = store.rows([p.key for p in wanted])
    finally:
        store.close()
    outcome = Outcome(len(wanted), len(todo), len(wanted) - len(todo), rows, out_dir)
    write_text_atomic(out_dir / "report.html", page(rows, title=f"nncc sweep: {len(wanted)} points"))
    if csv_out:
        write_text_atomic(csv_out, export_csv(rows))
    if json_out:
        write_text_atomic(json_out, export_json(rows))
    return outcome
