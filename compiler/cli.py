"""The ``nncc`` command line. Exit codes: 0 ok, 1 gate failed, 2 bad input or usage."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import traceback
from typing import Any

# One OpenBLAS thread (numpy's BLAS) unless the user says otherwise, set before numpy is first
# imported: nncc's products are many small matrix-vector ones, where OpenBLAS's threads cost
# more than they give (reram's lowering of ResNet-50 took 2.2x the CPU time with them on a
# 2-core machine, and far more wall time when the cores are busy). onnxruntime and torch keep
# their own thread settings.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from nncc import machine  # noqa: E402  (nothing heavy: os and pathlib)

machine.tune_memory()  # before numpy too: its huge pages off, glibc malloc keeping freed memory

import click

import nncc
from nncc import notices
from nncc.cli_options import (apply_options, batch_option, batched_sets, build_passes, common_model_options,
                              compile_options, err_console, load_plugins, parse_sets, plugin_option, print_warnings,
                              progress_line, strict_option)
from nncc.errors import GateFailed, NnccError
from nncc.files import regular_file, replace_atomically
from nncc.registry import PASSES, TARGETS, plugin_at_fault
from nncc.training.params import TrainParams, click_options

_STATE: dict[str, Any] = {"debug": False, "file": "nncc"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(nncc.__version__, prog_name="nncc")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@plugin_option
def cli(debug: bool) -> None:
    """nncc: compress ONNX models and estimate their cost on simulated hardware."""
    _STATE["debug"] = debug
    notices.route_library_output(debug)


@cli.command()
@click.argument("model", type=click.Path())
@click.option("-t", "--target", required=True, help="Target name (see `nncc targets`).")
@click.option("-o", "--output", "out_dir", type=click.Path(), default=None, help="Output folder (default: <model>.<target>.nncc).")
@apply_options(common_model_options)
@click.option("--verify", "verify", type=int, default=4, show_default=True, help="Random samples to compare against the original.")
@click.option("--tolerance", type=float, default=None, help="Fail (exit 1) when the max abs error exceeds this.")
@click.option("--format", "formats", default="json,md,html", show_default=True, help="Report formats.")
@click.option("--measure", is_flag=True, help="Also measure the compiled model in onnxruntime (1 thread).")
@click.option("--emit", multiple=True, help="Extra target artifact, e.g. `tvm` for mobile-cpu.")
@click.option("--eval", "eval_data", type=click.Path(), help="Labelled data (.npz with x, y): top-1 before and after.")
@click.option("--calib", type=click.Path(), help="Calibration inputs (.npz, one array per model input).")
@click.option("--disable-pass", multiple=True, help="Skip a pass of the pipeline by name.")
@click.option("--dump-ir", type=click.Path(), help="Write the IR after every pass into this folder.")
@strict_option
@batch_option
@plugin_option
def compile(model, target, out_dir, pass_specs, pipeline, input_shape, input_value, trip_count, sets, config_file, verify, tolerance, formats,
            measure, emit, eval_data, calib, disable_pass, dump_ir, strict, batch):
    """Compile MODEL for a target: passes, lowering, cost report."""
    from nncc.driver import compile_model, write_outputs

    _STATE["file"] = model
    formats_list = [f.strip() for f in formats.split(",") if f.strip()]
    bad = set(formats_list) - {"json", "md", "html"}
    if bad:
        raise NnccError("--format", f"unknown format(s) {', '.join(sorted(bad))} (json, md, html)")
    target_obj = TARGETS.get(target, "--target").configure(config_file, batched_sets(target, sets, batch))
    for kind in emit:
        if kind not in target_obj.emits:
            raise NnccError("--emit", f"target '{target}' cannot emit '{kind}' (it emits: {', '.join(target_obj.emits) or 'nothing'})")
    passes, disabled = build_passes(pass_specs, pipeline)
    options = compile_options(input_shape, verify, tolerance, measure, eval_data, set(disabled) | set(disable_pass), dump_ir, calib,
                               input_value, trip_count)
    out_dir = pathlib.Path(out_dir or f"{pathlib.Path(model).with_suffix('')}.{target}.nncc")
    with progress_line() as progress:
        task = progress.add_task("compiling", total=6) if progress else None

        def step(name: str) -> None:
            if progress:
                progress.update(task, description=name, advance=1)

        result = compile_model(model, target_obj, passes, options, progress=step)
        step("writing")
        write_outputs(result, out_dir, formats_list, list(emit))
    totals = result.report["totals"]
    from nncc.render import fmt_joules, fmt_seconds
    from nncc.workload import label

    click.echo(f"{result.model_path.name} on {target} ({label(totals['workload'])}): latency {fmt_seconds(totals['latency_s'])}, "
               f"energy {fmt_joules(totals['energy_j'])}, "
               f"{len(result.report['unsupported'])} unsupported op(s) -> {out_dir}")
    print_warnings(model, result.report["warnings"], strict)
    if result.report["verification"].get("status") == "failed":
        v = result.report["verification"]
        raise GateFailed(f"verification failed: max abs error {v['max_abs_error']:.3g} > tolerance {v['tolerance']}")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--targets", default="all", show_default=True, help="Comma-separated targets, or `all`.")
@apply_options(common_model_options)
@click.option("--json", "json_out", type=click.Path(), help="Write the totals as JSON (a later --baseline).")
@click.option("--baseline", type=click.Path(), help="Earlier --json output to gate against.")
@click.option("--max-regression", default="5%", show_default=True, help="Allowed latency/energy growth per target.")
@click.option("--gate", type=click.Choice(["per-sample", "total"]), default="per-sample", show_default=True,
              help="What --baseline compares: figures per sample processed, or per-run totals.")
@click.option("--summary", "summary_file", type=click.Path(),
              help="Also append the table to this file, e.g. $GITHUB_STEP_SUMMARY (written when the gate fails too).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Compile N targets at once, in forked worker processes (the table is the same). "
                   "Default: one per usable CPU, fewer where memory is short; 1: one after another in this process.")
@strict_option
@batch_option
@plugin_option
def compare(model, targets, pass_specs, pipeline, input_shape, input_value, trip_count, sets, config_file, json_out, baseline, max_regression,
            gate, summary_file, jobs, strict, batch):
    """Compile MODEL for several targets and print one table (Markdown)."""
    from nncc.compare import compare_targets

    _STATE["file"] = model
    if baseline:
        # Before the compiles: a FIFO would block the read at the end of them, a folder crash it.
        regular_file(baseline)
    passes, disabled = build_passes(pass_specs, pipeline)
    options = compile_options(input_shape, 0, None, False, None, disabled, None, None, input_value, trip_count)
    with progress_line() as progress:
        table, failed, warnings = compare_targets(model, targets, passes, options, parse_sets(sets), config_file,
                                                   json_out, baseline, max_regression, progress, batch=batch, gate=gate,
                                                   jobs=jobs)
    click.echo(table)
    if summary_file:
        from nncc.compare import append_summary

        append_summary(summary_file, table)
    if failed:
        raise GateFailed(failed)
    print_warnings(model, warnings, strict)


@cli.command()
@plugin_option
def passes():
    """List installed passes (built-ins and plugins)."""
    import dataclasses

    for name in PASSES.names():
        try:
            cls = PASSES.get(name)
        except NnccError as e:  # one broken plugin must not hide the others
            click.echo(f"{name:24s} BROKEN: {e.what}")
            continue
        params = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls) if f.init)
        click.echo(f"{name:24s} {cls.summary}" + (f"  [{params}]" if params else ""))


@cli.command()
@plugin_option
def targets():
    """List installed targets (built-ins and plugins)."""
    for name in TARGETS.names():
        try:
            cls = TARGETS.get(name)
        except NnccError as e:
            click.echo(f"{name:16s} BROKEN: {e.what}")
            continue
        profiles = f"  (profiles: {', '.join(cls.profiles)})" if cls.profiles else ""
        click.echo(f"{name:16s} {cls.summary}{profiles}")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--input-shape", multiple=True, metavar="NAME=1x3x224x224")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def inspect(model, input_shape, as_json):
    """Ops, parameters and MACs per layer."""
    from nncc import analysis
    from nncc.loading import load_model, parse_input_shapes
    from nncc.render import fmt_count, md_table

    _STATE["file"] = model
    m = load_model(model, parse_input_shapes(input_shape))
    rows = analysis.layers(m)
    summary = analysis.model_summary(m)
    if as_json:
        click.echo(json.dumps({"summary": summary, "layers": [
            {"name": r.name, "op": r.op, "output_shape": r.output_shapes[0] if r.output_shapes else None,
             "params": r.params, "macs": r.macs} for r in rows]}, indent=1))
        return
    click.echo(md_table(["layer", "op", "output", "params", "MACs"], [
        [r.name, r.op, "x".join(map(str, r.output_shapes[0] or ())) if r.output_shapes else "", fmt_count(r.params), fmt_count(r.macs)]
        for r in rows]))
    click.echo(f"\n{len(rows)} nodes, {fmt_count(summary['params'])} params, {fmt_count(summary['macs'])} MACs; "
               f"ops: {', '.join(f'{k}×{v}' for k, v in summary['ops'].items())}")


@cli.group()
def zoo():
    """The bundled model zoo."""


@zoo.command("list")
def zoo_list():
    """Models `nncc zoo export` can write."""
    from nncc import models

    for e in models.list_models():
        shapes = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in e.input_shapes.items())
        click.echo(f"{e.name:14s} {e.title:40s} {shapes:28s} {'trained' if e.trained else 'random weights'}: {e.notes}")


@zoo.command("export")
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(), help="ONNX file to write.")
def zoo_export(name, output):
    """Export a zoo model to ONNX."""
    from nncc import models

    if name not in models.ZOO:
        raise NnccError(name, f"unknown zoo model (models: {', '.join(models.ZOO)})")
    out = replace_atomically(output, lambda tmp: models.export(name, tmp))
    click.echo(f"{name} -> {out}")


@cli.command()
@click.argument("target")
@click.option("-o", "--output", type=click.Path(), help="Write the measured config as TOML (use with --config).")
def calibrate(target, output):
    """Measure a target's host-dependent constants on this machine (mobile-cpu: the `host` profile)."""
    cls = TARGETS.get(target, "calibrate")
    if not hasattr(cls, "calibrate"):
        raise NnccError("calibrate", f"target '{target}' has nothing to calibrate on this machine")
    text = cls.calibrate(output)
    click.echo(text)


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--data", "data_path", required=True, type=click.Path(), help="Training data (.npz with x, y).")
@click.option("-r", "--regularizer", "regularizers", multiple=True, metavar="NAME[:k=v,...]",
              help="Penalty to add (repeatable): group-lasso, hoyer, group-hoyer, nuclear, force, bitslice-l1, quant-reg.")
