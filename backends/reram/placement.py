"""Placement of crossbar layers onto IMAs and tiles.

An IMA serves one layer (ISAAC dedicates crossbars to each layer), so layers take IMAs in
order and IMAs fill tiles in order. A layer whose weight an earlier layer already holds (the
copies of a loop body, unrolled for costing, read one weight) runs on that layer's crossbars:
it takes no IMAs of its own, and the two run one after the other on them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nncc.errors import NnccError

if TYPE_CHECKING:  # the mapping module calls this one
    from nncc.analysis import Layer

    from .mapping import CrossbarLayer


def place(rows: list[CrossbarLayer], config) -> tuple[int, int]:
    """Give every row its IMAs and tiles (and ``held_by`` when its weight is held already);
    return the IMAs and tiles the chip needs."""
    cursor = 0
    holders: dict[int, CrossbarLayer] = {}
    for row in rows:
        weight = row.layer.weight if row.layer is not None else None
        holder = holders.get(id(weight.value)) if weight is not None else None
        if holder is not None:
            row.held_by, row.imas, row.ima_first, row.tiles = holder.name, 0, holder.ima_first, list(holder.tiles)
            continue
        if weight is not None:
            holders[id(weight.value)] = row
        row.imas = -(-row.crossbars // config.crossbars_per_ima)
        row.ima_first = cursor
        cursor += row.imas
        if row.imas:
            first, last = row.ima_first // config.imas_per_tile, (cursor - 1) // config.imas_per_tile
            row.tiles = [first, last]
            if config.max_tiles and last + 1 > config.max_tiles:
                raise NnccError(f"reram: layer '{row.name}'", f"does not fit: the model needs at least {last + 1} tiles "
                                f"({cursor} IMAs of {config.crossbars_per_ima} crossbars) up to this layer, "
                                f"the chip has max_tiles = {config.max_tiles}")
    return cursor, -(-cursor // config.imas_per_tile)


def pipeline_speedups(mapped: list[Layer], degree: int) -> dict[int, int]:
    """NeuroSim's pipeline replication (Chip.cpp, ChipDesignInitialize): with IFM the input
    height of a layer, d = min(degree, IFM of the first layer / smallest IFM of a conv with a
    kernel > 1), bound = ceil(IFM_first / d), and a layer gets ceil((IFM / bound)^2) copies so
    that the large early layers keep pace with the small late ones. Layers without a 4-D input
    (Gemm, MatMul) have IFM 1: one copy. Keyed by id(node)."""
    def ifm(layer: Layer) -> int:
        shape = layer.input_shapes[0] if layer.input_shapes else None
        return int(shape[2]) if shape is not None and len(shape) == 4 else 1

    def kernel(layer: Layer) -> int:  # from the weight's shape: kernel_shape is optional in ONNX
        shape = layer.input_shapes[1] if len(layer.input_shapes) > 1 else None
        return math.prod(shape[2:]) if shape is not None and len(shape) > 2 else 1

    convs = [layer for layer in mapped if layer.op == "Conv" and ifm(layer) > 1]
    if not convs:
        return {}
    first = ifm(convs[0])
    smallest = min((ifm(layer) for layer in convs if kernel(layer) > 1), default=first)
    d = max(1, min(degree, first // max(smallest, 1)))
    bound = -(-first // d)
    return {id(layer.node): max(1, math.ceil((ifm(layer) / bound) ** 2)) for layer in mapped}
