"""DNN+NeuroSim V1.4's chip area, computed as NeuroSim computes it (``profile=neurosim`` only;
cost.py calls it when ``config.neurosim_area`` is on).

nncc's own code following NeuroSim's (``Inference_pytorch/NeuroSIM``; docs/sources.md, "ReRAM")
[V: each function names the NeuroSim function it follows]. NeuroSim's area is a sum over its
hierarchy, with the empty space of one level only, the sub-array's (height x width of its
stacked periphery):

    chip     = NM tiles x NM tile area + CM tiles x CM tile area + global X-Y bus + global
               buffer + max-pool + global accumulation + ReLU  (Chip.cpp ChipCalculateArea,
                                                                sync_data_transfer = 0)
    tile     = PEs x PE area + accumulation + input/output buffers + H-tree   (TileCalculateArea)
    PE       = sub-arrays x sub-array area + adder tree + DFF input/output buffers
                                                                (ProcessingUnitCalculateArea)
    sub-array = height x width (SubArray.cpp CalculateArea, RRAM, conventionalParallel):
        height = SL level shifter + SL switch matrix + array + column mux + sense amplifiers
                 + encoder + weight/input shift-adders + partial-sum adder and DFF (numAdd > 1)
        width  = WL + BL level shifters + WL switch matrix (new, 1T1R) + array

Gate layouts are formula.cpp ``CalculateGateArea`` (bulk, >= 22 nm: transistor folding to a
28 F standard-cell height), ``CalculatePassGateArea`` and ``EnlargeSize``; the technology is
Technology.cpp's 22 nm LSTP (Param.cpp ``deviceroadmap = 2``), the only node ported here.
Lengths in metres, areas in m^2 (NeuroSim's units). On VGG-8 (both read settings) and a second
network the chip area and NeuroSim's summary groups equal its printed figures to 6 digits
(tests/test_reram_neurosim_area.py). Where nncc departs: a one-PE tile's H-tree main bus, which
NeuroSim makes negative, is 0 here.
"""

from __future__ import annotations

import dataclasses
import math

from .neurosim_formula import (
    CPP,
    INV,
    M3_PITCH,
    MIN_NMOS_SIZE,
    NAND,
    NOR,
    TECH,
    Tech,
    enlarge,
    gate,
    htree,
    max_pool,
    pass_gate,
    repeater_width,
    xy_bus,
)


def _min_inv(t: Tech) -> tuple[float, float]:
    return gate(INV, 1, MIN_NMOS_SIZE * t.F, t.pn * MIN_NMOS_SIZE * t.F, t.cell_height, t)


# ---------------------------------------------------------------- components: (height, width, area)

def dff(num: int, t: Tech, height: float | None = None, width: float | None = None) -> tuple[float, float, float]:
    """DFF.cpp CalculateArea: 12 minimum inverters per flip-flop, in columns of a given height or
    rows of a given width."""
    h_inv, w_inv = _min_inv(t)
    h_d, w_d = h_inv, 12 * w_inv
    if height:
        per = min(int(height / h_d), num)
        return height, w_d * math.ceil(num / per), height * w_d * math.ceil(num / per)
    if width:
        per = min(int(width / w_d), num)
        return h_d * math.ceil(num / per), width, width * h_d * math.ceil(num / per)
    return h_d, w_d * num, h_d * w_d * num


def adder(bits: int, count: int, t: Tech, height: float | None = None, width: float | None = None) -> tuple[float, float, float]:
    """Adder.cpp: ``count`` ripple adders of ``bits`` full adders (9 NAND2 each, NAND2 enlarged)."""
    w_n, w_p = enlarge(2 * MIN_NMOS_SIZE * t.F, t.pn * MIN_NMOS_SIZE * t.F, t)
    h_nand, w_nand = gate(NAND, 2, w_n, w_p, t.cell_height, t)
    if width:
        area = w_nand * 9 * h_nand * bits * count
        return area / width, width, area
    if height:
        area = h_nand * w_nand * 9 * bits * count
        return height, area / height, area
    return h_nand, w_nand * 9 * bits * count, h_nand * w_nand * 9 * bits * count


