"""The ``ucnn`` target: UCNN's factorized dot products vs an Eyeriss-style sparse baseline.

Hardware constants (``config``), the per-filter weight statistics (``mapping``) and the cycle
and energy model of both designs (``cost``) are kept apart. Both designs appear in every
report; ``--set design=baseline`` makes the baseline the headline row.
"""

from __future__ import annotations

import onnx_ir as ir

from nncc.backends.base import Target
from nncc.calibration import Calibration
from nncc.cost import CostReport
from nncc.pass_base import NnccPass
from nncc.registry import PASSES

from . import cost, mapping
from .config import UcnnConfig


class UcnnTarget(Target):
    """Workload: one inference of the model's own batch (1 in the zoo) on the PE array. Per
    sample: latency and energy / that batch (the paper's throughput-normalized energy is a
    different figure, energy x cycles, in ``totals.throughput_normalized_energy_ratio``).
    No batch setting: ``--batch`` is refused."""

    name = "ucnn"
    Config = UcnnConfig
    summary = ("UCNN (ISCA 2018): per-filter unique weights, factorized dot products, indirection tables; "
               "energy and cycles vs an Eyeriss-style zero-gating baseline on the same array")
    report_fields = (
        ("design", "Structure", "Design"),
        ("weight_bits", "Structure", "Weight bits", "count"),
        ("group", "Structure", "Filters sharing an indirection table (G)", "count"),
        ("energy_ratio", "Comparison", "Energy vs. baseline", "x"),
        ("cycles_ratio", "Comparison", "Cycles vs. baseline", "x"),
        ("throughput_normalized_energy_ratio", "Comparison", "Throughput-normalized energy vs. baseline", "x"),
        (r"ucnn\.(.+)", "Comparison", "UCNN {0}"),
        (r"baseline\.(.+)", "Comparison", "Baseline {0}"),
        ("activation_density_source", "Notes", "Activation density from"),
        ("pe_area_overhead", "Notes", "PE area overhead (paper)"),
        ("paper_range", "Notes", "Published range"),
    )

    def legalize(self) -> list[NnccPass]:
        # An inference accelerator runs BatchNorm folded into the filters; scaling a filter by
        # one constant keeps its weight repetition (the per-filter unique count) unchanged.
        return [PASSES.create("fold-batchnorm")]

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> mapping.UcnnMapping:
        return mapping.map_model(model, self.config, calibration)

    def estimate(self, mapping_: mapping.UcnnMapping) -> CostReport:
        return cost.estimate(mapping_, self.config)
