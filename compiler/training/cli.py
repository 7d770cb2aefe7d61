"""``nncc finetune``: the work behind the command (the click wrapper lives in ``nncc.cli``)."""

from __future__ import annotations

import pathlib

import numpy as np

from nncc.errors import NnccError
from nncc.files import replace_atomically
from nncc.training.params import TrainParams


def run_finetune(model_path, data_path, regularizer_specs, params: TrainParams, eval_path, input_shape, output,
                 console=None) -> str:
    from nncc import runtime
    from nncc.driver import load_eval_data
    from nncc.loading import load_model, parse_input_shapes, save_model
    from nncc.training.finetune import TrainConfig, finetune_model, split_holdout
    from nncc.training.specs import parse_regularizers

    regs = parse_regularizers(list(regularizer_specs))
    model = load_model(model_path, parse_input_shapes(input_shape))
    x, y = load_eval_data(data_path)
    eval_data = load_eval_data(eval_path) if eval_path else None
    config = TrainConfig(**params.train_params(), regularizers=regs)
    holdout, seed, epochs = params.holdout, params.seed, params.epochs
    # accuracy of the ONNX files in onnxruntime (the reference executor), on the same held-out set
    if eval_data is not None:
        ex, ey = eval_data
    else:
        _, held = split_holdout(len(x), holdout, seed)
        ex, ey = x[held], y[held]
    ex = np.asarray(ex, dtype=np.float32) if np.issubdtype(np.asarray(ex).dtype, np.floating) else ex
    before = runtime.top1_accuracy(runtime.session(model, where=model_path), ex, ey) if len(ex) else None

    stats = _train(model, x, y, config, eval_data, holdout, model_path, console, finetune_model)
    out = pathlib.Path(output or f"{pathlib.Path(model_path).with_suffix('')}.finetuned.onnx")
    if out.resolve() == pathlib.Path(model_path).resolve():
        raise NnccError(out, "refusing to overwrite the input model; choose another -o")
    after = runtime.top1_accuracy(runtime.session(model, where=out), ex, ey) if len(ex) else None
    replace_atomically(out, lambda tmp: save_model(model, tmp), suffix=".onnx")
    last = stats["history"][-1] if stats["history"] else {}
    acc = (f"accuracy {before:.4f} -> {after:.4f} on {len(ex)} held-out samples (onnxruntime)"
           if before is not None else "no held-out samples")
    regs_text = ", ".join(stats["regularizers"]) or "none"
    return (f"{pathlib.Path(model_path).name}: {stats['samples']} samples x {epochs} epoch(s), regularizers {regs_text}; "
            f"loss {last.get('loss', float('nan')):.4f}, penalty {last.get('penalty', 0.0):.4g}; {acc} -> {out}")


def _train(model, x, y, config, eval_data, holdout, where, console, finetune_model):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if console is None or not console.is_terminal:
        return finetune_model(model, x, y, config, eval_data=eval_data, holdout=holdout, where=where)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=console, transient=True) as bar:
        task = bar.add_task("fine-tuning", total=None, info="")

        def update(p):
            bar.update(task, total=p["epochs"] * p["steps"], completed=(p["epoch"] - 1) * p["steps"] + p["step"],
                       description=f"epoch {p['epoch']}/{p['epochs']}",
                       info=f"loss {p['loss']:.4f} penalty {p['penalty']:.3g} acc {p['accuracy']:.3f}")

        return finetune_model(model, x, y, config, eval_data=eval_data, holdout=holdout, where=where, progress=update)
