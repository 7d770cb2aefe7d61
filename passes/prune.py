"""Unstructured weight sparsity: magnitude pruning and balanced N-of-L vector sparsity.

Both passes zero entries of constant weight initializers and keep every shape, so MACs
as the ONNX graph defines them stay the same; what falls is the count of non-zero
weights a sparse accelerator has to store and multiply.

``vector-sparsify`` follows Zhu et al., "Sparse Tensor Core: Algorithm and Hardware
Co-Design for Vector-wise Sparse Neural Networks on Modern GPUs" (MICRO 2019): every
weight matrix is viewed as the GEMM operand (one row per output, the reduction
dimension along the row), each row is split into vectors of length L, and each vector
keeps its N largest-magnitude entries, so every vector has the same number of non-zeros
and the hardware can store them as N values plus N in-vector indices.

Weights are found and viewed through the layer view's weight layouts (:mod:`nncc.weights`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import onnx_ir as ir

from nncc.errors import NnccError
from nncc.irutils import add_initializer, const_array
from nncc.pass_base import NnccPass
from nncc.weight_refs import WeightRef, weight_refs
from nncc.weights import WeightLayout, nonzeros_before, vector_blocks, vector_counts

def replace_weight(graph: ir.Graph, ref: WeightRef, array: np.ndarray) -> None:
    """Point every reader of ``ref`` at ``array``; the initializer keeps its name."""
    old = ref.value
    new = add_initializer(graph, old.name, np.ascontiguousarray(array, dtype=old.dtype.numpy()))
    for user, slot in list(old.uses()):
        user.replace_input_with(slot, new)
    graph.initializers.pop(old.name)
    new.name = old.name
    ref.value = new


WEIGHT_SLOTS = (1,)  # prune and weight-share rewrite the second operand's weight (X @ W, Conv, Gemm)


def vector_sparsity_pattern(weight: np.ndarray, vector: int, layout: WeightLayout, keep: int | None = None) -> dict[str, Any]:
    """Check the N-of-L balance of a weight, as a sparse-tensor-core target reads it.

    ``keep`` (N) defaults to the largest non-zero count of any vector. A vector is
    *balanced* when it holds at most N non-zeros (it fits the N value slots); the last
    short vector of a row counts as padded with zeros. ``exact_fraction`` is the share
    of full vectors with exactly N non-zeros.
    """
    matrix = layout.gemm_view(weight)
    nonzero = vector_counts(nonzeros_before(matrix), vector)
    full_nonzero = nonzero[:, :matrix.shape[1] // vector]
    n = int(nonzero.max(initial=0)) if keep is None else int(keep)
    return {
        "vector": int(vector),
        "keep": n,
        "rows": int(matrix.shape[0]),
        "reduction": int(matrix.shape[1]),
        "vectors": int(nonzero.size),
        "full_vectors": int(full_nonzero.size),
        "max_nonzero": int(nonzero.max(initial=0)),
        "min_nonzero_full": int(full_nonzero.min()) if full_nonzero.size else 0,
        "balanced_fraction": float(np.mean(nonzero <= n)) if nonzero.size else 1.0,
        "exact_fraction": float(np.mean(full_nonzero == n)) if full_nonzero.size else 1.0,
        "sparsity": float(1.0 - np.count_nonzero(weight) / weight.size) if weight.size else 0.0,
    }


def _magnitudes(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """|w| in one float type for all: float32 holds float16/bfloat16/float32 exactly."""
    wide = any(a.dtype.itemsize > 4 for a in arrays)
    return [np.abs(a.astype(np.float64 if wide else np.float32)) for a in arrays]


def first_ties(magnitude: np.ndarray, kth: np.ndarray, count: np.ndarray, below: bool) -> np.ndarray:
    """Mask of the entries strictly past ``kth`` plus the first ``count`` ties (last axis).

    ``below`` picks the entries smaller than ``kth`` (pruning), else the larger ones
    (keeping). Taking ties in index order reproduces a stable sort's choice in O(n).
    """
    strict = magnitude < kth if below else magnitude > kth
    tie = magnitude == kth
    return strict | (tie & (np.cumsum(tie, axis=-1) <= count))


def keep_largest_per_vector(matrix: np.ndarray, vector: int, keep: int) -> np.ndarray:
    """Zero all but the ``keep`` largest-|w| entries of every length-``vector`` piece of each row.

    Ties go to the lower index, so the result is deterministic and a matrix that already
    meets the pattern comes back unchanged.
    """
    blocks = vector_blocks(matrix, vector)
    if keep < vector:
        (magnitude,) = _magnitudes([blocks])
        kth = np.partition(magnitude, vector - keep, axis=-1)[..., vector - keep:vector - keep + 1] if keep else np.full_like(magnitude[..., :1], np.inf)
        need = keep - np.count_nonzero(magnitude > kth, axis=-1, keepdims=True)
        blocks = np.where(first_ties(magnitude, kth, need, below=False), blocks, np.zeros((), blocks.dtype))
    return blocks.reshape(matrix.shape[0], -1)[:, :matrix.shape[1]]


def _sparsity(array: np.ndarray) -> float:
    return float(1.0 - np.count_nonzero(array) / array.size) if array.size else 0.0


def layer_records(ref: WeightRef, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``layers`` record per layer that reads ``ref`` (the same figures for each, since the
    weight is one tensor), naming the others where it is shared."""
    shared = {"shared_with": ref.layers} if len(ref.layers) > 1 else {}
    return [{"name": layer, **entry, **shared} for layer in ref.layers]


