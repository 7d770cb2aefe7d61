"""Cost of each kernel row of a :class:`~.mapping.SparseTcMapping`.

Dense HMMA GEMM, for a threadblock tile TM x TN (the fastest of ``config.tiles``):
    tiles       = batch x ceil(m/TM) x ceil(n/TN)
    k_pad       = ceil(k / hmma_k) x hmma_k
    tile_cycles = k_pad x TM x TN / (tensor_cores_per_sm x fma_per_tc_cycle)
    waves       = ceil(tiles / (sm_count x blocks_per_sm))
    cycles      = waves x tile_cycles;   utilization = MACs / (cycles x peak FMA/cycle)
    L2 bytes    = tiles x (TM + TN / reuse) x k_pad x value_bytes   (A and B panels of every tile;
                  reuse = kh x kw / stride^2 for an implicit-GEMM conv, else 1)
    HBM bytes   = weights + activations in + out (each read once; L2 catches the reuse)
    latency     = max(cycles / clock, L2 bytes / l2_bandwidth, HBM bytes / hbm_bandwidth) + launch
Vector-sparse GEMM (modes software / hardware, weights with N-of-L vectors):
    k_sparse    = ceil(k / L) x N, padded to hmma_k: the compacted reduction
    cycles      = waves x k_sparse_pad x TM x TN / FMA per SM cycle x (1 + overhead(mode))
    weight bytes= rows x ceil(k/L) x N x (value_bytes + log2(L)/8)   (values + in-vector indices)
    L2 bytes    = tiles x (TM x k_sparse_pad x (value_bytes + log2(L)/8) + TN x k_pad x value_bytes / reuse)
                  (the activation panel is still read whole: the gather happens on chip)
    Sparse kernels may also use tiles up to L/N (at most 4) times taller: same shared memory.
    The library keeps the dense kernel when it is faster (dense weights, tiny layers).
Recurrent layers (per time step a batched GEMM as above plus an element-wise gate kernel,
``steps`` of them one after another):
    step        = GEMM latency + (gate kernel bytes / hbm_bandwidth + launch)
    latency     = steps x step;  energy = steps x the step's energy
CUDA-core kernels (depthwise conv): max(MACs / (sm_count x cuda FMA/cycle x clock), bytes / HBM).
Int8 kernels (integer ops; DynamicQuantizeLSTM's step GEMM): DP4A on the INT32 cores,
    latency     = max(MACs / (sm_count x int32 lanes x 4 x clock), bytes / HBM) + launch,
    bytes at their own widths (int8 operands and weights, int32 accumulators);
    energy per MAC pj_per_int8_mac. An int8 recurrent layer: steps x (that step GEMM + gate kernel).
ConvTranspose: its HMMA GEMM (writing the column buffer) + the overlap-add kernel
    (col2im bytes / hbm_bandwidth + launch), added to both the dense and the chosen path.
Memory-bound kernels: (in + out bytes) / hbm_bandwidth + launch. Fused and no-op rows: 0.
Energy = executed FMAs x pj_per_fma + HBM bytes x pJ/B + L2 bytes x pJ/B + static power x latency.

``software_overhead`` / ``hardware_overhead`` are fitted constants: :func:`fit_overheads`
recomputes them on the paper's kind of workload (benchmarks/sparse_tc.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

from nncc.cost import CostReport, LayerCost, optional

from .mapping import KernelRow, SparsePattern, SparseTcMapping

PJ = 1e-12


# ---------------------------------------------------------------- report rows, one type per kernel kind

@dataclasses.dataclass(kw_only=True)
class KernelCost(LayerCost):
    """A report row: the layer's kernel ``kind`` (as in the mapping); a no-op row has nothing else."""

    kind: str

    def dense_latency_s(self) -> float:
        """The row's latency with every GEMM on its dense kernel (``speedup_vs_dense``'s reference)."""
        return self.latency_s


@dataclasses.dataclass(kw_only=True)
class FusedKernelCost(KernelCost):
    """An epilogue op that runs inside a GEMM kernel: no time of its own."""

    fused_into: str


@dataclasses.dataclass(kw_only=True)
class MemoryKernelCost(KernelCost):
    """A bandwidth-bound kernel (element-wise, pooling, data movement)."""

    bound: str
    hbm_bytes: float


