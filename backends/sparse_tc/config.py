"""Hardware constants of the ``sparse-tc`` target: a V100-class GPU with (Sparse) Tensor Cores.

Zhu, Zhang, Gu, Xie, "Sparse Tensor Core: Algorithm and Hardware Co-Design for
Vector-wise Sparse Neural Networks on Modern GPUs", MICRO 2019, evaluate on a Volta
(V100-like) GPU model. Sources: docs/sources.md, "Sparse Tensor Core"; tags: [V] seen in
the named source; [U] not confirmed (a starting point); "fitted constant: ..." names the
rerunnable fit.

Modes (``--set mode=...``):
- ``dense``:    stock cuBLAS/cuDNN-style HMMA GEMMs; zeros in the weights change nothing.
- ``software``: the paper's VectorSparse kernels on stock Tensor Cores: the reduction
                shrinks to the kept entries (keep/L of K), plus a decode/gather overhead.
- ``hardware``: the paper's extended instruction and operand-gather micro-architecture,
                which removes most of that overhead. Default: the paper's proposal.
"""

from __future__ import annotations

import dataclasses
import math

from nncc.backends.base import HardwareConfig, hw

VOLTA = "NVIDIA Tesla V100 GPU Architecture whitepaper (2017)"
HOROWITZ = "Horowitz ISSCC 2014 (45 nm), via Han et al. NIPS 2015 Table 1"
FIT = ("fitted constant: cost.fit_overheads on benchmarks/sparse_tc.fit() = zoo AlexNet + VGG-16, vector-sparsify "
       "keep 4 of 16, batch 16 [U workload] (geometric-mean GEMM speedup ")
MODES = ("dense", "software", "hardware")