def _select(refs: list[WeightRef], skip_first_last: bool, min_params: int, skipped: list[dict[str, str]]) -> list[WeightRef]:
    chosen = []
    for i, ref in enumerate(refs):
        if skip_first_last and i in (0, len(refs) - 1):
            skipped += ref.skipped("first or last weighted layer (skip_first_last)")
        elif ref.value.const_value.size < min_params:
            skipped += ref.skipped(f"fewer than min_params={min_params} weights")
        else:
            chosen.append(ref)
    return chosen


@dataclasses.dataclass
class PruneWeights(NnccPass):
    """Zero the smallest-magnitude weights of Conv/ConvTranspose/Gemm/MatMul layers.

    Exactly ``round(ratio * n)`` weights end up zero (n = weights of the layer, or of all
    selected layers for ``scope=global``); weights that are already zero are the first
    ones counted, and ties in |w| are broken by position, so a second run with the same
    ratio finds the target met and changes nothing. Biases are never touched.
    """

    name = "prune"
    target_independent = True
    summary = "unstructured magnitude pruning of weights (per layer or one global threshold)"

    ratio: float = 0.5
    scope: Literal["global", "layer"] = "layer"
    skip_first_last: bool = False
    min_params: int = 0

    def apply(self, model: ir.Model) -> bool:
        if not 0.0 <= self.ratio <= 1.0:
            raise NnccError(f"--pass {self.name}", f"ratio={self.ratio} is not in [0, 1]")
        graph = model.graph
        refs, skipped = weight_refs(graph, WEIGHT_SLOTS)
        refs = _select(refs, self.skip_first_last, self.min_params, skipped)
        arrays = [const_array(r.value) for r in refs]
        magnitudes = _magnitudes(arrays)
        if self.scope == "global":
            groups = [list(range(len(refs)))] if refs else []
        else:
            groups = [[i] for i in range(len(refs))]
        new_arrays = list(arrays)
        thresholds: dict[int, float] = {}
        for members in groups:
            flat = np.concatenate([magnitudes[i].ravel() for i in members])
            count = int(round(self.ratio * flat.size))
            # The count smallest |w|, ties by position (what a stable argsort would pick),
            # found with a partition in O(n): zeros go first, so a met target is a no-op.
            kth = np.partition(flat, count - 1)[count - 1] if count else -np.inf
            need = count - np.count_nonzero(flat < kth)
            mask = first_ties(flat, kth, need, below=True)
            threshold = float(kth) if count else 0.0
            start = 0
            for i in members:
                size = arrays[i].size
                layer_mask = mask[start:start + size].reshape(arrays[i].shape)
                start += size
                thresholds[i] = threshold
                if np.any(arrays[i][layer_mask] != 0):
                    new_arrays[i] = np.where(layer_mask, np.zeros((), arrays[i].dtype), arrays[i])
        modified = False
        layers: list[dict[str, Any]] = []
        for i, ref in enumerate(refs):
            if new_arrays[i] is not arrays[i]:
                replace_weight(graph, ref, new_arrays[i])
                modified = True
            entry = {"weight": ref.name, "params": int(arrays[i].size), "sparsity": _sparsity(new_arrays[i]),
                     "newly_zeroed": int(np.count_nonzero(arrays[i]) - np.count_nonzero(new_arrays[i])),
                     "threshold": thresholds[i]}
            layers += layer_records(ref, entry)
        total = sum(a.size for a in new_arrays)
        zeros = sum(a.size - np.count_nonzero(a) for a in new_arrays)
        self.stats.update({
            "scope": self.scope,
            "layers": layers,
            "params": int(total),
            "zeros": int(zeros),
            "sparsity": float(zeros / total) if total else 0.0,
            "skipped": skipped,
        })
        if self.scope == "global":
            self.stats["threshold"] = thresholds[0] if refs else 0.0
        return modified


