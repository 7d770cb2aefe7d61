"""Structured channel pruning that really shrinks the graph (SSL-style groups).

``nncc.passes.channel_groups`` finds which channels are coupled (a Conv's filters, the BN and
activations after it, the consumers' input slices, whole residual stages); this module ranks
the channels of each prunable group, picks the ones to keep and reslices every member, so
MACs, parameters and onnxruntime latency fall.

Ranking (``criterion``), per channel c of a group, summed over the group's filters (producer
Conv/Gemm/MatMul output filters and depthwise filters, so a residual stage's branches share one
ranking):

- ``l1``: sum of |w| of the filter (Li et al., Pruning filters for efficient ConvNets);
- ``l2``: the filter's Euclidean norm;
- ``group-lasso``: the L2 norm of everything channel c owns in the group -- producer filter
  rows, depthwise filters, consumer input-channel slices and BN scales -- the group whose
  norm SSL's group-lasso penalty drives to zero (Wen et al., NIPS 2016).

Each group drops ``floor(ratio * C)`` of its C channels, keeping at least ``min_channels`` and
a multiple of ``round_to`` (rounded up, so fewer go). ``layers`` (a regex over producer node
names) limits pruning to the groups it selects.

Idempotence. The ratio applies to the model the pass receives, so pruning twice would remove
channels twice. The pass therefore records what it pruned in the model's metadata
(``metadata_props["nncc.prune-channels"]``: per group key -- its producers' names -- the ratio
and the channel count left) and skips a group already pruned at the same ratio whose count
still matches. The record travels with the saved ONNX file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any, Literal, Optional

import numpy as np
import onnx_ir as ir

from nncc.analysis import model_summary
from nncc.errors import NnccError
from nncc.irutils import add_initializer, const_array, drop_unused_initializers
from nncc.pass_base import NnccPass
from nncc.passes.channel_groups import ChannelGroup, analyze
from nncc.passes.channel_space import FILTER_KINDS

METADATA_KEY = "nncc.prune-channels"


def channel_rows(array: np.ndarray, axis: int, block: int, count: int) -> np.ndarray:
    """``array`` as ``count`` rows, row c holding every entry that belongs to channel c."""
    return np.moveaxis(np.asarray(array, dtype=np.float64), axis, 0).reshape(count, -1)


def channel_scores(group: ChannelGroup, criterion: str) -> np.ndarray:
    """One importance score per channel of ``group`` (see the module docstring)."""
    scores = np.zeros(group.channels)
    for edit in group.edits:
        lasso_kinds = FILTER_KINDS + ("consumer", "scale")
        if edit.kind not in (lasso_kinds if criterion == "group-lasso" else FILTER_KINDS):
            continue
        rows = channel_rows(const_array(edit.node.inputs[edit.index]), edit.axis, edit.block, group.channels)
        if criterion == "l1":
            scores += np.abs(rows).sum(axis=1)
        elif criterion == "l2":
            scores += np.sqrt((rows**2).sum(axis=1))
        else:
            scores += (rows**2).sum(axis=1)
    return np.sqrt(scores) if criterion == "group-lasso" else scores


def keep_count(channels: int, ratio: float, min_channels: int, round_to: int) -> int:
    keep = max(channels - math.floor(ratio * channels + 1e-9), min(min_channels, channels))
    return min(channels, -(-keep // round_to) * round_to)


def block_indices(keep: np.ndarray, block: int) -> np.ndarray:
    return (keep[:, None] * block + np.arange(block)[None, :]).reshape(-1)


def reslice(graph: ir.Graph, group: ChannelGroup, keep: np.ndarray) -> None:
    """Cut every member of ``group`` down to the channels in ``keep`` (sorted indices)."""
    for edit in group.edits:
        node, value = edit.node, edit.node.inputs[edit.index]
        if edit.kind == "group":
            node.attributes["group"] = ir.AttrInt64("group", len(keep))
        elif edit.kind == "reshape":
            shape = const_array(value).copy()
            shape[edit.axis] = len(keep) * edit.block
            node.replace_input_with(edit.index, add_initializer(graph, f"{value.name}_pruned", shape))
        else:
            sliced = np.take(const_array(value), block_indices(keep, edit.block), axis=edit.axis)
            node.replace_input_with(edit.index, add_initializer(graph, f"{value.name}_pruned", np.ascontiguousarray(sliced)))
    for member in group.tensors:
        dims = list(member.value.shape)
        dims[member.axis] = len(keep) * member.block
        member.value.shape = ir.Shape(dims)


@dataclasses.dataclass
class PruneChannels(NnccPass):
    """Remove whole channels -- producer filters and every consumer's matching slice -- per coupled group."""

    name = "prune-channels"
    target_independent = True
    summary = "structured pruning: remove the weakest channels of each coupled group; the graph shrinks"

    ratio: float = 0.5                                   # fraction of each group's channels removed
    criterion: Literal["l1", "l2", "group-lasso"] = "l1"  # how channels are ranked
    min_channels: int = 1                                # never keep fewer per group
    round_to: int = 1                                    # keep a multiple of this many channels
    layers: Optional[str] = None                         # regex over producer names; None: every group

    def _check(self) -> None:
        where = f"--pass {self.name}"
        if not 0.0 <= self.ratio < 1.0:
            raise NnccError(where, f"ratio must be in [0, 1), got {self.ratio}")
        if self.min_channels < 1 or self.round_to < 1:
            raise NnccError(where, "min_channels and round_to must be at least 1")
        if self.criterion not in ("l1", "l2", "group-lasso"):
            raise NnccError(where, f"criterion must be l1, l2 or group-lasso, got {self.criterion!r}")
        if self.layers is not None:
            try:
                re.compile(self.layers)
            except re.error as e:
                raise NnccError(where, f"layers is not a regular expression: {e}") from None

    def apply(self, model: ir.Model) -> bool:
        self._check()
        graph = model.graph
        before = model_summary(model)
        record = json.loads(model.metadata_props.get(METADATA_KEY, "{}") or "{}").get("groups", {})
        groups = analyze(model)
        keeps: dict[int, np.ndarray] = {}
        rows: list[dict[str, Any]] = []
        for group in groups:
            if group.parts is None and group.producers:
                row, keep = self._decide(group, record)
                rows.append(row)
                if keep is not None:
                    keeps[group.id] = keep
        for group in groups:
            if group.parts is not None and _follow_parts(group, keeps) is not None:
                rows.append({"id": group.id, "concat": group.concat, "parts": [p.id for p in group.parts],
                             "members": group.members, "channels_before": group.channels,
                             "channels_after": len(keeps[group.id]), "status": "follows its parts"})
        for group in groups:
            if group.id in keeps:
                reslice(graph, group, keeps[group.id])
                if group.parts is None:
                    record[group.key] = {"ratio": self.ratio, "criterion": self.criterion, "channels": len(keeps[group.id])}
        if keeps:
            drop_unused_initializers(graph)
            model.metadata_props[METADATA_KEY] = json.dumps({"groups": record}, sort_keys=True)
        after = model_summary(model)
        self.stats.update(
            ratio=self.ratio, criterion=self.criterion,
            groups_pruned=sum(1 for r in rows if r.get("status") == "pruned"),
            groups_frozen=sum(1 for r in rows if r.get("status") == "frozen"),
            channels_before=sum(r["channels_before"] for r in rows if "concat" not in r),
            channels_after=sum(r["channels_after"] for r in rows if "concat" not in r),
            macs_before=before["macs"], macs_after=after["macs"],
            params_before=before["params"], params_after=after["params"],
            groups=rows,
        )  # fmt: skip
        return bool(keeps)

    def _decide(self, group: ChannelGroup, record: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
        """The report row of a base group and its keep list (None: left as it is)."""
        row: dict[str, Any] = {"id": group.id, "producers": group.producers, "members": group.members,
                               "channels_before": group.channels, "channels_after": group.channels}
        done = record.get(group.key, {})
        if group.frozen:
            return {**row, "status": "frozen", "reason": "; ".join(group.frozen)}, None
        if self.layers is not None and not any(re.search(self.layers, p) for p in group.producers):
            return {**row, "status": "not selected", "reason": f"no producer matches layers={self.layers}"}, None
        if done.get("ratio") == self.ratio and done.get("channels") == group.channels:
            return {**row, "status": "already pruned", "reason": f"pruned at ratio {self.ratio} before"}, None
        count = keep_count(group.channels, self.ratio, self.min_channels, self.round_to)
        if count == group.channels:
            return {**row, "status": "kept", "reason": "ratio removes no channel here"}, None
        scores = channel_scores(group, self.criterion)
        order = np.argsort(scores, kind="stable")  # weakest first; ties go to the lower index
        keep, removed = np.sort(order[group.channels - count:]), np.sort(order[: group.channels - count])
        row.update(status="pruned", criterion=self.criterion, channels_after=int(count),
                   removed=[int(c) for c in removed], removed_score_max=float(scores[removed].max()))
        return row, keep


def _follow_parts(group: ChannelGroup, keeps: dict[int, np.ndarray]) -> np.ndarray | None:
    """A composite's keep list: its parts' kept channels at their offsets (parts first, recursively)."""
    if group.parts is None or group.frozen:
        return keeps.get(group.id)
    if group.id not in keeps:
        parts = [_follow_parts(p, keeps) for p in group.parts]
        if all(k is None for k in parts):
            return None
        offsets = np.cumsum([0] + [p.channels for p in group.parts])
        keeps[group.id] = np.concatenate([(np.arange(p.channels) if k is None else k) + off
                                          for p, k, off in zip(group.parts, parts, offsets)])
    return keeps[group.id]
