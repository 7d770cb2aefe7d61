"""Lowering for ``sparse-tc``: every layer becomes one GPU kernel row.

- Conv (im2col), Gemm and MatMul become a GEMM ``batch x (m x n x k)``: m = outputs
  (weight rows: output channels / features), n = output vectors (batch x H x W for a conv,
  rows of A for Gemm/MatMul), k = the reduction (C/g x kh x kw, or K); batch = conv groups
  or MatMul's broadcast batch. Convs run as implicit GEMMs (cuDNN): an input patch loaded
  once feeds kh x kw / stride^2 im2col rows, so the activation panel's L2 traffic shrinks by
  that reuse [U]. Depthwise convs (one input channel per group) run on the
  CUDA cores, as cuDNN does, since a 1-row GEMM wastes the 16x16 HMMA fragment.
- The weight operand is read in the same GEMM view as ``vector-sparsify``
  (``WeightLayout.gemm_view``: one row per output, vectors of L along the reduction); its
  vector-wise pattern is measured from the weights themselves: keep N = the largest
  non-zero count of any L-vector (the format stores N slots per vector), density,
  balanced fraction, and the shortest vector length showing the same N/L ratio.
- Recurrent layers (LSTM, GRU, RNN) run as cuDNN's non-persistent RNN kernels: every time
  step one batched GEMM (batch = directions, m = gates*H, n = batch, k = I + H: [W R] by
  [x_t; h_{t-1}]) and one element-wise gate kernel, the steps one after another (the row's
  m, n, k and bytes are one step's; ``steps`` repeats it). The weights are read every step
  [U: no persistent-kernel reuse modelled]; their vector pattern is measured on [W R].
  com.microsoft's DynamicQuantizeLSTM is the same LSTM with int8 W and R: its per-step GEMM
  runs on DP4A (below), the gate kernel as above.
- ConvTranspose runs as a library does it (cuDNN's backward-data / col2im): per group one
  HMMA GEMM [M/g x kh x kw rows] x [C/g] x [input pixels] (the layout's ``conv_transpose``
  GEMM view: one row per output channel and kernel position, the reduction over C/g) that
  writes the column buffer, then an overlap-add kernel (``col2im_bytes``: the column buffer
  read, the output written; its bias and epilogue run there, not fused into the GEMM).
- Integer ops of pre-quantized models (ConvInteger, MatMulInteger, QLinearConv,
  QLinearMatMul): Volta's Tensor Cores have no INT8 mode, so they run as DP4A int8 dot
  products on the INT32 cores (kind ``int8``: the int8 MAC rate of ``config``), with every
  tensor at its own width (int8/uint8 operands, int32 accumulators out).
  DynamicQuantizeLinear is a memory-bound kernel that reads its input twice (a min/max
  reduction, then the quantization) and writes uint8.
- Element-wise ops, pooling, reductions and data movement are memory-bound kernels;
  epilogue ops right after a GEMM fuse into it (``fuse_epilogue``); shape-only ops are
  no-ops, and so is a Cast between two float types (every float tensor is FP16 here already:
  an fp16 model's edge Casts convert nothing more than an fp32 model's inputs do).
  Einsum has no HMMA lowering here; it, anything without an op class, and a layer with
  unknown shapes go to ``unsupported``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.analysis import Layer, outputs_known, recurrence
from nncc.backends.base import Mapping, partition_layers
from nncc.cost import Unsupported
from nncc.irutils import const_array, static_shape
from nncc.ops import (DATA_OPS, DEFAULT_DOMAINS, ELEMENTWISE_OPS, EPILOGUE_OPS, INTEGER_OPS, NO_OPS, POOL_OPS,
                      TRANSCENDENTAL_OPS, WEIGHTED_OPS, is_recurrent)
from nncc.weight_refs import weight_refs
from nncc.weights import nonzeros_before, vector_counts

# The weighted ops this target runs as FP16 HMMA GEMMs (im2col / implicit-GEMM convs, GEMMs).
GEMM_OPS = frozenset({"Conv", "Gemm", "MatMul"})
NO_GEMM_LOWERING = ("weighted op without a GEMM lowering here: Conv/Gemm/MatMul/ConvTranspose (HMMA), the integer "
                    "ops (DP4A) and the recurrent ops are modelled (Einsum needs an equation-specific GEMM)")
# DynamicQuantizeLinear is listed explicitly until (and harmlessly after) nncc.ops classes it.
COSTABLE = WEIGHTED_OPS | ELEMENTWISE_OPS | TRANSCENDENTAL_OPS | POOL_OPS | DATA_OPS | NO_OPS | {"DynamicQuantizeLinear"}
# Slots of (activation, weight) of the integer ops.
INTEGER_SLOTS = {"ConvInteger": (0, 1), "MatMulInteger": (0, 1), "QLinearConv": (0, 3), "QLinearMatMul": (0, 3)}
DETECT_LENGTHS = (2, 4, 8, 16, 32, 64)


@dataclasses.dataclass
class SparsePattern:
    """Vector-wise pattern of one weight as the hardware (vector length L) reads it."""

    vector: int            # L used by the hardware
    keep: int              # N: slots per vector = max non-zeros of any vector
    rows: int
    vectors_per_row: int
    density: float         # measured non-zero fraction of the weight
    balanced_fraction: float  # share of full vectors with exactly N non-zeros
    detected_vector: int   # shortest L' with the same best N'/L' ratio (how it was sparsified)
    detected_keep: int


@dataclasses.dataclass
class KernelRow:
    name: str
    op: str
    kind: str              # gemm | recurrent | cuda_core | memory | fused | noop
    macs: int = 0
    m: int = 0
    n: int = 0
    k: int = 0
    batch: int = 1         # independent GEMMs (conv groups, MatMul batch)
    b_reuse: float = 1.0   # implicit-GEMM conv: each loaded input feeds kh x kw / stride^2 im2col rows
    weight: str | None = None
    weight_elements: int = 0
    input_bytes: int = 0   # activations read (FP16 for float tensors)
    output_bytes: int = 0
    pattern: SparsePattern | None = None
    fused_into: str | None = None
    fuses: list[str] = dataclasses.field(default_factory=list)
    steps: int = 1         # recurrent: serial time steps; m, n, k, bytes are one step's (macs the total)
    pointwise_bytes: int = 0  # recurrent: one step's gate kernel traffic (gate pre-activations in, states in and out)
    int8: bool = False     # DP4A on the INT32 cores (integer ops, DynamicQuantizeLSTM's step GEMM)
    weight_nbytes: int = 0  # int8 rows: the constants' bytes at their own widths
    col2im_bytes: int = 0  # ConvTranspose: the overlap-add kernel's traffic (column buffer in, output out)
    layer: Layer | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class SparseTcMapping(Mapping[KernelRow]):
    artifact_name = "kernel_map.json"


def tensor_bytes(value: ir.Value | None, value_bytes: int) -> int:
    """Bytes on the GPU: float tensors in FP16 (``value_bytes``), others at their own width."""
    shape = static_shape(value)
    if shape is None or value.dtype is None:
        return 0
    width = value_bytes if value.dtype.is_floating_point() else value.dtype.itemsize
    return math.prod(shape) * width


def measure_pattern(matrix: np.ndarray, vector: int) -> SparsePattern:
    """N-of-L pattern of a GEMM-view weight [rows, K] (the last short vector is zero-padded)."""
    before = nonzeros_before(matrix)
    counts = vector_counts(before, vector)
    keep = int(counts.max(initial=0))
    full = counts[:, : matrix.shape[1] // vector]
    detected, detected_keep, best = vector, keep, keep / vector
    for length in DETECT_LENGTHS:
        c = int(vector_counts(before, length).max(initial=0))
        if c / length < best - 1e-12 or (abs(c / length - best) <= 1e-12 and length < detected):
            detected, detected_keep, best = length, c, c / length
    return SparsePattern(
        vector=vector, keep=keep, rows=int(matrix.shape[0]), vectors_per_row=int(counts.shape[1]),
        density=float(before[:, -1].sum() / matrix.size) if matrix.size else 1.0,
        balanced_fraction=float(np.mean(full == keep)) if full.size else 1.0,
        detected_vector=detected, detected_keep=detected_keep)


def gemm_dims(node: ir.Node) -> tuple[int, int, int, int] | None:
    """(batch, m, n, k) of a Conv/Gemm/MatMul, m = outputs per GEMM; None if shapes unknown."""
    out = static_shape(node.outputs[0])
    if out is None:
        return None
    if node.op_type == "Conv":
        w = static_shape(node.inputs[1])
        if w is None or len(out) < 2:
            return None
        group = node.attributes.get_int("group", 1)
        return group, w[0] // group, out[0] * math.prod(out[2:]), math.prod(w[1:])
    a, b = static_shape(node.inputs[0]), static_shape(node.inputs[1])
    if a is None or b is None:
        return None
    if node.op_type == "Gemm":
        k = a[0] if node.attributes.get_int("transA", 0) else a[-1]
        return 1, out[-1], out[0], k
    if len(out) == 1:  # matrix-vector products
        return 1, out[0], 1, a[-1]
    k = a[-1]
    if len(b) == 2:  # constant-style B [K, N]: A's leading dims fold into n
        return 1, out[-1], math.prod(out[:-1]), k
    return math.prod(out[:-2]), out[-1], out[-2], k


def is_float_cast(node: ir.Node) -> bool:
    """A Cast from one float type to another (fp32 <-> fp16): the same FP16 tensor on this target."""
    if node.op_type != "Cast" or not node.inputs or node.inputs[0] is None:
        return False
    src, dst = node.inputs[0].dtype, node.outputs[0].dtype
    return src is not None and dst is not None and src.is_floating_point() and dst.is_floating_point()


def integer_dims(node: ir.Node) -> tuple[int, int, int, int] | None:
    """(batch, m, n, k) of an integer Conv/MatMul, as :func:`gemm_dims` for its float form."""
    x_slot, w_slot = INTEGER_SLOTS[node.op_type]
    out, a, w = static_shape(node.outputs[0]), static_shape(node.inputs[x_slot]), static_shape(node.inputs[w_slot])
    if out is None or a is None or w is None or len(out) < 2:
        return None
    if "Conv" in node.op_type:
        group = node.attributes.get_int("group", 1)
        return group, w[0] // group, out[0] * math.prod(out[2:]), math.prod(w[1:])
    if len(w) == 2:
        return 1, out[-1], math.prod(out[:-1]), a[-1]
    return math.prod(out[:-2]), out[-1], out[-2], a[-1]


def map_model(model: ir.Model, config: Any) -> SparseTcMapping:
    supported, unsupported = partition_layers(model, COSTABLE, "no sparse-tc estimator for this op")
    refs, _ = weight_refs(model.graph)
    ref_of = {layer: ref for ref in refs for layer in ref.layers}
    patterns: dict[str, SparsePattern | None] = {}
    graph_outputs = set(model.graph.outputs)
    head_of: dict[ir.Value, KernelRow] = {}
    rows: list[KernelRow] = []
    vb = config.value_bytes

    def single_use(value: ir.Value) -> bool:
        return len(value.uses()) == 1 and value not in graph_outputs

    for layer in supported:
        node = layer.node
        op = layer.op
        if op in NO_OPS or is_float_cast(node):
            rows.append(KernelRow(layer.name, op, "noop", layer=layer))
            continue
        if is_recurrent(layer.op, layer.domain):
            row = _recurrent_row(layer, config)
            if row is None:
                unsupported.append(Unsupported(layer.name, op, "shapes unknown: cannot form the per-step GEMM"))
            else:
                rows.append(row)
            continue
        if op in WEIGHTED_OPS and op not in GEMM_OPS and op not in INTEGER_OPS and op != "ConvTranspose":
            unsupported.append(Unsupported(layer.name, op, NO_GEMM_LOWERING))
            continue
        if not outputs_known(node):
            unsupported.append(Unsupported(layer.name, op, "output shape unknown: cannot cost"))
            continue
        acts = [v for v in node.inputs if v is not None and v.const_value is None]
        consts = [v for v in node.inputs if v is not None and v.const_value is not None]
        in_bytes = sum(tensor_bytes(v, vb) for v in acts)
        out_bytes = sum(tensor_bytes(v, vb) for v in node.outputs if v is not None)
        if op in INTEGER_OPS:
            dims = integer_dims(node)
            if dims is None or layer.macs <= 0:
                unsupported.append(Unsupported(layer.name, op, "shapes unknown: cannot form the int8 GEMM"))
                continue
            batch, m, n, k = dims
            rows.append(KernelRow(layer.name, op, "int8", layer.macs * config.batch, m, n * config.batch, k, batch,
                                  weight=layer.weight.value.name if layer.weight is not None else None,
                                  weight_elements=sum(v.const_value.size for v in consts),
                                  weight_nbytes=sum(int(v.const_value.nbytes) for v in consts),
                                  input_bytes=in_bytes * config.batch, output_bytes=out_bytes * config.batch,
                                  int8=True, layer=layer))
            continue
        if op == "ConvTranspose":
            row = _conv_transpose_row(layer, ref_of.get(layer.name), patterns, in_bytes, out_bytes, config)
            if row is None:
                unsupported.append(Unsupported(layer.name, op, "shapes unknown or weight not constant: cannot form the "
                                                               "col2im GEMM"))
            else:
                rows.append(row)
            continue
        if op == "DynamicQuantizeLinear":
            # Two passes over x: the min/max reduction, then the quantization (uint8 out).
            rows.append(KernelRow(layer.name, op, "memory", input_bytes=2 * in_bytes * config.batch,
                                  output_bytes=out_bytes * config.batch, layer=layer))
            continue
        if op in GEMM_OPS:
            dims = gemm_dims(node)
            if dims is None or layer.macs <= 0:
                unsupported.append(Unsupported(layer.name, op, "shapes unknown: cannot form the GEMM"))
                continue
            batch, m, n, k = dims
            # config.batch inputs at once: more output vectors (or more batched GEMMs for
            # activation x activation MatMuls), the same weights.
            if op == "MatMul" and layer.weight is None and len(static_shape(node.outputs[0]) or ()) > 2:
                batch *= config.batch
            else:
                n *= config.batch
            ref = ref_of.get(layer.name)
            weight = layer.weight.value.name if layer.weight is not None and layer.weight.is_initializer else None
            w_elems = sum(v.const_value.size for v in consts)  # the weight and the bias, both read from HBM
            row = KernelRow(layer.name, op, "gemm", layer.macs * config.batch, m, n, k, batch, weight=weight,
                            weight_elements=w_elems, input_bytes=in_bytes * config.batch, output_bytes=out_bytes * config.batch,
                            layer=layer)
            if op == "Conv":
                filters = static_shape(node.inputs[1])  # [M, C/g, k...], known: gemm_dims needed it
                strides = node.attributes.get_ints("strides", [1] * len(filters[2:]))
                row.b_reuse = max(1.0, math.prod(filters[2:]) / math.prod(strides))
                if batch > 1 and m == 1 and filters[1] == 1:
                    row.kind = "cuda_core"  # depthwise
            if row.kind == "gemm" and ref is not None and ref.layout is not None:
                if ref.name not in patterns:
                    patterns[ref.name] = measure_pattern(ref.layout.gemm_view(const_array(ref.value)), config.vector_length)
                row.pattern = patterns[ref.name]
            rows.append(row)
            if single_use(node.outputs[0]):
                head_of[node.outputs[0]] = row
            continue
        head = head_of.get(node.inputs[0]) if node.inputs else None
        if head is not None and config.fuse_epilogue and _fusible(node):
            head_of.pop(node.inputs[0], None)
            head.fuses.append(layer.name)
            head.output_bytes = out_bytes * config.batch
            if single_use(node.outputs[0]):
                head_of[node.outputs[0]] = head
            rows.append(KernelRow(layer.name, op, "fused", fused_into=head.name, layer=layer))
            continue
        w_bytes = sum(tensor_bytes(v, vb) for v in consts)
        rows.append(KernelRow(layer.name, op, "memory", input_bytes=in_bytes * config.batch + w_bytes,
                              output_bytes=out_bytes * config.batch, layer=layer))
    return SparseTcMapping(layers=rows, unsupported=unsupported)


def _conv_transpose_row(layer: Layer, ref, patterns: dict, in_bytes: int, out_bytes: int, config: Any) -> KernelRow | None:
    """ConvTranspose as col2im: per group a GEMM [M/g x kernel rows] x [C/g] x [input pixels]
    into a column buffer, then the overlap-add into the output."""
    weight, x = layer.weight, static_shape(layer.node.inputs[0])
    if weight is None or weight.shape is None or x is None or layer.macs <= 0 or not weight.is_initializer:
        return None
    layout, shape = weight.layout, weight.shape  # conv_transpose: [C, M/g, k...]
    group = layout.groups
    m = layout.outputs(shape) // group * math.prod(shape[2:])  # GEMM rows of one group
    k = layout.fan_in(shape) // max(1, math.prod(shape[2:]))   # C/g
    n = x[0] * math.prod(x[2:]) * config.batch
    vb = config.value_bytes
    column = group * m * n * vb
    consts = [v for v in layer.node.inputs if v is not None and v.const_value is not None]
    row = KernelRow(layer.name, layer.op, "gemm", layer.macs * config.batch, m, n, k, group, weight=weight.value.name,
                    weight_elements=sum(v.const_value.size for v in consts), input_bytes=in_bytes * config.batch,
                    output_bytes=column, col2im_bytes=column + out_bytes * config.batch, layer=layer)
    if ref is not None and ref.layout is not None:
        if ref.name not in patterns:
            patterns[ref.name] = measure_pattern(ref.layout.gemm_view(const_array(ref.value)), config.vector_length)
        row.pattern = patterns[ref.name]
    return row


def _recurrent_row(layer: Layer, config: Any) -> KernelRow | None:
    """One time step of a recurrent layer as a batched GEMM (``steps`` of them, serial)."""
    rec = recurrence(layer.node)
    if rec is None or rec.macs <= 0:
        return None
    vb, n = config.value_bytes, rec.batch * config.batch
    states = 2 if rec.op == "LSTM" else 1  # h (and the LSTM's cell c)
    state = rec.directions * n * rec.hidden * states * vb
    consts = [v for v in layer.node.inputs if v is not None and v.const_value is not None]
    row = KernelRow(layer.name, layer.op, "recurrent", layer.macs * config.batch, rec.rows, n, rec.reduction,
                    rec.directions, weight=layer.weight.value.name if layer.weight is not None else None,
                    weight_elements=sum(v.const_value.size for v in consts),
                    input_bytes=n * rec.input_size * vb + state, output_bytes=state, steps=rec.steps,
                    pointwise_bytes=rec.directions * n * rec.rows * vb + 2 * state, layer=layer)
    if layer.domain not in DEFAULT_DOMAINS:  # DynamicQuantizeLSTM: int8 W and R, the step GEMM on DP4A
        row.int8 = True
        row.weight_nbytes = sum(int(v.const_value.nbytes) for v in consts)
        return row
    weight = layer.weight
    if weight is not None and all(p.is_initializer for p in weight.parts) and weight.value.dtype is not None \
            and weight.value.dtype.is_floating_point():
        row.pattern = measure_pattern(weight.gemm_matrix(), config.vector_length)
    return row


def _fusible(node: ir.Node) -> bool:
    """A GEMM epilogue: an activation, or a per-channel constant bias/scale."""
    if node.op_type not in EPILOGUE_OPS:
        return False
    if node.op_type in ("Add", "Sub", "Mul", "Div"):
        other = node.inputs[1]
        return other is not None and other.const_value is not None and other.const_value.size <= 65536
    return all(v is None or v is node.inputs[0] or v.const_value is not None for v in node.inputs)