@dataclasses.dataclass(kw_only=True)
class CudaCoreCost(MemoryKernelCost):
    """A depthwise conv on the CUDA cores."""

    gemm: str
    fuses: list[str]


# Fields of a weight's vector-sparse pattern that a GEMM row reports.
PATTERN_FIELDS = ("density", "vector", "keep", "balanced_fraction", "detected_vector", "detected_keep")


@dataclasses.dataclass(kw_only=True)
class TensorCoreCost(KernelCost):
    """A GEMM on the Tensor Cores: the chosen kernel (dense or vector-sparse) beside its dense reference."""

    gemm: str
    kernel: str            # dense | sparse
    tile: str
    tiles: int
    waves: int
    k_executed: int
    bound: str
    cycles_dense: float
    cycles: float
    latency_dense_s: float
    speedup: float
    weight_bytes_dense: float
    weight_bytes: float
    index_bytes: float
    hbm_bytes: float
    l2_bytes: float
    # Reported only when they apply: the pattern of a weight the format can hold (its columns
    # spelled out, see to_json), and the epilogue ops this kernel runs.
    pattern: SparsePattern | None = dataclasses.field(default=None, repr=False)
    fuses: list[str] = optional(default_factory=list)

    def dense_latency_s(self) -> float:
        return self.latency_dense_s

    def to_json(self) -> dict[str, Any]:
        row = super().to_json()
        if self.pattern is not None:
            row.update({name: getattr(self.pattern, name) for name in PATTERN_FIELDS})
        return row


@dataclasses.dataclass
class GemmCost:
    path: str              # dense | sparse
    tile: tuple[int, int]
    tiles: int
    waves: int
    k_eff: int             # reduction executed per output (padded)
    cycles: float
    compute_s: float
    l2_bytes: float
    hbm_bytes: float
    weight_bytes: float
    index_bytes: float
    latency_s: float
    executed_fmas: float
    bound: str


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def weight_format_bytes(row: KernelRow, config: Any, sparse: bool) -> tuple[float, float]:
    """(value bytes, index bytes) of the layer's weight: dense FP16, or the N-of-L vector format."""
    if not sparse:
        return row.weight_elements * config.value_bytes, 0.0
    p = row.pattern
    slots = p.rows * p.vectors_per_row * p.keep
    return slots * config.value_bytes, slots * config.index_bits / 8


def gemm_cost(row: KernelRow, config: Any, sparse: bool, overhead: float = 0.0) -> GemmCost:
    """The fastest tile for the dense or the vector-sparse path of one GEMM row."""
    k_pad = _ceil(row.k, config.hmma_k) * config.hmma_k
    values, index = weight_format_bytes(row, config, sparse)
    if sparse:
        k_eff = _ceil(_ceil(row.k, row.pattern.vector) * row.pattern.keep, config.hmma_k) * config.hmma_k
        a_bytes = config.value_bytes + config.index_bits / 8
    else:
        k_eff, a_bytes = k_pad, config.value_bytes
    hbm = values + index + row.input_bytes + row.output_bytes
    slots = config.sm_count * config.blocks_per_sm
    best = None
    shapes = config.tile_shapes()
    if sparse:
        # The compacted weight panel is keep/L of the dense one, so the same shared memory
        # holds up to L/keep times more weight rows: taller tiles re-read the activation
        # panel (which stays whole: the gather is on chip) fewer times.
        grow = [r for r in (2, 4) if r * row.pattern.keep <= row.pattern.vector]
        shapes = shapes + [(tm * r, tn) for r in grow for tm, tn in shapes]
    for tm, tn in shapes:
        tiles = row.batch * _ceil(row.m, tm) * _ceil(row.n, tn)
        waves = _ceil(tiles, slots)
        cycles = waves * k_eff * tm * tn / config.fma_per_sm_cycle * (1.0 + overhead)
        l2 = tiles * (tm * k_eff * a_bytes + tn * k_pad * config.value_bytes / row.b_reuse)
        compute_s = cycles / config.clock_hz
        parts = {"compute": compute_s, "l2": l2 / config.l2_bandwidth, "hbm": hbm / config.hbm_bandwidth}
        bound = max(parts, key=parts.get)
        latency = parts[bound] + config.kernel_launch_s
        cost = GemmCost("sparse" if sparse else "dense", (tm, tn), tiles, waves, k_eff, cycles, compute_s, l2, hbm,
                        values, index, latency, float(tiles * tm * tn * k_eff), bound)
        if best is None or latency < best.latency_s:
            best = cost
    return best


