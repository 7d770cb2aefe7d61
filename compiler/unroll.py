"""Unroll ``Loop`` and ``Scan`` for costing: a target costs the body once per trip.

A target lowers layers of the main graph; a ``Loop`` or ``Scan`` hides its body in a subgraph.
:func:`unroll_loops` replaces each one, in the copy a target lowers, by its body repeated once
per trip, wired as the node runs it:

- ``Loop``: iteration ``i`` reads ``iter_num = i``, the previous iteration's condition and
  loop-carried values (the first reads the node's inputs); the final carried values are the
  node's first outputs, and each scan output is the per-iteration values stacked on a new
  axis 0. The trip count is the constant ``M`` input, or ``--trip-count NODE=N`` when ``M``
  is only known at run time. A body that computes its own condition may stop sooner: the
  count is then an upper bound, and the record says so.
- ``Scan`` (opset 9 and later): iteration ``t`` reads slice ``t`` of each scanned input
  (from the end for a reversed direction) and the previous states; each scan output stacks
  the per-iteration values on its output axis. The trip count is the scanned axis' length.

Weights stay single: the body's initializers and ``Constant`` nodes move to the main graph
once, and every copy reads them there, so a crossbar target holds a body's weights once and
runs them every trip, serially (each iteration reads the previous one's state).

The compiled model keeps its loops; only the copy a target costs is unrolled (see
``nncc.driver.costed_copy``). A loop that cannot be unrolled stays, is left unsupported by
the targets, is counted in the coverage, and its record says what to give.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnx_ir._cloner import Cloner

from nncc.control_flow import FreshNames, all_graphs, describe_branch
from nncc.irutils import constant_value, static_shape

LOOPS = frozenset({"Loop", "Scan"})
# Unrolling makes trips x body nodes; past this a compile would spend minutes on one loop.
MAX_UNROLLED_NODES = 100_000


def loop_name(node: ir.Node) -> str:
    """The name ``--trip-count`` takes: the node's name, else its first output's."""
    return node.name or (node.outputs[0].name if node.outputs else node.op_type)


def _constant(graph: ir.Graph, names: FreshNames, name: str, array: np.ndarray) -> ir.Value:
    value = ir.Value(name=names.value(name), const_value=ir.tensor(array))
    value.shape, value.dtype = ir.Shape(array.shape), ir.DataType.from_numpy(array.dtype)
    graph.register_initializer(value)
    return value


def _lift_constants(graph: ir.Graph, loop: ir.Node, body: ir.Graph, names: FreshNames) -> dict[ir.Value, ir.Value]:
    """Put the body's initializers and input-free Constant nodes before ``loop``, once.

    Returns what each copy of the body reads instead of a body initializer (a copy of it in
    the main graph: an initializer the body also returns cannot leave the body)."""
    lifted = {}
    for key, value in body.initializers.items():
        outer = ir.Value(name=names.value(key), const_value=value.const_value)
        outer.type, outer.shape = value.type, value.shape
        graph.register_initializer(outer)
        lifted[value] = outer
    returned = set(body.outputs)
    constants = [n for n in body if n.op_type == "Constant" and not n.inputs and n.domain in ("", "ai.onnx")
                 and not returned & set(n.outputs)]
    for node in constants:
        body.remove(node)
        node.name = names.node(node.name or "Constant")
        for out in node.outputs:
            out.name = names.value(out.name or "constant")
        graph.insert_before(loop, node)
    return lifted


def _join(prefix: str, name: str) -> str:
    """``loop/3`` + ``/cell/Gemm`` -> ``loop/3/cell/Gemm`` (torch's names start with a slash)."""
    return f"{prefix}/{name.lstrip('/')}"


def _rename_clone(node: ir.Node, prefix: str, names: FreshNames) -> None:
    """Give a cloned node, its outputs and everything defined in its subgraphs fresh names."""
    node.name = names.node(_join(prefix, node.name or node.op_type))
    for out in node.outputs:
        out.name = names.value(_join(prefix, out.name or "out"))
    for attr in node.attributes.values():
        if attr.is_ref() or attr.type not in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS):
            continue
        for top in ([attr.as_graph()] if attr.type == ir.AttributeType.GRAPH else attr.as_graphs()):
            for sub in all_graphs(top):
                for value in list(sub.inputs) + [v for n in sub for v in n.outputs]:
                    if value.name:
                        value.name = names.value(_join(prefix, value.name))
                for n in sub:
                    n.name = names.node(_join(prefix, n.name or n.op_type))


