"""Which channels must be pruned together: the coupling analysis behind ``prune-channels``.

Removing output channel c of a Conv removes channel c from its output tensor and from every
tensor that carries that channel on: through BatchNorm, Relu/Clip, pooling, a depthwise Conv
(its output channel c is computed from input channel c alone), a Flatten into a Gemm, and
across the operands of an Add or Mul. All those tensors must keep the *same* channel subset.

Union-find over (tensor, channel axis)
--------------------------------------
Every tensor that carries channels gets an entry ``(element, axis, block)``: ``axis`` is where
its channels lie, ``block`` how many consecutive positions one channel covers along that axis
(1 for an NCHW feature map, H*W after Flatten). Walking the graph in topological order,
each op either *creates* a channel space (a Conv/Gemm/MatMul's output filters: a fresh
union-find element) or *unions* the spaces of its operands and output (pass-through ops; an
Add of two branches). A union-find root is a **channel group**: one channel ranking, one keep
list for every tensor in it. Chained residual Adds union a whole ResNet stage into one group,
so its branches stay aligned.

While walking, the analysis records the **edits** a group needs when channels go: producer
filters and biases (Conv W[c], Gemm/MatMul weight columns), per-channel parameters (BN's four
vectors, PRelu slopes, [C,1,1] constants, depthwise filters and their ``group``), consumer
input slices (Conv W[:, c], Gemm/MatMul rows, in H*W blocks after a Flatten) and the Reshape
shape entries that name the channel count.

Concat along the channel axis does not union: its output space is the concatenation of its
inputs' spaces, so it becomes a *composite* group whose keep list follows from its parts'.

A group is **frozen** (never pruned), with the reasons kept for the report, when one of its
tensors is a graph input or output, is produced or read by an op this module does not model
(Transpose, Softmax over channels, a Reshape that splits channels, a grouped Conv, a
subgraph...), or when coupled tensors disagree on channel count, axis or block. Freezing a
composite freezes its parts.
"""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from nncc.passes.channel_ops import HANDLERS
from nncc.passes.channel_space import ChannelSpaces, Edit, Member, unique
from nncc.weights import layer_name


@dataclasses.dataclass
class ChannelGroup:
    id: int
    channels: int
    tensors: list[Member]
    edits: list[Edit]
    frozen: list[str]                          # why it must not be pruned; empty: prunable
    parts: list[ChannelGroup] | None = None    # composite (Concat output): its parts in order
    concat: str = ""

    @property
    def producers(self) -> list[str]:
        return unique(layer_name(e.node) for e in self.edits if e.kind == "filter")

    @property
    def members(self) -> list[str]:
        return unique(layer_name(e.node) for e in self.edits)

    @property
    def key(self) -> str:
        """A name that survives pruning (node names do), for the idempotence record."""
        return "+".join(sorted(self.producers)) or f"concat:{self.concat}"


def _walk(a: ChannelSpaces) -> None:
    """Apply every node's rule in graph order; freeze what no rule understood."""
    for node in a.graph:
        handler = HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        handled = handler(a, node) if handler else None
        why = f"read by {node.op_type} '{layer_name(node)}', which prune-channels does not model"
        for index, value in enumerate(node.inputs):
            if value is not None and value in a.info and index not in (handled or ()):
                a.freeze(a.info[value][0], why if handled is None else f"{why} as input {index}")
    for value in a.graph.outputs:
        if value in a.info:
            a.freeze(a.info[value][0], f"reaches graph output '{value.name}'")
    for value, (element, _, _) in a.info.items():
        if any(use.node.graph is not a.graph for use in value.uses()):
            a.freeze(element, f"'{value.name}' is read inside a subgraph")


def analyze(model: ir.Model) -> list[ChannelGroup]:
    """The channel groups of ``model``'s main graph, in graph order (composites after their parts)."""
    a = ChannelSpaces(model.graph)
    _walk(a)
    roots = unique(a.find(element) for element, _, _ in a.info.values())
    # A composite is consistent only if every Concat feeding it has the same layout.
    layouts = {root: {tuple(a.find(a.info[v][0]) for v in parts) for _, parts in a.concats[root]} for root in roots}
    for root, seen in layouts.items():
        if len(seen) > 1:
            a.reasons[root].append("Concats with different layouts feed the same channels")
    changed = True
    while changed:  # a frozen composite freezes its parts (and theirs)
        changed = False
        for root, seen in layouts.items():
            for part in {p for layout in seen for p in layout} if a.reasons[root] else ():
                if not a.reasons[part]:
                    a.reasons[part].append(f"concatenated by {a.concats[root][0][0]} into frozen channels")
                    changed = True
    groups: dict[int, ChannelGroup] = {}
    for root in roots:
        tensors = [Member(v, axis, block) for v, (el, axis, block) in a.info.items() if a.find(el) == root]
        groups[root] = ChannelGroup(0, a.count[root], tensors, unique(a.edits[root]), unique(a.reasons[root]))
    for root, seen in layouts.items():
        if seen:
            groups[root].parts = [groups[p] for p in next(iter(seen))]
            groups[root].concat = a.concats[root][0][0]
    ordered = [g for g in groups.values() if not g.parts] + [g for g in groups.values() if g.parts]
    for index, group in enumerate(ordered):
        group.id = index
    return ordered
