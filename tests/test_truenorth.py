"""The truenorth target: core counts by hand, packing, merges and splitters, copies, energy,
the fit limit, the core placement artifact, the zoo, and the spiking simulation on MNIST."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nncc import models, runtime
from nncc.backends.truenorth import TrueNorthConfig, TrueNorthTarget
from nncc.backends.truenorth import simulate
from nncc.backends.truenorth.mapping import AFFINE, POOLS, UNPLACEABLE, WEIGHTED, WIRING
from nncc.backends.truenorth.packing import merge_cores, pack_conv
from nncc.cli import main
from nncc.driver import CompileOptions, compile_model, write_outputs
from nncc.errors import NnccError
from nncc.loading import load_model
from nncc.models import mnist
from nncc.ops import DATA_OPS, ELEMENTWISE_OPS, NO_OPS, POOL_OPS, WEIGHTED_OPS


def _save(tmp_path, nodes, inputs, y_shape, inits, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _gemm(tmp_path, k, m, seed=0):
    rng = np.random.default_rng(seed)
    inits = {"w": rng.normal(size=(m, k)).astype(np.float32), "b": rng.normal(size=m).astype(np.float32)}
    return _save(tmp_path, [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)], [("x", [1, k])], [1, m], inits)


def _conv(tmp_path, c, m, k, hw, pads, name="m.onnx"):
    w = np.random.default_rng(0).normal(size=(m, c, k, k)).astype(np.float32)
    out = hw + 2 * pads - k + 1
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[pads] * 4)
    return _save(tmp_path, [node], [("x", [1, c, hw, hw])], [1, m, out, out], {"w": w}, name)


def _compile(path, **sets):
    return compile_model(path, TrueNorthTarget.configure(sets=sets), [], CompileOptions(verify_samples=1))


def _totals(result):
    return result.report["totals"]


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    return models.export("lenet5", tmp_path_factory.mktemp("lenet") / "lenet5.onnx")


# --- configuration --------------------------------------------------------------------------

def test_every_constant_names_a_source_and_bad_values_are_one_line_errors():
    config = TrueNorthConfig()
    for field in dataclasses.fields(config):
        assert field.metadata["source"]
    assert (config.axons_per_core, config.neurons_per_core, config.axon_types, config.cores_per_chip) == (256, 256, 4, 4096)
    for key, value in [("copy_mode", "diagonal"), ("ticks", "0"), ("weight_scheme", "binary"), ("spike_rate", "2")]:
        with pytest.raises(NnccError):
            TrueNorthTarget.configure(sets={key: value})


def test_config_ranges_are_declared_and_cross_field_rules_checked():
    fields = {f.name: f.metadata for f in dataclasses.fields(TrueNorthConfig)}
    assert (fields["spike_rate"]["minimum"], fields["spike_rate"]["maximum"]) == (0, 1)
    assert fields["weight_scheme"]["choices"] == ("neuron-levels", "sign-split")
    with pytest.raises(ValueError, match="initial_potential must be < 1"):
        TrueNorthConfig(initial_potential=1.0)
    with pytest.raises(ValueError, match="initial_potential must be >= 0"):
        TrueNorthConfig(initial_potential=-0.5)
    with pytest.raises(ValueError, match="a core must hold at least one input"):
        TrueNorthConfig(axons_per_core=1, weight_scheme="sign-split")


def test_op_sets_are_members_of_the_op_classes():
    assert WEIGHTED | UNPLACEABLE == WEIGHTED_OPS and not WEIGHTED & UNPLACEABLE
    assert POOLS <= POOL_OPS and AFFINE <= ELEMENTWISE_OPS
    assert NO_OPS <= WIRING and WIRING - NO_OPS <= DATA_OPS


def test_legalize_reuses_the_core_op_pass_with_the_core_size():
    fold, legal = TrueNorthTarget().legalize()
    assert fold.name == "fold-batchnorm"
    assert (legal.name, legal.crossbar, legal.fan_out, legal.weight_bits) == ("legalize-core-ops", 256, 256, 9)  # sign + 8 bits
    _, legal = TrueNorthTarget.configure(sets={"weight_scheme": "sign-split"}).legalize()
    assert legal.crossbar == 128  # every input on an excitatory and an inhibitory axon


# --- core counts by hand --------------------------------------------------------------------

def test_gemm_300_to_100_needs_two_cores_plus_two_merge_cores(tmp_path):
    path = _gemm(tmp_path, 300, 100)
    result = _compile(path)
    # ceil(300/256) * ceil(100/256) = 2 partial cores (each holds 100 +/- relay pairs = 200 neurons);
    # merge: every output reads 2 partials x 2 axons = 4 axons -> 64 outputs per core -> ceil(100/64) = 2.
    rows = {r.name: r for r in result.cost.layers}
    assert [rows["fc/core0_0"].cores, rows["fc/core0_1"].cores, rows["fc/reduce0"].merge_cores] == [1, 1, 2]
    assert _totals(result)["cores"] == 4 and _totals(result)["pipeline_depth_ticks"] == 2
    # Report columns: the cost row's declared fields; a node that packs nothing has no packing column.
    core = ["name", "op", "macs", "latency_s", "energy_j", "utilization", "kind", "layer", "cores", "crossbar_cores",
            "merge_cores", "splitter_cores", "neurons", "fan_in", "synapses", "spike_rate", "synaptic_events", "ticks",
            "stage_ticks", "dynamic_energy_j", "static_energy_j"]
    assert list(rows["fc/core0_0"].to_json()) == core + ["packing"]
    assert list(rows["fc/reduce0"].to_json()) == core and rows["fc/reduce0"].kind == "merge"
    assert _totals(result)["synaptic_events"] == pytest.approx(sum(r.synaptic_events for r in result.cost.layers))
    unlegalized = TrueNorthTarget().lower(load_model(path))
    assert (unlegalized.cores_per_copy, unlegalized.depth_ticks) == (4, 2)
    assert unlegalized.layers[0].cores == 2 and unlegalized.layers[0].merge_cores == 2


def test_gemm_fan_out_over_256_splits_neurons_without_merges(tmp_path):
    result = _compile(_gemm(tmp_path, 100, 300))
    assert _totals(result)["cores"] == 2 and _totals(result)["pipeline_depth_ticks"] == 1  # 256 + 44 neurons


def test_sign_split_halves_the_inputs_per_core(tmp_path):
    result = _compile(_gemm(tmp_path, 300, 100), weight_scheme="sign-split")
    # 3 chunks of <= 128 inputs, 1 core each; merge 3 pairs = 6 axons per output -> 42 per core -> 3 cores
    assert _totals(result)["cores"] == 3 + 3


def test_merge_tree_for_more_than_128_partials():
    assert merge_cores(100, 2, False, 256, 256) == (2, 1, 400)
    cores, ticks, _ = merge_cores(10, 200, False, 256, 256)
    # level 1: 2 groups (128 + 72 partials), one output pair per core: 2 x 10 cores; level 2: 2 partials, 64 per core.
    assert (cores, ticks) == (20 + 1, 2)


def test_conv_neurons_share_axons_within_a_tile(tmp_path):
    # 1 -> 6 channels 5x5 pad 2 on 28x28 (LeNet conv1): neurons 6*28*28 = 4704, fan-in 25.
    # A 6 x 7 tile of positions x 6 channels = 252 neurons reads a 10 x 11 window = 110 axons:
    # ceil(28/6) * ceil(28/7) = 20 cores (the bound ceil(4704/256) = 19 needs a 42-position tile
    # with 6 channels, which no tile shape fills).
    result = _compile(_conv(tmp_path, 1, 6, 5, 28, 2))
    row = result.cost.layers[0]
    assert row.cores == 20
    tile = row.packing["tiles"][0]
    assert sorted(tile["tile"]) == [6, 7] and tile["neurons_per_core"] == 252 and tile["axons_per_core"] == 110
    # 16 -> 32 channels 3x3 pad 1 on 8x8: 16 (t+2)^2 <= 256 axons allows a 2x2 tile (256 axons, 128 neurons): 16 cores.
    result = _compile(_conv(tmp_path, 16, 32, 3, 8, 1, "b.onnx"))
    assert result.cost.layers[0].cores == 16


@settings(max_examples=40, deadline=None)
@given(cg=st.integers(1, 32), mg=st.integers(1, 64), groups=st.integers(1, 4), k=st.integers(1, 5),
       out=st.integers(1, 20), stride=st.integers(1, 2), dup=st.integers(1, 2))
def test_packing_respects_the_core_and_covers_every_neuron(cg, mg, groups, k, out, stride, dup):
    pack = pack_conv(cg, mg, groups, (k, k), (stride, stride), (1, 1), (out, out), dup, 256, 256, 1)
    if cg * k * k > 256:
        assert pack is None
        return
    assert pack["axons_per_core"] <= 256 and pack["neurons_per_core"] <= 256
    neurons = groups * mg * out * out * dup
    assert pack["cores"] * pack["neurons_per_core"] >= neurons
    assert pack["cores"] >= math.ceil(neurons / 256)
    bigger = pack_conv(cg, mg, groups, (k, k), (stride, stride), (1, 1), (out, out), dup, 512, 512, 1)
    assert bigger["cores"] <= pack["cores"]  # a larger core never needs more cores


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 1200), m=st.integers(1, 700))
def test_a_larger_core_never_needs_more_cores(tmp_path_factory, k, m):
    path = _gemm(tmp_path_factory.mktemp("g"), k, m)
    model = load_model(path)
    small = TrueNorthTarget().lower(model).cores_per_copy
    big = TrueNorthTarget.configure(sets={"axons_per_core": 512, "neurons_per_core": 512}).lower(model).cores_per_copy
    assert big <= small
    assert small >= math.ceil(k / 256) * math.ceil(m / 256)


def test_on_chip_inputs_read_by_several_cores_cost_splitter_cores(lenet):
    result = _compile(lenet)
    rows = {r.name: r for r in result.cost.layers}
    assert rows["conv1"].splitter_cores == 0  # pixels are injected onto every axon from outside
    assert rows["conv2"].splitter_cores > 0  # pool1's spikes feed overlapping 5x5 windows
    assert rows["conv2"].packing["splitter_neurons"] > 6 * 14 * 14
    assert rows["pool1"].splitter_cores == 0 and rows["pool1"].packing["tile"]


def test_legalized_and_original_graphs_count_the_same_cores(lenet, tmp_path):
    for path in (lenet, _conv(tmp_path, 64, 300, 3, 8, 1)):
        legalized = _compile(path)
        plain = TrueNorthTarget().lower(load_model(path))
        assert legalized.mapping.cores_per_copy == plain.cores_per_copy
        assert legalized.mapping.depth_ticks == plain.depth_ticks


# --- copies, latency, energy ----------------------------------------------------------------

def test_copies_cost_cores_or_ticks_and_energy_follows_the_formula(tmp_path):
    path = _gemm(tmp_path, 300, 100)
    base = _totals(_compile(path, ticks=4))
    spatial = _totals(_compile(path, ticks=4, copies=8))
    temporal = _totals(_compile(path, ticks=4, copies=8, copy_mode="temporal"))
    assert spatial["cores"] == 8 * base["cores"] and spatial["latency_s"] == base["latency_s"]
    assert temporal["cores"] == base["cores"] and temporal["latency_ticks"] == 8 * 4 + 2
    assert base["latency_s"] == pytest.approx((4 + 2) * 1e-3)
    assert spatial["synaptic_events"] == pytest.approx(temporal["synaptic_events"]) == pytest.approx(8 * base["synaptic_events"])
    result = _compile(path, ticks=4)
    synapses = sum(r.synapses for r in result.cost.layers)
    nnz = sum(int(np.count_nonzero(n.inputs[1].const_value.numpy())) for n in result.model.graph if n.op_type == "Gemm")
    assert 0.99 * 300 * 100 < nnz <= 300 * 100  # weights the +-255 grid rounds to 0 get no synapse
    assert synapses == 2 * nnz + 100 * 2 * 2  # +/- relay pairs on every weight, merges: 2 axons per partial per output
    events = 0.15 * synapses * 4
    energy = events * 26e-12 + 0.065 * 4 / 4096 * 4e-3
    assert base["synaptic_events"] == pytest.approx(events) and base["energy_j"] == pytest.approx(energy)


def test_placement_artifact_lists_contiguous_core_ranges(lenet, tmp_path):
    result = _compile(lenet, copies=2)
    out = write_outputs(result, tmp_path / "out", ["json"])
    placement = json.loads((out / "core_placement.json").read_text())
    assert placement["total_cores"] == 2 * placement["cores_per_copy"] == _totals(result)["cores"]
    assert placement["copy_offsets"] == [0, placement["cores_per_copy"]]
    expected = 0
    for row in placement["layers"]:
        assert row["core_range"][0] == expected
        expected = row["core_range"][1] + 1
    assert expected == placement["cores_per_copy"]


# --- clear limits ---------------------------------------------------------------------------

def test_model_larger_than_the_chip_is_a_one_line_error_naming_layer_and_limit(capsys, lenet, tmp_path):
    code = main(["compile", str(lenet), "--target", "truenorth", "-o", str(tmp_path / "o"), "--set", "cores_per_chip=50"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("nncc: error: truenorth: does not fit: layer '")
    assert "1 chip(s) x 50 cores = 50" in err and "set max_chips=2" in err
    assert _totals(_compile(lenet, cores_per_chip=50, max_chips=2))["chips"] == 2


def test_weights_computed_at_run_time_cannot_be_placed(tmp_path):
    path = _save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="attention")], [("x", [1, 4]), ("w", [4, 3])], [1, 3], {})
    with pytest.raises(NnccError, match="layer 'attention' .*cannot be placed.*not a constant"):
        _compile(path)


def test_ops_without_a_neuron_model_refuse_or_go_to_the_host(tmp_path):
    w = np.ones((3, 4), np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1), helper.make_node("Sigmoid", ["h"], ["y"], name="sig")]
    path = _save(tmp_path, nodes, [("x", [1, 4])], [1, 3], {"w": w})
    with pytest.raises(NnccError, match=r"layer 'sig' \(Sigmoid\) has no form on TrueNorth cores: .*1 such node\(s\) \(Sigmoid\)"):
        _compile(path)
    result = _compile(path, host_fallback="true")
    assert [(u["name"], u["op"]) for u in result.report["unsupported"]] == [("sig", "Sigmoid")]
    assert result.report["passes"][1]["stats"]["unsupported_activations"] == {"Sigmoid": ["sig"]}
    assert _totals(result)["cores"] == 1


def test_zoo_small_models_fit_or_fail_with_the_limit_message(tmp_path):
    lenet = _compile(models.export("lenet5", tmp_path / "lenet5.onnx"))
    assert _totals(lenet)["cores"] == 92 and _totals(lenet)["chips"] == 1
    assert _totals(_compile(models.export("convnet", tmp_path / "convnet.onnx")))["chips"] == 1
    with pytest.raises(NnccError, match=r"does not fit: layer 'frame\d.conv' needs .* \(set max_chips=\d+\)"):
        _compile(models.export("tdnn", tmp_path / "tdnn.onnx"))
    with pytest.raises(NnccError, match="cannot be placed"):
        _compile(models.export("bert_tiny", tmp_path / "bert.onnx"))


@pytest.mark.slow
@pytest.mark.parametrize("name", [e.name for e in models.list_models()])
def test_every_zoo_model_compiles_or_fails_with_a_clear_limit(tmp_path, name):
    path = models.export(name, tmp_path / f"{name}.onnx")
    try:
        result = _compile(path)
    except NnccError as e:
        assert "does not fit" in e.what or "cannot be placed" in e.what, e.what
        assert "\n" not in str(e)
        return
    assert _totals(result)["cores"] <= 4096


@pytest.mark.slow
def test_vgg16_needs_hundreds_of_chips(tmp_path):
    path = models.export("vgg16", tmp_path / "vgg16.onnx")
    with pytest.raises(NnccError, match=r"layer 'features.conv1_1' needs 12,544 cores .*\(set max_chips=(\d+)\)") as info:
        _compile(path)
    chips = int(info.value.what.rsplit("=", 1)[1].rstrip(")"))
    assert _totals(_compile(path, max_chips=chips))["chips"] == chips


# --- spiking simulation ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_net(lenet):
    x_tr, _, x_te, y_te = mnist.mnist_split()
    layers = simulate.build(load_model(lenet), TrueNorthConfig())
    simulate.calibrate(layers, x_tr[:500])
    return layers, x_te[:500], y_te[:500]


def test_analog_network_matches_the_legalized_onnx_model(lenet):
    """The simulation's weights are legalize-core-ops' weights (same plan, same +-255 grid)."""
    x_te = mnist.mnist_split()[2][:50]
    layers = simulate.build(load_model(lenet), TrueNorthConfig(), levels=False)
    got, _ = simulate.analog(layers, x_te.astype(np.float64))
    compiled = _compile(lenet).model
    sess = runtime.session(compiled)
    ref = np.concatenate([sess.run(None, {"input": x[None]})[0] for x in x_te])
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_four_levels_per_neuron_and_integer_neuron_parameters(mnist_net):
    layers, _, _ = mnist_net
    for layer in layers:
        if layer.q is None:
            continue
        rows = layer.q.reshape(len(layer.q), -1)
        assert max(len(np.unique(r[r != 0])) for r in rows) <= 4
        assert np.all(np.abs(rows) <= 255) and np.all(rows == np.round(rows))
        assert np.all(layer.threshold >= 1) and np.all(np.abs(layer.leak) <= 255)


def test_more_copies_never_lower_accuracy_and_help_at_one_tick(mnist_net):
    layers, x, y = mnist_net
    one_tick = simulate.run(layers, x, ticks=1, copies=8)
    accuracy = [one_tick.accuracy(y, k) for k in (1, 2, 4, 8)]
    assert all(b >= a - 0.005 for a, b in zip(accuracy, accuracy[1:])), accuracy
    assert accuracy[-1] >= accuracy[0] + 0.10, accuracy  # copy averaging recovers what one tick loses
    default = simulate.run(layers, x, ticks=TrueNorthConfig().ticks, copies=2)
    assert default.accuracy(y, 1) >= 0.94 and default.accuracy(y, 2) >= default.accuracy(y, 1) - 0.005
    assert 0.02 < one_tick.input_rates["conv2"] < 0.5


def test_same_seed_same_spikes(mnist_net):
    layers, x, y = mnist_net
    a = simulate.run(layers, x[:20], ticks=2, copies=1, seed=3)
    b = simulate.run(layers, x[:20], ticks=2, copies=1, seed=3)
    assert np.array_equal(a.counts, b.counts)


@pytest.mark.slow
def test_mnist_figures_against_copies_on_all_test_digits():
    from nncc.backends.truenorth import benchmark

    m = benchmark.measure(1000)
    rows = {(r["ticks"], r["copies"]): r for r in m["rows"]}
    assert m["float_accuracy"] == pytest.approx(0.981) and m["legalized_accuracy"] >= 0.975
    for ticks, copies in benchmark.SWEEPS.items():
        accuracy = [rows[(ticks, k)]["accuracy"] for k in copies]
        assert all(b >= a - 0.005 for a, b in zip(accuracy, accuracy[1:])), (ticks, accuracy)
    assert rows[(1, 64)]["accuracy"] >= rows[(1, 1)]["accuracy"] + 0.15
    assert rows[(4, 1)]["accuracy"] >= 0.95
    assert rows[(1, 64)]["cores"] == 64 * m["cores_per_copy"] and rows[(1, 64)]["chips"] == 2


@settings(max_examples=60, deadline=None)
@given(out=st.lists(st.integers(1, 60), min_size=1, max_size=2), max_pos=st.integers(1, 300), base=st.integers(1, 40),
       k=st.integers(1, 5), stride=st.integers(1, 3), dil=st.integers(1, 2), axons=st.sampled_from([64, 256, 512]))
def test_tile_search_bisects_to_the_first_fit_counting_down(out, max_pos, base, k, stride, dil, axons):
    """The last axis' tile is found by bisection (a tile's axons never shrink as it grows): the
    tiles are those of counting down from the largest until one fits."""
    from nncc.backends.truenorth import packing

    nd = len(out)
    kernel, strides, dilations = (k,) * nd, (stride,) * nd, (dil,) * nd

    def axons_of(tile):
        return base * math.prod(packing.span(t, k, stride, dil) for t in tile)

    def counting_down(prefix):
        i = len(prefix)
        room = max_pos // max(1, math.prod(prefix))
        if i == nd - 1:
            for t in range(min(out[i], room), 0, -1):
                if axons_of(prefix + (t,)) <= axons:
                    return [prefix + (t,)]
            return []
        found = []
        for t in range(1, min(out[i], room) + 1):
            if axons_of(prefix + (t,) + (1,) * (nd - i - 1)) > axons:
                break
            found += counting_down(prefix + (t,))
        return found

    assert list(packing._tiles(tuple(out), max_pos, base, axons, kernel, strides, dilations)) == counting_down(())
