"""Time and energy of one training step under a partition plan.

Compute: every split halves each layer's work (dp halves the batch, mp the input channels),
so an accelerator does 1/N of the training MACs (forward, error backward, weight gradient:
``training_passes`` x the forward MACs) whatever the plan; element-wise ops cost one op per
output element forward and one backward; their energy per op is Horowitz's at the layer's
data width (int8, fp16 or fp32: ``HyparConfig.mac_pj``). Communication: level h (0 = top)
has 2^h group pairs working at once; under 'htree' (the paper's H tree) each pair has one
link of link_bytes_per_s / 2^h -- a level's links together carry one link's bandwidth --,
under 'uniform' one full-rate link, under 'pairwise' the pair's bytes spread over
accelerators/2^(h+1) full-rate mirror links. A step's latency is compute + communication
(no overlap [U]: HyPar's gains come from communication, which a sum keeps visible);
energy is MACs x pJ/MAC + element-wise ops x pJ/op + bits on all links x pJ/bit.

A level's amounts are what each group of a pair receives (the AccPar code's convention: a
row-to-column re-split costs a quarter of the tensor, the quarter one half lacks). Both
groups receive it at once over the full-duplex link, so the time is one direction's bytes
over one direction's bandwidth and the energy counts both directions' bits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import onnx_ir as ir
from nncc.analysis import Layer
from nncc.cost import CostReport, LayerCost

from .config import HyparConfig
from .graph import LayerSpec
from .partition import DP, MP, NAMES, LevelPlan

ELEMENTWISE_PASSES = 2  # forward + backward of a non-weighted op [U]
DIRECTIONS = 2          # each group of a pair sends the amount the other receives (module docstring)


@dataclasses.dataclass(kw_only=True)
class FoldedCost(LayerCost):
    """A non-weighted op: compute only, run with the partition of the weighted layer it folds into."""

    folded_into: str | None
    compute_s: float
    comm_s: float


@dataclasses.dataclass(kw_only=True)
class PartitionedCost(LayerCost):
    """A weighted layer: its dp/mp choice per level, the amounts that choice moves, compute and links."""

    choices: str           # dp or mp per level, top level first ("dp/mp/...")
    dW_elems: float        # top level, elements per group pair: weight gradient, output and input maps
    F_out_elems: float
    F_in_elems: float
    train_macs: float
    compute_s: float
    comm_s: float
    comm_bytes: float
    comm_energy_j: float


def links_per_pair(config: HyparConfig, h: int) -> int:
    return max(1, config.accelerators // 2 ** (h + 1)) if config.topology == "pairwise" else 1


def link_rate(config: HyparConfig, h: int) -> float:
    """Bytes/s of one of level ``h``'s links, each direction: the H tree halves it at each level down."""
    return config.link_bytes_per_s / 2**h if config.topology == "htree" else config.link_bytes_per_s


def level_time(config: HyparConfig, h: int, nbytes: float) -> float:
    return nbytes / (link_rate(config, h) * links_per_pair(config, h))


def level_energy(config: HyparConfig, h: int, nbytes: float) -> float:
    return DIRECTIONS * nbytes * 2**h * 8 * config.link_pj_per_bit * 1e-12


def compute_cost(spec_macs: float, config: HyparConfig, passes: int | None = None, per_s: float | None = None,
                 pj: float | None = None, bits: int = 0) -> tuple[float, float]:
    """(seconds on one accelerator, joules on all) of ``spec_macs`` per-sample operations; MACs cost
    ``pj`` or else Horowitz's figure at ``bits`` (0: the config's data width)."""
    ops = (passes or config.training_passes) * config.batch * spec_macs
    pj = config.mac_pj(bits or config.data_bits) if pj is None else pj
    return ops / config.accelerators / (per_s or config.macs_per_s), ops * pj * 1e-12


def layer_comm(plans: Sequence[LevelPlan], i: int, config: HyparConfig) -> tuple[float, float, float]:
    """(seconds, joules, bytes over all links) of layer ``i``'s communication over every level."""
    t = e = b = 0.0
    for p in plans:
        nbytes = p.intra_bytes[i] + p.transition_bytes[i]
        t += level_time(config, p.level, nbytes)
        e += level_energy(config, p.level, nbytes)
        b += nbytes * 2**p.level
    return t, e, b


def summary(specs: Sequence[LayerSpec], plans: Sequence[LevelPlan], config: HyparConfig,
            other_s: float = 0.0, other_j: float = 0.0) -> dict[str, float]:
    """Step totals of one plan; ``other_*`` is the non-weighted work (the same under every plan)."""
    compute = [compute_cost(s.macs, config, bits=s.data_bits) for s in specs]
    comm_s = sum(level_time(config, p.level, p.bytes) for p in plans)
    comm_j = sum(level_energy(config, p.level, p.bytes) for p in plans)
    compute_s = sum(c[0] for c in compute) + other_s
    compute_j = sum(c[1] for c in compute) + other_j
    return {"latency_s": compute_s + comm_s, "energy_j": compute_j + comm_j, "compute_s": compute_s, "comm_s": comm_s,
            "comm_energy_j": comm_j, "comm_bytes": sum(p.bytes * 2**p.level for p in plans)}


