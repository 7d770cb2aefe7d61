"""Training regularizers for compression, each a penalty added to the task loss.

Spec syntax, like a pass spec: ``NAME[:key=value,...]``, e.g. ``group-lasso:lambda=1e-4,groups=filters+channels``.
Every regularizer has ``lambda`` (its strength; ``lam`` is the same key) and ``layers`` (a regex over
the layer node names it acts on; empty: every Conv/Gemm/MatMul weight).

Each layer's weight is seen as ``(N, C, *k)`` filters (Conv as is; Gemm/MatMul as ``(out, in)``).

========================  ====================================================================
``l1``                    plain L1: ``sum |w|`` (the baseline bit-slice L1 is compared against).
                          Proximal step: soft-threshold ``w -> sign(w) max(0, |w| - lr*lambda)``.
``group-lasso``           SSL (Wen et al., NIPS 2016): sum of L2 norms of weight groups.
                          ``groups`` ``+``-joins: ``filters`` (W[n]), ``channels`` (W[:, c]),
                          ``shapes`` (W[:, c, i, j]: one filter-shape position), ``depth`` (all of W),
                          ``crossbar`` (Group Scissor's group connection deletion: one output's
                          weights within one block of ``crossbar`` fan-in rows -- a crossbar column
                          segment, the wire the ``delete-groups`` pass removes).
                          With ``prox`` training (``finetune``'s ``prox=true``) the penalty is applied
                          as its proximal step after each optimizer step (block soft-threshold
                          ``g *= max(0, 1 - lr*lambda/|g|)``), which sets whole groups to exactly 0.
``hoyer``                 DeepHoyer Hoyer-Square per layer: ``(sum |w|)^2 / sum w^2``.
``group-hoyer``           DeepHoyer Group-HS: Hoyer-Square of the group norms (``groups`` as above).
``nuclear``               TRP: nuclear norm (sum of singular values) of the layer matrix: channel-wise
                          ``W.reshape(N, C*kh*kw)`` (``scheme=channel``) or spatial
                          ``(C*kh) x (N*kw)`` (``scheme=spatial``). Proximal step: singular-value
                          soft-threshold ``s -> max(0, s - lr*lambda)`` (exact low rank).
``force``                 Force Regularization (Wen et al., ICCV 2017): attractive forces between the
                          normalized filters ``u_i = w_i/|w_i|`` pull them into a lower-rank span.
                          ``kind=euclidean``: potential ``sum_{i<j} |u_i - u_j|`` whose negative
                          gradient on u_i is the paper's Euclidean force ``sum_j (u_j - u_i)/|u_j - u_i|``;
                          ``kind=cosine``: potential ``-sum_{i<j} u_i.u_j`` (force ``sum_j u_j``). Through
                          the normalization the gradient is the force's tangential component, as in the
                          paper (the filter lengths are not pulled). Divided by the filter count N.
``bitslice-l1``           Bit-slice L1 (arXiv 1909.08496): |w| rounded to 8 bits with one scale per layer
                          (max |w|, as the ReRAM target quantizes), cut into four 2-bit slices; penalty
                          ``alpha * sum(slices) / N`` over all weights. Its value is the exact integer slice
                          sum; its gradient is straight-through: each *non-zero* slice k (0 = least
                          significant) pulls its code toward 0 with weight ``4**-k`` code units, so small
                          weights (only low slices set) are cleared fast and large ones barely move.
                          ``scale``: ``max``, ``max-grad``, ``pow2``, ``fixed`` (see ``quantization.BitSliceL1``).
``quant-reg``             Quantization regularization (one-level-precision synapses): ``sum (w - q(w))^2``
                          with q rounding to ``levels`` uniform levels over [-max|w|, max|w|] (``levels=3``:
                          the {-a, 0, a} one-level synapse); q is treated as a constant (no gradient).
========================  ====================================================================
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

import torch

from nncc.crossbar import row_blocks
from nncc.errors import NnccError
from nncc.weights import WeightLayout

GROUP_KINDS = ("filters", "channels", "shapes", "depth", "crossbar")


@dataclasses.dataclass
class LayerWeight:
    """One weighted layer's weight as the regularizers see it: the parameter and its layout
    (from the layer view, :mod:`nncc.weights`)."""

    node: str
    onnx_name: str
    param: torch.Tensor
    layout: WeightLayout

    def filters(self) -> torch.Tensor:
        """The weight as ``(N, C, *k)`` output filters over input channels (differentiable view)."""
        w = self.param
        if self.layout.kind == "out_first":  # Conv [N, C, k...], Gemm transB=1 [N, K], W @ X [M, K]
            return w
        if w.dim() != 2:
            return w.reshape(-1, w.shape[-1]).t()
        return w.t()  # reduction first: Gemm transB=0 and X @ W hold (in, out)


def layer_weights(module) -> list[LayerWeight]:
    """The regularizable weights of a converted :class:`~nncc.training.convert.OnnxModule`."""
    return [LayerWeight(layer.node, layer.onnx_name, getattr(module, layer.key), layer.layout) for layer in module.layers]


@dataclasses.dataclass
class Regularizer:
    """Base: ``penalty(weights)`` -> scalar tensor, already multiplied by ``lam``."""

    name: ClassVar[str] = ""
    lam: float = 1e-4
    layers: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Reject bad parameter values when the spec is parsed, before any training."""
        if self.lam < 0:
            raise NnccError(f"--regularizer {self.name}", f"lambda {self.lam} must be >= 0")

    def select(self, weights: list[LayerWeight]) -> list[LayerWeight]:
        if not self.layers:
            return list(weights)
        try:
            pattern = re.compile(self.layers)
        except re.error as e:
            raise NnccError(f"--regularizer {self.name}", f"layers: bad regex '{self.layers}': {e}") from None
        return [w for w in weights if pattern.search(w.node)]

    def penalty(self, weights: list[LayerWeight]) -> torch.Tensor:
        chosen = self.select(weights)
        if not chosen:
            return torch.zeros(())
        return self.lam * self.value(chosen)

    has_prox: ClassVar[bool] = False

    @torch.no_grad()
    def prox_(self, weights: list[LayerWeight], step: float) -> None:
        """Proximal step of ``step * penalty`` on the selected weights, in place (when ``has_prox``)."""
        raise NotImplementedError

    def value(self, weights: list[LayerWeight]) -> torch.Tensor:
        raise NotImplementedError

    def __str__(self) -> str:
        args = ",".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))
        return f"{self.name}:{args}"


