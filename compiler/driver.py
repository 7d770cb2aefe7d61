"""One compilation: load -> passes -> target legalize -> lower -> estimate -> verify -> report."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import weakref
from typing import Any, Callable

import numpy as np
import onnx_ir as ir

import nncc
from nncc import analysis, notices, render, render_html, reuse, runtime
from nncc.target import Mapping, Target
from nncc.cost import CostReport
from nncc.control_flow import inline_costlier_branches
from nncc.contrib import decompose_contrib_ops, describe_contrib, has_contrib_ops
from nncc.sequences import lower_appended_sequences
from nncc.unroll import describe_control_flow, unroll_loops
from nncc.coverage import CONTROL_FLOW, coverage, graph_macs
from nncc.coverage import describe as describe_coverage
from nncc.irutils import nonfinite_weights
from nncc.errors import NnccError
from nncc.files import replace_folder_atomically
from nncc.loading import copy_model, infer_shapes, load_model, save_model
from nncc.pass_base import NnccPass
from nncc.pass_sharing import SharedPasses, shapes_stale
from nncc.pipeline import PassContext, PassRecord, run_passes
from nncc.verification import Verifier

REPORT_SCHEMA = "nncc.report/1"


@dataclasses.dataclass
class CompileOptions:
    input_shapes: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    verify_samples: int = 4
    tolerance: float | None = None     # max abs error allowed; None: record only
    measure: bool = False              # onnxruntime single-thread latency of the compiled model
    eval_data: str | None = None       # .npz with x, y: top-1 before and after
    context: PassContext = dataclasses.field(default_factory=PassContext)
    input_values: dict[str, Any] = dataclasses.field(default_factory=dict)  # --input-value: scalar inputs fixed
    trip_counts: dict[str, int] = dataclasses.field(default_factory=dict)   # --trip-count: Loop node -> trips


@dataclasses.dataclass
class CompileResult:
    model_path: pathlib.Path
    # None when nothing after the passes needed it (no verification, no ratios to the
    # uncompressed model, loaded here): let go before lowering, its weights with it.
    original: ir.Model | None
    model: ir.Model
    target: Target
    mapping: Mapping
    cost: CostReport
    records: list[PassRecord]
    report: dict[str, Any]
    original_facts: dict[str, Any] = dataclasses.field(default_factory=dict)  # nncc.driver.original_facts


def sha256_file(path: pathlib.Path) -> str:
    """The file's sha256, read once per version of the file (compare reports it for every
    target; a 100 MB model takes 0.4 s to hash here)."""
    return _sha256_of(*reuse.file_version(path))


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, device: int, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_eval_data(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise NnccError(path, f"needs arrays 'x' and 'y' (has: {', '.join(data.files)})")
            x, y = data["x"], data["y"]
    except FileNotFoundError:
        raise NnccError(path, "no such file") from None
    except (ValueError, OSError) as e:
        raise NnccError(path, f"not a readable .npz: {e}") from None
    if len(x) != len(y):
        raise NnccError(path, f"x has {len(x)} samples but y has {len(y)}")
    return x, y


def compile_model(
    model_path: str | os.PathLike,
    target: Target,
    passes: list[NnccPass],
    options: CompileOptions | None = None,
    progress: Callable[[str], None] = lambda step: None,
    loaded: ir.Model | None = None,
    verifier: Verifier | None = None,
    shared: SharedPasses | None = None,
) -> CompileResult:
    """Compile ``model_path`` for ``target``. ``loaded``: the file already loaded with the same
    options (``nncc compare`` loads once for every target); it is copied, never changed.
    ``verifier``: a :class:`Verifier` of ``loaded`` kept across the targets, so that the original
    and each distinct compiled model run in onnxruntime once. ``shared``: the pipeline heads
    already run for other targets of ``loaded`` (:class:`nncc.pass_sharing.SharedPasses`)."""
    with notices.collecting() as raised:
        result = _compile(pathlib.Path(model_path), target, passes, options or CompileOptions(), progress, loaded, verifier,
                          shared)
    result.report["warnings"] = _warnings(result, raised)
    return result


def _warnings(result: CompileResult, raised: list[dict[str, str]]) -> list[dict[str, str]]:
    """What compile warns about, in the order it prints them: control flow costed on an
    assumption, what passes and targets raised (random calibration), weights that are not
    finite, coverage below 100%."""
    found = [{"kind": "control-flow", "message": line} for record in result.report.get("control_flow", [])
             if (line := describe_control_flow(record)) is not None]
    found += [{"kind": "contrib", "message": line} for record in result.report.get("contrib", [])
              if (line := describe_contrib(record)) is not None]
    found += raised
    bad = result.original_facts["nonfinite_weights"]
    if bad:
        names = ", ".join(f"{name} ({count})" for name, count in list(bad.items())[:5]) + (", ..." if len(bad) > 5 else "")
        found.append({"kind": "weights", "message": f"{sum(bad.values())} NaN or infinite weight value(s) in {len(bad)} "
                                                    f"initializer(s): {names}; the model's outputs are not meaningful"})
    cov = result.report["totals"]["coverage"]
    if not cov["complete"]:
        found.append({"kind": "coverage", "target": result.target.name, "message": f"{result.target.name}: {describe_coverage(cov)}"})
    return found


# What every report says of the original model, the same for each target of one compare: worked
# out once per loaded model (0.2 s a target on ResNet-50) and inherited by compare's forked
# workers. compile_model never changes ``original``; the fingerprint catches a caller who swaps
# its nodes or weights between two calls.
_ORIGINAL_FACTS: weakref.WeakKeyDictionary[ir.Model, tuple[tuple[Any, ...], dict[str, Any]]] = weakref.WeakKeyDictionary()


def original_facts(original: ir.Model) -> dict[str, Any]:
    """``{"summary": params, macs, weight_bytes, nodes; "nonfinite_weights": {name: count}}`` of
    ``original``, kept for the model object while its nodes and weights stay the same."""
    fingerprint = tuple((id(graph), len(graph), *(id(v.const_value) for v in graph.initializers.values()))
                        for graph in original.graphs())
    kept = _ORIGINAL_FACTS.get(original)
    if kept is not None and kept[0] == fingerprint:
        return kept[1]
    summary = analysis.model_summary(original)
    facts = {"summary": {k: summary[k] for k in ("params", "macs", "weight_bytes", "nodes")},
             "nonfinite_weights": nonfinite_weights(original)}
    _ORIGINAL_FACTS[original] = (fingerprint, facts)
    return facts


def _compile(model_path: pathlib.Path, target: Target, passes: list[NnccPass], options: CompileOptions,
             progress: Callable[[str], None], loaded: ir.Model | None, verifier: Verifier | None,
             shared: SharedPasses | None = None) -> CompileResult:
    progress("loading")
    # ``original`` is the verification reference, read and never changed (so ``loaded`` itself
    # serves); ``model`` is what the passes rewrite.
    original = loaded if loaded is not None else load_model(model_path, options.input_shapes, input_values=options.input_values)
    facts = original_facts(original)
    eval_data = load_eval_data(options.eval_data) if options.eval_data else None
    if eval_data is not None and options.context.calibration is None:
        name = original.graph.inputs[0].name
        options.context.calibration = {name: eval_data[0][: min(64, len(eval_data[0]))]}
    if eval_data is not None and options.context.data is None:  # labelled data for training passes (finetune)
        options.context.data = eval_data
    progress("passes")
    # Passes that plan for the hardware (rank-clip's crossbar size) read the target's geometry.
    options.context.target = target.name
    options.context.crossbar = target.crossbar_geometry()
    # Shapes inferred again where a pass changed the model (the original's are current).
    model, records = (shared or SharedPasses(original, model_path)).run(list(passes) + list(target.legalize()), options.context)
    if loaded is None and options.verify_samples <= 0 and eval_data is None and not _wants_ratios(target, records):
        # The passes made their own weights (fold-batchnorm scales every conv's): the original's
        # are not needed again, and holding them would keep a second model in memory while
        # the target lowers (its peak: reram's calibration session). Its weights are let go
        # one by one: a model's graph, nodes and values refer to one another, and only a full
        # cycle collection (~35 ms on ResNet-50) would free them with the model.
        for graph in original.graphs():
            for value in graph.initializers.values():
                value.const_value = None
        original = None
    progress("lowering")
    costed, control_flow = costed_copy(model, model_path, options.trip_counts)
    # Targets measure on the user's calibration data too (ADC bits, spike rates).
    mapping = target.lower(costed, calibration=options.context.calibration)
    cost = target.estimate(mapping)
    cost.workload = target.workload(costed)  # what one run processes: totals.workload and totals.per_sample
    ratios = _ratios_to_uncompressed(model_path, original, target, records, cost, options)
    if ratios is not None:
        cost.extra_totals["vs_uncompressed"] = ratios
    progress("verifying")
    verification = verify(verifier, original, model, options, eval_data, model_path)
    measured = None
    if options.measure:
        progress("measuring")
        sess = runtime.session(model, threads=1, where=model_path)
        measured = runtime.measure_latency(sess, runtime.sample_inputs(model, 1, seed=1)[0])
        measured["threads"] = 1
        measured["executor"] = "onnxruntime"
    report = build_report(model_path, facts, model, target, cost, records, verification, measured, costed)
    flow = [r for r in control_flow if "domain" not in r]
    if flow:
        report["control_flow"] = flow
    if len(flow) < len(control_flow):
        report["contrib"] = [r for r in control_flow if "domain" in r]
    return CompileResult(model_path, original, model, target, mapping, cost, records, report, facts)


def costed_copy(model: ir.Model, where: object, trip_counts: dict[str, int] | None = None
                ) -> tuple[ir.Model, list[dict[str, Any]]]:
    """The model a target lowers: ``model`` itself, or a copy in which each If whose condition
    is not known before inference runs its costlier branch, each Loop/Scan is unrolled
    (nncc.unroll) and each onnxruntime contrib op is the default-domain ops it computes
    (nncc.contrib); with one record per node treated or left (contrib records name a domain)."""
    if not has_contrib_ops(model) and not any(node.op_type in CONTROL_FLOW for graph in model.graphs() for node in graph):
        if trip_counts:
            return model, unroll_loops(model, trip_counts)  # says that no Loop has those names
        return model, []
    copy = copy_model(model)
    records = [{"op": "If", **r} for r in inline_costlier_branches(copy, graph_macs)]
    if records:
        infer_shapes(copy, where)  # a Scan's length may only be known once its branch is inlined
    loops = unroll_loops(copy, trip_counts)
    if any("trips" in r for r in loops):
        lower_appended_sequences(copy)  # a list appended once per trip: a Concat once unrolled
        infer_shapes(copy, where)
    # Last: contrib ops an If branch or a Loop body held are in the main graph by now.
    contrib = decompose_contrib_ops(copy, where)
    if any("into" in r for r in contrib):
        infer_shapes(copy, where)
    return copy, records + loops + contrib


def _wants_ratios(target: Target, records: list[PassRecord]) -> bool:
    """Whether the target reports ratios to the uncompressed model (it has them, and a user
    pass changed the model)."""
    if type(target).ratios_to_uncompressed is Target.ratios_to_uncompressed:
        return False
    return any(r.modified for r in records if r.name not in {p.name for p in target.legalize()})


def _ratios_to_uncompressed(model_path, original: ir.Model, target: Target, records: list[PassRecord], cost: CostReport,
                             options: CompileOptions) -> dict[str, Any] | None:
    """The target's ratios against the model compiled with only the target's own legalization
    (one more lowering, done only when a user pass changed the model and the target has ratios)."""
    if not _wants_ratios(target, records):
        return None
    plain = copy_model(original)
    context = PassContext(calibration=options.context.calibration, target=target.name, crossbar=target.crossbar_geometry())
    legalize = list(target.legalize())
    if shapes_stale(run_passes(plain, legalize, context), legalize):
        infer_shapes(plain, model_path)
    plain, _ = costed_copy(plain, model_path, options.trip_counts)
    return target.ratios_to_uncompressed(target.estimate(target.lower(plain, calibration=options.context.calibration)), cost)


def verify(verifier: Verifier | None, original: ir.Model, model: ir.Model, options: CompileOptions, eval_data,
           where) -> dict[str, Any]:
    if verifier is None and (options.verify_samples > 0 or eval_data is not None):
        verifier = Verifier(original, where)
    if verifier is None:
        return Verifier.skipped()
    return verifier.verify(model, options.verify_samples, options.tolerance, eval_data, str(options.eval_data or ""))


def build_report(model_path, facts, model, target, cost, records, verification, measured, costed=None) -> dict[str, Any]:
    """report.json's content; ``facts``: :func:`original_facts` of the model as loaded."""
    rows = analysis.layers(model)  # once for the summary and, on the model itself, the coverage (20 ms on ResNet-50)
    summary = analysis.model_summary(model, rows)
    lowered = costed if costed is not None else model
    report = {
        "schema": REPORT_SCHEMA,
        "nncc_version": nncc.__version__,
        "model": {
            "name": model_path.stem,
            "path": str(model_path),
            "sha256": sha256_file(model_path),
            "original": dict(facts["summary"]),
            **summary,
        },
        "target": target.describe(),
        "passes": [r.to_json() for r in records],
        "totals": {**cost.totals(), "coverage": coverage(lowered, cost.unsupported, rows if lowered is model else None)},
        "layers": [row.to_json() for row in cost.layers],
        "unsupported": [u.to_json() for u in cost.unsupported],
        "verification": verification,
    }
    if measured is not None:
        report["measured"] = measured
    return _plain(report)


def _plain(obj: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):  # math: a numpy call per float was 1 us
        return None
    return obj


def write_outputs(result: CompileResult, out_dir: str | os.PathLike, formats: list[str], emits: list[str] = ()) -> pathlib.Path:
    with replace_folder_atomically(out_dir) as tmp:
        save_model(result.model, tmp / "model.onnx")
        artifacts = []
        if result.mapping.artifact_name:
            (tmp / result.mapping.artifact_name).write_text(json.dumps(_plain(result.mapping.to_json()), indent=1))
            artifacts.append(result.mapping.artifact_name)
        for kind in emits:
            artifacts += [str(p.relative_to(tmp)) for p in result.target.emit(kind, result.model, tmp)]
        result.report["artifacts"] = artifacts
        if "json" in formats:
            (tmp / "report.json").write_text(json.dumps(result.report, indent=1))
        if "md" in formats:
            (tmp / "report.md").write_text(render.markdown(result.report))
        if "html" in formats:
            (tmp / "report.html").write_text(render_html.page(result.report))
    return pathlib.Path(out_dir)