def row_paths(row: KernelRow, config: Any, mode: str | None = None) -> tuple[GemmCost, GemmCost]:
    """(dense cost, chosen cost) of a GEMM row in ``mode`` (config.mode by default)."""
    mode = mode or config.mode
    dense = gemm_cost(row, config, sparse=False)
    if mode == "dense" or row.pattern is None or row.pattern.keep >= row.pattern.vector:
        return dense, dense
    sparse = gemm_cost(row, config, sparse=True, overhead=config.overhead(mode))
    return dense, (sparse if sparse.latency_s < dense.latency_s else dense)


def _energy(fmas: float, hbm: float, l2: float, latency: float, config: Any) -> float:
    return (fmas * config.pj_per_fma + hbm * config.pj_per_hbm_byte + l2 * config.pj_per_l2_byte) * PJ \
        + config.static_power_w * latency


@dataclasses.dataclass(kw_only=True)
class RecurrentKernelCost(TensorCoreCost):
    """A recurrent layer: ``steps`` serial time steps, each a GEMM (the fields above: totals over
    the steps; ``gemm`` and ``tile`` are one step's) and an element-wise gate kernel."""

    steps: int
    step_latency_s: float
    pointwise_s: float     # one step's gate kernel


def _step_row(row: KernelRow) -> KernelRow:
    return dataclasses.replace(row, kind="gemm", steps=1)


def recurrent_cost(row: KernelRow, config: Any, mode: str | None = None) -> RecurrentKernelCost:
    dense, chosen = row_paths(_step_row(row), config, mode)
    pointwise = row.pointwise_bytes / config.hbm_bandwidth + config.kernel_launch_s
    step = chosen.latency_s + pointwise
    steps = row.steps
    latency, dense_latency = steps * step, steps * (dense.latency_s + pointwise)
    energy = steps * _energy(chosen.executed_fmas, chosen.hbm_bytes + row.pointwise_bytes, chosen.l2_bytes, step, config)
    return RecurrentKernelCost(
        row.name, row.op, int(row.macs), latency, energy, row.macs / (latency * config.peak_fma_per_s), kind=row.kind,
        gemm=f"{row.batch}x({row.m}x{row.n}x{row.k})" if row.batch > 1 else f"{row.m}x{row.n}x{row.k}",
        kernel=chosen.path, tile=f"{chosen.tile[0]}x{chosen.tile[1]}", tiles=chosen.tiles * steps,
        waves=chosen.waves * steps, k_executed=chosen.k_eff, bound=chosen.bound, cycles_dense=dense.cycles * steps,
        cycles=chosen.cycles * steps, latency_dense_s=dense_latency, speedup=dense_latency / latency,
        weight_bytes_dense=dense.weight_bytes, weight_bytes=chosen.weight_bytes, index_bytes=chosen.index_bytes,
        hbm_bytes=(chosen.hbm_bytes + row.pointwise_bytes) * steps, l2_bytes=chosen.l2_bytes * steps, pattern=row.pattern,
        fuses=list(row.fuses), steps=steps, step_latency_s=step, pointwise_s=pointwise)


@dataclasses.dataclass(kw_only=True)
class Int8KernelCost(CudaCoreCost):
    """Integer ops as DP4A int8 dot products on the INT32 cores (Volta has no INT8 Tensor Core mode)."""

    weight_bytes: int


@dataclasses.dataclass(kw_only=True)
class Int8RecurrentCost(Int8KernelCost):
    """An int8 recurrent layer (DynamicQuantizeLSTM): ``steps`` x (DP4A step GEMM + gate kernel); totals."""

    steps: int
    step_latency_s: float
    pointwise_s: float


def _dp4a(macs: float, hbm: float, config: Any) -> tuple[float, str]:
    compute, memory = macs / config.peak_int8_mac_per_s, hbm / config.hbm_bandwidth
    return max(compute, memory) + config.kernel_launch_s, "compute" if compute >= memory else "hbm"


def _gemm_label(row: KernelRow) -> str:
    return f"{row.batch}x({row.m}x{row.n}x{row.k})" if row.batch > 1 else f"{row.m}x{row.n}x{row.k}"


