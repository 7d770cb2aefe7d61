"""The training loop behind ``finetune``: configuration, learning-rate schedule, augmentation,
masks that keep pruned weights at zero, proximal steps and rank clipping during training.

Determinism: ``torch.manual_seed(seed)``, one torch thread while training, and a seeded
``torch.Generator`` for the shuffling; the same model, data and parameters give the same weights.

Optimizers: ``adam`` or ``sgd`` (``momentum``). ``prox``: the regularizers that have a proximal
operator (``l1``, ``group-lasso``, ``nuclear``) leave the loss and are applied as a proximal step
of size ``lr`` after every optimizer step (proximal SGD): groups, weights or singular values
reach exactly zero instead of oscillating around it -- with Adam, whose per-weight rescaling
defeats a penalty's gradient, or SGD alike. Best with ``optimizer=sgd``.

Pruned weights stay pruned (``keep_zeros``, default on): the exact zeros of every Conv/Gemm/MatMul
weight are recorded before training as a mask, their gradients are zeroed and the mask is
re-applied after every optimizer step -- otherwise fine-tuning after a pruning pass would regrow
what the pass removed.

Schedule and augmentation: ``schedule=cosine`` decays the learning rate per step from ``lr`` to
``min_lr`` over all the epochs (the proximal steps use the current rate); ``shift=S`` translates
each image input (rank-4, N x C x H x W) by up to S pixels in x and y, zero fill (the zoo's
MNIST recipe uses 2) -- on a few thousand digits fine-tuning without it overfits.

Rank clipping during training (Group Scissor): ``clip_every=n`` replaces every ``n`` optimizer
steps (and once after the last) each Conv/Gemm/MatMul weight matrix (``(outputs, fan-in)``, the
channel-wise matrix) by its truncation to the rank :func:`nncc.crossbar.cheapest_rank`
picks -- the fewest crossbars of ``clip_crossbar`` rows/columns (``clip_column_factor`` physical
columns per output) within the relative Frobenius error ``clip_tolerance`` -- only where that
rank saves crossbars, as the ``rank-clip`` pass would. Training goes on from the clipped weights,
so the network adapts to the low rank (``clip_layers``: a regex over the node names to clip); the ``rank-clip`` pass afterwards factorizes the (now
exactly low-rank) matrices with no further error. Layers already factorized, or with a single
crossbar, are left alone by the same rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from typing import Any, Callable

import numpy as np
import onnx_ir as ir
import torch
import torch.nn.functional as F

from nncc.crossbar import cheapest_rank, dense_crossbars, factored_crossbars
from nncc.errors import NnccError
from nncc.training.convert import OnnxModule
from nncc.training.params import TrainParams, choices
from nncc.training.regularizers import Regularizer, _write_filters, layer_weights, split_prox, total_penalty

Progress = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class TrainConfig(TrainParams):
    """The parameters (declared once, in :class:`nncc.training.params.TrainParams`) and the penalties."""

    regularizers: list[Regularizer] = dataclasses.field(default_factory=list)


SCHEDULES = choices("schedule")
OPTIMIZERS = choices("optimizer")


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total``."""
    if config.schedule == "cosine" and total > 1:
        return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * step / (total - 1)))
    return config.lr


def random_shift(x: torch.Tensor, gen: torch.Generator, margin: int) -> torch.Tensor:
    """Translate each N x C x H x W image by up to ``margin`` pixels in x and y (zero fill)."""
    if margin <= 0 or x.dim() != 4:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (margin,) * 4)
    dy, dx = torch.randint(0, 2 * margin + 1, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]   # n,1,h,1
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]   # n,1,1,w
    idx = torch.arange(n)[:, None, None, None]
    return padded[idx, torch.arange(x.shape[1])[None, :, None, None], rows, cols]


@torch.no_grad()
def clip_ranks_(module: OnnxModule, config: TrainConfig) -> list[dict[str, Any]]:
    """Group Scissor rank clipping in place (see the module doc); returns per clipped layer
    (node, rank, full rank, relative Frobenius error)."""
    out = []
    x, cf = config.clip_crossbar, config.clip_column_factor
    pattern = re.compile(config.clip_layers) if config.clip_layers else None
    for w in layer_weights(module):
        if pattern is not None and not pattern.search(w.node):
            continue
        f = w.filters()
        m = f.reshape(f.shape[0], -1)                  # (outputs M, fan-in N)
        outputs, fan_in = m.shape
        if not bool(torch.isfinite(m).all()) or not bool(m.any()):
            continue
        u, s, vh = torch.linalg.svd(m.double(), full_matrices=False)
        rank, error = cheapest_rank(s.numpy(), fan_in, outputs, x, cf, config.clip_tolerance)
        if rank >= s.numel() or factored_crossbars(fan_in, outputs, rank, x, cf) >= dense_crossbars(fan_in, outputs, x, cf):
            continue
        low = (u[:, :rank] * s[:rank]) @ vh[:rank]
        _write_filters(w, low.to(m.dtype).reshape(f.shape))
        out.append({"node": w.node, "rank": rank, "full_rank": int(s.numel()), "relative_frobenius_error": error})
    return out


