"""HyPar's communication model and its hierarchical layer-wise dynamic programming.

Per weighted layer and per level of binary split, the layer is either data parallel (dp:
the batch splits; the two halves exchange the weight gradient, A(dW) = Cin*Cout*k^2) or
model parallel (mp: the input channels / weight rows split; the halves sum their partial
output maps, A(F_out)). Between consecutive layers (docs/sources.md, "HyPar" [V, AccPar code]):
dp->dp 0, dp->mp 0.25*(A(F)+A(E)), mp->dp 0.5*A(E), mp->mp 0.5*A(E), where F and E are
the feature map and the error at the receiving layer's input.

Levels: the 16 accelerators are split in halves log2(16) = 4 times. At each level the DP
minimises that level's bytes given the splits of the levels above: a dp split halves the
layer's batch (F_in, E_in, F_out halve); an mp split halves its input channels (F_in, E_in
and dW halve, F_out does not: every half still produces full-size partial sums). This is
AccPar's ``h_partition`` with its two HyPar types (linghaosong/AccPar, src/accpar.cpp); on
that code's own AlexNet and VGG-11 inputs every level's choices and element counts agree with
what it computes (accpar.py, tests/test_hypar_fidelity.py).

DAGs: the DP is HyPar's chain DP over the weighted layers in topological order. It charges
a transition only where consecutive layers are joined by a data edge (``chain_edges``).
Edges that skip over layers (residual shortcuts, joins of branches) are charged by
``evaluate`` with the same transition table but are not seen by the DP, so on a DAG the
DP's plan is a heuristic (``hypar`` then keeps all-dp or all-mp where those are cheaper under
the full edge set); on a chain it is exact (tests compare it with brute force). A layer with
several weighted producers (Add, Concat) is charged one transition per producer, each sized
by its whole input -- an over-estimate for Concat.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence

from .graph import LayerSpec

DP, MP = 0, 1
NAMES = ("dp", "mp")


@dataclasses.dataclass(frozen=True)
class Precision:
    data_bits: int = 32        # feature maps, errors, partial sums
    grad_bits: int = 32        # gradient elements exchanged under dp
    grad_scalar_bits: int = 0  # per-tensor scale sent with each gradient (TernGrad: one fp32)


@dataclasses.dataclass
class Level:
    """One level's problem: the layers, their split counts so far, and the edges charged."""

    specs: Sequence[LayerSpec]
    batch: int
    splits: Sequence[tuple[int, int]]  # (dp splits, mp splits) made above this level, per layer
    precision: Precision
    edges: set[tuple[int, int]]        # (producer index, consumer index) pairs

    def amounts(self, i: int) -> dict[str, float]:
        spec, (dps, mps) = self.specs[i], self.splits[i]
        b, c = self.batch / 2**dps, 1 / 2**mps
        f_in = b * spec.in_elems * c
        return {"dW": spec.weight_elems * c, "F_out": b * spec.out_elems, "F_in": f_in, "E_in": f_in}

    def allowed(self, i: int) -> tuple[int, ...]:
        """dp needs >= 2 samples left to halve, mp >= 2 input channels; neither left: both (fractional, as AccPar)."""
        dps, mps = self.splits[i]
        ok = tuple(s for s, left in ((DP, self.batch / 2**dps), (MP, self.specs[i].cin / 2**mps)) if left >= 2)
        return ok or (DP, MP)

    def data_bits(self, i: int) -> int:
        """Layer ``i``'s data width: its own (integer, float16 layers) or the precision's."""
        return self.specs[i].data_bits or self.precision.data_bits

    def intra_bytes(self, i: int, state: int) -> float:
        a, p, data = self.amounts(i), self.precision, self.data_bits(i)
        if state == DP:  # compressed only where smaller: tiny tensors stay fp32, like TernGrad's size_to_binarize [V, code]
            return min(a["dW"] * data, a["dW"] * p.grad_bits + p.grad_scalar_bits) / 8
        return a["F_out"] * data / 8

    def transition_bytes(self, i: int, prev: int, state: int) -> float:
        a, bits = self.amounts(i), self.data_bits(i) / 8
        if prev == DP:
            return 0.0 if state == DP else 0.25 * (a["F_in"] + a["E_in"]) * bits
        return 0.5 * a["E_in"] * bits  # mp -> dp and mp -> mp


