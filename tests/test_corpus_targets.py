"""Real graphs, fully costed: the corpus models of each kind the issue names (If-gated LSTM,
dynamic quantization, ConvTranspose head, fp16), and truenorth on opset-9 models.

- ddddocr_common_old (dynamically quantized: DynamicQuantizeLinear, ConvInteger,
  MatMulInteger, com.microsoft::DynamicQuantizeLSTM) and ppocr_det (ConvTranspose head) cost
  100% of their MACs, nothing unsupported, on sparse-tc and mobile-cpu;
- ppocr_rec_fp16 costs at 16 bits: sparse-tc (FP16 everywhere already) costs it exactly as
  the fp32 ppocr_rec, its edge Casts converting nothing; mobile-cpu reads fp16 bytes and pays
  the fp16 <-> fp32 conversions of a core without FP16 arithmetic;
- truenorth compiles the opset-9 onnx light models with Gemm layers (legalize-core-ops gives
  their Gemm blocks the C input opset 9 requires).

Each compile takes a few seconds; the corpus files come from ``make install``.
"""

from __future__ import annotations

import pytest

import corpus
from conftest import light_model
from nncc.driver import CompileOptions, compile_model
from nncc.registry import TARGETS


def _run(name, target):
    return compile_model(corpus.path(name), TARGETS.create(target), [],
                         CompileOptions(verify_samples=0, input_shapes=dict(corpus.ENTRY[name].shapes)))


@pytest.mark.parametrize("target", ["sparse-tc", "mobile-cpu"])
@pytest.mark.parametrize("name", ["ddddocr_common_old", "ppocr_det"])
def test_quantized_and_conv_transpose_models_are_fully_costed(name, target):
    result = _run(name, target)
    coverage = result.report["totals"]["coverage"]
    assert result.report["unsupported"] == []
    assert coverage["complete"] and coverage["macs_fraction"] == 1.0 and coverage["macs_unknown_nodes"] == 0
    assert result.cost.macs == result.report["model"]["macs"] > 0


def test_quantized_model_runs_its_integer_ops_as_int8():
    rows = {r["name"]: r for r in _run("ddddocr_common_old", "sparse-tc").report["layers"]}
    integer = [r for r in rows.values() if r["op"] in ("ConvInteger", "MatMulInteger")]
    assert integer and all(r["kind"] == "int8" for r in integer)
    (lstm,) = [r for r in rows.values() if r["op"] == "DynamicQuantizeLSTM"]
    assert lstm["kind"] == "recurrent" and lstm["steps"] > 1 and lstm["macs"] > 0


def test_fp16_model_on_sparse_tc_costs_what_the_fp32_model_does():
    half, full = _run("ppocr_rec_fp16", "sparse-tc"), _run("ppocr_rec", "sparse-tc")
    casts = [r for r in half.report["layers"] if r["op"] == "Cast"]
    assert casts and all(r["kind"] == "noop" for r in casts)  # the fp32 <-> fp16 edges convert nothing
    assert half.cost.latency_s == pytest.approx(full.cost.latency_s)
    assert half.cost.weight_bytes == full.cost.weight_bytes


def test_fp16_model_on_mobile_cpu_reads_half_the_bytes_and_pays_the_conversions():
    target = TARGETS.create("mobile-cpu")
    half, full = _run("ppocr_rec_fp16", "mobile-cpu"), _run("ppocr_rec", "mobile-cpu")
    assert half.report["unsupported"] == []
    rows = target.lower(half.model).layers
    assert sum(r.fp16_converted for r in rows) > 0
    half_bytes = sum(r["bytes"] for r in half.report["layers"])
    full_bytes = sum(r["bytes"] for r in full.report["layers"])
    assert half_bytes < 0.6 * full_bytes
    assert half.cost.latency_s > full.cost.latency_s  # no FP16 arithmetic on ARMv8.0: conversions on top of fp32 compute


@pytest.mark.parametrize("name", ["light_shufflenet", pytest.param("light_inception_v1", marks=pytest.mark.slow)])
def test_truenorth_compiles_opset_9_models_with_gemm(name):
    # Enough chips, and the final Softmax on a host: what is left is the Gemm legalization.
    target = TARGETS.get("truenorth").configure(sets={"max_chips": 1000, "host_fallback": "true"})
    result = compile_model(light_model(name), target, [], CompileOptions(verify_samples=0))
    assert result.report["totals"]["coverage"]["macs_fraction"] == 1.0
    assert result.cost.latency_s > 0


@pytest.mark.parametrize("target", ["mobile-cpu", "sparse-tc", "reram", "ucnn", "hypar"])
def test_if_gated_lstm_model_is_fully_costed_once_its_sample_rate_is_fixed(target):
    """The silero VAD: an If on the sample-rate input holds the network (Conv1d, LSTM)."""
    entry = corpus.ENTRY["silero_vad"]
    options = CompileOptions(verify_samples=1, input_shapes=dict(entry.shapes), input_values=dict(entry.values))
    result = compile_model(corpus.path("silero_vad"), TARGETS.create(target), [], options)
    assert result.report["unsupported"] == [] and result.report["totals"]["coverage"]["complete"]
    ops = {layer["op"] for layer in result.report["layers"]}
    assert {"Conv", "LSTM"} <= ops and "If" not in ops
    assert result.report["verification"]["max_abs_error"] == 0.0  # the specialised graph is the original's 16 kHz path
