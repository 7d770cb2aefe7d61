"""The mobile-cpu target: roofline figures by hand, sources, overrides, unsupported ops,
the onnx wheel's light models, the TVM Relax artifact and the host calibration."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import tarfile

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from conftest import LIGHT_MODELS, conv_bn_model, light_model, light_reference
from nncc import runtime
from nncc.backends.mobile_cpu import MobileCpuConfig, MobileCpuTarget
from nncc.backends.mobile_cpu import calibrate, config as hwconfig, cost, tvm_emit
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc import notices
from nncc.loading import load_model

SLOW_LIGHT = {"light_vgg19", "light_zfnet512", "light_bvlc_alexnet"}  # 6-17 s each: weight folding


def _save(tmp_path, nodes, inputs, outputs, inits=(), opset=17, name="m.onnx", domains=()) -> pathlib.Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=9), path)
    return path


def _estimate(path, target=None):
    target = target or MobileCpuTarget()
    model = load_model(path)
    return target.estimate(target.lower(model))


def _row(report, name):
    return next(r for r in report.layers if r.name == name)


def _kernel_row(path, name):
    """The mapping's kernel row (weight, input and output bytes apart)."""
    target = MobileCpuTarget()
    return next(r for r in target.lower(load_model(path)).layers if r.name == name)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never read or write the user's ~/.cache during tests."""
    monkeypatch.setenv("NNCC_CACHE_DIR", str(tmp_path / "cache"))


# ---------------------------------------------------------------- hand-computed figures (pixel2)

def test_conv_is_compute_bound_and_matches_the_formula(tmp_path):
    w = numpy_helper.from_array(np.zeros((64, 64, 3, 3), np.float32), "w")
    path = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="conv")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 56, 56])], [w])
    report = _estimate(path)
    row = _row(report, "conv")
    macs = 64 * 56 * 56 * 64 * 9
    per_channel = macs / 64
    # pixel2: 2.45 GHz x 4 fp32 lanes (128-bit NEON) x 1 FMA x eff_conv 0.80 x m / (m + 256)
    compute = macs / (2.45e9 * 4 * 1 * 0.80 * per_channel / (per_channel + 256))
    act = 2 * 64 * 56 * 56 * 4
    weights = 64 * 64 * 9 * 4
    assert act + weights <= 2 * 2**20  # all of it fits the 2 MB L2: read at cache bandwidth
    memory = (act + weights) / 39.2e9
    assert compute > memory
    assert row.bound == "compute"
    assert row.macs == macs
    assert row.latency_s == pytest.approx(compute + 2.0e-6, rel=1e-12)
    assert report.latency_s == pytest.approx(compute + 2.0e-6 + 5.0e-6, rel=1e-12)  # + invoke overhead
    energy = (macs * 4.6 + (act + weights) * 1.25) * 1e-12 + 0.5 * row.latency_s
    assert row.energy_j == pytest.approx(energy, rel=1e-12)
    assert row.utilization == pytest.approx(macs / row.latency_s / (2.45e9 * 4), rel=1e-12)


def test_batch1_gemm_is_memory_bound_and_matches_the_formula(tmp_path):
    k, n = 16384, 128
    w = numpy_helper.from_array(np.zeros((k, n), np.float32), "w")
    path = _save(tmp_path, [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], [w])
    report = _estimate(path)
    row = _row(report, "fc")
    compute = k * n / (2.45e9 * 4 * 0.90 * k / (k + 256))
    weights, act = k * n * 4, (k + n) * 4
    assert weights > 2 * 2**20  # 8 MB of weights cannot stay in the 2 MB L2: streamed from LPDDR4X
    memory = weights / 29.8e9 + act / 39.2e9
    assert memory > compute
    assert row.bound == "memory" and row.dram_bytes == weights
    assert row.latency_s == pytest.approx(memory + 2.0e-6, rel=1e-12)
    energy = (k * n * 4.6 + weights * 160 + act * 1.25) * 1e-12 + 0.5 * row.latency_s
    assert row.energy_j == pytest.approx(energy, rel=1e-12)


