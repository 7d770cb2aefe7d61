"""NeuroSim V1.4's floorplan, buffer and interconnect cycles (backends/reram/neurosim_periphery.py),
against hand counts from its C++ (Chip.cpp, Tile.cpp, ProcessingUnit.cpp, Buffer.cpp, DFF.cpp,
HTree.cpp, XYBus.cpp) and against NeuroSim's own run on VGG-8 (fidelity.OUR_RUN; the per-layer
figures below are that run's output, "layerN's buffer latency / ic latency" over its clkPeriod)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nncc.backends.reram import ReramTarget
from nncc.backends.reram import neurosim_periphery as nsp
from nncc.backends.reram.config import ReramConfig, neurosim
from nncc.cost import row_json

# NetWork_VGG8.csv of NeuroSim (IFM rows, columns, channels, kernel, kernel, outputs, max-pool, stride).
VGG8 = [nsp.NetRow(32, 32, 3, 3, 3, 128, False, 1), nsp.NetRow(32, 32, 128, 3, 3, 128, True, 1),
        nsp.NetRow(16, 16, 128, 3, 3, 256, False, 1), nsp.NetRow(16, 16, 256, 3, 3, 256, True, 1),
        nsp.NetRow(8, 8, 256, 3, 3, 512, False, 1), nsp.NetRow(8, 8, 512, 3, 3, 512, True, 1),
        nsp.NetRow(1, 1, 8192, 1, 1, 1024, False, 1), nsp.NetRow(1, 1, 1024, 1, 1, 10, False, 1)]
# NeuroSim V1.4 on VGG-8 (fidelity.OUR_RUN): clkPeriod and per-layer buffer / ic latency, ns.
RUN = {32: (1.75021, [108206, 40714.3, 9700.17, 13902.4, 2838.85, 4655.57, 460.306, 246.221],
            [22179.3, 29849.9, 24888.6, 22698.5, 8528.79, 15988.2, 182.678, 161.481]),
       64: (1.58316, [97876.4, 36257, 8649.01, 12450.2, 2544.3, 4186.83, 416.371, 222.72],
            [21438.9, 26981, 22508.8, 20527.7, 7713.95, 14461.4, 296.447, 277.455])}


def test_vgg8_floorplan_is_neurosims():
    # NeuroSim's "FloorPlan" printout: 1024 x 1024 conventional tiles of 512 x 512 PEs, 9 x 512 x 512
    # novel-mapped tiles; tiles per layer and speed-ups as listed there.
    fp = nsp.floorplan(VGG8, nsp.Params(row_parallel=32))
    assert (fp.tile_size_cm, fp.pe_size_cm, fp.pe_size_nm, fp.pe_nm) == (1024, 512, 512, 9)
    assert fp.novel == [False, True, True, True, True, True, False, False]
    assert fp.tiles_each == [2, 8, 4, 8, 8, 8, 64, 1] and fp.total_tiles == 103
    assert [int(r * c) for r, c in fp.speedup_rc] == [16, 16, 4, 4, 2, 1, 1, 8]
    assert (fp.tile_rows, fp.tile_cols) == (11, 10)


def test_layer1_cycles_by_hand():
    # VGG-8 conv1 (27 rows x 1024 columns, 900 input vectors x 8 bits) on 2 conventional tiles, speed-up 16.
    p = nsp.Params(row_parallel=32)
    out_bits = 4 + 2 + 8 + 7 + 1                      # numBitSubarrayOutput: log2 16 + log2(128/32) + 8 + 7 + 1
    assert p.subarray_output_bits == out_bits == 22
    vectors = 900 * 8
    # PE (ProcessingUnit.cpp): DFF input buffer 8 x 128, output (128 / 8) x (22 + log2 4); int division.
    pe_in = 27 * vectors // 1024                      # 189
    pe_out = 512 // 8 * 22 * vectors // 8 // (16 * 24)  # 3300
    pe = (pe_in + pe_out) / 16                        # the tile's PEs over the layer's speed-up
    # Tile (Tile.cpp): input buffer 2 cores of 32 bits, output buffer one core of (26 + 1) x 2 = 54 bits;
    # H-tree bus 2 x 512 bits.
    load_out, load_in = 27 * vectors, 128 * (1 + 26) * vectors / 8
    tile = load_out / 32 / min(2, 1024 / 32) + load_in / 54 / min(1, math.ceil(1024 / 54))
    htree = (load_out + load_in) / 1024
    # Chip (Chip.cpp): 1089-bit X-Y bus (139392 halved 7 times), 71 global cores of 128 x 128, reads of 128 bits.
    g_out, g_in = 27 * 8 * 900, 128 * 8 * 900
    glob = (g_out / 128 + g_in / 128) / min(71, math.ceil(1089 / 128))
    bus = math.ceil(g_out / 1089 * 11 / 2) + math.ceil(g_in / 1089 * 10 / 1)
    c = nsp.layer_cycles(VGG8, p)[0]
    assert c.buffer == pytest.approx(pe + tile + glob, rel=1e-12)
    assert c.interconnect == pytest.approx(htree + bus, rel=1e-12)
    assert (pe_in, pe_out, bus) == (189, 3300, 982 + 8463)


@pytest.mark.parametrize("parallel_read", [32, 64])
def test_vgg8_buffer_cycles_are_neurosims_every_layer(parallel_read):
    clock, buffer_ns, _ = RUN[parallel_read]
    cycles = nsp.layer_cycles(VGG8, nsp.Params(row_parallel=parallel_read))
    for c, ns in zip(cycles, buffer_ns):
        assert c.buffer == pytest.approx(ns / clock, rel=2e-5)


def test_vgg8_interconnect_cycles_are_neurosims_where_a_transfer_takes_one_cycle():
    # One cycle per transfer (nncc does not model the wire delay): NeuroSim's counts at parallel read 32
    # on the conventional-mapped layers (1, 7, 8). On the novel-mapped ones (2-6) its X-Y bus spans
    # tiles of 9 PEs and takes 2 cycles a transfer: there its figure is the H-tree plus twice the bus.
    clock, _, ic_ns = RUN[32]
    cycles = nsp.layer_cycles(VGG8, nsp.Params(row_parallel=32))
    for i, (c, ns) in enumerate(zip(cycles, ic_ns)):
        neurosim_cycles = ns / clock
        if i in (0, 6, 7):
            assert c.interconnect == pytest.approx(neurosim_cycles, rel=2e-5)
        else:
            assert c.interconnect < neurosim_cycles
            assert c.parts["tile_htree"] + 2 * c.parts["global_bus"] == pytest.approx(neurosim_cycles, rel=2e-5)


def _small_vgg():
    from test_reram_fidelity import small_vgg

    return small_vgg()


def test_mapping_as_neurosims_network_and_latency_composition():
    t = ReramTarget(neurosim())
    mapping = t.lower(_small_vgg())
    net = [n for _, n in nsp.network(mapping)]
    assert net == [nsp.NetRow(32, 32, 3, 3, 3, 4, True, 1), nsp.NetRow(16, 16, 4, 3, 3, 4, True, 1),
                   nsp.NetRow(8, 8, 4, 3, 3, 4, False, 1), nsp.NetRow(1, 1, 256, 1, 1, 10, False, 1)]
    report = t.estimate(mapping)
    cycles = nsp.layer_cycles(net, nsp.params(t.config))
    clock = report.extra_totals["neurosim_clock_s"]
    assert clock == pytest.approx(t.config.adc_conversion_s(4) * 1.4)
    rows = [r for r in report.layers if r.kind == "crossbar"]
    for r, c in zip(rows, cycles):
        assert r.buffer_s == pytest.approx(c.buffer * clock) and r.interconnect_s == pytest.approx(c.interconnect * clock)
        reads = -(-r.mvms // mapping.crossbar_layers[rows.index(r)].replicate)
        assert r.latency_s == pytest.approx(reads * 8 * r.cycle_s + r.buffer_s + r.interconnect_s)
    assert report.extra_totals["buffer_cycles"] == max(c.buffer for c in cycles)
    # Off: the sensing alone, as before.
    off = ReramTarget(dataclasses.replace(neurosim(), neurosim_periphery=False))
    plain = off.estimate(off.lower(_small_vgg()))
    assert [r.latency_s for r in plain.layers if r.kind == "crossbar"] == pytest.approx(
        [r.latency_s - r.buffer_s - r.interconnect_s for r in rows])
    assert "buffer_cycles" not in plain.extra_totals


def test_isaac_profile_reports_nothing_new():
    t = ReramTarget(ReramConfig())
    report = t.estimate(t.lower(_small_vgg()))
    row = row_json(next(r for r in report.layers if r.kind == "crossbar"))
    assert "buffer_s" not in row and "interconnect_s" not in row
    assert not any(k.startswith(("neurosim", "buffer_", "interconnect_", "sensing_")) for k in report.extra_totals)


def test_every_row_group_is_sensed_as_neurosims_subarray():
    # conv0 of the small VGG has 27 rows: one 32-row group. NeuroSim's sub-array senses all
    # ceil(128 / 32) = 4 groups per column (SubArray.cpp numAdd); without the flag nncc senses 1.
    model = _small_vgg()
    on = ReramTarget(neurosim())
    off = ReramTarget(dataclasses.replace(neurosim(), sense_all_row_groups=False))
    conv = [next(r for r in t.estimate(t.lower(model)).layers if r.name == "conv0") for t in (on, off)]
    assert conv[0].cycle_s == pytest.approx(4 * conv[1].cycle_s)
    t_sense = neurosim().adc_conversion_s(4)
    assert conv[0].cycle_s == pytest.approx(4 * 8 * 1.4 * t_sense)


# A second network, run through NeuroSim V1.4 the same way (random traces of the right shapes:
# the cycle counts do not depend on the data): 16x16x3 conv -> pool -> two 8x8 convs -> pool -> FC.
# NeuroSim chose 512 x 512 conventional tiles of 256 x 256 PEs here (the branch where a layer's
# speed-up covers every PE of the tile), 9 x 512 x 512 novel-mapped tiles, 1/1/1/2 tiles.
SMALL = [nsp.NetRow(16, 16, 3, 3, 3, 32, True, 1), nsp.NetRow(8, 8, 32, 3, 3, 64, False, 1),
         nsp.NetRow(8, 8, 64, 3, 3, 64, True, 1), nsp.NetRow(1, 1, 1024, 1, 1, 10, False, 1)]
SMALL_RUN = {32: (1.75021, [7203.22, 1300.85, 1567.32, 178.194], [852.244, 148.768, 271.283, 32.3584]),
             128: (1.52153, [6261.66, 1239.67, 1471.32, 154.911], [703.612, 127.808, 234.315, 28.071])}


@pytest.mark.parametrize("parallel_read", [32, 128])
def test_a_second_network_matches_neurosims_cycles(parallel_read):
    p = nsp.Params(row_parallel=parallel_read)
    fp = nsp.floorplan(SMALL, p)
    assert (fp.tile_size_cm, fp.pe_size_cm, fp.pe_size_nm, fp.pe_nm, fp.tiles_each) == (512, 256, 512, 9, [1, 1, 1, 2])
    assert [int(r * c) for r, c in fp.speedup_rc] == [8, 4, 4, 4]
    clock, buffer_ns, ic_ns = SMALL_RUN[parallel_read]
    for c, b, ic in zip(nsp.layer_cycles(SMALL, p, fp), buffer_ns, ic_ns):
        assert c.buffer == pytest.approx(b / clock, rel=1e-5)
        assert c.interconnect == pytest.approx(ic / clock, rel=1e-5)
