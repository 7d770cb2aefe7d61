"""The points of a design-space sweep (``nncc sweep``): models × targets × the Cartesian product
of ``--grid`` hardware keys and ``-p`` pass-parameter values, or a seeded random sample of it.

A point is everything one compile needs, in plain JSON-able values, so that the same
:class:`Point` can be shipped to a local worker process or to a Ray worker and give the same
result. Its key hashes the model's bytes (sha256), the target and the parameters: a rerun of the
same command finds the same keys in the results database and skips what is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import random
from collections.abc import Iterator
from typing import Any

from nncc.errors import NnccError
from nncc.registry import TARGETS


@dataclasses.dataclass(frozen=True)
class Axis:
    """One varying dimension: a hardware key (``target`` None: every target's) or a pass parameter."""
    key: str
    values: tuple[str, ...]
    target: str | None = None   # ``reram.crossbar_size``: this target only
    pass_index: int | None = None  # a -p PASS:key=V1|V2 axis: the index of that pass in the pipeline


@dataclasses.dataclass
class SweepSpec:
    models: list[str]
    targets: list[str]
    axes: list[Axis]
    passes: list[tuple[str, dict[str, str]]]   # -p specs: (name, fixed parameters); axes add the varying ones
    sets: dict[str, str] = dataclasses.field(default_factory=dict)   # fixed --set values (every target that has the key)
    config_file: str | None = None
    eval_data: str | None = None
    input_shapes: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    samples: int | None = None   # --samples: that many random points of the product (seeded)
    seed: int = 0
    timeout_s: float | None = None
    plugins: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Point:
    index: int          # position in the full product (the report's order)
    key: str
    model: str
    model_sha256: str
    target: str
    params: dict[str, Any]   # {"set": {...}, "passes": [...]} and what else changes the result

    def task(self, spec: SweepSpec) -> dict[str, Any]:
        """What a worker needs, as plain data (pickled to a local worker, or a Ray task's argument)."""
        return {"key": self.key, "model": self.model, "target": self.target, "sets": self.params["set"],
                "passes": self.params["passes"], "config_file": spec.config_file, "eval_data": spec.eval_data,
                "input_shapes": {k: list(v) for k, v in spec.input_shapes.items()}, "timeout_s": spec.timeout_s,
                "plugins": list(spec.plugins)}


def parse_grid(items: tuple[str, ...]) -> list[Axis]:
    """``--grid KEY=V1,V2`` or ``--grid TARGET.KEY=V1,V2``."""
    axes = []
    for item in items:
        key, sep, values = item.partition("=")
        vals = tuple(v.strip() for v in values.split(",") if v.strip())
        if not sep or not key.strip() or not vals:
            raise NnccError("--grid", f"'{item}' is not KEY=V1,V2,...")
        target, dot, field = key.strip().rpartition(".")
        axes.append(Axis(field, tuple(dict.fromkeys(vals)), target if dot else None))
    seen = [(a.target, a.key) for a in axes]
    for dup in {s for s in seen if seen.count(s) > 1}:
        raise NnccError("--grid", f"'{'.'.join(filter(None, dup))}' is given twice")
    return axes


def parse_pass_grid(specs: tuple[str, ...]) -> tuple[list[tuple[str, dict[str, str]]], list[Axis]]:
    """``-p PASS:key=V1|V2,key2=V`` -> the pipeline (fixed parameters) and one axis per key with a ``|``."""
    passes, axes = [], []
    for i, spec in enumerate(specs):
        name, _, args = spec.partition(":")
        raw: dict[str, str] = {}
        for item in filter(None, (a.strip() for a in args.split(","))):
            key, sep, value = item.partition("=")
            if sep:
                raw[key.strip()] = value.strip()
            elif raw:  # a comma inside a list value, as `nncc compile -p` reads it: "bits=4,8"
                last = list(raw)[-1]
                raw[last] += "," + item
            else:
                raise NnccError("--pass", f"'{spec}': parameter '{item}' is not key=value")
        fixed: dict[str, str] = {}
        for key, value in raw.items():
            values = tuple(dict.fromkeys(v.strip() for v in value.split("|") if v.strip()))
            if len(values) > 1:
                axes.append(Axis(key, values, pass_index=i))
            else:
                fixed[key] = value
        passes.append((name.strip(), fixed))
    return passes, axes


def check_spec(spec: SweepSpec) -> None:
    """Usage errors before anything runs: an unknown target, a grid key a target does not have
    (a typo must not silently sweep nothing), a pass that does not parse with one of its values."""
    from nncc.pipeline import parse_pass_spec

    if not spec.models:
        raise NnccError("nncc sweep", "no model given")
    for m in spec.models:
        if not pathlib.Path(m).is_file():
            raise NnccError(m, "no such file")
    for name in spec.targets:
        TARGETS.get(name, "--target")
    for axis in spec.axes:
        if axis.pass_index is not None:
            continue
        if axis.target is not None:
            if axis.target not in spec.targets:
                raise NnccError("--grid", f"'{axis.target}.{axis.key}': '{axis.target}' is not among the swept targets")
            owners = [axis.target]
        else:
            owners = spec.targets
        for name in owners:
            if axis.key not in _known_keys(name):
                owner = next((t for t in spec.targets if axis.key in _known_keys(t)), None)
                hint = f" (write '{owner}.{axis.key}' to sweep it on '{owner}' only)" if owner and not axis.target else ""
                raise NnccError("--grid", f"target '{name}' has no constant '{axis.key}'{hint}")
    for key in spec.sets:
        if not any(key in _known_keys(t) for t in spec.targets):
            raise NnccError("--set", f"no swept target has a constant '{key}'")
    for i, (name, fixed) in enumerate(spec.passes):
        own = [a for a in spec.axes if a.pass_index == i]
        for axis in own or [None]:
            for value in (axis.values if axis else ("",)):
                params = {**fixed, **{a.key: a.values[0] for a in own}, **({axis.key: value} if axis else {})}
                parse_pass_spec(_spec_text(name, params))
    if spec.samples is not None and spec.samples < 1:
        raise NnccError("--samples", "must be at least 1")


def _known_keys(target: str) -> set[str]:
    cls = TARGETS.get(target, "--target")
    return set(cls.Config.__dataclass_fields__) | ({"profile"} if cls.profiles else set())


def _spec_text(name: str, params: dict[str, str]) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")


def _file_sha(path: str | None) -> str | None:
    if not path:
        return None
    from nncc.driver import sha256_file

    return sha256_file(pathlib.Path(path))


def point_key(model_sha256: str, target: str, params: dict[str, Any]) -> str:
    text = json.dumps({"model": model_sha256, "target": target, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _blocks(spec: SweepSpec) -> list[tuple[str, str, list[Axis]]]:
    """(model, target, the axes that apply to it): a ``reram.`` axis does not multiply other targets' points."""
    return [(m, t, [a for a in spec.axes if a.target in (None, t)]) for m in spec.models for t in spec.targets]


def count(spec: SweepSpec) -> int:
    return sum(_size(axes) for _, _, axes in _blocks(spec))


def _size(axes: list[Axis]) -> int:
    n = 1
    for a in axes:
        n *= len(a.values)
    return n


def points(spec: SweepSpec) -> list[Point]:
    """Every point of the product, or ``spec.samples`` of them drawn without replacement with
    ``random.Random(seed)`` (by index, so a sample of a huge product never enumerates it)."""
    total = count(spec)
    chosen: Iterator[int] = iter(range(total))
    if spec.samples is not None and spec.samples < total:
        chosen = iter(sorted(random.Random(spec.seed).sample(range(total), spec.samples)))
    shas = {m: _file_sha(m) for m in spec.models}
    context = {k: v for k, v in {"config": _file_sha(spec.config_file), "eval": _file_sha(spec.eval_data),
                                 "input_shape": {k: list(v) for k, v in spec.input_shapes.items()} or None}.items() if v}
    out, offset = [], 0
    blocks = _blocks(spec)
    block = 0
    for index in chosen:
        while index >= offset + _size(blocks[block][2]):
            offset += _size(blocks[block][2])
            block += 1
        model, target, axes = blocks[block]
        values = _decode(index - offset, axes)
        params = _params(spec, target, axes, values, context)
        out.append(Point(index, point_key(shas[model], target, params), model, shas[model], target, params))
    return out


def _decode(i: int, axes: list[Axis]) -> list[str]:
    """Mixed-radix digits of ``i``: the same order as itertools.product over the axes."""
    digits = []
    for a in reversed(axes):
        i, d = divmod(i, len(a.values))
        digits.append(a.values[d])
    return digits[::-1]


def _params(spec: SweepSpec, target: str, axes: list[Axis], values: list[str], context: dict[str, Any]) -> dict[str, Any]:
    known = _known_keys(target)
    sets = {k: v for k, v in spec.sets.items() if k in known}
    pass_params = [dict(fixed) for _, fixed in spec.passes]
    for axis, value in zip(axes, values):
        if axis.pass_index is None:
            sets[axis.key] = value
        else:
            pass_params[axis.pass_index][axis.key] = value
    passes = [_spec_text(name, params) for (name, _), params in zip(spec.passes, pass_params)]
    return {"set": dict(sorted(sets.items())), "passes": passes, **context}
