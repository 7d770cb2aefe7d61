"""Quantization-friendly MobileNet rewrites (Sheng et al., arXiv 1803.08607; LPIRC).

Sheng et al. trace MobileNet's int8 accuracy loss to the depthwise layers: BatchNorm folded
into a depthwise conv scales each channel by gamma / sqrt(var + eps), so the folded weights'
per-channel ranges spread far apart and a per-tensor int8 scale fits none of them; ReLU6
after the depthwise conv adds little. Their network drops BN and ReLU6 after the depthwise
convs and uses ReLU elsewhere. On a trained graph this pass does what can be done without
retraining:

1. ``drop_depthwise_relu6`` (opt-in, CHANGES THE NUMBERS): remove the ReLU6 (Clip 0..6) or
   ReLU that directly follows a depthwise conv or its BatchNorm.
2. Exact (``depthwise_bn_forward``, on by default): a BatchNorm after a depthwise conv that
   feeds a 1x1 pointwise conv with no
   nonlinearity in between is folded into the pointwise conv, not the depthwise one:
   ``pw(s * (dw(x) + c) + t) = (W diag(s)) dw(x) + W (s c + t) + b`` (s = gamma/sqrt(var+eps),
   t = beta - mean * s, c the depthwise bias, moved too). The depthwise weights stay
   un-scaled. Exact because a 1x1 conv without padding sees every input pixel once.
3. Exact: every other foldable BatchNorm is folded into its producer (``fold-batchnorm``).
4. ``relu6_to_relu`` (opt-in, changes the numbers): Clip(0, 6) -> Relu.

With the defaults only the exact steps run (outputs within float32 rounding).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.irutils import add_initializer, const_array, drop_unused_initializers, replace_node_output
from nncc.pass_base import NnccPass
from nncc.passes.fold import FoldBatchNorm
from nncc.weights import Weight, bias_of, weight_of


def _single_reader(value: ir.Value, graph: ir.Graph) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value in graph.outputs:
        return None
    return uses[0][0]


def _conv_weight(node: ir.Node) -> Weight | None:
    """A float Conv's weight (the rewrites here are Conv's: integer and transposed forms differ)."""
    return weight_of(node) if node.op_type == "Conv" else None


def is_depthwise(node: ir.Node) -> bool:
    """One input channel per group and as many groups as outputs: each channel filtered on its own."""
    weight = _conv_weight(node)
    if weight is None or weight.shape is None:
        return False
    layout, shape = weight.layout, weight.shape
    return layout.groups > 1 and shape[layout.in_axis(len(shape))] == 1 and weight.outputs == layout.groups


def _clip_bounds(node: ir.Node) -> tuple[float, float] | None:
    """(min, max) of a Clip with constant bounds (inputs since opset 11, attributes before)."""
    if node.op_type != "Clip" or node.domain != "":
        return None
    lo, hi = node.attributes.get_float("min", float("-inf")), node.attributes.get_float("max", float("inf"))
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = const_array(node.inputs[1])
        if arr is None:
            return None
        lo = float(arr)
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        arr = const_array(node.inputs[2])
        if arr is None:
            return None
        hi = float(arr)
    return lo, hi


def is_relu6(node: ir.Node) -> bool:
    return _clip_bounds(node) == (0.0, 6.0)


def _bypass(graph: ir.Graph, node: ir.Node) -> None:
    """Remove a one-input, one-output node, wiring its readers to its input."""
    replace_node_output(graph, node, node.outputs[0], node.inputs[0], "_removed", always_rename=False)


def drop_depthwise_activations(graph: ir.Graph) -> list[str]:
    dropped = []
    for dw in [n for n in graph if is_depthwise(n)]:
        value = dw.outputs[0]
        reader = _single_reader(value, graph)
        if reader is not None and reader.op_type == "BatchNormalization":
            value = reader.outputs[0]
            reader = _single_reader(value, graph)
        if reader is not None and (is_relu6(reader) or (reader.op_type == "Relu" and reader.domain == "")):
            dropped.append(reader.name or reader.outputs[0].name)
            _bypass(graph, reader)
    return dropped


def _pointwise(node: ir.Node | None) -> bool:
    """An unpadded 1x1 Conv (group 1) whose weight initializer nothing else reads."""
    weight = _conv_weight(node) if node is not None else None
    if weight is None or not weight.is_initializer or weight.layout.groups != 1:
        return False
    shape, pads = weight.shape, node.attributes.get_ints("pads", None)
    kernel = [shape[axis] for axis in weight.layout.spatial_axes(len(shape))]
    return (kernel == [1, 1] and not any(pads or ())
            and node.attributes.get_string("auto_pad", "NOTSET") in ("NOTSET", "VALID")
            and len(weight.value.uses()) == 1)


def fold_depthwise_bn_forward(graph: ir.Graph) -> list[str]:
    """Step 2 of the module doc; returns the folded BatchNorm names."""
    folded = []
    for dw in [n for n in graph if is_depthwise(n)]:
        bn = _single_reader(dw.outputs[0], graph)
        if bn is None or bn.op_type != "BatchNormalization" or bn.domain != "" or len(bn.outputs) != 1:
            continue
        if bn.attributes.get_int("training_mode", 0):
            continue
        pw = _single_reader(bn.outputs[0], graph)
        if not _pointwise(pw) or pw.inputs[0] is not bn.outputs[0]:
            continue
        stats = [const_array(v) for v in bn.inputs[1:5]]
        dw_bias = bias_of(dw)
        c = const_array(dw_bias) if dw_bias is not None else np.zeros(1)
        pw_bias = bias_of(pw)
        pw_weight = weight_of(pw)
        layout, w = pw_weight.layout, const_array(pw_weight.value)
        b = const_array(pw_bias) if pw_bias is not None else np.zeros(pw_weight.outputs)
        if any(s is None for s in stats) or c is None or b is None or (pw_bias is not None and len(pw_bias.uses()) != 1):
            continue
        gamma, beta, mean, var = (s.astype(np.float64) for s in stats)
        s = gamma / np.sqrt(var + bn.attributes.get_float("epsilon", 1e-5))
        t = beta - mean * s
        w64 = w.astype(np.float64)
        along_inputs = [1] * w.ndim
        along_inputs[layout.in_axis(w.ndim)] = -1  # s scales the pointwise conv's input channels
        new_w = (w64 * s.reshape(along_inputs)).astype(w.dtype)
        new_b = (b.astype(np.float64) + layout.gemm_view(w64) @ (s * c.astype(np.float64) + t)).astype(w.dtype)
        pw.replace_input_with(layout.index, add_initializer(graph, f"{pw_weight.value.name}_dwbn", new_w))
        if pw_bias is None:
            pw.resize_inputs(3)
        pw.replace_input_with(2, add_initializer(graph, f"{pw.name or pw.outputs[0].name}_bias_dwbn", new_b))
        if dw_bias is not None:
            dw.resize_inputs(2)  # its bias now lives in the pointwise bias
        dw.outputs[0].shape = bn.outputs[0].shape or dw.outputs[0].shape
        ir.convenience.replace_all_uses_with(bn.outputs[0], dw.outputs[0])
        graph.remove(bn, safe=True)
        folded.append(bn.name or bn.outputs[0].name)
    return folded


def relu6_to_relu(graph: ir.Graph) -> list[str]:
    changed = []
    for clip in [n for n in graph if is_relu6(n)]:
        relu = ir.Node("", "Relu", [clip.inputs[0]], name=clip.name, num_outputs=1)
        relu.outputs[0].name = f"{clip.outputs[0].name}_relu"
        relu.outputs[0].shape, relu.outputs[0].type = clip.outputs[0].shape, clip.outputs[0].type
        graph.insert_before(clip, relu)
        changed.append(clip.name or clip.outputs[0].name)
        replace_node_output(graph, clip, clip.outputs[0], relu.outputs[0], "_clip", always_rename=False)
    return changed


@dataclasses.dataclass
class RewriteQuantFriendly(NnccPass):
    """Sheng et al.'s quantization-friendly MobileNet rewrites (module doc).

    Defaults are exact (BatchNorm folding only, the depthwise BN into the next pointwise
    conv where exact). ``drop_depthwise_relu6`` and ``relu6_to_relu`` change what the model
    computes -- the paper retrains after them -- and are recorded in the stats.
    ``depthwise_bn_forward=false`` folds every BN backwards instead (plain fold-batchnorm).

    Measured (tests/test_quant_friendly.py, slow): on a depthwise-separable net trained on
    MNIST without ReLU6 after the depthwise convs, the 8-bit gap is within noise (<= 0.3 pp)
    with or without the move; below 8 bits it was mixed -- worse with 5-6-bit per-tensor
    weights, better with 4-bit per-channel ones -- because the BN scale lands on the pointwise
    weights' input channels and the depthwise outputs are no longer normalized. Without
    retraining (which the paper does) this rewrite is not a reliable gain.
    """

    name = "quant-friendly"
    target_independent = True
    summary = "quantization-friendly MobileNet rewrites: fold BatchNorm, depthwise BN into the pointwise conv, optional ReLU6 changes"
    exact_tolerance = 1e-5  # with the default parameters

    drop_depthwise_relu6: bool = False
    relu6_to_relu: bool = False
    depthwise_bn_forward: bool = True

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        stats: dict[str, Any] = {"changes_numbers": self.drop_depthwise_relu6 or self.relu6_to_relu}
        stats["depthwise_activations_dropped"] = drop_depthwise_activations(graph) if self.drop_depthwise_relu6 else []
        stats["depthwise_bn_into_pointwise"] = fold_depthwise_bn_forward(graph) if self.depthwise_bn_forward else []
        fold = FoldBatchNorm()
        folded = fold(model).modified
        stats["batchnorm_folded"] = fold.stats.get("folded", 0)
        stats["remaining_batchnorm"] = fold.stats.get("remaining_batchnorm", 0)
        stats["relu6_to_relu"] = relu6_to_relu(graph) if self.relu6_to_relu else []
        drop_unused_initializers(graph)
        self.stats.update(stats)
        return bool(folded or stats["depthwise_activations_dropped"] or stats["depthwise_bn_into_pointwise"] or stats["relu6_to_relu"])
