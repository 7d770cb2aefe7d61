"""A sweep's results: one SQLite database in the output folder, one row per point.

The parent process is the only writer, and it commits each point as it finishes, in its own
transaction, in WAL mode with ``synchronous=FULL``: a sweep killed at any moment (SIGKILL
included) loses only the points in flight, never a committed one, and SQLite's journal keeps
the file consistent. A rerun reads the finished keys and skips them.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import time
from typing import Any

import nncc
from nncc.errors import NnccError
from nncc.sweep_grid import Point

DB_NAME = "sweep.sqlite"
FAILED = ("error", "timeout", "crashed")   # recorded with their error line; rerun only with --retry-failed
SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,          -- sha256 of model sha256 + target + parameters (nncc.sweep_grid.point_key)
    idx INTEGER,                   -- position in the sweep's product: the report's order
    model TEXT NOT NULL,           -- the path given
    model_sha256 TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,          -- JSON: {"set": {...}, "passes": [...], ...}
    totals TEXT,                   -- JSON: report.json's totals (per_sample, coverage, workload included)
    accuracy REAL,                 -- top-1 of the compiled model with --eval, else NULL
    status TEXT NOT NULL,          -- ok | error | timeout | crashed
    error TEXT,                    -- the one-line error of a failed point
    seconds REAL,                  -- the compile's wall time in its worker
    nncc_version TEXT,
    executor TEXT,                 -- local | ray
    attempts INTEGER NOT NULL DEFAULT 1,
    finished_at REAL NOT NULL      -- Unix time the parent committed it
);
"""


class Store:
    def __init__(self, folder: str | pathlib.Path):
        self.path = pathlib.Path(folder) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise NnccError(self.path, f"not a sweep database: {e}") from None

    def close(self) -> None:
        self.db.close()

    def statuses(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, status FROM points"))

    def put(self, point: Point, result: dict[str, Any], executor: str) -> None:
        """Insert, or replace a failed attempt (the attempt count goes up). The connection is in
        autocommit mode and this is one statement: one transaction, committed on return."""
        totals = result.get("totals")
        row = self.db.execute("SELECT attempts FROM points WHERE key = ?", (point.key,)).fetchone()
        self.db.execute(
            "INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (point.key, point.index, point.model, point.model_sha256, point.target,
             json.dumps(point.params, sort_keys=True), None if totals is None else json.dumps(totals, sort_keys=True),
             result.get("accuracy"), result["status"], result.get("error"), result.get("seconds"),
             result.get("nncc_version") or nncc.__version__, executor, (row[0] + 1) if row else 1, time.time()))

    def rows(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (params and totals decoded), in the sweep's order; ``keys``: only those."""
        self.db.row_factory = sqlite3.Row
        try:
            found = [dict(r) for r in self.db.execute("SELECT * FROM points ORDER BY idx, key")]
        finally:
            self.db.row_factory = None
        if keys is not None:
            wanted = set(keys)
            found = [r for r in found if r["key"] in wanted]
        for r in found:
            r["params"] = json.loads(r["params"])
            r["totals"] = json.loads(r["totals"]) if r["totals"] else None
        return found
