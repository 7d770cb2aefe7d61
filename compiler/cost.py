"""What a target's estimate returns: per-layer costs, totals, and what it could not cost."""

from __future__ import annotations

import dataclasses
from typing import Any

from nncc.workload import Workload, per_sample


@dataclasses.dataclass
class LayerCost:
    """One report row. A target subclasses it to declare its own fields (crossbars, ADC bits,
    cores...); every declared field is a column of the report's ``layers`` table."""

    name: str
    op: str
    macs: int
    latency_s: float
    energy_j: float
    utilization: float | None = None

    def to_json(self) -> dict[str, Any]:
        return row_json(self)


def optional(**kwargs: Any) -> Any:
    """A report field that appears only when it holds something (not None, not empty): a column
    that applies to some rows of a target only (a GEMM's fused epilogue ops, a core's packing)."""
    return dataclasses.field(metadata={"omit_empty": True}, **kwargs)


def row_json(row: Any) -> dict[str, Any]:
    """The report form of a dataclass row: every field declared with ``repr`` (``repr=False`` keeps
    a field for the cost model only), nested dataclasses as objects, :func:`optional` fields
    only when they hold something."""
    out = {}
    for f in dataclasses.fields(row):
        value = getattr(row, f.name)
        if not f.repr or (f.metadata.get("omit_empty") and (value is None or value == [] or value == {})):
            continue
        out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_json() if hasattr(value, "to_json") else row_json(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass
class Unsupported:
    """An op no estimator of the target can cost: listed, never silently costed as zero."""

    name: str
    op: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class CostReport:
    layers: list[LayerCost]
    unsupported: list[Unsupported] = dataclasses.field(default_factory=list)
    area_mm2: float | None = None
    weight_bytes: int = 0
    # Set when layers overlap (pipelines, parallel cores); otherwise the layers' sum.
    latency_override_s: float | None = None
    # Per-inference cost outside any layer (runtime call, host-device set-up), added to the sum.
    fixed_latency_s: float = 0.0
    extra_totals: dict[str, Any] = dataclasses.field(default_factory=dict)
    # What one run processes; the driver sets it from ``Target.workload`` (nncc.workload).
    workload: Workload = dataclasses.field(default_factory=Workload)
    # Time between the starts of successive runs when runs overlap (a pipeline of frames);
    # None: one run ends before the next starts. Per-sample latency is taken from it when set.
    interval_s: float | None = None

    @property
    def latency_s(self) -> float:
        if self.latency_override_s is not None:
            return self.latency_override_s
        return float(sum(layer.latency_s for layer in self.layers)) + self.fixed_latency_s

    @property
    def energy_j(self) -> float:
        return float(sum(layer.energy_j for layer in self.layers))

    @property
    def macs(self) -> int:
        return int(sum(layer.macs for layer in self.layers))

    def totals(self) -> dict[str, Any]:
        totals = {
            "latency_s": self.latency_s,
            "energy_j": self.energy_j,
            "area_mm2": self.area_mm2,
            "macs": self.macs,
            "weight_bytes": int(self.weight_bytes),
            "unsupported_ops": len(self.unsupported),
        }
        totals.update(self.extra_totals)
        totals["workload"] = self.workload.to_json()
        totals["per_sample"] = per_sample(self.workload, self.latency_s, self.energy_j, self.interval_s)
        return totals