def test_every_config_field_names_a_source():
    for field in dataclasses.fields(MobileCpuConfig):
        source = field.metadata.get("source", "")
        assert source, field.name
    sources = calibrate.host_sources()
    for name in ("frequency_hz", "eff_conv", "eff_depthwise", "work_half_macs", "dram_bandwidth", "overhead_s", "op_cycles"):
        assert sources[name].startswith(("measured", "fitted constant")), name
    unconfirmed = [f.name for f in dataclasses.fields(MobileCpuConfig) if "[U]" in f.metadata["source"]]
    assert "eff_conv" in unconfirmed and "frequency_hz" not in unconfirmed


def test_report_rows_carry_bound_bytes_and_dtype(conv_bn_path):
    target = MobileCpuTarget()
    result = compile_model(conv_bn_path, target, [], CompileOptions(verify_samples=1))
    rows = {r["name"]: r for r in result.report["layers"]}
    assert set(rows) == {"conv1", "bn1", "relu1", "flatten", "fc1"}
    for row in rows.values():
        assert {"name", "op", "macs", "latency_s", "energy_j", "utilization", "bound", "bytes", "dtype"} <= set(row)
    # BatchNorm and Relu run inside the conv (TFLite/onnxruntime epilogue fusion); Reshape is free.
    assert rows["bn1"]["bound"] == rows["relu1"]["bound"] == "fused" and rows["bn1"]["fused_into"] == "conv1"
    assert rows["conv1"]["fuses"] == ["bn1", "relu1"] and "fuses" not in rows["fc1"] and "fused_into" not in rows["conv1"]
    assert rows["bn1"]["latency_s"] == rows["relu1"]["latency_s"] == 0.0
    assert rows["flatten"]["bound"] == "none" and rows["flatten"]["latency_s"] == 0.0
    assert rows["conv1"]["latency_s"] > 0 and rows["fc1"]["latency_s"] > 0
    sources = result.report["target"]["sources"]
    assert "2.45 GHz" in sources["frequency_hz"]["source"] and "29.8 GB/s" in sources["dram_bandwidth"]["source"]
    assert (MobileCpuConfig().frequency_hz, MobileCpuConfig().dram_bandwidth) == (2.45e9, 29.8e9)


def test_element_wise_work_follows_the_op_class_with_per_op_refinements(tmp_path):
    # Per element: one SIMD op (element-wise class), one op + one series evaluation (transcendental
    # class), Softmax 3 + 1 (max, subtract, divide around exp), Sqrt a single instruction.
    ops = ["Relu", "Tanh", "Softmax", "Sqrt"]
    nodes = [helper.make_node(op, [f"v{i}"], [f"v{i + 1}"], name=op.lower()) for i, op in enumerate(ops)]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1, 1000])],
                 [helper.make_tensor_value_info(f"v{len(ops)}", TensorProto.FLOAT, [1, 1000])])
    rows = {r.name: r for r in MobileCpuTarget().lower(load_model(path)).layers}
    per_element = {name: (r.ops / 1000, r.transcendental / 1000) for name, r in rows.items()}
    assert per_element == {"relu": (1, 0), "tanh": (1, 1), "softmax": (3, 1), "sqrt": (1, 0)}


# ---------------------------------------------------------------- overrides and properties