def _run_body(graph: ir.Graph, loop: ir.Node, body: ir.Graph, bound: dict[ir.Value, ir.Value], prefix: str,
              names: FreshNames) -> list[ir.Value]:
    """Insert one copy of ``body`` before ``loop``, its inputs read from ``bound``; return its outputs."""
    value_map: dict[ir.Value, ir.Value | None] = dict(bound)
    cloner = Cloner(attr_map={}, value_map=value_map, metadata_props={}, allow_outer_scope_values=True)
    for node in body:
        clone = cloner.clone_node(node)
        _rename_clone(clone, prefix, names)
        graph.insert_before(loop, clone)
    # An output may be a body input passed through, or an outer value the body returns as is.
    return [value_map[out] if out in value_map else out for out in body.outputs]


def concat_values(graph: ir.Graph, before: ir.Node, parts: list[ir.Value], axis: int, new_axis: bool,
                  names: FreshNames, opset: int, prefix: str) -> ir.Value:
    """Concat of ``parts`` inserted before ``before``; with ``new_axis`` each part is first
    unsqueezed there (a stack). Unsqueeze takes ``axes`` as an input from opset 13, before
    that as an attribute."""
    if new_axis:
        axes = _constant(graph, names, f"{prefix}/stack_axes", np.array([axis], np.int64)) if opset >= 13 else None
        expanded = []
        for i, part in enumerate(parts):
            node = ir.node("Unsqueeze", [part, axes] if axes is not None else [part],
                           attributes={} if axes is not None else {"axes": [axis]}, name=names.node(f"{prefix}/stack/{i}"))
            node.outputs[0].name = names.value(f"{prefix}/stack/{i}")
            graph.insert_before(before, node)
            expanded.append(node.outputs[0])
        parts = expanded
    concat = ir.node("Concat", parts, attributes={"axis": axis}, name=names.node(prefix))
    concat.outputs[0].name = names.value(f"{prefix}/stacked")
    graph.insert_before(before, concat)
    return concat.outputs[0]


def _take_over(graph: ir.Graph, loop: ir.Node, results: list[ir.Value], names: FreshNames) -> None:
    """Make ``results`` the loop's outputs (through Identity, so names the model shows stay) and drop the loop."""
    for old, new in zip(loop.outputs, results):
        if not old.uses() and old not in graph.outputs:
            continue
        identity = ir.node("Identity", [new], name=names.node(f"{loop_name(loop)}/result"))
        graph.insert_before(loop, identity)
        name = old.name
        old.name = names.value(f"{name}_loop")
        identity.outputs[0].name = name
        identity.outputs[0].type, identity.outputs[0].shape = old.type, old.shape
        ir.convenience.replace_all_uses_with(old, identity.outputs[0], replace_graph_outputs=True)
    graph.remove(loop, safe=True)


def _as_activation(graph: ir.Graph, loop: ir.Node, value: ir.Value | None, names: FreshNames) -> ir.Value | None:
    """A constant initial state read through an Identity: the hardware runs the first trip on it
    like every other (a zero initial state is not folded away in a running loop)."""
    if value is None or constant_value(value) is None:
        return value
    identity = ir.node("Identity", [value], name=names.node(f"{loop_name(loop)}/initial"))
    identity.outputs[0].name = names.value(f"{loop_name(loop)}/initial")
    identity.outputs[0].type, identity.outputs[0].shape = value.type, value.shape
    graph.insert_before(loop, identity)
    return identity.outputs[0]


def _opset(model: ir.Model) -> int:
    return model.opset_imports.get("", model.opset_imports.get("ai.onnx", 13))


