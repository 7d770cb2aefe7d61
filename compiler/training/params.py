"""The fine-tuning parameters, declared once.

``TrainConfig`` (the training loop), the ``finetune`` pass and the ``nncc finetune`` command
(:func:`click_options`) all take these fields, defaults and help texts from :class:`TrainParams`.
This module imports no torch, so the command line can build its options without loading it.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

import click


def param(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class TrainParams:
    epochs: int = param(1, "passes over the training data")
    lr: float = param(1e-3, "learning rate (the start of the schedule)")
    batch_size: int = param(64, "samples per optimizer step")
    seed: int = param(0, "seed of the initialization order, shuffling and augmentation")
    optimizer: Literal["adam", "sgd"] = param("adam", "optimizer")
    keep_zeros: bool = param(True, "exact zeros of the weights (pruned weights) stay zero")
    momentum: float = param(0.9, "SGD momentum")
    prox: bool = param(False, "l1 / group-lasso / nuclear as proximal steps instead of loss terms")
    schedule: Literal["constant", "cosine"] = param("constant", "learning-rate schedule; cosine decays to min_lr")
    min_lr: float = param(0.0, "last learning rate of the cosine schedule")
    shift: int = param(0, "random translation of image inputs, pixels (augmentation)")
    weight_decay: float = param(0.0, "L2 weight decay")
    clip_every: int = param(0, "rank clipping during training every n optimizer steps (0: off)")
    clip_tolerance: float = param(0.3, "rank clipping: largest relative Frobenius error per layer")
    clip_crossbar: int = param(128, "rank clipping: crossbar rows = columns")
    clip_column_factor: int = param(8, "rank clipping: physical columns per output (bit slices x polarities)")
    clip_layers: str = param("", "rank clipping: regex over the layer node names to clip (empty: all)")
    holdout: float = param(0.1, "fraction of the data kept out of training to measure accuracy before and after")

    def train_params(self) -> dict[str, Any]:
        """The values of the :class:`TrainParams` fields (from a subclass too)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainParams)}


def click_options(func):
    """One command-line option per parameter (``nncc finetune``), with its default and help."""
    for f in reversed(dataclasses.fields(TrainParams)):
        flag, kind, allowed = f.name.replace("_", "-"), python_type(f.name), choices(f.name)
        if kind is bool:
            option = click.option(f"--{flag}/--no-{flag}", default=f.default, show_default=True, help=f.metadata["help"])
        else:
            option = click.option(f"--{flag}", type=click.Choice(allowed) if allowed else kind, default=f.default,
                                  show_default=True, help=f.metadata["help"])
        func = option(func)
    return func


def choices(name: str) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` parameter, else None."""
    hint = typing.get_type_hints(TrainParams)[name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def python_type(name: str) -> type:
    hint = typing.get_type_hints(TrainParams)[name]
    return str if typing.get_origin(hint) is Literal else hint
