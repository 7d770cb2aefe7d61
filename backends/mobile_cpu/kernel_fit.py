"""Per-kernel latency predictors of the ``host`` profile (nn-Meter's per-kernel fits, in numpy).

Each kernel kind (:mod:`.kernels`) gets its own predictor, fitted on micro-benchmarks of
sampled kernel configurations (``calibrate`` via :mod:`.kernel_bench`), never on the models
the accuracy benchmark evaluates:

    t(kind, f) = max(0, c0 + c1 x MACs + c2 x (in + out bytes) + c3 x weight bytes)
                 x exp(r_knn(f))

The linear part is a non-negative least-squares fit in *relative* error (rows weighted by
1 / measured time). ``r_knn`` (kept for a kind only when 5-fold cross-validation says it
helps) is the distance-weighted mean log residual (measured / linear)
of the k nearest training kernels in standardized log-feature space (MACs, channels per
group, output channels, output positions, kernel size, stride, bytes): the non-linear part
(tile and cache effects) that a random forest captures in nn-Meter. A kind with no fit
returns None and the caller falls back to the roofline.

Composing kernels into a network (``scale``, ``per_kernel_s``): calibration measures whole
random synthetic networks (:func:`synthetic_graphs.network_graph`, none of the evaluated models)
and fits

    network time - invoke = scale x sum of fitted kernel times + per_kernel_s x kernels

by least squares in relative error; by default with scale = 1 (kernel times are already
apportioned from CPU-time medians, see ``calibrate.compose``). ``per_kernel_s`` may come out
negative: a kernel inside a network of like-sized kernels costs less than the same kernel
in a sampled graph, where a small kernel often runs right after a large one, with the caches
cold for it (a 4-byte Reshape measured 2 us among small kernels and 9 us after 50 ms of
convolutions, 2026-11-30). A kernel is then never predicted below a tenth of its fit, and
the term leaves alone the kinds that move no data (``IN_PLACE_KINDS``).

Fits are persisted as compact JSON in the profile's ``kernel_fits`` field (TOML string).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Sequence

import numpy as np

K_NEAREST = 5
# Kinds that move no data: onnxruntime runs a Reshape on its input's own buffer (an alias), so
# it costs its dispatch alone, with no cache state to warm or cool. The composition term is
# fitted on synthetic CNNs that hold one such kernel at most (a Flatten) and is not applied to
# them: BERT-tiny's 32 Reshapes (1.5 us each, their fit 1.6 us) were predicted at 0.6 us with it.
IN_PLACE_KINDS = frozenset({"reshape"})
# Feature indices (kernels.FEATURES) used for neighbours, after log1p.
KNN_FEATURES = (0, 4, 5, 8, 6, 7, 1, 3)


def basis(features: Sequence[float]) -> np.ndarray:
    macs, in_b, out_b, w_b = features[0], features[1], features[2], features[3]
    return np.array([1.0, macs, in_b + out_b, w_b])


def nnls(a: np.ndarray, b: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Non-negative least squares by an active set (a few columns: exact and fast)."""
    free = np.ones(a.shape[1], bool)
    x = np.zeros(a.shape[1])
    for _ in range(iterations):
        x = np.zeros(a.shape[1])
        if free.any():
            x[free] = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
        if (x >= 0).all():
            return x
        worst = int(np.argmin(np.where(free, x, np.inf)))
        free[worst] = False
    return np.clip(x, 0, None)


@dataclasses.dataclass
class KindFit:
    coef: list[float]
    center: list[float]
    scale: list[float]
    points: list[list[float]]   # standardized KNN features + log residual (last)

    def linear(self, features: Sequence[float]) -> float:
        return float(basis(features) @ np.array(self.coef))

    def predict(self, features: Sequence[float]) -> float:
        base = max(self.linear(features), 1e-7)
        if not self.points:
            return base
        pts = np.array(self.points)
        q = (_knn_vector(features) - np.array(self.center)) / np.array(self.scale)
        dist = np.sqrt(((pts[:, :-1] - q) ** 2).sum(axis=1))
        near = np.argsort(dist)[:K_NEAREST]
        weights = 1.0 / (dist[near] + 0.05)
        return base * math.exp(float((pts[near, -1] * weights).sum() / weights.sum()))