def _group_kinds(groups: str, where: str) -> list[str]:
    kinds = [g.strip() for g in groups.replace(",", "+").split("+") if g.strip()]
    bad = [k for k in kinds if k not in GROUP_KINDS]
    if bad or not kinds:
        raise NnccError(where, f"groups: '{groups}' (choose from {', '.join(GROUP_KINDS)}, joined by +)")
    return kinds


def crossbar_segments(w: torch.Tensor, crossbar: int) -> torch.Tensor:
    """``(N, C, *k)`` filters as ``(N, B, crossbar)``: per output, its column segments -- the fan-in
    (``C*kh*kw``, the row order of :meth:`nncc.weights.WeightLayout.matrices`) cut into the
    B row blocks of :mod:`nncc.crossbar`, zero-padded (the torch form of ``segment_norms``)."""
    m = w.reshape(w.shape[0], -1)
    blocks = row_blocks(m.shape[1], crossbar)
    pad = blocks * crossbar - m.shape[1]
    if pad:
        m = torch.nn.functional.pad(m, (0, pad))
    return m.reshape(m.shape[0], blocks, crossbar)


def group_norms(w: torch.Tensor, kind: str, eps: float = 0.0, crossbar: int = 128) -> torch.Tensor:
    """L2 norm of each group of ``w`` (``(N, C, *k)`` filters)."""
    sq = w * w
    if kind == "crossbar":
        s = (crossbar_segments(w, crossbar) ** 2).sum(-1).reshape(-1)
    elif kind == "filters":
        s = sq.reshape(w.shape[0], -1).sum(1)
    elif kind == "channels":
        s = sq.transpose(0, 1).reshape(w.shape[1], -1).sum(1)
    elif kind == "shapes":
        s = sq.sum(0).reshape(-1)
    else:
        s = sq.sum().reshape(1)
    return torch.sqrt(s + eps)


