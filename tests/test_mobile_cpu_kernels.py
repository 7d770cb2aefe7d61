"""The host profile's per-kernel latency model (nn-Meter style): kernel detection against
onnxruntime's optimized graph, the per-kernel fits on held-out kernels, and the profile's
round trip through its TOML."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from nncc import models
from nncc.loading import load_model
from nncc.backends.mobile_cpu import (
    MobileCpuTarget,
    calibrate,
    kernel_bench,
    kernel_fit,
    kernels,
    ort_kernel_names,
    synthetic_graphs,
)
from nncc.backends.mobile_cpu import config as hwconfig
from onnx import TensorProto


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCC_CACHE_DIR", str(tmp_path / "cache"))


def _host_config(**changes) -> hwconfig.MobileCpuConfig:
    """The host's layout facts (SIMD width, AVX2: onnxruntime's NCHWc block) without measuring."""
    facts = calibrate._cpu_facts()
    return dataclasses.replace(hwconfig.MobileCpuConfig(), simd_bits=facts["simd_bits"], fma_units=facts["fma_units"],
                               fuse_residual_add=facts["avx2"], **changes)


def _small_net() -> onnx.ModelProto:
    """Conv+BN+Relu, depthwise+Clip, pointwise + residual Add + Relu, grouped conv + PRelu,
    MaxPool, a BatchNormalization after a Relu, GlobalAveragePool, Flatten, Gemm+Relu."""
    b = synthetic_graphs.Builder(np.random.default_rng(0))
    x = b.node("Relu", [b.bn(b.conv("x", 3, 32, 3, 2, 1), 32)])
    x = b.node("Clip", [b.conv(x, 32, 32, 3, 1, 32), b.const(np.array(0.0)), b.const(np.array(6.0))])
    x = b.node("Relu", [b.node("Add", [b.conv(x, 32, 32, 1, 1, 1), x])])
    x = b.node("PRelu", [b.conv(x, 32, 64, 3, 1, 8), b.const(np.full((64, 1, 1), 0.1))])
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.bn(b.node("Relu", [b.conv(x, 64, 64, 3, 1, 1)]), 64)
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])])
    x = b.node("Relu", [b.node("Gemm", [x, b.const(np.ones((10, 64)) * 0.01), b.const(np.zeros(10))], transB=1)])
    return b.model([1, 3, 32, 32], x)


def _optimized(model: onnx.ModelProto, tmp_path) -> onnx.ModelProto:
    path = tmp_path / "optimized.onnx"
    kernel_bench._session(model, str(path), None)
    return onnx.load(path)


def _assert_detected_as_onnxruntime_runs(model: onnx.ModelProto, tmp_path, loaded: ir.Model | None = None) -> list[kernels.Kernel]:
    """Detection finds exactly the kernels of onnxruntime's optimized graph, each by name."""
    config = _host_config()
    lowered = MobileCpuTarget(config).lower(loaded or ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(model)))
    detected = kernels.detect(lowered, config)
    ort = ort_kernel_names.ort_kernels(_optimized(model, tmp_path))
    ort_names = {name for name, _ in ort}
    assert len(detected) == len(ort), (sorted(k.name for k in detected), sorted(ort_names))
    for k in detected:
        assert {k.name, k.out, *k.aliases} & ort_names, (k, sorted(ort_names))
    return detected


