"""Weight sharing: cluster each filter's (or layer's) weights to U unique values, for UCNN.

UCNN (Hegde et al., "UCNN: Exploiting Computational Reuse in Deep Neural Networks via
Weight Repetition", ISCA 2018) factorizes a dot product by grouping the inputs that meet
the same weight value: sum the inputs first, multiply once per unique weight. Its gain
grows as the unique weights per filter shrink (the paper uses INQ with ~17 unique values
and TTQ with 3), and zero is the special repeated weight it skips altogether.

Each group's values are clustered by 1-D k-means (Lloyd): deterministic quantile
initialisation, a fixed number of iterations in numpy. Exact zeros stay zero, and when a
group holds zeros, 0 is one of its U values (a fixed centroid that small weights may also
join). A group that already has at most U unique values is left as it is, which makes the
pass idempotent.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import onnx_ir as ir

from nncc.errors import NnccError
from nncc.irutils import const_array
from nncc.pass_base import NnccPass
from nncc.passes.prune import WEIGHT_SLOTS, layer_records, replace_weight
from nncc.weight_refs import weight_refs

# Lloyd iterations (stopping early once the centroids stop moving). From quantile seeds,
# 10 leave the L2 error of a 400-weight Gaussian filter at 17 values ~6% above the fixed
# point, 50 reach it; an iteration costs O(U log n), so the extra ones are cheap.
LLOYD_ITERATIONS = 50


def unique_counts(matrix: np.ndarray) -> np.ndarray:
    """Distinct values in each row of a 2-D array (0.0 and -0.0 count as one)."""
    return _distinct(np.sort(matrix, axis=1))


def _distinct(ordered: np.ndarray) -> np.ndarray:
    """Distinct values per row of a row-sorted 2-D array."""
    if ordered.shape[1] == 0:
        return np.zeros(ordered.shape[0], dtype=np.int64)
    return 1 + np.count_nonzero(np.diff(ordered, axis=1) != 0, axis=1)


def _assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted ``centroids`` for every value."""
    return np.searchsorted((centroids[:-1] + centroids[1:]) / 2, values)


def share_values(values: np.ndarray, unique: int, iterations: int = LLOYD_ITERATIONS, ordered: np.ndarray | None = None) -> np.ndarray:
    """``values`` (1-D, float64) mapped onto at most ``unique`` centroids by 1-D k-means.

    Zeros stay zero; when there are zeros, 0 is a fixed centroid and U - 1 move freely
    (small non-zero weights may join it). With U = 1 and zeros present, all become zero.
    ``ordered`` is ``np.sort(values)`` when the caller has it already.
    """
    ordered = np.sort(values) if ordered is None else ordered
    # On sorted values the zeros are one run, and every cluster is a contiguous run, so
    # one Lloyd iteration costs U binary searches and prefix-sum lookups, not a pass over n.
    z0, z1 = np.searchsorted(ordered, 0.0, side="left"), np.searchsorted(ordered, 0.0, side="right")
    has_zero = bool(z1 > z0)
    free = unique - 1 if has_zero else unique
    if free <= 0:
        return np.zeros_like(values)
    moving = np.concatenate([ordered[:z0], ordered[z1:]])
    if moving.size == 0:
        return values.copy()
    # Quantile seeds (linear interpolation, as np.quantile) put the centroids where the
    # weights are dense; np.unique drops seeds that coincide.
    position = (np.arange(free) + 0.5) / free * (moving.size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, moving.size - 1)
    seeds = np.unique(moving[low] + (position - low) * (moving[high] - moving[low]))
    centroids = np.concatenate([seeds, [0.0]]) if has_zero else seeds
    fixed = np.zeros(centroids.size, dtype=bool)
    fixed[-1] = has_zero
    prefix = np.concatenate([[0.0], np.cumsum(moving)])
    for _ in range(iterations):
        order = np.argsort(centroids, kind="stable")
        centroids, fixed = centroids[order], fixed[order]
        # A value on a midpoint goes to the lower centroid, as in _assign.
        bounds = np.concatenate([[0], np.searchsorted(moving, (centroids[:-1] + centroids[1:]) / 2, side="right"), [moving.size]])
        counts = np.diff(bounds)
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        new = np.where((counts > 0) & ~fixed, sums / np.maximum(counts, 1), centroids)
        if np.array_equal(new, centroids):
            break
        centroids = new
    centroids = np.sort(centroids)
    out = centroids[_assign(values, centroids)]
    out[values == 0] = values[values == 0]  # exact zeros (and -0.0) stay as they are
    return out


