"""roofline: an Eyeriss-sized accelerator costed by the roofline model (an nncc target plugin).

The three parts nncc keeps apart: the constants (:mod:`.config`), the mapping (:mod:`.mapping`:
where each layer's data lives) and the cost model (:mod:`.cost`: latency, energy, area from the
mapping). The class below only ties them to nncc's Target contract.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nncc.plugin import CostReport, Mapping, Target

from nncc_roofline.config import RooflineConfig
from nncc_roofline.cost import estimate
from nncc_roofline.mapping import RooflineLayer, lower

__all__ = ["RooflineConfig", "RooflineTarget"]


class RooflineTarget(Target):
    name = "roofline"
    Config = RooflineConfig  # `--set pe_count=256`, `--config hw.toml` build one through nncc's checks
    summary = "Eyeriss-sized accelerator, roofline cost (168 PEs at 200 MHz, 108 KB buffer, one DRAM channel)"
    # Labels of this target's own totals in report.md / report.html: (key pattern, group, label, unit).
    report_fields = (("dram_bytes", "Activity", "DRAM traffic", "B"),)

    def lower(self, model: ir.Model, calibration: dict[str, np.ndarray] | None = None) -> Mapping[RooflineLayer]:
        # calibration: sample inputs for targets that measure the model; the roofline needs none.
        return lower(model, self.config)

    def estimate(self, mapping: Mapping[RooflineLayer]) -> CostReport:
        return estimate(mapping, self.config)
