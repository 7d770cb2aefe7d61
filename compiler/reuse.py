"""One model file compiled point after point in one process (a sweep's worker, ``nncc optimize``'s
search): loaded, checked and shape-inferred once per version of the file, and the pipeline heads
its points begin with (``fold-batchnorm`` for four targets, the user's passes) run once for all
of them (:class:`nncc.pass_sharing.SharedPasses`). A target's measurement on the model (reram's
calibration runs) is kept for the next compile of the same model on the same inputs
(:class:`LastResult`, keyed by a :class:`ModelFingerprint`).

Each compile still gets its own copy of the model (``compile_model(loaded=...)`` never changes
it, as for ``nncc compare``'s targets), so a point's report is the one a fresh process gives.
Only the last file is kept: a worker moving on to another model frees the previous one. A file
is the same version while its path, device, inode, size and modification time are (as for
:func:`nncc.driver.sha256_file`); an edit in place that keeps all five is not noticed.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

import onnx_ir as ir

from nncc.loading import load_model
from nncc.pass_sharing import SharedPasses

# Pipeline heads kept per model: a sweep over a pass parameter has one head per value; each kept
# head holds the weights its passes made (a model's worth for fold-batchnorm).
MAX_HEADS = 4

_kept: tuple[tuple[Any, ...], ir.Model, dict[tuple[Any, ...], SharedPasses]] | None = None


def file_version(path: str | os.PathLike) -> tuple[Any, ...]:
    """(real path, device, inode, size, modification time): what tells one version of a file
    from the next here (nncc.driver.sha256_file hashes a file once per version too)."""
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
    """Drop the kept model, its heads and every kept result (tests)."""
    global _kept
    _kept = None
    for memo in list(_MEMOS):
        memo.forget()


class ModelFingerprint:
    """What a model computes, compared cheaply: its graphs' nodes (domain, op, inputs, outputs,
    attributes), inputs and opsets as a digest of their text, and its weight tensors as the very
    objects (held, so that no other tensor takes their place; compared by identity: loaded weights
    are read-only, a pass replaces a weight and never writes into one, and a copy of the model
    (:func:`nncc.loading.copy_model`) holds the same tensor objects)."""

    def __init__(self, model: ir.Model):
        text: list[str] = [repr(sorted(model.opset_imports.items()))]
        tensors: list[Any] = []
        for graph in model.graphs():
            text.append(repr([(v.name, str(v.dtype), str(v.shape)) for v in graph.inputs]))
            text.append(repr([v.name for v in graph.outputs]))
            for name, value in graph.initializers.items():
                text.append(name)
                tensors.append(value.const_value)
            for node in graph:
                text.append(f"{node.domain}:{node.op_type}:{node.overload}:{[v.name if v is not None else '' for v in node.inputs]}"
                            f":{[v.name for v in node.outputs]}")
                for name, attr in node.attributes.items():
                    if attr.type == ir.AttributeType.TENSOR:
                        text.append(name)
                        tensors.append(attr.value)
                    elif attr.type == ir.AttributeType.TENSORS:
                        text.append(name)
                        tensors.extend(attr.value)
                    elif attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS):
                        text.append(name)  # its nodes are among model.graphs()
                    else:
                        text.append(f"{name}={attr.value!r}")
        self.digest = hashlib.sha256("\n".join(text).encode()).digest()
        self.tensors = tensors

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ModelFingerprint) and self.digest == other.digest and len(self.tensors) == len(other.tensors)
                and all(a is b for a, b in zip(self.tensors, other.tensors)))

    __hash__ = None  # type: ignore[assignment]


def arrays_digest(feeds: Iterable[dict[str, np.ndarray]]) -> bytes:
    """A digest of model inputs (names, dtypes, shapes and bytes)."""
    digest = hashlib.blake2b()
    for feed in feeds:
        for name, array in sorted(feed.items()):
            array = np.ascontiguousarray(array)
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.data)
    return digest.digest()


_MEMOS: weakref.WeakSet[LastResult] = weakref.WeakSet()


class LastResult:
    """The last ``size`` results, each kept for the next call in this process that asks with an
    equal key (a sweep's worker compiling the same model at another hardware point)."""

    def __init__(self, size: int = 1):
        self.size = size
        self._kept: list[tuple[Any, Any]] = []  # (key, value), most recently used last
        _MEMOS.add(self)

    def get(self, key: Any) -> Any:
        """The value kept under a key equal to ``key``, else None."""
        for i, (kept, value) in enumerate(self._kept):
            if kept == key:
                self._kept.append(self._kept.pop(i))
                return value
        return None

    def put(self, key: Any, value: Any) -> None:
        self._kept = [*self._kept, (key, value)][-self.size:]

    def forget(self) -> None:
        self._kept = []
