"""Pass pipelines: parsing ``-p NAME:k=v,...`` and pipeline TOML, and running them.

As in TVM's pass infrastructure, a :class:`PassContext` carries what passes may need
besides the model (calibration data, options), which passes are disabled, and the
instruments that watch each pass (timing, IR dumps).
"""

from __future__ import annotations

import contextvars
import dataclasses
import pathlib
import time
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.crossbar import CrossbarGeometry
from nncc.errors import NnccError
from nncc.files import read_toml, write_text_atomic
from nncc.pass_base import NnccPass
from nncc.registry import PASSES

_CURRENT: contextvars.ContextVar[PassContext | None] = contextvars.ContextVar("nncc_pass_context", default=None)


@dataclasses.dataclass
class PassRecord:
    """What one pass did, as the report lists it."""

    name: str
    params: dict[str, Any]
    modified: bool
    stats: dict[str, Any]
    time_s: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Instrument:
    """Hooks around every pass run (TVM's PassInstrument)."""

    def before(self, pass_: NnccPass, model: ir.Model) -> None:  # noqa: B027 - optional hook
        pass

    def after(self, pass_: NnccPass, model: ir.Model, record: PassRecord) -> None:  # noqa: B027
        pass


class DumpIR(Instrument):
    """Writes the model after every pass as readable text: ``NN-<pass>.txt``."""

    def __init__(self, directory: str | pathlib.Path):
        self.directory = pathlib.Path(directory)
        self.count = 0

    def after(self, pass_: NnccPass, model: ir.Model, record: PassRecord) -> None:
        self.count += 1
        if self.directory.is_symlink():  # like every output path: never written through a link
            raise NnccError(self.directory, "--dump-ir: the folder is a symlink; nncc does not write through links")
        if self.directory.exists() and not self.directory.is_dir():
            raise NnccError(self.directory, "--dump-ir: exists and is not a folder")
        # Each file replaced whole (a symlink or device in its place is refused, not written through).
        write_text_atomic(self.directory / f"{self.count:02d}-{pass_.name}.txt", str(model.graph))


@dataclasses.dataclass
class PassContext:
    """Configuration shared by the passes of one pipeline run.

    ``calibration`` holds sample inputs (name -> array with a leading sample axis) for
    passes that measure the model (quantization, mixed precision, ADC bits).
    ``data`` holds labelled samples ``(x, y)`` (x with a leading sample axis, y integer
    class labels) for passes that train (``finetune``); ``nncc compile --eval`` sets it.
    ``target`` names the compile target and ``crossbar`` is its crossbar geometry (None when
    it has no crossbars, or outside a compile): what passes that plan for crossbars read.
    """

    disabled: set[str] = dataclasses.field(default_factory=set)
    instruments: list[Instrument] = dataclasses.field(default_factory=list)
    calibration: dict[str, np.ndarray] | None = None
    data: tuple[np.ndarray, np.ndarray] | None = None  # labelled (x, y) for training passes
    target: str | None = None
    crossbar: CrossbarGeometry | None = None

    def crossbar_for(self, where: str) -> CrossbarGeometry:
        """The compile target's crossbar geometry, or a clear error naming what is missing."""
        if self.crossbar is not None:
            return self.crossbar
        if self.target is not None:
            raise NnccError(where, f"plans for crossbars, and target '{self.target}' has none (compile with -t reram)")
        raise NnccError(where, "plans for crossbars, and no compile target gave a crossbar geometry (compile with -t reram)")

    @staticmethod
    def current() -> PassContext:
        return _CURRENT.get() or PassContext()

    def __enter__(self) -> PassContext:
        # A stack of tokens, so the same context can be entered again while current.
        self.__dict__.setdefault("_tokens", []).append(_CURRENT.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._tokens.pop())


def parse_pass_spec(spec: str) -> NnccPass:
    """``"prune:ratio=0.5,scope=global"`` -> a configured pass instance."""
    name, _, args = spec.partition(":")
    name = name.strip()
    params: dict[str, str] = {}
    last_key = None
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, sep, value = item.partition("=")
        if sep:
            params[key.strip()] = value.strip()
            last_key = key.strip()
        elif last_key is not None:  # a comma inside a list value: "bits=4,8" -> "4 8"
            params[last_key] += " " + item
        else:
            raise NnccError("--pass", f"'{spec}': parameter '{item}' is not key=value")
    cls = PASSES.get(name, "--pass")
    return cls.from_params(params, "--pass")


def load_pipeline_toml(path: str | pathlib.Path) -> tuple[list[NnccPass], set[str]]:
    """Read ``[[pass]]`` tables (``name`` plus parameters) and an optional ``disabled`` list."""
    path = pathlib.Path(path)
    data = read_toml(path)
    passes = []
    tables, disabled = data.get("pass", []), data.get("disabled", [])
    if not isinstance(tables, list):
        raise NnccError(path, f"'pass' is a {type(tables).__name__}; passes are [[pass]] tables")
    if not isinstance(disabled, list) or not all(isinstance(name, str) for name in disabled):
        raise NnccError(path, f"'disabled' must be a list of pass names, got {disabled!r}")
    for i, table in enumerate(tables):
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise NnccError(path, f"[[pass]] #{i + 1} has no 'name' (a string)")
        params = {k: v for k, v in table.items() if k != "name"}
        cls = PASSES.get(table["name"], f"{path}: [[pass]] #{i + 1}")
        passes.append(cls.from_params(params, f"{path}: [[pass]] #{i + 1}"))
    unknown = set(data) - {"pass", "disabled"}
    if unknown:
        raise NnccError(path, f"unknown top-level keys {sorted(unknown)} (expected [[pass]] tables and 'disabled')")
    return passes, set(disabled)


def run_passes(model: ir.Model, passes: list[NnccPass], context: PassContext | None = None) -> list[PassRecord]:
    """Run ``passes`` in order on ``model`` (in place); one record per pass that ran."""
    context = context or PassContext.current()
    records: list[PassRecord] = []
    with context:
        for pass_ in passes:
            if pass_.name in context.disabled:
                continue
            for instrument in context.instruments:
                instrument.before(pass_, model)
            start = time.perf_counter()
            result = pass_(model)
            record = PassRecord(pass_.name, pass_.params(), result.modified, dict(pass_.stats), time.perf_counter() - start)
            model = result.model
            for instrument in context.instruments:
                instrument.after(pass_, model, record)
            records.append(record)
    return records
