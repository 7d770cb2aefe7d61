"""DNN+NeuroSim V1.4's chip hierarchy as NeuroSim lays a network out (``profile=neurosim``):
Chip.cpp ChipDesignInitialize (which layers take the novel mapping, the pipeline copies) and
ChipFloorPlan with TileDesignCM / TileDesignNM / PEDesign / SubArrayDup / OverallEachLayer (tile
and PE sizes chosen for the best memory utilization, tiles per layer, per-layer speed-up), and the
buffer and bus geometry of ChipInitialize, TileInitialize and ProcessingUnitInitialize. nncc's own
code [V: each function names the NeuroSim function it follows; docs/sources.md, "ReRAM"]; the
cycles counted on it are in neurosim_periphery.py, the area in neurosim_area.py. Where NeuroSim's
C++ truncates (int arithmetic) the code here truncates too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class NetRow:
    """One row of NeuroSim's network file (e.g. NetWork_VGG8.csv): IFM rows, IFM columns, IFM
    channels, kernel rows, kernel columns, output channels, followed by a 2x2 max-pool, stride.
    A fully connected layer is 1, 1, inputs, 1, 1, outputs. ``vectors`` (nncc's, not in the file)
    replaces NeuroSim's input vectors per image, (IFM - k + 1)^2 / stride^2, for a layer NeuroSim
    cannot describe (a MatMul over tokens, a 1-D conv): its matrix-vector products per image."""

    ifm_h: int
    ifm_w: int
    channels: int
    k_h: int
    k_w: int
    outputs: int
    pooled: bool = False
    stride: int = 1
    vectors: int | None = None

    @property
    def input_vectors(self) -> int:
        """ChipCalculatePerformance numInVector (int of a double expression, as the C++)."""
        if self.vectors is not None:
            return self.vectors
        return int((self.ifm_h - self.k_h + 1) / self.stride * (self.ifm_w - self.k_w + 1) / self.stride)


@dataclasses.dataclass(frozen=True)
class Params:
    """The Param.cpp settings the counts use (defaults: V1.4's, Table VII's RRAM row)."""

    sub_array: int = 128               # numRowSubArray = numColSubArray
    row_parallel: int = 32             # numRowParallel (main.cpp argv[5])
    level_output: int = 16             # levelOutput (4-bit sense amplifier)
    col_muxed: int = 8                 # numColMuxed
    input_bits: int = 8                # numBitInput
    cell_bits: int = 1                 # cellBit
    cols_per_synapse: int = 8          # numColPerSynapse = ceil(synapseBit / cellBit)
    rows_per_synapse: int = 1          # numRowPerSynapse
    speedup_degree: int = 8            # speedUpDegree (pipeline = true)
    global_core: tuple[int, int] = (128, 128)   # globalBufferCoreSizeRow, Col (register file)
    tile_core: tuple[int, int] = (32, 32)       # tileBufferCoreSizeRow, Col
    max_global_bus: int = 2048         # maxGlobalBusWidth

    @property
    def subarray_output_bits(self) -> int:
        """TileInitialize / ProcessingUnitInitialize numBitSubarrayOutput (parallel read)."""
        return int(math.log2(self.level_output) + math.ceil(math.log2(math.ceil(self.sub_array // self.row_parallel)))
                   + self.input_bits + (self.cols_per_synapse - 1) * self.cell_bits + 1)


@dataclasses.dataclass
class Floorplan:
    novel: list[bool]                  # markNM: layer on novel-mapped tiles
    pe_nm: int                         # numPENM (PEs of a novel-mapped tile: kernel positions)
    pe_size_nm: float                  # desiredPESizeNM
    tile_size_cm: float                # desiredTileSizeCM
    pe_size_cm: float                  # desiredPESizeCM
    speedup: list[int]                 # pipelineSpeedUp
    tiles: list[tuple[float, float]]   # numTileEachLayer (rows, columns)
    speedup_rc: list[tuple[float, float]]  # speedUpEachLayer (rows, columns)
    tile_rows: int                     # numTileRow
    tile_cols: int                     # numTileCol

    @property
    def tiles_each(self) -> list[int]:
        return [int(r * c) for r, c in self.tiles]

    @property
    def total_tiles(self) -> int:
        return sum(self.tiles_each)


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


def _gt(a: float, b: float) -> bool:  # C++ comparison: false with NaN
    return not (math.isnan(a) or math.isnan(b)) and a > b


def design(net: Sequence[NetRow], p: Params) -> tuple[list[bool], int, float, float, list[int]]:
    """Chip.cpp ChipDesignInitialize: markNM, numPENM, maxPESizeNM, maxTileSizeCM, pipelineSpeedUp."""
    most, num_pe = 0, 0
    for a in net:
        temp = a.k_h * a.k_w
        count = 1
        for b in net:
            if temp == b.k_h * b.k_w and temp != 1:
                count += 1
            if most < count:
                most, num_pe = count, temp
    novel, max_pe_nm, max_tile_cm = [], 0.0, 0.0
    for a in net:
        cube = 2.0 ** math.ceil(math.log2(a.outputs * p.cols_per_synapse))
        if a.k_h * a.k_w == num_pe and a.channels * a.k_h * a.k_w * p.rows_per_synapse >= p.sub_array:
            novel.append(True)
            max_pe_nm = max(cube, max_pe_nm)
        else:
            novel.append(False)
            max_tile_cm = max(cube, max_tile_cm)
    largest = net[0].ifm_h
    smallest = largest
    for a in net:
        if a.k_h != 1 and a.ifm_h < smallest:
            smallest = a.ifm_h
    degree = min(p.speedup_degree, int(largest / smallest))
    bound = math.ceil(largest / degree)
    speedup = [math.ceil((a.ifm_h / bound) ** 2) for a in net]
    return novel, num_pe, max_pe_nm, max_tile_cm, speedup


def _tile_design_cm(size, novel, net, p):
    total, matrix = 0.0, 0.0
    for a, nm in zip(net, novel):
        if not nm:
            total += math.ceil(a.channels * a.k_h * a.k_w * p.rows_per_synapse / size) * math.ceil(a.outputs * p.cols_per_synapse / size)
            matrix += a.channels * a.k_h * a.k_w * p.rows_per_synapse * a.outputs * p.cols_per_synapse
    return total, matrix, _div(matrix, total * size * size)


def _tile_design_nm(pe_size, novel, net, p, num_pe):
    total, matrix = 0.0, 0.0
    for a, nm in zip(net, novel):
        if nm:
            total += math.ceil(a.channels * p.rows_per_synapse / pe_size) * math.ceil(a.outputs * p.cols_per_synapse / pe_size)
            matrix += a.channels * a.k_h * a.k_w * p.rows_per_synapse * a.outputs * p.cols_per_synapse
    return total, matrix, _div(matrix, total * pe_size * pe_size * num_pe)


def _pe_design(pe_size, tile_size, num_tiles, novel, net, p):
    """PEDesign: (utilization, [(dup rows, dup cols)])."""
    matrix, dup = 0.0, []
    for a, nm in zip(net, novel):
        rows, cols = a.channels * a.k_h * a.k_w * p.rows_per_synapse, a.outputs * p.cols_per_synapse
        if nm:
            dup.append((1, 1))
            continue
        if rows <= tile_size or cols <= tile_size:
            pe_rows, pe_cols = math.ceil(rows / pe_size), math.ceil(cols / pe_size)
            n = math.ceil(tile_size / pe_size)
            r = math.floor(n / pe_rows) or 1
            c = math.floor(n / pe_cols) or 1
        else:
            r = c = 1
        matrix += r * c * rows * cols
        dup.append((r, c))
    return _div(matrix, num_tiles * tile_size * tile_size), dup


def _subarray_dup(pe_size_cm, pe_size_nm, novel, net, p):
    dup = []
    for a, nm in zip(net, novel):
        rows = a.channels * (1 if nm else a.k_h * a.k_w) * p.rows_per_synapse
        cols = a.outputs * p.cols_per_synapse
        size = pe_size_nm if nm else pe_size_cm
        if rows <= size or cols <= size:
            arr_rows, arr_cols = math.ceil(rows / p.sub_array), math.ceil(cols / p.sub_array)
            n = math.ceil(size / p.sub_array)
            dup.append((math.floor(n / arr_rows) or 1, math.floor(n / arr_cols) or 1))
        else:
            dup.append((1, 1))
    return dup


def floorplan(net: Sequence[NetRow], p: Params) -> Floorplan:
    """Chip.cpp ChipFloorPlan with novelMapping = true and pipeline = true (V1.4's defaults)."""
    novel, pe_nm, max_pe_nm, max_tile_cm, speedup = design(net, p)
    sub = p.sub_array
    pe_size_nm = max(max_pe_nm, 2 * sub)
    best_nm = 0.0
    size = pe_size_nm
    while size > 2 * sub:
        util = _tile_design_nm(size, novel, net, p, pe_nm)[2]
        if _gt(util, best_nm):
            best_nm, pe_size_nm = util, size
        size /= 2
    tile_cm = max(max_tile_cm, 4 * sub)
    num_tiles_cm = _tile_design_cm(tile_cm, novel, net, p)[0]
    best_cm = 0.0
    size = tile_cm
    start = tile_cm
    while size > 4 * sub:
        total, _, util = _tile_design_cm(size, novel, net, p)
        if _gt(util, best_cm):
            best_cm, start, num_tiles_cm = util, size, total
        size /= 2
    tile_cm = start
    pe_cm = tile_cm / 2
    size = tile_cm / 2
    while size > 2 * sub:
        util = _pe_design(size, tile_cm, num_tiles_cm, novel, net, p)[0]
        if _gt(util, best_cm):
            best_cm, pe_cm = util, size
        size /= 2
    pe_dup = _pe_design(pe_cm, tile_cm, num_tiles_cm, novel, net, p)[1]
    sa_dup = _subarray_dup(pe_cm, pe_size_nm, novel, net, p)
    tiles, speed_rc = [], []
    for a, nm, s, (pr, pc), (sr, sc) in zip(net, novel, speedup, pe_dup, sa_dup):
        dup = pr * pc * sr * sc
        copies = math.ceil(s / dup)
        if nm:
            rows = math.ceil(a.channels * p.rows_per_synapse / pe_size_nm) * copies
            cols = math.ceil(a.outputs * p.cols_per_synapse / pe_size_nm)
        else:
            rows = math.ceil(a.channels * a.k_h * a.k_w * p.rows_per_synapse / tile_cm) * copies
            cols = math.ceil(a.outputs * p.cols_per_synapse / tile_cm)
        tiles.append((rows, cols))
        speed_rc.append((pr * sr * copies, pc * sc))
    total = sum(int(r * c) for r, c in tiles)
    tile_rows = math.ceil(math.sqrt(total))
    tile_cols = math.ceil(total / tile_rows) if tile_rows else 0
    return Floorplan(novel, pe_nm, pe_size_nm, tile_cm, pe_cm, speedup, tiles, speed_rc, tile_rows, tile_cols)


# ---------------------------------------------------------------- cycles

@dataclasses.dataclass
class Geometry:
    """Buffer and bus sizes of ChipInitialize / TileInitialize / ProcessingUnitInitialize."""

    global_bus: float                  # globalBusWidth (halved until <= maxGlobalBusWidth)
    global_cores: int                  # numBufferCore
    cm: dict                           # conventional-mapped tile: its buffers, H-tree, accumulation
    nm: dict                           # novel-mapped tile


def _tile_geometry(pes_per_side: float, pe_size: float, num_pe_total: float, p: Params) -> dict:
    """TileInitialize for one tile kind: ``pes_per_side`` as the CM tile's numPECM (PEs per side)
    or, for the NM tile, numPENM with its H-tree of ceil(sqrt(numPENM)) per side."""
    sub, (core_r, core_c) = p.sub_array, p.tile_core
    core = core_r * core_c
    num_sub = math.ceil(pe_size / sub) * math.ceil(pe_size / sub)
    pe_out_bits = p.subarray_output_bits + math.ceil(math.sqrt(num_sub))     # numBitPEOutput
    acc_stage = math.ceil(math.log2(num_pe_total))                          # AdderTree numStage
    out_bits = (pe_out_bits + acc_stage) * num_pe_total * sub / p.col_muxed  # chipActivation = true
    out_cores = math.ceil(out_bits / core)
    out_width = (pe_out_bits + acc_stage) * num_pe_total if out_bits < core else core_c
    in_bits = num_pe_total * p.input_bits * sub
    in_cores = math.ceil(in_bits / core)
    in_width = num_pe_total * sub if in_bits < core else core_c
    # PE (ProcessingUnitInitialize): DFF buffers of numBitInput x numRow and (numCol / numColMuxed) x
    # (numBitSubarrayOutput + adder-tree stages); its adder tree has ceil(log2(sub-array rows)) stages.
    pe_rows = math.ceil(math.sqrt(num_sub))
    pe_stage = math.ceil(math.log2(pe_rows))
    return {"acc_stage": acc_stage, "acc_bits": pe_out_bits, "out_cores": out_cores, "out_width": out_width,
            "in_cores": in_cores, "in_width": in_width, "htree_bus": pes_per_side * pe_size,
            "pe_in_dff": p.input_bits * sub, "pe_out_dff": (sub // p.col_muxed) * (p.subarray_output_bits + pe_stage),
            "pe_adder_bits": p.subarray_output_bits}


def geometry(net: Sequence[NetRow], p: Params, fp: Floorplan) -> Geometry:
    bus = 0.0
    layer_input = 0.0
    for a, nm, n in zip(net, fp.novel, fp.tiles_each):
        layer_input += a.ifm_h * a.ifm_w * a.channels / 2
        if nm:
            side = fp.pe_size_nm * math.ceil(math.sqrt(fp.pe_nm))
            bus += (side + side / p.col_muxed) * n
        else:
            bus += (fp.tile_size_cm + fp.tile_size_cm / p.col_muxed) * n
    while bus > p.max_global_bus:
        bus /= 2
    buffer_bits = int(p.input_bits * layer_input)
    cores = math.ceil(buffer_bits / (p.global_core[0] * p.global_core[1]))
    pes_cm = math.ceil(fp.tile_size_cm / fp.pe_size_cm)
    cm = _tile_geometry(pes_cm, fp.pe_size_cm, pes_cm, p)
    nm = _tile_geometry(fp.pe_nm, fp.pe_size_nm, fp.pe_nm, p)
    nm["htree_bus"] = fp.pe_nm * fp.pe_size_nm
    return Geometry(bus, cores, cm, nm)
