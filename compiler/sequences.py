"""Turn a sequence built up one tensor at a time into plain tensor ops, for costing.

torch's exporter writes a Python list appended in a loop as ``SequenceEmpty``, one
``SequenceInsert`` per trip, then ``ConcatFromSequence`` (``torch.stack``/``torch.cat``).
onnx's shape inference gives the sequence no length, so the concatenated tensor has no shape
and a target cannot cost what reads it. Once the loop is unrolled (:mod:`nncc.unroll`) the
chain is static: :func:`lower_appended_sequences` replaces it by the Concat (with an
Unsqueeze per element for ``new_axis=1``) that computes the same tensor.

Only the plain append chain is rewritten: each insert appends (no position input) to the
previous one's sequence, and nothing else reads the intermediate sequences. Anything else
stays as it is (sequence ops are costed as data movement where their shapes allow).
"""

from __future__ import annotations

import onnx_ir as ir

from nncc.control_flow import FreshNames
from nncc.unroll import concat_values


def _appended(concat: ir.Node) -> tuple[list[ir.Value], list[ir.Node]] | None:
    """The tensors appended, in order, to the sequence ``concat`` reads, and the chain's nodes
    (readers first); None if it is not a plain chain. Identities (an unrolled loop's result)
    pass the sequence through."""
    items: list[ir.Value] = []
    chain: list[ir.Node] = []
    seq = concat.inputs[0]
    while True:
        producer = seq.producer() if seq is not None else None
        if producer is None or len(seq.uses()) != 1 or seq in producer.graph.outputs:
            return None
        chain.append(producer)
        if producer.op_type == "SequenceEmpty":
            return items[::-1], chain
        if producer.op_type == "SequenceInsert" and len(producer.inputs) == 2:
            items.append(producer.inputs[1])
        elif producer.op_type != "Identity":
            return None
        seq = producer.inputs[0]


def lower_appended_sequences(model: ir.Model) -> int:
    """Rewrite every plain append chain ending in ConcatFromSequence in the main graph; return how many."""
    graph = model.graph
    opset = model.opset_imports.get("", 13)
    names = FreshNames(model)
    count = 0
    for concat in [n for n in graph if n.op_type == "ConcatFromSequence" and n.domain in ("", "ai.onnx")]:
        found = _appended(concat)
        if not found or not found[0]:
            continue
        items, chain = found
        prefix = concat.name or "ConcatFromSequence"
        result = concat_values(graph, concat, items, concat.attributes.get_int("axis"),
                               bool(concat.attributes.get_int("new_axis", 0)), names, opset, prefix)
        out = concat.outputs[0]
        name = out.name
        out.name = names.value(f"{name}_sequence")
        result.name, result.type = name, out.type
        ir.convenience.replace_all_uses_with(out, result, replace_graph_outputs=True)
        graph.remove(concat, safe=True)
        for node in chain:  # readers first: each is unused once the one after it is gone
            graph.remove(node, safe=True)
        count += 1
    return count
