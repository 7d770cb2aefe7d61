"""The hypar target: communication amounts and the chosen partition by hand, the DP against
brute force, ternary gradients, scaling, the DAG edges, the artifact, the fit (an analysis) and the zoo."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nncc import models
from nncc.backends.hypar import HyparConfig, HyparTarget, fit
from nncc.backends.hypar.graph import LayerSpec
from nncc.backends.hypar.mapping import plan_all, precision
from nncc.backends.hypar.partition import (
    DP,
    MP,
    Level,
    Precision,
    brute_force,
    dynamic_programming,
    hierarchical,
    total,
)
from nncc.cli import main
from nncc.driver import CompileOptions, compile_model
from nncc.loading import load_model
from onnx import TensorProto, helper, numpy_helper


def _save(tmp_path, nodes, x_shape, y_shape, inits, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(a, dtype=np.float32), n) for n, a in inits.items()])
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _mlp(tmp_path):
    """x[1,1000] -> Gemm 1000->1000 -> Relu -> Gemm 1000->10."""
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(size=(1000, 1000)) * 0.01, "w2": rng.normal(size=(10, 1000)) * 0.01}
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2"], ["y"], name="fc2", transB=1)]
    return _save(tmp_path, nodes, [1, 1000], [1, 10], inits)


def _compile(path, **sets):
    target = HyparTarget.configure(sets={k: str(v) for k, v in sets.items()})
    return compile_model(path, target, [], CompileOptions(verify_samples=0))


def test_mlp_by_hand(tmp_path):
    # B = 16, fp32. fc1: dW = 1e6, F_out = 16*1000, F_in = E_in = 16*1000; fc2: dW = 1e4, F_out = 160, F_in = 16000.
    # dp,dp = 4*(1e6 + 1e4); dp,mp = 4*(1e6 + 160 + 0.25*32000); mp,dp = 4*(16000 + 1e4 + 0.5*16000);
    # mp,mp = 4*(16000 + 160 + 0.5*16000) = 96,640 bytes: the cheapest.
    result = _compile(_mlp(tmp_path), accelerators=2, batch=16)
    plan = result.mapping.plans["hypar"]
    assert [p.assignment for p in plan] == [[MP, MP]]
    assert plan[0].amounts[0] == {"dW": 1e6, "F_out": 16000, "F_in": 16000, "E_in": 16000}
    assert plan[0].intra_bytes == [4 * 16000, 4 * 160]
    assert plan[0].transition_bytes == [0.0, 4 * 0.5 * 16000]
    assert plan[0].bytes == 96640
    assert result.mapping.plans["dp"][0].bytes == 4 * (1e6 + 1e4)
    totals = result.report["totals"]
    assert totals["comm_bytes"] == 96640 and totals["dp_comm_bytes"] == 4_040_000
    assert totals["gain_perf_vs_dp"] > 1 and totals["gain_energy_vs_dp"] > 1
    # Level 2 (4 accelerators): after mp, fc1's dW and F_in halve, F_out does not:
    # mp,mp = 4*(16000 + 160 + 0.5*8000) = 80,640 < mp,dp = 4*(16000 + 5000 + 4000) = 100,000.
    plan = _compile(_mlp(tmp_path), accelerators=4, batch=16).mapping.plans["hypar"]
    assert plan[1].assignment == [MP, MP] and plan[1].amounts[0]["dW"] == 5e5 and plan[1].bytes == 80640


def test_conv_chain_by_hand(conv_bn_path):
    # B = 256: conv1 dW = 3*8*9 = 216 vs F_out = 256*8*36; fc1 dW = 288*5 = 1440 vs F_out = 1280 but entering mp
    # costs 0.25*(F_in + E_in) = 0.25*2*256*288: all dp, 4*(216 + 1440) = 6,624 bytes per level.
    c = HyparConfig()
    result = compile_model(conv_bn_path, HyparTarget(), [], CompileOptions(verify_samples=0))
    plans = result.mapping.plans["hypar"]
    assert [p.assignment for p in plans] == [[DP, DP]] * 4
    assert [p.bytes for p in plans] == [6624.0] * 4
    # htree (the paper's H tree): level h has 2^h group pairs, each on one link of link_bytes_per_s / 2^h.
    assert result.report["totals"]["comm_s"] == pytest.approx(6624 * (1 + 2 + 4 + 8) / c.link_bytes_per_s)
    assert [lvl["link_bytes_per_s"] for lvl in result.report["totals"]["levels"]] == [c.link_bytes_per_s / 2**h for h in range(4)]
    assert result.report["totals"]["comm_bytes"] == 6624 * (1 + 2 + 4 + 8)
    # compute: 3 passes x 256 samples x MACs on 16 accelerators.
    conv = next(r for r in result.cost.layers if r.name == "conv1")
    macs = 8 * 36 * 27
    assert conv.compute_s == pytest.approx(3 * 256 * macs / 16 / c.macs_per_s)
    assert conv.choices == "dp/dp/dp/dp"
    relu = next(r for r in result.cost.layers if r.name == "relu1")
    assert relu.latency_s == pytest.approx(2 * 256 * 288 / 16 / c.elementwise_per_s) and relu.folded_into == "conv1"
    assert result.cost.energy_j == pytest.approx(result.report["totals"]["energy_j"])


def test_uniform_topology_gives_every_pair_a_full_rate_link(conv_bn_path):
    c = HyparConfig()
    result = compile_model(conv_bn_path, HyparTarget.configure(sets={"topology": "uniform"}), [], CompileOptions(verify_samples=0))
    # level h: 2^h pairs in parallel, each on its own full-rate link: 4 levels x one level's bytes.
    assert result.report["totals"]["comm_s"] == pytest.approx(4 * 6624 / c.link_bytes_per_s)
    assert result.report["totals"]["comm_bytes"] == 6624 * (1 + 2 + 4 + 8)


def test_htree_time_grows_with_the_array_as_the_papers_fig11():
    # The paper's Fig. 11 (VGG-E): data parallelism's speedup over one accelerator falls from ~4.4x at 8
    # accelerators to 1.2x at 64 as its traffic grows with N. In the H tree each level's links share one
    # link's bandwidth, so dp's communication time grows ~N and its speedup peaks and falls; with a
    # full-rate link per pair ('uniform') it grows only with log2 N and the speedup never falls.
    from nncc.backends.hypar.cost import summary
    specs = fit.paper_networks()["vgg_e"]
    edges = fit.chain_edges(specs)

    def speedups(topology):
        base = dataclasses.replace(HyparConfig(), topology=topology, accelerators=1)
        one = summary(specs, [], base)["latency_s"]
        out = []
        for n in (2, 4, 8, 16, 32, 64):
            config = dataclasses.replace(base, accelerators=n)
            out.append(one / summary(specs, plan_all(specs, edges, config)["dp"], config)["latency_s"])
        return out

    htree, uniform = speedups("htree"), speedups("uniform")
    assert htree[-1] < max(htree) and htree[-1] < htree[-2]
    assert all(a < b for a, b in itertools.pairwise(uniform))


def test_compute_energy_follows_the_layer_width():
    # Horowitz (45 nm): a MAC costs 4.6 pJ in fp32, 1.5 pJ in fp16, 0.23 pJ in int8; element-wise ops 0.9, 0.4, 0.03.
    c = HyparConfig()
    assert [c.mac_pj(b) for b in (32, 16, 8, 4)] == [4.6, 1.5, 0.23, 0.23]
    assert [c.elementwise_pj(b) for b in (32, 16, 8)] == [0.9, 0.4, 0.03]
    from nncc.backends.hypar.cost import compute_cost
    t32, e32 = compute_cost(1e6, c)
    t16, e16 = compute_cost(1e6, c, bits=16)
    _, e16_cfg = compute_cost(1e6, dataclasses.replace(c, data_bits=16))
    assert t16 == t32 and e16 == pytest.approx(e32 * 1.5 / 4.6) and e16_cfg == e16


def test_float16_model_costs_fp16_macs(tmp_path):
    # The same MLP in float16: same MACs and time, Horowitz's fp16 MAC energy instead of fp32's.
    rng = np.random.default_rng(0)
    w1, w2 = (rng.normal(size=(1000, 1000)) * 0.01).astype(np.float16), (rng.normal(size=(10, 1000)) * 0.01).astype(np.float16)
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2"], ["y"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 1000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 10])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    path = tmp_path / "mlp16.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    half, full = _compile(path, accelerators=2, batch=16), _compile(_mlp(tmp_path), accelerators=2, batch=16)
    fc1h = next(r for r in half.cost.layers if r.name == "fc1")
    fc1f = next(r for r in full.cost.layers if r.name == "fc1")
    assert fc1h.compute_s == pytest.approx(fc1f.compute_s)
    c = HyparConfig()
    compute_j = fc1h.energy_j - fc1h.comm_energy_j
    assert compute_j == pytest.approx(3 * 16 * 1e6 * c.pj_per_mac_fp16 * 1e-12)


def test_pairwise_topology_spreads_a_level_over_mirror_links(conv_bn_path):
    c = HyparConfig()
    result = compile_model(conv_bn_path, HyparTarget.configure(sets={"topology": "pairwise"}), [], CompileOptions(verify_samples=0))
    # level h: 2^h pairs, each pair's 6,624 bytes over 16 / 2^(h+1) mirror links (8, 4, 2, 1).
    expected = sum(6624 / (c.link_bytes_per_s * k) for k in (8, 4, 2, 1))
    assert result.report["totals"]["comm_s"] == pytest.approx(expected)
    assert [lvl["links"] for lvl in result.report["totals"]["levels"]] == [8, 8, 8, 8]


def test_ternary_gradients(conv_bn_path):
    fp32 = compile_model(conv_bn_path, HyparTarget(), [], CompileOptions(verify_samples=0))
    tern = compile_model(conv_bn_path, HyparTarget.configure(sets={"gradient": "ternary"}), [], CompileOptions(verify_samples=0))
    # dp exchanges 2 bits per gradient element + one fp32 scale per tensor: (216 + 1440) / 4 + 2 * 4 bytes.
    assert [p.bytes for p in tern.mapping.plans["hypar"]] == [1656 / 4 + 8] * 4
    assert tern.report["totals"]["comm_bytes"] < fp32.report["totals"]["comm_bytes"]


def _spec(i, w, out, inp, cin, macs=1.0):
    return LayerSpec(f"l{i}", "Gemm", macs, float(inp), float(out), float(w), cin)


sizes = st.integers(1, 10**6)
chains = st.lists(st.tuples(sizes, sizes, sizes, st.integers(1, 512)), min_size=1, max_size=9)


@settings(max_examples=60, deadline=None)
@given(chains, st.integers(1, 512), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=9, max_size=9),
       st.sampled_from(["fp32", "ternary"]))
def test_dp_equals_brute_force_on_chains(layers, batch, splits, gradient):
    specs = [_spec(i, *t) for i, t in enumerate(layers)]
    p = precision(dataclasses.replace(HyparConfig(), gradient=gradient))
    level = Level(specs, batch, splits[: len(specs)], p, {(i, i + 1) for i in range(len(specs) - 1)})
    assert total(level, dynamic_programming(level)) == pytest.approx(total(level, brute_force(level)), rel=1e-12)


@pytest.mark.parametrize("name", ["lenet_c", "cifar_c", "alexnet"])
def test_dp_equals_brute_force_on_paper_networks(name):
    specs = fit.paper_networks()[name]
    edges = fit.chain_edges(specs)
    for plan in hierarchical(specs, edges, 256, 4, Precision()):
        splits = _splits_before(specs, edges, plan.level)
        level = Level(specs, 256, splits, Precision(), edges)
        assert plan.bytes == pytest.approx(total(level, brute_force(level)))


def _splits_before(specs, edges, h):
    splits = [(0, 0)] * len(specs)
    for plan in hierarchical(specs, edges, 256, h, Precision()):
        splits = [(d + (s == DP), m + (s == MP)) for (d, m), s in zip(splits, plan.assignment)]
    return splits


def test_dp_equals_brute_force_on_zoo_lenet5_and_convnet(tmp_path):
    for name in ("lenet5", "convnet"):
        path = models.export(name, tmp_path / f"{name}.onnx")
        mapping = HyparTarget().lower(load_model(path))
        specs = mapping.graph.specs
        index = {s.name: i for i, s in enumerate(specs)}
        edges = {(index[u], index[v]) for u, v in mapping.graph.dag.edges}
        assert edges == fit.chain_edges(specs), "a chain"
        splits = [(0, 0)] * len(specs)
        for plan in mapping.plans["hypar"]:
            level = Level(specs, 256, splits, Precision(), edges)
            assert plan.bytes == pytest.approx(total(level, brute_force(level)))
            splits = [(d + (s == DP), m + (s == MP)) for (d, m), s in zip(splits, plan.assignment)]


@settings(max_examples=40, deadline=None)
@given(chains, st.integers(16, 512))
def test_ternary_never_more_comm_and_more_accelerators_never_more_compute(layers, batch):
    specs = [_spec(i, *t) for i, t in enumerate(layers)]
    edges = fit.chain_edges(specs)
    base = dataclasses.replace(HyparConfig(), batch=batch)
    for n in (2, 4, 16):
        config = dataclasses.replace(base, accelerators=n)
        fp = plan_all(specs, edges, config)
        tern = plan_all(specs, edges, dataclasses.replace(config, gradient="ternary"))
        for name in ("hypar", "dp", "mp"):
            assert tern[name][0].bytes <= fp[name][0].bytes  # the first split sees the same amounts
        assert sum(p.bytes for p in tern["dp"]) <= sum(p.bytes for p in fp["dp"])
    from nncc.backends.hypar.cost import summary
    compute = [summary(specs, [], dataclasses.replace(base, accelerators=n))["compute_s"] for n in (1, 2, 4, 8, 16, 64)]
    assert all(a >= b for a, b in itertools.pairwise(compute))


def test_hypar_never_worse_than_dp_or_mp_at_the_first_level():
    for specs in fit.paper_networks().values():
        plans = plan_all(specs, fit.chain_edges(specs), HyparConfig())
        assert plans["hypar"][0].bytes <= min(plans["dp"][0].bytes, plans["mp"][0].bytes)


def test_residual_skip_edge_is_charged(tmp_path):
    """a -> relu -> b -> Add(relu) -> c: chain a, b, c with the shortcut a -> c outside the DP, charged in the plan."""
    rng = np.random.default_rng(1)
    inits = {n: rng.normal(size=(4, 4, 3, 3)) * 0.1 for n in ("wa", "wb", "wc")}
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="a", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"], name="ra"),
             helper.make_node("Conv", ["ra", "wb"], ["b"], name="b", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", "ra"], ["s"], name="add"),
             helper.make_node("Conv", ["s", "wc"], ["y"], name="c", pads=[1, 1, 1, 1])]
    result = _compile(_save(tmp_path, nodes, [1, 4, 8, 8], [1, 4, 8, 8], inits), batch=2, accelerators=2)
    g = result.mapping.graph
    assert g.skip_edges == {("a", "c")} and g.chain_edges == {("a", "b"), ("b", "c")}
    assert g.folded["add"] == "b" and g.folded["ra"] == "a"
    plan = result.mapping.plans["mp"][0]  # a, b, c all mp: c's input error enters twice (from b and from a)
    assert plan.transition_bytes[2] == 2 * 0.5 * 2 * 4 * 64 * 4
    assert result.report["totals"]["skip_edges"] == 1
    plans = result.mapping.plans  # the skip edge, unseen by the DP, never makes HyPar worse than a uniform plan
    assert plans["hypar"][0].bytes <= min(plans["dp"][0].bytes, plans["mp"][0].bytes)


def test_weights_come_from_the_layer_view_and_integer_ops_are_split_at_their_width(tmp_path):
    # W @ X (weight first): mp splits the reduction K = 8. MatMulInteger (a pre-quantized model's op)
    # is split like MatMul, its maps at its integer width (8 bits).
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("MatMul", ["w", "x"], ["wx"], name="wx"),
             helper.make_node("QuantizeLinear", ["wx", "s", "z"], ["q"], name="quant"),
             helper.make_node("MatMulInteger", ["q", "wq"], ["acc"], name="mmi"),
             helper.make_node("Cast", ["acc"], ["y"], name="cast", to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2])],
                              [numpy_helper.from_array(rng.normal(size=(4, 8)).astype(np.float32), "w"),
                               numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                               numpy_helper.from_array(np.array(128, np.uint8), "z"),
                               numpy_helper.from_array(rng.integers(-5, 5, (3, 2)).astype(np.int8), "wq")])
    path = tmp_path / "mixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    result = _compile(path, accelerators=2, batch=4)
    spec, mmi = result.mapping.graph.specs
    assert (spec.name, spec.cin, spec.weight_elems, spec.in_elems, spec.data_bits) == ("wx", 8, 32.0, 24.0, 0)
    assert (mmi.name, mmi.cin, mmi.weight_elems, mmi.in_elems, mmi.data_bits) == ("mmi", 3, 6.0, 12.0, 8)
    assert result.cost.unsupported == []
    assert "mmi" in {r.name for r in result.cost.layers}


def test_cli_artifact_and_set(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(_mlp(tmp_path)), "-t", "hypar", "-o", str(out), "--set", "gradient=ternary",
                 "--set", "accelerators=8"]) == 0
    plan = json.loads((out / "partition_plan.json").read_text())
    assert plan["gradient"] == "ternary" and len(plan["hypar"]) == 3 and len(plan["dp"]) == 3
    assert plan["hypar"][0]["layers"][0]["choice"] in ("dp", "mp") and "amounts" in plan["hypar"][0]["layers"][0]
    report = json.loads((out / "report.json").read_text())
    assert next(row.get("choices") for row in report["layers"]).count("/") == 2
    assert main(["compile", str(_mlp(tmp_path)), "-t", "hypar", "-o", str(out), "--set", "accelerators=6"]) == 2
    assert "power of two" in capsys.readouterr().err
    # fc1's weights alone are 3 x 4 MB (weights, gradient, momentum) on each accelerator: over a 1 MB HMC.
    assert main(["compile", str(_mlp(tmp_path)), "-t", "hypar", "-o", str(out), "--set", f"hmc_bytes={2**20}"]) == 2
    err = capsys.readouterr().err
    assert "nncc: error: fc1:" in err and "hmc_bytes" in err and err.count("\n") == 1


def test_no_link_constant_is_fitted_and_the_fit_still_inverts_the_model():
    # The defaults are the HMC spec's link (16 lanes x 15 Gb/s), not the fit's; the fit, an analysis
    # now, still finds the link (or accelerator) at which the eight-network means equal the paper's.
    c = HyparConfig()
    assert c.link_bytes_per_s == 16 * 15e9 / 8
    assert all("fitted" not in f.metadata.get("source", "") for f in dataclasses.fields(c))
    fitted = fit.fit_constants()
    assert fitted["perf"] == pytest.approx(fit.PAPER_PERF, rel=1e-3)
    assert fitted["energy"] == pytest.approx(fit.PAPER_ENERGY, rel=1e-3)
    assert fitted["link_bytes_per_s"] < c.link_bytes_per_s / 4 and fitted["link_pj_per_bit"] > 5 * c.link_pj_per_bit
    gains = fit.network_gains(dataclasses.replace(c, link_bytes_per_s=fitted["link_bytes_per_s"],
                                                  link_pj_per_bit=fitted["link_pj_per_bit"]))
    assert fit.mean([g[0] for g in gains.values()]) == pytest.approx(fit.PAPER_PERF, rel=1e-3)
    # A faster accelerator is the same lever as a slower link: the ratio of the two is what counts.
    assert fitted["macs_per_s"] / c.macs_per_s == pytest.approx(c.link_bytes_per_s / fitted["link_bytes_per_s"], rel=0.02)


def test_paper_reference_is_the_eight_rebuilt_networks():
    # The abstract's 3.39x / 1.51x is over ten networks and includes the synthetic SFC's 23.48x / 10.27x;
    # over the eight rebuilt here the paper's Figs. 6-7 give 3.10x / 1.25x.
    assert sorted(fit.PAPER_GAINS) == sorted(fit.paper_networks())
    ten = {**fit.PAPER_GAINS, **fit.PAPER_GAINS_SYNTHETIC}
    assert fit.mean([g[0] for g in ten.values()]) == pytest.approx(fit.PAPER_PERF_10, abs=0.01)
    assert fit.mean([g[1] for g in ten.values()]) == pytest.approx(fit.PAPER_ENERGY_10, abs=0.01)
    assert fit.PAPER_PERF == pytest.approx(3.10, abs=0.01) and fit.PAPER_ENERGY == pytest.approx(1.25, abs=0.01)


def test_traffic_matches_the_papers_fig8():
    # Fig. 8, GB per step, both directions over all links. All-dp is 4 B x 2 directions x 15 pairs per
    # weight (data_bits was read off it); HyPar's plans (batch 256) check within 10%, except the paper's
    # AlexNet, whose 2.00 GB of dp traffic implies ~16.7 M weights, not the standard 62 M rebuilt here.
    got = fit.traffic_gb(HyparConfig())
    for name, (mp, dp, hy) in fit.FIG8.items():
        if name == "alexnet":
            assert got[name][0] == pytest.approx(mp, rel=0.01)  # its all-mp traffic does match
            continue
        assert got[name][1] == pytest.approx(dp, rel=0.01)
        assert got[name][2] == pytest.approx(hy, rel=0.10)
    # At batch 64 HyPar's VGG traffic falls 20-30% short: the batch of 256 is what Fig. 8 shows.
    small = fit.traffic_gb(dataclasses.replace(HyparConfig(), batch=64))
    assert all(small[n][2] < 0.85 * fit.FIG8[n][2] for n in ("vgg_a", "vgg_b", "vgg_c", "vgg_d"))


def test_leave_one_out_fits_seven_and_predicts_the_eight_network_mean():
    loo = fit.leave_one_out()
    assert sorted(loo) == sorted(fit.paper_networks())
    for held, r in loo.items():
        seven = {n: s for n, s in fit.paper_networks().items() if n != held}
        config = dataclasses.replace(HyparConfig(), link_bytes_per_s=r["link_bytes_per_s"],
                                     link_pj_per_bit=r["link_pj_per_bit"])
        # fitted on the seven: their mean is the paper's mean of the same seven (Figs. 6-7); then the
        # eighth is predicted and the eight-network mean compared with the paper's.
        paper_seven = fit.mean([fit.PAPER_GAINS[n][0] for n in seven])
        assert fit.mean([g[0] for g in fit.network_gains(config, seven).values()]) == pytest.approx(paper_seven, rel=1e-3)
        assert r["perf_error"] == pytest.approx(r["perf"] / fit.PAPER_PERF - 1)
    # leaving out AlexNet (the largest gain) lowers the fitted bandwidth: the rest need a slower link.
    assert loo["alexnet"]["link_bytes_per_s"] < fit.fit_constants()["link_bytes_per_s"] < loo["cifar_c"]["link_bytes_per_s"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [m.name for m in models.list_models()])
def test_zoo_compiles(name, tmp_path):
    path = models.export(name, tmp_path / f"{name}.onnx")
    result = compile_model(path, HyparTarget(), [], CompileOptions(verify_samples=0))
    totals = result.report["totals"]
    assert totals["latency_s"] > 0 and totals["energy_j"] > 0 and not result.cost.unsupported
    assert totals["gain_perf_vs_dp"] > 0 and totals["dp_latency_s"] > 0 and totals["mp_latency_s"] > 0
    assert len(totals["levels"]) == 4