@pytest.fixture(scope="module")
def squeezenet_mapping():
    return MobileCpuTarget().lower(load_model(light_model("light_squeezenet")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dram=st.floats(1.0, 100.0), cache=st.floats(1.0, 100.0), clock=st.floats(1.0, 10.0))
def test_more_bandwidth_or_clock_never_increases_latency(squeezenet_mapping, dram, cache, clock):
    base = MobileCpuConfig()
    faster = dataclasses.replace(base, dram_bandwidth=base.dram_bandwidth * dram,
                                 cache_bandwidth=base.cache_bandwidth * cache, frequency_hz=base.frequency_hz * clock)
    before = cost.estimate(squeezenet_mapping, base)
    after = cost.estimate(squeezenet_mapping, faster)
    assert after.latency_s <= before.latency_s * (1 + 1e-12)
    for a, b in zip(after.layers, before.layers):
        assert a.latency_s <= b.latency_s * (1 + 1e-12)


def test_set_overrides_move_the_estimate_the_right_way(tmp_path):
    path = light_model("light_squeezenet")
    base = _estimate(path).latency_s
    slow_memory = _estimate(path, MobileCpuTarget.configure(sets={"dram_bandwidth": "1e9", "cache_bandwidth": "2e9"})).latency_s
    fast_core = _estimate(path, MobileCpuTarget.configure(sets={"frequency_hz": "4.9e9"})).latency_s
    int8_lanes = _estimate(path, MobileCpuTarget.configure(sets={"simd_bits": "256"})).latency_s
    assert slow_memory > base > fast_core
    assert int8_lanes < base
    with pytest.raises(NnccError, match="unknown parameter"):
        MobileCpuTarget.configure(sets={"no_such_constant": "1"})
    with pytest.raises(NnccError, match="dram_bandwidth must be > 0"):
        MobileCpuTarget.configure(sets={"dram_bandwidth": "0"})
    with pytest.raises(NnccError, match="op_cycles"):
        MobileCpuTarget.configure(sets={"op_cycles": "LRN"})


# ---------------------------------------------------------------- unsupported, fusion, quantization

def test_custom_domain_and_control_flow_ops_are_listed_not_costed(tmp_path):
    then_g = helper.make_graph([helper.make_node("Identity", ["r"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 8])])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Foo", ["r"], ["f"], domain="com.example", name="custom"),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=then_g, name="branch")]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
                                   helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8]),
                  helper.make_tensor_value_info("f", TensorProto.FLOAT, [1, 8])], domains=["com.example"])
    model = onnx.load(path)
    model_ir = __import__("onnx_ir").serde.deserialize_model(onnx.shape_inference.infer_shapes(model))
    target = MobileCpuTarget()
    report = target.estimate(target.lower(model_ir))
    listed = {u.name: u.op for u in report.unsupported}
    assert listed == {"custom": "com.example::Foo", "branch": "If"}
    assert [r.name for r in report.layers] == ["relu"]
    assert report.totals()["unsupported_ops"] == 2


def test_qdq_and_qlinear_convs_compute_in_int8(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-20, 20, (32, 32, 3, 3)).astype(np.int8), "wq"),
             numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.array(0.05, np.float32), "sx"), numpy_helper.from_array(np.array(128, np.uint8), "zx")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"], name="dq_w"),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1] * 4, name="conv_qdq"),
             helper.make_node("QuantizeLinear", ["c", "sx", "zx"], ["cq"], name="q_out"),
             helper.make_node("QLinearConv", ["cq", "sx", "zx", "wq", "s", "z", "sx", "zx"], ["y"], pads=[1] * 4, name="qlinear")]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 28, 28])],
                 [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 32, 28, 28])], inits)
    report = _estimate(path)
    rows = {r.name: r for r in report.layers}
    assert rows["conv_qdq"].dtype == rows["qlinear"].dtype == "int8"
    assert rows["dq_in"].fused_into == rows["dq_w"].fused_into == "conv_qdq"
    assert rows["q_out"].fused_into == "conv_qdq"
    assert rows["q_in"].op_class == "elementwise" and rows["q_in"].latency_s > 0
    assert rows["conv_qdq"].macs == rows["qlinear"].macs == 32 * 28 * 28 * 32 * 9
    fp32 = numpy_helper.from_array(np.zeros((32, 32, 3, 3), np.float32), "w")
    fpath = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4, name="conv")],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 28, 28])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 28, 28])], [fp32], name="f.onnx")
    assert rows["qlinear"].latency_s < _row(_estimate(fpath), "conv").latency_s


def test_matmul_and_conv_integer_compute_in_int8_at_their_widths(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-100, 100, (256, 128)).astype(np.int8), "w"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"), numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.ones((16, 8, 3, 3), np.int8), "cw")]
    nodes = [helper.make_node("MatMulInteger", ["x", "w", "xz", "wz"], ["y"], name="mmi"),
             helper.make_node("ConvInteger", ["cx", "cw"], ["cy"], name="ci", pads=[1] * 4)]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.UINT8, [64, 256]),
                                   helper.make_tensor_value_info("cx", TensorProto.UINT8, [1, 8, 10, 10])],
                 [helper.make_tensor_value_info("y", TensorProto.INT32, [64, 128]),
                  helper.make_tensor_value_info("cy", TensorProto.INT32, [1, 16, 10, 10])], inits)
    report = _estimate(path)
    assert not report.unsupported
    mmi, ci = _row(report, "mmi"), _row(report, "ci")
    assert (mmi.dtype, mmi.op_class, mmi.macs) == ("int8", "gemm", 64 * 128 * 256)
    assert (ci.dtype, ci.op_class, ci.macs) == ("int8", "conv", 1600 * 72)
    kmmi, kci = _kernel_row(path, "mmi"), _kernel_row(path, "ci")
    assert (kmmi.weight_bytes, kmmi.input_bytes, kmmi.output_bytes) == (256 * 128 + 2, 64 * 256, 64 * 128 * 4)
    assert (kci.weight_bytes, kci.input_bytes, kci.output_bytes) == (1152, 800, 1600 * 4)
    config = MobileCpuConfig()
    per_feature = 64 * 256  # MACs per output feature (64 rows x k = 256)
    eff = config.eff_gemm * config.eff_int8 * per_feature / (per_feature + config.work_half_macs)
    assert mmi.compute_s == pytest.approx(64 * 128 * 256 / (2.45e9 * 16 * eff))


