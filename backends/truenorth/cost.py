"""Cost of a TrueNorth placement: cores, chips, ticks, synaptic-event and static energy.

    latency   = (ticks x temporal copies + pipeline depth) x tick_s
                (pipeline depth: one tick per core stage on the longest path -- core-op, merge
                level, splitter, pool -- so the last layer sees the first input spikes that late)
    throughput = 1 / (ticks x temporal copies x tick_s)   (the pipeline overlaps frames;
                 the report's per-sample latency is this frame interval, nncc.workload)
    events    = spike rate x connected synapses x ticks x copies   (per inference)
                spike rate: measured per layer by simulate.py when given, else config.spike_rate
    energy    = events x pj_per_synaptic_event
                + chip_power_w x (cores used / cores_per_chip) x frame time  (static share)
                frame time = ticks x temporal copies x tick_s: frames stream through the pipeline
                and each holds the cores for that long (how TrueNorth figures per frame are
                quoted, e.g. Esser et al. at 1000 frames/s); a lone inference would pay the
                whole latency instead
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nncc.cost import CostReport, LayerCost, optional

from .mapping import TrueNorthMapping

PJ = 1e-12


@dataclasses.dataclass(kw_only=True)
class CoreCost(LayerCost):
    """A report row of one graph node on TrueNorth cores (all copies)."""

    kind: str                  # core-op, merge, pool, add, wiring, fused
    layer: str                 # the original layer the node belongs to
    cores: int
    crossbar_cores: int
    merge_cores: int
    splitter_cores: int
    neurons: int
    fan_in: int
    synapses: int
    spike_rate: float          # mean input spikes per axon per tick
    synaptic_events: float
    ticks: int
    stage_ticks: int
    dynamic_energy_j: float
    static_energy_j: float
    # Wiring, fused ops and merges pack nothing: their rows leave the column out.
    packing: dict[str, Any] = optional(default_factory=dict)


def estimate(mapping: TrueNorthMapping, config: Any) -> CostReport:
    c = config
    run_ticks = c.ticks * c.temporal_copies
    latency = (run_ticks + mapping.depth_ticks) * c.tick_s
    frame_s = run_ticks * c.tick_s
    rows: list[CoreCost] = []
    for row in mapping.layers:
        rate = mapping.input_rates.get(row.layer, c.spike_rate)
        events = rate * row.synapses * c.ticks * c.copies
        cores = row.total_cores * c.spatial_copies
        dynamic = events * c.pj_per_synaptic_event * PJ
        static = c.chip_power_w * cores / c.cores_per_chip * frame_s
        crossbar_neurons = row.cores * c.neurons_per_core
        rows.append(CoreCost(
            name=row.name, op=row.op, macs=int(row.macs), latency_s=row.stage_ticks * c.tick_s, energy_j=dynamic + static,
            utilization=min(1.0, row.neurons / crossbar_neurons) if crossbar_neurons else None,
            kind=row.kind, layer=row.layer, cores=cores, crossbar_cores=row.cores * c.spatial_copies,
            merge_cores=row.merge_cores * c.spatial_copies, splitter_cores=row.splitter_cores * c.spatial_copies,
            neurons=row.neurons, fan_in=row.fan_in, synapses=row.synapses, spike_rate=rate, synaptic_events=events,
            ticks=c.ticks, stage_ticks=row.stage_ticks, dynamic_energy_j=dynamic, static_energy_j=static, packing=row.packing))
    cores = mapping.cores_per_copy * c.spatial_copies
    totals = {
        "cores": cores, "cores_per_copy": mapping.cores_per_copy, "chips": -(-cores // c.cores_per_chip),
        "max_cores": c.max_cores, "copies": c.copies, "copy_mode": c.copy_mode, "ticks": c.ticks,
        "pipeline_depth_ticks": mapping.depth_ticks, "latency_ticks": run_ticks + mapping.depth_ticks,
        "throughput_fps": 1.0 / (run_ticks * c.tick_s) if c.tick_s else None,
        "synaptic_events": sum((r.synaptic_events for r in rows), 0.0),
        "dynamic_energy_j": sum((r.dynamic_energy_j for r in rows), 0.0),
        "static_energy_j": sum((r.static_energy_j for r in rows), 0.0),
        "weight_scheme": c.weight_scheme,
    }
    return CostReport(rows, unsupported=list(mapping.unsupported), area_mm2=None, weight_bytes=mapping.weight_bytes,
                      latency_override_s=latency, interval_s=frame_s, extra_totals=totals)