@dataclasses.dataclass
class SparsifyVectors(NnccPass):
    """Balanced vector-wise sparsity (N non-zeros in every L weights) for the Sparse Tensor Core.

    Each weight is viewed as the GEMM operand [outputs, reduction] (Conv: [M, C/g*k*k];
    Gemm: [N, K] whatever transB; MatMul: B [K, N] transposed); each row is cut into
    vectors of ``vector`` entries along the reduction, and each vector keeps its ``keep``
    largest |w|. ``sparsity`` (when given) overrides keep: keep = L - round(sparsity * L).
    """

    name = "vector-sparsify"
    target_independent = True
    summary = "balanced N-of-L vector-wise weight sparsity for the Sparse Tensor Core (Zhu et al., MICRO 2019)"

    vector: int = 16
    keep: int = 8
    sparsity: float | None = None
    skip_first_last: bool = False
    min_params: int = 0

    def _keep(self) -> int:
        where = f"--pass {self.name}"
        if self.vector < 1:
            raise NnccError(where, f"vector={self.vector} must be at least 1")
        if self.sparsity is not None:
            if not 0.0 <= self.sparsity <= 1.0:
                raise NnccError(where, f"sparsity={self.sparsity} is not in [0, 1]")
            return self.vector - int(round(self.sparsity * self.vector))
        if not 0 <= self.keep <= self.vector:
            raise NnccError(where, f"keep={self.keep} is not in [0, vector={self.vector}]")
        return self.keep

    def apply(self, model: ir.Model) -> bool:
        keep = self._keep()
        graph = model.graph
        refs, skipped = weight_refs(graph, WEIGHT_SLOTS)
        refs = _select(refs, self.skip_first_last, self.min_params, skipped)
        modified = False
        layers: list[dict[str, Any]] = []
        total = zeros = 0
        for ref in refs:
            if ref.layout is None:
                skipped += ref.skipped("shared by layers that read it in different layouts")
                continue
            weight = const_array(ref.value)
            matrix = keep_largest_per_vector(ref.layout.gemm_view(weight), self.vector, keep)
            new = ref.layout.from_gemm_view(matrix, weight.shape)
            if not np.array_equal(new, weight):
                replace_weight(graph, ref, new)
                modified = True
            pattern = vector_sparsity_pattern(new, self.vector, ref.layout, keep)
            layers += layer_records(ref, {"weight": ref.name, "layout": ref.layout.kind, **pattern})
            total += new.size
            zeros += new.size - int(np.count_nonzero(new))
        self.stats.update({
            "vector": self.vector,
            "keep": keep,
            "layers": layers,
            "params": int(total),
            "zeros": int(zeros),
            "sparsity": float(zeros / total) if total else 0.0,
            "balanced_fraction": min((e["balanced_fraction"] for e in layers), default=1.0),
            "skipped": skipped,
        })
        return modified