def evaluate(level: Level, assignment: Sequence[int]) -> tuple[list[float], list[float]]:
    """Per-layer bytes of one level: (intra-layer, transitions into the layer over every edge)."""
    intra = [level.intra_bytes(i, s) for i, s in enumerate(assignment)]
    trans = [0.0] * len(assignment)
    for u, v in level.edges:
        trans[v] += level.transition_bytes(v, assignment[u], assignment[v])
    return intra, trans


def total(level: Level, assignment: Sequence[int]) -> float:
    intra, trans = evaluate(level, assignment)
    return sum(intra) + sum(trans)


def dynamic_programming(level: Level) -> list[int]:
    """HyPar's two-state DP over the chain: O(L), exact for the edges between consecutive layers."""
    n = len(level.specs)
    if n == 0:
        return []
    inf = math.inf
    cost = [[inf, inf] for _ in range(n)]
    back = [[DP, DP] for _ in range(n)]
    for s in level.allowed(0):
        cost[0][s] = level.intra_bytes(0, s)
    for i in range(1, n):
        linked = (i - 1, i) in level.edges
        for s in level.allowed(i):
            options = [(cost[i - 1][p] + (level.transition_bytes(i, p, s) if linked else 0.0), p) for p in (DP, MP)]
            best, back[i][s] = min(options)
            cost[i][s] = best + level.intra_bytes(i, s)
    state = min((DP, MP), key=lambda s: cost[n - 1][s])
    plan = [state]
    for i in range(n - 1, 0, -1):
        state = back[i][state]
        plan.append(state)
    return plan[::-1]


def brute_force(level: Level) -> list[int]:
    """All 2^L assignments (allowed states only); the cheapest under ``evaluate``, ties to the first."""
    choices = [level.allowed(i) for i in range(len(level.specs))]
    return list(min(itertools.product(*choices), key=lambda a: total(level, a)))


def all_of(state: int) -> Callable[[Level], list[int]]:
    """A baseline: every layer in ``state`` where it is allowed, the other state where it is not."""
    return lambda level: [state if state in level.allowed(i) else 1 - state for i in range(len(level.specs))]


def hypar(level: Level) -> list[int]:
    """The DP's plan, or a uniform one where skip edges (unseen by the DP) make that cheaper: never worse
    than all-dp or all-mp at any level. On a chain the DP's plan is optimal and always kept."""
    return min((dynamic_programming(level), all_of(DP)(level), all_of(MP)(level)), key=lambda a: total(level, a))


STRATEGIES: dict[str, Callable[[Level], list[int]]] = {"hypar": hypar, "dp": all_of(DP), "mp": all_of(MP)}


@dataclasses.dataclass
class LevelPlan:
    level: int
    assignment: list[int]
    amounts: list[dict[str, float]]   # elements, per group pair, before this level's split
    intra_bytes: list[float]
    transition_bytes: list[float]

    @property
    def bytes(self) -> float:
        return sum(self.intra_bytes) + sum(self.transition_bytes)


def hierarchical(specs: Sequence[LayerSpec], edges: set[tuple[int, int]], batch: int, levels: int,
                 precision: Precision, strategy: str = "hypar") -> list[LevelPlan]:
    """Split ``levels`` times, choosing each level's assignment by ``strategy`` given the splits above."""
    choose = STRATEGIES[strategy]
    splits = [(0, 0)] * len(specs)
    plans = []
    for h in range(levels):
        level = Level(specs, batch, list(splits), precision, edges)
        assignment = choose(level)
        intra, trans = evaluate(level, assignment)
        plans.append(LevelPlan(h, assignment, [level.amounts(i) for i in range(len(specs))], intra, trans))
        splits = [(d + (s == DP), m + (s == MP)) for (d, m), s in zip(splits, assignment)]
    return plans