@dataclasses.dataclass
class GroupLasso(Regularizer):
    """SSL group lasso: lam * sum over layers and group kinds of sum_g |W_g|_2."""

    name: ClassVar[str] = "group-lasso"
    groups: str = "filters+channels"
    crossbar: int = 128  # rows per crossbar, for groups=crossbar
    has_prox: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        _group_kinds(self.groups, f"--regularizer {self.name}")
        if self.crossbar < 1:
            raise NnccError(f"--regularizer {self.name}", f"crossbar {self.crossbar} must be >= 1")

    def value(self, weights):
        kinds = _group_kinds(self.groups, f"--regularizer {self.name}")
        # eps keeps the gradient finite at an exactly-zero group (a pruned filter)
        return sum(group_norms(w.filters(), k, 1e-12, self.crossbar).sum() for w in weights for k in kinds)

    @torch.no_grad()
    def prox_(self, weights, step):
        """Block soft-threshold per group kind in turn: ``g *= max(0, 1 - step*lam/|g|)``."""
        t = step * self.lam
        for w in self.select(weights):
            for kind in _group_kinds(self.groups, f"--regularizer {self.name}"):
                f = w.filters()
                factor = torch.clamp(1 - t / group_norms(f, kind, 1e-30, self.crossbar), min=0.0)
                if kind == "crossbar":
                    seg = crossbar_segments(f, self.crossbar) * factor.reshape(f.shape[0], -1, 1)
                    new = seg.reshape(f.shape[0], -1)[:, : f[0].numel()].reshape(f.shape)
                elif kind == "filters":
                    new = f * factor.reshape((-1,) + (1,) * (f.dim() - 1))
                elif kind == "channels":
                    new = f * factor.reshape((1, -1) + (1,) * (f.dim() - 2))
                elif kind == "shapes":
                    new = f * factor.reshape((1,) + tuple(f.shape[1:]))
                else:
                    new = f * factor
                _write_filters(w, new)


def _write_filters(w: LayerWeight, filters: torch.Tensor) -> None:
    """Copy ``(N, C, *k)`` filters back into the layer's parameter (inverse of ``filters()``)."""
    p = w.param
    if w.layout.kind == "out_first":
        p.copy_(filters.reshape(p.shape))
    elif p.dim() != 2:
        p.copy_(filters.t().reshape(p.shape))
    else:
        p.copy_(filters.t())


@dataclasses.dataclass
class L1(Regularizer):
    """Plain L1: lam * sum |w| over the selected layers."""

    name: ClassVar[str] = "l1"
    has_prox: ClassVar[bool] = True

    def value(self, weights):
        return sum(w.param.abs().sum() for w in weights)

    @torch.no_grad()
    def prox_(self, weights, step):
        t = step * self.lam
        for w in self.select(weights):
            w.param.copy_(torch.sign(w.param) * torch.clamp(w.param.abs() - t, min=0.0))


