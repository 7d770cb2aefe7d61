"""Target-aware compression search (``nncc optimize``): pass parameters that minimize a target's
energy (or latency) under an accuracy budget, and the accuracy-vs-cost Pareto front.

The search space is the target's: ``Target.search_space`` is a list of knobs (prune ratio,
rank, bit width...), each a list of options, and an option is a pass pipeline plus target
settings that go with it (a ReRAM weight width is both a ``quantize`` pass, which changes the
numbers onnxruntime measures, and ``--set weight_bits``, which changes the crossbar cost).

Method (stated in the report): every option alone (one-at-a-time sensitivity), then a greedy
composition: knobs in the order of their best lone saving, each taking its most aggressive
option whose composition with the choices so far still meets the budget. Every evaluated
point is a full compile (passes, target legalization, lowering, cost) plus a top-1
measurement in onnxruntime on the user's labelled data; the front is the set of points no
other point beats on both accuracy and cost.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from nncc import reuse, runtime
from nncc.target import SearchOption, Target
from nncc.driver import CompileOptions, CompileResult, compile_model, load_eval_data, write_outputs
from nncc.errors import NnccError
from nncc.pipeline import PassContext, parse_pass_spec
from nncc.registry import TARGETS
from nncc.render import fmt_joules, fmt_seconds

METRICS = {"energy": "energy_j", "latency": "latency_s"}
METHOD = ("one-at-a-time sensitivity of every option, then greedy composition (knobs by best lone saving, "
          "each at its most aggressive option that keeps the accuracy budget); every point a full compile "
          "plus onnxruntime top-1 on the given data")


@dataclasses.dataclass
class Point:
    label: str
    passes: list[str]
    sets: dict[str, Any]
    accuracy: float | None = None
    cost: float | None = None
    totals: dict[str, Any] = dataclasses.field(default_factory=dict)
    stage: str = ""
    error: str | None = None
    front: bool = False
    feasible: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SearchResult:
    points: list[Point]
    base: Point
    chosen: Point
    metric: str
    max_drop: float
    samples: int
    seconds: float

    finetune_epochs: int = 0

    def summary(self) -> str:
        """The front, cheapest first, and the choice against the original: what the CLI prints."""
        fmt = fmt_joules if self.metric == "energy" else fmt_seconds
        front = sorted((p for p in self.points if p.front), key=lambda p: p.cost)
        lines = [f"{len(self.points)} points, {len(front)} on the Pareto front ({self.seconds:.0f} s)"]
        lines += [f"  {fmt(p.cost):>10}  top-1 {p.accuracy:.2%}  {p.label}" for p in front]
        c, b = self.chosen, self.base
        lines.append(f"chosen: {c.label}: {self.metric} {fmt(b.cost)} -> {fmt(c.cost)} ({b.cost / c.cost:.2f}x), "
                     f"top-1 {b.accuracy:.2%} -> {c.accuracy:.2%}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "finetune_epochs": self.finetune_epochs, "cost_key": METRICS[self.metric], "max_accuracy_drop": self.max_drop,
                "samples": self.samples, "method": METHOD, "seconds": self.seconds,
                "base": self.base.label, "chosen": self.chosen.label,
                "points": [p.to_json() for p in self.points]}


def combine(options: list[SearchOption]) -> SearchOption:
    passes: list[str] = []
    sets: dict[str, Any] = {}
    for option in options:
        passes += list(option.passes)
        sets.update(option.sets)
    return SearchOption(" + ".join(o.label for o in options) or "original", tuple(passes), sets)


def pareto_front(points: list[Point]) -> list[Point]:
    """Points no other point beats: higher-or-equal accuracy at lower-or-equal cost, one strictly.
    Of points that tie on both, the one evaluated first (the simpler pipeline) stands for them."""
    ok = [p for p in points if p.error is None]
    front = []
    for i, p in enumerate(ok):
        beaten = any(q.accuracy >= p.accuracy and q.cost <= p.cost and (q.accuracy > p.accuracy or q.cost < p.cost)
                     for q in ok)
        tied = any(q.accuracy == p.accuracy and q.cost == p.cost for q in ok[:i])
        if not (beaten or tied):
            front.append(p)
    return sorted(front, key=lambda p: p.cost)


class Search:
    def __init__(self, model_path, target_cls: type[Target], x: np.ndarray, y: np.ndarray, *, metric: str = "energy",
                 max_drop: float = 0.01, config_file=None, sets: dict[str, Any] | None = None,
                 input_shapes: dict[str, tuple[int, ...]] | None = None, max_evals: int = 60,
                 train: tuple[np.ndarray, np.ndarray] | None = None, finetune_epochs: int = 0,
                 progress: Callable[[str], None] = lambda text: None, executor=None):
        if metric not in METRICS:
            raise NnccError("--metric", f"unknown metric '{metric}' ({', '.join(METRICS)})")
        if not 0 <= max_drop < 1:
            raise NnccError("--max-accuracy-drop", f"{max_drop:.2%} is not in [0%, 100%)")
        self.model_path, self.target_cls = model_path, target_cls
        self.x, self.y = x.astype(np.float32), y
        self.metric, self.max_drop, self.max_evals = metric, max_drop, max_evals
        self.config_file, self.sets, self.input_shapes = config_file, dict(sets or {}), dict(input_shapes or {})
        self.progress = progress
        if finetune_epochs and train is None:
            raise NnccError("--finetune-epochs", "fine-tuning needs training data apart from the scoring data: give --train-data")
        self.train, self.finetune_epochs = train, finetune_epochs
        self.input_name = reuse.loaded_model(model_path, self.input_shapes).graph.inputs[0].name
        self.points: list[Point] = []
        self.results: dict[str, CompileResult] = {}
        # None: every point compiled here, one after another. Else a nncc.sweep_exec pool
        # (--jobs, --ray): the one-at-a-time stage's points run in parallel there; the greedy
        # stage depends on each answer, so its points go there one at a time.
        self.executor = executor

    # ------------------------------------------------------------------ one point

    def _known(self, option: SearchOption) -> Point | None:
        for p in self.points:  # the same pipeline and settings are compiled once
            if p.passes == list(option.passes) and p.sets == option.sets:
                return p
        return None

    def _task(self, option: SearchOption) -> dict[str, Any]:
        return {"model": str(self.model_path), "target": self.target_cls.name, "config_file": self.config_file,
                "sets": {**self.sets, **option.sets}, "passes": self.with_finetune(option.passes),
                "input_shapes": self.input_shapes, "input_name": self.input_name, "x": self.x, "y": self.y,
                "train": self.train}

    def _point(self, option: SearchOption, stage: str, outcome: dict[str, Any]) -> Point:
        point = Point(option.label, list(option.passes), dict(option.sets), stage=stage, error=outcome.get("error"))
        if point.error is None:
            point.accuracy, point.totals = outcome["accuracy"], outcome["totals"]
            point.cost = float(point.totals[METRICS[self.metric]])
        self.points.append(point)
        return point

    def evaluate(self, option: SearchOption, stage: str) -> Point:
        known = self._known(option)
        if known is not None:
            return known
        if self.executor is not None:
            return self.evaluate_many([option], stage)[0]
        self.progress(f"[{len(self.points) + 1}] {option.label}")
        outcome = compile_option(self._task(option), self.target_cls)
        if "result" in outcome:
            self.results[option.label] = outcome.pop("result")
        return self._point(option, stage, outcome)

    def evaluate_many(self, options: list[SearchOption], stage: str) -> list[Point]:
        """The points of ``options``, in their order, as :meth:`evaluate` one after another gives them."""
        if self.executor is None:
            return [self.evaluate(option, stage) for option in options]
        new: list[SearchOption] = []
        for option in options:
            if self._known(option) is None and not any(o.passes == option.passes and o.sets == option.sets for o in new):
                new.append(option)
        outcomes: dict[int, dict[str, Any]] = {}
        for task, outcome in self.executor.run([{**self._task(o), "index": i} for i, o in enumerate(new)], fn=evaluate_option):
            outcomes[task["index"]] = outcome
            self.progress(f"[{len(self.points) + len(outcomes)}] {new[task['index']].label}")
        for i, option in enumerate(new):  # appended in the sequential order, whatever finished first
            self._point(option, stage, outcomes[i])
        return [self._known(option) for option in options]

    def with_finetune(self, specs: tuple[str, ...]) -> list[str]:
        """With --finetune-epochs: one fine-tuning step after the structural passes (before any
        quantization, which is applied to the recovered weights)."""
        specs = list(specs)
        if not self.finetune_epochs:
            return specs
        at = next((i for i, s in enumerate(specs) if s.split(":")[0] in ("quantize", "mixed-precision")), len(specs))
        if at == 0:
            return specs
        return specs[:at] + [f"finetune:epochs={self.finetune_epochs},lr=5e-4"] + specs[at:]

    def _ok(self, point: Point, base: Point) -> bool:
        return point.error is None and point.accuracy >= base.accuracy - self.max_drop - 1e-12

    # ------------------------------------------------------------------ the search

    def run(self, knobs: list[list[SearchOption]]) -> SearchResult:
        start = time.perf_counter()
        base = self.evaluate(SearchOption("original", (), {}), "base")
        if base.error is not None:
            raise NnccError(self.model_path, f"the original model does not compile for this target: {base.error}")
        # The options the one-at-a-time stage compiles: every option of every knob, in order,
        # until max_evals points exist (a repeated option is no new point).
        planned: list[tuple[int, SearchOption]] = []
        seen = [(p.passes, p.sets) for p in self.points]
        for i, knob in enumerate(knobs):
            for option in knob:
                if len(seen) >= self.max_evals:
                    break
                planned.append((i, option))
                if (list(option.passes), option.sets) not in seen:
                    seen.append((list(option.passes), option.sets))
        lone: list[list[tuple[SearchOption, Point]]] = [[] for _ in knobs]
        for (i, option), point in zip(planned, self.evaluate_many([o for _, o in planned], "one-at-a-time")):
            lone[i].append((option, point))
        # Knobs whose best feasible lone option saves the most go first.
        def best_saving(tried):
            costs = [p.cost for _, p in tried if self._ok(p, base)]
            return min(costs) if costs else float("inf")

        order = sorted(range(len(knobs)), key=lambda i: best_saving(lone[i]))
        chosen: dict[int, SearchOption] = {}
        current = base
        for i in order:
            candidates = sorted(((o, p) for o, p in lone[i] if self._ok(p, base)), key=lambda op: op[1].cost)
            for option, _ in candidates:
                if len(self.points) >= self.max_evals:
                    break
                trial = {**chosen, i: option}
                combo = combine([trial[j] for j in sorted(trial)])  # pipeline order = knob order
                point = self.evaluate(combo, "greedy")
                if self._ok(point, base) and point.cost < current.cost:
                    chosen, current = trial, point
                    break
        for p in self.points:
            p.feasible = self._ok(p, base)
        for p in pareto_front(self.points):
            p.front = True
        best = min((p for p in self.points if p.feasible), key=lambda p: p.cost)
        return SearchResult(self.points, base, best, self.metric, self.max_drop, len(self.x), time.perf_counter() - start,
                            self.finetune_epochs)


def optimize(model_path, target_name: str, data_path, *, out_dir, metric: str = "energy", max_drop: float = 0.01,
             config_file=None, sets: dict[str, Any] | None = None, input_shapes=None, samples: int | None = 1000,
             max_evals: int = 60, train_path=None, finetune_epochs: int = 0, formats=("json", "md", "html"),
             progress: Callable[[str], None] = lambda text: None, jobs: int | None = None, ray: str | None = None):
    """Search, then write the chosen point's compile outputs with the search in its report.
    ``jobs``/``ray``: compile the points on a local pool or a Ray cluster (nncc.sweep_exec);
    neither: in this process, one after another."""
    target_cls = TARGETS.get(target_name, "--target")
    x, y = load_eval_data(data_path)
    if samples:
        x, y = x[:samples], y[:samples]
    train = load_eval_data(train_path) if train_path else None
    executor = None
    if jobs or ray:
        from nncc.sweep_exec import make_executor

        executor = make_executor(jobs, ray)
    try:
        search = Search(model_path, target_cls, x, y, metric=metric, max_drop=max_drop, config_file=config_file,
                        sets=sets, input_shapes=input_shapes, max_evals=max_evals, train=train,
                        finetune_epochs=finetune_epochs, progress=progress, executor=executor)
        found = search.run(target_cls.search_space())
    finally:
        if executor is not None:
            executor.close()
    result = search.results.get(found.chosen.label)
    if result is None:  # compiled in a worker: compiled again here (the same inputs, the same figures) to be written
        chosen = found.chosen
        result = compile_option(search._task(SearchOption(chosen.label, tuple(chosen.passes), chosen.sets)), target_cls)["result"]
    result.report["optimize"] = found.to_json()
    write_outputs(result, out_dir, list(formats))
    return found


def compile_option(task: dict[str, Any], target_cls: type[Target] | None = None) -> dict[str, Any]:
    """One point of the search: a full compile and its top-1 on the scoring data. ``result``
    (the CompileResult) is kept for the caller in this process; an NnccError is the point's error."""
    target_cls = target_cls or TARGETS.get(task["target"], "--target")
    try:
        target = target_cls.configure(task["config_file"], task["sets"])
        passes = [parse_pass_spec(spec) for spec in task["passes"]]
        # The scoring set's first 64 inputs calibrate; only the separate training set trains.
        context = PassContext(calibration={task["input_name"]: task["x"][:64]}, data=task["train"])
        options = CompileOptions(task["input_shapes"], verify_samples=0, context=context)
        # Every point of a search compiles the same file: loaded once per process (nncc.reuse).
        result = compile_model(task["model"], target, passes, options,
                               loaded=reuse.loaded_model(task["model"], options.input_shapes))
    except NnccError as e:
        return {"error": str(e)}
    accuracy = runtime.top1_accuracy(runtime.session(result.model, threads=1), task["x"], task["y"])
    totals = {k: v for k, v in result.report["totals"].items() if isinstance(v, (int, float, str)) or v is None}
    return {"error": None, "accuracy": accuracy, "totals": totals, "result": result}


def evaluate_option(task: dict[str, Any]) -> dict[str, Any]:
    """:func:`compile_option` in a worker (nncc.sweep_exec): plain data back, no CompileResult."""
    outcome = compile_option(task)
    outcome.pop("result", None)
    return outcome