def test_dynamic_quantize_linear_is_element_wise_and_reads_its_input_twice(tmp_path):
    path = _save(tmp_path, [helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"], name="dql")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1000])],
                 [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 1000]),
                  helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
                  helper.make_tensor_value_info("z", TensorProto.UINT8, [])])
    report = _estimate(path)
    assert not report.unsupported
    r, k = _row(report, "dql"), _kernel_row(path, "dql")
    assert (r.op_class, k.input_bytes, k.output_bytes) == ("elementwise", 2 * 4000, 1000 + 4 + 1)
    # 6 simple ops per output element (min, max, scale, round, + zero point, saturate); 1002 elements
    assert r.compute_s == pytest.approx(6 * 1002 / (2.45e9 * 4 * 0.5))


def test_dynamic_quantize_lstm_is_an_int8_lstm(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-50, 50, (1, 8, 16)).astype(np.int8), "w"),
             numpy_helper.from_array(rng.integers(-50, 50, (1, 4, 16)).astype(np.int8), "r"),
             numpy_helper.from_array(np.array([0.01], np.float32), "ws"), numpy_helper.from_array(np.array([0], np.int8), "wz"),
             numpy_helper.from_array(np.array([0.01], np.float32), "rs"), numpy_helper.from_array(np.array([0], np.int8), "rz")]
    node = helper.make_node("DynamicQuantizeLSTM", ["x", "w", "r", "", "", "", "", "", "ws", "wz", "rs", "rz"], ["y"],
                            domain="com.microsoft", name="lstm", hidden_size=4)
    path = _save(tmp_path, [node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 1, 4])], inits, domains=["com.microsoft"])
    report = _estimate(path)
    assert not report.unsupported
    r = _row(report, "lstm")
    k = _kernel_row(path, "lstm")
    assert (r.dtype, r.macs, k.steps) == ("int8", 5 * 16 * 12, 5)
    assert k.weight_bytes == 8 * 16 + 4 + 1 + 5 * (4 * 16) + 4 + 1  # W once, R every step, at int8


def test_fp16_tensors_are_widened_to_fp32_and_narrowed_back(tmp_path):
    # ARMv8.0 has no FP16 arithmetic: a Relu on fp16 converts its 1000 inputs and 1000 outputs.
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"], name="relu")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 1000])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 1000])])
    r, k = _row(_estimate(path), "relu"), _kernel_row(path, "relu")
    assert (k.input_bytes, k.output_bytes, k.fp16_converted) == (2000, 2000, 2000)
    assert r.compute_s == pytest.approx((1000 + 2000) / (2.45e9 * 4 * 0.5))


# ---------------------------------------------------------------- real graphs

@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_LIGHT else n for n in LIGHT_MODELS])
def test_light_models_compile_and_reproduce_reference_outputs(name):
    result = compile_model(light_model(name), MobileCpuTarget(), [], CompileOptions(verify_samples=1))
    assert result.report["unsupported"] == []
    assert result.cost.latency_s > 0 and result.cost.energy_j > 0
    assert result.cost.macs == result.report["model"]["macs"]
    out = runtime.session(result.model).run(None, runtime.sample_inputs(result.model, 1)[0])[0]
    np.testing.assert_allclose(out, light_reference(name), rtol=0, atol=1e-5)


