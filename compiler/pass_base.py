"""The pass contract: a small verb-named onnx-ir in-place pass with dataclass parameters.

A pass subclasses :class:`NnccPass`, declares its parameters as dataclass fields, sets
``name`` (the registry and CLI name, e.g. ``fold-batchnorm``) and implements ``apply``.
It must be idempotent (a second run returns ``modified=False``) and records what it did in
``self.stats``, which lands in the report's ``passes`` list.

Stats schema (one for every pass, checked by :func:`check_stats` after every ``apply``):
pass-specific summary values under their own keys, plus two tables when the pass works layer
by layer:
- ``layers``: a list of records, one per layer the pass worked on (rewrote, or measured and
  found already done), each with ``name`` (the layer);
- ``skipped``: a list of records, one per layer (or weight) it declined, each with ``name``
  and ``reason`` (and ``op`` where known).
Counts go under their own keys (``factorized``, ``quantized_layers``, ...), never in place of a table.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar

import onnx_ir as ir

from nncc.errors import NnccError


@dataclasses.dataclass
class NnccPass(ir.passes.InPlacePass):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # Max abs output error against the original for a graph that does not depend on
    # what this pass removes; None for passes that change the numbers by design.
    exact_tolerance: ClassVar[float | None] = None
    # True when ``apply`` reads nothing of the compile target (``PassContext.target``, its
    # crossbar geometry): the model it gives is then the same for every target, and ``nncc
    # compare`` runs it once for all targets whose pipelines begin with it (nncc.pass_sharing).
    # False unless a pass says so.
    target_independent: ClassVar[bool] = False
    # True when every value ``apply`` creates or rewires gets the shape and type onnx's shape
    # inference would give it (tests/test_pass_sharing.py checks this on real models): no
    # re-inference follows the pass (0.1-0.2 s on ResNet-50). False unless a pass says so.
    keeps_shapes: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.stats: dict[str, Any] = {}

    def apply(self, model: ir.Model) -> bool:
        """Rewrite ``model`` in place; return whether anything changed."""
        raise NotImplementedError

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.stats = {}
        modified = bool(self.apply(model))
        check_stats(self.stats, f"pass '{self.name}'")  # every pass, so none drifts from the schema
        return ir.passes.PassResult(model, modified)

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_params(cls, params: dict[str, Any], where: str = "--pass") -> NnccPass:
        """Build from CLI/TOML parameters, converting strings to the declared field types."""
        return cls(**coerce_fields(cls, params, f"{where} {cls.name}"))

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}:{args}" if args else self.name


def check_stats(stats: dict[str, Any], where: str) -> None:
    """Raise TypeError when ``stats`` breaks the schema of the module docstring."""
    for key, needs in (("layers", ("name",)), ("skipped", ("name", "reason"))):
        if key not in stats:
            continue
        table = stats[key]
        if not isinstance(table, list) or not all(isinstance(r, dict) and all(k in r for k in needs) for r in table):
            raise TypeError(f"{where}: stats['{key}'] must be a list of records with {', '.join(needs)}")


def coerce_fields(cls: type, params: dict[str, Any], where: str) -> dict[str, Any]:
    """Convert ``params`` to the types of ``cls``'s dataclass fields; reject unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    out = {}
    for key, raw in params.items():
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise NnccError(where, f"unknown parameter '{key}' (parameters: {known})")
        out[key] = coerce_value(raw, hints.get(key, type(fields[key].default)), f"{where}: {key}")
    return out


def coerce_value(raw: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce_value(raw, arg, where)
            except NnccError as e:
                errors.append(e.what)
        raise NnccError(where, f"cannot read '{raw}' as {annotation}")
    if origin is typing.Literal:
        choices = args
        for choice in choices:
            if raw == choice or str(raw) == str(choice):
                return choice
        raise NnccError(where, f"'{raw}' is not one of {', '.join(map(str, choices))}")
    if origin in (list, tuple):
        items = raw if isinstance(raw, (list, tuple)) else [s for s in str(raw).replace(";", " ").split() if s]
        inner = args[0] if args else str
        return origin(coerce_value(item, inner, where) for item in items)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise NnccError(where, f"'{raw}' is not a boolean (true/false)")
    if annotation in (int, float):
        if isinstance(raw, bool):
            raise NnccError(where, f"'{raw}' is not a number")
        try:
            if annotation is int:
                value = float(raw) if not isinstance(raw, int) else raw
                if float(value) != int(value):
                    raise ValueError
                return int(value)
            text = str(raw).strip()
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except (TypeError, ValueError):
            raise NnccError(where, f"'{raw}' is not {'an integer' if annotation is int else 'a number'}") from None
    if annotation is str:
        return str(raw)
    return raw