def test_detected_kernels_are_the_kernels_onnxruntime_runs(tmp_path):
    config = _host_config()
    detected = _assert_detected_as_onnxruntime_runs(_small_net(), tmp_path)
    by_head = {k.rows[0]: k for k in detected if k.rows}
    # The first conv carries its BatchNormalization and Relu; the BN after a Relu and the PRelu run alone.
    first = next(k for k in detected if k.kind.startswith("conv"))
    assert len(first.rows) == 3
    assert sum(k.kind == "eltwise:BatchNormalization" for k in detected) == 1
    assert any(k.kind == "eltwise:PRelu" for k in detected)
    assert any(k.kind == "gemv" and len(k.rows) == 2 for k in by_head.values())  # batch-1 Gemm + Relu: FusedGemm
    if kernels.block_size(config):  # x86 with AVX2: NCHWc kernels, reorders around the NCHW grouped conv
        assert {"conv_nchwc", "depthwise_nchwc", "pointwise_nchwc", "conv_nchw", "reorder_out"} <= {k.kind for k in detected}
        residual = next(k for k in detected if k.kind == "pointwise_nchwc")
        assert len(residual.rows) == 3  # conv + residual Add + Relu in one NCHWc kernel


def _synthetic(rng, n):
    """Kernels whose 'measured' time follows a known non-linear law of their configuration."""
    samples = []
    for _ in range(n):
        cin, cout, size, k = (int(rng.choice([8, 16, 32, 64, 128, 256])), int(rng.choice([8, 16, 32, 64, 128, 256])),
                              int(rng.choice([7, 14, 28, 56])), int(rng.choice([1, 3])))
        macs = cin * cout * k * k * size * size
        in_b, out_b, w_b = 4 * cin * size * size, 4 * cout * size * size, 4 * cin * cout * k * k
        efficiency = 0.9 * min(cin, 64) / 64 * (0.6 if k == 1 else 1.0)
        seconds = 3e-6 + macs / (96e9 * efficiency) + (in_b + out_b) / 40e9
        samples.append(((macs, in_b, out_b, w_b, cin, cout, k * k, 1, size * size), seconds))
    return samples


def test_kernel_fit_predicts_held_out_kernels():
    rng = np.random.default_rng(0)
    train, held_out = _synthetic(rng, 300), _synthetic(rng, 100)
    fit = kernel_fit.fit_kind(train)
    errors = np.array([abs(fit.predict(f) / t - 1) for f, t in held_out])
    linear = np.array([abs(fit.linear(f) / t - 1) for f, t in held_out])
    assert np.median(errors) < 0.05 and np.percentile(errors, 90) < 0.2
    assert np.median(errors) < np.median(linear)  # the neighbours capture what the linear part cannot


def test_nnls_is_non_negative_and_exact_on_consistent_data():
    a = np.array([[1.0, 2.0, 0.0], [1.0, 3.0, 1.0], [1.0, 5.0, 2.0], [1.0, 1.0, 4.0]])
    assert np.allclose(kernel_fit.nnls(a, a @ np.array([0.5, 2.0, 1.0])), [0.5, 2.0, 1.0])
    assert (kernel_fit.nnls(a, a @ np.array([1.0, -1.0, 3.0])) >= 0).all()


def test_measured_kernels_are_matched_and_predicted(tmp_path):
    """A few real synthetic graphs: detection matches onnxruntime's profiled kernels, the fit
    predicts positive times, and a host config carrying the fits costs a model by kernels."""
    config = _host_config()
    samples, gaps, _ = calibrate.kernel_samples(config, {"conv": 3, "gemm": 1, "misc": 1}, seed=3, min_time_s=0.02)
    assert sum(len(v) for v in samples.values()) >= 8 and gaps
    fits = kernel_fit.fit_all(samples, per_kernel_s=1e-6, invoke_s=5e-6)
    for kind, pts in samples.items():
        if kind in fits.kinds:
            assert all(fits.predict(kind, f) > 0 for f, _ in pts)
    host = dataclasses.replace(config, kernel_fits=fits.to_json())
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(_small_net()))
    report = MobileCpuTarget(host).estimate(MobileCpuTarget(host).lower(model))
    assert report.extra_totals["latency_model"].startswith("per-kernel")
    assert report.fixed_latency_s == pytest.approx(5e-6)


