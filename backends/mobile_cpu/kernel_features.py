"""What a detected kernel is (:class:`Kernel`) and its feature vector, the input of its fit
(:mod:`.kernel_fit`): MACs, bytes read and written, weight bytes and the convolution's shape
(``FEATURES``), from the mapping's rows and the tensors' shapes."""

from __future__ import annotations

import dataclasses
import math

import onnx_ir as ir
from nncc.irutils import static_shape

from .mapping import KernelRow

# Feature vector of every kernel (kernel_fit uses the same order).
FEATURES = ("macs", "in_bytes", "out_bytes", "w_bytes", "cin_g", "cout", "kernel", "stride", "out_spatial")


@dataclasses.dataclass
class Kernel:
    name: str
    kind: str                  # conv_nchwc, pointwise_nchwc, pointwise_nchw_in, depthwise_nchwc, conv_nchw, conv1d_nchw, gemm, gemv, pool,
                               # pool_nchwc, eltwise:<Op>, reorder_in, reorder_out, reshape, reshape_copy, transpose, concat, other:<Op>
    owner: str                 # the mapping row whose latency carries this kernel
    features: tuple[float, ...]
    rows: list[str] = dataclasses.field(default_factory=list)
    out: str = ""              # the tensor it writes (onnxruntime names NCHWc nodes after it)
    aliases: list[str] = dataclasses.field(default_factory=list)  # the tensors of its members (names onnxruntime may use)


def value_bytes(value: ir.Value | None) -> int:
    """Bytes of a tensor of static shape (a constant's or an inferred one); 0 when unknown."""
    if value is None:
        return 0
    shape = value.const_value.shape if value.const_value is not None else static_shape(value)
    return math.prod(shape) * value.dtype.itemsize if shape is not None and value.dtype is not None else 0


def data_features(in_bytes: float, out_bytes: float) -> tuple[float, ...]:
    """The features of a kernel that only moves data: bytes in and out (and elements out)."""
    return (0.0, float(in_bytes), float(out_bytes), 0.0, 0.0, 0.0, 0.0, 1.0, float(out_bytes) / 4)


def conv_features(row: KernelRow, cout_pad: int = 0) -> tuple[float, ...]:
    node = row.layer.node
    w = node.inputs[1].const_value.shape if node.inputs[1] is not None and node.inputs[1].const_value is not None else None
    out = static_shape(node.outputs[0]) or ()
    cout = w[0] if w else (out[1] if len(out) > 1 else 1)
    macs = float(row.macs) * (cout_pad / cout if cout_pad else 1.0)
    if row.op_class == "gemm":
        b = w if w else (static_shape(node.inputs[1]) if node.op_type == "MatMul" and node.inputs[1] is not None else None)
        # the reduced dimension: K of a MatMul's [.., K, N] operand (computed, as attention's, or constant), of a Gemm's weight
        cin_g = float(b[-2] if b and node.op_type == "MatMul" and len(b) >= 2 else w[-1] if w else 1)
        out_spatial = float(math.prod(out[:-1])) if out else 1.0
        return (macs, row.input_bytes, row.output_bytes, row.weight_bytes, cin_g, float(out[-1] if out else 1), 1.0, 1.0, out_spatial)
    kernel = float(math.prod(w[2:])) if w else 1.0
    stride = float(max(node.attributes.get_ints("strides", [1]) or [1]))
    return (macs, row.input_bytes, row.output_bytes, row.weight_bytes, float(w[1]) if w else 1.0, float(cout), kernel, stride,
            float(math.prod(out[2:])) if len(out) > 2 else 1.0)