@contextlib.contextmanager
def single_thread():
    """One torch thread while training (determinism, and a fair share of a small machine)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def prepare_inputs(module: OnnxModule, model: ir.Model, x: np.ndarray, where: object) -> torch.Tensor:
    """Labelled inputs as one tensor with a leading sample axis matching the model input."""
    spec = model.graph.inputs[0]
    rank = len(spec.shape) if spec.shape is not None else x.ndim
    x = np.asarray(x)
    if x.ndim == rank - 1:
        x = x[:, None]
    if x.ndim != rank:
        raise NnccError(where, f"x has shape {x.shape}, the model input '{spec.name}' has rank {rank}")
    if spec.shape is not None and tuple(x.shape[1:]) != tuple(spec.shape)[1:]:
        raise NnccError(where, f"x samples have shape {x.shape[1:]}, the model input '{spec.name}' is {tuple(spec.shape)}")
    dtype = spec.dtype.numpy() if spec.dtype is not None else np.float32
    return torch.from_numpy(np.ascontiguousarray(x.astype(dtype)))


def logits(module: OnnxModule, x: torch.Tensor) -> torch.Tensor:
    out = module(x)
    out = out[0] if isinstance(out, tuple) else out
    if out.dim() != 2:
        raise NnccError(module.where, f"finetune needs a classifier whose first output is (batch, classes); got shape {tuple(out.shape)}")
    return out


@torch.no_grad()
def accuracy(module: OnnxModule, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of the module in eval mode."""
    if len(x) == 0:
        return float("nan")
    was = module.training
    module.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        correct += int((logits(module, x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum())
    module.train(was)
    return correct / len(x)


def zero_masks(module: OnnxModule) -> dict[str, torch.Tensor]:
    """Per layer weight holding exact zeros: a mask of the entries allowed to train."""
    masks = {}
    for layer in module.layers:
        p = getattr(module, layer.key)
        if bool((p == 0).any()):
            masks[layer.key] = (p != 0).to(p.dtype)
    return masks


def train_module(module: OnnxModule, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Train ``module`` in place; returns the per-epoch history."""
    if config.epochs < 0 or config.batch_size < 1 or not config.lr > 0:
        raise NnccError("finetune", f"epochs {config.epochs}, batch size {config.batch_size}, lr {config.lr}: "
                                    "need epochs >= 0, batch size >= 1, lr > 0")
    if config.schedule not in SCHEDULES or not 0 <= config.min_lr <= config.lr:
        raise NnccError("finetune", f"schedule '{config.schedule}' (one of {', '.join(SCHEDULES)}), "
                                    f"min_lr {config.min_lr} (0 <= min_lr <= lr)")
    if config.shift < 0 or config.weight_decay < 0 or config.clip_every < 0 or not 0 <= config.clip_tolerance <= 1 \
            or config.clip_crossbar < 1 or config.clip_column_factor < 1:
        raise NnccError("finetune", f"shift {config.shift}, weight_decay {config.weight_decay}, clip_every "
                                    f"{config.clip_every} must be >= 0; clip_tolerance {config.clip_tolerance} in [0, 1]; "
                                    f"clip_crossbar {config.clip_crossbar}, clip_column_factor {config.clip_column_factor} >= 1")
    try:
        re.compile(config.clip_layers)
    except re.error as e:
        raise NnccError("finetune", f"clip_layers: bad regex '{config.clip_layers}': {e}") from None
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    params = [p for p in module.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        raise NnccError("finetune", f"optimizer '{config.optimizer}' (adam or sgd)")
    masks = zero_masks(module) if config.keep_zeros else {}
    weights = layer_weights(module)
    in_loss, proximal = split_prox(config.regularizers, config.prox)
    history = []
    clips: list[dict[str, Any]] = []
    steps = -(-len(x) // config.batch_size)
    total_steps, done = steps * config.epochs, 0
    for epoch in range(config.epochs):
        module.train()
        total_loss = total_pen = 0.0
        correct = seen = 0
        for step, idx in enumerate(torch.randperm(len(x), generator=gen).split(config.batch_size)):
            if len(idx) < 2 and len(x) >= 2:
                continue  # batch norm cannot train on one sample
            lr = lr_at(config, done, total_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            done += 1
            opt.zero_grad()
            scores = logits(module, random_shift(x[idx], gen, config.shift))
            loss = F.cross_entropy(scores, y[idx])
            penalty = total_penalty(in_loss, weights)
            (loss + penalty).backward()
            for key, mask in masks.items():
                getattr(module, key).grad.mul_(mask)
            opt.step()
            for reg in proximal:
                reg.prox_(weights, lr)
            if config.clip_every and done % config.clip_every == 0:
                clips = clip_ranks_(module, config)
            with torch.no_grad():
                if proximal:
                    penalty = penalty + total_penalty(proximal, weights)  # reported, not trained on
                for key, mask in masks.items():
                    getattr(module, key).mul_(mask)
            total_loss += float(loss.detach()) * len(idx)
            total_pen += float(penalty.detach()) * len(idx)
            correct += int((scores.argmax(1) == y[idx]).sum())
            seen += len(idx)
            if progress:
                progress({"epoch": epoch + 1, "epochs": config.epochs, "step": step + 1, "steps": steps,
                          "loss": total_loss / seen, "penalty": total_pen / seen, "accuracy": correct / seen})
        history.append({"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "penalty": total_pen / max(seen, 1),
                        "train_accuracy": correct / max(seen, 1), "lr": lr_at(config, max(done - 1, 0), total_steps)})
    if config.clip_every and config.epochs > 0 and done % config.clip_every:
        clips = clip_ranks_(module, config)   # end on clipped weights
        with torch.no_grad():
            for key, mask in masks.items():
                getattr(module, key).mul_(mask)
    module.eval()
    out = {"history": history, "masked_weights": len(masks)}
    if config.clip_every:
        out["rank_clipped"] = clips
    return out


def split_holdout(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a seeded permutation, the last ``holdout`` fraction held out."""
    if not 0.0 <= holdout < 1.0:
        raise NnccError("finetune", f"holdout {holdout} must be in [0, 1)")
    perm = np.random.default_rng(seed).permutation(n)
    cut = n - int(round(n * holdout))
    return perm[:cut], perm[cut:]


