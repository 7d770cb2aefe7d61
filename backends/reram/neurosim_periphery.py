"""DNN+NeuroSim V1.4's chip hierarchy, buffers and interconnect, counted as NeuroSim counts them
(``profile=neurosim`` only; cost.py calls it when ``config.neurosim_periphery`` is on).

NeuroSim (``Inference_pytorch/NeuroSIM``, commit ac828e6; docs/sources.md, "ReRAM") lays the
network out in tiles of processing elements (PEs) of sub-arrays and, with ``synchronous = true``
(Param.cpp), counts every buffer and bus access in clock cycles; main.cpp then multiplies the
cycles by the chip clock period. This module is nncc's own code for those counts [V: each
function names the NeuroSim function it follows]:

- ``floorplan`` (neurosim_floorplan.py, imported here): Chip.cpp ChipDesignInitialize and
  ChipFloorPlan, the tiles and PEs each layer takes.
- ``layer_cycles``: the buffer and interconnect cycles of one layer, Chip.cpp
  ChipCalculatePerformance (global buffer, X-Y bus), Tile.cpp TileCalculatePerformance (tile
  input/output buffers, the tile's H-tree) and ProcessingUnit.cpp
  ProcessingUnitCalculatePerformance (the PE's DFF input/output buffers), with the buffer and
  bus geometry of ChipInitialize, TileInitialize and ProcessingUnitInitialize:

      Buffer.cpp / DFF.cpp (synchronous):  one line (interface width bits) per cycle; a buffer of
          several cores reads min(cores, ceil(bus width / interface width)) lines at once
      HTree.cpp / XYBus.cpp (synchronous): ceil(wire delay x clock frequency) cycles per transfer of
          bus-width bits; nncc does not model the wire delay and takes one cycle per transfer (a
          wire shorter than a clock period; the counts of NeuroSim's VGG-8 run agree, tests)

Where NeuroSim's C++ truncates (int arithmetic) the code here truncates too.

Not counted: the tile and chip accumulation, ReLU and max-pool units' cycles (NeuroSim's
"Accumulation" and a small part of "Other"; 0.4 % of layer 1's latency on VGG-8), and the
sub-array's own cycles, which cost.py's sensing latency already holds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from .neurosim_floorplan import (  # noqa: F401  (re-exported: the floorplan is part of this module's API)
    Floorplan,
    Geometry,
    NetRow,
    Params,
    _div,
    _gt,
    _pe_design,
    _subarray_dup,
    _tile_design_cm,
    _tile_design_nm,
    _tile_geometry,
    design,
    floorplan,
    geometry,
)


def _pe_buffer(rows: int, cols: int, vectors: int, g: dict, p: Params) -> int:
    """ProcessingUnitCalculatePerformance: bufferInput + bufferOutput (DFF, one read per cycle;
    int arithmetic as in the C++). Its buses count nothing when synchronous."""
    rows, cols = int(rows), int(cols)
    read_in = rows // p.rows_per_synapse * vectors // g["pe_in_dff"]
    read_out = cols // p.cols_per_synapse * g["pe_adder_bits"] * vectors // p.input_bits // g["pe_out_dff"]
    return read_in + read_out


def _tile_cycles(rows: int, cols: int, vectors: int, novel: bool, fp: Floorplan, g: dict, p: Params,
                 speed: tuple[float, float]) -> tuple[float, float]:
    """TileCalculatePerformance: (buffer cycles, interconnect cycles) of one tile."""
    s_r, s_c = speed
    if novel:
        num_pe = fp.pe_nm
        buffer = _pe_buffer(int(rows / num_pe), cols, vectors, g, p) / (s_r * s_c)
        load_out = rows * vectors / math.sqrt(num_pe)
    else:
        num_pe, size = math.ceil(fp.tile_size_cm / fp.pe_size_cm), fp.pe_size_cm
        if s_r * s_c > 1:
            if s_r >= num_pe and s_c >= num_pe:
                buffer = _pe_buffer(rows, cols, vectors, g, p) / (num_pe * num_pe)
            else:
                buffer = max(_pe_buffer(min(size, rows - i * size), min(size, cols - j * size), vectors, g, p)
                             for i in range(math.ceil(rows / size)) for j in range(math.ceil(cols / size))
                             if i * size < rows and j * size < cols) / (s_r * s_c)
        else:
            buffer = max((_pe_buffer(min(size, rows - i * size), min(size, cols - j * size), vectors, g, p)
                          for i in range(num_pe) for j in range(num_pe) if i * size < rows and j * size < cols),
                         default=0)
        load_out = float(rows * vectors)
    load_in = math.ceil(cols // p.cols_per_synapse) * (g["acc_stage"] + g["acc_bits"]) * vectors / p.input_bits
    bus = g["htree_bus"]
    in_buf = 2 * (load_out / g["in_width"] / 2.0) / min(g["in_cores"], math.ceil(bus / g["in_width"]))
    out_buf = 2 * (load_in / g["out_width"] / 2.0) / min(g["out_cores"], math.ceil(bus / g["out_width"]))
    htree = (load_out + load_in) / bus  # one cycle per transfer
    return buffer + in_buf + out_buf, htree


@dataclasses.dataclass
class LayerCycles:
    buffer: float                      # NeuroSim's "buffer latency" of the layer, in cycles
    interconnect: float                # its "ic latency", in cycles
    parts: dict[str, float]


def layer_cycles(net: Sequence[NetRow], p: Params, fp: Floorplan | None = None) -> list[LayerCycles]:
    """Chip.cpp ChipCalculatePerformance's bufferLatency and icLatency of every layer, in clock
    cycles (main.cpp multiplies both by the clock period when synchronous)."""
    fp = fp or floorplan(net, p)
    geo = geometry(net, p, fp)
    total = fp.total_tiles
    total_rows = math.ceil(math.sqrt(total))
    total_cols = math.ceil(total / total_rows)
    out = []
    for l, a in enumerate(net):
        nm = fp.novel[l]
        g = geo.nm if nm else geo.cm
        vectors = a.input_vectors
        bits = vectors * p.input_bits
        w_rows = a.channels * a.k_h * a.k_w * p.rows_per_synapse
        w_cols = a.outputs * p.cols_per_synapse
        tile_buf, tile_ic = 0.0, 0.0
        if nm:
            step_r, step_c = fp.pe_size_nm * fp.pe_nm, fp.pe_size_nm
            n_r = math.ceil(a.channels * p.rows_per_synapse / fp.pe_size_nm)
            n_c = math.ceil(w_cols / fp.pe_size_nm)
        else:
            step_r = step_c = fp.tile_size_cm
            n_r, n_c = math.ceil(w_rows / fp.tile_size_cm), math.ceil(w_cols / fp.tile_size_cm)
        for i in range(n_r):
            for j in range(n_c):
                rows = int(min(step_r, w_rows - i * step_r))
                cols = int(min(step_c, w_cols - j * step_c))
                b, ic = _tile_cycles(rows, cols, bits, nm, fp, g, p, fp.speedup_rc[l])
                tile_buf, tile_ic = max(tile_buf, b), max(tile_ic, ic)
        load_out = float(w_rows * p.input_bits * vectors)
        if nm:
            load_out /= a.k_h
        load_in = math.ceil(w_cols // p.cols_per_synapse) * p.input_bits * vectors / (4 if a.pooled else 1)
        t_r, t_c = fp.tiles[l]
        x_end, y_init = math.ceil(total_cols / 2), math.ceil(total_rows / 2)
        # XYBus::CalculateLatency: the X bus spans x_end tiles, the Y bus numRow - y_init - 1; a span of
        # zero (or less) costs no cycle, any other one cycle per transfer.
        hops_x = 1 if x_end > 0 else 0
        hops_y = 1 if fp.tile_rows - y_init - 1 > 0 else 0
        bus = hops_x * math.ceil(load_out / geo.global_bus * total_rows / t_r) \
            + hops_y * math.ceil(load_in / geo.global_bus * total_cols / t_c)
        width = p.global_core[1]
        glob = (load_out / width + load_in / width) / min(geo.global_cores, math.ceil(geo.global_bus / width))
        out.append(LayerCycles(tile_buf + glob, tile_ic + bus,
                               {"tile_buffer": tile_buf, "global_buffer": glob, "tile_htree": tile_ic, "global_bus": bus}))
    return out


# ---------------------------------------------------------------- nncc's mapping as NeuroSim's network

CONV_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv"})


def params(config) -> Params:
    """NeuroSim's settings from the reram config (the fixed ones are V1.4's Param.cpp defaults)."""
    return Params(sub_array=config.crossbar_size, row_parallel=config.rows_parallel,
                  level_output=2 ** config.adc_bits_max, col_muxed=config.cols_per_adc, input_bits=config.input_bits,
                  cell_bits=config.cell_bits, cols_per_synapse=config.slices * config.polarities,
                  speedup_degree=config.pipeline_speedup or 1)


def net_row(row, pooled: bool) -> NetRow | None:
    """A crossbar layer as a row of NeuroSim's network file: a conv with a 4-D input as IFM rows x
    columns x channels with its kernel and stride (NeuroSim has no groups: a grouped conv counts
    as its per-group fan-in x all outputs), anything else as a fully connected layer (1 x 1 IFM,
    as NeuroSim's FC rows) with its matrix-vector products per image as the input vectors (1 for a
    classifier, as NeuroSim; the tokens of a MatMul). Recurrent layers have no NeuroSim form: None."""
    if row.steps:
        return None
    layer = row.layer
    x = layer.input_shapes[0] if layer is not None and layer.input_shapes else None
    shape = layer.weight.shape if layer is not None and layer.weight is not None else None
    if layer is not None and layer.op in CONV_OPS and x is not None and len(x) == 4 and shape is not None and len(shape) == 4:
        k_h, k_w = int(shape[2]), int(shape[3])
        stride = int((layer.attributes.get("strides") or [1])[0])
        return NetRow(int(x[2]), int(x[3]), max(1, row.rows // (k_h * k_w)), k_h, k_w, row.cols * row.groups, pooled, stride)
    return NetRow(1, 1, row.rows, 1, 1, row.cols * row.groups, pooled, 1, vectors=row.mvms if row.mvms > 1 else None)


def network(mapping) -> list[tuple[object, NetRow]]:
    """(crossbar layer, NeuroSim row) for every crossbar layer with its own hardware, in order;
    ``pooled`` when a MaxPool follows before the next crossbar layer (NeuroSim's column 7)."""
    out: list[tuple[object, NetRow | None]] = []
    rows = mapping.layers
    for i, row in enumerate(rows):
        if not hasattr(row, "conversions"):  # a digital row
            continue
        if row.held_by:
            continue
        pooled = False
        for nxt in rows[i + 1:]:
            if hasattr(nxt, "conversions"):
                break
            if nxt.op == "MaxPool":
                pooled = True
                break
        out.append((row, net_row(row, pooled)))
    return [(row, n) for row, n in out if n is not None]


def mapping_cycles(mapping, config) -> tuple[dict[str, LayerCycles], Floorplan | None]:
    """Buffer and interconnect cycles per crossbar layer name, and NeuroSim's floorplan."""
    pairs = network(mapping)
    if not pairs:
        return {}, None
    net = [n for _, n in pairs]
    p = params(config)
    fp = floorplan(net, p)
    cycles = layer_cycles(net, p, fp)
    return {row.name: c for (row, _), c in zip(pairs, cycles)}, fp
