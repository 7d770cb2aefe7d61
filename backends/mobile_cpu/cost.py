"""Roofline cost of each kernel row of a :class:`~.mapping.MobileCpuMapping`.

    compute_s = MACs / (frequency x lanes(dtype) x fma_units x eff(class, dtype, MACs))
        eff = eff_<class> [x eff_int8 for int8] x m / (m + work_half_macs),
        m = MACs per output channel (small filters and small maps reuse registers badly)
    element-wise and pooling ops: ops / (frequency x fp32 lanes x eff_elementwise),
        ops = simple ops + transcendental evaluations x transcendental_ops;
        ops listed in op_cycles (kernels that are not the generic SIMD loop, e.g. LRN's
        scalar powf): elements x cycles / frequency
    memory_s  = DRAM bytes / dram_bandwidth + cached bytes / cache_bandwidth
        weights live in the cache when the model's weights plus one inference's activation
        traffic fit it, activations when the layer's input + output fit it
    latency_s = max(compute_s, memory_s) + overhead_s (dispatch); no-op and fused layers: 0
    recurrent layers (``steps`` time steps, one after another): compute_s adds the gate
        element-wise ops, each step re-reads the weights and pays overhead_s, and a step's
        activations (input + output / steps) decide whether they stay cached
    total     = sum of the layers + invoke_overhead_s (the runtime's fixed cost per inference)
    host profile with per-kernel fits (``kernel_fits``, nn-Meter style): the layers are grouped
        into the kernels onnxruntime runs (:mod:`.kernels`: fusion, NCHWc reorders) and each
        kernel's latency comes from its kind's fit (:mod:`.kernel_fit`), carried by the row that
        heads it; kinds without a fit keep the roofline latency. Energy keeps the roofline's
        dynamic part, with static power over the fitted latency.
    energy_j  = MACs x pJ/MAC(dtype) + ops x pJ/op(dtype) + DRAM bytes x pJ/B
                + cached bytes x pJ/B + static_power_w x latency_s
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nncc.cost import CostReport, LayerCost

from . import kernel_fit, kernels
from .mapping import KernelRow, MobileCpuMapping

PJ = 1e-12


@dataclasses.dataclass
class KernelCost:
    compute_s: float
    memory_s: float
    latency_s: float
    energy_j: float
    dram_bytes: int
    cache_bytes: int
    bound: str
    utilization: float | None


def efficiency(row: KernelRow, config: Any) -> float:
    """Fraction of the nominal MAC rate a kernel of this class and size reaches."""
    eff = getattr(config, f"eff_{row.op_class}")
    if row.dtype == "int8":
        eff *= config.eff_int8
    return eff * row.channel_macs / (row.channel_macs + config.work_half_macs)


def kernel_cost(row: KernelRow, config: Any, weights_resident: bool) -> KernelCost:
    if row.op_class in ("noop", "fused"):
        return KernelCost(0.0, 0.0, 0.0, 0.0, 0, 0, "none" if row.op_class == "noop" else "fused", None)
    if row.macs:
        peak = config.peak_macs_per_s(row.dtype)
        compute_s = row.macs / (peak * efficiency(row, config))
        if row.ops or row.transcendental:  # a recurrent layer's gate work, after each step's GEMM
            compute_s += elementwise_ops(row, config) / (config.frequency_hz * config.lanes(32) * config.eff_elementwise)
    else:
        peak = config.frequency_hz * config.lanes(32)
        cycles = config.cycles_table().get(row.op) if row.elements else None
        if cycles is not None:
            compute_s = row.elements * cycles / config.frequency_hz
        else:
            compute_s = elementwise_ops(row, config) / (peak * config.eff_elementwise)
    dram = cached = 0
    if weights_resident:
        cached += row.weight_bytes
    else:
        dram += row.weight_bytes
    activations = row.input_bytes + row.output_bytes
    if activations / row.steps <= config.cache_bytes:
        cached += activations
    else:
        dram += activations
    memory_s = dram / config.dram_bandwidth + cached / config.cache_bandwidth
    overhead = config.overhead_s * row.steps
    latency = max(compute_s, memory_s) + overhead
    if overhead > max(compute_s, memory_s):
        bound = "overhead"
    else:
        bound = "compute" if compute_s >= memory_s else "memory"
    pj_mac = config.pj_per_mac_int8 if row.dtype == "int8" else config.pj_per_mac_fp32
    pj_op = config.pj_per_op_int8 if row.dtype == "int8" else config.pj_per_op_fp32
    ops = elementwise_ops(row, config)
    energy = (row.macs * pj_mac + ops * pj_op + dram * config.pj_per_dram_byte + cached * config.pj_per_cache_byte) * PJ \
        + config.static_power_w * latency
    work = row.macs if row.macs else ops
    utilization = (work / latency) / peak if latency > 0 and work else None
    return KernelCost(compute_s, memory_s, latency, energy, dram, cached, bound, utilization)


def elementwise_ops(row: KernelRow, config: Any) -> float:
    return row.ops + row.transcendental * config.transcendental_ops


def footprint_bytes(mapping: MobileCpuMapping) -> int:
    """What one inference touches: the weights and every layer's activation traffic."""
    return mapping.model_weight_bytes + sum(row.input_bytes + row.output_bytes for row in mapping.layers)


