"""Published figures the ``reram`` target's ``neurosim`` profile is checked against
(docs/sources.md, "ReRAM", "NeuroSim's published results").

DNN+NeuroSim V1.4's user manual, Table VII ("Hardware Estimation Examples"): VGG-8 on
CIFAR-10, RRAM, 22 nm, 1 bit per cell, 8-bit weights and activations, 128 x 128 sub-arrays,
on/off ratio 17, 4-bit ADC, the code's other defaults (layer pipeline on), at two partial-
parallel-read settings, 32 and 64 rows. Each row gives chip area, throughput (TOPS) and
energy efficiency (TOPS/W); with NeuroSim's operation count for VGG-8 (main.cpp:
2 x sum over layers of IFM^2 x C x k^2 x M, from its NetWork_VGG8.csv = 1.2318e9) they become
seconds and joules per image. No constant of the profile was fitted to any of them
(``fitted=False``); they are another simulator's outputs (``simulator=True``, the 1.3x band).

The VGG-8 is built here as NeuroSim's ``models/VGG.py`` defines it (six 3x3 'same' convs
128-128-256-256-512-512, a 2x2 max-pool after each pair, Linear 8192-1024-10, ReLU, no bias)
with seeded random weights; the ADC bits do not depend on them (the profile provisions the
fixed 4-bit sense amplifier), the read energy does a little (cell conductances, input bits).
Each ``measure`` compiles it once per setting (cached): a few seconds each.

A second set (``OUR_RUN``): NeuroSim V1.4's own C++ run on the same settings with traces of this
very VGG-8 and input, so the data is the same on both sides; it also gives NeuroSim's breakdown,
checked part by part (sensing latency, array area, ADC + array energy, accumulation energy, and
the buffer and interconnect cycles that ``neurosim_periphery`` counts as NeuroSim does).
"""

from __future__ import annotations

import functools
import pathlib
import tempfile

from nncc.driver import CompileOptions, compile_model
from nncc.fidelity import Reference
from nncc.registry import TARGETS

SECTION = 'docs/sources.md, "ReRAM" (NeuroSim V1.4 manual, Table VII)'
# main.cpp numComputation for NetWork_VGG8.csv: 2 x 615,917,568 MACs as NeuroSim counts them [V].
VGG8_OPS = 2 * 615_917_568
# Table VII, RRAM rows: parallel read -> (area mm^2, TOPS, TOPS/W) [V].
TABLE_VII = {32: (381.90, 6.25, 11.25), 64: (378.06, 8.16, 19.88)}
# The same settings run with NeuroSim V1.4's own C++ (neurosim/DNN_NeuroSim_V1.4 commit ac828e6, 2025-03-09;
# Param.cpp with memcelltype = 2 and levelOutput = 16 as Table VII states, all else default),
# fed traces of *this* seeded VGG-8 and nncc's first calibration image (runtime.sample_inputs, seed 0)
# [V: run in the session that wrote this file; docs/sources.md gives the recipe]:
# parallel read -> (ChipArea mm^2, pipeline-system clock cycle s, (dynamic + leakage) x zeta J).
OUR_RUN = {32: (345.169, 156.212e-6, (50.6531 + 0.319776) * 1.22 * 1e-6),
           64: (341.323, 131.278e-6, (32.4167 + 0.272290) * 1.22 * 1e-6)}
# Its breakdown [V, same runs]: the slowest layer's ADC (sensing) latency, the CIM arrays' area, and
# the dynamic energy of its "ADC" (sense amplifiers with the array read) and "Accumulation"
# (adders, shift-adds, accumulators) groups, x zeta as its TOPS/W counts them.
# Its synchronous clock ("clkPeriod", main.cpp: beta x the slowest sub-array read cycle) and its chip
# summary's buffer and interconnect latency (the largest layer's: layer 1's buffer, layer 2's
# interconnect), as cycles of that clock.
OUR_RUN_PARTS = {32: {"sensing_s": 25203.1e-9, "array_mm2": 3.60536, "adc_array_j": 29.5618e-6 * 1.22,
                      "accumulation_j": 9.82009e-6 * 1.22, "clock_s": 1.75021e-9,
                      "buffer_cycles": 108206e-9 / 1.75021e-9, "interconnect_cycles": 29849.9e-9 / 1.75021e-9,
                      "area_groups_mm2": {"ic": 26.3107, "adc": 5.0672, "accumulation": 17.079, "other": 46.8532}},
                 64: {"sensing_s": 11398.8e-9, "array_mm2": 3.60536, "adc_array_j": 16.0127e-6 * 1.22,
                      "accumulation_j": 5.17621e-6 * 1.22, "clock_s": 1.58316e-9,
                      "buffer_cycles": 97876.4e-9 / 1.58316e-9, "interconnect_cycles": 26981e-9 / 1.58316e-9,
                      "area_groups_mm2": {"ic": 26.1601, "adc": 5.0672, "accumulation": 16.4675, "other": 46.8385}}}
