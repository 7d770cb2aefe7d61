"""Published figures the ``ucnn`` target is checked against (docs/sources.md, "UCNN").

Two sources, neither fitted to (no constant of this target is fitted):
- Eyeriss, the chip whose provisioning the target's baseline copies (168 PEs, 200 MHz, its
  normalized energy table): measured convolutional-layer frame rates, chip power and DRAM
  traffic. They check the ``baseline`` design, against which every UCNN gain is a ratio;
- UCNN's own abstract range, 1.2x-4x lower throughput-normalized energy. Which scheme gives
  which end is not stated in what was read [U]: the low end is matched with plain 16-bit
  weights (the least repetition), the high end with ternary TTQ-like weights. Both gains are
  measured on the convolutional layers, the layers the baseline's Eyeriss figures cover (an
  Eyeriss-style array runs convolutions) [U: the paper's own evaluation scope was not read].

Each ``measure`` compiles a zoo model offline (random, seeded weights): about 30 s for AlexNet,
a minute for VGG-16 on 2 cores (the per-filter weight statistics of 138 M weights).
"""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

from nncc import models
from nncc.driver import CompileOptions, compile_model
from nncc.fidelity import Reference
from nncc.registry import PASSES, TARGETS

SECTION = 'docs/sources.md, "UCNN"'
EYERISS = f"{SECTION}: Chen et al., Eyeriss, JSSC 2017 abstract (ISSCC 2016 chip, 65 nm, 200 MHz) [V]"


def compile_zoo(name: str, passes: list | None = None, **sets: Any):
    with tempfile.TemporaryDirectory() as tmp:
        path = models.export(name, pathlib.Path(tmp) / f"{name}.onnx")
        target = TARGETS.get("ucnn").configure(None, sets)
        return compile_model(path, target, list(passes or []), CompileOptions(verify_samples=0))


def baseline_conv(name: str) -> dict[str, float]:
    """The Eyeriss-style baseline on the network's convolutional layers only (Eyeriss's figures are
    for those): seconds, MACs, chip energy (arithmetic, RF, buffer and NoC) and DRAM words."""
    result = compile_zoo(name, design="baseline")
    c = result.target.config
    convs = [row for row in result.report["layers"] if row["op"] == "Conv"]
    base = [row["baseline"] for row in convs]
    return {"seconds": sum(b["cycles"] for b in base) / c.clock_hz, "macs": sum(row["macs"] for row in convs),
            "chip_j": sum(b["energy_j"] - b["dram_j"] for b in base),
            # dram_j = 16-bit words x dram_x x one 16-bit MAC (cost.py): back to words
            "dram_words": sum(b["dram_j"] for b in base) / (c.dram_x * c.e_mac16_pj * 1e-12)}


def conv_tne_ratio(report: dict[str, Any]) -> float:
    """Baseline / UCNN throughput-normalized energy (energy x cycles) summed over the Conv layers."""
    convs = [row for row in report["layers"] if row["op"] == "Conv"]
    energy = {d: sum(row[d]["energy_j"] for row in convs) for d in ("ucnn", "baseline")}
    cycles = {d: sum(row[d]["cycles"] for row in convs) for d in ("ucnn", "baseline")}
    return energy["baseline"] * cycles["baseline"] / (energy["ucnn"] * cycles["ucnn"])


def tne_gain(name: str, prune: float | None = None, unique: int | None = None, convs_only: bool = True,
             **sets: Any) -> float:
    """Baseline / UCNN throughput-normalized energy (energy x cycles) of the convolutional layers
    (the layers an Eyeriss-style accelerator runs, as in the baseline's references), or of the
    whole network."""
    passes = ([PASSES.create("prune", ratio=prune)] if prune else []) + \
             ([PASSES.create("weight-share", unique=unique)] if unique else [])
    report = compile_zoo(name, passes, **sets).report
    return conv_tne_ratio(report) if convs_only else report["totals"]["throughput_normalized_energy_ratio"]