def test_kernel_latencies_add_up_with_known_fits():
    """Every kernel kind fitted to a constant 10 us: the total is kernels x (10 us + dispatch) + invoke."""
    constant = kernel_fit.KindFit([10e-6, 0.0, 0.0, 0.0], [], [], [])
    kinds = ["conv_nchwc", "pointwise_nchwc", "depthwise_nchwc", "conv_nchw", "grouped_nchwc", "gemm", "gemv", "pool", "pool_nchwc",
             "reorder_in", "reorder_out", "reshape", "eltwise:PRelu", "eltwise:*"]
    fits = kernel_fit.KernelFits({k: constant for k in kinds}, per_kernel_s=1e-6, invoke_s=4e-6)
    config = _host_config(kernel_fits=fits.to_json())
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(_small_net()))
    target = MobileCpuTarget(config)
    mapping = target.lower(model)
    report = target.estimate(mapping)
    found = kernels.detect(mapping, config)
    in_place = sum(k.kind in kernel_fit.IN_PLACE_KINDS for k in found)  # the Flatten: no per-kernel term
    assert in_place == 1
    assert sum(r.latency_s for r in report.layers) == pytest.approx((len(found) - in_place) * 11e-6 + in_place * 10e-6)
    assert report.fixed_latency_s == pytest.approx(4e-6)
    # the same model without fits: the roofline, with the profile's invoke overhead
    plain = MobileCpuTarget(dataclasses.replace(config, kernel_fits="")).estimate(mapping)
    assert plain.fixed_latency_s == config.invoke_overhead_s and "latency_model" not in plain.extra_totals


def test_a_negative_per_kernel_term_never_takes_a_kernel_below_a_tenth_of_its_fit():
    """Composition may find kernels cheaper in a network than alone (per_kernel_s < 0)."""
    fits = kernel_fit.KernelFits({"eltwise:Relu": kernel_fit.KindFit([1e-6, 0.0, 0.0, 0.0], [], [], []),
                                  "gemm": kernel_fit.KindFit([20e-6, 0.0, 0.0, 0.0], [], [], [])}, per_kernel_s=-2e-6)
    features = (0.0, 64.0, 64.0, 0.0, 0.0, 0.0, 0.0, 1.0, 16.0)
    assert fits.predict("gemm", features) == pytest.approx(18e-6)
    assert fits.predict("eltwise:Relu", features) == pytest.approx(1e-7)
    assert kernel_fit.from_json(fits.to_json()).per_kernel_s == -2e-6


def test_the_per_kernel_term_leaves_kernels_that_move_no_data_alone():
    """A Reshape runs on its input's buffer: its fit stands, whatever the composition term."""
    fits = kernel_fit.KernelFits({"reshape": kernel_fit.KindFit([1.6e-6, 0.0, 0.0, 0.0], [], [], [])}, per_kernel_s=-1e-6)
    assert fits.predict("reshape", (0.0, 64.0, 64.0, 0.0, 0.0, 0.0, 0.0, 1.0, 16.0)) == pytest.approx(1.6e-6)


def test_kernel_fits_round_trip_through_the_profile_toml(tmp_path):
    rng = np.random.default_rng(1)
    fits = kernel_fit.fit_all({"conv_nchwc": _synthetic(rng, 40), "gemm": _synthetic(rng, 10)}, per_kernel_s=2e-7, invoke_s=3e-6)
    values = dataclasses.asdict(_host_config(kernel_fits=fits.to_json(), calibration="measured test (quick)"))
    path = tmp_path / "host.toml"
    path.write_text(hwconfig.to_toml(values, calibrate.toml_comments()))
    target = MobileCpuTarget.configure(config_file=path)
    assert target.config.kernel_fits == fits.to_json()
    back = kernel_fit.from_json(target.config.kernel_fits)
    features = _synthetic(rng, 1)[0][0]
    assert back.predict("conv_nchwc", features) == pytest.approx(fits.predict("conv_nchwc", features), rel=1e-3)
    assert back.per_kernel_s == 2e-7 and back.invoke_s == 3e-6
    # the cache the host profile reads keeps them too
    calibrate.write_cache(values)
    assert hwconfig.cached_host().kernel_fits == fits.to_json()