# (area_groups_mm2: its chip summary's "Total IC Area", "Total ADC ... Area", "Total Accumulation Circuits" and
# "Other Peripheries" lines; the rest of ChipArea is the CIM arrays and the sub-arrays' empty space.)
AREA_GROUPS = {"ic": ("interconnect area", "tile H-trees and the global X-Y bus"),
               "adc": ("ADC area", "sense amplifiers and encoders"),
               "accumulation": ("accumulation area", "shift-adders, adders, adder trees, accumulators"),
               "other": ("other periphery area", "level shifters, switch matrices, muxes, decoders, buffers, "
                                                 "max-pool, ReLU")}
ADC_ARRAY_KEYS = ("adc", "wordline", "bitline", "crossbar_read")
VGG8_CONVS = (128, 128, "M", 256, 256, "M", 512, 512, "M")


def vgg8_torch(seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list = []
    cin = 3
    for v in VGG8_CONVS:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1, bias=False), nn.ReLU()]
            cin = v
    layers += [nn.Flatten(), nn.Linear(8192, 1024, bias=False), nn.ReLU(), nn.Linear(1024, 10, bias=False)]
    return nn.Sequential(*layers).eval()


def export_vgg8(path: pathlib.Path, seed: int = 0) -> pathlib.Path:
    import torch

    model = vgg8_torch(seed)
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(path), input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    return path


def write_neurosim_traces(folder: pathlib.Path, seed: int = 0) -> list[pathlib.Path]:
    """The traces OUR_RUN was made from, in the format of NeuroSim's wrapper (utee/hook.py): per
    layer a weight CSV [C*k*k, M] scaled to [-1, 1] and an input CSV of bits [C*k*k, pixels*8]
    (sign bit, 0 here, then 7 magnitude bits, MSB first; inputs scaled to [0, 127/128]). The image
    is nncc's first calibration input (runtime.sample_inputs, seed 0). Run NeuroSim as
    ``./main NetWork_VGG8.csv 8 8 128 <parallel read> <the returned files in order>``."""
    import numpy as np
    import torch

    model = vgg8_torch(seed)
    x = torch.tensor(np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32))
    seen: dict = {}
    layers = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks = [m.register_forward_hook(lambda m, i, o: seen.__setitem__(m, i[0].detach().numpy())) for m in layers]
    model(x)
    for h in hooks:
        h.remove()
    files = []
    for i, m in enumerate(layers):
        w = m.weight.detach().numpy()
        w = w / np.abs(w).max()
        a = seen[m] / max(float(seen[m].max()), 1e-12) * (127 / 128)
        if w.ndim == 4:  # one row per output pixel: the 3x3 window over all channels, 'same' padding
            padded = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
            side = a.shape[2]
            rows = np.stack([padded[0, :, r:r + 3, c:c + 3].reshape(-1) for r in range(side) for c in range(side)])
        else:
            rows = a.reshape(1, -1)
        codes = np.floor(rows * 128).astype(np.int64)  # 7 magnitude bits
        bits = np.zeros((rows.shape[1], rows.shape[0] * 8), dtype=np.int8)
        for b in range(1, 8):
            bits[:, b::8] = ((codes >> (7 - b)) & 1).T
        paths = (folder / f"weight{i}.csv", folder / f"input{i}.csv")
        np.savetxt(paths[0], w.reshape(w.shape[0], -1).T, delimiter=",", fmt="%10.5f")
        np.savetxt(paths[1], bits, delimiter=",", fmt="%d")
        files += paths
    return files


@functools.lru_cache(maxsize=4)
def vgg8_totals(parallel_read: int) -> dict:
    """nncc's totals for the VGG-8 on the neurosim profile at ``parallel_read`` rows."""
    target = TARGETS.get("reram").configure(None, {"profile": "neurosim", "parallel_read": parallel_read})
    with tempfile.TemporaryDirectory() as tmp:
        path = export_vgg8(pathlib.Path(tmp) / "vgg8.onnx")
        return compile_model(path, target, [], CompileOptions(verify_samples=0)).report["totals"]


def _energy(pr: int) -> float:
    return vgg8_totals(pr)["energy_j"]


def _interval(pr: int) -> float:
    return vgg8_totals(pr)["pipelined_interval_s"]


def _sensing(pr: int) -> float:
    totals = vgg8_totals(pr)
    return totals.get("sensing_interval_s", totals["pipelined_interval_s"])


def _area(pr: int) -> float:
    return vgg8_totals(pr)["area_mm2"]


