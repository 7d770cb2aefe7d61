"""Constant folding, shared by loading (weights computed by Constant/ConstantOfShape nodes
become initializers) and the ``fold-constants`` pass (every constant subgraph)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common as common_passes
import onnxscript.optimizer

from nncc.irutils import const_array, constant_value, tensor_of
from nncc.safety import check_created_tensor

# Weights produced by these ops are folded even when the result is larger than the
# inputs; onnxscript keeps ConstantOfShape by default to save file size, but every
# cost model needs the weights as initializers.
WEIGHT_PRODUCERS = frozenset({"Constant", "ConstantOfShape"})
_NO_LIMIT = 1 << 62


def _check_constant_sizes(model: ir.Model) -> None:
    """Refuse ConstantOfShape nodes whose output would break the created-tensor cap (a shape
    from an initializer or a Constant node: folding creates either)."""
    for node in model.graph:
        dims = _fill_dims(node)
        if dims is None:
            continue
        value = node.attributes.get("value")
        itemsize = value.value.dtype.itemsize if value is not None else 4
        check_created_tensor(int(np.prod(dims, dtype=np.float64) * itemsize), "model",
                             f"ConstantOfShape node '{node.name or node.outputs[0].name}' (shape {list(dims)})")


def _fill_dims(node: ir.Node) -> tuple[int, ...] | None:
    """The output shape of a default-domain ConstantOfShape whose shape is known before
    inference (an initializer or a Constant node); None for any other node."""
    if node.op_type != "ConstantOfShape" or node.domain != "" or not node.inputs or len(node.outputs) != 1:
        return None
    shape = constant_value(node.inputs[0])
    return None if shape is None else tuple(int(d) for d in np.asarray(shape).reshape(-1))


def _materialize_constant_of_shape(model: ir.Model) -> bool:
    """Each ConstantOfShape of the main graph with a constant shape becomes the initializer it
    computes (np.full of its value), under its output's name: what onnxscript's folder makes of
    it, without its general machinery. The ONNX test suite's light models compute every weight
    so (243 nodes in ResNet-50), and folding them took 0.2 s of a 0.26 s load. Run after
    :func:`_check_constant_sizes`, which caps the tensors."""
    graph, changed = model.graph, False
    outputs = set(graph.outputs)
    for node in list(graph):
        dims = _fill_dims(node)
        if dims is None:
            continue
        out = node.outputs[0]
        # Left to onnxscript: a graph output, a value a subgraph reads, a negative dimension, a
        # value attribute that is not one element.
        if out in outputs or not out.name or out.name in graph.initializers \
                or any(user.graph is not graph for user, _ in out.uses()):
            continue
        attr = node.attributes.get("value")
        fill = attr.value.numpy().reshape(-1) if attr is not None else np.zeros(1, dtype=np.float32)
        if any(d < 0 for d in dims) or fill.size != 1:
            continue
        value = ir.Value(name=out.name, shape=ir.Shape(dims), type=out.type,
                         const_value=tensor_of(np.full(dims, fill[0], dtype=fill.dtype), name=out.name))
        out.name = None  # the initializer takes the name
        ir.convenience.replace_all_uses_with(out, value)
        graph.remove(node, safe=True)
        graph.register_initializer(value)
        changed = True
    return changed


def fold_constants(model: ir.Model, force: frozenset[str] = frozenset()) -> bool:
    """onnxscript's folder, plus ops in ``force`` folded whatever their output size; constants lifted to initializers."""
    _check_constant_sizes(model)
    direct = "ConstantOfShape" in force and _materialize_constant_of_shape(model)
    result = onnxscript.optimizer.fold_constants(
        model,
        input_size_limit=_NO_LIMIT,
        output_size_limit=_NO_LIMIT,
        should_fold=lambda node: True if node.op_type in force and node.domain == "" else None,
    )
    _axes_as_attributes(model)
    lifted = common_passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    unused = common_passes.RemoveUnusedNodesPass()(model)
    return bool(direct or result.modified or lifted.modified or unused.modified)


def fold_weight_constants(model: ir.Model) -> bool:
    """Turn weights computed by Constant/ConstantOfShape subgraphs into initializers."""
    return fold_constants(model, WEIGHT_PRODUCERS)


def _axes_as_attributes(model: ir.Model) -> None:
    """Before opset 13, Unsqueeze and Squeeze take ``axes`` as an attribute; onnxscript's folder
    writes them with an ``axes`` input whatever the opset (it turns a ConcatFromSequence with
    new_axis=1 into Unsqueeze + Concat), which the model's own opset then rejects."""
    if model.opset_imports.get("", 13) >= 13:
        return
    for graph in model.graphs():
        for node in graph:
            if node.op_type not in ("Unsqueeze", "Squeeze") or node.domain != "" or len(node.inputs) < 2:
                continue
            axes = const_array(node.inputs[1]) if node.inputs[1] is not None else None
            if axes is None:
                continue
            node.attributes["axes"] = ir.AttrInt64s("axes", [int(a) for a in np.asarray(axes).reshape(-1)])
            node.resize_inputs(1)