@click_options
@click.option("--eval", "eval_path", type=click.Path(), help="Held-out data (.npz with x, y) for accuracy before/after (else --holdout of --data).")
@click.option("--input-shape", multiple=True, metavar="NAME=1x3x224x224", help="Fix a dynamic input shape (repeatable).")
@click.option("-o", "--output", type=click.Path(), default=None, help="ONNX file to write (default: <model>.finetuned.onnx).")
def finetune(model, data_path, regularizers, eval_path, input_shape, output, **params):
    """Fine-tune MODEL on labelled data with compression regularizers; write the trained ONNX."""
    from nncc.training.cli import run_finetune

    _STATE["file"] = model
    click.echo(run_finetune(model, data_path, regularizers, TrainParams(**params), eval_path, input_shape, output,
                            err_console))


@cli.command()
@click.argument("model", type=click.Path())
@click.option("-t", "--target", required=True, help="Target whose cost is minimized (see `nncc targets`).")
@click.option("--data", "data_path", required=True, type=click.Path(), help="Labelled data (.npz with x, y) for accuracy.")
@click.option("--max-accuracy-drop", default="1%", show_default=True, help="Allowed top-1 loss against the original.")
@click.option("--metric", type=click.Choice(["energy", "latency"]), default="energy", show_default=True)
@click.option("--samples", type=int, default=1000, show_default=True, help="Labelled samples used (the first N; 0: all).")
@click.option("--max-evals", type=int, default=60, show_default=True, help="Most compiles the search may run.")
@click.option("--train-data", type=click.Path(), help="Labelled training data (.npz) for --finetune-epochs.")
@click.option("--finetune-epochs", type=int, default=0, show_default=True, help="Fine-tune after the structural passes of every point.")
@click.option("-o", "--output", "out_dir", type=click.Path(), default=None, help="Output folder (default: <model>.<target>.optimized).")
@click.option("--input-shape", multiple=True, metavar="NAME=1x3x224x224", help="Fix a dynamic input shape (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a hardware constant (repeatable).")
@click.option("--config", "config_file", type=click.Path(), help="Hardware config TOML.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Compile the points on N local worker processes.")
@click.option("--ray", "ray_address", metavar="auto|local|ADDRESS", help="Compile the points on a Ray cluster (pip install nncc[ray]).")
@batch_option
@plugin_option
def optimize(model, target, data_path, max_accuracy_drop, metric, samples, max_evals, train_data, finetune_epochs, out_dir,
             input_shape, sets, config_file, jobs, ray_address, batch):
    """Search pass parameters that minimize a target's energy (or latency) within an accuracy budget."""
    from nncc.compare import parse_percent
    from nncc.loading import parse_input_shapes
    from nncc.optimize import optimize as run_search

    _STATE["file"] = model
    out_dir = pathlib.Path(out_dir or f"{pathlib.Path(model).with_suffix('')}.{target}.optimized")
    with progress_line() as progress:
        task = progress.add_task("searching", total=None) if progress else None

        def step(text: str) -> None:
            if progress:
                progress.update(task, description=text)

        found = run_search(model, target, data_path, out_dir=out_dir, metric=metric, max_drop=parse_percent(max_accuracy_drop, "--max-accuracy-drop"),
                           config_file=config_file, sets=batched_sets(target, sets, batch), input_shapes=parse_input_shapes(input_shape),
                           samples=samples or None, max_evals=max_evals, train_path=train_data,
                           finetune_epochs=finetune_epochs, progress=step, jobs=jobs, ray=ray_address)
    click.echo(f"{found.summary()} -> {out_dir}")


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path())
@click.option("-t", "--target", "targets", multiple=True, required=True, help="Target to sweep (repeatable).")
@click.option("--grid", "grids", multiple=True, metavar="[TARGET.]KEY=V1,V2,...",
              help="Hardware constant and its values (repeatable): the sweep is the product of all grids.")
