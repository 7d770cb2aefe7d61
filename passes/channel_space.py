"""Channel spaces: the union-find behind the channel-coupling analysis of ``prune-channels``.

Every tensor that carries channels gets an entry ``(element, axis, block)`` (see
:mod:`nncc.passes.channel_groups`); an element's union-find root is one channel space, with
its channel count, the edits pruning it needs and, when it must not be pruned, the reasons.
The per-op rules (:mod:`nncc.passes.channel_ops`) create, unite and freeze spaces through
:class:`ChannelSpaces`; :mod:`nncc.passes.channel_groups` walks the graph with them.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import onnx_ir as ir

from nncc.irutils import static_shape
from nncc.weights import layer_name

# Edit kinds whose weights rank a channel: a producer's filter and a depthwise filter.
FILTER_KINDS = ("filter", "dwfilter")


@dataclasses.dataclass(frozen=True)
class Edit:
    """One thing to cut when a group loses channels.

    ``kind``: filter | dwfilter | bias | scale | param | consumer (slice constant input
    ``index`` of ``node`` along ``axis`` in blocks of ``block``), group (a depthwise Conv's
    ``group`` attribute) or reshape (entry ``axis`` of the shape constant at ``index``).
    """

    kind: str
    node: ir.Node
    index: int
    axis: int
    block: int = 1


class Member(NamedTuple):  # a tensor of a group: its channels lie on `axis`, `block` positions each
    value: ir.Value
    axis: int
    block: int


def unique(items) -> list:
    return list(dict.fromkeys(items))


class ChannelSpaces:
    """The union-find of channel spaces over one graph, and where each tracked tensor's channels lie."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.parent: list[int] = []
        self.count: list[int] = []
        self.reasons: list[list[str]] = []
        self.edits: list[list[Edit]] = []
        self.concats: list[list[tuple[str, list[ir.Value]]]] = []
        self.info: dict[ir.Value, tuple[int, int, int]] = {}  # value -> (element, axis, block)

    # -- union-find ---------------------------------------------------------------------
    def new(self, count: int, reason: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.count.append(count)
        self.reasons.append([reason] if reason else [])
        self.edits.append([])
        self.concats.append([])
        return len(self.parent) - 1

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int, where: str) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.count[ra] != self.count[rb]:
            self.reasons[ra].append(f"{where} couples {self.count[ra]} with {self.count[rb]} channels")
        self.parent[rb] = ra
        for field in (self.reasons, self.edits, self.concats):
            field[ra].extend(field[rb])
            field[rb] = []
        return ra

    def freeze(self, element: int, reason: str) -> None:
        self.reasons[self.find(element)].append(reason)

    def edit(self, element: int, *edits: Edit) -> None:
        self.edits[self.find(element)].extend(edits)

    # -- tensors ----------------------------------------------------------------------------
    def attach(self, value: ir.Value, element: int, axis: int, block: int, where: str) -> None:
        shape = static_shape(value)
        if shape is None or not 0 <= axis < len(shape) or shape[axis] != self.count[self.find(element)] * block:
            self.freeze(element, f"{where}: output '{value.name}' has no static shape matching its channels")
        self.info[value] = (element, axis, block)

    def obtain(self, value: ir.Value, axis: int, block: int | None, where: str) -> tuple[int, int]:
        """``value``'s element (and block); a frozen fresh one when nothing tracked its channels."""
        if value in self.info:
            element, have_axis, have_block = self.info[value]
            if have_axis != axis or (block is not None and have_block != block):
                self.freeze(element, f"{where} reads channels on axis {axis}, they lie on axis {have_axis} in blocks of {have_block}")
            return element, have_block
        block = block or 1
        shape = static_shape(value)
        size = shape[axis] if shape is not None and 0 <= axis < len(shape) else 0
        element = self.new(size // block, self.source(value))
        if size % block:
            self.freeze(element, f"'{value.name}' does not split into channels of {block}")
        self.info[value] = (element, axis, block)
        return element, block

    def source(self, value: ir.Value) -> str:
        if value in self.graph.inputs:
            return f"channels come from graph input '{value.name}'"
        if value.const_value is not None:
            return f"channels come from constant '{value.name}'"
        node = value.producer()
        return f"channels come from {node.op_type} '{layer_name(node)}'" if node else f"'{value.name}' has no producer"

    def follow(self, node: ir.Node, value: ir.Value, axis: int | None = None) -> tuple[int, int, int] | None:
        """Pass-through: the tracked entry of ``value`` (checked to lie on ``axis``), or None."""
        if value is None or value not in self.info:
            return None
        element, have_axis, block = self.info[value]
        if axis is not None and (have_axis, block) != (axis, 1):
            self.freeze(element, f"{node.op_type} '{layer_name(node)}' expects channels on axis {axis}")
        return element, have_axis, block
