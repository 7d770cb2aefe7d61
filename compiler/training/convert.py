"""ONNX (onnx-ir) -> ``torch.nn.Module``, and the trained values back into the same graph.

The converter is an interpreter, not a code generator: :class:`OnnxModule` keeps the
graph's nodes in topological order and evaluates them with torch functions, so every op
the zoo uses maps to one small function in the op table (:mod:`nncc.training.ops`). What makes it useful for training:

- **weights become parameters**: the weight of every weighted layer (as the layer view,
  :mod:`nncc.weights`, finds it), its bias (a Conv/Gemm ``B``/``C`` input; the constant operand
  of an ``Add`` right after a MatMul), BatchNormalization scale/bias, PRelu slopes and
  LayerNormalization scale/bias are ``nn.Parameter`` s. Every other initializer (shape constants, BN running statistics,
  constant operands of element-wise ops) is a buffer. ``module.onnx_names[key]`` maps each
  parameter/buffer key back to its ONNX initializer name (keys are the names with
  characters torch rejects replaced by ``_``);
- **BatchNormalization** runs as torch's batch norm: batch statistics in ``train()`` mode
  (and the running mean/variance buffers are updated with momentum ``1 - onnx momentum``),
  the running statistics in ``eval()`` mode -- exactly the ONNX inference semantics;
- **any batch size**: the zoo exports batch-1 graphs. A Reshape whose constant target shape
  starts with the graph's static batch size (1) while the tensor it reshapes has another
  leading size gets that size instead, so the module trains on mini-batches;
- :meth:`OnnxModule.export_to` copies parameters and buffers (BN statistics included)
  back into the ONNX initializers they came from. The graph structure is untouched, so
  every pass and target works on the result exactly as on the original.

Ops outside the table raise :class:`~nncc.errors.NnccError` naming the node and the op.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import onnx_ir as ir
import torch

from nncc.errors import NnccError
from nncc.weights import WeightLayout, bias_of, weight_of
from nncc.training.ops import SUPPORTED_OPS, _OPS  # noqa: F401  (SUPPORTED_OPS re-exported)

# Inputs of ops that are not weighted layers but train: normalization scale/bias, PRelu slopes.
_AFFINE_SLOTS = {("BatchNormalization", 1), ("BatchNormalization", 2), ("PRelu", 1), ("LayerNormalization", 1),
                 ("LayerNormalization", 2)}


@dataclasses.dataclass(frozen=True)
class TrainableLayer:
    """A weighted layer's weight parameter: what the regularizers and masks act on."""

    node: str            # the node's name
    key: str             # parameter key in the module
    onnx_name: str       # the initializer it came from
    layout: WeightLayout


def _trainable_slots(node: ir.Node) -> set[int]:
    weight = weight_of(node)
    slots = {weight.layout.index} if weight is not None else set()
    bias = bias_of(node)
    if bias is not None:
        slots.add(list(node.inputs).index(bias))
    return slots | {slot for op, slot in _AFFINE_SLOTS if op == node.op_type}


class Node:
    """One graph node, reduced to what evaluation needs (no reference to the IR)."""

    __slots__ = ("name", "op", "inputs", "outputs", "attrs")

    def __init__(self, node: ir.Node):
        self.name = node.name or (node.outputs[0].name if node.outputs else node.op_type)
        self.op = node.op_type
        self.inputs = [v.name if v is not None else "" for v in node.inputs]
        self.outputs = [v.name for v in node.outputs]
        self.attrs: dict[str, Any] = {}
        for key, attr in node.attributes.items():
            value = attr.value
            if isinstance(value, ir.TensorProtocol):
                value = np.array(value.numpy())
            elif isinstance(value, (list, tuple)):
                value = list(value)
            self.attrs[key] = value


def _key(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^0-9A-Za-z_]", "_", name) or "t"
    if base[0].isdigit():
        base = "_" + base
    key, k = base, 1
    while key in taken:
        key, k = f"{base}_{k}", k + 1
    taken.add(key)
    return key


def trainable_initializers(model: ir.Model) -> set[str]:
    """Names of the floating-point initializers that train (see the module docstring)."""
    inits = model.graph.initializers
    names: set[str] = set()
    for node in model.graph:
        for slot, value in enumerate(node.inputs):
            if value is None or value.name not in inits or not value.const_value.dtype.is_floating_point():
                continue
            if slot in _trainable_slots(node):
                names.add(value.name)
            elif node.op_type == "Add":
                other = node.inputs[1 - slot] if len(node.inputs) == 2 else None
                producer = other.producer() if other is not None else None
                if producer is not None and producer.op_type in ("MatMul", "Gemm", "Conv"):
                    names.add(value.name)
    return names


