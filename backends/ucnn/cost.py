"""Cycles and energy of UCNN and of its Eyeriss-style sparse baseline, on the same provisioning.

Per factorized layer, with P output positions per filter, F filters of K weights (nnz non-zero),
activation density d, weight / activation bits wb / ab, access energies in units of one 16-bit
MAC scaled by the word's bits / 16 (Eyeriss normalized table, see config.py):

  baseline (dense dataflow, zero gating -- multiplies skipped for a zero weight or activation,
  cycles not saved; Eyeriss gates on zero activations [V], gating zero weights is the
  "Eyeriss-style sparsity" of the UCNN baseline [U]):
    cycles     = P F K / PEs                                  (one MAC slot per weight)
    arithmetic = P nnz d (e_mult + e_add)
    RF         = P F K reads of the activation (the gate needs it)
                 + P nnz d (weight read + partial-sum read and write)   (row stationary [V Eyeriss])
    weights    = dense on chip; in DRAM the smaller of dense and run-length coded
  UCNN (factorized, mapping.py's counts per position: E entries, M multiplies, adds, cycles):
    cycles     = P cycles / PEs          (one indirection entry per PE per cycle: zero weights skipped)
    M'         = sum over multiplies of 1 - (1 - d)^n, n the activations summed for it: the
                 multiplies left when one on an all-zero sum is gated (``gate_zero_sums``; the
                 baseline's zero gating applied to UCNN's multiplies; M' = M when d = 1 or off)
    arithmetic = P (M' e_mult + act_adds d e_add + psum_adds (M'/M) e_add)
    RF         = P (E + padding) indirection entry reads (jump + G transition bits) + P E activation reads
                 + P M' (unique weight read + psum read/write)
    weights    = the indirection + unique-weight tables, on chip and in DRAM
  both:
    a recurrent layer's gate work: + vector_ops / PEs cycles, vector_ops adds
    global buffer + NoC: weights once; the layer's input once per pass, a pass being one
                 filling of the PEs' weight scratch pads (passes = ceil(weight bytes / (PEs x
                 rf_weight_bytes))): smaller tables mean fewer re-reads of the input [U]
    DRAM:        weights once, input and output activations once each (ideal reuse) [U], the
                 activations run-length coded at density d in both designs (``compress_activations``,
                 Eyeriss's feature-map compression; ``activation_rlc_share``)

Jump width: per layer, the width with the least energy x cycles (``ucnn_cost``).
Throughput-normalized energy [U: the paper's term; defined here as energy x cycles, i.e. the
energy either design spends at the throughput of the other]: ratio = (E_b C_b) / (E_u C_u).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from nncc.cost import CostReport, LayerCost, optional

from .mapping import UcnnLayer, UcnnMapping

PJ = 1e-12
PARTS = ("arithmetic", "rf", "glb_noc", "dram")


@dataclasses.dataclass
class DesignCost:
    """One layer on one design: cycles, energy by part, and the counts that apply to the layer's
    kind (None: not counted for this kind, and left out of the report)."""

    cycles: int
    arithmetic_j: float = 0.0
    rf_j: float = 0.0
    glb_noc_j: float = 0.0
    dram_j: float = 0.0
    energy_j: float = 0.0
    mults: float | None = optional(default=None)
    adds: float | None = optional(default=None)
    table_reads: int | None = optional(default=None)     # UCNN: indirection-table entries read
    rf_reads: float | None = optional(default=None)
    jump_bits: int | None = optional(default=None)       # UCNN: the jump width chosen for the layer
    pad_entries: int | None = optional(default=None)
    input_passes: int | None = optional(default=None)    # fillings of the PEs' weight scratch pads
    weight_dram_bytes: int | None = optional(default=None)


def design_totals(costs: list[DesignCost]) -> dict[str, Any]:
    """A design's sums over the layers (the report's ``ucnn`` / ``baseline`` totals)."""
    return {"cycles": sum(c.cycles for c in costs), "energy_j": sum((c.energy_j for c in costs), 0.0),
            **{f"{p}_j": sum((getattr(c, f"{p}_j") for c in costs), 0.0) for p in PARTS},
            "weight_dram_bytes": sum(c.weight_dram_bytes or 0 for c in costs), "mults": sum((c.mults or 0 for c in costs), 0.0)}


def _energy_unit(config: Any, wb: int | None = None, ab: int | None = None) -> tuple[float, float]:
    c = config
    wb, ab = wb or c.weight_bits, ab or c.act_bits
    return c.e_mult16_pj * wb * ab / 256, c.e_add16_pj * ab / 16


def activation_rlc_share(config: Any, density: float, ab: int) -> float:
    """DRAM bits of run-length-coded activations per dense bit (1: not compressed). Eyeriss
    stores feature maps in DRAM as (run of zeros, value) pairs [V, see config.compress_activations]:
    per element, density pairs plus one for each full run of 2^r zeros (about (1 - density)^(2^r)),
    each of ab + r bits; a layer keeps the smaller of coded and dense."""
    if not config.compress_activations:
        return 1.0
    r = config.rlc_run_bits
    pairs = density + (1.0 - density) ** (1 << r)
    return min(1.0, pairs * (ab + r) / ab)


def design_cost(row: UcnnLayer, config: Any, design: str, jump: int | None = None) -> DesignCost:
    """Cycles, energy (J, by part) and operation counts of one layer on one design
    (UCNN: with indirection jumps of ``jump`` bits, default the smallest table's width)."""
    c = config
    ab, wb = row.act_bits or c.act_bits, row.weight_bits or c.weight_bits  # an integer or float16 layer's own widths
    e_mult, e_add = _energy_unit(c, wb, ab)
    word = c.e_mac16_pj  # one 16-bit MAC: the unit of Eyeriss's normalized table
    d = row.act_density if row.act_density is not None else c.activation_density
    parts = dict.fromkeys(PARTS, 0.0)
    counts: dict[str, Any] = {}
    if row.kind == "noop":
        return DesignCost(0)
    if row.kind == "vector":
        ops = row.vector_ops
        cycles = math.ceil(ops / c.pes)
        parts["arithmetic"] = ops * e_add
        parts["glb_noc"] = (row.input_elems + row.output_elems) * (c.glb_x + c.noc_x) * word * ab / 16
        counts.update(adds=ops)
    elif row.kind == "dense":
        cycles = math.ceil(row.macs / c.pes)
        performed = row.macs * d
        parts["arithmetic"] = performed * (e_mult + e_add)
        parts["rf"] = (row.macs + performed * 3) * c.rf_x * word * ab / 16
        parts["glb_noc"] = (row.input_elems + row.output_elems) * (c.glb_x + c.noc_x) * word * ab / 16
        parts["dram"] = (row.input_elems + row.output_elems) * c.dram_x * word * ab / 16
        counts.update(mults=performed, adds=performed)
    else:
        s, p = row.stats, row.positions
        if design == "baseline":
            slots = s.filters * s.k
            cycles = math.ceil(p * slots / c.pes)
            performed = p * s.nnz * d
            parts["arithmetic"] = performed * (e_mult + e_add)
            rf_bits = p * slots * ab + performed * (wb + 2 * ab)
            chip_weight_bits, dram_weight_bits = row.dense_weight_bits, row.rlc_weight_bits
            counts.update(mults=performed, adds=performed, rf_reads=p * slots + performed * 3)
        else:
            jump = jump or s.jump_bits
            cycles = math.ceil(p * s.cycles(jump) / c.pes)
            # zero-sum gating: a multiply (with its unique-weight read and partial-sum update) is
            # skipped when its sum of activations is zero, as the baseline skips a MAC on a zero operand
            performed = s.mults_performed(d) if c.gate_zero_sums else float(s.mults)
            share = performed / s.mults if s.mults else 0.0
            mults, adds = p * performed, p * (s.act_adds * d + s.psum_adds * share)
            parts["arithmetic"] = mults * e_mult + adds * e_add
            table = s.entries + s.pad_entries(jump)
            rf_bits = p * (table * (jump + c.group) + s.entries * ab + performed * (wb + 2 * ab))
            chip_weight_bits = dram_weight_bits = s.table_bits(jump)
            counts.update(mults=mults, adds=adds, table_reads=p * table, rf_reads=p * (table + s.entries + 3 * performed),
                          jump_bits=jump, pad_entries=s.pad_entries(jump))
        parts["rf"] = rf_bits / 16 * c.rf_x * word
        passes = max(1, math.ceil(chip_weight_bits / 8 / (c.pes * c.rf_weight_bytes)))
        glb_bits = chip_weight_bits + (row.input_elems * passes + row.output_elems) * ab
        parts["glb_noc"] = glb_bits / 16 * (c.glb_x + c.noc_x) * word
        dram_bits = dram_weight_bits + (row.input_elems + row.output_elems) * ab * activation_rlc_share(c, d, ab)
        parts["dram"] = dram_bits / 16 * c.dram_x * word
        counts.update(input_passes=passes, weight_dram_bytes=math.ceil(dram_weight_bits / 8))
        if row.vector_ops:  # a recurrent layer's gate work on the adders, the same in both designs
            cycles += math.ceil(row.vector_ops / c.pes)
            parts["arithmetic"] += row.vector_ops * e_add
            counts["adds"] = counts["adds"] + row.vector_ops
    return DesignCost(int(cycles), **{f"{k}_j": v * PJ for k, v in parts.items()}, energy_j=sum(parts.values()) * PJ,
                      **counts)


def ucnn_cost(row: UcnnLayer, config: Any) -> DesignCost:
    """UCNN's cost with the jump width the compiler picks for the layer: the one that minimizes
    energy x cycles (a narrow jump shrinks the tables but pads long jumps with extra cycles);
    ``index_bits`` > 0 fixes it."""
    if row.stats is None or config.index_bits or len(row.stats.padding) < 2:
        return design_cost(row, config, "ucnn")
    options = [design_cost(row, config, "ucnn", j) for j in sorted(row.stats.padding)]
    return min(options, key=lambda o: (o.energy_j * max(o.cycles, 1), o.cycles, o.pad_entries))


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def estimate(mapping: UcnnMapping, config: Any) -> CostReport:
    c = config
    rows = [layer_cost(row, c) for row in mapping.layers]
    u, b = design_totals([r.ucnn for r in rows]), design_totals([r.baseline for r in rows])
    energy_ratio, cycles_ratio = _ratio(b["energy_j"], u["energy_j"]), _ratio(b["cycles"], u["cycles"])
    out_totals = {
        "design": c.design, "weight_bits": c.weight_bits, "group": c.group, "activation_density_source": mapping.density_source,
        "ucnn": u, "baseline": b,
        "energy_ratio": energy_ratio,          # baseline / UCNN: > 1 means UCNN spends less
        "cycles_ratio": cycles_ratio,          # baseline / UCNN: > 1 means UCNN is faster
        "throughput_normalized_energy_ratio": energy_ratio * cycles_ratio if energy_ratio and cycles_ratio else None,
        "pe_area_overhead": c.pe_area_overhead,
        "paper_range": "1.2x-4x lower throughput-normalized energy (Hegde et al. ISCA 2018 abstract)",
    }
    head = u if c.design == "ucnn" else b
    return CostReport(rows, unsupported=list(mapping.unsupported), area_mm2=None,
                      weight_bytes=int(head["weight_dram_bytes"]), extra_totals=out_totals)


def layer_cost(row: UcnnLayer, config: Any) -> UcnnLayerCost:
    """The report row of one layer: the headline design's time and energy, both designs' breakdowns."""
    c = config
    both = {"ucnn": ucnn_cost(row, c), "baseline": design_cost(row, c, "baseline")}
    main = both[c.design]
    util = None
    if row.kind in ("factorized", "dense") and main.cycles:
        util = min(1.0, row.macs / (main.cycles * c.pes))  # useful dense MACs per PE-cycle
    common = (row.name, row.op, int(row.macs), main.cycles / c.clock_hz, main.energy_j, util)
    if row.kind == "noop":
        return NoopCost(*common, kind=row.kind, note=row.note, **both)
    ratios = dict(energy_ratio=_ratio(both["baseline"].energy_j, both["ucnn"].energy_j),
                  cycles_ratio=_ratio(both["baseline"].cycles, both["ucnn"].cycles))
    if row.kind == "vector":
        return VectorCost(*common, kind=row.kind, note=row.note, **both, **ratios)
    density = row.act_density if row.act_density is not None else c.activation_density
    if row.kind == "dense":
        return DenseCost(*common, kind=row.kind, activation_density=density, note=row.note, **both, **ratios)
    s = row.stats
    return FactorizedCost(*common, kind=row.kind, activation_density=density, filters=s.filters, k=s.k,
                          positions=row.positions, zeros=s.zeros,
                          unique_nonzero_mean=s.unique / s.filters if s.filters else 0.0, unique_nonzero_max=s.unique_max,
                          table_entries=s.entries, mults_per_position=s.mults, adds_per_position=s.adds,
                          smallest_table_bits=s.table_bits(), dense_weight_bits=row.dense_weight_bits,
                          rlc_weight_bits=row.rlc_weight_bits, **both, **ratios)


# ---------------------------------------------------------------- report rows, one type per layer kind

@dataclasses.dataclass(kw_only=True)
class UcnnLayerCost(LayerCost):
    """A report row: the layer's kind (as in the mapping) and its cost on both designs."""

    kind: str
    ucnn: DesignCost
    baseline: DesignCost


@dataclasses.dataclass(kw_only=True)
class NoopCost(UcnnLayerCost):
    note: str              # why the layer costs nothing


@dataclasses.dataclass(kw_only=True)
class VectorCost(UcnnLayerCost):
    """Element-wise or window work on the PE array's adders, the same in both designs."""

    note: str
    energy_ratio: float | None   # baseline / UCNN
    cycles_ratio: float | None


@dataclasses.dataclass(kw_only=True)
class DenseCost(VectorCost):
    """A product of two activations: plain MACs in both designs."""

    activation_density: float


@dataclasses.dataclass(kw_only=True)
class FactorizedCost(UcnnLayerCost):
    """A layer whose filters UCNN factorizes: its weight statistics beside both designs' costs."""

    activation_density: float
    filters: int
    k: int
    positions: int
    zeros: int
    unique_nonzero_mean: float
    unique_nonzero_max: int
    table_entries: int
    mults_per_position: int
    adds_per_position: int
    smallest_table_bits: int
    dense_weight_bits: int
    rlc_weight_bits: int
    energy_ratio: float | None
    cycles_ratio: float | None