def test_pixel2_has_no_kernel_fits():
    assert MobileCpuTarget().config.kernel_fits == ""


def test_conv_graph_sampler_is_deterministic():
    first = [m.SerializeToString() for _, m, _ in synthetic_graphs.sample_graphs({"conv": 2, "misc": 1}, seed=5)]
    again = [m.SerializeToString() for _, m, _ in synthetic_graphs.sample_graphs({"conv": 2, "misc": 1}, seed=5)]
    assert first == again
    assert TensorProto.FLOAT == onnx.load_from_string(first[0]).graph.input[0].type.tensor_type.elem_type


def test_what_profiling_adds_to_every_kernel_is_taken_off_before_apportioning():
    """Two kernels profiled at 10 us and 1000 us in a graph whose unprofiled run leaves 1006 us
    for them: profiling added 2 us to each. Apportioned without the excess the small kernel
    keeps it (~10 us); with it, 8 us, and the two still add up to the unprofiled time."""
    config = _host_config(invoke_overhead_s=4e-6, overhead_s=0.5e-6)
    result = {"profiled": {"small": 10e-6, "large": 1000e-6}, "matches": [("pool", (1.0,), "small"), ("gemm", (2.0,), "large")],
              "run_s": 1006e-6 + 4e-6 + 2 * 0.5e-6, "kernels": 2, "profiled_s": 1010e-6}
    excess = kernel_bench.profiling_excess(result, config)
    assert excess == pytest.approx(2e-6)
    plain = dict((kind, s) for kind, _, s in kernel_bench.apportion(result, config))
    net = dict((kind, s) for kind, _, s in kernel_bench.apportion(result, config, excess))
    assert plain["pool"] == pytest.approx(10e-6 * 1006 / 1010)
    assert net["pool"] == pytest.approx(8e-6) and net["gemm"] == pytest.approx(998e-6)
    assert sum(net.values()) == pytest.approx(1006e-6)
    # An excess larger than a kernel never makes it free or negative.
    assert min(s for *_, s in kernel_bench.apportion(result, config, 50e-6)) > 0


