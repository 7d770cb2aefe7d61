"""``nncc compare``: one model, several targets, one Markdown table, an optional CI gate.

Targets cost different workloads (an inference of one sample, a batched inference, a training
step of a mini-batch on 16 accelerators: ``totals.workload``), so the table shows each one's
workload and its figures per sample (``totals.per_sample``, nncc.workload), and the gate compares
those by default (``--gate per-sample``); ``--gate total`` compares the per-run totals, which
stay in the ``--json`` output either way."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import nncc
from nncc.driver import CompileOptions, compile_model, original_facts, sha256_file
from nncc.compare_jobs import default_jobs, run_targets
from nncc.errors import NnccError
from nncc.files import write_text_atomic
from nncc.loading import load_model
from nncc.pass_sharing import SharedPasses
from nncc.registry import TARGETS
from nncc.verification import Verifier
from nncc.render import fmt_count, fmt_joules, fmt_seconds, md_table
from nncc.workload import label, model_batch, with_batch

COMPARE_SCHEMA = "nncc.compare/1"
GATED_METRICS = ("latency_s", "energy_j")
# What --gate compares: each run's figures per sample processed, or the per-run totals.
GATES = ("per-sample", "total")


def resolve_targets(spec: str) -> list[str]:
    if spec.strip() == "all":
        # The null target costs nothing by design; it only clutters a comparison.
        return [name for name in TARGETS.names() if name != "null"]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        TARGETS.get(name, "--targets")
    if not names:
        raise NnccError("--targets", "no target named")
    return names


def parse_percent(text: str, where: str = "--max-regression") -> float:
    try:
        return float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise NnccError(where, f"'{text}' is not a percentage like 5%") from None


def compare_targets(model, targets_spec, passes, options: CompileOptions, sets, config_file, json_out, baseline,
                    max_regression, progress=None, batch: int | None = None,
                    gate: str = "per-sample", jobs: int | None = None) -> tuple[str, str | None, dict[str, dict[str, Any]]]:
    """(Markdown table, the failed gate or None, the compiled targets' warnings).

    ``batch`` (``--batch``) sets the batch of every target that has one; the others keep their
    own workload, which the table's workload column and a note below it say. ``jobs``
    (``--jobs``): targets compiled at once, in worker processes (nncc.compare_jobs; None: one per
    usable CPU, as memory allows)."""
    names = resolve_targets(targets_spec)
    _check_set_keys(names, sets)
    if gate not in GATES:
        raise NnccError("--gate", f"'{gate}' is not one of {', '.join(GATES)}")
    unbatched = [n for n in names if batch is not None and TARGETS.get(n).batch_field is None]
    if unbatched == names:  # --batch applies to none of them: the first one's refusal says why
        with_batch(names[0], None, {}, batch)
    limit = parse_percent(max_regression)
    old = _read_baseline(baseline) if baseline else None
    # Loaded, checked and shape-inferred once: a bad model fails here, and each target compiles a copy.
    loaded = load_model(model, options.input_shapes, input_values=options.input_values)
    # The original and each distinct compiled model run in onnxruntime once for all targets.
    verifier = Verifier(loaded, model) if options.verify_samples > 0 or options.eval_data else None
    specs = []
    for name in names:
        cls = TARGETS.get(name, "--targets")
        # --set keys apply to every target that has them; "target.key=value" to one.
        own = {k.split(".", 1)[1]: v for k, v in sets.items() if k.startswith(f"{name}.")}
        known = set(cls.Config.__dataclass_fields__) | ({"profile"} if cls.profiles else set())
        shared = {k: v for k, v in sets.items() if "." not in k and k in known}
        # A usage error (--batch against --set batch=), not this target's limit: raised, not tabled.
        specs.append((name, {**shared, **own} if name in unbatched else with_batch(name, cls.batch_field, {**shared, **own}, batch)))

    # Each target configured once (a bad --set value is that target's error row).
    configured: dict[str, Any] = {}
    for name, values in specs:
        try:
            configured[name] = TARGETS.get(name, "--targets").configure(config_file, values)
        except NnccError as e:
            configured[name] = e
    # Pipeline heads that two or more targets share (the user's passes, fold-batchnorm) run once,
    # here, before any worker forks.
    shared_passes = SharedPasses(loaded, model)
    shared_passes.prepare([[_fresh(p) for p in passes] + list(t.legalize())
                           for t in configured.values() if not isinstance(t, NnccError)], options.context)
    original_facts(loaded)  # what every report says of the original, worked out once
    sha256_file(pathlib.Path(model))

    def compile_one(name: str, values: dict[str, str]) -> dict[str, Any]:
        target = configured[name]
        if isinstance(target, NnccError):
            return {"error": target.what}
        try:
            result = compile_model(model, target, [_fresh(p) for p in passes], options, loaded=loaded, verifier=verifier,
                                   shared=shared_passes)
            return {"totals": result.report["totals"], "unsupported": [u["op"] for u in result.report["unsupported"]],
                    "warnings": result.report["warnings"]}
        except NnccError as e:  # this target's limit; the others still report
            return {"error": e.what}

    first = {name for name, _ in specs if TARGETS.get(name).runs_model}
    if jobs is None:
        jobs = default_jobs(len(specs), original_facts(loaded)["summary"]["weight_bytes"])
    results = run_targets(specs, compile_one, jobs, progress, first=first)
    if all("error" in r for r in results.values()):
        first = next(iter(results.values()))["error"]
        raise NnccError(model, f"no target could compile the model ({first})")
    payload = {"schema": COMPARE_SCHEMA, "nncc_version": nncc.__version__,
               "model": {"name": pathlib.Path(model).stem, "sha256": sha256_file(pathlib.Path(model))}, "targets": results}
    if json_out:
        write_text_atomic(json_out, json.dumps(payload, indent=1))
    gate_lines, failed = _gate(results, old, limit, gate) if old else ([], None)
    warnings = [w for row in results.values() for w in row.get("warnings", [])]
    summary = original_facts(loaded)["summary"]
    notes = _notes(results, batch, unbatched, {**summary, "batch": model_batch(loaded)})
    table = _table(pathlib.Path(model).name, results, old, gate) + "\n\n" + "\n".join(notes + gate_lines)
    return table, failed, warnings


def append_summary(path, table: str) -> None:
    """``--summary``: append the table to ``path`` (GitHub renders ``$GITHUB_STEP_SUMMARY`` as the
    job's summary; other steps append to it too, so it is never replaced, only added to)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(table.rstrip("\n") + "\n\n")
    except OSError as e:
        raise NnccError(path, f"--summary: cannot append: {e.strerror or e}") from None


def _check_set_keys(names: list[str], sets: dict[str, str]) -> None:
    """A --set key no compared target knows is a typo, not something to drop silently."""
    for key in sets:
        target, dot, field = key.partition(".")
        if dot:
            if target not in names:
                raise NnccError("--set", f"'{key}': '{target}' is not among the compared targets")
            continue
        if not any(key in TARGETS.get(n).Config.__dataclass_fields__ or (key == "profile" and TARGETS.get(n).profiles) for n in names):
            raise NnccError("--set", f"no compared target has a constant '{key}'")


def _fresh(pass_):
    return type(pass_)(**pass_.params())


def _read_baseline(path) -> dict[str, Any]:
    try:
        data = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise NnccError(path, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NnccError(path, f"not JSON: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != COMPARE_SCHEMA or not isinstance(data.get("targets"), dict):
        raise NnccError(path, f"not an `nncc compare --json` file (schema {COMPARE_SCHEMA})")
    return data["targets"]


def _gated(totals: dict[str, Any], base: dict[str, Any], gate: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(figures now, figures in the baseline, a note) on the basis ``gate`` names. A baseline
    written before reports had ``per_sample`` falls back to the per-run totals, with a note; so
    does a per-run comparison across a changed workload."""
    if gate == "per-sample" and "per_sample" in totals:
        if "per_sample" in base:
            return totals["per_sample"], base["per_sample"], None
        return totals, base, "the baseline has no per-sample figures (written before reports had them): compared per run"
    if "workload" in base and "workload" in totals and base["workload"] != totals["workload"]:
        return totals, base, (f"the workload changed ({label(base['workload'])} → {label(totals['workload'])}): "
                              "per-run totals compare different work")
    return totals, base, None


def _gate(results, old, limit, gate: str = "per-sample") -> tuple[list[str], str | None]:
    lines, failures = [], []
    for name, row in results.items():
        base = old.get(name)
        if not base or "totals" not in base or "totals" not in row:
            continue
        now, before_figures, note = _gated(row["totals"], base["totals"], gate)
        if note:
            lines.append(f"Note: {name}: {note}.")
        for metric in GATED_METRICS:
            before, after = before_figures.get(metric), now.get(metric)
            if not before or after is None:
                continue
            change = after / before - 1
            if change > limit:
                failures.append(f"{name} {metric} ({gate}) +{change:.1%} (limit {limit:.0%})")
    if failures:
        lines.append("**Gate failed:** " + "; ".join(failures))
    else:
        lines.append(f"Gate passed ({gate}): no target's latency or energy grew more than {limit:.0%}.")
    return lines, "; ".join(failures) or None


def _notes(results, batch: int | None, unbatched: list[str], model: dict[str, Any] | None = None) -> list[str]:
    """How to read the per-sample columns, the model's size (``model``: its summary and batch),
    and which targets --batch left at their own workload."""
    pipelined = [n for n, r in results.items() if r.get("totals", {}).get("per_sample", {}).get("basis", "").startswith("pipeline")]
    lines = ["Per sample: one run's latency and energy ÷ the samples it processes (throughput-normalized"
             + (f"; {', '.join(pipelined)}: the pipeline interval, runs overlap" if pipelined else "")
             + "). Per-run totals are in `--json`."]
    if model is not None:
        lines.append(f"The model as exported (batch {model['batch']}): {fmt_count(model['macs'])} MACs per run, "
                     f"{fmt_count(model['params'])} parameters; coverage is the share of its MACs each target costed.")
    if batch is not None and unbatched:
        lines.append(f"`--batch {batch}`: {', '.join(unbatched)} {'has' if len(unbatched) == 1 else 'have'} no batch setting "
                     "and cost the model as exported.")
    return lines


def _coverage_cell(cov: dict[str, Any]) -> str:
    """Share of the model's MACs costed, and the nodes left out (the MACs may all be costed while,
    say, a node whose MACs are unknown is not)."""
    return f"{cov['macs_fraction']:.1%}" + ("" if cov["complete"] else f" ({cov['unsupported_nodes']} nodes left out)")


def _table(model_name, results, old, gate: str = "per-sample") -> str:
    # No MACs column: a target's totals.macs counts its own run (sparse-tc's batch of N: N
    # inferences; hypar's training step: the graph's forward once), so rows would not compare.
    # The model's own MACs are one note under the table; coverage is the share of them costed.
    header = ["target", "workload", "latency / sample", "energy / sample", "area mm²", "coverage", "unsupported"]
    if old:
        header += [f"Δ latency ({gate})", f"Δ energy ({gate})"]
    rows = []
    for name, row in results.items():
        if "error" in row:
            rows.append([name, "error: " + row["error"][:80]] + [""] * (len(header) - 2))
            continue
        t = row["totals"]
        cells = [name, label(t["workload"]), fmt_seconds(t["per_sample"]["latency_s"]), fmt_joules(t["per_sample"]["energy_j"]),
                 "n/a" if t.get("area_mm2") is None else f"{t['area_mm2']:.4g}", _coverage_cell(t["coverage"]),
                 ", ".join(sorted(set(row["unsupported"]))) or "0"]
        if old:
            base = old.get(name, {}).get("totals")
            now, before, _ = _gated(t, base, gate) if base else (t, {}, None)
            for metric in GATED_METRICS:
                cells.append(f"{now[metric] / before[metric] - 1:+.1%}" if before.get(metric) else "new")
        rows.append(cells)
    return f"### {model_name}\n\n" + md_table(header, rows)
