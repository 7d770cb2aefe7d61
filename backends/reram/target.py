"""The ``reram`` target: an ISAAC/NeuroSim-style ReRAM crossbar accelerator.

Hardware constants (``config``), placement onto crossbars/IMAs/tiles (``mapping``, with the
ADC resolution per bit slice from ``adc`` and calibration inputs from ``activations``),
digital units for the other ops (``digital``) and the cost model (``cost``) are kept apart.
Artifact: ``crossbar_map.json`` (per layer: crossbar grid, slices, row/column blocks, ADC
bits per slice, tiles).
"""

from __future__ import annotations

import onnx_ir as ir

from nncc.backends.base import Mapping, SearchOption, Target, knob
from nncc.calibration import Calibration
from nncc.cost import CostReport
from nncc.crossbar import CrossbarGeometry
from nncc.pass_base import NnccPass
from nncc.registry import PASSES

from . import config as hwconfig
from . import cost, mapping


class ReramTarget(Target):
    """Workload: one inference of the model's own batch (1 in the zoo), layers one after another
    (NeuroSim's ``pipeline = false``; ``totals.pipelined_interval_s`` is the figure a layer
    pipeline would reach, not the one reported). Per sample: latency and energy / that batch.
    No batch setting: ``--batch`` is refused."""

    name = "reram"
    Config = hwconfig.ReramConfig
    # --set profile=neurosim: DNN+NeuroSim V1.4's circuit models and default settings (config.neurosim).
    profiles = {"isaac": hwconfig.ReramConfig, "neurosim": hwconfig.neurosim}
    summary = "ReRAM crossbars (ISAAC/NeuroSim): bit-sliced weights, bit-serial inputs, ADC bits from measured column sums"
    runs_model = True  # the ADC bits' calibration runs
    report_fields = (
        ("crossbars", "Structure", "Crossbars", "count"),
        ("crossbars_logical", "Structure", "Crossbars before bit slicing", "count"),
        ("tiles", "Structure", "Tiles", "count"),
        ("imas", "Structure", "IMAs (in-situ MAC units)", "count"),
        ("adcs", "Structure", "ADCs", "count"),
        ("adc_conversions", "Activity", "ADC conversions", "count"),
        ("calibration", "Notes", "Calibration inputs"),
    )

    def legalize(self) -> list[NnccPass]:
        # BatchNormalization after a conv has no analog form: it is folded into the programmed weights.
        
        return [PASSES.create("fold-batchnorm")]

    @classmethod
    def search_space(cls) -> list[list[SearchOption]]:
        # Crossbars pay for stored cells and converted columns: ranks chosen for crossbars
        # (rank-clip), deleted connection groups, zeros that empty slices, and fewer weight
        # bits (fewer slices): the quantize pass makes onnxruntime see the numbers, the
        # weight_bits setting makes the mapping store that many bits.
        bits = [SearchOption(f"weight bits={b}", (f"quantize:bits={b},per_channel=false",), {"weight_bits": b}) for b in (6, 4)]
        return [knob("rank-clip", [0.1, 0.2, 0.3], "tolerance"),
                knob("delete-groups", [0.25, 0.5], "ratio"),
                knob("prune", [0.5, 0.75], "ratio"),
                bits]

    def ratios_to_uncompressed(self, before: CostReport, after: CostReport) -> dict[str, float | None]:
        return cost.crossbar_area_ratio(before, after)

    def crossbar_geometry(self) -> CrossbarGeometry:
        return self.config.geometry

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> Mapping:
        return mapping.map_model(model, self.config, calibration)

    def estimate(self, mapping_: Mapping) -> CostReport:
        return cost.estimate(mapping_, self.config)
