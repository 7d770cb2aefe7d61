"""hoist-maxpool: ``MaxPool(f(x))`` becomes ``f(MaxPool(x))`` for a non-decreasing activation f.

Max over a window commutes with a non-decreasing function, max_i f(x_i) = f(max_i x_i), so the
rewrite is exact, and the activation then runs on the pooled tensor: a 2x2 stride-2 pool leaves
it a quarter of the elements (LeNet-5: relu1 4,704 -> 1,176 ops, relu2 1,600 -> 400). It is
exact to the bit for Relu, Clip and LeakyRelu (MaxPool only selects, and the activation maps one
selected float to the same float either way); Sigmoid, Tanh and HardSigmoid are monotone too but
opt-in (``activations=Relu,Sigmoid``), because a vectorized kernel that rounds differently in
its vector body and its tail may break monotonicity by an ulp. MaxPool's padding is -inf, so
padded windows commute as well. AveragePool does not commute with a non-linear f and is left alone.
"""

from __future__ import annotations

import dataclasses
import math

import onnx_ir as ir

from nncc.plugin import NnccError, NnccPass

# Activation -> the attribute that must be >= 0 for it to be non-decreasing (LeakyRelu's
# negative slope, HardSigmoid's slope), or None when it always is.
MONOTONE: dict[str, str | None] = {"Relu": None, "Clip": None, "LeakyRelu": "alpha", "Sigmoid": None, "Tanh": None,
                                   "HardSigmoid": "alpha"}
BIT_EXACT = ("Relu", "Clip", "LeakyRelu")


@dataclasses.dataclass
class HoistMaxPool(NnccPass):
    name = "hoist-maxpool"
    summary = "run MaxPool before a monotone activation (exact): the activation sees k x fewer elements"
    exact_tolerance = 0.0  # for the default activations; the driver's verify step checks it on every compile
    target_independent = True  # reads nothing of the target: nncc compare runs it once for all targets

    # A dataclass field is a parameter: `-p hoist-maxpool:activations=Relu,Sigmoid`.
    activations: tuple[str, ...] = BIT_EXACT

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.activations) - set(MONOTONE))
        if unknown:  # bad input: NnccError prints one line and exits 2
            raise NnccError(f"--pass {self.name}", f"cannot hoist over {', '.join(unknown)} (monotone: {', '.join(MONOTONE)})")

    def apply(self, model: ir.Model) -> bool:
        self.stats = {"hoisted": 0, "elementwise_ops_saved": 0, "layers": [], "skipped": []}
        graph = model.graph
        hoisted: set[str] = set()
        # Until nothing moves: after Relu -> Clip -> MaxPool, hoisting past Clip puts the pool
        # under Relu, and a second run must find nothing left to do (passes are idempotent).
        changed = True
        while changed:
            changed = False
            for act in self._candidates(graph):
                pool, _ = self._pool_after(act, graph)
                if pool is None:
                    continue
                before, after = _elements(act.outputs[0]), _elements(pool.outputs[0])
                _swap(graph, act, pool)
                hoisted.add(act.name)
                changed = True
                self.stats["hoisted"] += 1
                self.stats["elementwise_ops_saved"] += before - after
                self.stats["layers"].append({"name": act.name, "op": act.op_type, "pool": pool.name,
                                             "elements_before": before, "elements_after": after})
        for act in self._candidates(graph):
            if act.name not in hoisted:  # a hoisted activation that now feeds a Conv is done, not declined
                self.stats["skipped"].append({"name": act.name, "op": act.op_type, "reason": self._pool_after(act, graph)[1]})
        return self.stats["hoisted"] > 0

    def _candidates(self, graph: ir.Graph) -> list[ir.Node]:
        return [node for node in graph if node.op_type in self.activations and node.domain in ("", "ai.onnx")]

    def _pool_after(self, act: ir.Node, graph: ir.Graph) -> tuple[ir.Node | None, str]:
        """The MaxPool the activation can move below, or None and why not."""
        attr = MONOTONE[act.op_type]
        if attr is not None and attr in act.attributes and act.attributes[attr].value < 0:
            return None, f"{attr} < 0: not monotone"
        out = act.outputs[0]
        if out in graph.outputs:
            return None, "its output is a graph output"
        uses = list(out.uses())
        if len(uses) != 1:  # the other consumers need f(x) unpooled
            return None, f"its output feeds {len(uses)} nodes"
        pool = uses[0].node
        if pool.op_type != "MaxPool" or pool.domain not in ("", "ai.onnx"):
            return None, f"feeds {pool.op_type}, not MaxPool"
        if len(pool.outputs) > 1 and list(pool.outputs[1].uses()):
            return None, "the MaxPool's Indices output is used (where f is flat, argmax of f(x) may differ)"
        if _elements(out) is None or _elements(pool.outputs[0]) is None:
            return None, "shapes unknown (give --input-shape)"
        return pool, ""


def _elements(value: ir.Value) -> int | None:
    dims = tuple(value.shape) if value.shape is not None else None
    return math.prod(dims) if dims is not None and all(isinstance(d, int) for d in dims) else None


def _swap(graph: ir.Graph, act: ir.Node, pool: ir.Node) -> None:
    """Replace act -> pool by pool -> act; the consumers of the pool read the new activation."""
    new_pool = ir.Node(pool.domain, "MaxPool", [act.inputs[0]], attributes=list(pool.attributes.values()),
                       num_outputs=1, name=pool.name)
    pooled = new_pool.outputs[0]
    pooled.name = f"{pool.outputs[0].name}_before_{act.name}"
    pooled.shape, pooled.type = pool.outputs[0].shape, pool.outputs[0].type
    # Clip's min/max inputs go along unchanged.
    new_act = ir.Node(act.domain, act.op_type, [pooled, *act.inputs[1:]], attributes=list(act.attributes.values()),
                      num_outputs=1, name=act.name)
    # The new activation takes over the pool's output name, so a graph output keeps its name.
    ir.convenience.replace_nodes_and_values(graph, pool, [act, pool], [new_pool, new_act], [pool.outputs[0]],
                                            [new_act.outputs[0]])
