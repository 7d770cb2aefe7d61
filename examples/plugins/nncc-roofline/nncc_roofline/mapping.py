"""Where each layer runs and what it moves: one row per layer, on the PE array.

A layer runs alone on the whole array (layer-by-layer, as Eyeriss does). Its weights stream in
from DRAM through the global buffer once. Its activations (inputs and output) stay in the buffer
when they fit in it together, and otherwise round-trip DRAM: the one placement decision, and the
one that makes a model memory-bound on this target.
"""

from __future__ import annotations

import dataclasses
import math

import onnx_ir as ir

from nncc.plugin import Layer, Mapping, Unsupported, layers, op_class

from nncc_roofline.config import RooflineConfig


@dataclasses.dataclass
class RooflineLayer:
    name: str
    op: str
    op_class: str
    macs: int
    alu_ops: int          # element-wise work in simple-op equivalents
    weight_bytes: int
    activation_bytes: int
    on_chip: bool         # activations kept in the global buffer
    dram_bytes: int


def lower(model: ir.Model, config: RooflineConfig) -> Mapping[RooflineLayer]:
    rows, unsupported = [], []
    for layer in layers(model):
        kind = op_class(layer.op, layer.domain)
        if kind is None:  # never costed as zero: listed, and the report's coverage says so
            unsupported.append(Unsupported(layer.name, layer.op, "no op class: the roofline has no figure for it"))
            continue
        rows.append(place(layer, kind, config))
    return Mapping(layers=rows, unsupported=unsupported)


def place(layer: Layer, kind: str, config: RooflineConfig) -> RooflineLayer:
    if kind == "no-op":  # a view once shapes are static (Flatten, Reshape): nothing moves
        return RooflineLayer(layer.name, layer.op, kind, 0, 0, 0, 0, True, 0)
    alu_ops = layer.elementwise_ops
    if kind == "pool":  # a window op reads every input element once
        alu_ops = _elements(layer.input_shapes[0]) if layer.input_shapes else None
        alu_ops = layer.elementwise_ops if alu_ops is None else alu_ops
    elif kind == "transcendental":
        alu_ops *= config.transcendental_ops
    elif kind == "data":  # copies and gathers: bytes, no arithmetic
        alu_ops = 0
    activations = layer.input_bytes + layer.output_bytes
    on_chip = activations <= config.buffer_bytes
    dram = layer.weight_bytes + (0 if on_chip else activations)
    return RooflineLayer(layer.name, layer.op, kind, layer.macs, alu_ops, layer.weight_bytes, activations, on_chip, dram)


def _elements(shape: tuple[int, ...] | None) -> int | None:
    return math.prod(shape) if shape is not None else None
