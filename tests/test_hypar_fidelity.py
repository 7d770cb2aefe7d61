"""nncc's HyPar partition against the authors' partition code (linghaosong/AccPar), and the
hypar target's fidelity references.

The expected choices are what that code prints in its "HYPAR" table (0 = type I, data
parallel; 1 = type II, model parallel), run on its own networks/Alexnet.txt and Vgg11.txt:
as published for batch 512 and 7 levels, and with the batch and level count read from the
command line (its hard-coded 512 and 7 made arguments) for batch 256 and 4 levels, HyPar's
16 accelerators. The expected amounts are its per-level minimum com_cost_this_hierarchy, in
elements, printed by one added line. Recorded once; no network at test time.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from nncc.backends.hypar import HyparConfig, accpar, fit
from nncc.backends.hypar.fidelity import ACCPAR_TOTAL, REFERENCES
from nncc.backends.hypar.partition import DP, MP, Level, total
from nncc.fidelity import run

AUTHORS = {  # (network, batch, levels): (choices per level, elements per level)
    ("alexnet", 512, 7): (["00000111", "00000111", "00000111", "00000100", "00000111", "00001000", "00011111"],
                          [12908576, 10680352, 9566240, 8878112, 7426080, 6085664, 4490272]),
    ("vgg11", 512, 7): (["00000000111", "00000000111", "00000000111", "00000000100", "00000000111", "00000001100",
                         "00000011011"],
                        [22443712, 18183872, 16053952, 14857920, 13151936, 11697856, 8897216]),
    ("alexnet", 256, 4): (["00000111"] * 4, [8327200, 7213088, 6656032, 6377504]),
    ("vgg11", 256, 4): (["00000000111"] * 4, [15830720, 13700800, 12635840, 12103360]),
}


@pytest.mark.parametrize("key", sorted(AUTHORS), ids=lambda k: f"{k[0]}-b{k[1]}-h{k[2]}")
def test_per_level_choices_and_amounts_match_the_authors_code(key):
    name, batch, levels = key
    choices, amounts = AUTHORS[key]
    assert accpar.choices(name, batch, levels) == choices
    assert [p.bytes for p in accpar.plans(name, batch, levels)] == amounts  # exact: same integers, same sums


def test_the_authors_choices_are_not_the_only_plan_the_model_allows():
    # The check above could pass vacuously if every plan cost the same: at VGG-11's last level the
    # authors' plan is strictly cheaper than all-dp and than "the trick" (conv dp, fc mp) at that level.
    specs = accpar.networks()["vgg11"]
    plans = accpar.plans("vgg11")
    splits = [(0, 0)] * len(specs)
    for p in plans[:-1]:
        splits = [(d + (s == DP), m + (s == MP)) for (d, m), s in zip(splits, p.assignment)]
    level = Level(specs, accpar.BATCH, splits, accpar.ELEMENTS, {(i, i + 1) for i in range(len(specs) - 1)})
    trick = [DP] * 8 + [MP] * 3
    assert total(level, plans[-1].assignment) < min(total(level, [DP] * len(specs)), total(level, trick))


def test_accpar_layer_tables_are_the_code_files():
    nets = accpar.networks()
    alex, vgg = nets["alexnet"], nets["vgg11"]
    assert [s.name for s in alex] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3"]
    assert (alex[1].in_elems, alex[1].out_elems, alex[1].weight_elems) == (96 * 55 * 55, 256 * 27 * 27, 96 * 256 * 25)
    assert (vgg[8].cin, vgg[8].weight_elems) == (25088, 25088 * 4096) and len(vgg) == 11


def test_references_declared_and_none_fitted():
    assert len(REFERENCES) >= 3
    assert not any(r.fitted for r in REFERENCES)
    assert {r.reference for r in REFERENCES} >= {fit.PAPER_PERF, fit.PAPER_ENERGY, *ACCPAR_TOTAL.values()}
    assert all(r.target == "hypar" and r.source for r in REFERENCES)


def test_accpar_references_reproduce_exactly_and_sum_the_levels():
    for name, (choices, amounts) in ((k[0], v) for k, v in AUTHORS.items() if k[1:] == (512, 7)):
        assert ACCPAR_TOTAL[name] == sum(amounts)
    checks = [c for c in run(REFERENCES) if c.ref.simulator]
    assert len(checks) == 2 and all(c.value == c.ref.reference for c in checks)


def test_paper_gains_are_measured_with_the_spec_link_not_fitted():
    # What benchmarks/hypar.py reports: with the HMC-spec link in the paper's H tree the mean gains fall
    # short of the paper's on the same eight networks (3.10x, 1.25x). Pinned to four digits so a change
    # to the model or constants shows here.
    checks = {c.ref.reference: c for c in run(REFERENCES) if not c.ref.simulator}
    perf, energy = checks[fit.PAPER_PERF].value, checks[fit.PAPER_ENERGY].value
    assert perf == pytest.approx(1.7716, abs=1e-4) and energy == pytest.approx(1.0355, abs=1e-4)
    assert not checks[fit.PAPER_PERF].within_band  # 0.37x of the paper's excess gain: outside the 2x band
    # Fig. 8's HyPar traffic is reproduced within the band.
    traffic = [c for c in run(REFERENCES) if c.ref.unit == "GB"]
    assert len(traffic) == 3 and all(c.within_band and 0.9 < c.ratio < 1.1 for c in traffic)
    # Faster links (the next HMC generation's ~28-30 Gb/s lanes) only shrink the gain: communication is what HyPar saves.
    faster = fit.network_gains(dataclasses.replace(HyparConfig(), link_bytes_per_s=60e9))
    assert math.exp(sum(math.log(g[0]) for g in faster.values()) / len(faster)) < perf
