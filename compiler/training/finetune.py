"""Fine-tuning an ONNX model in torch, with compression regularizers, and back into the same graph.

:func:`finetune_model` converts an onnx-ir model (:mod:`nncc.training.convert`), trains it with
cross-entropy on its first output plus the chosen penalties (:mod:`nncc.training.regularizers`),
and writes the trained values into the model's own initializers: the graph keeps its structure,
so every pass and target runs on the result. ``nncc finetune`` is the command-line front end;
:class:`FineTune` (``finetune``) is the same as a pass, so a pipeline can interleave
``prune -> finetune -> prune`` or TRP's ``factorize -> finetune``.

The training loop itself (optimizers, proximal steps, masks, schedule, rank clipping during
training) is :mod:`nncc.training.loop`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any

import numpy as np
import onnx_ir as ir
import torch

from nncc.errors import NnccError
from nncc.pass_base import NnccPass
from nncc.pipeline import PassContext
from nncc.training.convert import to_torch
from nncc.training.params import TrainParams
from nncc.training.specs import parse_regularizers

from nncc.training.loop import (  # noqa: F401 - re-exported: the public names of fine-tuning
    Progress, TrainConfig, logits, accuracy, lr_at, prepare_inputs, random_shift, single_thread, split_holdout,
    train_module, zero_masks)

METADATA_KEY = "nncc.finetune"


def finetune_model(model: ir.Model, x: np.ndarray, y: np.ndarray, config: TrainConfig, *,
                   eval_data: tuple[np.ndarray, np.ndarray] | None = None, holdout: float = 0.0,
                   where: object = "model", progress: Progress | None = None) -> dict[str, Any]:
    """Train ``model``'s weights in place on (x, y); return stats (accuracies before/after, history).

    Accuracy is measured (torch, eval mode) on ``eval_data`` when given, else on a seeded
    ``holdout`` fraction of (x, y) kept out of training; no accuracy when neither.
    """
    y = np.asarray(y)
    if len(x) != len(y):
        raise NnccError(where, f"x has {len(x)} samples but y has {len(y)}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.array_equal(y, np.round(y)):
            raise NnccError(where, "labels y must be integer class indices")
    start = time.perf_counter()
    with single_thread():
        module = to_torch(model, where)
        xt = prepare_inputs(module, model, x, where)
        yt = torch.from_numpy(np.asarray(y).astype(np.int64))
        if eval_data is not None:
            train_x, train_y = xt, yt
            ex = prepare_inputs(module, model, eval_data[0], where)
            ey = torch.from_numpy(np.asarray(eval_data[1]).astype(np.int64))
        else:
            tr, ho = split_holdout(len(xt), holdout, config.seed)
            train_x, train_y, ex, ey = xt[tr], yt[tr], xt[ho], yt[ho]
        if len(train_x) == 0:
            raise NnccError(where, "no training samples")
        with torch.no_grad():
            classes = logits(module.eval(), train_x[:2]).shape[1]
        if int(train_y.min()) < 0 or int(train_y.max()) >= classes:
            raise NnccError(where, f"labels must lie in [0, {classes}) for a {classes}-way output; got {int(train_y.min())}..{int(train_y.max())}")
        before = accuracy(module, ex, ey) if len(ex) else None
        result = train_module(module, train_x, train_y, config, progress)
        after = accuracy(module, ex, ey) if len(ex) else None
        written = module.export_to(model)
    return {
        "samples": len(train_x),
        "eval_samples": len(ex),
        "accuracy_before": before,
        "accuracy_after": after,
        "regularizers": [str(r) for r in config.regularizers],
        "initializers_written": len(written),
        **result,
        "time_s": round(time.perf_counter() - start, 3),
    }


def weights_digest(model: ir.Model) -> str:
    """sha256 over the floating-point initializers (names and bytes), in graph order."""
    digest = hashlib.sha256()
    for name, value in model.graph.initializers.items():
        if value.const_value is not None and value.const_value.dtype.is_floating_point():
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(value.const_value.numpy()).tobytes())
    return digest.hexdigest()


def data_digest(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in (x, y):
        a = np.ascontiguousarray(a)
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


@dataclasses.dataclass
class FineTune(NnccPass, TrainParams):
    """Fine-tune the weights in place on the pipeline's labelled data (``PassContext.data``).

    ``regularizer``: regularizer specs joined by ``+`` (``group-lasso:lambda=1e-4+hoyer``; in a
    TOML file a list of specs works too). ``holdout``: fraction of the data kept out of training
    to measure accuracy before/after (recorded in the stats).

    With no labelled data in the context the pass does nothing and records
    ``skipped: [{name: model, reason: no labelled data}]`` -- a pipeline stays runnable without data (the registry
    contract test runs every pass so), and ``nncc compile --eval data.npz`` supplies it.

    Idempotence: training again would keep changing the weights, so after training the pass
    records ``metadata_props["nncc.finetune"]`` = digests of (its parameters and the data) and of
    the weights it produced. A run whose parameters and data match and that finds exactly those
    weights skips (``modified=False``). When another pass changed the weights in between (prune ->
    finetune -> prune -> finetune), the digest differs and it trains again, as a pipeline wants.
    """

    name = "finetune"
    summary = "Fine-tune weights on the labelled data (regularizers, keeps pruned zeros)"

    # The training parameters are TrainParams' fields; the pass adds the penalties as one spec string.
    regularizer: str = ""

    @classmethod
    def from_params(cls, params, where="--pass"):
        params = dict(params)
        if isinstance(params.get("regularizer"), (list, tuple)):  # TOML: regularizer = ["a:..", "b"]
            params["regularizer"] = "+".join(params["regularizer"])
        return super().from_params(params, where)

    def config(self) -> TrainConfig:
        return TrainConfig(**self.train_params(), regularizers=parse_regularizers(self.regularizer) if self.regularizer else [])

    def apply(self, model: ir.Model) -> bool:
        config = self.config()  # bad specs fail even without data
        data = getattr(PassContext.current(), "data", None)
        if data is None:
            self.stats = {"skipped": [{"name": "model", "reason": "no labelled data"}]}
            return False
        x, y = data
        params_digest = hashlib.sha256(json.dumps(self.params(), sort_keys=True, default=str).encode()
                                       + data_digest(x, y).encode()).hexdigest()
        record = _read_record(model)
        if record.get("params") == params_digest and record.get("weights") == weights_digest(model):
            self.stats = {"skipped": [{"name": "model", "reason": "already fine-tuned with these parameters and data"}]}
            return False
        self.stats = finetune_model(model, x, y, config, holdout=self.holdout, where=f"--pass {self.name}")
        model.metadata_props[METADATA_KEY] = json.dumps({"params": params_digest, "weights": weights_digest(model)})
        return self.epochs > 0


def _read_record(model: ir.Model) -> dict[str, Any]:
    try:
        record = json.loads(model.metadata_props.get(METADATA_KEY, "{}"))
        return record if isinstance(record, dict) else {}
    except json.JSONDecodeError:
        return {}
