"""The ``mobile-cpu`` target: one big core of a phone CPU (or the host), analytical roofline.

Hardware constants (``config``), lowering to kernels (``mapping``) and the cost model
(``cost``) are kept apart; ``calibrate`` measures the ``host`` profile, ``tvm_emit``
writes the deployable TVM Relax artifact (``--emit tvm``).
"""

from __future__ import annotations

import pathlib
from typing import Any

import onnx_ir as ir

from nncc.backends.base import SearchOption, Target, config_sources, knob
from nncc.calibration import Calibration
from nncc.cost import CostReport
from nncc.notices import warn

from . import calibrate, cost, mapping, tvm_emit
from . import config as hwconfig


class MobileCpuTarget(Target):
    """Workload: one inference of the model's own batch (1 in the zoo) on one core, runtime
    invoke overhead included. Per sample: latency and energy / that batch. No batch setting:
    ``--batch`` is refused (a batched model is costed as exported, e.g. ``--input-shape``)."""

    name = "mobile-cpu"
    Config = hwconfig.MobileCpuConfig
    summary = "one mobile CPU core (Pixel 2 / calibrated host): per-layer roofline, Horowitz energy, TVM artifact"
    report_fields = (("weights_in_cache", "Structure", "Weights fit in cache", "bool"),)
    profiles = {"pixel2": hwconfig.pixel2, "host": calibrate.host_profile}
    emits = ("tvm",)

    @classmethod
    def search_space(cls) -> list[list[SearchOption]]:
        # Dense kernels: only fewer channels, lower rank and int8 kernels change the time here
        # (unstructured zeros and sub-8-bit widths still run the same int8/fp32 kernels).
        return [knob("prune-channels", [0.1, 0.25, 0.5], "ratio"),
                knob("factorize", [0.95, 0.9], "energy") + knob("factorize", [0.5], "rank_ratio"),
                knob("quantize", [8], "bits")]

    def lower(self, model: ir.Model, calibration: Calibration | None = None) -> mapping.MobileCpuMapping:
        return mapping.map_model(model, self.config)

    def estimate(self, mapping_: mapping.MobileCpuMapping) -> CostReport:
        if self.config.calibration.endswith("(quick)"):
            # The host profile nncc measured by itself on first use (or over a cache an older
            # nncc wrote): its accuracy is not what the README's figures (full calibrations) say.
            warn("calibration", f"mobile-cpu: the host profile is a quick calibration ({self.config.calibration}, "
                                "made on first use: 43 synthetic graphs, no last-level cache measured); "
                                "`nncc calibrate mobile-cpu` measures a full one (~6 min)")
        return cost.estimate(mapping_, self.config)

    def emit(self, kind: str, model: ir.Model, out_dir: pathlib.Path) -> list[pathlib.Path]:
        if kind != "tvm":
            return super().emit(kind, model, out_dir)
        return tvm_emit.emit(model, pathlib.Path(out_dir))

    @classmethod
    def calibrate(cls, output: str | pathlib.Path | None) -> str:
        """Measure this machine (``nncc calibrate mobile-cpu [-o FILE]``); returns what it printed."""
        return calibrate.run(output)

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        if self.config.calibration != "built-in":
            sources = config_sources(self.config)
            for key, source in calibrate.host_sources().items():
                sources.setdefault(key, {})["source"] = source
            described["sources"] = sources
        return described
