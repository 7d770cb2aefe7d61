"""The roofline: a layer takes the longer of its compute time and its DRAM time.

    compute_s = ceil((MACs + ALU ops) / PEs) / clock      (one op per PE per cycle)
    memory_s  = DRAM bytes / DRAM bandwidth
    latency_s = max(compute_s, memory_s)
    energy_j  = MACs x E_mac + ALU ops x E_alu + buffer bytes x E_sram + DRAM bytes x E_dram

Every byte a layer touches passes the global buffer once (E_sram); DRAM bytes cost E_dram on
top. The ridge point (ops per DRAM byte above which a layer is compute-bound) is
PEs x clock / bandwidth = 21 ops/B with the defaults.
"""

from __future__ import annotations

import dataclasses
import math

from nncc.plugin import CostReport, LayerCost, Mapping, optional

from nncc_roofline.config import RooflineConfig
from nncc_roofline.mapping import RooflineLayer

PJ = 1e-12


@dataclasses.dataclass
class RooflineCost(LayerCost):
    """A report row: LayerCost's columns plus the roofline's own (every field is a column)."""

    bound: str = ""  # "compute" or "memory": which roof the layer sits under ("none": a view, no work)
    dram_bytes: int = 0
    ops_per_dram_byte: float | None = optional(default=None)  # arithmetic intensity; absent without DRAM traffic


def estimate(mapping: Mapping[RooflineLayer], config: RooflineConfig) -> CostReport:
    rows = [cost_row(row, config) for row in mapping.layers]
    # A total of the target's own: labelled in report.md / report.html by RooflineTarget.report_fields.
    return CostReport(rows, mapping.unsupported, area_mm2=config.area_mm2,
                      weight_bytes=sum(row.weight_bytes for row in mapping.layers),
                      extra_totals={"dram_bytes": sum(row.dram_bytes for row in rows)})


def cost_row(row: RooflineLayer, config: RooflineConfig) -> RooflineCost:
    ops = row.macs + row.alu_ops
    compute_s = math.ceil(ops / config.pe_count) / config.clock_hz
    memory_s = row.dram_bytes / config.dram_bytes_per_s
    latency = max(compute_s, memory_s)
    buffer_bytes = row.weight_bytes + row.activation_bytes
    energy = PJ * (row.macs * config.mac_pj + row.alu_ops * config.alu_pj
                   + buffer_bytes * config.sram_pj_per_byte + row.dram_bytes * config.dram_pj_per_byte)
    utilization = ops / (config.pe_count * config.clock_hz * latency) if latency > 0 else None
    return RooflineCost(row.name, row.op, row.macs, latency, energy, utilization,
                        bound=("compute" if compute_s >= memory_s else "memory") if latency > 0 else "none",
                        dram_bytes=row.dram_bytes,
                        ops_per_dram_byte=ops / row.dram_bytes if row.dram_bytes else None)
