"""Esser et al.'s 5-core MNIST network (backends/truenorth/esser.py) and its placement."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from nncc.backends.truenorth import TrueNorthConfig, esser
from nncc.backends.truenorth.fidelity import esser_totals
from onnx import numpy_helper


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return esser.export(tmp_path_factory.mktemp("esser") / "esser.onnx")


def _gemm_weights(path):
    model = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [inits[n.input[1]] for n in model.graph.node if n.op_type == "Gemm"]


def test_four_overlapping_16x16_patches_cover_the_digit():
    offsets = esser.patch_offsets()
    assert offsets == [(0, 0), (0, 12), (12, 0), (12, 12)]
    reads = np.zeros((esser.IMAGE, esser.IMAGE), int)
    for r, c in offsets:
        reads[r:r + esser.PATCH, c:c + esser.PATCH] += 1
    assert reads.min() == 1 and reads.max() == 4            # every pixel read; the centre by all four
    assert esser.PATCH * esser.PATCH == TrueNorthConfig().axons_per_core  # one patch fills a core's axons


def test_seeded_weights_follow_the_axon_type_scheme(onnx_path):
    weights = _gemm_weights(onnx_path)
    assert [w.shape for w in weights] == [(64, 256)] * 4 + [(250, 256)]
    for w in weights:
        assert set(np.unique(w)) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
        assert abs(np.count_nonzero(w) / w.size - esser.DENSITY) < 0.03
    # fully connected, a core's axons fall into 4 types (identical weight columns), 64 axons each,
    # and each neuron gives the four types a permutation of the four weights
    full = esser._core_weights(np.random.default_rng(1), 256, 64, 1.0)
    columns, counts = np.unique(full, axis=1, return_counts=True)
    assert columns.shape[1] == 4 and set(counts) == {64}
    perms = set(itertools.permutations(esser.AXON_WEIGHTS))
    assert all(tuple(row) in perms for row in columns)


def test_nncc_places_the_network_on_five_cores_two_ticks_deep():
    t = esser_totals(ticks=1, copies=1)
    assert t["cores"] == t["cores_per_copy"] == esser.CORES_PER_COPY
    assert t["pipeline_depth_ticks"] == 2                    # one tick per core layer (pytruenorth reads at T + 2)
    assert t["throughput_fps"] == pytest.approx(1000.0)      # one tick per image at the 1 ms tick
    c = TrueNorthConfig()
    static = c.chip_power_w * 5 / c.cores_per_chip * c.tick_s
    assert t["static_energy_j"] == pytest.approx(static)
    assert t["energy_j"] == pytest.approx(t["static_energy_j"] + t["dynamic_energy_j"])


def test_events_are_the_spike_rate_times_the_connected_synapses(onnx_path):
    synapses = sum(int(np.count_nonzero(w)) for w in _gemm_weights(onnx_path))
    t = esser_totals(ticks=1, copies=1)
    assert t["synaptic_events"] == pytest.approx(TrueNorthConfig().spike_rate * synapses)


def test_64_copies_are_64_times_one_copy_on_one_chip():
    one, many = esser_totals(ticks=1, copies=1), esser_totals(ticks=1, copies=64)
    assert many["cores"] == 320 and many["chips"] == 1
    assert many["energy_j"] == pytest.approx(64 * one["energy_j"])
    assert many["throughput_fps"] == one["throughput_fps"]   # spatial copies run side by side


@pytest.mark.slow
def test_trained_network_spike_rate_is_the_recorded_one():
    """esser.SPIKE_RATE is what the trained network's one-tick deployment measures (about 2 minutes)."""
    from nncc.models import mnist

    x_train, y_train, x_test, y_test = mnist.mnist_split()
    params = esser.train(x_train, y_train)
    rng = np.random.default_rng(1)
    copies = [esser.sample(params, rng) for _ in range(64)]
    for n in (1, 64):
        run = esser.run(copies[:n], params["b"], x_test, rng)
        assert run["synapse_rate"] == pytest.approx(esser.SPIKE_RATE, abs=0.01)
        assert (run["votes"].argmax(1) == y_test).mean() > (0.75 if n == 1 else 0.9)
    assert all(0.45 < (w != 0).mean() < 0.55 for w in copies[0])
