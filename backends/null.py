"""The null target: every layer placed, every cost zero. Keeps pipelines testable."""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from nncc.analysis import Layer, layers
from nncc.backends.base import HardwareConfig, Mapping, Target
from nncc.calibration import Calibration
from nncc.cost import CostReport, LayerCost


@dataclasses.dataclass(frozen=True)
class NullConfig(HardwareConfig):
    """No hardware, so no constants."""


class NullTarget(Target):
    """Workload: the base default, one inference of the model's own batch; every figure zero."""

    name = "null"
    Config = NullConfig
    summary = "zero-cost target for testing pipelines"

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> Mapping[Layer]:
        return Mapping(layers=layers(model))

    def estimate(self, mapping: Mapping[Layer]) -> CostReport:
        rows = [LayerCost(layer.name, layer.op, layer.macs, 0.0, 0.0, None) for layer in mapping.layers]
        weight_bytes = sum(layer.weight_bytes for layer in mapping.layers)
        return CostReport(rows, area_mm2=None, weight_bytes=weight_bytes)