@dataclasses.dataclass(frozen=True)
class SparseTcConfig(HardwareConfig):
    mode: str = hw("hardware", source="Zhu et al. MICRO 2019: dense | software (VectorSparse on stock Tensor Cores) | "
                                      "hardware (their extended HMMA + micro-architecture); default = the paper's proposal",
                   choices=MODES)
    # --- compute: SMs x tensor cores x HMMA FMAs per clock
    sm_count: int = hw(80, source=f"{VOLTA} [V]: 80 SMs in Tesla V100", unit="SM", above=0)
    tensor_cores_per_sm: int = hw(8, source=f"{VOLTA} [V]: 8 Tensor Cores per SM (640 in all)", unit="TC/SM", above=0)
    fma_per_tc_cycle: int = hw(64, source=f"{VOLTA} [V]: each Tensor Core performs 64 FP16 FMA per clock (4x4x4)",
                               unit="FMA/cycle", above=0)
    hmma_m: int = hw(16, source="CUDA WMMA API [V]: warp-level HMMA fragment m16n16k16 on Volta", unit="rows", above=0)
    hmma_n: int = hw(16, source="CUDA WMMA API [V]: m16n16k16", unit="cols", above=0)
    hmma_k: int = hw(16, source="CUDA WMMA API [V]: m16n16k16; the reduction is padded to whole k-steps",
                     unit="elements", above=0)
    clock_hz: float = hw(1.53e9, source=f"{VOLTA} [V]: 1530 MHz GPU boost clock (SXM2); 125 TFLOPS = 640 TC x 64 x 2 x 1.53 GHz",
                         unit="Hz", above=0)
    cuda_fma_per_sm_cycle: int = hw(128, source=f"{VOLTA} [V]: 64 FP32 cores/SM; FP16 (half2) runs 2x = 31.4 TFLOPS",
                                    unit="FMA/cycle", above=0)
    # --- integer ops (pre-quantized models): Volta's Tensor Cores have no INT8 mode (that came
    # with Turing), so ConvInteger/MatMulInteger run as DP4A dot products on the INT32 cores.
    int32_cores_per_sm: int = hw(64, source=f"{VOLTA} [V]: 64 INT32 cores per SM, separate from the FP32 cores; "
                                            "the Tensor Cores take FP16 operands only (mixed precision FP16/FP32)",
                                 unit="lanes/SM", above=0)
    dp4a_macs_per_lane_cycle: int = hw(4, source="CUDA __dp4a (compute capability 6.1+, sm_70 included) [V]: a 4-way "
                                                 "int8 dot product accumulated into int32; [U] one per INT32 lane per clock "
                                                 "(80 x 64 x 4 x 1.53 GHz = 31 T int8 MAC/s)",
                                       unit="MAC/cycle", above=0)
    batch: int = hw(1, source="[U] inputs per inference: the GEMM n dimension, activation bytes and MACs scale by it "
                              "(the model's own batch is 1 in the zoo); the paper's inference batch is not confirmed. "
                              "--batch N sets it; totals.per_sample divides by it x the model's batch",
                    unit="inputs", above=0)
    # Threadblock tiles a GEMM library chooses among (per kernel, the fastest is modelled).
    tiles: str = hw("256x128,128x256,128x128,128x64,64x128,64x64,64x32,32x64,32x32",
                    source="[U] CUTLASS Volta threadblock shapes (128x128x32 default, 256x128 the largest); cuBLAS heuristics not published")
    blocks_per_sm: int = hw(1, source="[U] one HMMA threadblock per SM at a time (register/shared-memory limits of 128x128 "
                                      "tiles); smaller tiles are assumed to fill the SM's Tensor Cores too",
                            unit="blocks", above=0)
    # --- memory
    hbm_bandwidth: float = hw(900e9, source=f"{VOLTA} [V]: HBM2 900 GB/s peak", unit="B/s", above=0)
    l2_bandwidth: float = hw(2155e9, source="Jia et al., Dissecting the NVIDIA Volta GPU Architecture via Microbenchmarking, "
                                            "arXiv 1804.06826 [U]: measured L2 bandwidth ~2.1 TB/s", unit="B/s", above=0)
    value_bytes: int = hw(2, source="[V] Tensor Core HMMA operands are FP16 (Zhu et al. run FP16 inference on Tensor Cores)",
                          unit="B", above=0)
    kernel_launch_s: float = hw(5e-6, source="[U] CUDA kernel launch + tail, a few microseconds per kernel", unit="s", minimum=0)
    fuse_epilogue: bool = hw(True, source="[V] cuDNN/CUTLASS epilogues apply bias and activation (Relu, Clip...) inside the GEMM")
    # --- vector-wise sparsity (the paper's format)
    vector_length: int = hw(16, source="Zhu et al. MICRO 2019 (docs/sources.md, \"Sparse Tensor Core\") [U]: vector length "
                                       "L=16 along the reduction, N balanced non-zeros per vector", unit="elements", above=0)
    # Overheads of the sparse paths, relative to the sparse HMMA work (cycles x (1 + overhead)).
    software_overhead: float = hw(1.6223, source=FIT + "= 1.63x, Zhu et al. abstract [V]: +63% from the pruning algorithm)",
                                  unit="fraction of sparse HMMA cycles", minimum=0)
    hardware_overhead: float = hw(0.1851, source=FIT + "= 2.58x = 1.63 x 1.58, Zhu et al. abstract [V]: +58% more from the "
                                                       "hardware)", unit="fraction of sparse HMMA cycles", minimum=0)
    # --- energy
    pj_per_fma: float = hw(1.5, source=f"{HOROWITZ}: 16-bit float mult 1.1 pJ + add 0.4 pJ [V]; [U] at 12 nm",
                           unit="pJ", minimum=0)
    pj_per_int8_mac: float = hw(0.3, source=f"{HOROWITZ}: 8-bit int mult 0.2 pJ + 32-bit int add 0.1 pJ [V]; [U] at 12 nm",
                                unit="pJ", minimum=0)
    pj_per_hbm_byte: float = hw(31.2, source="[U] HBM2 ~3.9 pJ/bit (O'Connor et al., Fine-Grained DRAM, MICRO 2017)",
                                unit="pJ/B", minimum=0)
    pj_per_l2_byte: float = hw(1.25, source=f"{HOROWITZ}: 32-bit SRAM cache access 5 pJ [V]; a 6 MB L2 costs more [U]",
                               unit="pJ/B", minimum=0)
    static_power_w: float = hw(40.0, source=f"[U] leakage/clock share of the 300 W V100 TDP ({VOLTA} [V] for the TDP)",
                               unit="W", minimum=0)

    def check(self) -> None:
        self.tile_shapes()  # raises ValueError when malformed

    def tile_shapes(self) -> list[tuple[int, int]]:
        """``tiles`` parsed: [(TM, TN), ...], each a multiple of the HMMA fragment."""
        shapes = []
        for item in self.tiles.replace(" ", "").split(","):
            try:
                tm, tn = (int(v) for v in item.lower().split("x"))
            except ValueError:
                raise ValueError(f"tiles: '{item}' is not MxN (e.g. '128x128,64x64')") from None
            if tm <= 0 or tn <= 0 or tm % self.hmma_m or tn % self.hmma_n:
                raise ValueError(f"tiles: {item} is not a positive multiple of the {self.hmma_m}x{self.hmma_n} HMMA fragment")
            shapes.append((tm, tn))
        if not shapes:
            raise ValueError("tiles: at least one MxN threadblock tile")
        return shapes

    @property
    def fma_per_sm_cycle(self) -> int:
        return self.tensor_cores_per_sm * self.fma_per_tc_cycle

    @property
    def peak_fma_per_s(self) -> float:
        return self.sm_count * self.fma_per_sm_cycle * self.clock_hz

    @property
    def peak_int8_mac_per_s(self) -> float:
        """DP4A rate of the INT32 cores (the integer ops' roof)."""
        return self.sm_count * self.int32_cores_per_sm * self.dp4a_macs_per_lane_cycle * self.clock_hz

    @property
    def index_bits(self) -> int:
        """Bits of one in-vector index: log2(L) (4 bits for L=16)."""
        return max(1, math.ceil(math.log2(self.vector_length)))

    def overhead(self, mode: str | None = None) -> float:
        mode = mode or self.mode
        return {"software": self.software_overhead, "hardware": self.hardware_overhead}.get(mode, 0.0)


