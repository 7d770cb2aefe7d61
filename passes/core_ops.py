"""``legalize-core-ops``: restructure a network into crossbar-sized core-ops.

After Ji et al., "Bridging the gap between neural networks and neuromorphic hardware with a
neural network compiler" (ASPLOS 2018): a trained network becomes an equivalent one that
meets the hardware's three constraints.

1. Computation scale. Every Conv/Gemm/MatMul with constant weights becomes matrix-vector
   "core-ops" of fan-in <= ``crossbar`` and fan-out <= ``crossbar``:
   - Gemm/MatMul: the input features are Split into chunks of <= X, each chunk multiplies a
     <= X x X weight block; the partial results of one output chunk are added by a
     reduction core-op (``Sum``, which also carries the bias); output chunks are Concat-ed.
   - Conv: input channels are split so that C_chunk * kh * kw <= X (one channel's window is
     never split: a kernel larger than X is reported, not legalized), output channels into
     chunks <= X; partial convs of one output chunk are Summed, output chunks Concat-ed.
     Grouped convs keep their groups: whole groups are packed into a block while they fit.
2. Precision. Weights are quantized-dequantized in place to ``weight_bits`` (symmetric,
   per layer, scale = max|W| / (2^(b-1) - 1)); the error per weight is <= scale / 2 and the
   largest one is recorded. Biases stay float: the target turns them into its own form
   (a neuron leak on TrueNorth). ``activation_bits`` inserts a quantizer (Div, Round, Clip,
   Mul) on each layer's input, ranges measured on the calibration inputs.
3. Non-linear functions. Activations outside ``supported_activations`` are replaced where an
   exact substitute exists (LeakyRelu(alpha=0), Clip(min=0, no max), PRelu(slope 0) -> Relu);
   Clip(0, c) -> Relu is not exact and happens only with ``approximate=True``; the rest
   (Sigmoid, Tanh, ...) is listed in ``stats["unsupported_activations"]``.

Every node the pass creates or legalizes carries ``metadata_props["nncc.core_op"]`` (block,
partial, reduce, split, concat, act-quant, activation) and ``["nncc.layer"]`` (the original
layer); core-op blocks also carry ``["nncc.block"]`` ("in=a:b out=c:d groups=g", ranges of the
layer's weight). Marked nodes are never legalized again, so a second run changes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from nncc import runtime
from nncc.analysis import input_specs
from nncc.errors import NnccError
from nncc.irutils import add_initializer, const_array, drop_unused_initializers, fresh_name, graph_names, replace_node_output, static_shape
from nncc.blocks import BLOCK, LAYER, MARK, Block, BlockedLayer, describe_weighted, on_grid, symmetric_scale
from nncc.ops import ACTIVATIONS
from nncc.pass_base import NnccPass
from nncc.passes.weighted import skip_record, weighted_nodes
from nncc.pipeline import PassContext
from nncc.weights import layer_name

# onnx-ir hides initializers over 1 KB from shape inference: longer Split size lists use Slices.
_MAX_SPLIT_OUTPUTS = 100


@dataclasses.dataclass
class LegalizeCoreOps(NnccPass):
    """Split layers into crossbar-sized core-ops with reduction ops; limit precision and activations.

    Parameters:
      crossbar: rows and columns of one crossbar / core (fan-in and fan-out limit).
      fan_out: output limit when it differs from the fan-in limit (None: ``crossbar``).
      weight_bits: symmetric per-layer weight precision (levels +-(2^(b-1) - 1)).
      activation_bits: precision of each layer's input (needs calibration data); None keeps float.
      supported_activations: non-linear ops the target has (comma separated).
      approximate: also apply inexact substitutes (Clip(0, c) -> Relu).
    """

    name = "legalize-core-ops"
    target_independent = True
    keeps_shapes = True  # every block, split, sum and activation value is made with its shape (_value)
    summary = "split Conv/Gemm/MatMul into crossbar-sized core-ops + reduction ops; quantize weights; legalize activations"
    crossbar: int = 256
    fan_out: int | None = None
    weight_bits: int = 8
    activation_bits: int | None = None
    supported_activations: str = "Relu"
    approximate: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crossbar < 1 or (self.fan_out is not None and self.fan_out < 1):
            raise NnccError(f"--pass {self.name}", f"crossbar and fan_out must be >= 1 (got {self.crossbar}, {self.fan_out})")
        for key in ("weight_bits", "activation_bits"):
            bits = getattr(self, key)
            if bits is not None and not 2 <= bits <= 24:
                raise NnccError(f"--pass {self.name}", f"{key} must be in 2..24 (got {bits})")

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        self._taken = graph_names(graph)
        self._opset = model.opset_imports.get("", 17)
        self._zero_cs: dict[str, ir.Value] = {}
        layers: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        already = 0
        todo = []
        for node, label, _ in weighted_nodes(graph):
            if MARK in node.metadata_props:
                already += 1
                continue
            layer = describe_weighted(node, self.crossbar, self.fan_out)
            if isinstance(layer, str):
                skipped.append(skip_record(node, label, layer))
            else:
                todo.append((label, layer))
        ranges = self._activation_ranges(model, [layer for _, layer in todo]) if self.activation_bits and todo else {}
        for label, layer in todo:
            if layer.node.inputs[0] in ranges:
                self._quantize_activation(graph, layer.node, ranges[layer.node.inputs[0]], label)
            layers.append({"name": label, **self._legalize(graph, layer, label)})
        replaced, unsupported = self._legalize_activations(graph)
        if todo:
            drop_unused_initializers(graph)
        self.stats.update({
            "crossbar": self.crossbar, "fan_out": self.fan_out or self.crossbar, "weight_bits": self.weight_bits, "activation_bits": self.activation_bits,
            "legalized_layers": len(layers), "already_legalized_nodes": already,
            "core_ops": sum(r["core_ops"] for r in layers),
            "reduction_ops": sum(r["reduction_ops"] for r in layers),
            "max_weight_error": max((r["max_weight_error"] for r in layers), default=0.0),
            "layers": layers, "skipped": skipped, "replaced": replaced, "unsupported_activations": unsupported,
        })
        return bool(layers or replaced)

    # --- layers -----------------------------------------------------------------------

    def _legalize(self, graph: ir.Graph, layer: BlockedLayer, label: str) -> dict[str, Any]:
        node = layer.node
        # The layer's grid step from all of its weights; each block is quantized on it straight into
        # its own array (a whole quantized copy, then every block copied out of it, wrote the
        # weights twice). The blocks partition the weights: their largest error is the layer's.
        scale = symmetric_scale(layer.weight, self.weight_bits)
        errors: list[float] = []

        def quantized(part: np.ndarray) -> np.ndarray:
            q, error = on_grid(part, scale)
            errors.append(error)
            return q

        blocks = sum(len(group) for group in layer.plan)
        if blocks == 1:  # fits one crossbar: quantize in place, keep the node (and its attributes) as it is
            value = layer.operand.value
            tensor = np.ascontiguousarray(layer.weight_tensor(quantized(layer.weight)))
            node.replace_input_with(layer.operand.layout.index, self._initializer(graph, f"{value.name}_q{self.weight_bits}", tensor))
            node.metadata_props.update({MARK: "block", LAYER: label, BLOCK: layer.plan[0][0].describe()})
        else:
            self._split(graph, layer, quantized, label)
        return {"op": node.op_type, "fan_in": int(layer.fan_in), "fan_out": int(layer.fan_out),
                "in_chunks": len(layer.plan[0]), "out_chunks": len(layer.plan), "core_ops": blocks,
                "reduction_ops": sum(1 for group in layer.plan if len(group) > 1),
                "weight_scale": scale, "max_weight_error": float(np.max(errors)), "error_bound": scale / 2}

    def _split(self, graph: ir.Graph, layer: BlockedLayer, quantized, label: str) -> None:
        node, x = layer.node, layer.node.inputs[0]
        out = node.outputs[0]
        meta = {LAYER: label}
        new: list[ir.Node] = []
        # Input chunks: one Split over the distinct input ranges (they partition the features).
        ranges = sorted({(b.in0, b.in1) for group in layer.plan for b in group})
        piece = {ranges[0]: x}
        if 1 < len(ranges) <= _MAX_SPLIT_OUTPUTS:
            sizes = [b - a for a, b in ranges]
            axis = layer.axis
            split_inputs = [x]
            attrs = [ir.AttrInt64("axis", axis)]
            if self._opset >= 13:
                split_inputs.append(self._initializer(graph, f"{label}_split_sizes", np.asarray(sizes, np.int64)))
            else:
                attrs.append(ir.AttrInt64s("split", sizes))
            outs = [self._value(f"{label}_in{i}", x, _resize(static_shape(x), axis, s)) for i, s in enumerate(sizes)]
            new.append(self._node("Split", split_inputs, outs, attrs, f"{label}/split", {**meta, MARK: "split"}))
            piece = dict(zip(ranges, outs))
        elif len(ranges) > 1:  # many pieces: one Slice each (a long Split size list hides shapes from inference)
            axes = self._initializer(graph, f"{label}_slice_axis", np.asarray([layer.axis], np.int64))
            for i, (a, b) in enumerate(ranges):
                bounds = [self._initializer(graph, f"{label}_slice{i}_{k}", np.asarray([v], np.int64)) for k, v in (("start", a), ("end", b))]
                value = self._value(f"{label}_in{i}", x, _resize(static_shape(x), layer.axis, b - a))
                new.append(self._node("Slice", [x, *bounds, axes], [value], [], f"{label}/slice{i}", {**meta, MARK: "split"}))
                piece[(a, b)] = value
        results = []
        for j, group in enumerate(layer.plan):
            partial = len(group) > 1
            parts = []
            for i, b in enumerate(group):
                inputs = [piece[(b.in0, b.in1)], self._block_weight(graph, layer, quantized, b, label, i, j)]
                if not partial and layer.bias is not None:
                    inputs.append(self._bias(graph, layer, b, label, j, for_sum=False))
                elif node.op_type == "Gemm" and self._opset < 11:
                    inputs.append(self._zero_c(graph, layer, label))  # Gemm's C is optional from opset 11 only
                shape = _resize(static_shape(out), 1 if layer.is_conv else -1, b.out1 - b.out0)
                value = self._value(f"{label}_core{j}_{i}", out, shape)
                new.append(self._node(node.op_type, inputs, [value], self._block_attrs(node, b), f"{label}/core{j}_{i}",
                                      {**meta, MARK: "partial" if partial else "block", BLOCK: b.describe()}))
                parts.append(value)
            if partial:
                if layer.bias is not None:
                    parts.append(self._bias(graph, layer, group[0], label, j, for_sum=True))
                value = self._value(f"{label}_sum{j}", out, static_shape(parts[0]))
                new.append(self._node("Sum", parts, [value], [], f"{label}/reduce{j}", {**meta, MARK: "reduce"}))
                parts = [value]
            results.append(parts[0])
        if len(results) > 1:
            final = self._value(f"{label}_concat", out, static_shape(out))
            axis = 1 if layer.is_conv else (-1 if self._opset >= 11 else len(static_shape(out) or (0, 0)) - 1)
            new.append(self._node("Concat", results, [final], [ir.AttrInt64("axis", axis)], f"{label}/concat", {**meta, MARK: "concat"}))
        else:
            final = results[0]
        graph.insert_before(node, new)
        final.shape, final.type = out.shape, out.type
        replace_node_output(graph, node, out, final, "_unlegalized")

    def _block_weight(self, graph, layer: BlockedLayer, quantized, b: Block, label: str, i: int, j: int) -> ir.Value:
        """Block ``b``'s weights, quantized (``quantized``: a part of the layer's weight -> on its grid)."""
        if layer.is_conv:
            w = layer.weight[b.out0:b.out1, b.w_in[0]:b.w_in[1]]
        else:
            w = layer.weight[b.in0:b.in1, b.out0:b.out1]  # [K, M] as multiplied; blocks use transB=0, alpha=1
        return self._initializer(graph, f"{label}_w{j}_{i}", np.ascontiguousarray(quantized(w)))

    def _bias(self, graph, layer: BlockedLayer, b: Block, label: str, j: int, for_sum: bool) -> ir.Value:
        if layer.is_conv:
            bias = layer.bias[b.out0:b.out1]
            if for_sum:  # broadcast over [N, M, *spatial]
                bias = bias.reshape((-1,) + (1,) * (layer.weight.ndim - 2))
        else:
            bias = layer.bias[:, b.out0:b.out1]
            bias = bias[0] if bias.shape[0] == 1 else bias
        return self._initializer(graph, f"{label}_b{j}", np.ascontiguousarray(bias))

    def _zero_c(self, graph, layer: BlockedLayer, label: str) -> ir.Value:
        """A scalar zero C for a Gemm block without its own (no bias, or a partial block whose bias goes to the
        Sum): opset <= 10 requires C. One per layer."""
        zeros = self._zero_cs
        if label not in zeros:
            zeros[label] = self._initializer(graph, f"{label}_c0", np.zeros((1,), dtype=layer.weight.dtype))
        return zeros[label]

    @staticmethod
    def _block_attrs(node: ir.Node, b: Block) -> list[ir.Attr]:
        if node.op_type == "Conv":
            keep = [a for n, a in node.attributes.items() if n != "group"]
            return keep + ([ir.AttrInt64("group", b.groups)] if b.groups > 1 else [])
        if node.op_type == "Gemm" and node.attributes.get_int("transA", 0):
            return [ir.AttrInt64("transA", 1)]
        return []

    # --- graph helpers --------------------------------------------------------------------

    def _unique(self, base: str) -> str:
        return fresh_name(base, self._taken)

    def _initializer(self, graph: ir.Graph, base: str, array: np.ndarray) -> ir.Value:
        # Names from the pass's own set: reading every node's outputs per name was quadratic
        # (1.3 s of ResNet-50's legalization for 649 names).
        return add_initializer(graph, base, array, self._taken)

    def _value(self, base: str, like: ir.Value, shape: tuple[int, ...] | None) -> ir.Value:
        return ir.Value(name=self._unique(base), shape=ir.Shape(shape) if shape is not None else None, type=like.type)

    def _node(self, op: str, inputs, outputs, attrs, name: str, meta: dict[str, str]) -> ir.Node:
        return ir.Node("", op, inputs, attrs, outputs=outputs, name=self._unique(name), metadata_props=dict(meta))

    # --- activations ----------------------------------------------------------------------

    def _activation_ranges(self, model: ir.Model, todo: list[BlockedLayer]) -> dict[ir.Value, tuple[float, float]]:
        """(min, max) of every layer input on the calibration inputs (onnxruntime, inputs exposed as outputs)."""
        data = PassContext.current().calibration
        if not data:
            raise NnccError(f"--pass {self.name}", "activation_bits needs calibration inputs (--calib or --eval data)")
        values = {layer.node.inputs[0] for layer in todo}
        proto = ir.to_proto(model)
        known = {o.name for o in proto.graph.output}
        proto.graph.output.extend(onnx.helper.make_tensor_value_info(v.name, v.dtype.value, None)
                                  for v in values if v.name not in known and v.dtype is not None)
        sess = runtime.session(ir.from_proto(proto), where=f"--pass {self.name}")
        names = [o.name for o in sess.get_outputs()]
        arrays = {n: np.asarray(data.get(n, next(iter(data.values())))) for n, _, _ in input_specs(model)}
        bounds = {v: (np.inf, -np.inf) for v in values}
        for s in range(min(64, *(len(a) for a in arrays.values()))):
            feed = {n: arrays[n][s].reshape(shape).astype(dtype) for n, shape, dtype in input_specs(model)}
            got = dict(zip(names, sess.run(None, feed)))
            for v, (lo, hi) in bounds.items():
                a = got[v.name]
                bounds[v] = min(lo, float(a.min())), max(hi, float(a.max()))
        return bounds

    def _quantize_activation(self, graph: ir.Graph, node: ir.Node, bounds: tuple[float, float], label: str) -> None:
        """x -> Div(scale) -> Round -> Clip(qmin, qmax) -> Mul(scale), read by every reader of x."""
        lo, hi = bounds
        if lo >= 0:  # post-ReLU: unsigned levels
            qmin, qmax, scale = 0, (1 << self.activation_bits) - 1, hi / ((1 << self.activation_bits) - 1)
        else:
            qmax = (1 << (self.activation_bits - 1)) - 1
            qmin, scale = -qmax, max(-lo, hi) / qmax
        x = node.inputs[0]
        readers = list(x.uses())
        consts = [self._initializer(graph, f"{label}_act_{k}", np.asarray(v, np.float32))
                  for k, v in (("scale", scale or 1.0), ("qmin", qmin), ("qmax", qmax))]
        meta = {MARK: "act-quant", LAYER: label}
        a, r, c, y = (self._value(f"{label}_act_{k}", x, static_shape(x)) for k in ("div", "round", "clip", "q"))
        nodes = [self._node("Div", [x, consts[0]], [a], [], f"{label}/act_div", meta),
                 self._node("Round", [a], [r], [], f"{label}/act_round", meta),
                 self._node("Clip", [r, consts[1], consts[2]], [c], [], f"{label}/act_clip", meta),
                 self._node("Mul", [c, consts[0]], [y], [], f"{label}/act_mul", meta)]
        if x.producer() is not None:  # right after the producer: readers anywhere after it stay in order
            graph.insert_after(x.producer(), nodes)
        else:
            graph.insert_before(next(iter(graph)), nodes)
        for reader, index in readers:
            reader.replace_input_with(index, y)

    def _legalize_activations(self, graph: ir.Graph) -> tuple[list[dict], dict[str, list[str]]]:
        supported = {s for s in self.supported_activations.replace(",", " ").split()}
        replaced, unsupported = [], {}
        for node in list(graph):
            if node.domain != "" or node.op_type not in ACTIVATIONS or node.op_type in supported:
                continue
            label = layer_name(node)
            exact, why = _relu_substitute(node)
            if "Relu" in supported and (exact or (why and self.approximate)):
                relu = self._node("Relu", [node.inputs[0]], [self._value(f"{label}_relu", node.outputs[0], static_shape(node.outputs[0]))],
                                  [], f"{label}_relu", {MARK: "activation", LAYER: label})
                graph.insert_before(node, relu)
                old, new = node.outputs[0], relu.outputs[0]
                new.type = old.type
                replace_node_output(graph, node, old, new, "_replaced")
                replaced.append({"name": label, "from": node.op_type, "to": "Relu", "exact": exact, "note": why})
            else:
                unsupported.setdefault(node.op_type, []).append(label)
        return replaced, unsupported


def _relu_substitute(node: ir.Node) -> tuple[bool, str]:
    """(exact, note): whether ``node`` equals Relu, or what an approximate Relu would change."""
    op = node.op_type
    if op == "LeakyRelu" and node.attributes.get_float("alpha", 0.01) == 0.0:
        return True, "LeakyRelu with alpha 0"
    if op == "PRelu":
        slope = const_array(node.inputs[1])
        if slope is not None and not np.any(slope):
            return True, "PRelu with zero slope"
    if op == "Clip":
        if len(node.inputs) > 1 or "min" in node.attributes:  # opset >= 11 inputs, or opset < 11 attributes
            lo = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
            hi = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
            lo = float(lo) if lo is not None else node.attributes.get_float("min", -np.inf)
            hi = float(hi) if hi is not None else node.attributes.get_float("max", np.inf)
            if lo == 0.0 and np.isinf(hi):
                return True, "Clip with min 0 and no max"
            if lo == 0.0:
                return False, f"Clip(0, {hi:g}) -> Relu drops the upper clip (not exact)"
    return False, ""


def _resize(shape: tuple[int, ...] | None, axis: int, size: int) -> tuple[int, ...] | None:
    if shape is None:
        return None
    dims = list(shape)
    dims[axis] = size
    return tuple(dims)