def shift_add(units: int, adder_bits: int, pulses: int, width: float, t: Tech) -> tuple[float, float, float]:
    """ShiftAdd.cpp (non-spiking), rows of the given width: adder + INV/NAND2 row + shift-register DFFs."""
    h_a = adder(adder_bits, units, t, width=width)[0]
    h_d = dff((adder_bits + 1 + pulses - 1) * units, t, width=width)[0]
    h = h_a + t.cell_height + h_d
    return h, width, h * width


def level_shifter(outputs: int, t: Tech, height: float | None = None, width: float | None = None) -> tuple[float, float, float]:
    """LevelShifter.cpp (validated): three inverters, their widths x2, the cell height x2.5,
    the latch and pull-up as IO transistors (x2.5 width), x alpha for wiring."""
    w_n, w_p = MIN_NMOS_SIZE * t.F, t.pn * MIN_NMOS_SIZE * t.F
    h = t.cell_height * 2.5
    h_low, w_low = gate(INV, 1, w_n * 15 * 2, w_p * 20 * 2, h, t)
    h_latch, w_latch = gate(INV, 1, w_n * 32 * 2, w_p * 10 * 2, h, t)
    h_high, w_high = gate(INV, 1, w_n * 64 * 2, w_p * 82 * 2, h, t)
    area = max(h_low, h_latch, h_high) * (w_low + (2 * w_latch + w_high) * 2.5) * outputs * t.alpha
    if width:
        return area / width, width, area
    return height, area / height, area


def new_switch_matrix(outputs: int, height: float, t: Tech) -> tuple[float, float, float]:
    """NewSwitchMatrix.cpp (1T1R word lines), in columns of the array's height: 4 transmission
    gates of newswitchmatrixsizeratio x minimum size per row, plus a DFF per row."""
    w_n = MIN_NMOS_SIZE * t.F * t.new_sm_ratio
    w_p = t.pn * MIN_NMOS_SIZE * t.F * t.new_sm_ratio
    per_col = int(height / t.cell_height)
    cols = math.ceil(outputs / per_col)
    per_col = math.ceil(outputs / cols)
    _, w_tg = gate(INV, 1, w_n, w_p, height / per_col, t)
    width = w_tg * 4 * cols + dff(outputs, t, height=height)[1]
    return height, width, height * width