def _layout_net() -> onnx.ModelProto:
    """What decides onnxruntime's NCHWc layout around pools and constant operands: a pool on 24
    channels (NCHWc only with a block of 8), an AveragePool with ceil_mode and count_include_pad
    (NCHW), a Mul by a per-channel constant (an NCHWc 1x1 depthwise Conv) then an Add of one
    (NCHW), and a residual Add whose shortcut conv comes after the conv it fuses into."""
    b = synthetic_graphs.Builder(np.random.default_rng(1))
    x = b.node("Relu", [b.conv("x", 3, 24, 3, 1, 1)])
    x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Relu", [b.conv(x, 24, 32, 3, 1, 1)])
    x = b.node("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, count_include_pad=1)
    x = b.node("Relu", [b.conv(x, 32, 32, 3, 1, 1)])
    x = b.node("Add", [b.node("Mul", [x, b.const(np.full((32, 1, 1), 0.5))]), b.const(np.full((32, 1, 1), 0.1))])
    y = b.node("Relu", [b.conv(x, 32, 64, 1, 1, 1)])
    main = b.conv(y, 64, 64, 1, 1, 1)
    shortcut = b.conv(x, 32, 64, 1, 1, 1)
    x = b.node("Relu", [b.node("Add", [main, shortcut])])
    return b.model([1, 3, 32, 32], x)


def test_pool_and_constant_operand_layouts_are_onnxruntimes(tmp_path):
    _assert_detected_as_onnxruntime_runs(_layout_net(), tmp_path)


@pytest.mark.parametrize("op", ["Add", "Sum"])
def test_a_residual_is_read_by_the_nchw_conv_before_it_only_when_fused(tmp_path, op):
    """ShuffleNet's unit: an NCHW grouped 1x1 conv (34 channels per group: no NCHWc kernel)
    then a residual and a Relu, which the mapping fuses into the conv (counting the other
    operand as its input). onnxruntime fuses an Add (ConvAddActivationFusion: a FusedConv
    reading it as its Z input), never a Sum: that runs as a kernel of its own, which reads
    both operands, and the conv reads its own input only."""
    b = synthetic_graphs.Builder(np.random.default_rng(0))
    x = b.node("Relu", [b.conv("x", 136, 136, 1, 1, 1)])
    x = b.node("Relu", [b.node(op, [b.conv(x, 136, 136, 1, 1, 4), x])])
    detected = _assert_detected_as_onnxruntime_runs(b.model([1, 136, 28, 28], x), tmp_path)
    size = 136 * 28 * 28 * 4
    grouped = next(k for k in detected if k.kind == "conv_nchw")
    alone = [k for k in detected if k.kind == "eltwise:Add"]
    if op == "Add":
        assert len(grouped.rows) == 3 and grouped.features[1] == 2 * size and not alone
    else:
        assert len(grouped.rows) == 1 and grouped.features[1] == size and alone[0].features[1] == 2 * size


def test_only_a_reshape_writing_a_graph_output_copies(tmp_path):
    """onnxruntime runs a Reshape on its input's buffer unless it writes a graph output: the two
    are kinds of their own (reshape, reshape_copy), each fitted on its own samples."""
    b = synthetic_graphs.Builder(np.random.default_rng(0))
    x = b.node("Relu", [b.node("Reshape", [b.node("Relu", ["x"]), b.ints([1, 8, 4, 28, 28])])])
    x = b.node("Reshape", [x, b.ints([1, 32, 28, 28])])
    detected = _assert_detected_as_onnxruntime_runs(b.model([1, 32, 28, 28], x), tmp_path)
    assert [k.kind for k in detected if k.kind.startswith("reshape")] == ["reshape", "reshape_copy"]


def test_transformer_fusions_are_onnxruntimes(tmp_path):
    """BERT-tiny as the zoo exports it: onnxruntime runs Gelu, SkipLayerNormalization and a
    scaled FusedMatMul as single kernels, and each MatMul + bias Add over the 3-D sequence as
    a Gemm between two Reshapes (67 kernels, where the graph has 69 nodes that compute)."""
    path = models.export("bert_tiny", tmp_path / "bert_tiny.onnx")
    detected = _assert_detected_as_onnxruntime_runs(onnx.load(path), tmp_path, load_model(path))
    kinds = [k.kind for k in detected]
    assert kinds.count("eltwise:Gelu") == 2 and kinds.count("eltwise:SkipLayerNormalization") == 4
    assert "eltwise:Erf" not in kinds and "eltwise:Div" not in kinds  # inside Gelu / the FusedMatMul
    assert sum(k.name.startswith(("reshape_in:", "reshape_out:")) for k in detected) == 2 * 12
    scaled = [k for k in detected if len(k.rows) == 2 and k.kind == "gemm" and k.rows[1].endswith("/Div")]
    assert len(scaled) == 2


def test_sampled_transformer_pieces_give_samples_of_each_fused_kind(tmp_path):
    """The calibration family for these kernels: each fused kind appears and is found by name."""
    found: dict[str, int] = {}
    for _, model, _ in synthetic_graphs.sample_graphs({"transformer": 6}, seed=3):
        config = _host_config()
        lowered = MobileCpuTarget(config).lower(ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(model)))
        ort_names = {name for name, _ in ort_kernel_names.ort_kernels(_optimized(model, tmp_path))}
        for k in kernels.detect(lowered, config):
            if {k.name, k.out, *k.aliases} & ort_names:
                found[k.kind] = found.get(k.kind, 0) + 1
    assert {"eltwise:Gelu", "eltwise:SkipLayerNormalization", "eltwise:LayerNormalization", "gemm"} <= set(found), found