def int8_cost(row: KernelRow, config: Any) -> Int8KernelCost:
    if row.kind == "recurrent":
        step_macs = row.macs / row.steps
        step_hbm = row.weight_nbytes + row.input_bytes + row.output_bytes
        gemm, bound = _dp4a(step_macs, step_hbm, config)
        pointwise = row.pointwise_bytes / config.hbm_bandwidth + config.kernel_launch_s
        step = gemm + pointwise
        latency, hbm = row.steps * step, row.steps * (step_hbm + row.pointwise_bytes)
        energy = row.macs * config.pj_per_int8_mac * PJ + hbm * config.pj_per_hbm_byte * PJ + config.static_power_w * latency
        return Int8RecurrentCost(row.name, row.op, int(row.macs), latency, energy,
                                 row.macs / (latency * config.peak_int8_mac_per_s), kind=row.kind, bound=bound,
                                 hbm_bytes=hbm, gemm=_gemm_label(row), fuses=list(row.fuses), weight_bytes=row.weight_nbytes,
                                 steps=row.steps, step_latency_s=step, pointwise_s=pointwise)
    hbm = row.weight_nbytes + row.input_bytes + row.output_bytes
    latency, bound = _dp4a(row.macs, hbm, config)
    energy = row.macs * config.pj_per_int8_mac * PJ + hbm * config.pj_per_hbm_byte * PJ + config.static_power_w * latency
    return Int8KernelCost(row.name, row.op, int(row.macs), latency, energy, row.macs / (latency * config.peak_int8_mac_per_s),
                          kind=row.kind, bound=bound, hbm_bytes=hbm, gemm=_gemm_label(row), fuses=list(row.fuses),
                          weight_bytes=row.weight_nbytes)


def layer_cost(row: KernelRow, config: Any, mode: str | None = None) -> KernelCost:
    if row.int8:
        return int8_cost(row, config)
    if row.kind == "recurrent":
        return recurrent_cost(row, config, mode)
    if row.kind == "noop":
        return KernelCost(row.name, row.op, int(row.macs), 0.0, 0.0, None, kind=row.kind)
    if row.kind == "fused":
        return FusedKernelCost(row.name, row.op, int(row.macs), 0.0, 0.0, None, kind=row.kind, fused_into=row.fused_into)
    if row.kind == "memory":
        hbm = row.input_bytes + row.output_bytes
        latency = hbm / config.hbm_bandwidth + config.kernel_launch_s
        return MemoryKernelCost(row.name, row.op, 0, latency, _energy(0, hbm, 0, latency, config), None,
                                kind=row.kind, bound="hbm", hbm_bytes=hbm)
    if row.kind == "cuda_core":
        hbm = row.weight_elements * config.value_bytes + row.input_bytes + row.output_bytes
        compute = row.macs / (config.sm_count * config.cuda_fma_per_sm_cycle * config.clock_hz)
        latency = max(compute, hbm / config.hbm_bandwidth) + config.kernel_launch_s
        return CudaCoreCost(row.name, row.op, int(row.macs), latency, _energy(row.macs, hbm, 0, latency, config),
                            row.macs / (latency * config.sm_count * config.cuda_fma_per_sm_cycle * config.clock_hz),
                            kind=row.kind, bound="compute" if compute >= hbm / config.hbm_bandwidth else "hbm", hbm_bytes=hbm,
                            gemm=f"{row.batch}x({row.m}x{row.n}x{row.k})", fuses=list(row.fuses))
    dense, chosen = row_paths(row, config, mode)
    energy = _energy(chosen.executed_fmas, chosen.hbm_bytes, chosen.l2_bytes, chosen.latency_s, config)
    if row.col2im_bytes:  # ConvTranspose: the overlap-add kernel after the GEMM
        col2im = row.col2im_bytes / config.hbm_bandwidth + config.kernel_launch_s
        energy += _energy(0, row.col2im_bytes, 0, col2im, config)
        dense = dataclasses.replace(dense, latency_s=dense.latency_s + col2im, hbm_bytes=dense.hbm_bytes + row.col2im_bytes)
        chosen = dataclasses.replace(chosen, latency_s=chosen.latency_s + col2im,
                                     hbm_bytes=chosen.hbm_bytes + row.col2im_bytes)
    utilization = row.macs / (chosen.latency_s * config.peak_fma_per_s)
    return TensorCoreCost(
        row.name, row.op, int(row.macs), chosen.latency_s, energy, utilization, kind=row.kind,
        gemm=f"{row.batch}x({row.m}x{row.n}x{row.k})" if row.batch > 1 else f"{row.m}x{row.n}x{row.k}",
        kernel=chosen.path, tile=f"{chosen.tile[0]}x{chosen.tile[1]}", tiles=chosen.tiles, waves=chosen.waves,
        k_executed=chosen.k_eff, bound=chosen.bound, cycles_dense=dense.cycles, cycles=chosen.cycles,
        latency_dense_s=dense.latency_s, speedup=dense.latency_s / chosen.latency_s,
        weight_bytes_dense=dense.weight_bytes, weight_bytes=chosen.weight_bytes, index_bytes=chosen.index_bytes,
        hbm_bytes=chosen.hbm_bytes, l2_bytes=chosen.l2_bytes, pattern=row.pattern, fuses=list(row.fuses))


