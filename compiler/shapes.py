"""Shape inference for a loaded model: every value's type and shape, subgraphs included.

onnx's own inference does the work; nncc calls it on a copy without the large weights (it
only needs their shapes), copies whole types back (sequences stay sequences), reports its
failures in one line (onnx-ir's pass would log and swallow them), and fills in what onnx
knows no schema for: onnxruntime's contrib ops the layer view costs, and onnxruntime's own
default-domain ops below their ONNX opset, which are set aside while onnx checks the rest.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

from nncc.errors import NnccError
from nncc.irutils import static_shape
from nncc.ops import is_ort_default_domain_op


def first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    head = lines[0] if lines else message
    # The checker puts the node's identity on a later "==> Context:" line; keep it.
    context = next((line for line in lines[1:] if "Context" in line or "node" in line.lower()), "")
    return f"{head} {context}".strip()


# The domain nodes of onnxruntime's own default-domain ops get while onnx checks or infers the
# rest; listed in no schema registry, so onnx passes over them.
_ORT_SET_ASIDE = "nncc.onnxruntime-default-domain"


def set_aside_ort_default_domain_ops(proto: onnx.ModelProto) -> bool:
    """Move ``proto``'s onnxruntime-only default-domain nodes (every graph) to a private domain;
    whether there were any."""
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
    found = False
    pending = [proto.graph]
    while pending:
        graph = pending.pop()
        for node in graph.node:
            if is_ort_default_domain_op(node.op_type, node.domain, opset):
                node.domain, found = _ORT_SET_ASIDE, True
            pending += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
            pending += [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
    if found and not any(o.domain == _ORT_SET_ASIDE for o in proto.opset_import):
        proto.opset_import.append(onnx.helper.make_opsetid(_ORT_SET_ASIDE, 1))
    return found


def infer_shapes(model: ir.Model, where: object, *, strict: bool = True) -> None:
    """Re-infer every intermediate shape from the (now static) input shapes, in subgraphs too.

    ``strict=False`` leaves the shapes of nodes onnx cannot infer unknown instead of failing
    (loading uses it while a dead If branch may still be in the graph)."""
    for graph in model.graphs():
        for node in graph:
            for out in node.outputs:
                # A graph output keeps a fully static declared shape (a conflict with it is a real
                # error); a declared dynamic one is re-inferred: exporters get its rank wrong too
                # (ddddocr's CRNN declares [1, seqlen] for a rank-3 Reshape output).
                if out not in graph.outputs or static_shape(out) is None:
                    out.shape = None
    # onnx-ir's ShapeInferencePass logs and swallows failures; a user needs them, so the
    # same steps (strip big initializers, call onnx, merge back) are run here.
    def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
        set_aside_ort_default_domain_ops(proto)  # no schema: CONTRIB_SHAPES gives their shapes
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=strict, data_prop=True)

    def run() -> None:
        try:
            inferred = _call_without_weight_data(infer, model)
        except (onnx.shape_inference.InferenceError, RuntimeError) as e:
            raise NnccError(where, f"shape inference failed: {first_line(str(e))}") from None
        _merge_types(model, inferred)

    run()
    # onnx knows no contrib op: give their outputs shapes, then re-infer what follows them
    # (a chain of contrib ops takes one round each).
    for _ in range(8):
        if not _infer_contrib_shapes(model):
            break
        run()


def _merge_types(model: ir.Model, inferred_proto: onnx.ModelProto) -> None:
    """Copy inferred types and shapes onto ``model``'s values, graph by graph.

    onnx-ir's own merge sets ``dtype``, which turns a sequence (a Loop carrying a
    SequenceInsert, as torch's exporter writes list appends) into a tensor; the whole type
    is copied here."""
    inferred_model = ir.serde.deserialize_model(inferred_proto)
    for graph, inferred_graph in zip(model.graphs(), inferred_model.graphs()):
        known = ir.convenience.create_value_mapping(inferred_graph)
        for name, value in ir.convenience.create_value_mapping(graph).items():
            found = known.get(name)
            if found is None:
                continue
            if found.shape is not None and value.shape != found.shape:
                value.shape = found.shape
            if found.type is not None and value.type != found.type:
                value.type = found.type


def _recurrent_contrib_shapes(node: ir.Node) -> list[tuple[int, ...]] | None:
    """com.microsoft::DynamicQuantizeLSTM (onnx LSTM's outputs): Y [seq, dirs, batch, H], Y_h and Y_c [dirs, batch, H]."""
    x, w = (static_shape(v) if v is not None else None for v in node.inputs[:2])
    if x is None or len(x) != 3:
        return None
    dirs = w[0] if w is not None and len(w) == 3 else (2 if node.attributes.get_string("direction", "forward") == "bidirectional" else 1)
    hidden = node.attributes.get_int("hidden_size", 0) or (w[2] // 4 if w is not None and len(w) == 3 else 0)
    if not hidden:
        return None
    seq, batch = x[0], x[1]
    return [(seq, dirs, batch, hidden), (dirs, batch, hidden), (dirs, batch, hidden)]


# Contrib-domain ops whose output shapes loading fills in after onnx's inference: (domain, op) -> shapes of
# its outputs from the node (None: an input shape is unknown); dtypes follow the first input.
def _same_as_input(node: ir.Node) -> list[tuple[int, ...]] | None:
    """A normalization's first output has its input's shape (the optional statistics are not read)."""
    shape = static_shape(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
    return [shape] if shape is not None else None


CONTRIB_SHAPES = {("com.microsoft", "DynamicQuantizeLSTM"): _recurrent_contrib_shapes,
                  # onnxruntime's default-domain normalizations below their ONNX opset (nncc.ops.ORT_DEFAULT_DOMAIN)
                  ("", "LayerNormalization"): _same_as_input, ("", "SimplifiedLayerNormalization"): _same_as_input}


def _infer_contrib_shapes(model: ir.Model) -> bool:
    """Set the shapes of contrib outputs that are still unknown; whether any was set."""
    changed = False
    for graph in model.graphs():
        for node in graph:
            rule = CONTRIB_SHAPES.get((node.domain, node.op_type))
            if rule is None or not any(out is not None and out.name and static_shape(out) is None for out in node.outputs):
                continue
            shapes = rule(node)
            if shapes is None:
                continue
            for out, shape in zip(node.outputs, shapes):
                if out is None or not out.name or static_shape(out) is not None:
                    continue
                out.shape = ir.Shape(shape)
                out.dtype = out.dtype or node.inputs[0].dtype
                changed = True
    return changed


# Float tensors above this size go to onnx's shape inference as typed inputs without data
# (it only needs their shapes). Integer tensors keep their data up to the larger cap: they
# are shapes, split sizes, axes and indices, and inference needs their values (onnx-ir's own
# helper drops every tensor over 1 KB, so a Split with more than 125 sizes lost its shapes).
_FLOAT_DATA_LIMIT = 1024
_INT_DATA_LIMIT = 1 << 20


def _call_without_weight_data(func, model: ir.Model):
    """Call ``func`` on a proto of ``model`` whose big float initializers are data-less inputs."""
    graph = model.graph
    n_inputs = len(graph.inputs)
    held: list[tuple[ir.Value, ir.TensorProtocol]] = []
    for value in list(graph.initializers.values()):
        tensor = value.const_value
        if tensor is None:
            continue
        value.shape = value.shape or tensor.shape
        value.dtype = value.dtype or tensor.dtype
        limit = _INT_DATA_LIMIT if tensor.dtype.is_integer() else _FLOAT_DATA_LIMIT
        if tensor.nbytes > limit:
            held.append((value, tensor))
            graph.initializers.pop(value.name)
            value.const_value = None
            if value not in graph.inputs:
                graph.inputs.append(value)
    try:
        return func(ir.serde.serialize_model(model))
    finally:
        for value, tensor in held:
            value.const_value = tensor
            graph.register_initializer(value)
        del graph.inputs[n_inputs:]