def test_a_conv_whose_folded_batchnorm_output_ends_in_bn_is_found_by_name(tmp_path):
    """onnxruntime names an NCHWc Conv after the tensor it writes ("block_bn" -> "block_bn_nchwc");
    a name that itself ends in "_bn" must survive (VarGFaceNet's "*.pw_bn"), while a
    BatchNormalization run alone as an NCHWc Conv is "<output>_bn_nchwc", and, a Conv like
    any other, takes the activation that alone reads it."""
    b = synthetic_graphs.Builder(np.random.default_rng(2))
    x = b.conv("x", 16, 32, 1, 1, 1)
    b.nodes.append(onnx.helper.make_node("BatchNormalization", [x, *(b.const(np.full(32, v)) for v in (1.0, 0.1, 0.0, 1.0))],
                                         ["block_bn"], name="block_bn_node"))
    y = b.node("Relu", [b.conv("block_bn", 32, 32, 3, 1, 1)])
    y = b.bn(y, 32)  # after the Relu: runs alone, as an NCHWc Conv, and takes the Relu after it
    model = b.model([1, 16, 8, 8], b.node("Relu", [y]))
    detected = _assert_detected_as_onnxruntime_runs(model, tmp_path)
    assert any("block_bn" in (k.out, *k.aliases) for k in detected)
    assert [len(k.rows) for k in detected if k.kind == "eltwise:BatchNormalization"] == [2]


def test_a_pointwise_conv_on_fewer_channels_than_a_block_is_its_own_kind(tmp_path):
    """onnxruntime's NCHWc conv reads an input of fewer channels than a block in NCHW (as a
    first layer's): a 1x1 conv there is kind pointwise_nchw_in, still writes NCHWc (no reorder
    before the next NCHWc conv), and the kernels are still those onnxruntime runs."""
    b = synthetic_graphs.Builder(np.random.default_rng(0))
    x = b.node("Relu", [b.conv(b.conv("x", 3, 32, 1, 1, 1), 32, 32, 3, 1, 1)])
    model = b.model([1, 3, 32, 32], x)
    detected = _assert_detected_as_onnxruntime_runs(model, tmp_path)
    if not kernels.block_size(_host_config()):
        pytest.skip("no NCHWc layout on this CPU")
    assert [k.kind for k in detected] == ["pointwise_nchw_in", "conv_nchwc", "reorder_out"]


def test_a_two_input_sum_is_costed_as_an_add_and_a_wider_one_as_itself(tmp_path):
    """onnxruntime's Sum of two tensors runs Add's loop (measured within 1%): its kernel is
    eltwise:Add, fitted on the sampled Adds; a three-input Sum stays eltwise:Sum."""
    b = synthetic_graphs.Builder(np.random.default_rng(0))
    r = b.node("Relu", ["x"])
    x = b.node("Sum", [b.node("Sum", [r, "x"]), r, "x"])
    detected = _assert_detected_as_onnxruntime_runs(b.model([1, 24, 14, 14], x), tmp_path)
    assert [k.kind for k in detected if k.kind.startswith("eltwise:")] == ["eltwise:Relu", "eltwise:Add", "eltwise:Sum"]


