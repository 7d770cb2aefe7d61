"""Small onnx-ir helpers the passes and targets share: shapes, constants, initializers.

Two notions of "a constant", each for its own reader:
- :func:`const_array`: the data of an initializer. What a pass may rewrite in place (loading
  has already folded ``Constant`` nodes into initializers).
- :func:`constant_value`: anything whose value is fixed before inference: an initializer, a
  ``Constant`` node, or a ``DequantizeLinear`` of constants (a QDQ model's weights). What a
  cost model reads: the hardware stores such a tensor, whatever the graph computes it from.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nncc.safety import check_created_tensor


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    """The value's shape when every dimension is a known integer, else None."""
    if value is None or value.shape is None:
        return None
    dims = tuple(value.shape)
    return dims if all(isinstance(d, int) for d in dims) else None


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The initializer data behind ``value`` as numpy, or None when it is computed at run time."""
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def constant_value(value: ir.Value | None) -> np.ndarray | None:
    """The value fixed before inference: initializer, Constant node, or DequantizeLinear of constants."""
    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    node = value.producer()
    if node is None or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Constant" and "value" in node.attributes:
        return node.attributes["value"].value.numpy()
    if node.op_type == "DequantizeLinear":
        x, scale = constant_value(node.inputs[0]), constant_value(node.inputs[1])
        zp = constant_value(node.inputs[2]) if len(node.inputs) > 2 else None
        if x is None or scale is None:
            return None
        axis = node.attributes.get_int("axis", 1)
        shape = [1] * x.ndim
        if scale.ndim == 1 and scale.size > 1:
            shape[axis % x.ndim] = scale.size
        zp = np.zeros(1) if zp is None else zp.astype(np.float64).reshape(shape if zp.size > 1 else [1])
        return ((x.astype(np.float64) - zp) * scale.astype(np.float64).reshape(shape if scale.size > 1 else [1])).astype(np.float32)
    return None


def is_constant(value: ir.Value | None) -> bool:
    """Whether ``value`` is fixed before inference (see :func:`constant_value`), without reading its data."""
    if value is None:
        return False
    if value.const_value is not None:
        return True
    node = value.producer()
    if node is None or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "Constant":
        return True
    return node.op_type == "DequantizeLinear" and all(is_constant(v) for v in node.inputs[:2])


def replace_node_output(graph: ir.Graph, node: ir.Node, old: ir.Value, new: ir.Value, suffix: str,
                        always_rename: bool = True) -> None:
    """Make ``new`` take ``old``'s place and remove ``node`` (the producer of ``old``).

    ``new`` takes ``old``'s name (``old`` becomes ``name + suffix``), so the graph's interface
    and every reader's input name stay the same; with ``always_rename=False`` only when ``old``
    is a graph output. Every reader of ``old``, graph outputs included, then reads ``new``."""
    if always_rename or old in graph.outputs:
        name = old.name
        old.name = f"{name}{suffix}"
        new.name = name
    ir.convenience.replace_all_uses_with(old, new, replace_graph_outputs=True)
    graph.remove(node, safe=True)


def drop_unused_initializers(graph: ir.Graph) -> int:
    """Remove initializers nothing reads; return how many."""
    unused = [name for name, v in graph.initializers.items() if not v.uses() and v not in graph.inputs and v not in graph.outputs]
    for name in unused:
        graph.initializers.pop(name)
    return len(unused)


def fresh_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_1``, ``name_2``, ... : the first not in ``taken``, which it joins."""
    new, i = name, 1
    while new in taken:
        new, i = f"{name}_{i}", i + 1
    taken.add(new)
    return new


def unique_name(graph: ir.Graph, base: str, taken: set[str] | None = None) -> str:
    """A value name not yet used in ``graph`` (initializers, inputs, node outputs). ``taken``: a
    set of the graph's names that the caller keeps up to date (a pass adding many values),
    instead of reading every node's outputs again for each name."""
    return fresh_name(base, graph_names(graph) if taken is None else taken)


def graph_names(graph: ir.Graph) -> set[str]:
    """The names ``graph`` uses (initializers, inputs, node outputs): a pass adding many values
    keeps this set up to date through :func:`unique_name` instead of scanning for each name."""
    return set(graph.initializers) | {v.name for v in graph.inputs} | {o.name for n in graph for o in n.outputs}


def tensor_of(array: np.ndarray, name: str | None = None) -> ir.TensorProtocol:
    """``ir.tensor(array, name=name)``: a numpy array wrapped as ir.tensor() wraps it, without its
    protocol checks (typing's runtime isinstance: 0.04 s of ResNet-50's legalization over 649
    initializers); anything else through ir.tensor()."""
    return ir.Tensor(array, name=name) if type(array) is np.ndarray else ir.tensor(array, name=name)


def add_initializer(graph: ir.Graph, base_name: str, array: np.ndarray, taken: set[str] | None = None) -> ir.Value:
    """Register ``array`` as a new initializer (unique name, size-capped like every pass-made
    tensor); ``taken`` as for :func:`unique_name`."""
    check_created_tensor(int(array.nbytes), "pass", f"initializer '{base_name}'")
    value = ir.Value(name=unique_name(graph, base_name, taken), shape=ir.Shape(array.shape),
                     type=ir.TensorType(ir.DataType.from_numpy(array.dtype)), const_value=tensor_of(array))
    graph.register_initializer(value)
    return value


def nonfinite_weights(model: ir.Model) -> dict[str, int]:
    """Initializers (every graph) holding NaN or infinite values, with how many: a model that
    computes garbage still compiles, so the user must be told."""
    found: dict[str, int] = {}
    for graph in model.graphs():
        for name, value in graph.initializers.items():
            tensor = value.const_value
            if tensor is None or not ir.DataType(tensor.dtype).is_floating_point():
                continue
            array = tensor.numpy()
            if not array.size or (array.dtype.kind == "f" and np.isfinite(array.min()) and np.isfinite(array.max())):
                continue  # min and max are finite only when every value is (a NaN makes both NaN): no mask to count
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                found[name] = bad
    return found
