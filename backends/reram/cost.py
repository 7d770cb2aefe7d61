"""Latency, energy and area of a :class:`~.mapping.ReramMapping`.

Per crossbar layer (constants in config.py, each with its source):

    cycle_s    = max(read_pulse_s, busiest ADC's columns x t_conv(bits))  one input bit; the next
                 read overlaps the conversions of the last (sample-and-hold, as in ISAAC)
                 t_conv(b) = (b / 8) / adc_rate_hz (SAR: one bit per step; rate quoted at 8 bits)
    latency_s  = ceil(MVMs / replicate) x input_bits x cycle_s            (all crossbars of a layer in parallel;
                 layers one after another, NeuroSim's default ``pipeline = false``)
    energy     = sum_slices conversions x E_adc(bits of the slice)
               + DAC drives x E_dac + shift-adds x E_sa
               + MVMs x input_bits x V_read^2 x t_pulse x sum_rows(density x row conductance)   (NeuroSim-style read)
               + eDRAM accesses x E_edram + router flits x E_router
    area       = crossbars x X^2 x cell_area_f2 x F^2 (crossbar arrays)
               + provisioned ADCs x A_adc(bits) + crossbars x X x A_dac + one shift-add per ADC
               + IMAs x eDRAM-bus area + routing area;  the chip adds tiles x (eDRAM + router share)
    routing    = wire lengths (in crossbar sides) x crossbar side x wire pitch: every output-column
                 segment of a placed crossbar that holds a non-zero cell is a wire into the binary
                 adder tree that reduces that column's partial sums over its row blocks
                 (column_stats.tree_length; NeuroSim's adder tree on an H-tree)
                 [U: our model; Group Scissor's own routing-area formula was not available]. It
                 grows with crossbars and stack height and falls when connection groups (zero
                 column segments, delete-groups) are deleted or a rank clip shortens the stacks.
Recurrent layers (``steps`` time steps, MVMs = steps x batch): the steps are serial, each its
batch rows' MVMs then the gate work on the digital units:
    latency_s  = steps x (ceil(batch / replicate) x input_bits x cycle_s
                          + max(step gate ops / (digital_lanes x clock), step gate accesses / clock))
    energy    += gate ops x digital_op_pj + gate accesses x E_edram
Technology: every ISAAC energy (ADC table, DAC, shift-add, eDRAM, router, digital op) and
peripheral area is moved from 32 nm to feature_size_nm (physics.py; x1 at 32 nm).
``profile=neurosim`` (DNN+NeuroSim V1.4, physics.py) replaces the array and its timing:
    cycle_s    = reads x busiest ADC's columns x beta x t_sense(bits)    (reads = ceil(rows / parallel_read):
                 each row group is sensed column after column through the mux; beta = sense_cycle_factor;
                 sense_all_row_groups: reads = ceil(crossbar_size / parallel_read), NeuroSim's numAdd)
    energy     = conversions x E_adc(bits)       (flash: 2^b - 1 levels x level_gates x C_gate,min x Vdd^2)
               + MVMs x bits x active_rows x cols_per_adc x C_WL Vdd^2 + conversions x C_col V_read^2 (1 + (L-1)/L)
               + MVMs x bits x sum_rows(density x row conductance) x V_read^2 x t_sense
               + the shift-adds, buffer and router terms above; all x post_layout_energy (zeta)
    where active_rows = rows whose input bit is 1, measured on the calibration inputs, and
    conversions count every row group; conv layers are replicated as NeuroSim's pipeline does
    (pipeline_speedup; latency_s and pipelined_interval_s use the copies).
    With neurosim_periphery (on in the profile) each layer's latency adds NeuroSim's buffer and
    interconnect time: its synchronous cycle counts of the global / tile / PE buffers, the tile
    H-tree and the chip X-Y bus on its own floorplan (neurosim_periphery.py), x the clock, which
    NeuroSim sets to the slowest sub-array sense cycle (here beta x t_sense):
    latency_s += (buffer_cycles + interconnect_cycles) x beta x t_sense.
    With neurosim_area (on in the profile, 22 nm 1T1R only) the chip area is NeuroSim's own
    (neurosim_area.py: its sub-arrays' height x width, PEs, tiles, buffers, H-trees, X-Y bus on
    its floorplan); nncc's sum above stays in the totals as nncc_area_mm2.
Digital rows: simple-op equivalents x digital_op_pj + eDRAM accesses x E_edram;
latency max(ops / (digital_lanes x clock), accesses / clock). Leakage: the Accelergy ISAAC
entries list none, so none is added.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nncc.cost import CostReport, LayerCost, optional

from . import physics
from .digital import DigitalLayer, equivalent_ops
from .mapping import CrossbarLayer, ReramMapping

PJ = 1e-12
UM2_PER_MM2 = 1e6


@dataclasses.dataclass(kw_only=True)
class CrossbarCost(LayerCost):
    """A report row of a layer on crossbars."""

    kind: str = dataclasses.field(default="crossbar", init=False)
    crossbars: int
    crossbars_logical: int
    grid: str                  # [groups x] row blocks x column blocks
    mvms: int
    adc_bits: list[int]        # per slice, most significant first
    adcs: int
    adc_conversions: int
    dac_drives: int
    shift_adds: int
    buffer_accesses: int
    router_flits: int
    cycle_s: float
    tiles: list[int]           # first and last tile
    crossbar_area_mm2: float
    adc_area_mm2: float
    routing_area_mm2: float
    area_mm2: float
    energy_breakdown_j: dict[str, float]
    held_by: str | None = optional()  # runs on the crossbars of this earlier layer (same weight): no hardware of its own
    # neurosim_periphery: NeuroSim's buffer and interconnect time of the layer, included in latency_s
    buffer_s: float | None = optional(default=None)
    interconnect_s: float | None = optional(default=None)


@dataclasses.dataclass(kw_only=True)
class DigitalCost(LayerCost):
    """A report row of an op on the tile's digital units."""

    kind: str                  # digital | data | noop | folded
    ops: float                 # simple-op equivalents
    buffer_accesses: int
    note: str
    area_mm2: float = 0.0      # the digital units' area is not modelled
    # Summed into the report's energy breakdown; a digital row does not list it.
    energy_breakdown_j: dict[str, float] = dataclasses.field(repr=False)


