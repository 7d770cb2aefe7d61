"""How a weighted op holds its weight: the one definition every pass and target reads.

A weighted op (:data:`nncc.ops.WEIGHTED_OPS`) multiplies activations by a weight tensor. Where
that weight sits and which of its axes are outputs, reduction and kernel depends on the op
and its attributes; :func:`weight_of` works it out once, as a :class:`Weight` with a
:class:`WeightLayout`, and the layout gives every view a consumer needs:

==================  =====================  =========================================
layout ``kind``     weight shape           ops
==================  =====================  =========================================
``out_first``       [M, C/g, k...] / [N, K]  Conv, QLinearConv, ConvInteger (group g);
                                           Gemm with transB=1; MatMul W @ X (W first)
``in_first``        [..., K, N]            Gemm with transB=0; MatMul X @ W;
                                           MatMulInteger, QLinearMatMul
``conv_transpose``  [C, M/g, k...]         ConvTranspose (the reduction runs over C)
``recurrent``       [dirs, gates*H, K]     LSTM, GRU, RNN: W (K = I, slot 1) and, as the
                                           weight's ``recurrence``, R (K = H, slot 2);
                                           one group per direction
==================  =====================  =========================================

A recurrent op multiplies two weights every time step, W by the input x_t and R by the
previous hidden state h_{t-1}; both have the gate rows (outputs) on axis 1 and the reduction
on axis 2, so each has the ``recurrent`` layout on its own, and :class:`Weight` holds R as
``recurrence``. The weight's joint views (:meth:`Weight.gemm_matrix`,
:meth:`Weight.filter_matrix`, :meth:`Weight.crossbar_matrices`) set W and R side by side
along the reduction, [W R] over [x_t; h_{t-1}]: one gate row is one filter of I + H weights.

Views (all exact reshapes/transposes, no arithmetic):
- :meth:`WeightLayout.gemm_view`: [rows, K], one row per output (per group), the reduction
  along the row -- how a GEMM kernel, a vector-sparse format or a pruning rule sees the weight;
- :meth:`WeightLayout.filter_view`: [filters, weights per filter], one row per output channel
  (differs from the GEMM view only for ConvTranspose, whose filter spans every kernel position);
- :meth:`WeightLayout.matrices`: per group, the [K fan-in, N outputs] matrix a crossbar holds.

A Gemm's ``alpha`` is the layout's ``scale``: the views leave it out, a consumer that needs
the product's true matrix multiplies by it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import onnx_ir as ir

from nncc.irutils import constant_value, is_constant, static_shape
from nncc.ops import DEFAULT_DOMAINS, RECURRENT_OPS, is_weighted

Kind = Literal["out_first", "in_first", "conv_transpose", "recurrent"]

# (weight input slot, bias input slot or None, layout kind) per op; Gemm and MatMul depend on
# attributes and on which operand is constant (see weight_of).
_CONV_LIKE: dict[str, tuple[int, int | None, Kind]] = {
    "Conv": (1, 2, "out_first"),
    "ConvTranspose": (1, 2, "conv_transpose"),
    "QLinearConv": (3, 8, "out_first"),
    "ConvInteger": (1, None, "out_first"),
}
_MATMUL_LIKE: dict[str, int] = {"MatMul": 1, "MatMulInteger": 1, "QLinearMatMul": 3}


@dataclasses.dataclass(frozen=True)
class WeightLayout:
    """Which axes of a weight tensor are outputs, reduction and kernel, and how groups cut it."""

    kind: Kind
    index: int          # the op's input slot holding the weight
    groups: int = 1
    scale: float = 1.0  # Gemm alpha: the product is scale * (A @ view)

    @property
    def activation_index(self) -> int:
        """The input slot of the operand the weight multiplies (the one beside a leading weight, W @ X)."""
        return 1 if self.index == 0 else 0

    @property
    def transposed(self) -> bool:
        """The reduction comes first in the tensor ([K, N] rather than [N, K])."""
        return self.kind == "in_first"

    def out_axis(self, ndim: int) -> int:
        """Axis of the outputs (for ConvTranspose: outputs per group)."""
        return {"out_first": 0, "in_first": ndim - 1, "conv_transpose": 1, "recurrent": 1}[self.kind] if ndim > 1 else 0

    def in_axis(self, ndim: int) -> int:
        """Axis of the reduction (for convolutions: input channels per group)."""
        return {"out_first": 1, "in_first": ndim - 2, "conv_transpose": 0, "recurrent": 2}[self.kind] if ndim > 1 else 0

    def spatial_axes(self, ndim: int) -> tuple[int, ...]:
        return tuple(range(2, ndim)) if self.kind not in ("in_first", "recurrent") else ()

    def outputs(self, shape: tuple[int, ...]) -> int:
        """Output channels / features (all groups)."""
        if self.kind == "conv_transpose":
            return shape[1] * self.groups
        if self.kind == "recurrent":  # gate rows of every direction
            return math.prod(shape[:-1])
        return shape[self.out_axis(len(shape))] if len(shape) > 1 else 1

    def fan_in(self, shape: tuple[int, ...]) -> int:
        """Weights per output: the reduction length of one output (per group for convolutions)."""
        if self.kind == "out_first":
            return math.prod(shape[1:]) if len(shape) > 1 else shape[0]
        if self.kind == "in_first":
            return shape[-2] if len(shape) > 1 else shape[0]
        if self.kind == "recurrent":
            return shape[-1]
        return shape[0] // self.groups * math.prod(shape[2:])

    # ---------------------------------------------------------------- views

    def gemm_view(self, weight: np.ndarray) -> np.ndarray:
        """[rows, K]: each row is one output's reduction vector (per group)."""
        shape = weight.shape
        if self.kind == "out_first":
            return weight.reshape(shape[0], -1)
        if self.kind == "recurrent":  # [dirs * gates*H, K]
            return weight.reshape(-1, shape[-1])
        if self.kind == "in_first":
            if weight.ndim == 1:  # MatMul by a vector: one output, reduction over all
                return weight.reshape(1, -1)
            return np.swapaxes(weight, -1, -2).reshape(-1, shape[-2])
        g, c, mg = self.groups, shape[0], shape[1]
        return weight.reshape(g, c // g, mg * int(np.prod(shape[2:]))).transpose(0, 2, 1).reshape(-1, c // g)

    def from_gemm_view(self, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of :meth:`gemm_view`."""
        if self.kind in ("out_first", "recurrent") or (self.kind == "in_first" and len(shape) == 1):
            return matrix.reshape(shape)
        if self.kind == "in_first":
            return np.swapaxes(matrix.reshape(*shape[:-2], shape[-1], shape[-2]), -1, -2)
        c = shape[0]
        return matrix.reshape(self.groups, -1, c // self.groups).transpose(0, 2, 1).reshape(shape)

    def filter_view(self, weight: np.ndarray) -> np.ndarray:
        """[filters, weights per filter]: one row per output channel or neuron."""
        if self.kind != "conv_transpose":
            return self.gemm_view(weight)
        g, c, mg = self.groups, weight.shape[0], weight.shape[1]
        k = int(np.prod(weight.shape[2:]))
        return weight.reshape(g, c // g, mg, k).transpose(0, 2, 1, 3).reshape(g * mg, -1)

    def from_filter_view(self, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if self.kind != "conv_transpose":
            return self.from_gemm_view(matrix, shape)
        c, mg = shape[0], shape[1]
        return matrix.reshape(self.groups, mg, c // self.groups, -1).transpose(0, 2, 1, 3).reshape(shape)

    def matrices(self, weight: np.ndarray) -> list[np.ndarray]:
        """Per group, the [K fan-in, N outputs] matrix (2-D weights only outside convolutions)."""
        rows = self.gemm_view(weight)
        n = rows.shape[0] // self.groups
        return [rows[i * n:(i + 1) * n].T for i in range(self.groups)]


@dataclasses.dataclass
class Weight:
    """The weight operand of one weighted node (for a recurrent op: W, with R as ``recurrence``)."""

    value: ir.Value
    layout: WeightLayout
    dequantized: bool   # produced by DequantizeLinear of constants (a QDQ model)
    integer_bits: int | None  # bits of the stored integers (integer ops, QDQ), None for float weights
    recurrence: Weight | None = None  # a recurrent op's R [dirs, gates*H, H] (same layout kind, slot 2)

    @property
    def parts(self) -> tuple[Weight, ...]:
        """Every weight the product reads: this one, and R for a recurrent op."""
        return (self,) if self.recurrence is None else (self, self.recurrence)

    @property
    def elements(self) -> int | None:
        """Weights the product reads (W and R for a recurrent op); None when a shape is unknown."""
        shapes = [part.shape for part in self.parts]
        return None if any(s is None for s in shapes) else sum(math.prod(s) for s in shapes)

    def gemm_matrix(self) -> np.ndarray:
        """[rows, reduction]: the GEMM view of every part side by side along the reduction
        (a recurrent op: [W R], one row per gate output of each direction)."""
        return np.concatenate([p.layout.gemm_view(p.array()) for p in self.parts], axis=1) \
            if self.recurrence is not None else self.layout.gemm_view(self.array())

    def filter_matrix(self) -> np.ndarray:
        """[filters, weights per filter] over every part (a recurrent op: a gate row of W and R)."""
        return self.gemm_matrix() if self.recurrence is not None else self.layout.filter_view(self.array())

    def crossbar_matrices(self) -> list[np.ndarray]:
        """Per group, the [fan-in, outputs] matrix the product multiplies (a recurrent op: per
        direction [I + H, gates*H], W's rows above R's, driven by [x_t; h_{t-1}])."""
        if self.recurrence is None:
            return self.layout.matrices(self.array())
        per_part = [p.layout.matrices(p.array()) for p in self.parts]
        return [np.concatenate(group, axis=0) for group in zip(*per_part)]

    @property
    def is_initializer(self) -> bool:
        """An initializer a pass may rewrite (not computed from other constants)."""
        return self.value.const_value is not None

    @property
    def shape(self) -> tuple[int, ...] | None:
        if self.value.const_value is not None:
            return tuple(self.value.const_value.shape)
        return static_shape(self.value)

    def array(self) -> np.ndarray:
        """The weight as the product uses it (dequantized to float for QDQ weights)."""
        array = constant_value(self.value)
        if array is None:  # weight_of only builds a Weight for a constant operand
            raise ValueError(f"weight '{self.value.name}' is not constant")
        return array

    @property
    def fan_in(self) -> int | None:
        """Weights per output over every part (a recurrent op: I + H, W's row and R's)."""
        shapes = [part.shape for part in self.parts]
        if any(not s for s in shapes):
            return None
        return sum(part.layout.fan_in(s) for part, s in zip(self.parts, shapes))

    @property
    def outputs(self) -> int | None:
        shape = self.shape
        return self.layout.outputs(shape) if shape else None


def _integer_bits(value: ir.Value) -> int | None:
    source = value
    producer = value.producer()
    if value.const_value is None and producer is not None and producer.op_type == "DequantizeLinear":
        source = producer.inputs[0]
    dtype = source.const_value.dtype if source.const_value is not None else source.dtype
    if dtype is None or not dtype.is_integer():
        return None
    return dtype.bitwidth


def _make(value: ir.Value, layout: WeightLayout) -> Weight:
    producer = value.producer()
    dequantized = value.const_value is None and producer is not None and producer.op_type == "DequantizeLinear"
    return Weight(value, layout, dequantized, _integer_bits(value))


def _input(node: ir.Node, index: int) -> ir.Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


def weight_of(node: ir.Node) -> Weight | None:
    """The constant weight of a weighted node and its layout; None when the node is not a weighted
    op or multiplies two activations (attention scores, a weight fed in at run time)."""
    if not is_weighted(node.op_type, node.domain):
        return None
    op = node.op_type
    if op in _CONV_LIKE:
        index, _, kind = _CONV_LIKE[op]
        value = _input(node, index)
        if not is_constant(value):
            return None
        return _make(value, WeightLayout(kind, index, node.attributes.get_int("group", 1)))
    if op == "Gemm":
        value = _input(node, 1)
        if not is_constant(value):
            return None
        kind: Kind = "out_first" if node.attributes.get_int("transB", 0) else "in_first"
        return _make(value, WeightLayout(kind, 1, 1, node.attributes.get_float("alpha", 1.0)))
    if op in _MATMUL_LIKE:
        index = _MATMUL_LIKE[op]
        value = _input(node, index)
        if is_constant(value):
            return _make(value, WeightLayout("in_first", index))
        first = _input(node, 0)
        if op == "MatMul" and is_constant(first):
            shape = first.const_value.shape if first.const_value is not None else static_shape(first)
            if shape is not None and len(shape) == 2:  # W [M, K] @ X [..., K, N]: rows of W are the outputs
                return _make(first, WeightLayout("out_first", 0))
        return None
    if op in RECURRENT_OPS:
        return _recurrent_weight(node)
    return None  # Einsum: the equation decides; no layout yet


def _recurrent_weight(node: ir.Node) -> Weight | None:
    """W (slot 1) with R (slot 2) as its recurrence; None unless both are constant."""
    w, r = _input(node, 1), _input(node, 2)
    if not (is_constant(w) and is_constant(r)):
        return None
    shape = w.const_value.shape if w.const_value is not None else static_shape(w)
    directions = shape[0] if shape else (2 if node.attributes.get_string("direction", "forward") == "bidirectional" else 1)
    weight = _make(w, WeightLayout("recurrent", 1, int(directions)))
    weight.recurrence = _make(r, WeightLayout("recurrent", 2, int(directions)))
    return weight


def bias_of(node: ir.Node) -> ir.Value | None:
    """The bias (Conv, ConvTranspose, QLinearConv) or addend C (Gemm) of a weighted node."""
    if node.op_type in _CONV_LIKE:
        index = _CONV_LIKE[node.op_type][1]
        return _input(node, index) if index is not None else None
    if node.op_type == "Gemm":
        return _input(node, 2)
    if node.op_type in RECURRENT_OPS and node.domain in DEFAULT_DOMAINS:
        return _input(node, 3)  # B [dirs, 2*gates*H]: Wb and Rb
    return None


def vector_blocks(matrix: np.ndarray, vector: int) -> np.ndarray:
    """A GEMM view [rows, K] as [rows, n_vectors, vector]: each row cut into vectors of ``vector``
    weights along the reduction (the vector-wise sparse format); the last short vector is
    padded with zeros."""
    rows, k = matrix.shape
    count = -(-k // vector)
    padded = np.zeros((rows, count * vector), dtype=matrix.dtype)
    padded[:, :k] = matrix
    return padded.reshape(rows, count, vector)


def nonzero_count(a: np.ndarray) -> int:
    """np.count_nonzero(a), 3x faster on floats: counted on ``a != 0`` (numpy's own float path is
    scalar); -0.0 counts as zero and NaN as non-zero either way."""
    return int(np.count_nonzero(a != 0) if a.dtype.kind == "f" else np.count_nonzero(a))


def nonzeros_before(matrix: np.ndarray) -> np.ndarray:
    """[rows, K + 1]: per row, how many of the first j weights are nonzero (column j). The count
    of any vector of any length is a difference of two of its columns (:func:`vector_counts`):
    one pass over the weights serves every vector length. Read-only."""
    rows, k = matrix.shape
    if nonzero_count(matrix) == matrix.size:
        # No zero weight (most models as trained): column j is j in every row, without a pass
        # over the weights (the cumulative sum was 0.15 s of ResNet-50's 0.3 s for sparse-tc).
        return np.broadcast_to(np.arange(k + 1, dtype=np.int32), (rows, k + 1))
    before = np.zeros((matrix.shape[0], matrix.shape[1] + 1), dtype=np.int32)
    np.cumsum(matrix != 0, axis=1, dtype=np.int32, out=before[:, 1:])
    return before


def vector_counts(before: np.ndarray, vector: int) -> np.ndarray:
    """[rows, n_vectors]: the nonzero weights of each vector of :func:`vector_blocks`, from
    :func:`nonzeros_before` (the zero padding of the last vector counts nothing)."""
    k = before.shape[1] - 1
    starts = np.arange(0, k, vector)
    return before[:, np.minimum(starts + vector, k)] - before[:, starts]


def layer_name(node: ir.Node) -> str:
    """A node's name in the layer view, the pass stats and the reports: its own name, else its
    first output's (a value name is unique in a graph, and stays while passes insert nodes)."""
    return node.name or (node.outputs[0].name if node.outputs else node.op_type)