_IDEAL = ("nncc's baseline keeps every PE busy (cycles = MACs / 168) and ignores DRAM bandwidth; "
          "Eyeriss maps each layer onto its 12x14 array with idle PEs and stalls: its own figures imply 69% of "
          "168 PEs x 200 MHz busy on AlexNet (35 fps x 666 M MACs) and 32% on VGG-16 (0.7 fps x 15.3 G MACs)")
_RANDOM = "zoo AlexNet is torchvision's (64-192-384-256-256, 224 px, 0.66 GMAC conv) with random weights (no zeros)"

REFERENCES: list[Reference] = [
    Reference(
        target="ucnn", quantity="Eyeriss-style baseline: AlexNet conv layers, frames/s", reference=35.0, unit="fps",
        source=EYERISS + ": 35 frames/s at batch 4", measure=lambda: 1.0 / baseline_conv("alexnet")["seconds"],
        note=_IDEAL + "; " + _RANDOM),
    Reference(
        target="ucnn", quantity="Eyeriss-style baseline: AlexNet conv layers, chip power", reference=0.278, unit="W",
        source=EYERISS + ": 278 mW at batch 4 (chip only, DRAM not included)",
        measure=lambda: (lambda b: b["chip_j"] / b["seconds"])(baseline_conv("alexnet")),
        note="nncc: 45 nm Horowitz MAC x Eyeriss's normalized RF/NoC/buffer costs, activation density 0.5 [U], "
             "no clock tree or leakage; Eyeriss: 65 nm silicon"),
    Reference(
        target="ucnn", quantity="Eyeriss-style baseline: AlexNet conv layers, DRAM accesses per MAC", reference=0.0029,
        unit="access/MAC", source=EYERISS + ": 0.0029 DRAM access/MAC at batch 4",
        measure=lambda: (lambda b: b["dram_words"] / b["macs"])(baseline_conv("alexnet")),
        note="nncc: batch 1 (the 2.47 M conv weights read once per image, 0.0038 words/MAC alone; Eyeriss shares "
             "them over 4), ideal activation reuse, feature maps run-length coded at density 0.5 [U], 16-bit words "
             "[U: Eyeriss's access unit]"),
    Reference(
        target="ucnn", quantity="Eyeriss-style baseline: VGG-16 conv layers, frames/s", reference=0.7, unit="fps",
        source=EYERISS + ": 0.7 frames/s at batch 3", measure=lambda: 1.0 / baseline_conv("vgg16")["seconds"],
        note=_IDEAL + "; Eyeriss's VGG-16 run is bound by its 108 KB buffer and DRAM traffic, which nncc "
                      "does not stall on"),
    Reference(
        target="ucnn", quantity="UCNN throughput-normalized energy gain, AlexNet conv layers, plain 16-bit weights",
        reference=1.2, unit="x", source=f"{SECTION}: Hegde et al. ISCA 2018 abstract, low end of 1.2x-4x [V; "
                                        "the scheme it belongs to: U]",
        measure=lambda: tne_gain("alexnet", weight_bits=16), gain=True,
        note="random Gaussian filters: 93-99% of a filter's 16-bit values are distinct, so each weight keeps its "
             "own multiply and adds a 10-13 bit indirection entry (26-28 bits a weight against 16); the paper's schemes are INQ/TTQ-trained "
             "(17 / 3 unique values) [U]. Conv layers only (as Eyeriss's figures); the whole network, FC "
             "weights read once per image at batch 1, gives 0.60x"),
    Reference(
        target="ucnn", quantity="UCNN throughput-normalized energy gain, AlexNet conv layers, ternary weights (half zero)",
        reference=4.0, unit="x", source=f"{SECTION}: Hegde et al. ISCA 2018 abstract, high end of 1.2x-4x [V; "
                                        "the scheme it belongs to: U]",
        measure=lambda: tne_gain("alexnet", prune=0.5, unique=3, weight_bits=16), gain=True,
        note="nncc: prune 0.5 then weight-share U=3 per filter (TTQ-like {-a, 0, +b}); TTQ's own sparsity [U]. "
             "Whole network 7.6x (its weights take 4x fewer DRAM bytes, FC included)"),
]
