"""The ``truenorth`` target: IBM TrueNorth neurosynaptic cores, rate-coded spiking inference.

Hardware constants (``config``), placement on cores (``mapping``), the cost model (``cost``)
and the spiking simulation that measures accuracy against copies (``simulate``) are kept apart.
"""

from __future__ import annotations

import onnx_ir as ir

from nncc.backends.base import Target
from nncc.calibration import Calibration
from nncc.cost import CostReport
from nncc.pass_base import NnccPass
from nncc.registry import PASSES

from . import cost, mapping
from .config import TrueNorthConfig


class TrueNorthTarget(Target):
    """Workload: inference of the model's own batch (1 in the zoo): a frame of rate-coded spikes.
    Frames stream through the core pipeline, so ``cost`` sets the run interval to one frame time
    (ticks x temporal copies x tick_s) and the per-sample latency is that interval -- the
    reciprocal of ``throughput_fps`` -- not the end-to-end latency (which adds the pipeline
    depth); per-sample energy is one frame's (its static share already counts the frame time).
    No batch setting: ``--batch`` is refused."""

    name = "truenorth"
    Config = TrueNorthConfig
    summary = "IBM TrueNorth: 256x256 crossbar cores, 4 axon types, rate-coded spikes; cores, chips, ticks, synaptic-event energy"
    report_fields = (
        ("cores", "Structure", "Cores", "count"),
        ("cores_per_copy", "Structure", "Cores per copy", "count"),
        ("chips", "Structure", "Chips", "count"),
        ("max_cores", "Structure", "Core limit", "count"),
        ("copies", "Structure", "Copies averaged", "count"),
        ("copy_mode", "Structure", "Copy mode"),
        ("ticks", "Structure", "Ticks per input (rate coding)", "ticks"),
        ("weight_scheme", "Structure", "Weight scheme"),
        ("synaptic_events", "Activity", "Synaptic events", "count"),
    )

    def legalize(self) -> list[NnccPass]:
        c = self.config
        # BatchNorm folds into the weights; then core-op blocks of <= 256 inputs (128 under
        # sign-split) x 256 neurons, weights on the sign + 8-bit magnitude grid (+-255 = 9 bits).
        return [PASSES.create("fold-batchnorm"),
                PASSES.create("legalize-core-ops", crossbar=c.inputs_per_core, fan_out=c.neurons_per_core,
                              weight_bits=c.weight_magnitude_bits + 1)]

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> mapping.TrueNorthMapping:
        return mapping.map_model(model, self.config)

    def estimate(self, mapping_: mapping.TrueNorthMapping) -> CostReport:
        return cost.estimate(mapping_, self.config)
