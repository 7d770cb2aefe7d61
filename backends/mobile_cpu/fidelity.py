"""Published figures the ``mobile-cpu`` target's ``pixel2`` profile is checked against
(docs/sources.md, "Mobile CPU").

TensorFlow Lite's hosted-models table gives single-thread latencies on one big core of a
Pixel 2 for standard ImageNet networks, float and 8-bit; no constant of the profile was fitted
to any of them (its efficiencies are [U] starting points). LPIRC 2018's winning entry is the
figure the profile was written beside, so it is listed but not held out in spirit.

Each ``measure`` exports the network offline (zoo or the onnx wheel's light models), quantizes it
with nncc's own ``quantize`` pass where the reference is a quantized model, and compiles it for
the default ``pixel2`` profile; a few seconds each (Inception v1 int8: about 20 s).
"""

from __future__ import annotations

import pathlib
import tempfile

import onnx
import onnx.version_converter

from nncc import models
from nncc.driver import CompileOptions, compile_model
from nncc.fidelity import Reference
from nncc.registry import PASSES, TARGETS

SECTION = 'docs/sources.md, "Mobile CPU"'
TFLITE = (f"{SECTION}: TensorFlow Lite 'Hosted models' table (tensorflow/lite/g3doc/guide/), "
          "Pixel 2, one thread on a big core [V]")
# The onnx wheel ships model-zoo graphs with constant weights: a real Inception v1 (GoogLeNet) with no download.
LIGHT = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def pixel2_latency(name: str, int8: bool = False) -> float:
    """Seconds per inference on the pixel2 profile; ``name`` is a zoo model or ``light_*`` file."""
    passes = [PASSES.create("quantize")] if int8 else []  # int8 QDQ weights and activations
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "m.onnx"
        if name.startswith("light_"):  # opset 9 files: quantize's per-axis QuantizeLinear needs opset 13
            onnx.save(onnx.version_converter.convert_version(onnx.load(LIGHT / f"{name}.onnx"), 17), path)
        else:
            models.export(name, path)
        result = compile_model(path, TARGETS.get("mobile-cpu").configure(None, {}), passes, CompileOptions(verify_samples=0))
        return result.report["totals"]["latency_s"]


_TFLITE_2018 = ("TFLite of 2018 (before the ruy and XNNPACK kernels) ran about 3.5 GMAC/s fp32 on this core, "
                "36% of NEON peak; pixel2 assumes 75-80% for conv/pointwise and 25% for depthwise")


def _tflite(quantity: str, ms: float, name: str, int8: bool, note: str = _TFLITE_2018) -> Reference:
    """A row of the TFLite hosted-models table (Pixel 2, one thread on a big core)."""
    return Reference(target="mobile-cpu", quantity=quantity, reference=ms * 1e-3, unit="s", source=TFLITE,
                     measure=lambda: pixel2_latency(name, int8), note=note)


REFERENCES: list[Reference] = [
    _tflite("MobileNet V1 1.0/224 latency, float", 160.1, "mobilenet_v1", False),
    _tflite("MobileNet V1 1.0/224 latency, 8-bit", 70.2, "mobilenet_v1", True,
            "TFLite uint8 (quantization-aware trained) model; nncc: QDQ from its quantize pass, eff_int8 [U]"),
    _tflite("MobileNet V2 1.0/224 latency, float", 117.0, "mobilenet_v2", False),
    _tflite("MobileNet V2 1.0/224 latency, 8-bit", 53.4, "mobilenet_v2", True,
            "the table's later figure; its earlier version ('List of Hosted Models') gave 80.3 ms for the same model"),
    _tflite("Inception v1 (GoogLeNet) latency, 8-bit", 154.5, "light_inception_v1", True,
            "nncc: the onnx wheel's Inception v1 (with LRN) quantized by nncc; TFLite's Inception_V1_quant is "
            "TF-slim's graph (BatchNorm, no LRN) [U differences]"),
    _tflite("Inception v2 latency, 8-bit", 235.0, "light_inception_v2", True,
            "nncc: the onnx wheel's BN-Inception quantized by nncc; TFLite's Inception_V2_quant is TF-slim's graph [U differences]"),
    _tflite("DenseNet latency, float", 894.0, "light_densenet121", False,
            "nncc: the onnx wheel's DenseNet-121 (2.83 G MACs); TFLite's DenseNet (43.6 MB, 64.2% top-1) is not named "
            "further [U which depth]; " + _TFLITE_2018),
    Reference(
        target="mobile-cpu", quantity="MobileNet V2 latency, 8-bit, LPIRC 2018 winner", reference=27e-3, unit="s",
        source=f"{SECTION}: LPIRC 2018, arXiv 1903.06791 (27 ms on one Pixel 2 core) [V]",
        measure=lambda: pixel2_latency("mobilenet_v2", int8=True),
        note="no constant declares a fit to it, but the [U] efficiencies were written with it in view; the "
             "entry's width and resolution are [U] (1.0/224 assumed): TFLite's own 1.0/224 int8 model took 53 ms"),
]
