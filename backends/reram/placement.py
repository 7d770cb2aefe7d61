"""Placement of crossbar layers onto IMAs and tiles.

An IMA serves one layer (ISAAC dedicates crossbars to each layer), so layers take IMAs in
order and IMAs fill tiles in order. A layer whose weight an earlier layer already holds (the
copies of a loop body, unrolled for costing, read one weight) runs on that layer's crossbars:
it takes no IMAs of its own, and the two run one after the other on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nncc.errors import NnccError

if TYPE_CHECKING:  # the mapping module calls this one
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