def gains(plans: dict[str, Sequence[LevelPlan]], specs, config: HyparConfig, other_s=0.0, other_j=0.0) -> dict[str, Any]:
    sums = {name: summary(specs, p, config, other_s, other_j) for name, p in plans.items()}
    hy, dp = sums["hypar"], sums["dp"]
    return {"sums": sums, "perf": dp["latency_s"] / hy["latency_s"] if hy["latency_s"] else 1.0,
            "energy": dp["energy_j"] / hy["energy_j"] if hy["energy_j"] else 1.0}


def _row_bits(row: Layer) -> int:
    """A non-weighted op's data width from its output: 16 for float16/bfloat16, 8 for 8-bit integers, else 0
    (the config's)."""
    out = row.node.outputs[0] if row.node.outputs else None
    dtype = out.dtype if out is not None else None
    if dtype in (ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
        return 16
    return 8 if dtype in (ir.DataType.INT8, ir.DataType.UINT8) else 0


def _other(row: Layer, config: HyparConfig, model_batch: int) -> tuple[float, float, int]:
    """Non-weighted op: (seconds, joules, per-sample MACs) -- activation x activation products or element-wise."""
    bits = _row_bits(row)
    if row.macs > 0:  # e.g. attention's MatMul of two activations: no weight, so no parallelism choice
        t, e = compute_cost(row.macs / model_batch, config, bits=bits)
        return t, e, row.macs
    t, e = compute_cost(row.elementwise_ops / model_batch, config, ELEMENTWISE_PASSES, config.elementwise_per_s,
                        config.elementwise_pj(bits or config.data_bits))
    return t, e, 0


def estimate(mapping, config: HyparConfig) -> CostReport:
    g, plans = mapping.graph, mapping.plans["hypar"]
    index = {s.name: i for i, s in enumerate(g.specs)}
    rows: list[FoldedCost | PartitionedCost] = []
    other_s = other_j = 0.0
    for row in mapping.layers:
        i = index.get(row.name)
        if i is None:
            t, e, macs = _other(row, config, g.batch)
            other_s, other_j = other_s + t, other_j + e
            rows.append(FoldedCost(row.name, row.op, macs, t, e, None, folded_into=g.folded.get(row.name), compute_s=t,
                                   comm_s=0.0))
            continue
        spec = g.specs[i]
        ct, ce = compute_cost(spec.macs, config, bits=spec.data_bits)
        mt, me, mb = layer_comm(plans, i, config)
        first = plans[0].amounts[i] if plans else {}
        rows.append(PartitionedCost(
            row.name, row.op, row.macs, ct + mt, ce + me, ct / (ct + mt) if ct + mt else None,
            choices="/".join(NAMES[p.assignment[i]] for p in plans),
            dW_elems=first.get("dW", 0.0), F_out_elems=first.get("F_out", 0.0), F_in_elems=first.get("F_in", 0.0),
            train_macs=config.training_passes * config.batch * spec.macs,
            compute_s=ct, comm_s=mt, comm_bytes=mb, comm_energy_j=me))
    result = gains(mapping.plans, g.specs, config, other_s, other_j)
    sums = result["sums"]
    train_macs = sum(config.training_passes * config.batch * s.macs for s in g.specs)
    levels = [{"level": p.level, "groups": 2 ** (p.level + 1), "links": 2**p.level * links_per_pair(config, p.level),
               "link_bytes_per_s": link_rate(config, p.level),
               "dp_layers": p.assignment.count(DP), "mp_layers": p.assignment.count(MP),
               "train_macs_per_group": train_macs / 2 ** (p.level + 1),
               "bytes_per_pair": p.bytes, "bytes_all_links": p.bytes * 2**p.level,
               "comm_s": level_time(config, p.level, p.bytes), "comm_energy_j": level_energy(config, p.level, p.bytes)}
              for p in plans]
    totals = {
        "accelerators": config.accelerators, "batch": config.batch, "gradient": config.gradient,
        "compute_s": sums["hypar"]["compute_s"], "comm_s": sums["hypar"]["comm_s"], "comm_bytes": sums["hypar"]["comm_bytes"],
        "levels": levels,
        "dp_latency_s": sums["dp"]["latency_s"], "dp_energy_j": sums["dp"]["energy_j"], "dp_comm_bytes": sums["dp"]["comm_bytes"],
        "mp_latency_s": sums["mp"]["latency_s"], "mp_energy_j": sums["mp"]["energy_j"], "mp_comm_bytes": sums["mp"]["comm_bytes"],
        "gain_perf_vs_dp": result["perf"], "gain_energy_vs_dp": result["energy"],
        "skip_edges": len(g.skip_edges),
    }
    weight_bytes = sum(r.weight_bytes for r in mapping.layers)
    return CostReport(rows, unsupported=list(mapping.unsupported), area_mm2=None, weight_bytes=weight_bytes, extra_totals=totals)
