"""Rank clipping (Group Scissor, Wang et al., DAC 2017, arXiv 1702.03443): a low rank chosen
to save crossbars, not FLOPs.

A weighted layer as the reram target places it is an N x M matrix (N = fan-in rows, M =
outputs; each output takes ``cf`` = slices x polarities physical columns). On X x X crossbars

    before(M)   = ceil(N/X) ceil(M cf/X)
    after(K)    = ceil(N/X) ceil(K cf/X) + ceil(K/X) ceil(M cf/X)     (W ~= U V, U [N, K], V [K, M])

(``nncc.crossbar``; with cf = 1 these are the logical counts). ``after`` is a non-decreasing step
function of K, so the cheapest rank within the error tolerance is the smallest K_min whose
relative Frobenius error ||W - W_K||_F / ||W||_F <= ``tolerance`` (the paper's clip of the
small singular values), and every rank up to the end of that step costs the same: the pass
keeps the LARGEST such rank (lower error at no extra crossbar). A layer is factorized only
when after(K) < before; the rewrite itself is FactorizeLowRank's (``channel`` scheme: Gemm/
MatMul -> two products, Conv -> k x k conv C -> K then 1 x 1 K -> M), so the two factors are
exactly the two matrices the count above places.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import onnx_ir as ir

from nncc.crossbar import CrossbarGeometry, cheapest_rank, dense_crossbars, factored_crossbars
from nncc.errors import NnccError
from nncc.irutils import drop_unused_initializers
from nncc.pass_base import NnccPass
from nncc.passes.lowrank import FactorizeLowRank
from nncc.passes.svd import Truncation
from nncc.passes.weighted import skip_record
from nncc.pipeline import PassContext


def plan_geometry(where: str, crossbar: int | None) -> CrossbarGeometry:
    """The compile target's crossbar geometry (``nncc compile -t reram --set crossbar_size=64``
    reaches the passes through the pass context); an explicit ``crossbar=`` overrides its size."""
    geometry = PassContext.current().crossbar_for(where)
    return geometry if crossbar is None else dataclasses.replace(geometry, size=crossbar)


@dataclasses.dataclass
class ClipRanks(NnccPass):
    """Factorize Gemm/MatMul/Conv weights at the rank that needs the fewest crossbars within an
    error tolerance (Group Scissor's rank clipping, post-training).

    Parameters:
      tolerance: largest relative Frobenius error ||W - W_K||_F / ||W||_F allowed per layer
        (0 keeps every layer exact, i.e. unchanged). 0.3 costs LeNet-5/MNIST 0.1 pt top-1
        post-training (benchmarks/group_scissor.py).
      crossbar: crossbar rows = columns X; None: the compile target's crossbar size. The pass
        plans for the compile target's crossbars and fails when the target has none.
      column_factor: physical columns per weight (slices x polarities); None: from the same
        geometry (8 = four 2-bit slices x two polarities on the reram defaults).
      count: ``physical`` (crossbars as the reram mapping places them, with bit slices and
        polarities) or ``logical`` (one cell per weight, Group Scissor's formula) decides.
    """

    name = "rank-clip"
    summary = "Group Scissor rank clipping: per-layer low rank chosen to minimize crossbars within an error tolerance"

    tolerance: float = 0.3
    crossbar: int | None = None
    column_factor: int | None = None
    count: Literal["physical", "logical"] = "physical"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.tolerance <= 1:
            raise NnccError("rank-clip", f"tolerance={self.tolerance} must be in [0, 1]")
        if (self.crossbar is not None and self.crossbar < 1) or (self.column_factor is not None and self.column_factor < 1):
            raise NnccError("rank-clip", f"crossbar={self.crossbar} and column_factor={self.column_factor} must be >= 1")
        if self.count not in ("physical", "logical"):
            raise NnccError("rank-clip", f"count='{self.count}' must be physical or logical")

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        geometry = plan_geometry(self.name, self.crossbar)
        x = geometry.size
        cf_phys = self.column_factor if self.column_factor is not None else geometry.column_factor
        cf = cf_phys if self.count == "physical" else 1
        # FactorizeLowRank plans and rewrites; this pass only chooses the rank.
        factorizer = FactorizeLowRank(scheme="channel", rank_ratio=1.0)
        done: list[dict] = []
        skipped: list[dict] = []
        nodes, already = factorizer.plans(model)
        for node, label, plan in nodes:
            if not isinstance(plan, str) and plan.weight.layout.index == 0:
                plan = "constant first operand (W X): the reram mapping does not place it on crossbars"
            if isinstance(plan, str):
                skipped.append(skip_record(node, label, plan))
                continue
            w = plan.matrix  # the channel scheme's matrix: [outputs, fan-in] for Conv, [fan-in, outputs] otherwise
            if not np.issubdtype(w.dtype, np.floating) or not np.all(np.isfinite(w)) or not np.any(w):
                skipped.append(skip_record(node, label, "weight is not a finite, non-zero float tensor"))
                continue
            n, m = plan.weight.fan_in, plan.weight.outputs
            u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
            rank, error = cheapest_rank(s, n, m, x, cf, self.tolerance)
            before, after = dense_crossbars(n, m, x, cf), factored_crossbars(n, m, rank, x, cf)
            record = {"name": label, "op": node.op_type, "N": int(n), "M": int(m), "rank": rank, "full_rank": int(s.size),
                      "relative_frobenius_error": error, "spectral_error": float(s[rank]) if rank < s.size else 0.0,
                      "frobenius_error": error * float(np.linalg.norm(s)),
                      "crossbars_before": dense_crossbars(n, m, x, cf_phys),
                      "crossbars_after": factored_crossbars(n, m, rank, x, cf_phys),
                      "crossbars_logical_before": dense_crossbars(n, m, x),
                      "crossbars_logical_after": factored_crossbars(n, m, rank, x)}
            if after >= before:
                skipped.append({**record, "reason": f"no {self.count} crossbar saving at rank {rank}: {before} -> {after}"})
                continue
            root = np.sqrt(s[:rank])
            left, right = u[:, :rank] * root, root[:, None] * vt[:rank]
            trunc = Truncation(left, right, rank, int(s.size), record["spectral_error"], record["frobenius_error"],
                               float(np.linalg.norm(s)), "exact", "discarded singular values (exact SVD)")
            factorizer.rewrite(graph, node, plan, trunc, w.dtype)
            done.append(record)
        if done:
            drop_unused_initializers(graph)
        self.stats.update({
            "crossbar": x, "column_factor": cf_phys, "count": self.count, "tolerance": self.tolerance,
            "clipped": len(done), "kept": len(skipped), "already_factorized_nodes": already,
            "crossbars_before": sum(r["crossbars_before"] for r in done + skipped if "N" in r),
            "crossbars_after": sum(r["crossbars_after"] for r in done)
            + sum(r["crossbars_before"] for r in skipped if "N" in r),
            "max_relative_frobenius_error": max((r["relative_frobenius_error"] for r in done), default=0.0),
            "layers": done, "skipped": skipped,
        })
        return bool(done)
