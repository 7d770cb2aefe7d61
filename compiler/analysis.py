"""The layer view: per-layer workload facts every pass and target starts from.

One :class:`Layer` per compute node of the (shape-inferred) graph: op, shapes, MACs,
parameters, bytes, and for weighted ops the weight with its layout (:mod:`nncc.weights`).
MACs count the multiply-accumulates of the dense operation as the ONNX node defines it;
element-wise work is counted separately in ``elementwise_ops``. Which class an op belongs
to is :mod:`nncc.ops`' table.

Recurrent layers (LSTM, GRU, RNN) run ``steps`` = seq_length serial time steps; each step
multiplies [W R] (per direction [gates*H, I + H]) by [x_t; h_{t-1}] for every batch row, so

    MACs = steps x directions x batch x gates*H x (I + H)

and the gate work (bias adds, gate products, sigmoid/tanh) goes to ``elementwise_ops``.
:func:`recurrence` gives a target the per-step GEMM shapes and the number of serial steps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.irutils import static_shape
from nncc.ops import CONTRIB_RECURRENT, DEFAULT_DOMAINS, INTEGER_OPS, NO_OPS, RECURRENT_GATES, op_class
from nncc.weights import Weight, bias_of, layer_name, weight_of

@dataclasses.dataclass
class Layer:
    name: str
    op: str
    domain: str
    input_shapes: list[tuple[int, ...] | None]
    output_shapes: list[tuple[int, ...] | None]
    macs: int
    params: int            # elements of constant (initializer) inputs
    weight_bytes: int
    input_bytes: int       # non-constant inputs, bytes
    output_bytes: int
    elementwise_ops: int   # output elements for non-MAC ops (one op each)
    attributes: dict[str, Any]
    node: ir.Node = dataclasses.field(repr=False, compare=False)
    weight: Weight | None = dataclasses.field(default=None, repr=False, compare=False)  # constant weight and its layout
    bias: ir.Value | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def is_weighted(self) -> bool:
        """A dot-product op with a constant weight operand (see :mod:`nncc.weights`)."""
        return self.weight is not None




def _nbytes(value: ir.Value | None) -> int:
    shape = static_shape(value)
    if shape is None or value.dtype is None:
        return 0
    return math.prod(shape) * value.dtype.itemsize


def _attrs(node: ir.Node) -> dict[str, Any]:
    out = {}
    for name, attr in node.attributes.items():
        value = attr.value
        if isinstance(value, (int, float, str)):
            out[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value):
            out[name] = list(value)
    return out


# ---------------------------------------------------------------- recurrent layers

# ONNX's default activations per direction, and how many of each gate's functions run per
# hidden unit and step: LSTM f on i, o, f, g on the cell candidate, h on the cell output;
# GRU f on z, r, g on the hidden candidate; RNN f.
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
_ACTIVATION_USES = {"LSTM": (3, 1, 1), "GRU": (2, 1), "RNN": (1,)}
# Simple ops per hidden unit and step besides the activations: LSTM 4 gates x (Wx + Rh, + bias)
# + c = f*c + i*g (3) + h = o*h(c) (1); GRU z, r: 2 x 2, candidate Wx + r*(Rh + Rb) + Wb (4),
# h = (1 - z)*h~ + z*h (4); RNN Wx + Rh + bias (2).
_GATE_SIMPLE_OPS = {"LSTM": 12, "GRU": 12, "RNN": 2}
_CHEAP_ACTIVATIONS = frozenset({"Affine", "Relu", "LeakyRelu", "ThresholdedRelu", "HardSigmoid"})


@dataclasses.dataclass(frozen=True)
class Recurrence:
    """The work of one recurrent node: ``steps`` serial time steps, each a GEMM per direction
    ([gates*H, I + H] weights by [I + H, batch] inputs and states) and element-wise gate work."""

    op: str
    gates: int
    hidden: int            # H
    input_size: int        # I
    directions: int
    batch: int
    steps: int             # seq_length: time steps, one after another (h_t needs h_{t-1})
    simple_ops: int        # element-wise ops per hidden unit and step (adds, products, cheap activations)
    transcendental_ops: int  # sigmoid/tanh/... evaluations per hidden unit and step
    multiply_ops: int = 0  # of simple_ops, the products (LSTM f*c, i*g, o*h; GRU r*., (1-z)*h~, z*h; peepholes)

    @property
    def rows(self) -> int:
        """Gate outputs per direction (GEMM m)."""
        return self.gates * self.hidden

    @property
    def reduction(self) -> int:
        """I + H: [W R] over [x_t; h_{t-1}] (GEMM k)."""
        return self.input_size + self.hidden

    @property
    def step_gemm(self) -> tuple[int, int, int, int]:
        """(independent GEMMs = directions, m = gates*H, n = batch, k = I + H) of one time step."""
        return self.directions, self.rows, self.batch, self.reduction

    @property
    def input_gemm(self) -> tuple[int, int, int]:
        """(m, n, k) of W x_t for one direction and step (the part that does not wait on h)."""
        return self.rows, self.batch, self.input_size

    @property
    def recurrent_gemm(self) -> tuple[int, int, int]:
        """(m, n, k) of R h_{t-1} for one direction and step (the serial part)."""
        return self.rows, self.batch, self.hidden

    @property
    def step_macs(self) -> int:
        return self.directions * self.rows * self.reduction * self.batch

    @property
    def macs(self) -> int:
        return self.steps * self.step_macs

    @property
    def step_units(self) -> int:
        """Hidden units updated per step (all directions and batch rows)."""
        return self.directions * self.batch * self.hidden

    @property
    def step_elementwise(self) -> tuple[int, int]:
        """(simple ops, transcendental evaluations) of one time step."""
        return self.step_units * self.simple_ops, self.step_units * self.transcendental_ops

    @property
    def elementwise_ops(self) -> int:
        """Every gate op of the node, one op each (the layer view's ``elementwise_ops``)."""
        return self.steps * self.step_units * (self.simple_ops + self.transcendental_ops)

    @property
    def hidden_elements(self) -> int:
        """Elements of Y, the hidden states of every step: computed whether or not the graph reads Y."""
        return self.steps * self.step_units


def stored_widths(layer: Layer) -> tuple[int | None, int | None]:
    """(weight bits, activation bits) the model itself fixes for a weighted layer: the integers'
    widths of an integer op (an activation that is not an integer: None), 8-bit weights and
    dynamically 8-bit inputs of com.microsoft's DynamicQuantizeLSTM, 16 for a float16 layer;
    None where the model leaves the width to the hardware (float32)."""
    node = layer.node
    if (layer.domain, layer.op) in CONTRIB_RECURRENT:
        dtype = node.inputs[1].dtype
        return (dtype.bitwidth if dtype is not None and dtype.is_integer() else None), 8
    weight = layer.weight
    if weight is None:
        return None, None
    act = node.inputs[weight.layout.activation_index]
    if weight.integer_bits is not None and layer.op in INTEGER_OPS:
        return weight.integer_bits, (act.dtype.bitwidth if act is not None and act.dtype is not None and act.dtype.is_integer() else None)
    if ir.DataType.FLOAT16 in (weight.value.dtype, act.dtype if act is not None else None):
        return 16, 16
    return None, None


def outputs_known(node: ir.Node) -> bool:
    """Every tensor the node produces has a static shape. An omitted optional output (an empty
    name, e.g. an LSTM whose Y nobody reads) is not produced and needs none; a sequence
    (SequenceInsert's) has no shape to know: its tensors are counted where they are made."""
    return all(static_shape(v) is not None for v in node.outputs
               if v is not None and v.name and not isinstance(v.type, (ir.SequenceType, ir.OptionalType)))


def recurrence(node: ir.Node) -> Recurrence | None:
    """The shapes of a recurrent node (LSTM, GRU, RNN of the default domain) from its input X
    ([seq, batch, I], or [batch, seq, I] with layout=1) and W/R; None for other nodes or
    when a shape is unknown. ``sequence_lens`` may stop rows early: the count is the bound.
    Also com.microsoft's DynamicQuantizeLSTM (:data:`nncc.ops.CONTRIB_RECURRENT`), whose W and R
    are stored transposed ([dirs, I, 4H], [dirs, H, 4H])."""
    op = node.op_type if node.domain in DEFAULT_DOMAINS else CONTRIB_RECURRENT.get((node.domain, node.op_type))
    if op not in RECURRENT_GATES or len(node.inputs) < 3:
        return None
    transposed = node.domain not in DEFAULT_DOMAINS
    x, w, r = (static_shape(v) if v is not None else None for v in node.inputs[:3])
    if x is None or w is None or len(x) != 3 or len(w) != 3:
        return None
    steps, batch = (x[1], x[0]) if node.attributes.get_int("layout", 0) else (x[0], x[1])
    gates = RECURRENT_GATES[op]
    hidden = node.attributes.get_int("hidden_size", 0) or (
        (r[1] if transposed else r[-1]) if r else (w[2] if transposed else w[1]) // gates)
    acts = list(node.attributes.get_strings("activations", []) or [])
    defaults = _DEFAULT_ACTIVATIONS[op]
    acts = acts[:len(defaults)] or list(defaults)
    simple, trans = _GATE_SIMPLE_OPS[op], 0
    for name, uses in zip(acts, _ACTIVATION_USES[op]):
        if name in _CHEAP_ACTIVATIONS or op_class(name) == "elementwise":
            simple += uses
        else:
            trans += uses
    products = 0 if op == "RNN" else 3
    if op == "LSTM" and len(node.inputs) > 7 and node.inputs[7] is not None:
        simple += 6  # peepholes: p_i*c, p_f*c, p_o*c and their adds
        products += 3
    if "clip" in node.attributes:
        simple += 2 * gates  # a compare with each bound per gate pre-activation
    return Recurrence(op, gates, int(hidden), int(x[2]), int(w[0]), int(batch), int(steps), simple, trans, products)


def node_macs(node: ir.Node) -> int:
    """Multiply-accumulates of one node; 0 for ops without a dot-product core."""
    op = node.op_type
    if op in RECURRENT_GATES or (node.domain, op) in CONTRIB_RECURRENT:
        rec = recurrence(node)
        return rec.macs if rec is not None else 0
    out = static_shape(node.outputs[0]) if node.outputs else None
    if op == "Conv" and out is not None:
        w = static_shape(node.inputs[1])
        if w is None:
            return 0
        return math.prod(out) * math.prod(w[1:])  # w: [M, C/group, k...]
    if op == "ConvTranspose":
        x, w = static_shape(node.inputs[0]), static_shape(node.inputs[1])
        if x is None or w is None:
            return 0
        return math.prod(x) * math.prod(w[1:])  # w: [C, M/group, k...]
    if op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul") and out is not None:
        a = static_shape(node.inputs[0])
        if a is None:
            return 0
        k = a[0] if (op == "Gemm" and node.attributes.get_int("transA", 0)) else a[-1]
        return math.prod(out) * k
    if op in ("QLinearConv", "ConvInteger") and out is not None:
        w = static_shape(node.inputs[3 if op == "QLinearConv" else 1])
        return math.prod(out) * math.prod(w[1:]) if w else 0
    if op == "Einsum" and out is not None:
        return _einsum_macs(node)
    return 0


def _einsum_macs(node: ir.Node) -> int:
    equation = node.attributes.get_string("equation", "").replace(" ", "")
    lhs, _, _ = equation.partition("->")
    sizes: dict[str, int] = {}
    for term, value in zip(lhs.split(","), node.inputs):
        shape = static_shape(value)
        if shape is None or "..." in term or len(term) != len(shape):
            return 0
        sizes.update(zip(term, shape))
    return math.prod(sizes.values())


def layers(model: ir.Model) -> list[Layer]:
    """The layer table of ``model``'s main graph, in topological order."""
    rows: list[Layer] = []
    taken: set[str] = set()
    for index, node in enumerate(model.graph):
        name = layer_name(node)
        if name in taken:  # ONNX does not require unique node names; a row's name must be unique
            name = f"{name}#{index}"
        taken.add(name)
        consts = [v for v in node.inputs if v is not None and v.const_value is not None]
        activations = [v for v in node.inputs if v is not None and v.const_value is None]
        macs = node_macs(node)
        rec = recurrence(node)
        out_elems = sum(math.prod(s) for s in (static_shape(o) for o in node.outputs) if s is not None)
        rows.append(
            Layer(
                name=name,
                op=node.op_type,
                domain=node.domain,
                input_shapes=[static_shape(v) for v in node.inputs],
                output_shapes=[static_shape(v) for v in node.outputs],
                macs=macs,
                params=sum(v.const_value.size for v in consts),
                weight_bytes=sum(v.const_value.nbytes for v in consts),
                input_bytes=sum(_nbytes(v) for v in activations),
                output_bytes=sum(_nbytes(v) for v in node.outputs),
                elementwise_ops=rec.elementwise_ops if rec is not None else 0 if macs or node.op_type in NO_OPS else out_elems,
                attributes=_attrs(node),
                node=node,
                weight=weight_of(node),
                bias=bias_of(node),
            )
        )
    return rows


def model_summary(model: ir.Model, rows: list[Layer] | None = None) -> dict[str, Any]:
    """Totals for the report's ``model`` section (``rows``: :func:`layers` of ``model``, when the
    caller has them)."""
    rows = layers(model) if rows is None else rows
    params = sum(v.const_value.size for v in model.graph.initializers.values() if v.const_value is not None)
    weight_bytes = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    return {
        "params": int(params),
        "weight_bytes": int(weight_bytes),
        "macs": int(sum(r.macs for r in rows)),
        "nodes": len(rows),
        "ops": dict(sorted(_count(r.op for r in rows).items())),
        "inputs": [{"name": v.name, "shape": list(static_shape(v) or []), "dtype": str(v.dtype)} for v in model.graph.inputs],
        "outputs": [{"name": v.name, "shape": list(static_shape(v) or []), "dtype": str(v.dtype)} for v in model.graph.outputs],
    }


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def input_specs(model: ir.Model) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """(name, static shape, numpy dtype) of every graph input."""
    return [(v.name, static_shape(v) or (), v.dtype.numpy()) for v in model.graph.inputs]
