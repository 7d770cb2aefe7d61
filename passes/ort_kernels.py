"""Which kernels onnxruntime runs for a model, read from its optimized graph: whether a
quantized (QDQ) model really reaches the integer kernels (QLinearConv, QGemm...) or falls back to
float ones (the quantize and mixed-precision passes record it)."""

from __future__ import annotations

import collections
import os
import tempfile
from typing import Any

import onnx
import onnx_ir as ir
import onnxruntime as ort

from nncc.errors import NnccError
from nncc.loading import stamp_runtime_ir_version


def onnxruntime_kernels(model: ir.Model) -> dict[str, Any]:
    """Which kernels onnxruntime runs, read from its optimized graph (ORT_ENABLE_ALL, CPU)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    stamp_runtime_ir_version(model)
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        try:
            ort.InferenceSession(ir.to_proto(model).SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise NnccError("quantize", f"onnxruntime cannot run the quantized model: {str(e).splitlines()[0]}") from None
        optimized = onnx.load(options.optimized_model_filepath, load_external_data=False)
    ops = collections.Counter(n.op_type for n in optimized.graph.node)
    integer = {op: n for op, n in ops.items() if op.startswith("QLinear") or "Integer" in op or op in ("QGemm", "QAttention")}
    dense = {op: n for op, n in ops.items() if op in ("Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul")}
    return {"integer": dict(sorted(integer.items())), "float": dict(sorted(dense.items())),
            "quantize_dequantize": ops["QuantizeLinear"] + ops["DequantizeLinear"]}