def switch_matrix_col(outputs: int, width: float, t: Tech, w_tg: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """SwitchMatrix.cpp COL_MODE (source lines), rows of the array's width: pass-gate pairs
    folded into the column pitch, plus a DFF per column. The pass gates' widths (SwitchMatrix::
    Initialize) come from the array's on-resistance; on NeuroSim's 1T1R array they fall below F
    and are clamped to F (the default here)."""
    w_n, w_p = w_tg or (t.F, t.F)
    min_w = 2 * CPP * t.F
    per_row = int(width / (min_w * 2))
    rows = math.ceil(outputs / per_row)
    per_row = math.ceil(outputs / rows)
    tg_w = width / per_row / 2
    folds = int(tg_w / (0.5 * min_w)) - 1
    h_tg, _ = pass_gate(w_n, w_p, folds, t)
    h = h_tg * rows + dff(outputs, t, width=width)[0]
    return h, width, h * width


def mux_decoder(addr_bits: int, t: Tech) -> tuple[float, float, float]:
    """RowDecoder.cpp (REGULAR_ROW, MUX, not parallel), no size given: one column of NOR gates."""
    F, H = t.F, t.cell_height
    inv = gate(INV, 1, *enlarge(MIN_NMOS_SIZE * F, t.pn * MIN_NMOS_SIZE * F, t), H, t)
    nand = gate(NAND, 2, *enlarge(2 * MIN_NMOS_SIZE * F, t.pn * MIN_NMOS_SIZE * F, t), H, t)
    k = math.ceil(addr_bits / 2)
    nor = gate(NOR, k, *enlarge(MIN_NMOS_SIZE * F, k * t.pn * MIN_NMOS_SIZE * F, t), H, t)
    sizing = 110.0  # Param.cpp sizingfactor_MUX (technode 22)
    drv = gate(INV, 1, 2 * MIN_NMOS_SIZE * F * sizing, 2 * t.pn * MIN_NMOS_SIZE * F * sizing, H, t)
    num_nand = 4 * (addr_bits // 2)
    num_nor = 2 ** addr_bits if addr_bits > 2 else 0
    metal = num_nand + (addr_bits % 2) * 2 if addr_bits > 2 else 0
    height = max(nor[0] * num_nor, nand[0] * num_nand)
    width = inv[1] + nand[1] + M3_PITCH * metal * F + nor[1] + nand[1] + drv[1] * 2
    return height, width, height * width


def sense_amp(levels: int, cols: int, rows: int, width: float, t: Tech) -> tuple[float, float, float]:
    """MultilevelSenseAmp.cpp CalculateArea (current mode): 9 minimum NMOS per comparator, levels - 1
    comparators per column, plus the reference columns (array height x cell width per level and
    column, shared by dumcolshared = levelOutput columns; cell.featureSize = the wire width)."""
    h_n, w_n = gate(INV, 1, MIN_NMOS_SIZE * t.F, 0.0, t.cell_height, t)
    area = h_n * w_n * 9 * (levels - 1) * cols
    area += (rows * t.cell_h * t.wire) * (t.cell_w * t.wire) * (levels - 1) * cols / levels
    return area / width, width, area


def sa_encoder(levels: int, count: int, width: float, t: Tech) -> tuple[float, float, float]:
    """MultilevelSAEncoder.cpp CalculateArea, rows of the given width."""
    F, H = t.F, t.cell_height
    w_nand_n, w_nand_p = 4 * MIN_NMOS_SIZE * F, 2 * t.pn * MIN_NMOS_SIZE * F
    h_nand, w_nand = gate(NAND, 2, w_nand_n, w_nand_p, H, t)
    h_inv, w_inv = gate(INV, 1, MIN_NMOS_SIZE * F, t.pn * MIN_NMOS_SIZE * F, H, t)
    h_lg, w_lg = gate(NAND, math.ceil(levels / 2), w_nand_n, w_nand_p, H, t)
    w_enc = w_inv + w_nand + w_lg
    h_enc = ((w_inv * h_inv + w_nand * h_nand) * (levels - 1) + w_lg * math.ceil(math.log2(levels)) * h_lg) / w_enc
    per_row = min(math.ceil(width / w_enc), count)
    h = h_enc * math.ceil(count / per_row)
    w = max(width, w_enc)
    return h, w, h * w


# ---------------------------------------------------------------- sub-array, PE, tile, chip

@dataclasses.dataclass(frozen=True)
class SubArrayArea:
    height: float
    width: float
    parts: dict

    @property
    def area(self) -> float:
        return self.height * self.width


def subarray(size: int, row_parallel: int, levels: int, col_muxed: int, cols_per_synapse: int,
             input_bits: int, t: Tech = TECH) -> SubArrayArea:
    """SubArray.cpp CalculateArea, RRAM 1T1R, conventionalParallel, write voltage 2 V > 1.5 V
    (level shifters), multilevel sense amplifiers (not SAR): height x width, empty space included."""
    rows = cols = size
    h_arr = rows * t.cell_h * t.F
    w_arr = cols * t.cell_w * t.F
    num_add = math.ceil(rows / row_parallel)               # ProcessingUnitInitialize numAdd
    sa_cols = cols // col_muxed
    parts = {}
    parts["wl_level_shifter"] = level_shifter(rows, t, height=h_arr)
    parts["bl_level_shifter"] = level_shifter(rows, t, height=h_arr)
    parts["sl_level_shifter"] = level_shifter(cols, t, width=w_arr)
    parts["wl_switch_matrix"] = new_switch_matrix(rows, h_arr, t)
    parts["sl_switch_matrix"] = switch_matrix_col(cols, w_arr, t)
    if col_muxed > 1:
        dec = mux_decoder(math.ceil(math.log2(col_muxed)), t)
        parts["mux_decoder"] = dec
        # Mux.cpp (analog) is re-laid out (OVERRIDE) to max(decoder height, its own) x array width;
        # its own height (pass gates sized from the cells' resistance) is taken as the decoder's.
        parts["mux"] = (dec[0], w_arr, dec[0] * w_arr)
    parts["sense_amp"] = sense_amp(levels, sa_cols, rows, w_arr, t)
    parts["sa_encoder"] = sa_encoder(levels, sa_cols, w_arr, t)
    out_bits = int(math.log2(levels))
    if cols_per_synapse > 1:
        parts["shift_add_weight"] = shift_add(sa_cols, out_bits, cols_per_synapse, w_arr, t)
    if input_bits > 1:
        parts["shift_add_input"] = shift_add(sa_cols, out_bits + cols_per_synapse, input_bits, w_arr, t)
    if num_add > 1:
        bits = out_bits + math.ceil(math.log2(num_add))
        parts["adder"] = adder(bits - 1, sa_cols, t, width=w_arr)
        parts["dff"] = dff(bits * sa_cols, t, width=w_arr)
    parts["array"] = (h_arr, w_arr, h_arr * w_arr)
    height = sum(v[0] for k, v in parts.items() if k not in ("wl_level_shifter", "bl_level_shifter",
                                                              "wl_switch_matrix", "mux_decoder"))
    width = max(parts["wl_level_shifter"][1] + parts["bl_level_shifter"][1] + parts["wl_switch_matrix"][1],
                parts["mux_decoder"][1] if col_muxed > 1 else 0.0) + w_arr
    return SubArrayArea(height, width, {k: v[2] for k, v in parts.items()})


def adder_tree(inputs: int, bits: int, trees: int, width: float, t: Tech) -> float:
    """AdderTree.cpp CalculateArea (rows of the given width): ``trees`` trees over ``inputs``
    operands, stage s adding floor(j / 2) pairs of bits + s bits (C++ int arithmetic)."""
    total, j, b = 0, inputs, bits
    for _ in range(math.ceil(math.log2(inputs)) if inputs > 1 else 0):
        total += b * (j // 2)
        b += 1
        j //= 2
    return adder(total, trees, t, width=width)[2] if total else 0.0


def row_decoder(addr_bits: int, height: float, t: Tech) -> float:
    """RowDecoder.cpp (REGULAR_ROW, not MUX, not parallel; sizingfactor_WLdecoder = 1) in
    columns of the given height. (As the C++, its inverter columns are never counted.)"""
    F, H = t.F, t.cell_height
    nand = gate(NAND, 2, *enlarge(2 * MIN_NMOS_SIZE * F, t.pn * MIN_NMOS_SIZE * F, t), H, t)
    k = math.ceil(addr_bits / 2)
    nor = gate(NOR, k, *enlarge(MIN_NMOS_SIZE * F, k * t.pn * MIN_NMOS_SIZE * F, t), H, t)
    drv = gate(INV, 1, 2 * MIN_NMOS_SIZE * F, 2 * t.pn * MIN_NMOS_SIZE * F, H, t)
    num_nand = 4 * (addr_bits // 2)
    num_nor = 2 ** addr_bits if addr_bits > 2 else 0
    metal = num_nand + (addr_bits % 2) * 2 if addr_bits > 2 else 0
    per_nor = min(int(height / nor[0]), num_nor)
    cols_nor = math.ceil(num_nor / per_nor) if per_nor > 0 else 0
    per_nand = min(int(height / nand[0]), num_nand)
    cols_nand = math.ceil(num_nand / per_nand) if per_nand > 0 else 0
    width = nand[1] * cols_nand + M3_PITCH * metal * F + nor[1] * cols_nor + drv[1] * 2 * cols_nor
    return height * width


def register_file(bits: int, line: int, t: Tech) -> float:
    """Buffer.cpp CalculateArea, register file (tileBufferType / globalBufferType = false): one
    row of ``bits`` DFFs plus a row decoder over its ceil(bits / line) lines."""
    lines = math.ceil(bits / line)
    h_dff = _min_inv(t)[0]
    return dff(bits, t)[2] + row_decoder(math.ceil(math.log2(lines)), h_dff * lines, t)


def _tile_buffer(bits: float, width: float, core: int, core_line: int, t: Tech) -> float:
    """TileInitialize's tile buffer: ceil(bits / core) register-file cores of ``core`` bits and
    ``core_line``-bit lines, or one core of ``bits`` bits and ``width``-bit lines when smaller."""
    if bits < core:
        return register_file(int(bits), int(width), t)
    return math.ceil(bits / core) * register_file(core, core_line, t)


# ---------------------------------------------------------------- the chip

def pe_area(pe_size: float, p, t: Tech) -> tuple[float, dict]:
    """ProcessingUnit.cpp ProcessingUnitCalculateArea (sync_data_transfer = 0): ``p`` is
    neurosim_periphery.Params. Returns (area, parts)."""
    sub = subarray(p.sub_array, p.row_parallel, p.level_output, p.col_muxed, p.cols_per_synapse, p.input_bits, t)
    n = math.ceil(math.sqrt(math.ceil(pe_size / p.sub_array) ** 2))          # sub-arrays per side
    out_bits = p.subarray_output_bits
    stages = math.ceil(math.log2(n)) if n > 1 else 0
    tree = adder_tree(n, out_bits, math.ceil(n * p.sub_array / p.col_muxed), sub.width, t)
    buf_in = dff(p.input_bits * p.sub_array, t, height=n * sub.height)[2]
    buf_out = dff((p.sub_array // p.col_muxed) * (out_bits + stages), t, width=n * sub.width)[2]
    parts = {f"subarray_{k}": v * n * n for k, v in sub.parts.items()}
    parts["subarray_empty"] = (sub.area - sum(sub.parts.values())) * n * n
    parts.update(pe_adder_tree=tree, pe_buffers=buf_in + buf_out)
    return sub.area * n * n + tree + buf_in + buf_out, parts


def tile_area(num_pe: int, pe_size: float, g: dict, p, t: Tech, novel: bool) -> tuple[float, dict]:
    """Tile.cpp TileCalculateArea (chipActivation = true: no ReLU in the tile). ``g`` is the
    tile's neurosim_periphery geometry (TileInitialize's buffer cores and line widths)."""
    pe, parts = pe_area(pe_size, p, t)
    side = math.ceil(math.sqrt(num_pe))
    pe_w = math.sqrt(pe)
    num_sub = math.ceil(pe_size / p.sub_array) ** 2
    pe_out_bits = p.subarray_output_bits + math.ceil(math.sqrt(num_sub))    # numBitPEOutput
    per_side = g["pes_per_side"]
    acc = adder_tree(per_side, pe_out_bits, math.ceil(pe_size / p.col_muxed) if novel else
                     math.ceil(per_side * pe_size / p.col_muxed), side * pe_w, t)
    core = p.tile_core[0] * p.tile_core[1]
    in_bits = per_side * p.input_bits * p.sub_array
    buf = _tile_buffer(in_bits, per_side * p.sub_array, core, p.tile_core[1], t)
    out_bits = (pe_out_bits + g["acc_stage"]) * per_side * p.sub_array / p.col_muxed
    buf += _tile_buffer(out_bits, (pe_out_bits + g["acc_stage"]) * per_side, core, p.tile_core[1], t)
    tree = htree(math.ceil(math.sqrt(per_side)) if novel else per_side, per_side * pe_size, pe_w, pe_w, repeater_width(t), t)
    out = {k: v * num_pe for k, v in parts.items()}
    out.update(tile_accumulation=acc, tile_buffers=buf, tile_htree=tree)
    return pe * num_pe + acc + buf + tree, out


def chip_area(net, p, fp, geo, t: Tech = TECH) -> dict:
    """Chip.cpp ChipCalculateArea with novelMapping, sync_data_transfer = 0, globalBusType = false
    (X-Y bus), chipActivation with ReLU. ``net``/``p``/``fp``/``geo``: neurosim_periphery's
    network rows, Params, Floorplan and Geometry. Returns m^2: ``total`` and its parts."""
    n_nm = sum(n for n, nm in zip(fp.tiles_each, fp.novel) if nm)
    n_cm = sum(n for n, nm in zip(fp.tiles_each, fp.novel) if not nm)
    pes_cm = math.ceil(fp.tile_size_cm / fp.pe_size_cm)
    g_cm = dict(geo.cm, pes_per_side=pes_cm)
    g_nm = dict(geo.nm, pes_per_side=fp.pe_nm)
    nm, nm_parts = tile_area(fp.pe_nm, fp.pe_size_nm, g_nm, p, t, True)
    cm, cm_parts = tile_area(pes_cm ** 2, fp.pe_size_cm, g_cm, p, t, False)
    side = max(math.sqrt(nm), math.sqrt(cm))
    parts = {k: nm_parts.get(k, 0.0) * n_nm + cm_parts.get(k, 0.0) * n_cm for k in {**nm_parts, **cm_parts}}
    glob = geo.global_cores * register_file(p.global_core[0] * p.global_core[1], p.global_core[1], t)
    bus = xy_bus(fp.tile_rows, fp.tile_cols, geo.global_bus, side, side, repeater_width(t), t)
    layers = len(net) + 1                                                   # pipeline
    throughput = int(max(fp.tile_size_cm, math.ceil(fp.pe_size_nm))) * layers
    adds = int(max(math.ceil(fp.pe_size_cm / p.sub_array), math.ceil(fp.pe_size_nm / p.sub_array)))
    adds *= int(max(math.ceil(fp.tile_size_cm / fp.pe_size_cm), math.ceil(math.sqrt(fp.pe_nm)))) * layers
    max_tiles = int(max(r for r, _ in fp.tiles))
    acc = adder_tree(max_tiles, p.subarray_output_bits + math.ceil(math.log2(adds)), math.ceil(throughput / p.col_muxed),
                     1.0, t) if max_tiles > 1 else 0.0
    # MaxPooling (2 x 2 windows, Initialize(numBitInput, 4, max(tile / numColMuxed, NM PE / numColMuxed)))
    # and the chip's ReLU (BitShifter.cpp: numBitInput DFFs per output of the widest tile, pipeline copies).
    pool = max_pool(p.input_bits, 4, int(max(fp.tile_size_cm / p.col_muxed, fp.pe_size_nm / p.col_muxed)), t)
    relu = dff(p.input_bits * math.ceil(throughput / p.col_muxed), t)[2]
    parts.update(global_buffer=glob, global_bus=bus, global_accumulation=acc, max_pool=pool, relu=relu)
    total = nm * n_nm + cm * n_cm + glob + bus + acc + pool + relu
    return {"total": total, "nm_tile": nm, "cm_tile": cm, "nm_tiles": n_nm, "cm_tiles": n_cm, "parts": parts}


# NeuroSim's summary groups (main.cpp "Total IC / ADC / Accumulation Circuits / Other Peripheries" area,
# ChipCalculateArea areaResults[1..5]): which parts each sums. The sub-arrays' empty space is in none.
GROUPS = {
    "ic": ("tile_htree", "global_bus"),
    "adc": ("subarray_sense_amp", "subarray_sa_encoder"),
    "accumulation": ("subarray_shift_add_weight", "subarray_shift_add_input", "subarray_adder", "subarray_dff",
                     "pe_adder_tree", "tile_accumulation", "global_accumulation"),
    "other": ("subarray_wl_level_shifter", "subarray_bl_level_shifter", "subarray_sl_level_shifter",
              "subarray_wl_switch_matrix", "subarray_sl_switch_matrix", "subarray_mux", "subarray_mux_decoder",
              "pe_buffers", "tile_buffers", "global_buffer", "max_pool", "relu"),
    "array": ("subarray_array",),
}


def groups(parts: dict) -> dict:
    return {g: sum(parts.get(k, 0.0) for k in keys) for g, keys in GROUPS.items()}


def supported(config) -> bool:
    """The ported technology: NeuroSim's 22 nm node and its 1T1R cell (4 F x 12 F)."""
    return config.feature_size_nm == 22.0 and abs(config.cell_area_f2 - 48.0) < 1e-9 and abs(config.cell_aspect - 3.0) < 1e-9


def mapping_area(mapping, config) -> dict | None:
    """NeuroSim's chip area for nncc's mapping laid out as NeuroSim's network
    (neurosim_periphery.network / floorplan / geometry), in mm^2 (None when the node or cell is
    not the ported one, or no crossbar layer has its own hardware)."""
    from . import neurosim_periphery as nsp

    if not supported(config):
        return None
    pairs = nsp.network(mapping)
    if not pairs:
        return None
    net = [n for _, n in pairs]
    p = nsp.params(config)
    fp = nsp.floorplan(net, p)
    res = chip_area(net, p, fp, nsp.geometry(net, p, fp))
    mm2 = 1e6
    return {"chip_area_mm2": res["total"] * mm2,
            "groups_mm2": {k: v * mm2 for k, v in groups(res["parts"]).items()},
            "tile_area_mm2": {"novel": res["nm_tile"] * mm2, "conventional": res["cm_tile"] * mm2},
            "tiles": {"novel": res["nm_tiles"], "conventional": res["cm_tiles"]},
            "parts_mm2": {k: v * mm2 for k, v in sorted(res["parts"].items())}}