@click.option("-p", "--pass", "pass_specs", multiple=True, metavar="NAME[:k=V1|V2,...]",
              help="Pass to run (repeatable, in order); a parameter with V1|V2 is a grid axis too.")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Compile N random points of the product, not all.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --samples.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(), help="Folder: sweep.sqlite, report.html.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Local worker processes (default: CPU count).")
@click.option("--ray", "ray_address", metavar="auto|local|ADDRESS", help="Run the points on a Ray cluster (pip install nncc[ray]).")
@click.option("--retry-failed", is_flag=True, help="Compile again the points recorded as error, timeout or crashed.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Seconds one point may take.")
@click.option("--eval", "eval_data", type=click.Path(), help="Labelled data (.npz with x, y): top-1 of every point.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A fixed hardware constant (repeatable).")
@click.option("--config", "config_file", type=click.Path(), help="Hardware config TOML.")
@click.option("--input-shape", multiple=True, metavar="NAME=1x3x224x224", help="Fix a dynamic input shape (repeatable).")
@click.option("--csv", "csv_out", type=click.Path(), help="Also write every point as CSV.")
@click.option("--json", "json_out", type=click.Path(), help="Also write every point as JSON.")
@click.option("--plugin", "plugins", multiple=True, callback=load_plugins, is_eager=True, type=click.Path(),
              help="Python file defining extra passes/targets (repeatable; loaded by every worker too).")
