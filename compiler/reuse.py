"""One model file compiled point after point in one process (a sweep's worker, ``nncc optimize``'s
search): loaded, checked and shape-inferred once per version of the file, and the pipeline heads
its points begin with (``fold-batchnorm`` for four targets, the user's passes) run once for all
of them (:class:`nncc.pass_sharing.SharedPasses`).

Each compile still gets its own copy of the model (``compile_model(loaded=...)`` never changes
it, as for ``nncc compare``'s targets), so a point's report is the one a fresh process gives.
Only the last file is kept: a worker moving on to another model frees the previous one. A file
is the same version while its path, device, inode, size and modification time are (as for
:func:`nncc.driver.sha256_file`); an edit in place that keeps all five is not noticed.
"""

from __future__ import annotations

import os
from typing import Any

import onnx_ir as ir

from nncc.loading import load_model
from nncc.pass_sharing import SharedPasses

# Pipeline heads kept per model: a sweep over a pass parameter has one head per value; each kept
# head holds the weights its passes made (a model's worth for fold-batchnorm).
MAX_HEADS = 4

_kept: tuple[tuple[Any, ...], ir.Model, dict[tuple[Any, ...], SharedPasses]] | None = None


def file_version(path: str | os.PathLike) -> tuple[Any, ...]:
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def loaded_model(path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
                 input_values: dict[str, object] | None = None) -> ir.Model:
    """``load_model(path, input_shapes, input_values=...)``, loaded again only when the file or
    the options changed since the last call."""
    global _kept
    key = (file_version(path), repr(sorted((input_shapes or {}).items())), repr(sorted((input_values or {}).items())))
    if _kept is None or _kept[0] != key:
        _kept = None  # the previous model is freed before the next one loads
        _kept = (key, load_model(path, input_shapes, input_values=input_values), {})
    return _kept[1]


def shared_heads(model: ir.Model, where: object, context_key: tuple[Any, ...] = ()) -> SharedPasses:
    """The heads kept for ``model`` (the last :func:`loaded_model`), for compiles whose pass
    context reads the same data (``context_key``: e.g. the calibration file's version)."""
    if _kept is None or _kept[1] is not model:
        return SharedPasses(model, where)  # not a kept model: nothing to keep beside it
    heads = _kept[2]
    if context_key not in heads:
        heads[context_key] = SharedPasses(model, where, keep=MAX_HEADS)
    return heads[context_key]


def forget() -> None:
    """Drop the kept model and its heads (tests; a worker about to load something large)."""
    global _kept
    _kept = None
