"""Ops that are not matrix-vector products: costed on the tile's digital units, never zero by accident.

ISAAC pairs its crossbars with digital units (shift-and-add, max-pool, sigmoid) fed from the
tile's eDRAM [U: ISAAC Sec. on the tile, not re-read]. Here every such op is counted in
*simple-op equivalents* (one 16-bit add/compare/max), with a multiply worth
``digital_mul_ops`` and a transcendental (exp, sigmoid, erf, ...) worth
``transcendental_ops``; the operands are read from and written to the eDRAM at the
activation precision. Pure data movement (transpose, concat, gather, ...) costs only its
eDRAM traffic. Reshape-like ops and constant sub-graphs cost nothing, and say why.
"""

from __future__ import annotations

import dataclasses
import math

from nncc.analysis import Layer
from nncc.cost import Unsupported
from nncc.irutils import is_constant, static_shape
from nncc.ops import OpClass, op_class

Mix = tuple[float, float, float]  # (simple ops, multiplies, transcendentals) per output element

# What one output element costs by op class (nncc.ops): an element-wise op is one simple op, a
# transcendental one table lookup. Pools, data movement and no-ops are costed by their own rules.
CLASS_MIX: dict[OpClass, Mix] = {"elementwise": (1, 0, 0), "transcendental": (0, 0, 1)}
DIGITAL_CLASSES: frozenset[OpClass] = frozenset({*CLASS_MIX, "pool", "data", "no-op"})
# Ops whose cost differs from their class's.
OP_MIX: dict[str, Mix] = {
    "Clip": (2, 0, 0),  # a compare with each bound
    "Mean": (1, 1, 0),  # sum, then scale
    **{op: (1, 1, 0) for op in ("LeakyRelu", "PRelu", "BatchNormalization", "QuantizeLinear", "DequantizeLinear",
                                "HardSigmoid")},  # one multiply-add
    "Mul": (0, 1, 0), "Div": (0, 1, 0),  # division as a multiply by a reciprocal
    "Mod": (2, 2, 0),  # a - floor(a / b) * b
    "HardSwish": (2, 2, 0),
    "Gelu": (1, 2, 1), "Mish": (0, 1, 2),
    "Softmax": (2, 1, 1), "LogSoftmax": (2, 1, 1),  # max, subtract, exp, sum, scale
    "LayerNormalization": (3, 2, 0), "InstanceNormalization": (3, 2, 0),  # mean, variance, normalize, affine
    "LRN": (2, 2, 1),
}
# Casts are element-wise in the op-class table, but a digital unit only rewrites the stored format:
# eDRAM traffic, as for the data-movement class.
MOVES_ONLY = frozenset({"Cast", "CastLike"})
# Pool class: a window op costs each output's window, a reduction its input elements; a mean
# adds one multiply per output.
WINDOWED = frozenset({"MaxPool", "AveragePool", "LpPool"})
AVERAGING = frozenset({"AveragePool", "GlobalAveragePool", "ReduceMean"})


def is_digital(op: str) -> bool:
    """Whether the digital units cost this op (an op of the default domain)."""
    return op_class(op) in DIGITAL_CLASSES


@dataclasses.dataclass
class DigitalLayer:
    name: str
    op: str
    kind: str                 # digital | data | noop | folded
    ops: float                # simple-op equivalents (before multiply/transcendental weighting, see ``op_mix``)
    op_mix: tuple[float, float, float]  # (simple, multiplies, transcendentals) totals
    buffer_accesses: int      # eDRAM accesses (bus_bits wide)
    note: str = ""
    layer: Layer | None = dataclasses.field(default=None, repr=False)
    macs: int = 0             # a product of two activations run here (dynamic_product_row)


def _elements(shape) -> int | None:
    return math.prod(shape) if shape is not None else None


def _accesses(elements: int, config) -> int:
    return -(-elements * config.input_bits // config.bus_bits)


def digital_row(layer: Layer, config) -> DigitalLayer | Unsupported:
    """One row for a non-MVM op, or the reason it cannot be costed."""
    node, op = layer.node, layer.op
    kind = op_class(op)
    if kind == "no-op":
        return DigitalLayer(layer.name, op, "noop", 0, (0, 0, 0), 0, "no data movement or arithmetic at inference time", layer)
    acts = [v for v in node.inputs if v is not None and not is_constant(v)]
    if not acts:
        return DigitalLayer(layer.name, op, "folded", 0, (0, 0, 0), 0,
                            "all inputs constant: computed once when the weights are programmed", layer)
    out_elems = sum(_elements(s) or 0 for s in layer.output_shapes)
    if any(s is None for s in layer.output_shapes) or out_elems == 0:
        return Unsupported(layer.name, op, "output shape unknown: cannot cost on the reram digital units")
    in_elems = sum(_elements(static_shape(v)) or 0 for v in acts)
    traffic = _accesses(in_elems + out_elems, config)
    if kind == "data" or op in MOVES_ONLY:
        return DigitalLayer(layer.name, op, "data", 0, (0, 0, 0), traffic, "eDRAM read + write of the moved elements", layer)
    if kind == "pool":
        simple = _pool_ops(layer, in_elems, out_elems)
        mul = out_elems if op in AVERAGING else 0
        return DigitalLayer(layer.name, op, "digital", simple, (simple, mul, 0), traffic, "pooling/reduction unit", layer)
    simple, mul, trans = OP_MIX.get(op, CLASS_MIX[kind])
    mix = (simple * out_elems, mul * out_elems, trans * out_elems)
    return DigitalLayer(layer.name, op, "digital", mix[0], mix, traffic, "element-wise digital unit", layer)


def dynamic_product_row(layer: Layer, config) -> DigitalLayer | Unsupported:
    """A product of two activations (attention scores Q K^T, their weighting of V): crossbars hold
    only weights programmed before inference, so it runs on the digital units, one multiply and
    one add per MAC, its operands and result through the eDRAM."""
    if layer.macs <= 0:
        return Unsupported(layer.name, layer.op, "shapes unknown: cannot count the MACs of a product of two activations")
    acts = [v for v in layer.node.inputs if v is not None and not is_constant(v)]
    elements = sum(_elements(static_shape(v)) or 0 for v in acts) + sum(_elements(s) or 0 for s in layer.output_shapes)
    return DigitalLayer(layer.name, layer.op, "digital", layer.macs, (layer.macs, layer.macs, 0), _accesses(elements, config),
                        "product of two activations on the digital units (crossbars hold only weights programmed "
                        "before inference)", layer, macs=layer.macs)


def equivalent_ops(row: DigitalLayer, config) -> float:
    simple, mul, trans = row.op_mix
    return simple + mul * config.digital_mul_ops + trans * config.transcendental_ops


def _pool_ops(layer: Layer, in_elems: int, out_elems: int) -> float:
    kernel = layer.attributes.get("kernel_shape")
    if layer.op in WINDOWED and kernel:
        return float(out_elems * math.prod(kernel))
    return float(in_elems)