# The A100 (SXM4 40 GB) with its 2:4 Sparse Tensor Cores, from the spec sheet only (NVIDIA A100 Tensor Core
# GPU Architecture whitepaper, 2020; docs/sources.md, "Sparse Tensor Core"): nothing here
# was fitted to any figure. ``a100()`` applies it; the fields not named keep the V100 values
# (tiles, launch, energies: not checked on the A100, [U] there).
A100: dict[str, object] = {
    "sm_count": 108,                 # [V]: 108 SMs in A100 (128 in the full GA100)
    "tensor_cores_per_sm": 4,        # [V]: 4 third-generation Tensor Cores per SM
    "fma_per_tc_cycle": 256,         # [V]: each performs 256 FP16/FP32 FMA per clock (1024 per SM)
    "clock_hz": 1.41e9,              # [V]: 1410 MHz boost; 108 x 1024 x 2 x 1.41 GHz = 312 TFLOPS dense FP16
    "cuda_fma_per_sm_cycle": 256,    # [V]: 78 TFLOPS FP16 on the CUDA cores = 108 x 256 x 2 x 1.41 GHz
    "hbm_bandwidth": 1555e9,         # [V]: 40 GB HBM2 at 1555 GB/s
    "l2_bandwidth": 2.3 * 2155e9,    # [V]: "2.3x the L2 cache read bandwidth of V100", on the V100's measured 2155 GB/s [U]
    "vector_length": 4,              # [V]: 2:4 structured sparsity, two non-zeros in every four along the reduction
    "hardware_overhead": 0.0,        # [V]: sparse Tensor Core peak 624 = 2 x 312 TFLOPS dense FP16: the math runs at
                                     #      the kept fraction with no decode cost in the pipe (2-bit metadata per
                                     #      kept value, log2(4): index_bits)
    "mode": "hardware",
}


def a100() -> SparseTcConfig:
    """An A100 with 2:4 Sparse Tensor Cores (``A100`` above, each value's source beside it)."""
    return dataclasses.replace(SparseTcConfig(), **A100)