def weights_resident(mapping: MobileCpuMapping, config: Any) -> bool:
    """Weights stay cached between inferences only if they and one inference's activation
    traffic fit the cache together (otherwise the activations evict them)."""
    return footprint_bytes(mapping) <= config.cache_bytes


def fitted_latencies(mapping: MobileCpuMapping, config: Any, costs: list[KernelCost]) -> dict[str, float]:
    """Row name -> latency of the onnxruntime kernels it heads, from the per-kernel fits. In a
    model whose footprint exceeds the last-level cache, a matrix-vector kernel whose weights
    do not fit the (L2) cache streams them from DRAM on every run: never faster than its weight
    bytes at the measured DRAM bandwidth (the synthetic matrix-vector graphs it was fitted on
    keep part of even 150 MB of weights in the last level, and the fit runs below what memory
    delivers for AlexNet's fc6). In a smaller model those weights stay in the last level:
    LeNet-Caffe's 1.6 MB fc layer reads them at ~35 GB/s, 2.6x the DRAM rate."""
    fits = kernel_fit.from_json(config.kernel_fits)
    from_dram = footprint_bytes(mapping) > config.llc_bytes  # each run evicted the last one's weights
    roofline = {row.name: c.latency_s for row, c in zip(mapping.layers, costs)}
    latency = {row.name: 0.0 for row in mapping.layers}
    for k in kernels.detect(mapping, config):
        seconds = fits.predict(k.kind, k.features)
        standalone = sum(roofline.get(name, 0.0) for name in k.rows)
        if seconds is None and k.kind.startswith("eltwise:") and not standalone:  # a layer the mapping had fused
            seconds = fits.predict("eltwise:*", k.features)
        if seconds is None:
            seconds = standalone
        if from_dram and k.kind == "gemv" and k.features[3] > config.cache_bytes:
            seconds = max(seconds, k.features[3] / (config.weight_stream_bandwidth or config.dram_bandwidth))
        latency[k.owner] = latency.get(k.owner, 0.0) + seconds
    return latency


def estimate(mapping: MobileCpuMapping, config: Any) -> CostReport:
    resident = weights_resident(mapping, config)
    costs = [kernel_cost(row, config, resident) for row in mapping.layers]
    fixed, per_kernel = config.invoke_overhead_s, bool(getattr(config, "kernel_fits", ""))
    model_note = "per-kernel fits (kernel_fits)"
    if per_kernel:
        try:
            fitted = fitted_latencies(mapping, config, costs)
            costs = [_refit(c, fitted[row.name], config) for row, c in zip(mapping.layers, costs)]
            fixed = kernel_fit.from_json(config.kernel_fits).invoke_s
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:  # a graph detection cannot read
            model_note = f"roofline: per-kernel fits not applicable ({type(e).__name__}: {e})"
    rows = [layer_cost(row, c) for row, c in zip(mapping.layers, costs)]
    bounds: dict[str, int] = {}
    for r in rows:
        bounds[r.bound] = bounds.get(r.bound, 0) + 1
    totals = {"invoke_overhead_s": fixed, "weights_in_cache": resident,
              "layers_by_bound": dict(sorted(bounds.items()))}
    if per_kernel:
        totals["latency_model"] = model_note
    # One inference = the layers one after another plus the runtime's fixed per-call cost.
    return CostReport(rows, unsupported=list(mapping.unsupported), area_mm2=None, weight_bytes=mapping.model_weight_bytes,
                      fixed_latency_s=fixed, extra_totals=totals)


def _refit(c: KernelCost, latency: float, config: Any) -> KernelCost:
    """The roofline row with the fitted latency (static energy follows the latency)."""
    if c.bound in ("none", "fused") and latency == 0:
        return c
    energy = c.energy_j + config.static_power_w * (latency - c.latency_s)
    utilization = c.utilization * c.latency_s / latency if c.utilization and latency > 0 else None
    return dataclasses.replace(c, latency_s=latency, energy_j=energy, utilization=utilization)


# ---------------------------------------------------------------- report rows

@dataclasses.dataclass(kw_only=True)
class RooflineCost(LayerCost):
    """A report row: the kernel's class and precision, which roof bounds it, and its bytes."""

    op_class: str          # efficiency class, as in the mapping (conv, depthwise, ..., noop, fused)
    dtype: str
    bound: str             # compute | memory | overhead | fused | none
    bytes: int             # weights + activations in + out
    dram_bytes: int
    compute_s: float
    memory_s: float


@dataclasses.dataclass(kw_only=True)
class FusedCost(RooflineCost):
    """A layer that runs inside another kernel (an epilogue, or a dequantization folded into its consumer)."""

    fused_into: str


@dataclasses.dataclass(kw_only=True)
class FusingCost(RooflineCost):
    """A kernel that runs the layers in ``fuses`` as its epilogue."""

    fuses: list[str]


def layer_cost(row: KernelRow, c: KernelCost) -> RooflineCost:
    common = dict(op_class=row.op_class, dtype=row.dtype, bound=c.bound,
                  bytes=row.weight_bytes + row.input_bytes + row.output_bytes, dram_bytes=c.dram_bytes,
                  compute_s=c.compute_s, memory_s=c.memory_s)
    base = (row.name, row.op, int(row.macs), c.latency_s, c.energy_j, c.utilization)
    if row.fused_into:
        return FusedCost(*base, fused_into=row.fused_into, **common)
    if row.fused:
        return FusingCost(*base, fuses=list(row.fused), **common)
    return RooflineCost(*base, **common)
