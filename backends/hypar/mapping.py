"""Lowering for HyPar: the layer DAG and three partition plans (HyPar's DP, all-dp, all-mp).

The plan is the placement: at every level of the split hierarchy each weighted layer is dp
or mp. Non-weighted ops follow the weighted layer they fold into (graph.py) and add no
communication of their own. ``partition_plan.json`` is this mapping's ``to_json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import onnx_ir as ir
from nncc.analysis import Layer, layers
from nncc.backends.base import Mapping
from nncc.cost import Unsupported
from nncc.errors import NnccError
from nncc.ops import DEFAULT_DOMAINS

from . import graph as graph_
from .config import HyparConfig
from .partition import DP, MP, NAMES, LevelPlan, Precision, hierarchical

STRATEGY_NAMES = ("hypar", "dp", "mp")


def precision(config: HyparConfig) -> Precision:
    if config.gradient == "ternary":
        return Precision(config.data_bits, config.ternary_bits, 32)
    return Precision(config.data_bits, config.data_bits, 0)


def plan_all(specs, edges, config: HyparConfig) -> dict[str, list[LevelPlan]]:
    p = precision(config)
    return {name: hierarchical(specs, edges, config.batch, config.levels, p, name) for name in STRATEGY_NAMES}


@dataclasses.dataclass
class HyparMapping(Mapping[Layer]):
    graph: graph_.LayerGraph | None = None
    plans: dict[str, list[LevelPlan]] = dataclasses.field(default_factory=dict)
    config: HyparConfig | None = None
    artifact_name: ClassVar[str | None] = "partition_plan.json"

    def to_json(self) -> dict[str, Any]:
        specs = self.graph.specs if self.graph else []
        out: dict[str, Any] = {
            "accelerators": self.config.accelerators, "batch": self.config.batch, "gradient": self.config.gradient,
            "units": "amounts in elements per group pair before the level's split; bytes per group pair",
            "layers": [dataclasses.asdict(s) for s in specs],
            "skip_edges": sorted(self.graph.skip_edges) if self.graph else [],
            "folded": self.graph.folded if self.graph else {},
            "unsupported": [u.to_json() for u in self.unsupported],
        }
        for name, plans in self.plans.items():
            out[name] = [
                {"level": p.level, "groups": 2 ** (p.level + 1), "bytes": p.bytes,
                 "layers": [{"name": s.name, "choice": NAMES[c], "amounts": a, "intra_bytes": ib, "transition_bytes": tb}
                            for s, c, a, ib, tb in zip(specs, p.assignment, p.amounts, p.intra_bytes, p.transition_bytes)]}
                for p in plans]
        return out


def memory_per_accelerator(specs, plans: list[LevelPlan], config: HyparConfig) -> list[float]:
    """Bytes each layer needs on one accelerator after every split: 3 copies of its weight share (weights,
    gradient, momentum [U]) + the output maps of its batch share, stashed for the backward pass."""
    splits = [(0, 0)] * len(specs)
    for p in plans:
        splits = [(d + (s == DP), m + (s == MP)) for (d, m), s in zip(splits, p.assignment)]
    return [(3 * s.weight_elems / 2**m + config.batch / 2**d * s.out_elems) * (s.data_bits or config.data_bits) / 8
            for s, (d, m) in zip(specs, splits)]


def check_fits(specs, plans: list[LevelPlan], config: HyparConfig) -> None:
    need = memory_per_accelerator(specs, plans, config)
    if sum(need) > config.hmc_bytes:
        worst = max(range(len(specs)), key=need.__getitem__)
        raise NnccError(specs[worst].name, f"training needs {sum(need) / 2**30:.3g} GiB per accelerator (this layer "
                        f"{need[worst] / 2**30:.3g} GiB) > hmc_bytes {config.hmc_bytes / 2**30:.3g} GiB at batch {config.batch}; "
                        "lower --set batch= or raise --set accelerators=")


def unsupported_reason(row: Layer, is_spec: bool) -> str | None:
    if is_spec:
        return None
    if row.domain not in DEFAULT_DOMAINS:
        return "custom-domain op: no HyPar estimator"
    if graph_.is_free(row):
        return None
    if row.is_weighted and row.op not in graph_.PARTITIONED_OPS:
        return (f"weighted op outside HyPar's training model: only float {'/'.join(sorted(graph_.PARTITIONED_OPS))} "
                "layers are split by batch or by channels")
    if graph_.partitioned_weight(row) is not None:
        return "weighted layer with unknown (dynamic) shapes: its communication amounts cannot be sized"
    if any(s is None for s in row.output_shapes):
        return "output shape unknown: element-wise work cannot be sized"
    return None


def map_model(model: ir.Model, config: HyparConfig) -> HyparMapping:
    rows = layers(model)
    g = graph_.build(model, rows)
    names = {s.name for s in g.specs}
    unsupported = []
    for row in rows:
        reason = unsupported_reason(row, row.name in names)
        if reason:
            unsupported.append(Unsupported(row.name, row.op if not row.domain else f"{row.domain}::{row.op}", reason))
    bad = {u.name for u in unsupported}
    index = {s.name: i for i, s in enumerate(g.specs)}
    edges = {(index[u], index[v]) for u, v in g.dag.edges}
    plans = plan_all(g.specs, edges, config)
    check_fits(g.specs, plans["hypar"], config)
    return HyparMapping(layers=[r for r in rows if r.name not in bad], unsupported=unsupported, graph=g, plans=plans,
                        config=config)
