"""Warnings a compile collects for the user: printed on stderr, kept in report["warnings"].

Code deep in a pass or a target (calibration falling back to random inputs, say) calls
:func:`warn`; the driver collects what one compile raised with :func:`collecting`, adds its
own (weights that are NaN or infinite, control flow costed on assumptions, coverage below
100%), and the CLI prints each as ``nncc: warning: <file>: <message>``. ``--strict`` turns any
warning into exit 1. Outside a compile (a pass used as a library), :func:`warn` does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_collector: contextvars.ContextVar[list[dict[str, str]] | None] = contextvars.ContextVar("nncc_notices", default=None)


def warn(kind: str, message: str) -> None:
    """Record a warning of ``kind`` (a short tag: 'calibration', 'weights', ...) once per compile."""
    found = _collector.get()
    entry = {"kind": kind, "message": message}
    if found is not None and entry not in found:
        found.append(entry)


@contextlib.contextmanager
def collecting() -> Iterator[list[dict[str, str]]]:
    """The warnings raised inside the block, in order."""
    found: list[dict[str, str]] = []
    token = _collector.set(found)
    try:
        yield found
    finally:
        _collector.reset(token)
