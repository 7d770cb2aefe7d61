"""The ``hypar`` target: data-parallel training on an array of HMC-based accelerators, with
HyPar's layer-wise choice of data or model parallelism at every level of binary splits.

Hardware and training constants (``config``), the layer DAG (``graph``), the communication
model and its dynamic programming (``partition``), the plans (``mapping``) and their time and
energy (``cost``) are kept apart; ``fit`` asks what link the paper's gains imply (an analysis, not the
defaults) and ``fidelity`` checks the target against the paper and the authors' code.
"""

from __future__ import annotations

import onnx_ir as ir
from nncc.backends.base import Target
from nncc.calibration import Calibration
from nncc.cost import CostReport
from nncc.workload import Workload

from . import cost, mapping
from .config import HyparConfig


class HyparTarget(Target):
    """Workload: one training step (forward, backward, weight update) of a ``batch``-sample
    mini-batch (default 256, ``--batch N``) on ``accelerators`` accelerators. The model's own
    batch is divided out (``graph.build``), so ``batch`` alone counts the samples. Per sample:
    the step's latency and energy divided by ``batch`` -- training throughput, not the latency
    of one sample, and three passes' work, not an inference's."""

    name = "hypar"
    Config = HyparConfig
    summary = ("HyPar: training on N HMC-based accelerators; per-layer data/model parallelism chosen by hierarchical "
               "dynamic programming; compute, link traffic, energy; all-dp and all-mp baselines")
    report_fields = (
        ("accelerators", "Structure", "Accelerators", "count"),
        ("skip_edges", "Structure", "Skip edges", "count"),
        ("comm_bytes", "Activity", "Bytes between accelerators", "B"),
        (r"dp_(.+)", "Comparison", "All data-parallel: {0}"),
        (r"mp_(.+)", "Comparison", "All model-parallel: {0}"),
        ("gain_perf_vs_dp", "Comparison", "Speedup vs. all data-parallel", "x"),
        ("gain_energy_vs_dp", "Comparison", "Energy gain vs. all data-parallel", "x"),
    )
    workload_kind = "training-step"
    batch_field = "batch"

    def workload(self, model: ir.Model) -> Workload:
        # The mini-batch replaces the model's own batch (graph.build divides it out).
        return Workload(self.workload_kind, self.config.batch, {"accelerators": self.config.accelerators})

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> mapping.HyparMapping:
        return mapping.map_model(model, self.config)

    def estimate(self, mapping_: mapping.HyparMapping) -> CostReport:
        return cost.estimate(mapping_, self.config)
