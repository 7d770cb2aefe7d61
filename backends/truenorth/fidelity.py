"""Published figures the ``truenorth`` target is checked against (docs/sources.md, "TrueNorth").

Esser et al. ran networks trained for the chip; nncc runs the zoo's networks converted to
rates, so the workloads differ in size (cores) and the comparisons are of the chip model at the
same operating point (ticks per frame, copies), not of the same network. No constant was fitted
to these figures: ``spike_rate`` was measured on nncc's own LeNet-5 simulation, ``chip_power_w``
and ``tick_s`` come from other sources.

Every ``measure`` compiles a zoo model offline in well under a second.
"""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

from nncc import models
from nncc.driver import CompileOptions, compile_model
from nncc.fidelity import Reference
from nncc.registry import TARGETS

SECTION = 'docs/sources.md, "TrueNorth"'


def totals(name: str, **sets: Any) -> dict[str, Any]:
    """The report totals of zoo model ``name`` on truenorth with ``sets`` (no calibration inputs:
    the cost model's fitted spike_rate stands for the measured activity)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = models.export(name, pathlib.Path(tmp) / f"{name}.onnx")
        target = TARGETS.get("truenorth").configure(None, sets)
        return compile_model(path, target, [], CompileOptions(verify_samples=0)).report["totals"]


def fps_per_watt(name: str, **sets: Any) -> float:
    """Frames/s over mean power (energy per frame x frames/s): 1 / energy per frame."""
    return 1.0 / totals(name, **sets)["energy_j"]


_CORES = ("nncc runs the zoo LeNet-5 (92 cores per copy, 64 copies need 2 chips); Esser's sparsely connected "
          "MNIST network is smaller [U: its core count not read]; energy scales with cores (static share) and "
          "synaptic events")

REFERENCES: list[Reference] = [
    Reference(
        target="truenorth", quantity="energy per image, MNIST, 1 tick, 1 copy", reference=0.268e-6, unit="J",
        source=f"{SECTION}: Esser et al. NIPS 2015, high-efficiency network (ensemble of 1, 92.7%) [V]",
        measure=lambda: totals("lenet5", ticks=1, copies=1)["energy_j"], note=_CORES),
    Reference(
        target="truenorth", quantity="energy per image, MNIST, 1 tick, 64 copies", reference=108e-6, unit="J",
        source=f"{SECTION}: Esser et al. NIPS 2015, high-accuracy network (ensemble of 64, 99.42%) [V]",
        measure=lambda: totals("lenet5", ticks=1, copies=64, max_chips=2)["energy_j"],
        note=_CORES + "; the paper's 64-copy figure is 403x its 1-copy one, nncc's 64x: its copies differ"),
    Reference(
        target="truenorth", quantity="throughput, CIFAR-10 network at 1 tick per frame", reference=1200.0, unit="fps",
        source=f"{SECTION}: Esser et al. PNAS 2016, abstract: 1200-2600 frames/s over eight datasets [V]",
        measure=lambda: totals("convnet", ticks=1)["throughput_fps"],
        note="reference = the range's low end (2600 at the high end: ratio 0.38); nncc's frame rate is "
             "1/tick_s, the 1 ms tick [U], while the chip ran these networks faster than 1 kHz"),
    Reference(
        target="truenorth", quantity="energy efficiency, CIFAR-10 network at 1 tick per frame", reference=6000.0,
        unit="fps/W", source=f"{SECTION}: Esser et al. PNAS 2016, abstract: > 6000 frames/s per watt [V]",
        measure=lambda: fps_per_watt("convnet", ticks=1),
        note="a lower bound over their eight networks; nncc: the zoo ConvNet (2661 cores) at 1000 fps, "
             "power = energy per frame x fps; random weights, spike_rate 0.15 [fitted on LeNet-5]"),
]
