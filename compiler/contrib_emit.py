"""The emitter the contrib-op decompositions (nncc.contrib) build with, and the pieces they share.

A builder never edits the graph itself: it asks an :class:`Emit` for nodes and constants, which
are kept aside until the builder returns the values that replace the contrib node's outputs.
A builder that finds something it cannot rewrite faithfully raises :class:`Refuse` and the
graph is left exactly as it was (the contrib node stays, unsupported, with the reason).

What is emitted must be valid at the model's own opset: the copy keeps its opset import, since
raising it would change the meaning of the model's other nodes (Softmax's axis before 13,
ReduceMean's and Split's inputs at 18, ...). So LayerNormalization (opset 17) and Gelu
(opset 20) are emitted only where the opset has them, and their explicit forms elsewhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.irutils import const_array
from nncc.control_flow import FreshNames
from nncc.weights import layer_name

# Slice and Reshape with their shape inputs, Where, Erf, MatMulInteger and DynamicQuantizeLinear
# are all there from opset 11, the oldest opset ORT's transformer optimizer and quantizer write.
MIN_OPSET = 11


class Refuse(Exception):
    """Raised by a builder when the node's form (an attribute, an optional input) has no
    faithful decomposition here; the message is the reason. Nothing it emitted is kept."""


class NeedShapes(Refuse):
    """Raised when the decomposition depends on a shape not known yet (an input made by another
    contrib op): :func:`nncc.contrib.decompose_contrib_ops` tries again once shapes are re-inferred."""


class Emit:
    """Nodes and constants that will replace one contrib node, named after it."""

    def __init__(self, model: ir.Model, node: ir.Node, names: FreshNames):
        self.model, self.node, self.names = model, node, names
        self.opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
        self.prefix = layer_name(node)
        self.nodes: list[ir.Node] = []
        self.initializers: list[ir.Value] = []
        # The float type the node computes in: its first floating input's (a contrib output
        # feeding it has the type the decomposition gave it), float32 when none is known.
        floats = [v.dtype for v in node.inputs if v is not None and v.dtype is not None and v.dtype.is_floating_point()]
        self.ftype = floats[0] if floats else ir.DataType.FLOAT

    # ----------------------------------------------------------------- reading the node

    def input(self, index: int) -> ir.Value | None:
        """Input ``index``, None when it is omitted (absent or an empty name)."""
        return self.node.inputs[index] if index < len(self.node.inputs) else None

    def require_absent(self, *indices: int, what: str = "input") -> None:
        for i in indices:
            if self.input(i) is not None:
                raise Refuse(f"{what} {i} ({self.input(i).name}) is not decomposed")

    def outputs_unused(self, *indices: int) -> None:
        """Refuse when one of these (optional) outputs is read: the decomposition does not make it."""
        graph = self.model.graph
        for i in indices:
            out = self.node.outputs[i] if i < len(self.node.outputs) else None
            if out is not None and out.name and (out.uses() or out in graph.outputs):
                raise Refuse(f"output {i} ({out.name}) is read and not decomposed")

    def int_attr(self, name: str, default: int) -> int:
        return self.node.attributes.get_int(name, default)

    def float_attr(self, name: str, default: float) -> float:
        return self.node.attributes.get_float(name, default)

    # ----------------------------------------------------------------- emitting

    def op(self, op_type: str, inputs: list[ir.Value | None], attributes: dict[str, Any] | None = None,
           outputs: int = 1) -> Any:
        """One default-domain node; its output value (a list when ``outputs`` > 1). Trailing
        omitted inputs are dropped (ONNX allows that, and not every op takes an empty name)."""
        inputs = list(inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
        node = ir.node(op_type, inputs, attributes=attrs, num_outputs=outputs,
                       name=self.names.node(f"{self.prefix}/{op_type}"))
        for out in node.outputs:
            out.name = self.names.value(f"{self.prefix}/{op_type}")
        self.nodes.append(node)
        return node.outputs[0] if outputs == 1 else list(node.outputs)

    def const(self, name: str, array: np.ndarray) -> ir.Value:
        value = ir.Value(name=self.names.value(f"{self.prefix}/{name}"), shape=ir.Shape(array.shape),
                         type=ir.TensorType(ir.DataType.from_numpy(array.dtype)), const_value=ir.tensor(array))
        self.initializers.append(value)
        return value

    def scalar(self, name: str, x: float) -> ir.Value:
        """A float scalar in the node's float type (an op with a float32 constant on a float16
        tensor would not type-check)."""
        return self.const(name, np.array(x, dtype=self.ftype.numpy()))

    def ints(self, name: str, values: list[int]) -> ir.Value:
        return self.const(name, np.array(values, np.int64))

    def mul(self, a: ir.Value, b: ir.Value | None, name: str = "scale") -> ir.Value:
        """a * b; folded into one constant when both are (two scales known before inference:
        numpy's float32 product is the one onnxruntime computes)."""
        if b is None:
            return a
        ca, cb = const_array(a), const_array(b)
        if ca is not None and cb is not None:
            return self.const(name, (ca * cb).astype(ca.dtype))
        return self.op("Mul", [a, b])

    def commit(self, results: list[ir.Value | None]) -> list[str]:
        """Insert what was emitted before the node, make ``results`` its outputs, drop it; the
        emitted op types, in order."""
        graph, node = self.model.graph, self.node
        for i, old in enumerate(node.outputs):
            new = results[i] if i < len(results) else None
            if new is None and old.name and (old.uses() or old in graph.outputs):
                raise Refuse(f"output {i} ({old.name}) is read and not decomposed")
        for value in self.initializers:
            graph.register_initializer(value)
        kept: list[tuple[ir.Value, ir.Value]] = []
        for old, new in zip(node.outputs, results):
            if new is None:
                continue
            dtype = new.dtype or old.dtype or self.ftype
            if old in graph.outputs or new.const_value is not None or new in graph.inputs:
                # A graph output keeps its name; a value that is not a node's output gets one.
                new = self.op("Identity", [new])
            new.dtype = new.dtype or dtype  # read by the builders of contrib nodes that follow
            kept.append((old, new))
        graph.insert_before(node, self.nodes)
        for old, new in kept:
            if old in graph.outputs:
                name = old.name
                old.name = self.names.value(f"{name}_contrib")
                new.name = name
                new.shape = old.shape
            ir.convenience.replace_all_uses_with(old, new, replace_graph_outputs=True)
        weights = [v for v in node.inputs if v is not None and graph.initializers.get(v.name) is v]
        graph.remove(node, safe=True)
        for value in weights:
            # A weight the rewrite replaced (QGemm's B, transposed) is not held twice by the hardware.
            if not value.uses() and value not in graph.outputs:
                graph.initializers.pop(value.name, None)
        return [n.op_type for n in self.nodes]


# --------------------------------------------------------------------- shared numerics

def reduce_mean_last(e: Emit, x: ir.Value) -> ir.Value:
    """Mean over the last axis, kept (ReduceMean's axes became an input at opset 18)."""
    if e.opset >= 18:
        return e.op("ReduceMean", [x, e.ints("axes", [-1])], {"keepdims": 1})
    return e.op("ReduceMean", [x], {"axes": [-1], "keepdims": 1})


def layer_norm(e: Emit, x: ir.Value, gamma: ir.Value, beta: ir.Value | None, epsilon: float,
               simplified: bool = False) -> ir.Value:
    """LayerNormalization over the last axis (``simplified``: RMS norm, no mean removed), as
    the opset-17 op where the model's opset has it, else as its explicit ops."""
    if not simplified and e.opset >= 17:
        return e.op("LayerNormalization", [x, gamma, beta], {"axis": -1, "epsilon": epsilon})
    centred = x if simplified else e.op("Sub", [x, reduce_mean_last(e, x)])
    variance = reduce_mean_last(e, e.op("Mul", [centred, centred]))
    std = e.op("Sqrt", [e.op("Add", [variance, e.scalar("epsilon", epsilon)])])
    y = e.op("Mul", [e.op("Div", [centred, std]), gamma])
    return e.op("Add", [y, beta]) if beta is not None else y


def gelu(e: Emit, x: ir.Value, approximate: bool = False) -> ir.Value:
    """GELU: x/2 (1 + erf(x/sqrt 2)), or with ``approximate`` the tanh form onnxruntime's
    FastGelu computes, x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); the opset-20 Gelu op where
    the opset has it."""
    if e.opset >= 20:
        return e.op("Gelu", [x], {"approximate": "tanh" if approximate else "none"})
    if approximate:
        cube = e.op("Mul", [e.op("Mul", [x, x]), x])
        inner = e.op("Mul", [e.op("Add", [x, e.op("Mul", [cube, e.scalar("c", 0.044715)])]),
                             e.scalar("sqrt_2_over_pi", float(np.sqrt(2.0 / np.pi)))])
        core = e.op("Tanh", [inner])
    else:
        core = e.op("Erf", [e.op("Mul", [x, e.scalar("rsqrt2", float(1.0 / np.sqrt(2.0)))])])
    half_x = e.op("Mul", [x, e.scalar("half", 0.5)])
    return e.op("Mul", [half_x, e.op("Add", [core, e.scalar("one", 1.0)])])


def slice_last(e: Emit, x: ir.Value, start: int, end: int) -> ir.Value:
    """x[..., start:end]."""
    return e.op("Slice", [x, e.ints("starts", [start]), e.ints("ends", [end]), e.ints("axes", [-1])])


def attention(e: Emit, q: ir.Value, k: ir.Value, v: ir.Value, heads: int, head_size: int,
              keep: ir.Value | None) -> ir.Value:
    """Scaled dot-product attention of [B, S, N*h] q, [B, L, N*h] k and [B, L, N*hv] v, as
    onnxruntime's Attention/MultiHeadAttention compute it: per head softmax(scale q k^T + mask) v,
    heads concatenated back to [B, S, N*hv]. Reshapes use 0 (copy) and -1 so no shape is needed
    (a contrib op's outputs have none before the copy is re-inferred). ``keep``: a boolean
    [B, L], the keys each row may attend; the others get mask_filter_value added, as in onnxruntime."""
    split = e.ints("heads_shape", [0, 0, heads, -1])
    qh = e.op("Transpose", [e.op("Reshape", [q, split])], {"perm": [0, 2, 1, 3]})
    kt = e.op("Transpose", [e.op("Reshape", [k, split])], {"perm": [0, 2, 3, 1]})
    vh = e.op("Transpose", [e.op("Reshape", [v, split])], {"perm": [0, 2, 1, 3]})
    scale = e.float_attr("scale", 0.0) or 1.0 / float(np.sqrt(head_size))
    scores = e.op("Mul", [e.op("MatMul", [qh, kt]), e.scalar("scale", scale)])
    if keep is not None:
        bias = e.op("Where", [keep, e.scalar("keep", 0.0), e.scalar("mask_filter", e.float_attr("mask_filter_value", -10000.0))])
        scores = e.op("Add", [scores, e.op("Reshape", [bias, e.ints("mask_shape", [0, 1, 1, -1])])])
    probs = e.op("Softmax", [scores], {"axis": -1})  # last axis: the same before and after opset 13
    context = e.op("Transpose", [e.op("MatMul", [probs, vh])], {"perm": [0, 2, 1, 3]})
    return e.op("Reshape", [context, e.ints("merge_shape", [0, 0, -1])])
