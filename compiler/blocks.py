"""Core-op blocks: how one weighted layer splits into crossbar-sized matrix blocks.

Pure functions over shapes and weights (no graph rewriting): the block plans for Gemm/MatMul
and Conv, the symmetric weight quantizer, the description of a weighted node, and the node
metadata keys that mark a legalized graph. The ``legalize-core-ops`` pass builds the blocks;
the TrueNorth target places and simulates them. Both read this module, so a mapping counts
the same blocks the pass builds, and neither imports the other.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx_ir as ir

from nncc.crossbar import max_abs
from nncc.grid import grid_values
from nncc.irutils import const_array, static_shape
from nncc.weights import Weight, bias_of, weight_of

# Node metadata a legalized graph carries: the core-op kind (block, partial, reduce, split,
# concat, act-quant, activation), the original layer, and a block's ranges of the layer's weight.
MARK, LAYER, BLOCK = "nncc.core_op", "nncc.layer", "nncc.block"
# The weighted ops a block plan exists for: matrix products with the weight as second operand.
# (ConvTranspose scatters inputs over a window; Einsum has no fixed layout; integer ops keep their
# own quantization.)
BLOCKED_OPS = frozenset({"Conv", "Gemm", "MatMul"})
_NOT_BLOCKED = {"ConvTranspose": "ConvTranspose scatters each input over a kernel window: no core-op block plan"}


# --- planning: shared with the targets, so a mapping counts the same blocks the pass builds ---

@dataclasses.dataclass(frozen=True)
class Block:
    """One core-op: output features [out0, out1) from input features [in0, in1) (Conv: channels).

    ``w_in`` is the slice of the weight's input axis (Conv: axis 1, which holds C/group).
    """

    in0: int
    in1: int
    out0: int
    out1: int
    groups: int = 1
    w_in: tuple[int, int] = (0, 0)

    def describe(self) -> str:
        return f"in={self.in0}:{self.in1} out={self.out0}:{self.out1} groups={self.groups}"

    @classmethod
    def parse(cls, text: str) -> Block | None:
        """Inverse of :meth:`describe` (``w_in`` is not recorded); None when ``text`` is malformed."""
        try:
            fields = dict(item.split("=") for item in text.split())
            (i0, i1), (o0, o1) = (map(int, fields[k].split(":")) for k in ("in", "out"))
            return cls(i0, i1, o0, o1, int(fields.get("groups", 1)))
        except (KeyError, ValueError):
            return None


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def fc_plan(k: int, m: int, crossbar: int, fan_out: int | None = None) -> list[list[Block]]:
    """Blocks of a K -> M matrix, grouped by output chunk (each group is Summed)."""
    ins = chunks(k, crossbar)
    return [[Block(a, b, c, d, 1, (a, b)) for a, b in ins] for c, d in chunks(m, fan_out or crossbar)]


def conv_plan(c: int, m: int, group: int, kernel: int, crossbar: int, fan_out: int | None = None) -> list[list[Block]] | str:
    """Blocks of a conv (C in, M out channels, ``kernel`` = prod(kernel_shape)); a reason string
    when no channel split can reach the crossbar size."""
    fan_out = fan_out or crossbar
    if kernel > crossbar:
        return f"one channel's window has {kernel} inputs, more than the crossbar's {crossbar} rows"
    cg, mg = c // group, m // group
    if group > 1 and cg * kernel <= crossbar and mg <= fan_out:
        per = min(crossbar // (cg * kernel), fan_out // mg)  # whole groups per block
        return [[Block(g0 * cg, g1 * cg, g0 * mg, g1 * mg, g1 - g0, (0, cg))] for g0, g1 in chunks(group, per)]
    plan = []
    for g in range(group):  # group == 1, or groups too big for one block: split each on its own
        ins = chunks(cg, crossbar // kernel)
        for o0, o1 in chunks(mg, fan_out):
            plan.append([Block(g * cg + a, g * cg + b, g * mg + o0, g * mg + o1, 1, (a, b)) for a, b in ins])
    return plan


def quantize_symmetric(w: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """(w on the 2^bits - 1 level symmetric grid, scale, max |error|); error <= scale / 2."""
    scale = symmetric_scale(w, bits)
    q, error = on_grid(w, scale)
    return q, scale, error


def symmetric_scale(w: np.ndarray, bits: int) -> float:
    """The step of w's 2^bits - 1 level symmetric grid (its largest |w| on the top level); 0.0
    for an all-zero w."""
    peak = max_abs(w)
    return 0.0 if peak == 0.0 else peak / ((1 << (bits - 1)) - 1)


def on_grid(w: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """(w on the grid of step ``scale``, max |error|): any part of a weight quantized with its
    whole weight's :func:`symmetric_scale` gives the whole's values there (a zero scale: w as it is)."""
    if scale == 0.0:
        return w.copy(), 0.0
    return grid_values(w, scale)


@dataclasses.dataclass
class BlockedLayer:
    """A weighted node seen as a K -> M matrix (Conv: channels) plus its rewrite recipe."""

    node: ir.Node
    weight: np.ndarray           # Gemm/MatMul: [K, M] as multiplied (alpha folded); Conv: [M, C/g, *k]
    bias: np.ndarray | None      # Gemm: [rows, M] (beta folded); Conv: [M]
    plan: list[list[Block]]
    fan_in: int
    fan_out: int
    axis: int                    # axis of the activation input that holds the input features
    operand: Weight              # the node's weight operand and its layout

    @property
    def is_conv(self) -> bool:
        """Blocks split channels of a convolution (the weight has kernel axes), not matrix features."""
        return bool(self.operand.layout.spatial_axes(self.weight.ndim))

    def weight_tensor(self, weight: np.ndarray) -> np.ndarray:
        """``weight`` (shaped as :attr:`weight`) back in the node's own layout (Gemm: alpha undone)."""
        if self.is_conv:  # a convolution's view is its weight tensor
            return weight
        layout = self.operand.layout
        matrix = weight / layout.scale if layout.scale else weight
        return layout.from_gemm_view(matrix.T, self.operand.shape).astype(weight.dtype)