def _small_cnn(tmp_path) -> pathlib.Path:
    try:
        from nncc import models

        return models.export("lenet5", tmp_path / "lenet5.onnx")
    except Exception:  # noqa: BLE001 - the zoo is optional here: a tiny conv net does as well
        path = tmp_path / "conv_bn.onnx"
        onnx.save(conv_bn_model(), path)
        return path


def test_tvm_host_build_runs_in_the_relax_vm_like_onnxruntime(tmp_path):
    import tvm
    from tvm import relax

    model = load_model(_small_cnn(tmp_path))
    executable = tvm_emit.build(model, tvm_emit.HOST_TARGET)  # the --emit code path, host target
    vm = relax.VirtualMachine(executable, tvm.cpu())
    for feed in runtime.sample_inputs(model, 2):
        got = vm["main"](*[tvm.runtime.tensor(feed[v.name]) for v in model.graph.inputs])
        got = got.numpy() if hasattr(got, "numpy") else got[0].numpy()
        want = runtime.session(model).run(None, feed)[0]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_emit_tvm_writes_aarch64_objects_and_a_manifest(tmp_path):
    from nncc.cli import main

    model_path = _small_cnn(tmp_path)
    out = tmp_path / "out"
    assert main(["compile", str(model_path), "-t", "mobile-cpu", "-o", str(out), "--emit", "tvm", "--format", "json"]) == 0
    manifest = json.loads((out / "tvm_manifest.json").read_text())
    assert manifest["target"] == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
    assert manifest["inputs"][0]["dtype"] == "float32" and manifest["tvm_version"]
    with tarfile.open(out / "model.tar") as tar:
        objects = [m for m in tar.getmembers() if m.name.endswith(".o")]
        assert objects
        for member in objects:
            header = tar.extractfile(member).read(20)
            assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    report = json.loads((out / "report.json").read_text())
    assert set(report["artifacts"]) >= {"model.tar", "tvm_manifest.json"}


# ---------------------------------------------------------------- host profile and calibration

def test_fit_efficiencies_recovers_the_constants_that_made_the_timings():
    half = float(np.logspace(1, 5, 17)[6])  # a point of the fit's grid (316 MACs per channel)
    truth = dataclasses.replace(MobileCpuConfig(), eff_conv=0.7, eff_depthwise=0.3, eff_gemm=0.55, work_half_macs=half)
    points: dict[str, list] = {}
    for cls, build, kwargs in calibrate.FULL_POINTS:
        if cls in ("conv", "depthwise", "gemm"):
            row, resident = calibrate._row(build, kwargs, truth)
            points.setdefault(cls, []).append((row, resident, cost.kernel_cost(row, truth, resident).latency_s))
    fitted = calibrate.fit_efficiencies(points, MobileCpuConfig())
    assert fitted["work_half_macs"] == pytest.approx(half)
    assert (fitted["eff_conv"], fitted["eff_depthwise"], fitted["eff_gemm"]) == pytest.approx((0.7, 0.3, 0.55), abs=1e-9)


def test_quick_calibration_writes_toml_that_configure_accepts(tmp_path):
    values = calibrate.measure(quick=True)
    path = tmp_path / "host.toml"
    path.write_text(hwconfig.to_toml(values, calibrate.host_sources()))
    target = MobileCpuTarget.configure(config_file=path)
    assert target.config.calibration.startswith("measured")
    assert target.config.frequency_hz == pytest.approx(values["frequency_hz"])
    assert 0 < target.config.eff_depthwise <= 1 and target.config.overhead_s > 0
    assert "PRelu" in target.config.cycles_table()
    assert target.describe()["sources"]["eff_conv"]["source"].startswith("fitted constant")
    # the host profile reads the cache instead of measuring again
    calibrate.write_cache(dict(values, device="host: cached"))
    assert MobileCpuTarget.configure(sets={"profile": "host"}).config.device == "host: cached"
    # A quick profile says so in the compile's warnings; a full one does not.
    with notices.collecting() as found:
        assert math.isfinite(_estimate(light_model("light_squeezenet"), target).latency_s)
    assert [w["kind"] for w in found if "quick calibration" in w["message"]] == ["calibration"]
    full = MobileCpuTarget(dataclasses.replace(target.config, calibration=target.config.calibration.replace("(quick)", "(full)")))
    with notices.collecting() as found:
        _estimate(light_model("light_squeezenet"), full)
    assert not found
