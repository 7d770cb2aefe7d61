"""Warnings a compile collects for the user: printed on stderr, kept in report["warnings"].

Code deep in a pass or a target (calibration falling back to random inputs, say) calls
:func:`warn`; the driver collects what one compile raised with :func:`collecting`, adds its
own (weights that are NaN or infinite, control flow costed on assumptions, coverage below
100%), and the CLI prints each as ``nncc: warning: <file>: <message>``. ``--strict`` turns any
warning into exit 1. Outside a compile (a pass used as a library), :func:`warn` does nothing.
What libraries say themselves (their logs, Python warnings) goes only to ``--debug``
(:func:`route_library_output`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import warnings
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


_LOG_HANDLER: list[logging.Handler] = []


def route_library_output(debug: bool) -> None:
    """Where libraries' own output goes (the CLI calls it on every run). Libraries log warnings
    (onnxscript's folder: 'Skipping constant folding for op ...') that Python prints on stderr
    when nothing is configured; nncc speaks in its own one-line messages, so theirs are shown
    only with --debug."""
    root = logging.getLogger()
    for handler in _LOG_HANDLER:
        root.removeHandler(handler)
    _LOG_HANDLER[:] = [logging.StreamHandler() if debug else logging.NullHandler()]
    root.addHandler(_LOG_HANDLER[0])
    # Python warnings too (numpy's "invalid value encountered" on NaN/Inf weights, which nncc
    # reports in its own `nncc: warning:` line): routed to the same logs, shown with --debug.
    # Set on every run (not logging.captureWarnings, which does it once per process).
    warnings.showwarning = _log_warning


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
    logging.getLogger("py.warnings").warning(text)
