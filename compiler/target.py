"""The Target contract and the hardware-config helpers every target shares.

A target keeps three things apart: its ``Config`` (a frozen :class:`HardwareConfig` of
hardware constants, each naming its source and its valid range), its mapping (``lower``:
where each layer goes), and its cost model (``estimate``: latency, energy, area from the
mapping). The contract lives in the core because the driver, the registry and ``nncc
optimize`` use it; target packages import it from here (or from ``nncc.backends.base``).
"""

from __future__ import annotations

import abc
import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import onnx_ir as ir

from nncc.analysis import Layer, layers
from nncc.cost import CostReport, Unsupported
from nncc.crossbar import CrossbarGeometry
from nncc.errors import NnccError
from nncc.files import read_toml
from nncc.ops import standard_op
from nncc.pass_base import NnccPass, coerce_fields
from nncc.workload import Workload, model_batch


def hw(default: Any, source: str, unit: str = "", note: str = "", *, minimum: float | None = None,
       maximum: float | None = None, above: float | None = None, below: float | None = None,
       choices: Sequence[Any] | None = None) -> Any:
    """A hardware constant with its provenance and valid values.

    ``source`` is required (paper, datasheet, 'measured', or '[U]' with the reasoning).
    ``minimum``/``maximum`` bound the value inclusively, ``above``/``below`` exclusively
    (``above=0``: strictly positive); ``choices`` lists the allowed values. :class:`HardwareConfig`
    checks them whenever a config is built, ``--set`` and ``--config`` included.
    """
    if not source:
        raise ValueError("every hardware constant names its source")
    if choices is not None and not note:
        note = " | ".join(map(str, choices))
    checks = {"minimum": minimum, "maximum": maximum, "above": above, "below": below,
              "choices": tuple(choices) if choices is not None else None}
    return dataclasses.field(default=default, metadata={"source": source, "unit": unit, "note": note,
                                                        **{k: v for k, v in checks.items() if v is not None}})


def field_problem(name: str, value: Any, metadata: Any) -> str | None:
    """Why ``value`` breaks the checks ``hw`` declared for field ``name``, or None."""
    if "choices" in metadata and value not in metadata["choices"]:
        return f"{name} must be one of {', '.join(map(str, metadata['choices']))} (got '{value}')"
    if "minimum" in metadata and not value >= metadata["minimum"]:
        return f"{name} must be >= {metadata['minimum']:g} (got {value})"
    if "above" in metadata and not value > metadata["above"]:
        return f"{name} must be > {metadata['above']:g} (got {value})"
    if "maximum" in metadata and not value <= metadata["maximum"]:
        return f"{name} must be <= {metadata['maximum']:g} (got {value})"
    if "below" in metadata and not value < metadata["below"]:
        return f"{name} must be < {metadata['below']:g} (got {value})"
    return None


