"""What one run of a target's cost estimate processes, and its figures per sample.

Targets cost different things: mobile-cpu one inference of the model as exported (batch 1 in
the zoo), sparse-tc ``batch`` inputs in one batched run, hypar one *training step* of a
``batch``-sample mini-batch on an array of accelerators. Set side by side, their per-run totals
compare a sample with a mini-batch. So every report declares its workload
(``totals.workload``: kind, samples per run, what else the target needs to state) and divides
its totals by the samples (``totals.per_sample``), the figure ``nncc compare`` shows and gates.

Per sample means *throughput-normalized*: a run of N samples that takes T seconds and E joules
costs T/N and E/N per sample, however the samples share the hardware inside the run. A target
whose runs overlap (TrueNorth streams frames through its core pipeline) sets
``CostReport.interval_s``, the time between the starts of successive runs, and its per-sample
latency is interval_s / N: a long stream finishes one run per interval, not one per latency.

The Target base declares the default (an inference of the model's own batch) and a target
overrides it with class attributes (``workload_kind``, ``batch_field``) or, when its batch does
not multiply the model's (hypar divides the model's batch out), by overriding
``Target.workload``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import onnx_ir as ir

from nncc.errors import NnccError
from nncc.irutils import static_shape
from nncc.ops import RECURRENT_OPS

KINDS = ("inference", "training-step")
# How the compare table names a kind (short, so the column stays narrow).
KIND_LABELS = {"inference": "inference", "training-step": "train step"}


@dataclasses.dataclass(frozen=True)
class Workload:
    """What one run of a target's estimate processes.

    ``kind``: "inference" (a forward pass) or "training-step" (forward, backward and the weight
    update of one mini-batch). ``batch``: samples one run processes. ``details``: whatever
    else a reader needs to compare the run (hypar: ``accelerators``)."""

    kind: str = "inference"
    batch: int = 1
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"workload kind must be one of {', '.join(KINDS)} (got '{self.kind}')")
        if not (isinstance(self.batch, int) and self.batch >= 1):
            raise ValueError(f"workload batch must be a positive integer (got {self.batch!r})")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "batch": self.batch, **self.details}


def per_sample(workload: Workload, latency_s: float, energy_j: float, interval_s: float | None = None) -> dict[str, Any]:
    """Throughput-normalized figures of one run (see the module docstring), with how they were made."""
    basis = "pipeline interval / batch" if interval_s is not None else "run latency / batch"
    return {"latency_s": (interval_s if interval_s is not None else latency_s) / workload.batch,
            "energy_j": energy_j / workload.batch, "basis": f"{basis}; energy / batch"}


def label(workload: dict[str, Any]) -> str:
    """A report's ``totals.workload`` in a few words: "inference ×1", "train step ×256 (16 accelerators)"."""
    details = [f"{v} {k}" for k, v in workload.items() if k not in ("kind", "batch")]
    return f"{KIND_LABELS.get(workload['kind'], workload['kind'])} ×{workload['batch']}" + (f" ({', '.join(details)})" if details else "")


def model_batch(model: ir.Model) -> int:
    """The batch of the first graph input: its axis 0, or axis 1 when it is the sequence input
    X [seq, batch, I] of a recurrent layer (layout 0); 1 when the shape does not say."""
    value = model.graph.inputs[0] if len(model.graph.inputs) else None
    shape = static_shape(value) if value is not None else None
    axis = 0
    if shape and len(shape) == 3 and any(user.op_type in RECURRENT_OPS and slot == 0 and not user.attributes.get_int("layout", 0)
                                         for user, slot in value.uses()):
        axis = 1
    return shape[axis] if shape and shape[axis] > 0 else 1


def with_batch(target_name: str, batch_field: str | None, sets: dict[str, Any], batch: int | None) -> dict[str, Any]:
    """``sets`` (the ``--set`` values for one target) with ``--batch`` applied to its batch field.

    ``--batch N`` is ``--set <batch_field>=N``; the two naming different values is an error, not
    a silent choice. A target without a batch field refuses ``--batch`` (the caller decides
    whether that is an error: ``compile`` says so, ``compare`` leaves the target at its own
    workload, which its table shows)."""
    if batch is None:
        return sets
    if batch < 1:
        raise NnccError("--batch", f"must be a positive number of samples (got {batch})")
    if batch_field is None:
        raise NnccError("--batch", f"target '{target_name}' has no batch setting: it costs one inference of the model "
                                   "as exported (set the model's batch with --input-shape where the input is dynamic)")
    given = sets.get(batch_field)
    if given is not None and not _same_int(given, batch):
        raise NnccError("--batch", f"--batch {batch} and --set {batch_field}={given} disagree for target '{target_name}'")
    return {**sets, batch_field: batch}


def _same_int(value: Any, number: int) -> bool:
    try:
        return int(str(value).strip()) == number
    except ValueError:
        return False
