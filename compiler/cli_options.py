"""Options and option handling shared by several nncc commands (compile, compare, optimize)."""

from __future__ import annotations

import contextlib
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from nncc.errors import GateFailed, NnccError
from nncc.files import check_labelled_npz, check_npz
from nncc.registry import TARGETS, load_plugin

err_console = Console(stderr=True)


def load_plugins(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    for path in value or ():
        load_plugin(path)
    return value


plugin_option = click.option("--plugin", "plugins", multiple=True, expose_value=False, callback=load_plugins,
                             is_eager=True, type=click.Path(), help="Python file defining extra passes/targets (repeatable).")


strict_option = click.option("--strict", is_flag=True,
                             help="Fail (exit 1) when a target leaves part of the model uncosted (coverage below 100%).")


def print_warnings(model: str, warnings: list[dict[str, str]], strict: bool) -> None:
    """One ``nncc: warning:`` line per warning (each once, however many targets raised it); with
    --strict, any warning is a failed gate (exit 1)."""
    seen: list[str] = []
    for warning in warnings:
        if warning["message"] not in seen:
            seen.append(warning["message"])
            click.echo(f"nncc: warning: {model}: {warning['message']}", err=True)
    if not strict or not seen:
        return
    incomplete = [w["target"] for w in warnings if w["kind"] == "coverage"]
    if incomplete:
        raise GateFailed(f"--strict: {', '.join(dict.fromkeys(incomplete))} did not cost the whole model")
    raise GateFailed(f"--strict: {len(seen)} warning(s) above")


batch_option = click.option("--batch", type=click.IntRange(min=1), default=None, metavar="N",
                            help="Samples per run for targets that batch (e.g. sparse-tc, hypar): --set batch=N. "
                                 "Per-sample figures divide by it.")


def batched_sets(target: str, items: tuple[str, ...], batch: int | None) -> dict[str, Any]:
    """--set values with --batch applied to the target's batch field (nncc.workload.with_batch)."""
    from nncc.workload import with_batch

    return with_batch(target, TARGETS.get(target, "--target").batch_field, parse_sets(items), batch)


def parse_sets(items: tuple[str, ...]) -> dict[str, str]:
    sets = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NnccError("--set", f"'{item}' is not key=value")
        sets[key.strip()] = value.strip()
    return sets


@contextlib.contextmanager
def progress_line(enabled: bool = True):
    """A progress line on stderr for work that may take more than a few seconds."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        yield progress


def build_passes(pass_specs: tuple[str, ...], pipeline: str | None):
    from nncc.pipeline import load_pipeline_toml, parse_pass_spec

    passes, disabled = [], set()
    if pipeline:
        passes, disabled = load_pipeline_toml(pipeline)
    passes += [parse_pass_spec(spec) for spec in pass_specs]
    return passes, disabled


def compile_options(input_shape, verify, tolerance, measure, eval_data, disabled, dump_ir, calib, input_value=(), trip_count=()):
    from nncc.driver import CompileOptions
    from nncc.loading import parse_input_shapes, parse_input_values, parse_trip_counts
    from nncc.pipeline import DumpIR, PassContext

    context = PassContext(disabled=set(disabled))
    if dump_ir:
        context.instruments.append(DumpIR(dump_ir))
    # Checked before the model is loaded: a FIFO, a pickle or a truncated archive is one line.
    if eval_data:
        check_labelled_npz(eval_data, "--eval")
    if calib:
        import numpy as np

        check_npz(calib, "--calib")
        try:
            with np.load(calib, allow_pickle=False) as data:
                context.calibration = {k: data[k] for k in data.files if k != "y"}
        except (ValueError, OSError, EOFError) as e:
            raise NnccError(calib, f"--calib: not a readable .npz: {e}") from None
    return CompileOptions(parse_input_shapes(input_shape), verify, tolerance, measure, eval_data, context,
                          input_values=parse_input_values(input_value), trip_counts=parse_trip_counts(trip_count))


common_model_options = [
    click.option("-p", "--pass", "pass_specs", multiple=True, metavar="NAME[:k=v,...]", help="Pass to run (repeatable, in order)."),
    click.option("--pipeline", type=click.Path(), help="Pipeline TOML: [[pass]] tables."),
    click.option("--input-shape", multiple=True, metavar="NAME=1x3x224x224", help="Fix a dynamic input shape (repeatable)."),
    click.option("--input-value", multiple=True, metavar="NAME=VALUE",
                 help="Fix a scalar input, e.g. sr=16000; an If on it runs only its branch (repeatable)."),
    click.option("--trip-count", multiple=True, metavar="NODE=N",
                 help="Trips of a Loop whose count is known only at run time; its body is costed N times (repeatable)."),
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a hardware constant (repeatable)."),
    click.option("--config", "config_file", type=click.Path(), help="Hardware config TOML."),
]


def apply_options(options):
    def decorator(f):
        for option in reversed(options):
            f = option(f)
        return f
    return decorator