@dataclasses.dataclass
class ShareWeights(NnccPass):
    """Cluster every Conv/ConvTranspose/Gemm/MatMul weight to ``unique`` values per filter or layer.

    ``per=filter``: each output channel (Conv) or output neuron (Gemm/MatMul) gets its own
    U values, as UCNN's per-filter factorization uses them; ``per=layer``: one set of U
    values for the whole tensor. Biases are not touched.
    """

    name = "weight-share"
    target_independent = True
    summary = "cluster weights to U unique values per filter or layer (1-D k-means) for UCNN weight repetition"

    unique: int = 17
    per: Literal["filter", "layer"] = "filter"

    def apply(self, model: ir.Model) -> bool:
        if self.unique < 1:
            raise NnccError(f"--pass {self.name}", f"unique={self.unique} must be at least 1")
        graph = model.graph
        refs, skipped = weight_refs(graph, WEIGHT_SLOTS)
        modified = False
        layers: list[dict[str, Any]] = []
        for ref in refs:
            if ref.layout is None and self.per == "filter":
                skipped += ref.skipped("shared by layers that read it in different layouts")
                continue
            weight = const_array(ref.value)
            if self.per == "filter":
                groups = ref.layout.filter_view(weight)
            else:
                groups = weight.reshape(1, -1)
            ordered = np.sort(groups, axis=1)
            before = _distinct(ordered)
            rows = np.flatnonzero(before > self.unique)
            changed = bool(rows.size)
            new_groups, after = groups, before
            if changed:
                new_groups, after = groups.copy(), before.copy()
                for row in rows:
                    # Centroids are cast back to the weight's dtype; casting cannot add values.
                    new_groups[row] = share_values(groups[row].astype(np.float64), self.unique,
                                                   ordered=ordered[row].astype(np.float64))
                after[rows] = unique_counts(new_groups[rows])
                new = (ref.layout.from_filter_view(new_groups, weight.shape)
                       if self.per == "filter" else new_groups.reshape(weight.shape))
                replace_weight(graph, ref, new)
                modified = True
            delta = new_groups[rows].astype(np.float64) - groups[rows]
            norm = float(np.sqrt(np.sum(np.square(groups, dtype=np.float64))))
            # The index stream stores one ceil(log2 U)-bit code per weight instead of the
            # weight itself (plus a small table of U values per group, not counted here).
            bits = max(1, math.ceil(math.log2(max(int(after.max(initial=1)), 2))))
            weight_bits = ref.value.dtype.bitwidth
            entry = {
                "weight": ref.name,
                "groups": int(groups.shape[0]),
                "unique_max": int(after.max(initial=0)),
                "unique_mean": float(after.mean()) if after.size else 0.0,
                "unique_before_max": int(before.max(initial=0)),
                "index_bits": bits,
                "compression": weight_bits / bits,
                "l2_error": float(np.linalg.norm(delta)),
                "relative_l2_error": float(np.linalg.norm(delta) / norm) if norm else 0.0,
                "max_abs_error": float(np.abs(delta).max(initial=0.0)),
                "zeros": int(weight.size - np.count_nonzero(new_groups)),
                "changed": changed,
            }
            layers += layer_records(ref, entry)
        self.stats.update({"unique": self.unique, "per": self.per, "layers": layers,
                           "skipped": skipped,
                           "max_abs_error": max((e["max_abs_error"] for e in layers), default=0.0)})
        return modified