def _refs(pr: int) -> list[Reference]:
    area, tops, tops_w = TABLE_VII[pr]
    setting = f"VGG-8 CIFAR-10, RRAM 22 nm, 4-bit ADC, parallel read {pr}"
    common = {"target": "reram", "source": SECTION, "simulator": True}
    return [
        Reference(quantity=f"energy per image, {setting}", reference=VGG8_OPS / (tops_w * 1e12), unit="J",
                  measure=lambda: _energy(pr), note="TOPS/W of the table, leakage included there, not here", **common),
        Reference(quantity=f"pipelined interval per image, {setting}", reference=VGG8_OPS / (tops * 1e12), unit="s",
                  measure=lambda: _interval(pr), note="buffer and interconnect cycles as NeuroSim counts them, at nncc's "
                                                      "shorter clock (sensing only: no mux, decoder, encoder delay)",
                  **common),
        Reference(quantity=f"chip area, {setting}", reference=area, unit="mm^2", measure=lambda: _area(pr),
                  note="NeuroSim's own area model on its floorplan (neurosim_area.py); the table's trained model "
                       "gets a larger floorplan", **common),
    ]


def _run_refs(pr: int) -> list[Reference]:
    area, interval, energy = OUR_RUN[pr]
    parts = OUR_RUN_PARTS[pr]
    setting = f"VGG-8 (this seeded model), RRAM 22 nm, 4-bit ADC, parallel read {pr}"
    common = {"target": "reram", "source": 'docs/sources.md, "ReRAM" (NeuroSim V1.4 run on the same weights and input)',
              "simulator": True}
    return [
        Reference(quantity=f"energy per image, {setting}", reference=energy, unit="J", measure=lambda: _energy(pr),
                  note="nncc measures 8 calibration images, NeuroSim traced the first", **common),
        Reference(quantity=f"pipelined interval per image, {setting}", reference=interval, unit="s",
                  measure=lambda: _interval(pr), note="layer 1's sensing, buffer and interconnect cycles as NeuroSim "
                                                      "counts them, at nncc's clock (0.84x NeuroSim's: no mux, decoder, "
                                                      "encoder delay)", **common),
        Reference(quantity=f"chip area, {setting}", reference=area, unit="mm^2", measure=lambda: _area(pr),
                  note="NeuroSim's area model (neurosim_area.py); 246 / 243 mm^2 of it is the sub-arrays' empty "
                       "space", **common),
        Reference(quantity=f"sensing latency of the slowest layer, {setting}", reference=parts["sensing_s"],
                  unit="s", measure=lambda: _sensing(pr), note="the interval of the sub-arrays alone", **common),
        Reference(quantity=f"clock period, {setting}", reference=parts["clock_s"], unit="s",
                  measure=lambda: vgg8_totals(pr)["neurosim_clock_s"],
                  note="beta x sensing; NeuroSim adds the column mux + its decoder and the encoder delays", **common),
        Reference(quantity=f"buffer cycles of the slowest layer, {setting}", reference=parts["buffer_cycles"],
                  unit="cycles", measure=lambda: vgg8_totals(pr)["buffer_cycles"],
                  note="global, tile and PE buffers, synchronous (neurosim_periphery.py)", **common),
        Reference(quantity=f"interconnect cycles of the slowest layer, {setting}", reference=parts["interconnect_cycles"],
                  unit="cycles", measure=lambda: vgg8_totals(pr)["interconnect_cycles"],
                  note="one cycle per bus transfer; NeuroSim's X-Y bus takes 2 across its larger novel-mapped tiles",
                  **common),
        Reference(quantity=f"CIM array area, {setting}", reference=parts["array_mm2"], unit="mm^2",
                  measure=lambda: vgg8_totals(pr)["crossbar_area_mm2"], **common),
        *[Reference(quantity=f"{label}, {setting}", reference=parts["area_groups_mm2"][group], unit="mm^2",
                    measure=lambda group=group: vgg8_totals(pr)["neurosim_area"]["groups_mm2"][group],
                    note=f"NeuroSim's summary group: {what}", **common)
          for group, (label, what) in AREA_GROUPS.items()],
        Reference(quantity=f"ADC + array read energy, {setting}", reference=parts["adc_array_j"], unit="J",
                  measure=lambda: sum(vgg8_totals(pr)["energy_breakdown_j"].get(k, 0.0) for k in ADC_ARRAY_KEYS),
                  note="sense amplifiers, bit/word lines, cell current over the sensing time (NeuroSim: its "
                       "static-power fit)", **common),
        Reference(quantity=f"accumulation energy, {setting}", reference=parts["accumulation_j"], unit="J",
                  measure=lambda: vgg8_totals(pr)["energy_breakdown_j"]["shift_add"],
                  note="ISAAC's 16-bit shift-add at 22 nm per conversion and per reduction add", **common),
    ]


REFERENCES: list[Reference] = [*_refs(32), *_refs(64), *_run_refs(32), *_run_refs(64)]