def hoyer_square(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    a = x.abs()
    return a.sum() ** 2 / ((a * a).sum() + eps)


@dataclasses.dataclass
class Hoyer(Regularizer):
    """DeepHoyer Hoyer-Square: lam * sum over layers of (sum|w|)^2 / sum w^2."""

    name: ClassVar[str] = "hoyer"

    def value(self, weights):
        return sum(hoyer_square(w.param) for w in weights)


@dataclasses.dataclass
class GroupHoyer(Regularizer):
    """DeepHoyer Group-HS: lam * sum over layers and kinds of (sum_g |W_g|)^2 / sum_g |W_g|^2."""

    name: ClassVar[str] = "group-hoyer"
    groups: str = "filters+channels"

    def validate(self) -> None:
        super().validate()
        _group_kinds(self.groups, f"--regularizer {self.name}")

    def value(self, weights):
        kinds = _group_kinds(self.groups, f"--regularizer {self.name}")
        return sum(hoyer_square(group_norms(w.filters(), k, 1e-12)) for w in weights for k in kinds)


def trp_matrix(w: torch.Tensor, scheme: str) -> torch.Tensor:
    """TRP's decomposition matrix of ``(N, C, *k)`` filters."""
    if scheme == "channel" or w.dim() < 4:
        return w.reshape(w.shape[0], -1)
    n, c, kh, kw = w.shape[:4]
    return w.permute(1, 2, 0, 3).reshape(c * kh, n * kw)


@dataclasses.dataclass
class Nuclear(Regularizer):
    """TRP nuclear norm: lam * sum over layers of ||M||_* (``scheme`` channel or spatial)."""

    name: ClassVar[str] = "nuclear"
    scheme: str = "channel"

    def validate(self) -> None:
        super().validate()
        if self.scheme not in ("channel", "spatial"):
            raise NnccError(f"--regularizer {self.name}", f"scheme: '{self.scheme}' (channel or spatial)")

    has_prox: ClassVar[bool] = True

    def value(self, weights):
        return sum(torch.linalg.matrix_norm(trp_matrix(w.filters(), self.scheme), "nuc") for w in weights)

    @torch.no_grad()
    def prox_(self, weights, step):
        """Singular-value soft-threshold of the layer matrix: ``s -> max(0, s - step*lam)``."""
        for w in self.select(weights):
            f = w.filters()
            m = trp_matrix(f, self.scheme)
            u, sv, vh = torch.linalg.svd(m, full_matrices=False)
            m = (u * torch.clamp(sv - step * self.lam, min=0.0)) @ vh
            if self.scheme == "channel" or f.dim() < 4:
                new = m.reshape(f.shape)
            else:
                n, c, kh, kw = f.shape[:4]
                new = m.reshape(c, kh, n, kw).permute(2, 0, 1, 3)
            _write_filters(w, new.contiguous())


@dataclasses.dataclass
class Force(Regularizer):
    """Force Regularization: attractive forces between normalized filters (module doc)."""

    name: ClassVar[str] = "force"
    kind: str = "euclidean"

    def validate(self) -> None:
        super().validate()
        if self.kind not in ("euclidean", "cosine"):
            raise NnccError(f"--regularizer {self.name}", f"kind: '{self.kind}' (euclidean or cosine)")

    def value(self, weights):
        total = torch.zeros(())
        for w in weights:
            f = w.filters().reshape(w.filters().shape[0], -1)
            n = f.shape[0]
            if n < 2:
                continue
            u = f / (f.norm(dim=1, keepdim=True) + 1e-12)
            iu = torch.triu_indices(n, n, 1)
            if self.kind == "euclidean":
                d2 = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)[iu[0], iu[1]]
                total = total + torch.sqrt(d2 + 1e-12).sum() / n
            else:
                total = total - (u @ u.t())[iu[0], iu[1]].sum() / n
        return total


def total_penalty(regularizers: list[Regularizer], weights: list[LayerWeight]) -> torch.Tensor:
    total = torch.zeros(())
    for reg in regularizers:
        total = total + reg.penalty(weights)
    return total


def split_prox(regularizers: list[Regularizer], prox: bool) -> tuple[list[Regularizer], list[Regularizer]]:
    """(in the loss, as proximal steps): with ``prox`` every regularizer that has a proximal step
    (l1, group-lasso, nuclear) leaves the loss and is applied after each optimizer step."""
    if not prox:
        return list(regularizers), []
    return [r for r in regularizers if not r.has_prox], [r for r in regularizers if r.has_prox]
