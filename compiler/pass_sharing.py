"""Passes that begin several targets' pipelines, run once for all of them (``nncc compare``).

Four of the six targets legalize with ``fold-batchnorm`` first, after the same user passes, so
``compare`` would fold the same weights four times. A pass that reads nothing of the compile
target (``NnccPass.target_independent``: not ``PassContext.target`` nor its crossbar geometry)
gives the same model whichever target runs it, so the longest run of such passes at the head of
a pipeline is done once per distinct run of passes, and each target continues from its own copy
(:func:`nncc.loading.copy_model`: new graph, the same read-only weights). A pass of a plugin is
target-dependent unless it says otherwise, so it is never shared by accident. Shapes are
inferred again after a run of passes that changed the model (unless each pass that did keeps
shapes: ``NnccPass.keeps_shapes``), once for a shared head too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import onnx_ir as ir

from nncc.errors import NnccError
from nncc.loading import copy_model, freeze_weights
from nncc.shapes import infer_shapes
from nncc.pass_base import NnccPass
from nncc.pipeline import PassContext, PassRecord, run_passes


def shareable_head(passes: list[NnccPass], context: PassContext) -> int:
    """How many passes at the head of ``passes`` may be shared between targets (none while an
    instrument watches the passes: it must see each target's own run)."""
    if context.instruments:
        return 0
    count = 0
    while count < len(passes) and passes[count].target_independent:
        count += 1
    return count


def _signature(passes: list[NnccPass], context: PassContext) -> tuple[Any, ...]:
    return tuple((p.name, repr(sorted(p.params().items()))) for p in passes if p.name not in context.disabled)


class SharedPasses:
    """Results of pipeline heads, kept for the targets of one compare. ``original`` is never
    changed: each head runs on a copy, and each caller gets a copy of the head's result."""

    def __init__(self, original: ir.Model, where: object = "model", keep: int = 0):
        self.original = original
        self.where = where  # what shape inference errors name: the model's file
        # keep > 0: every head :meth:`run` runs is kept too, the ``keep`` most recently used
        # (compiles that come one at a time: a sweep's points, nncc.reuse); 0: only what
        # :meth:`prepare` ran (compare knows every pipeline up front).
        self.keep = keep
        self._heads: dict[tuple[Any, ...], tuple[ir.Model, list[PassRecord]]] = {}

    def prepare(self, pipelines: list[list[NnccPass]], context: PassContext) -> None:
        """Run now each shareable head that begins more than one of ``pipelines`` (before
        ``compare --jobs`` forks its workers, so that each inherits it instead of running it)."""
        heads: dict[tuple[Any, ...], list[list[NnccPass]]] = {}
        for passes in pipelines:
            head = passes[: shareable_head(passes, context)]
            heads.setdefault(_signature(head, context), []).append(head)
        for key, same in heads.items():
            if key and len(same) > 1:
                try:
                    self._head(same[0], context)
                except NnccError:
                    pass  # left to each target's own compile, which raises it again in its own row

    def run(self, passes: list[NnccPass], context: PassContext) -> tuple[ir.Model, list[PassRecord]]:
        """(The model after ``passes``, one record per pass that ran), as :func:`run_passes` on a
        copy of the original gives them, followed by shape inference if a pass changed the model.
        Continues from the longest head already run; the rest runs on this target's copy only
        (a head no other target begins with is not kept: that would cost a second copy)."""
        head = shareable_head(passes, context)
        if self.keep and head:
            self._keep(passes[:head], context)
        done, start, records = self._longest_run(passes[:head], context)
        model = copy_model(start)
        # Each report gets its own records (a target's report may be changed after it is built).
        records = [dataclasses.replace(r, params=dict(r.params), stats=_copy_stats(r.stats)) for r in records]
        ran = self._run_head(model, passes[done:head], context) + run_passes(model, passes[head:], context)
        if shapes_stale(ran, passes):
            infer_shapes(model, self.where)
        return model, records + ran

    def _head(self, passes: list[NnccPass], context: PassContext) -> tuple[ir.Model, list[PassRecord]]:
        """Run and keep the head ``passes`` (target-independent), continuing from the longest
        head already kept (truenorth's fold-batchnorm + legalize-core-ops continues from the
        others' fold-batchnorm)."""
        key = _signature(passes, context)
        if not key:
            return self.original, []
        if key not in self._heads:
            done, start, before = self._longest_run(passes, context)
            model = copy_model(start)
            ran = self._run_head(model, passes[done:], context)
            if shapes_stale(ran, passes):
                infer_shapes(model, self.where)  # once for every target that continues from here
            freeze_weights(model)  # the weights the head made are shared by every target's copy too
            self._heads[key] = (model, before + ran)
        return self._heads[key]

    def _keep(self, passes: list[NnccPass], context: PassContext) -> None:
        """Run or reuse the head ``passes``, the most recently used of at most ``keep`` kept heads
        (a failing head is left to the caller's own run, which raises it)."""
        key = _signature(passes, context)
        if key in self._heads:
            self._heads[key] = self._heads.pop(key)  # most recently used last
            return
        try:
            self._head(passes, context)
        except NnccError:
            return
        while len(self._heads) > self.keep:
            del self._heads[next(iter(self._heads))]

    def _longest_run(self, passes: list[NnccPass], context: PassContext) -> tuple[int, ir.Model, list[PassRecord]]:
        """(k, model, records) of the longest head ``passes[:k]`` already kept (0: the original)."""
        for k in range(len(passes), 0, -1):
            if (hit := self._heads.get(_signature(passes[:k], context))) is not None:
                return k, *hit
        return 0, self.original, []

    @staticmethod
    def _run_head(model: ir.Model, passes: list[NnccPass], context: PassContext) -> list[PassRecord]:
        # Without the target: a pass marked target-independent that reads it fails loudly.
        return run_passes(model, passes, dataclasses.replace(context, target=None, crossbar=None))


def shapes_stale(records: list[PassRecord], passes: list[NnccPass]) -> bool:
    """Whether a pass of ``records`` changed the model without keeping its shapes (a run of
    ``passes``): shapes must then be inferred again."""
    keeps = {p.name: p.keeps_shapes for p in passes}
    return any(r.modified and not keeps.get(r.name, False) for r in records)


def _copy_stats(stats: Any) -> Any:
    if isinstance(stats, dict):
        return {k: _copy_stats(v) for k, v in stats.items()}
    if isinstance(stats, list):
        return [_copy_stats(v) for v in stats]
    return stats
