"""Regularizer specs: the names ``nncc finetune -r`` and the ``finetune`` pass accept, and the
``NAME:key=value,...`` parsing. Its own module, so the regularizer families (:mod:`.regularizers`,
:mod:`.quantization`) import only their common base and never each other."""

from __future__ import annotations

from typing import Any

from nncc.errors import NnccError
from nncc.pass_base import coerce_fields
from nncc.training.quantization import BitSliceL1, QuantReg
from nncc.training.regularizers import Force, GroupHoyer, GroupLasso, Hoyer, L1, Nuclear, Regularizer

REGULARIZERS: dict[str, type[Regularizer]] = {
    cls.name: cls for cls in (L1, GroupLasso, Hoyer, GroupHoyer, Nuclear, Force, BitSliceL1, QuantReg)
}


def parse_regularizer(spec: str) -> Regularizer:
    """``"group-lasso:lambda=1e-4,groups=filters+channels"`` -> a configured regularizer."""
    name, _, args = spec.partition(":")
    name = name.strip()
    where = f"--regularizer {spec}"
    if name not in REGULARIZERS:
        raise NnccError("--regularizer", f"unknown regularizer '{name}' (regularizers: {', '.join(REGULARIZERS)})")
    params: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise NnccError(where, f"parameter '{item}' is not key=value")
        key = key.strip()
        params["lam" if key in ("lambda", "alpha") else key] = value.strip()
    return REGULARIZERS[name](**coerce_fields(REGULARIZERS[name], params, where))


def parse_regularizers(specs) -> list[Regularizer]:
    """A list of specs, or one string of specs joined by ``+`` between names (``hoyer+nuclear:lambda=1e-3``)."""
    if isinstance(specs, str):
        specs = split_specs(specs)
    return [parse_regularizer(s) for s in specs if s.strip()]


def split_specs(text: str) -> list[str]:
    """Split ``"group-lasso:groups=filters+channels+hoyer"`` at the ``+`` that start a new regularizer name."""
    parts: list[str] = []
    for piece in text.split("+"):
        head = piece.split(":", 1)[0].strip()
        if head in REGULARIZERS or not parts:
            parts.append(piece)
        else:
            parts[-1] += "+" + piece
    return [p.strip() for p in parts if p.strip()]
