"""Published figures the ``truenorth`` target is checked against (docs/sources.md, "TrueNorth").

The MNIST figures of Esser et al. (NIPS 2015) are measured on their 5-core network rebuilt as
ONNX (:mod:`.esser`: layer structure from the pytruenorth re-implementation, seeded weights at
its initial connection density, the spike rate measured on the same network trained); the CIFAR-10 figures of Esser et al. (PNAS 2016) on the zoo
ConvNet, a different network (their per-dataset networks were not read), so those compare the
chip model at the same operating point (ticks per frame), not the same network. No constant was
fitted to these figures: ``spike_rate`` was measured on nncc's own LeNet-5 simulation (the
MNIST rows: on the trained 5-core network, ``esser.SPIKE_RATE``),
``chip_power_w`` and ``tick_s`` come from other sources.

Every ``measure`` compiles offline in well under a second.
"""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

from nncc import models
from nncc.driver import CompileOptions, compile_model
from nncc.fidelity import Reference
from nncc.registry import TARGETS

from . import esser

SECTION = 'docs/sources.md, "TrueNorth"'


def totals(name: str, **sets: Any) -> dict[str, Any]:
    """The report totals of zoo model ``name`` on truenorth with ``sets`` (no calibration inputs:
    the cost model's fitted spike_rate stands for the measured activity)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = models.export(name, pathlib.Path(tmp) / f"{name}.onnx")
        target = TARGETS.get("truenorth").configure(None, sets)
        return compile_model(path, target, [], CompileOptions(verify_samples=0)).report["totals"]


def esser_totals(**sets: Any) -> dict[str, Any]:
    """The report totals of Esser et al.'s 5-core MNIST network (:mod:`.esser`, seeded) with ``sets``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = esser.export(pathlib.Path(tmp) / "esser_5core.onnx")
        target = TARGETS.get("truenorth").configure(None, sets)
        return compile_model(path, target, [], CompileOptions(verify_samples=0)).report["totals"]


def fps_per_watt(name: str, **sets: Any) -> float:
    """Frames/s over mean power (energy per frame x frames/s): 1 / energy per frame."""
    return 1.0 / totals(name, **sets)["energy_j"]


NIPS = f"{SECTION}: Esser et al. NIPS 2015, abstract as in the proceedings (papers.nips.cc/paper/5862) [V]"
_REBUILT = (f"the 5-core network ({esser.PYTRUENORTH}: four 16x16 patch cores of 64 neurons, one core of 250 class "
            "neurons) [U that it is the paper's]; seeded weights, half the synapses connected (pytruenorth's initial "
            "connection probability; 48-50% once trained); spike_rate 0.27, measured on the trained network "
            "(benchmarks/truenorth_esser.py)")

REFERENCES: list[Reference] = [
    Reference(
        target="truenorth", quantity="energy per image, MNIST 5-core network, 1 tick, 1 copy", reference=0.408e-6,
        unit="J", source=f"{NIPS}: high-efficiency network (ensemble of 1, 92.7%)",
        measure=lambda: esser_totals(ticks=1, copies=1, spike_rate=esser.SPIKE_RATE)["energy_j"],
        note=_REBUILT + "; a PDF copy of the paper gives 0.268 uJ instead (nncc 2.0x of it)"),
    Reference(
        target="truenorth", quantity="energy per image, MNIST 5-core network, 1 tick, 64 copies", reference=121e-6,
        unit="J", source=f"{NIPS}: high-accuracy network (ensemble of 64, 99.42%)",
        measure=lambda: esser_totals(ticks=1, copies=64, spike_rate=esser.SPIKE_RATE)["energy_j"],
        note="64 copies of the 5-core network (320 cores); the paper's 64-copy energy is 297x its 1-copy one (PDF "
             "copy: 108 uJ, 403x), so its high-accuracy copies are larger networks, whose structure was not read"),
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
