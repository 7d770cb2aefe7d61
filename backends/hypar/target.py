"""The ``hypar`` target: data-parallel training on an array of HMC-based accelerators, with
HyPar's layer-wise choice of data or model parallelism at every level of binary splits.

Hardware and training constants (``config``), the layer DAG (``graph``), the communication
model and its dynamic programming (``partition``), the plans (``mapping``) and their time and
energy (``cost``) are kept apart; ``fit`` re-derives the fitted link constants.
"""

from __future__ import annotations

import onnx_ir as ir

from nncc.backends.base import Target
from nncc.calibration import Calibration
from nncc.cost import CostReport

from . import cost, mapping
from .config import HyparConfig


class HyparTarget(Target):
    name = "hypar"
    Config = HyparConfig
    summary = ("HyPar: training on N HMC-based accelerators; per-layer data/model parallelism chosen by hierarchical "
               "dynamic programming; compute, link traffic, energy; all-dp and all-mp baselines")

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> mapping.HyparMapping:
        return mapping.map_model(model, self.config)

    def estimate(self, mapping_: mapping.HyparMapping) -> CostReport:
        return cost.estimate(mapping_, self.config)