def crossbar_cost(row: CrossbarLayer, config) -> CrossbarCost:
    top_bits = max(row.adc_bits, default=0)
    bits = row.input_bits or config.input_bits  # an integer or float16 layer's own input width
    cycle = cycle_s(row, config, top_bits)
    latency = -(-row.mvms // row.replicate) * bits * cycle
    gate_ops = 0.0
    if row.steps:  # a recurrent layer: per step its MVMs, then the gates on the digital units
        simple, mul, trans = row.gate_mix
        gate_ops = simple + mul * config.digital_mul_ops + trans * config.transcendental_ops
        batch = row.mvms // row.steps
        digital = max(gate_ops / (config.digital_lanes * config.clock_hz), row.gate_accesses / config.clock_hz) / row.steps
        latency = row.steps * (-(-batch // row.replicate) * bits * cycle + digital)
    parts = {
        "adc": sum(c * config.adc_energy_pj(b) for c, b in zip(row.conversions, row.adc_bits) if c) * PJ,
        **array_energy(row, config, bits, top_bits),
        "shift_add": row.shift_adds * config.pj("shift_add_energy_pj") * PJ,
        "buffer": row.buffer_accesses * config.pj("edram_energy_pj") * PJ,
        "router": (row.psum_flits + row.act_flits) * config.pj("router_energy_pj") * PJ,
    }
    if row.steps:
        parts["digital"] = gate_ops * config.pj("digital_op_pj") * PJ
        parts["buffer"] += row.gate_accesses * config.pj("edram_energy_pj") * PJ
    parts = {key: value * config.post_layout_energy for key, value in parts.items()}
    # A layer run on crossbars another layer holds (held_by) adds reads, not hardware.
    placed = 0 if row.held_by else 1
    adcs = placed * sum(row.adc_units.values())
    xbar_area = placed * row.crossbars * config.crossbar_area_um2
    adc_area = placed * sum(count * config.adc_area_um2(b) for b, count in row.adc_units.items())
    periphery = placed * row.crossbars * config.crossbar_size * config.um2("dac_area_um2") + adcs * config.um2("shift_add_area_um2") \
        + row.imas * config.um2("bus_area_um2")
    routing = placed * row.wire_lengths * config.crossbar_side_um * config.wire_pitch_f * config.feature_size_nm * 1e-3
    cells = row.groups * row.rows * row.cols * row.slices * row.polarities * row.replicate
    utilization = cells / (row.crossbars * config.crossbar_size ** 2) if row.crossbars and placed else None
    return CrossbarCost(
        name=row.name, op=row.op, macs=row.macs, latency_s=latency, energy_j=float(sum(parts.values())),
        utilization=utilization,
        crossbars=placed * row.crossbars,
        crossbars_logical=placed * row.crossbars_logical,
        held_by=row.held_by,
        grid=f"{row.groups}x{row.row_blocks}x{row.col_blocks}" if row.groups > 1 else f"{row.row_blocks}x{row.col_blocks}",
        mvms=row.mvms,
        adc_bits=list(row.adc_bits),
        adcs=adcs,
        adc_conversions=int(sum(row.conversions)),
        dac_drives=row.dac_drives,
        shift_adds=row.shift_adds,
        buffer_accesses=row.buffer_accesses,
        router_flits=row.psum_flits + row.act_flits,
        cycle_s=cycle,
        tiles=list(row.tiles),
        crossbar_area_mm2=xbar_area / UM2_PER_MM2,
        adc_area_mm2=adc_area / UM2_PER_MM2,
        routing_area_mm2=routing / UM2_PER_MM2,
        area_mm2=(xbar_area + adc_area + periphery + routing) / UM2_PER_MM2,
        energy_breakdown_j=parts,
    )


def cycle_s(row: CrossbarLayer, config, top_bits: int) -> float:
    """Time of one input bit on a layer's crossbars. ISAAC: the read pulse, or the busiest ADC's
    conversions when slower (they overlap the next read). NeuroSim: each row group (partial
    parallel read) is sensed column after column through the mux, one sense each."""
    if config.profile == "neurosim":
        reads = -(-config.crossbar_size // config.rows_parallel) if config.sense_all_row_groups else row.reads
        return reads * row.busiest_adc_columns * config.adc_conversion_s(max(top_bits, 1)) * config.sense_cycle_factor
    if not top_bits:
        return config.read_pulse_s
    return max(config.read_pulse_s, row.busiest_adc_columns * config.adc_conversion_s(top_bits))


def array_energy(row: CrossbarLayer, config, bits: int, top_bits: int) -> dict[str, float]:
    """Energy of driving the rows and reading the cells, per the profile (physics.py).

    isaac: a DAC drive per row and input bit, the cells' current over the read pulse.
    neurosim (SubArray.cpp, parallel read): a row whose input bit is 1 charges its word line once
    per column-mux step; each sense switches its column's line, C_col V_read^2 (1 + (L - 1) / L)
    for L = 2^bits levels (MultilevelSenseAmp.cpp, the column-cap term; SubArray.cpp counts the
    bit lines there); the cells conduct while their column is sensed. ``active_rows`` is
    measured on the calibration inputs (the 1-bit density), so the word-line and cell terms
    scale with the inputs' bit toggle rate."""
    v = config.read_voltage_v
    if config.profile != "neurosim":
        return {"dac": row.dac_drives * config.pj("dac_energy_pj") * PJ,
                "crossbar_read": row.mvms * bits * row.read_siemens * v ** 2 * config.read_pulse_s}
    f = config.feature_size_nm * 1e-9
    x = config.crossbar_size
    wordline = physics.wire_energy_j(x * config.cell_width_f * f, physics.vdd(config.feature_size_nm))
    column = physics.wire_energy_j(x * config.cell_height_f * f, v)
    row_bits = row.mvms * bits * row.active_rows
    t_sense = config.adc_conversion_s(max(top_bits, 1))
    senses = sum(c * column * (1 + (2 ** b - 1) / 2 ** b) for c, b in zip(row.conversions, row.adc_bits) if c)
    return {"wordline": row_bits * config.cols_per_adc * wordline,
            "bitline": senses,
            "crossbar_read": row.mvms * bits * row.read_siemens * v ** 2 * t_sense}


def digital_cost(row: DigitalLayer, config) -> DigitalCost:
    ops = equivalent_ops(row, config)
    compute = ops / (config.digital_lanes * config.clock_hz)
    memory = row.buffer_accesses / config.clock_hz
    parts = {"digital": ops * config.pj("digital_op_pj") * PJ, "buffer": row.buffer_accesses * config.pj("edram_energy_pj") * PJ}
    parts = {key: value * config.post_layout_energy for key, value in parts.items()}
    return DigitalCost(name=row.name, op=row.op, macs=row.macs, latency_s=max(compute, memory), energy_j=float(sum(parts.values())),
                       kind=row.kind, ops=ops, buffer_accesses=row.buffer_accesses, note=row.note, energy_breakdown_j=parts)


def _pipelined_interval(rows: list[CrossbarCost | DigitalCost]) -> float:
    """The slowest pipeline stage: a layer on its own hardware, or the layers sharing one set of
    crossbars (they run one after the other)."""
    stages: dict[str, float] = {}
    for row in rows:
        stage = getattr(row, "held_by", None) or row.name
        stages[stage] = stages.get(stage, 0.0) + row.latency_s
    return max(stages.values(), default=0.0)


def add_periphery(mapping: ReramMapping, rows: list[CrossbarCost | DigitalCost], config) -> dict[str, Any]:
    """neurosim_periphery: each crossbar layer's latency gains NeuroSim's buffer and interconnect
    cycles (neurosim_periphery.py) at one clock per sense cycle, NeuroSim's clock (main.cpp: the
    slowest sub-array read, beta x the sensing time, ProcessingUnit.cpp). Returns the totals."""
    from . import neurosim_periphery

    cycles, plan = neurosim_periphery.mapping_cycles(mapping, config)
    xl = [r for r in rows if isinstance(r, CrossbarCost)]
    clock = max((config.adc_conversion_s(max(max(r.adc_bits, default=0), 1)) * config.sense_cycle_factor for r in xl),
                default=0.0)
    for r in xl:
        c = cycles.get(r.name)
        if c is None:
            continue
        r.buffer_s, r.interconnect_s = c.buffer * clock, c.interconnect * clock
        r.latency_s += r.buffer_s + r.interconnect_s
    # NeuroSim's chip summary gives the largest layer figure ("pipeline-system buffer readLatency").
    return {"neurosim_clock_s": clock,
            "buffer_cycles": max((c.buffer for c in cycles.values()), default=0.0),
            "interconnect_cycles": max((c.interconnect for c in cycles.values()), default=0.0),
            "buffer_latency_s": max((r.buffer_s or 0.0 for r in xl), default=0.0),
            "interconnect_latency_s": max((r.interconnect_s or 0.0 for r in xl), default=0.0),
            "neurosim_tiles": plan.total_tiles if plan else 0,
            "neurosim_floorplan": {"tile_size_cm": plan.tile_size_cm, "pe_size_cm": plan.pe_size_cm,
                                   "pe_size_nm": plan.pe_size_nm, "pes_nm": plan.pe_nm,
                                   "tiles_per_layer": plan.tiles_each} if plan else {}}


def estimate(mapping: ReramMapping, config) -> CostReport:
    rows: list[CrossbarCost | DigitalCost] = [
        crossbar_cost(row, config) if isinstance(row, CrossbarLayer) else digital_cost(row, config) for row in mapping.layers]
    periphery: dict[str, Any] = {}
    if config.neurosim_periphery:
        sensing = _pipelined_interval(rows)  # the sub-arrays alone, before the buffers and interconnect
        periphery = {**add_periphery(mapping, rows, config), "sensing_interval_s": sensing}
    energy: dict[str, float] = {}
    for row in rows:
        for key, value in row.energy_breakdown_j.items():
            energy[key] = energy.get(key, 0.0) + value
    xl = [r for r in rows if isinstance(r, CrossbarCost)]
    adc_hist: dict[int, int] = {}
    conv_hist: dict[int, int] = {}
    for layer in mapping.crossbar_layers:
        for b, count in layer.adc_units.items():
            adc_hist[b] = adc_hist.get(b, 0) + count
        for b, count in zip(layer.adc_bits, layer.conversions):
            conv_hist[b] = conv_hist.get(b, 0) + count
    tile_area = mapping.tiles * (config.um2("edram_area_um2") + config.um2("router_area_um2")) / UM2_PER_MM2
    area = sum(r.area_mm2 for r in xl) + tile_area
    if config.neurosim_area:
        from . import neurosim_area

        chip = neurosim_area.mapping_area(mapping, config)
        if chip is not None:
            periphery = {**periphery, "nncc_area_mm2": area, "neurosim_area": chip}
            area = chip["chip_area_mm2"]
    totals: dict[str, Any] = {
        "crossbars": sum(r.crossbars for r in xl),
        "crossbars_logical": sum(r.crossbars_logical for r in xl),
        "crossbar_area_mm2": sum(r.crossbar_area_mm2 for r in xl),
        "routing_area_mm2": sum(r.routing_area_mm2 for r in xl),
        "adc_area_mm2": sum(r.adc_area_mm2 for r in xl),
        "tile_overhead_area_mm2": tile_area,
        "tiles": mapping.tiles,
        "imas": mapping.imas,
        "adcs": sum(adc_hist.values()),
        "adc_bits_histogram": {str(b): c for b, c in sorted(adc_hist.items())},
        "adc_conversions_by_bits": {str(b): c for b, c in sorted(conv_hist.items())},
        "adc_conversions": sum(conv_hist.values()),
        "pipelined_interval_s": _pipelined_interval(rows),
        "energy_breakdown_j": energy,
        "calibration": mapping.calibration,
        **periphery,
    }
    weight_bytes = sum(r.layer.weight_bytes for r in mapping.layers if r.layer is not None)
    return CostReport(rows, unsupported=list(mapping.unsupported), area_mm2=area, weight_bytes=weight_bytes, extra_totals=totals)


# ---------------------------------------------------------------- Group Scissor figures

def _totals(obj: Any) -> dict[str, float]:
    if isinstance(obj, CostReport):
        return obj.totals()
    if isinstance(obj, ReramMapping):
        # Same config on both sides: counts stand in for areas (area = count x a constant).
        return {"crossbars": sum(r.crossbars for r in obj.crossbar_layers),
                "crossbars_logical": sum(r.crossbars_logical for r in obj.crossbar_layers),
                "crossbar_area_mm2": sum(r.crossbars for r in obj.crossbar_layers),
                "routing_area_mm2": sum(r.wire_lengths for r in obj.crossbar_layers)}
    if isinstance(obj, dict):
        return obj.get("totals", obj)
    raise TypeError(f"expected a CostReport, ReramMapping or report dict, got {type(obj).__name__}")


def crossbar_area_ratio(before: Any, after: Any) -> dict[str, float | None]:
    """Group Scissor's ratios of ``after`` (e.g. a rank-clipped model) against ``before`` (the
    unclipped mapping): crossbar area, routing area, crossbar counts (with and without bit slices).
    Either side may be a CostReport, a ReramMapping (same config on both sides) or a report dict."""
    b, a = _totals(before), _totals(after)
    out: dict[str, float | None] = {}
    for key, name in (("crossbar_area_mm2", "crossbar_area"), ("routing_area_mm2", "routing_area"),
                      ("crossbars", "crossbars"), ("crossbars_logical", "crossbars_logical")):
        out[name] = a[key] / b[key] if b.get(key) else None
    return out