def _loop_trips(node: ir.Node, trip_counts: dict[str, int]) -> tuple[int | None, str]:
    """The trip count of a Loop and how it is known ('' when unknown)."""
    given = trip_counts.get(loop_name(node))
    if given is not None:  # wins over a constant M too: a while-loop's M is often INT64_MAX
        return given, "--trip-count"
    count = constant_value(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
    if count is not None and count.size == 1:
        return int(np.asarray(count).reshape(())), "constant"
    return None, ""


def _unroll_loop(model: ir.Model, node: ir.Node, trips: int, names: FreshNames) -> bool:
    """Whether the body's condition may end the loop before ``trips`` (then ``trips`` is a bound)."""
    graph, body = node.graph, node.attributes["body"].as_graph()
    lifted = _lift_constants(graph, node, body, names)
    iter_in, cond_in, *carried_in = body.inputs
    cond_out, *outs = body.outputs
    n_carried = len(carried_in)
    early_exit = not _always_continues(cond_out, cond_in)
    cond = node.inputs[1] if len(node.inputs) > 1 and node.inputs[1] is not None else None
    if cond is None:
        cond = _constant(graph, names, f"{loop_name(node)}/cond", np.array(True))
    carried = [_as_activation(graph, node, v, names) for v in node.inputs[2:2 + n_carried]]
    scans: list[list[ir.Value]] = [[] for _ in outs[n_carried:]]
    for i in range(trips):
        bound = {**lifted, iter_in: _constant(graph, names, f"{loop_name(node)}/iter{i}", np.array(i, np.int64)), cond_in: cond}
        bound.update(zip(carried_in, carried))
        cond, *results = _run_body(graph, node, body, bound, f"{loop_name(node)}/{i}", names)
        carried = results[:n_carried]
        for k, value in enumerate(results[n_carried:]):
            scans[k].append(value)
    stacked = [concat_values(graph, node, parts, 0, True, names, _opset(model), loop_name(node)) for parts in scans]
    _take_over(graph, node, carried + stacked, names)
    return early_exit


def _always_continues(cond_out: ir.Value, cond_in: ir.Value) -> bool:
    """The body's condition is its input passed on (through Identities) or a constant true."""
    while cond_out is not cond_in:
        const = constant_value(cond_out)
        if const is not None:
            return const.size == 1 and bool(np.asarray(const).reshape(()))
        producer = cond_out.producer()
        if producer is None or producer.op_type != "Identity":
            return False
        cond_out = producer.inputs[0]
    return True


def _scan_trips(node: ir.Node) -> int | None:
    num_scan = node.attributes.get_int("num_scan_inputs", 0)
    if not num_scan:
        return None
    first = node.inputs[len(node.inputs) - num_scan]
    shape = static_shape(first)
    axis = node.attributes.get_ints("scan_input_axes", [0] * num_scan)[0]
    return shape[axis % len(shape)] if shape else None


def _unroll_scan(model: ir.Model, node: ir.Node, trips: int, names: FreshNames) -> None:
    graph, body = node.graph, node.attributes["body"].as_graph()
    lifted = _lift_constants(graph, node, body, names)
    num_scan = node.attributes.get_int("num_scan_inputs")
    n_state = len(node.inputs) - num_scan
    states, scanned = ([_as_activation(graph, node, v, names) for v in node.inputs[:n_state]],
                       [_as_activation(graph, node, v, names) for v in node.inputs[n_state:]])
    in_axes = node.attributes.get_ints("scan_input_axes", [0] * num_scan)
    in_dirs = node.attributes.get_ints("scan_input_directions", [0] * num_scan)
    n_out = len(body.outputs) - n_state
    out_axes = node.attributes.get_ints("scan_output_axes", [0] * n_out)
    out_dirs = node.attributes.get_ints("scan_output_directions", [0] * n_out)
    prefix = loop_name(node)
    scans: list[list[ir.Value]] = [[] for _ in range(n_out)]
    for t in range(trips):
        bound = {**lifted, **dict(zip(body.inputs[:n_state], states))}
        for j, (value, axis, reverse) in enumerate(zip(scanned, in_axes, in_dirs)):
            index = _constant(graph, names, f"{prefix}/t{t}/index{j}", np.array(trips - 1 - t if reverse else t, np.int64))
            take = ir.node("Gather", [value, index], attributes={"axis": axis}, name=names.node(f"{prefix}/{t}/slice{j}"))
            take.outputs[0].name = names.value(f"{prefix}/{t}/slice{j}")
            graph.insert_before(node, take)
            bound[body.inputs[n_state + j]] = take.outputs[0]
        results = _run_body(graph, node, body, bound, f"{prefix}/{t}", names)
        states = results[:n_state]
        for k, value in enumerate(results[n_state:]):
            scans[k].append(value)
    stacked = [concat_values(graph, node, parts[::-1] if reverse else parts, axis, True, names, _opset(model), prefix)
               for parts, axis, reverse in zip(scans, out_axes, out_dirs)]
    _take_over(graph, node, states + stacked, names)


def _next_loop(model: ir.Model, skipped: set[int]) -> ir.Node | None:
    return next((n for n in model.graph if n.op_type in LOOPS and n.domain in ("", "ai.onnx") and id(n) not in skipped), None)


def unroll_loops(model: ir.Model, trip_counts: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Unroll every Loop/Scan of the main graph (those in a body too, once it is inlined).

    Returns one record per loop: ``{node, op, trips, trips_from}`` for those unrolled (``trips_from``
    is 'constant', '--trip-count', or 'scanned axis'; ``upper_bound`` when the body may stop
    sooner), ``{node, op, reason}`` for those left in place."""
    trip_counts = dict(trip_counts or {})
    records: list[dict[str, Any]] = []
    skipped: set[int] = set()
    while (node := _next_loop(model, skipped)) is not None:
        name, body = loop_name(node), node.attributes.get("body")
        record: dict[str, Any] = {"node": name, "op": node.op_type}
        if node.op_type == "Loop":
            trips, source = _loop_trips(node, trip_counts)
        else:
            trips, source = _scan_trips(node), "scanned axis"
        reason = None
        if body is None or body.type != ir.AttributeType.GRAPH:
            reason = "no body graph"
        elif node.op_type == "Scan" and (node.version or _opset(model)) < 9:
            reason = "Scan before opset 9 (batch axis, sequence_lens) is not unrolled"
        elif trips is None and node.op_type == "Loop":
            reason = f"trip count not known before inference: give --trip-count {name}=N"
        elif trips is None:
            reason = "the scanned input's length is not known: fix it with --input-shape"
        elif trips * max(1, len(body.as_graph())) > MAX_UNROLLED_NODES:
            reason = (f"{trips} trips x {len(body.as_graph())} body nodes is over {MAX_UNROLLED_NODES} nodes to unroll"
                      + (f"; give the trips it really runs with --trip-count {name}=N" if node.op_type == "Loop" else ""))
        elif trips < 1:
            reason = "zero trips: nothing runs"
        if reason is not None:
            skipped.add(id(node))
            records.append({**record, "reason": reason})
            continue
        names = FreshNames(model)
        record.update(trips=trips, trips_from=source)
        if node.op_type == "Loop":
            if _unroll_loop(model, node, trips, names):
                record["upper_bound"] = True
        else:
            _unroll_scan(model, node, trips, names)
        records.append(record)
    unused = set(trip_counts) - {r["node"] for r in records}
    if unused:
        records.append({"node": ", ".join(sorted(unused)), "op": "--trip-count", "reason": "no Loop of that name"})
    return records


def describe_loop(record: dict[str, Any]) -> str | None:
    """One warning line for a record of :func:`unroll_loops`, or None when there is nothing to say."""
    if "reason" in record:
        return f"{record['op']} '{record['node']}' not costed: {record['reason']}"
    if record.get("upper_bound"):
        return (f"Loop '{record['node']}': costed for {record['trips']} trips ({record['trips_from']}); its body "
                "may stop sooner, so the figures are an upper bound")
    return None


def describe_control_flow(record: dict[str, Any]) -> str | None:
    """The warning line of any record ``costed_copy`` returns (If, Loop, Scan), or None."""
    return describe_branch(record) if record.get("op") == "If" else describe_loop(record)
