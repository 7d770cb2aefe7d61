"""Decompose onnxruntime's contrib ops into the default-domain ops they compute, for costing.

Models that onnxruntime's transformer optimizer or its quantizer wrote (published as
``model_optimized.onnx`` / ``model_quantized.onnx``) are full of ``com.microsoft`` ops:
Attention, SkipLayerNormalization, BiasGelu, QAttention, QGemm, QLinearAdd, ... The op-class
table (:mod:`nncc.ops`) knows the default domain only, so a target would list them as
unsupported and the report would not cover the model. :func:`decompose_contrib_ops` rewrites
each one it knows, in the copy a target costs (``nncc.driver.costed_copy``), into the ops that
compute the same thing, integer widths kept: QAttention's projection stays a MatMulInteger on
its uint8/int8 operands, so each target sees the real MACs at the real widths.

The builders live in :mod:`nncc.contrib_float` and :mod:`nncc.contrib_quant`, one per
(domain, op) in :data:`BUILDERS`. A node they cannot rewrite faithfully (a past key/value
cache, causal or rotary attention, a 3-D mask, an unknown contrib op) stays as it is, unsupported, counted in the coverage,
and its record says why. The compiled model keeps its contrib ops; only the costed copy changes.
"""

from __future__ import annotations

from typing import Any, Callable

import onnx_ir as ir

from nncc.contrib_emit import MIN_OPSET, Emit, NeedShapes, Refuse
from nncc.contrib_float import BUILDERS as FLOAT_BUILDERS
from nncc.contrib_quant import BUILDERS as QUANT_BUILDERS
from nncc.loading import infer_shapes
from nncc.ops import CONTRIB_RECURRENT, DEFAULT_DOMAINS, is_ort_default_domain_op
from nncc.control_flow import FreshNames
from nncc.weights import layer_name

Builder = Callable[[Emit], list]
BUILDERS: dict[tuple[str, str], Builder] = {**FLOAT_BUILDERS, **QUANT_BUILDERS}


def _key(node: ir.Node) -> tuple[str, str]:
    return ("" if node.domain in DEFAULT_DOMAINS else node.domain, node.op_type)


ORT_DOMAIN = "com.microsoft"


def _opset(model: ir.Model) -> int:
    return model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))


def _is_contrib(node: ir.Node, opset: int) -> bool:
    """An onnxruntime contrib op: of its com.microsoft domain, or one it defines in the default
    domain where ONNX has none at ``opset``; the contrib recurrent ops the layer view costs
    itself (DynamicQuantizeLSTM) excepted. Other custom domains are not onnxruntime's to define:
    they stay unsupported without a record here."""
    if (node.domain, node.op_type) in CONTRIB_RECURRENT:
        return False
    if node.domain in DEFAULT_DOMAINS:
        return is_ort_default_domain_op(node.op_type, node.domain, opset)
    return node.domain == ORT_DOMAIN


def has_contrib_ops(model: ir.Model) -> bool:
    """Whether any graph of ``model`` (branches and bodies too) holds a node for
    :func:`decompose_contrib_ops` to rewrite or report."""
    opset = _opset(model)
    return any(_is_contrib(node, opset) for graph in model.graphs() for node in graph)


def decompose_contrib_ops(model: ir.Model, where: object = "model") -> list[dict[str, Any]]:
    """Rewrite, in place, every contrib op of ``model``'s main graph that :data:`BUILDERS`
    knows; one record per contrib node, in graph order: ``{node, op, domain, into}`` (the ops
    it became, in order) or ``{node, op, domain, reason}`` (left in place). A node whose
    rewrite needs a shape that another contrib op makes is tried again once the shapes of what
    was rewritten are inferred (``where`` names the model in an inference error). The shapes of
    the last round's rewrites are left to the caller (``nncc.loading.infer_shapes``)."""
    opset = _opset(model)
    names = FreshNames(model)
    records: dict[int, dict[str, Any]] = {}  # by id(node), in graph order: the first round sees every node
    pending = [node for node in model.graph if _is_contrib(node, opset)]
    while pending:
        waiting = []
        for node in pending:
            record: dict[str, Any] = {"node": layer_name(node), "op": node.op_type, "domain": node.domain or "ai.onnx"}
            records[id(node)] = record
            builder = BUILDERS.get(_key(node))
            if builder is None:
                record["reason"] = f"no decomposition of {record['domain']}::{node.op_type}"
            elif opset < MIN_OPSET:
                record["reason"] = f"opset {opset}: decompositions need opset {MIN_OPSET} or later"
            else:
                emit = Emit(model, node, names)
                try:
                    record["into"] = emit.commit(builder(emit))
                except NeedShapes as wait:
                    record["reason"] = str(wait)
                    waiting.append(node)
                except Refuse as refusal:
                    record["reason"] = str(refusal)
        if not waiting or len(waiting) == len(pending):  # done, or no progress: their reasons stay
            break
        infer_shapes(model, where)
        pending = waiting
    return list(records.values())


def describe_contrib(record: dict[str, Any]) -> str | None:
    """One warning line for a contrib node left in place, None for one decomposed."""
    if "reason" not in record:
        return None
    return f"{record['domain']}::{record['op']} '{record['node']}' not costed: {record['reason']}"