NOT_CONSTANT = "weight operand is not a constant (only the second input may hold the weights)"


def describe_weighted(node: ir.Node, crossbar: int, fan_out: int | None = None) -> BlockedLayer | str:
    """The node as a legalizable layer, or why it is not one. The weight and its views come from
    the node's weight layout (:mod:`nncc.weights`)."""
    if node.op_type not in BLOCKED_OPS:
        return _NOT_BLOCKED.get(node.op_type, f"{node.op_type}: no core-op block plan (planned: {', '.join(sorted(BLOCKED_OPS))})")
    weight = weight_of(node)
    x = node.inputs[0]
    if weight is None or not weight.is_initializer or const_array(x) is not None:
        return NOT_CONSTANT
    layout, w = weight.layout, const_array(weight.value)
    if not np.issubdtype(w.dtype, np.floating):
        return f"weight dtype {w.dtype} is not floating point"
    if layout.index != 1:
        return NOT_CONSTANT
    bias_value = bias_of(node)
    bias = const_array(bias_value)
    if bias_value is not None and bias is None:
        return "bias is not a constant"
    xs = static_shape(x)
    kernel_axes = layout.spatial_axes(w.ndim)
    if kernel_axes:  # a convolution: blocks split its channels, never one channel's window
        if xs is None:
            return "input shape unknown"
        outputs, kernel = layout.outputs(w.shape), math.prod(w.shape[a] for a in kernel_axes)
        plan = conv_plan(xs[1], outputs, layout.groups, kernel, crossbar, fan_out)
        if isinstance(plan, str):
            return plan
        return BlockedLayer(node, w, bias, plan, layout.fan_in(w.shape), outputs, 1, weight)
    if node.op_type == "Gemm":  # y = alpha * A' B' + beta * C; A is [rows, K], or [K, rows] under transA
        axis = 0 if node.attributes.get_int("transA", 0) else 1
    elif w.ndim != 2 or xs is None:
        return f"{node.op_type} weight is not 2-D or input shape unknown"
    else:  # X [..., K] @ W [K, M]
        axis = len(xs) - 1
    (matrix,) = layout.matrices(w)  # [K, M] as multiplied
    k, m = matrix.shape
    if bias is not None:
        bias = node.attributes.get_float("beta", 1.0) * bias
        bias = np.broadcast_to(bias, (bias.shape[0] if bias.ndim == 2 else 1, m)).astype(w.dtype)
    return BlockedLayer(node, (layout.scale * matrix).astype(w.dtype), bias, fc_plan(k, m, crossbar, fan_out), k, m, axis, weight)
