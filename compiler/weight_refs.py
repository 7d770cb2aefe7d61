"""Weights shared between layers: which float initializers a rewriting pass may replace, and
every layer that reads each (prune, weight-share, and sparse-tc's patterns read weights so)."""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from nncc.weights import Weight, WeightLayout, layer_name, weight_of


@dataclasses.dataclass
class WeightRef:
    """One float weight initializer and the layers that read it (several when shared)."""

    value: ir.Value
    layers: list[str]            # names of the layers that read it (layer_name)
    layout: WeightLayout | None  # None when two readers see the tensor in different layouts

    @property
    def name(self) -> str:
        return self.value.name or self.layers[0]

    def skipped(self, reason: str) -> list[dict[str, str]]:
        """One ``skipped`` record (the pass stats schema) per layer reading this weight."""
        return [{"name": layer, "weight": self.name, "reason": reason} for layer in self.layers]




def weight_refs(graph: ir.Graph, slots: tuple[int, ...] = (1,)) -> tuple[list[WeightRef], list[dict[str, str]]]:
    """Rewritable weights in graph order, and a ``skipped`` record for every other weighted layer.

    A weight qualifies when it is a floating-point initializer that the user cannot override
    (not a graph input or output), held in one of ``slots`` of float weighted ops, and every
    reader uses it as a weight: changing a tensor that also feeds, say, an Add would change
    more than the layer.
    """
    refs: dict[int, WeightRef] = {}
    rejected: dict[str, str] = {}     # weight name -> why
    skipped: list[dict[str, str]] = []
    readers: list[tuple[ir.Node, Weight]] = []
    for node in graph:
        weight = weight_of(node)
        if weight is None:
            continue
        reason = _declined(weight, slots)
        if reason:
            skipped.append({"name": layer_name(node), "op": node.op_type, "reason": reason})
            continue
        value = weight.value
        readers.append((node, weight))
        if value.name in rejected or id(value) in refs:
            continue
        if not value.is_initializer() or value in graph.inputs or value in graph.outputs:
            rejected[value.name] = "not a private initializer (graph input/output or Constant)"
        elif value.dtype is None or not value.dtype.is_floating_point():
            rejected[value.name] = f"dtype {value.dtype} is not floating point"
        elif any(_reads_as_weight(user, slot, slots) is False for user, slot in value.uses()):
            rejected[value.name] = "also read by a node that does not use it as a weight"
        else:
            refs[id(value)] = WeightRef(value, [], None)
    for node, weight in readers:
        if weight.value.name in rejected:
            skipped.append({"name": layer_name(node), "op": node.op_type, "weight": weight.value.name,
                            "reason": rejected[weight.value.name]})
            continue
        ref = refs[id(weight.value)]
        layout = dataclasses.replace(weight.layout, scale=1.0)  # alpha is the node's, not the tensor's
        if not ref.layers:
            ref.layout = layout
        elif ref.layout != layout:
            ref.layout = None
        ref.layers.append(layer_name(node))
    return list(refs.values()), skipped


def _declined(weight: Weight, slots: tuple[int, ...]) -> str | None:
    """Why ``weight_refs`` does not offer this weight for rewriting, or None."""
    if weight.integer_bits is not None:
        return "integer weights (a pre-quantized model) are left as they are"
    if weight.recurrence is not None:
        return "recurrent weights (W read with R every time step) are left as they are"
    if weight.layout.index not in slots:
        return "constant first operand (W @ X): only second-operand weights are rewritten"
    if weight.value.const_value is None:
        return "weight is computed before inference (Constant node or DequantizeLinear), not an initializer"
    return None


def _reads_as_weight(user: ir.Node, slot: int, slots: tuple[int, ...]) -> bool:
    weight = weight_of(user)
    return weight is not None and weight.layout.index == slot and slot in slots