def _knn_vector(features: Sequence[float]) -> np.ndarray:
    return np.log1p(np.array([max(float(features[i]), 0.0) for i in KNN_FEATURES]))


def fit_kind(samples: list[tuple[Sequence[float], float]], knn: bool | None = None) -> KindFit:
    """Fit one kind on (features, measured seconds) samples. ``knn=None``: keep the neighbour
    correction only if it lowers the median relative error of a 5-fold cross-validation."""
    if knn is None:
        knn = len(samples) >= 10 and _cross_validate(samples, True) < _cross_validate(samples, False)
    feats = [f for f, _ in samples]
    t = np.array([s for _, s in samples])
    a = np.array([basis(f) for f in feats]) / t[:, None]
    coef = nnls(a, np.ones(len(t)))
    fit = KindFit([float(c) for c in coef], [], [], [])
    if knn and len(samples) >= 3:
        vectors = np.array([_knn_vector(f) for f in feats])
        center, scale = vectors.mean(axis=0), vectors.std(axis=0)
        scale[scale < 1e-6] = 1.0
        residual = np.log(t / np.maximum([fit.linear(f) for f in feats], 1e-7))
        fit.center, fit.scale = center.tolist(), scale.tolist()
        fit.points = [[*((v - center) / scale).round(4).tolist(), round(float(r), 4)] for v, r in zip(vectors, residual)]
    return fit


def _cross_validate(samples: list[tuple[Sequence[float], float]], knn: bool, folds: int = 5) -> float:
    errors = []
    for fold in range(folds):
        train = [s for i, s in enumerate(samples) if i % folds != fold]
        fit = fit_kind(train, knn)
        errors += [abs(fit.predict(f) / t - 1) for i, (f, t) in enumerate(samples) if i % folds == fold]
    return float(np.median(errors))


@dataclasses.dataclass
class KernelFits:
    kinds: dict[str, KindFit]
    per_kernel_s: float = 0.0   # a kernel's time in a network less its fitted time (may be negative)
    invoke_s: float = 0.0       # one session run's fixed cost
    scale: float = 1.0          # kernel time inside a whole network / alone (composition fit)

    def predict(self, kind: str, features: Sequence[float]) -> float | None:
        fit = self.kinds.get(kind)
        if fit is None or not features:
            return None
        alone = fit.predict(features) * self.scale
        if kind in IN_PLACE_KINDS:
            return alone
        return max(alone + self.per_kernel_s, 0.1 * alone)

    def to_json(self) -> str:
        data = {"per_kernel_s": self.per_kernel_s, "invoke_s": self.invoke_s, "scale": self.scale,
                "kinds": {k: [[round(c, 18) for c in f.coef], f.center, f.scale, f.points] for k, f in sorted(self.kinds.items())}}
        return json.dumps(data, separators=(",", ":"))


@functools.lru_cache(maxsize=8)
def from_json(text: str) -> KernelFits | None:
    if not text:
        return None
    data = json.loads(text)
    kinds = {k: KindFit(list(v[0]), list(v[1]), list(v[2]), [list(p) for p in v[3]]) for k, v in data["kinds"].items()}
    return KernelFits(kinds, float(data.get("per_kernel_s", 0.0)), float(data.get("invoke_s", 0.0)), float(data.get("scale", 1.0)))


def fit_all(samples: dict[str, list[tuple[Sequence[float], float]]], per_kernel_s: float = 0.0, invoke_s: float = 0.0,
            min_samples: int = 2) -> KernelFits:
    return KernelFits({kind: fit_kind(pts) for kind, pts in samples.items() if len(pts) >= min_samples}, per_kernel_s, invoke_s)


def relative_errors(fits: KernelFits, samples: dict[str, list[tuple[Sequence[float], float]]]) -> dict[str, list[float]]:
    """Predicted / measured - 1 of each sample (without the dispatch term), by kind."""
    return {kind: [fits.kinds[kind].predict(f) / t - 1 for f, t in pts] for kind, pts in samples.items() if kind in fits.kinds}