def gemm_latency(rows: Iterable[KernelRow], config: Any, mode: str | None = None) -> tuple[float, float]:
    """(dense, mode) latency summed over the GEMM (tensor-core) rows."""
    dense = chosen = 0.0
    for row in rows:
        if row.int8:
            continue
        if row.kind == "gemm":
            d, c = row_paths(row, config, mode)
            dense += d.latency_s
            chosen += c.latency_s
        elif row.kind == "recurrent":
            d, c = row_paths(_step_row(row), config, mode)
            dense += row.steps * d.latency_s
            chosen += row.steps * c.latency_s
    return dense, chosen


def estimate(mapping: SparseTcMapping, config: Any) -> CostReport:
    rows = [layer_cost(row, config) for row in mapping.layers]
    gemms = [r for r in rows if isinstance(r, TensorCoreCost)]
    dense_total = sum(r.dense_latency_s() for r in rows)
    total = sum(r.latency_s for r in rows)
    gemm_dense, gemm_mode = gemm_latency(mapping.layers, config)
    weights = sum(r.weight_bytes + r.index_bytes for r in gemms) \
        + sum(row.weight_elements * config.value_bytes for row in mapping.layers if row.kind == "cuda_core") \
        + sum(r.weight_bytes for r in rows if isinstance(r, Int8KernelCost))
    totals = {
        "mode": config.mode,
        "batch": config.batch,
        "latency_dense_s": dense_total,
        "speedup_vs_dense": dense_total / total if total else 1.0,
        "gemm_speedup_vs_dense": gemm_dense / gemm_mode if gemm_mode else 1.0,
        "sparse_kernels": sum(1 for r in gemms if r.kernel == "sparse"),
        "gemm_kernels": len(gemms),
    }
    return CostReport(rows, unsupported=list(mapping.unsupported), area_mm2=None, weight_bytes=int(weights), extra_totals=totals)


def fit_overheads(workload: dict[str, list[KernelRow]], config: Any, targets: dict[str, float] | None = None,
                  tolerance: float = 1e-4) -> dict[str, float]:
    """Overheads (software, hardware) at which the geometric-mean GEMM speedup over ``workload``
    (network -> rows with vector-sparse patterns) equals the paper's ratios.

    Speedup falls monotonically as the overhead grows (down to 1.0, where every layer keeps
    its dense kernel), so a bisection finds the unique value.
    """
    targets = targets or {"software": 1.63, "hardware": 2.58}
    fitted = {}
    for mode, target in targets.items():
        lo, hi = 0.0, 64.0
        if mean_speedup(workload, config, mode, lo) < target:
            raise ValueError(f"{mode}: even zero overhead gives less than {target}x on this workload")
        while hi - lo > tolerance:
            mid = (lo + hi) / 2
            if mean_speedup(workload, config, mode, mid) > target:
                lo = mid
            else:
                hi = mid
        fitted[mode] = round((lo + hi) / 2, 4)
    return fitted


def mean_speedup(workload: dict[str, list[KernelRow]], config: Any, mode: str, overhead: float | None = None) -> float:
    """Geometric mean over networks of the GEMM-time speedup of ``mode`` over dense."""
    if overhead is not None:
        config = dataclasses.replace(config, **{f"{mode}_overhead": overhead})
    logs = []
    for rows in workload.values():
        dense, chosen = gemm_latency(rows, config, mode)
        logs.append(math.log(dense / chosen))
    return math.exp(sum(logs) / len(logs))
