"""Specialize control flow whose condition is known before inference.

An ``If`` whose condition is a constant (in the file, after ``--input-value`` fixed a scalar
input such as a sample rate, or after the input shapes fixed a ``Shape``-driven test) always
runs the same branch: :func:`specialize_if` inlines that branch's nodes into the graph that
holds the ``If``, so its Conv/LSTM/Gemm become ordinary layers every pass and target sees.

onnxscript's constant folder inlines such an ``If`` too, but keeps the branch's value names
(a clash with a name elsewhere in the model is only fixed afterwards, by renaming what it
finds first); :func:`fold_holding_ifs` keeps ``If`` nodes away from it so that the inlining
here decides the names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import onnx_ir as ir

from nncc.irutils import constant_value, fresh_name

# In no opset_import: onnxscript's folder leaves a node of this domain alone but still folds
# inside its subgraphs. Only ever set for the duration of holding_ifs.
_HELD_DOMAIN = "nncc.held"


def all_graphs(graph: ir.Graph, skip: ir.Node | None = None) -> Iterator[ir.Graph]:
    """``graph`` and every subgraph below it (but not ``skip``'s), outermost first."""
    yield graph
    for node in graph:
        if node is skip:
            continue
        for attr in node.attributes.values():
            if attr.is_ref():
                continue
            if attr.type == ir.AttributeType.GRAPH:
                yield from all_graphs(attr.as_graph(), skip)
            elif attr.type == ir.AttributeType.GRAPHS:
                for sub in attr.as_graphs():
                    yield from all_graphs(sub, skip)


def taken_names(graph: ir.Graph, skip: ir.Node) -> tuple[set[str], set[str]]:
    """Every value name and node name in ``graph`` and its subgraphs, except in ``skip``'s."""
    values: set[str] = set()
    nodes: set[str] = set()
    for g in all_graphs(graph, skip):
        values.update(v.name for v in g.inputs if v.name)
        values.update(g.initializers)
        for node in g:
            if node.name:
                nodes.add(node.name)
            values.update(v.name for v in node.outputs if v.name)
    return values, nodes


class FreshNames:
    """Fresh value and node names for a model's main graph (unique across every scope, as ONNX
    asks): for rewrites that add nodes (unrolling, sequence lowering, contrib decompositions)."""

    def __init__(self, model: ir.Model):
        self.values, self.nodes = taken_names(model.graph, None)

    def value(self, name: str) -> str:
        return fresh_name(name, self.values)

    def node(self, name: str) -> str:
        return fresh_name(name, self.nodes)


def if_condition(node: ir.Node) -> bool | None:
    """The branch an ``If`` always takes (True: then_branch), or None when it is not known."""
    if node.op_type != "If" or node.domain not in ("", "ai.onnx", _HELD_DOMAIN) or not node.inputs:
        return None
    cond = constant_value(node.inputs[0])
    if cond is None or cond.size != 1:
        return None
    return bool(np.asarray(cond).reshape(()))


def _detach(branch: ir.Graph) -> None:
    """Make the discarded branch no reader of outer values (they may become unused)."""
    for g in reversed(list(all_graphs(branch))):
        for node in g:
            for i in range(len(node.inputs)):
                node.replace_input_with(i, None)


def _inline_branch(graph: ir.Graph, node: ir.Node, branch: ir.Graph, taken_values: set[str], taken_nodes: set[str]) -> None:
    """Put ``branch``'s nodes in ``graph`` in place of the If ``node``."""
    formal_outputs = list(branch.outputs)
    branch.outputs.clear()
    # Branch initializers (the folder lifts a branch's Constant nodes into them) go to the holding graph.
    for name in list(branch.initializers):
        value = branch.initializers.pop(name)
        value.name = fresh_name(name, taken_values)
        graph.register_initializer(value)
    inlined = list(branch)
    branch.remove(inlined)
    prefix = node.name or "If"
    for sub in inlined:
        # The branch's own node names read best (exporters make them unique already).
        if not sub.name or sub.name in taken_nodes:
            sub.name = fresh_name(f"{prefix}/{sub.name or sub.op_type}", taken_nodes)
        taken_nodes.add(sub.name)
        for value in sub.outputs:
            # ONNX names are unique across scopes, so a valid model's branch names are free;
            # a clash (another exporter's sibling scopes) gets a suffix.
            if value.name:
                value.name = fresh_name(value.name, taken_values) if value.name in taken_values else value.name
                taken_values.add(value.name)
    graph.insert_before(node, inlined)
    inlined_outputs = {id(v) for sub in inlined for v in sub.outputs}
    for actual, formal in zip(node.outputs, formal_outputs):
        if formal.dtype is None:
            formal.dtype = actual.dtype
        if formal.shape is None:
            formal.shape = actual.shape
        if actual in graph.outputs and (id(formal) not in inlined_outputs or formal in graph.outputs):
            # The graph's interface keeps its name: a branch that returns an outer value (or a
            # value that is already an output) is read through an Identity.
            identity = ir.node("Identity", [formal], name=fresh_name(f"{prefix}/output", taken_nodes))
            graph.insert_before(node, identity)
            formal = identity.outputs[0]
            formal.dtype, formal.shape = actual.dtype or formal.dtype, actual.shape or formal.shape
        if actual in graph.outputs:
            name = actual.name
            actual.name = fresh_name(f"{name}_if", taken_values)
            formal.name = name
        ir.convenience.replace_all_uses_with(actual, formal, replace_graph_outputs=True)
    graph.remove(node, safe=True)


def _next_constant_if(model: ir.Model) -> tuple[ir.Graph, ir.Node, bool] | None:
    for graph in all_graphs(model.graph):
        for node in graph:
            cond = if_condition(node)
            if cond is not None:
                branch = node.attributes.get("then_branch" if cond else "else_branch")
                if branch is not None and branch.type == ir.AttributeType.GRAPH:
                    return graph, node, cond
    return None


def specialize_if(model: ir.Model) -> int:
    """Inline every If whose condition is constant, in every graph; return how many.

    The branch's nodes and values keep their names unless one is taken elsewhere in the model.
    A branch may hold further Ifs: those are specialized in turn when their own condition is
    constant (call again after folding for those that a fold makes constant)."""
    count = 0
    while (found := _next_constant_if(model)) is not None:
        graph, node, cond = found
        taken_values, taken_nodes = taken_names(model.graph, skip=node)
        node.domain = ""
        other = node.attributes.get("else_branch" if cond else "then_branch")
        if other is not None and other.type == ir.AttributeType.GRAPH:
            _detach(other.as_graph())
        _inline_branch(graph, node, node.attributes["then_branch" if cond else "else_branch"].as_graph(), taken_values, taken_nodes)
        count += 1
    return count


@contextlib.contextmanager
def holding_ifs(model: ir.Model) -> Iterator[None]:
    """Within the block, every If is outside onnxscript's reach (its branches are not)."""
    held = []
    for graph in all_graphs(model.graph):
        for node in graph:
            if node.op_type == "If" and node.domain in ("", "ai.onnx"):
                held.append((node, node.domain))
                node.domain = _HELD_DOMAIN
    try:
        yield
    finally:
        for node, domain in held:
            node.domain = domain


def fold_holding_ifs(model: ir.Model, fold: Callable[[ir.Model], bool]) -> bool:
    """Run ``fold`` (an nncc.folding function) with every If held out of it."""
    with holding_ifs(model):
        return fold(model)


def specialize_control_flow(model: ir.Model, fold: Callable[[ir.Model], bool], infer: Callable[[ir.Model], None],
                            max_rounds: int = 16) -> int:
    """Fold, specialize the Ifs that became constant, re-infer; until nothing changes.

    Folding one Shape-driven chain gives its Reshape a static shape only after re-inference,
    and the next chain may start from that Reshape: so the loop runs while anything folds.
    Returns how many Ifs were inlined."""
    total = 0
    for _ in range(max_rounds):
        folded = fold_holding_ifs(model, fold)
        inlined = specialize_if(model)
        total += inlined
        if not folded and not inlined:
            break
        infer(model)
    return total


def inline_costlier_branches(model: ir.Model, branch_macs: Callable[[ir.Graph], int | None]) -> list[dict[str, object]]:
    """For costing only: replace every If whose condition is not known before inference by the
    branch that costs more MACs (``branch_macs``), and say so; ties and unknown counts take
    the then-branch. Returns one record per If replaced (what the report lists).

    The compiled model keeps its Ifs (it must still run either branch); a target lowers a copy
    treated by this function, so its figures are those of the costlier path."""
    records: list[dict[str, object]] = []
    while True:
        found = next(((g, n) for g in all_graphs(model.graph) for n in g
                      if n.op_type == "If" and n.domain in ("", "ai.onnx") and if_condition(n) is None), None)
        if found is None:
            return records
        graph, node = found
        then_graph, else_graph = (node.attributes[key].as_graph() for key in ("then_branch", "else_branch"))
        macs = {"then": branch_macs(then_graph), "else": branch_macs(else_graph)}
        take_else = macs["then"] is not None and macs["else"] is not None and macs["else"] > macs["then"]
        records.append({"node": node.name or node.outputs[0].name, "costed_branch": "else" if take_else else "then",
                        "branch_macs": macs, "reason": "condition not known before inference: the costlier branch is costed"})
        taken_values, taken_nodes = taken_names(model.graph, skip=node)
        _detach(then_graph if take_else else else_graph)
        _inline_branch(graph, node, else_graph if take_else else then_graph, taken_values, taken_nodes)


def describe_branch(record: dict[str, object]) -> str:
    """One line for a record of :func:`inline_costlier_branches` (what compile warns)."""
    macs = record["branch_macs"]
    return (f"If '{record['node']}': its condition is not known before inference; the {record['costed_branch']} branch "
            f"is costed (MACs: then {macs['then']}, else {macs['else']}); fix the input it tests with --input-value "
            "to cost the other")