@dataclasses.dataclass(frozen=True)
class HardwareConfig:
    """Base of every target's ``Config``: a frozen dataclass whose fields are :func:`hw` constants.

    Building one checks every field against its declared range or choices, then calls
    :meth:`check` for rules that tie several fields together."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            problem = field_problem(f.name, getattr(self, f.name), f.metadata)
            if problem:
                raise ValueError(problem)
        self.check()

    def check(self) -> None:
        """Rules across fields (e.g. cell bits <= weight bits); raise ValueError when broken."""


def config_to_json(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def config_sources(config: Any) -> dict[str, dict[str, str]]:
    return {f.name: {k: v for k, v in f.metadata.items() if v} for f in dataclasses.fields(config)}


Row = TypeVar("Row")


@dataclasses.dataclass
class Mapping(Generic[Row]):
    """Where each layer went. Targets subclass it with their placement rows (dataclasses)."""

    layers: list[Row]
    unsupported: list[Unsupported] = dataclasses.field(default_factory=list)
    artifact_name: ClassVar[str | None] = None  # e.g. "crossbar_map.json"

    def to_json(self) -> dict[str, Any]:
        def plain(row: Any) -> Any:
            if dataclasses.is_dataclass(row):
                return {f.name: plain(getattr(row, f.name)) for f in dataclasses.fields(row) if f.repr}
            if isinstance(row, (list, tuple)):
                return [plain(r) for r in row]
            if isinstance(row, dict):
                return {k: plain(v) for k, v in row.items()}
            return row

        return {"layers": plain(self.layers), "unsupported": [u.to_json() for u in self.unsupported]}


@dataclasses.dataclass(frozen=True)
class SearchOption:
    """One setting of a compression knob for ``nncc optimize``: passes to run and the target
    settings that go with them (a weight width is a ``quantize`` pass for the numbers and a
    ``--set`` for the cost)."""

    label: str
    passes: tuple[str, ...] = ()
    sets: dict[str, Any] = dataclasses.field(default_factory=dict)


def knob(spec: str, values: list[Any], key: str, sets: str | None = None, extra: str = "") -> list[SearchOption]:
    """Options ``spec:key=v[,extra]`` for each v (and ``--set sets=v`` when ``sets`` is given)."""
    tail = f",{extra}" if extra else ""
    return [SearchOption(f"{spec} {key}={v}", (f"{spec}:{key}={v}{tail}",), {sets: v} if sets else {}) for v in values]


class Target(abc.ABC):
    name: ClassVar[str]
    Config: ClassVar[type]
    summary: ClassVar[str] = ""
    # Named alternative configs (e.g. mobile-cpu "pixel2", "host"); chosen with --set profile=NAME.
    profiles: ClassVar[dict[str, Any]] = {}
    # Extra artifacts the target can write on request (``--emit NAME``).
    emits: ClassVar[tuple[str, ...]] = ()
    # What one run of ``estimate`` is (nncc.workload.KINDS): an inference unless the target
    # costs something else (hypar: one training step).
    workload_kind: ClassVar[str] = "inference"
    # The Config field that sets how many samples one run processes (sparse-tc: inputs on top of
    # the model's own batch; hypar: the mini-batch, overriding ``workload``); ``--batch N`` sets
    # it. None: the target costs the model as exported and refuses ``--batch``.
    batch_field: ClassVar[str | None] = None
    # Labels of the target's own totals keys in report.md / report.html: rows (pattern, group,
    # label[, unit]) as in nncc.report_fields.FIELDS (groups: nncc.report_fields.GROUPS). A key
    # no row declares is still shown, raw, under "Other".
    report_fields: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # Whether ``lower`` runs the model (reram's calibration runs in onnxruntime): the longest
    # compiles, which ``compare --jobs`` starts first so that the others fill the other workers.
    runs_model: ClassVar[bool] = False

    @classmethod
    def search_space(cls) -> list[list[SearchOption]]:
        """Knobs ``nncc optimize`` searches, in pipeline order (structure first, precision last).

        The default suits any target that costs MACs and weight bytes; a target overrides it
        with the knobs its cost model rewards (ReRAM: weight bits and crossbar-saving ranks)."""
        return [knob("prune-channels", [0.25, 0.5], "ratio"),
                knob("factorize", [0.5, 0.25], "rank_ratio"),
                knob("prune", [0.5, 0.75], "ratio"),
                knob("quantize", [8, 6, 4], "bits")]

    def __init__(self, config: Any | None = None):
        self.config = config if config is not None else self.default_config()

    @classmethod
    def default_config(cls) -> Any:
        return cls.Config()

    @classmethod
    def configure(cls, config_file: str | pathlib.Path | None = None, sets: dict[str, Any] | None = None) -> Target:
        """Build with overrides: ``--config hw.toml`` first, then each ``--set key=value``."""
        values: dict[str, Any] = {}
        if config_file is not None:
            data = read_toml(config_file)
            # Either flat keys or a [<target-name>] table, so one file can serve several targets.
            table = data.get(cls.name, {k: v for k, v in data.items() if not isinstance(v, dict)})
            if not isinstance(table, dict):
                raise NnccError(config_file, f"'{cls.name}' must be a table of constants ([{cls.name}]), not {type(table).__name__}")
            values.update(table)
        values.update(sets or {})
        base = cls.default_config()
        profile = values.pop("profile", None)
        if profile is not None:
            if not isinstance(profile, str):
                raise NnccError("profile", f"target '{cls.name}': a profile is a name (profiles: {', '.join(cls.profiles) or 'none'}), "
                                           f"not {type(profile).__name__}")
            if profile not in cls.profiles:
                raise NnccError("--set profile", f"target '{cls.name}' has no profile '{profile}' (profiles: {', '.join(cls.profiles) or 'none'})")
            base = cls.profiles[profile]() if callable(cls.profiles[profile]) else cls.profiles[profile]
        changes = coerce_fields(cls.Config, values, f"--set ({cls.name})")
        try:
            return cls(dataclasses.replace(base, **changes))
        except (ValueError, TypeError) as e:
            raise NnccError(f"--set ({cls.name})", str(e)) from None

    def workload(self, model: ir.Model) -> Workload:
        """What one run of ``estimate`` processes (``totals.workload``; ``totals.per_sample`` divides
        by its batch): ``workload_kind`` on the model's own batch times the ``batch_field`` value.
        A target whose batch replaces the model's, or that has more to state, overrides this."""
        runs = getattr(self.config, self.batch_field) if self.batch_field else 1
        return Workload(self.workload_kind, model_batch(model) * int(runs))

    def legalize(self) -> list[NnccPass]:
        """Passes the hardware requires before lowering (precision, fan-in, tile size)."""
        return []

    def crossbar_geometry(self) -> CrossbarGeometry | None:
        """The crossbars passes plan for (rank-clip, delete-groups); None: this target has none."""
        return None

    @abc.abstractmethod
    def lower(self, model: ir.Model, calibration: dict[str, np.ndarray] | None = None) -> Mapping:
        """Place every layer on the hardware; layers it cannot place go to ``unsupported``.

        ``calibration`` holds sample inputs (model input name -> samples on a leading axis) for
        targets that measure the model (ADC bits, spike rates, activation density); None: the
        target uses its own default inputs and says so."""

    @abc.abstractmethod
    def estimate(self, mapping: Mapping) -> CostReport:
        """Latency, energy and area of a mapping."""

    def ratios_to_uncompressed(self, before: CostReport, after: CostReport) -> dict[str, Any] | None:
        """Ratios the target reports against the same model compiled without the user's passes
        (ReRAM: Group Scissor's crossbar- and routing-area ratios). None: the target has none,
        and the driver skips the second lowering."""
        return None

    def emit(self, kind: str, model: ir.Model, out_dir: pathlib.Path) -> list[pathlib.Path]:
        """Write an extra deployable artifact (``--emit KIND``)."""
        raise NnccError("--emit", f"target '{self.name}' cannot emit '{kind}' (it emits: {', '.join(self.emits) or 'nothing'})")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "config": config_to_json(self.config), "sources": config_sources(self.config)}


def partition_layers(model: ir.Model, costable: set[str] | frozenset[str], reason: str) -> tuple[list[Layer], list[Unsupported]]:
    """Split the layer table into those the target's estimators cover and the rest (a contrib op
    whose standard form is costable counts, e.g. com.microsoft::DynamicQuantizeLSTM as LSTM)."""
    supported, unsupported = [], []
    for layer in layers(model):
        if standard_op(layer.op, layer.domain) in costable:
            supported.append(layer)
        else:
            unsupported.append(Unsupported(layer.name, layer.op if not layer.domain else f"{layer.domain}::{layer.op}", reason))
    return supported, unsupported
