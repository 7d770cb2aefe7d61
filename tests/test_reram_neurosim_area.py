"""NeuroSim V1.4's chip area (backends/reram/neurosim_area.py, neurosim_formula.py) against
NeuroSim's own figures: its chip summary on VGG-8 (fidelity.OUR_RUN: ChipArea and the IC / ADC /
accumulation / other groups) and on a second network, and, component by component, the areas an
instrumented copy of the same build printed (SubArray.cpp CalculateArea, ProcessingUnitCalculateArea,
TileCalculateArea, ChipCalculateArea patched to print each part; main.cpp stopped after the area;
VGG-8 at parallel read 32 and 64, the second network at 32 and 128). Figures in m and m^2,
NeuroSim's units, printed to 6 digits."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nncc.backends.reram import ReramTarget
from nncc.backends.reram import neurosim_area as nsa
from nncc.backends.reram import neurosim_formula as nsf
from nncc.backends.reram import neurosim_periphery as nsp
from nncc.backends.reram.config import ReramConfig, neurosim

VGG8 = [nsp.NetRow(32, 32, 3, 3, 3, 128, False, 1), nsp.NetRow(32, 32, 128, 3, 3, 128, True, 1),
        nsp.NetRow(16, 16, 128, 3, 3, 256, False, 1), nsp.NetRow(16, 16, 256, 3, 3, 256, True, 1),
        nsp.NetRow(8, 8, 256, 3, 3, 512, False, 1), nsp.NetRow(8, 8, 512, 3, 3, 512, True, 1),
        nsp.NetRow(1, 1, 8192, 1, 1, 1024, False, 1), nsp.NetRow(1, 1, 1024, 1, 1, 10, False, 1)]
# The second network NeuroSim was run on (docs/sources.md, "ReRAM": a 16x16x3 network, run here).
SMALL = [nsp.NetRow(16, 16, 3, 3, 3, 32, True, 1), nsp.NetRow(8, 8, 32, 3, 3, 64, False, 1),
         nsp.NetRow(8, 8, 64, 3, 3, 64, True, 1), nsp.NetRow(1, 1, 1024, 1, 1, 10, False, 1)]

# Instrumented NeuroSim, one 128 x 128 sub-array: (height, width) and each part's area.
SUBARRAY = {
    32: {"height": 0.000113694, "width": 0.00028807, "area": 3.27518e-08, "adder": 1.11235e-10, "dff": 1.24895e-10},
    64: {"height": 0.000112419, "width": 0.00028807, "area": 3.23847e-08, "adder": 8.89879e-11, "dff": 1.04079e-10},
}
SUBARRAY_PARTS = {"wl_switch_matrix": 3.01335e-10, "sl_switch_matrix": 1.7857e-10, "mux": 1.66527e-10,
                  "mux_decoder": 4.75513e-11, "sense_amp": 3.69926e-10, "sa_encoder": 1.6504e-10,
                  "shift_add_weight": 3.59594e-10, "shift_add_input": 7.04097e-10}
# Its PE (4 x 4 sub-arrays) and tiles: PE area, adder tree, DFF buffers; tile accumulation, buffers, H-tree.
PE = {32: {"pe": 5.32525e-07, "pe_adder_tree": 5.96219e-09, "pe_buffers": 1.82492e-09 + 7.09804e-10},
      64: {"pe": 5.26364e-07, "pe_adder_tree": 5.69522e-09, "pe_buffers": 1.80447e-09 + 7.09804e-10}}
TILES = {32: {"nm": (0.00228887 ** 2, 1.65517e-08, 1.16629e-08 + 6.47937e-09, 4.11505e-07),
              "cm": (0.00147213 ** 2, 4.62737e-09, 2.59175e-09 + 1.08095e-09, 2.87694e-08)},
         64: {"nm": (0.00227606 ** 2, 1.59288e-08, 1.16629e-08 + 6.47937e-09, 4.09118e-07),
              "cm": (0.00146361 ** 2, 4.44939e-09, 2.59175e-09 + 1.0414e-09, 2.86025e-08)}}
# Chip: global buffer, X-Y bus, global accumulation; ChipArea and its summary groups (main.cpp).
CHIP = {32: {"global_buffer": 1.44817e-06, "global_bus": 9.56901e-06, "global_accumulation": 3.31569e-07,
             "total": 3.45169e-04, "ic": 2.63107e-05, "adc": 5.0672e-06, "accumulation": 1.7079e-05,
             "other": 4.68532e-05, "array": 3.60536e-06},
        64: {"global_buffer": 1.44817e-06, "global_bus": 9.51547e-06, "global_accumulation": 3.20356e-07,
             "total": 3.41323e-04, "ic": 2.61601e-05, "adc": 5.0672e-06, "accumulation": 1.64675e-05,
             "other": 4.68385e-05, "array": 3.60536e-06}}
MAX_POOL = 7.51453e-09   # the chip's max-pool units (printed; VGG-8 and at both settings)
SMALL_RUN = {32: 1.49592e-05, 128: 1.41523e-05}   # its ChipArea (out32.txt / out128.txt)


def _chip(net, parallel_read):
    p = nsp.Params(row_parallel=parallel_read)
    fp = nsp.floorplan(net, p)
    return nsa.chip_area(net, p, fp, nsp.geometry(net, p, fp))


def test_gate_layout_by_hand():
    # 22 nm: standard cell 28 F = 616 nm; CPP = (1 + 2.8) F = 83.6 nm. A minimum inverter (N 44 nm,
    # P 1.3194 x 44 nm) needs no folding: 2 CPP wide. A level shifter's low-voltage inverter (x15 / x20
    # widths, x2, 2.5 x the cell height = 1540 nm): P max = ratio x (1540 - 3.5 F - 3.6 F) = 882 nm
    # < 2322 nm -> 3 folds -> (3 + 1) CPP wide.
    t = nsf.TECH
    assert t.F == 22 * 1e-9 and t.pn == pytest.approx(791.9 / 600.2)
    assert nsf.gate(nsf.INV, 1, 44e-9, t.pn * 44e-9, t.cell_height, t) == pytest.approx((616e-9, 2 * 83.6e-9))
    assert nsf.gate(nsf.INV, 1, 44e-9 * 30, t.pn * 44e-9 * 40, 2.5 * t.cell_height, t)[1] == pytest.approx(4 * 83.6e-9)
    # NAND2 of the adder, enlarged to the cell (EnlargeSize): no folding, one diffusion shared.
    w = nsf.enlarge(88e-9, t.pn * 44e-9, t)
    assert nsf.gate(nsf.NAND, 2, *w, t.cell_height, t)[1] == pytest.approx(3 * 83.6e-9)
    # The bus repeater (HTree / XYBus Initialize): 10 CPP wide, as NeuroSim's printed H-tree implies.
    assert nsf.repeater_width() == pytest.approx(10 * 83.6e-9)


@pytest.mark.parametrize("parallel_read", [32, 64])
def test_subarray_is_neurosims_part_by_part(parallel_read):
    sub = nsa.subarray(128, parallel_read, 16, 8, 8, 8)
    ref = SUBARRAY[parallel_read]
    assert sub.height == pytest.approx(ref["height"], rel=1e-5)
    assert sub.width == pytest.approx(ref["width"], rel=1e-5)
    assert sub.area == pytest.approx(ref["area"], rel=1e-5)
    for part, area in {**SUBARRAY_PARTS, "adder": ref["adder"], "dff": ref["dff"]}.items():
        assert sub.parts[part] == pytest.approx(area, rel=1e-5), part
    # The three level shifters are 2/3 of the width and a third of the height; the rest is empty.
    assert sub.parts["array"] == pytest.approx(11.264e-6 * 33.792e-6)
    assert sub.area - sum(sub.parts.values()) > 0.6 * sub.area


@pytest.mark.parametrize("parallel_read", [32, 64])
def test_pe_and_tiles_are_neurosims(parallel_read):
    p = nsp.Params(row_parallel=parallel_read)
    pe, parts = nsa.pe_area(512, p, nsf.TECH)
    ref = PE[parallel_read]
    assert pe == pytest.approx(ref["pe"], rel=1e-5)
    assert parts["pe_adder_tree"] == pytest.approx(ref["pe_adder_tree"], rel=1e-5)
    assert parts["pe_buffers"] == pytest.approx(ref["pe_buffers"], rel=1e-5)
    fp = nsp.floorplan(VGG8, p)
    geo = nsp.geometry(VGG8, p, fp)
    for kind, num_pe, g in (("nm", 9, dict(geo.nm, pes_per_side=9)), ("cm", 4, dict(geo.cm, pes_per_side=2))):
        area, tparts = nsa.tile_area(num_pe, 512, g, p, nsf.TECH, kind == "nm")
        total, acc, buf, htree = TILES[parallel_read][kind]
        assert area == pytest.approx(total, rel=1e-5), kind
        assert tparts["tile_accumulation"] == pytest.approx(acc, rel=1e-5), kind
        assert tparts["tile_buffers"] == pytest.approx(buf, rel=1e-5), kind
        assert tparts["tile_htree"] == pytest.approx(htree, rel=1e-5), kind


@pytest.mark.parametrize("parallel_read", [32, 64])
def test_vgg8_chip_area_is_neurosims(parallel_read):
    res = _chip(VGG8, parallel_read)
    ref = CHIP[parallel_read]
    assert (res["nm_tiles"], res["cm_tiles"]) == (36, 67)
    for part in ("global_buffer", "global_bus", "global_accumulation"):
        assert res["parts"][part] == pytest.approx(ref[part], rel=1e-5), part
    assert res["parts"]["max_pool"] == pytest.approx(MAX_POOL, rel=1e-5)
    assert res["total"] == pytest.approx(ref["total"], rel=1e-5)
    groups = nsa.groups(res["parts"])
    for g in ("ic", "adc", "accumulation", "other", "array"):
        assert groups[g] == pytest.approx(ref[g], rel=1e-5), g
    # 246 / 243 mm^2 of it is the sub-arrays' empty space.
    assert res["parts"]["subarray_empty"] == pytest.approx(ref["total"] - sum(ref[g] for g in groups), rel=1e-4)


@pytest.mark.parametrize("parallel_read", [32, 128])
def test_a_second_network_chip_area_is_neurosims(parallel_read):
    # 512^2 conventional tiles of 256^2 PEs there (2 x 2 sub-arrays); at 128 rows read no partial-sum adder.
    res = _chip(SMALL, parallel_read)
    assert res["total"] == pytest.approx(SMALL_RUN[parallel_read], rel=1e-5)
    assert ("subarray_adder" in res["parts"]) == (parallel_read < 128)


def test_profile_reports_neurosims_area_and_isaac_is_untouched():
    from test_reram_fidelity import small_vgg

    t = ReramTarget(neurosim())
    mapping = t.lower(small_vgg())
    report = t.estimate(mapping)
    chip = report.extra_totals["neurosim_area"]
    assert report.area_mm2 == chip["chip_area_mm2"] == pytest.approx(sum(chip["parts_mm2"].values()))
    assert report.extra_totals["nncc_area_mm2"] < report.area_mm2
    net = [n for _, n in nsp.network(mapping)]
    assert chip["chip_area_mm2"] == pytest.approx(_chip(net, 32)["total"] * 1e6)
    # Off, another node, or the ISAAC profile: nncc's own sum, no NeuroSim keys.
    for cfg in (dataclasses.replace(neurosim(), neurosim_area=False), dataclasses.replace(neurosim(), feature_size_nm=32.0),
                ReramConfig()):
        other = ReramTarget(cfg)
        rep = other.estimate(other.lower(small_vgg()))
        assert "neurosim_area" not in rep.extra_totals and "nncc_area_mm2" not in rep.extra_totals
        assert math.isfinite(rep.area_mm2) and rep.area_mm2 < report.area_mm2