class OnnxModule(torch.nn.Module):
    """A torch module that evaluates an ONNX graph; weights are parameters (module doc)."""

    def __init__(self, model: ir.Model, where: object = "model"):
        super().__init__()
        graph = model.graph
        self.where = str(where)
        self.input_names = [v.name for v in graph.inputs]
        self.output_names = [v.name for v in graph.outputs]
        first = graph.inputs[0].shape if graph.inputs else None
        self.static_batch = first[0] if first is not None and len(first) and isinstance(first[0], int) else None
        self.nodes = []
        weights: list[tuple[str, ir.Value, WeightLayout]] = []
        for node in graph:
            if node.domain not in ("", "ai.onnx"):
                raise NnccError(where, f"node '{node.name}' ({node.domain}::{node.op_type}): custom-domain ops "
                                       "cannot be converted to torch")
            if node.op_type not in _OPS:
                raise NnccError(where, f"node '{node.name}' ({node.op_type}): op not supported by the torch converter "
                                       f"(supported: {', '.join(sorted(_OPS))})")
            self.nodes.append(Node(node))
            weight = weight_of(node)
            if weight is not None and weight.is_initializer:
                weights.append((self.nodes[-1].name, weight.value, weight.layout))
        trainable = trainable_initializers(model)
        self.onnx_names: dict[str, str] = {}   # parameter/buffer key -> ONNX initializer name
        self.keys: dict[str, str] = {}         # ONNX initializer name -> key
        taken: set[str] = set()
        for name, value in graph.initializers.items():
            if value.const_value is None:
                raise NnccError(where, f"initializer '{name}' has no value")
            array = np.array(value.const_value.numpy())
            key = _key(name, taken)
            tensor = torch.from_numpy(array.copy())
            if name in trainable:
                self.register_parameter(key, torch.nn.Parameter(tensor))
            else:
                self.register_buffer(key, tensor)
            self.onnx_names[key] = name
            self.keys[name] = key
        # The weight of each weighted layer: what the regularizers act on.
        self.layers = [TrainableLayer(node, self.keys[value.name], value.name, layout)
                       for node, value, layout in weights if value.name in trainable]

    def tensor(self, onnx_name: str) -> torch.Tensor:
        return getattr(self, self.keys[onnx_name])

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor):
        env: dict[str, Any] = dict(zip(self.input_names, args))
        env.update(kwargs)
        missing = [n for n in self.input_names if n not in env]
        if missing:
            raise NnccError(self.where, f"missing model input(s) {missing}")
        for name, key in self.keys.items():
            env[name] = getattr(self, key)
        env[""] = None
        for node in self.nodes:
            try:
                result = _OPS[node.op](self, node, [env[i] for i in node.inputs])
            except NnccError:
                raise
            except Exception as e:  # a shape error inside torch: say which node
                raise NnccError(self.where, f"node '{node.name}' ({node.op}): {type(e).__name__}: "
                                            f"{str(e).splitlines()[0] if str(e) else ''}") from e
            if not isinstance(result, (list, tuple)):
                result = [result]
            for out, value in zip(node.outputs, result):
                env[out] = value
        outputs = [env[n] for n in self.output_names]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    @torch.no_grad()
    def export_to(self, model: ir.Model) -> list[str]:
        """Write every parameter and floating buffer back into ``model``'s initializers.

        Only the values change (same names, shapes and dtypes). Returns the names written.
        """
        written = []
        inits = model.graph.initializers
        for key, name in self.onnx_names.items():
            value = inits.get(name)
            if value is None:
                raise NnccError(self.where, f"initializer '{name}' is not in the model to export into")
            tensor = getattr(self, key)
            if not tensor.is_floating_point():
                continue
            old = value.const_value
            array = tensor.detach().cpu().numpy().astype(old.dtype.numpy(), copy=True)
            if tuple(array.shape) != tuple(old.shape):
                raise NnccError(self.where, f"initializer '{name}' changed shape {tuple(old.shape)} -> {array.shape}")
            value.const_value = ir.Tensor(array, name=name)
            written.append(name)
        return written


def to_torch(model: ir.Model, where: object = "model") -> OnnxModule:
    """Convert an onnx-ir model (as :func:`nncc.loading.load_model` returns it)."""
    return OnnxModule(model, where)