def test_a_residual_joins_its_conv_only_when_its_other_operand_is_written_nchwc(tmp_path):
    """VarGFaceNet's shape: the shortcut comes from a PRelu (NCHW), so onnxruntime leaves the
    residual Add alone and reorders the Conv's output out; a ResNet shortcut written by an NCHWc
    Conv after the main branch's (graph order) still joins. Detection matches onnxruntime."""
    b = synthetic_graphs.Builder(np.random.default_rng(0))
    x = b.node("PRelu", [b.conv("x", 32, 32, 3, 1, 1), b.const(np.full((32, 1, 1), 0.1))])
    y = b.node("Relu", [b.node("Add", [b.conv(x, 32, 32, 1, 1, 1), x])])           # shortcut from a PRelu
    main = b.conv(y, 32, 64, 3, 2, 1)
    z = b.node("Relu", [b.node("Add", [b.conv(main, 64, 64, 1, 1, 1), b.conv(y, 32, 64, 1, 2, 1)])])  # shortcut conv after
    detected = _assert_detected_as_onnxruntime_runs(b.model([1, 32, 16, 16], z), tmp_path)
    if not kernels.block_size(_host_config()):
        pytest.skip("no NCHWc layout on this CPU")
    kinds = [k.kind for k in detected]
    alone = kinds.index("eltwise:Add")  # the first block's Add runs alone, after its Conv's output is reordered out
    assert kinds.count("eltwise:Add") == 1 and kinds[alone - 1] == "reorder_out" and kinds[alone + 1] == "eltwise:Relu"
    joined = [k for k in detected if k.kind == "pointwise_nchwc" and len(k.rows) == 3]
    assert len(joined) == 1  # the second block's conv + Add + Relu


def _gemv_net(width: int, n: int) -> onnx.ModelProto:
    b = synthetic_graphs.Builder(np.random.default_rng(0))
    return b.model([1, width], b.linear("x", np.full((width, n), 0.01), gemm=True))


@pytest.mark.parametrize("llc_mb, stream_gbs, expected", [(1, 0.0, (4 << 20) / 1e9), (1, 0.5, (4 << 20) / 0.5e9), (64, 0.5, 1e-6)])
def test_a_large_weight_streams_from_dram_only_when_the_model_overflows_the_last_level_cache(llc_mb, stream_gbs, expected):
    """A matrix-vector kernel with 4 MB of weights (beyond the 1 MB cache) is never faster than
    its weights at the measured weight-streaming rate (the DRAM bandwidth when there is none) in
    a model that overflows the last-level cache; in one that fits it (LeNet-Caffe's 1.6 MB fc
    layer: ~35 GB/s measured, 2.6x DRAM) its fit stands."""
    fit = kernel_fit.KindFit([1e-6, 0.0, 0.0, 0.0], [], [], [])  # 1 us, far below 4 MB at 1 GB/s
    config = _host_config(kernel_fits=kernel_fit.KernelFits({"gemv": fit}).to_json(), dram_bandwidth=1e9,
                          weight_stream_bandwidth=stream_gbs * 1e9, cache_bytes=1 << 20, llc_bytes=llc_mb << 20)
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(_gemv_net(1024, 1024)))
    report = MobileCpuTarget(config).estimate(MobileCpuTarget(config).lower(model))
    latency = sum(r.latency_s for r in report.layers)
    assert latency == pytest.approx(expected, rel=1e-3)


def test_the_last_level_cache_is_the_largest_footprint_read_faster_than_dram(monkeypatch):
    """Weights read at >= 1.25x the rate of a 256 MB footprint are still cached; the knee of
    the 2-core Xeon VM's curve (21-23 GB/s to 64 MB, 19.5 at 96, ~13.5 beyond) gives 96 MB."""
    rates = {16: 21.4, 32: 22.8, 64: 22.4, 96: 19.5, 128: 13.8, 192: 13.2, 256: 13.4}  # GB/s, measured 2026-11-30
    monkeypatch.setattr(calibrate.mb, "matmul_chain", lambda layers, rows, width: (layers, None))
    monkeypatch.setattr(calibrate.mb, "time_graph", lambda layers, feeds, min_time_s: layers * 2**20 / (rates[layers] * 1e9))
    llc, stream = calibrate._last_level_cache(0.0, 0.1)
    assert llc == 96 << 20 and stream == pytest.approx(13.4e9)  # the 256 MB rate: weights streamed from DRAM