def sweep(models, targets, grids, pass_specs, samples, seed, out_dir, jobs, ray_address, retry_failed, timeout, eval_data,
          sets, config_file, input_shape, csv_out, json_out, plugins):
    """Compile MODEL... for every point of a design space; resumable; Pareto fronts in report.html."""
    from nncc.files import check_npz
    from nncc.loading import parse_input_shapes
    from nncc.sweep import run_sweep
    from nncc.sweep_grid import SweepSpec, parse_grid, parse_pass_grid

    _STATE["file"] = models[0]
    if eval_data:
        check_npz(eval_data, "--eval")
    passes, pass_axes = parse_pass_grid(pass_specs)
    spec = SweepSpec(list(models), list(dict.fromkeys(targets)), parse_grid(grids) + pass_axes, passes, parse_sets(sets),
                     config_file, eval_data, parse_input_shapes(input_shape), samples, seed, timeout,
                     tuple(str(pathlib.Path(p).resolve()) for p in plugins))
    outcome = run_sweep(spec, out_dir, jobs=jobs, ray=ray_address, retry_failed=retry_failed, csv_out=csv_out, json_out=json_out)
    click.echo(outcome.summary())
    for line in outcome.failures():
        click.echo(f"nncc: warning: {line}" + ("" if retry_failed else " (kept; --retry-failed compiles them again)"), err=True)


@cli.command()
@click.option("-o", "--output", "out_dir", default="demo-out", show_default=True, type=click.Path())
def demo(out_dir):
    """Compile the bundled LeNet-5 for every installed target; print the table; write an HTML report."""
    from nncc.demo import run_demo

    click.echo(run_demo(out_dir))


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="nncc", standalone_mode=False)
        return 0
    except NnccError as e:
        if _STATE["debug"]:
            traceback.print_exc()
        click.echo(f"nncc: error: {e}", err=True)
        return 2
    except GateFailed as e:
        click.echo(f"nncc: gate failed: {e}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("nncc: error: interrupted", err=True)
        return 2
    except click.ClickException as e:
        where = e.ctx.command_path if getattr(e, "ctx", None) else "nncc"
        click.echo(f"nncc: error: {where}: {e.format_message()}", err=True)
        return 2
    except SystemExit as e:  # click's --help / --version
        return int(e.code or 0)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if _STATE["debug"]:
            traceback.print_exc()
        message = " ".join(str(e).split())[:300]
        where = plugin_at_fault(e) or _STATE["file"]  # a plugin's bug names the plugin, not the user's model
        click.echo(f"nncc: error: {where}: {type(e).__name__}: {message} (rerun with --debug for a traceback)", err=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
