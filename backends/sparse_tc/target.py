"""The ``sparse-tc`` target: a V100-class GPU running vector-wise sparse GEMMs on (Sparse) Tensor Cores.

Zhu, Zhang, Gu, Xie, MICRO 2019. Hardware constants (``config``), lowering to kernels and
the weights' vector-sparse patterns (``mapping``) and the cost model (``cost``) are kept apart.
"""

from __future__ import annotations

import onnx_ir as ir

from nncc.backends.base import Target
from nncc.calibration import Calibration
from nncc.cost import CostReport
from nncc.pass_base import NnccPass
from nncc.registry import PASSES

from . import cost, mapping
from .config import SparseTcConfig, a100


class SparseTensorCoreTarget(Target):
    """Workload: one inference of ``batch`` inputs (default 1, ``--batch N``) on top of the model's
    own batch, run as one set of batched kernels. Per sample: that run's latency and energy
    divided by its inputs -- throughput-normalized, so a larger batch that fills more tiles per
    wave and shares each kernel launch costs less per sample."""

    name = "sparse-tc"
    Config = SparseTcConfig
    batch_field = "batch"
    # a100: the A100's spec-sheet figures with 2:4 sparsity (config.A100); V100 by default.
    profiles = {"v100": SparseTcConfig, "a100": a100}
    summary = ("V100-class GPU, HMMA tiles/waves; vector-wise N-of-16 sparse weights (Zhu et al. MICRO 2019) "
               "as --set mode=dense|software|hardware")
    report_fields = (
        ("mode", "Structure", "Sparsity mode"),
        ("gemm_kernels", "Structure", "GEMM kernels", "count"),
        ("sparse_kernels", "Structure", "GEMMs on the sparse kernel", "count"),
        ("latency_dense_s", "Comparison", "Latency on dense kernels", "s"),
        ("speedup_vs_dense", "Comparison", "Speedup vs. dense", "x"),
        ("gemm_speedup_vs_dense", "Comparison", "GEMM speedup vs. dense", "x"),
    )

    def legalize(self) -> list[NnccPass]:
        # Inference engines (TensorRT, cuDNN fused ops) fold BatchNorm into the conv weights;
        # a per-row scale keeps every zero, so the vector-sparse pattern survives.
        return [PASSES.create("fold-batchnorm")]

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> mapping.SparseTcMapping:
        return mapping.map_model(model, self.config)

    def estimate(self, mapping_: mapping.SparseTcMapping) -> CostReport:
        return cost.estimate(mapping_, self.config)
