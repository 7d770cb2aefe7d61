"""Calibration data and activation ranges: what passes (quantization) and targets (ADC bits,
activation density) measure the model on.

Where the data comes from: the ``data`` argument (the pass context's ``calibration``:
``--calib data.npz`` or the first samples of ``--eval data.npz``), else deterministic random inputs from
:func:`nncc.runtime.sample_inputs` -- uniform [0, 1) floats, which say little about the
ranges real data produces, so the source is always recorded in the pass's stats.

Ranges are measured by running the float model in onnxruntime with the tensors of
interest exposed as extra graph outputs (the graph is restored afterwards).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
from collections.abc import Iterable
from typing import Literal

import numpy as np
import onnx_ir as ir

from nncc import runtime
from nncc.analysis import input_specs
from nncc.errors import NnccError
from nncc.machine import usable_cpus
from nncc.notices import warn

RANDOM_SOURCE = "random uniform [0,1) inputs (nncc.runtime.sample_inputs, seed 0): no --calib or --eval data was given"
# Values kept per tensor for a percentile (strided subsample; memory stays bounded on big models).
_PERCENTILE_KEEP = 1 << 20


Calibration = dict[str, np.ndarray]  # model input name -> samples (leading sample axis)


def calibration_feeds(model: ir.Model, data: Calibration | None, max_samples: int,
                      random_count: int = 16, purpose: str = "calibration") -> tuple[list[dict[str, np.ndarray]], str]:
    """Feeds (one per model run) from ``data`` and a sentence saying where they came from.

    A calibration array has a leading sample axis: either ``(N, *input_shape)`` or, for an
    input with a batch axis, ``(N, *input_shape[1:])`` cut into batches of the model's size.
    A single-input model takes a single calibration array whatever its name (``--calib``
    files often call it ``x``). Without data the inputs are random and a warning says so
    (:mod:`nncc.notices`), naming the ``purpose``.
    """
    if not data:
        warn("calibration", f"{purpose} measured on random uniform [0,1) inputs, not real data: ranges and bits may be far "
                            "from what real inputs give (give --calib data.npz or --eval data.npz)")
        return runtime.sample_inputs(model, random_count), RANDOM_SOURCE
    specs = input_specs(model)
    if len(specs) == 1 and len(data) == 1 and specs[0][0] not in data:
        data = {specs[0][0]: next(iter(data.values()))}
    per_input = {}
    for name, shape, dtype in specs:
        if name not in data:
            raise NnccError("calibration", f"no calibration array for model input '{name}' (arrays: {', '.join(data)})")
        per_input[name] = _split_samples(np.asarray(data[name]), shape, name).astype(dtype, copy=False)
    count = min(min(len(a) for a in per_input.values()), max_samples)
    if count == 0:
        raise NnccError("calibration", "calibration data holds no complete sample")
    feeds = [{name: arr[i] for name, arr in per_input.items()} for i in range(count)]
    return feeds, f"calibration data: {count} model runs of input '{specs[0][0]}' {tuple(specs[0][1])}"


def _split_samples(arr: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """-> array of shape (runs, *shape)."""
    if arr.shape[1:] == tuple(shape):
        return arr
    if shape and arr.shape[1:] == tuple(shape[1:]):
        batch = shape[0]
        runs = len(arr) // batch
        return arr[: runs * batch].reshape(runs, *shape)
    raise NnccError("calibration", f"calibration array for '{name}' has shape {arr.shape}; expected (N, {', '.join(map(str, shape))}) or (N, {', '.join(map(str, shape[1:]))})")


# onnxruntime's CPU kernels split their work over outputs (rows, channel blocks), never over a
# reduction, so a tensor comes out bit for bit the same at any thread count (checked on the zoo:
# tests/test_calibration_threads.py): calibration, and what targets measure on its inputs (reram's
# ADC search), may use the machine's cores: CALIBRATION_THREADS, or a worker's share of them.
CALIBRATION_THREADS = min(4, usable_cpus())

# In a worker process of compare or sweep: how many of its pool's workers are compiling now (a
# multiprocessing.Value shared by them). None in any other process.
_busy_workers = None


def share_cores(busy_workers) -> None:
    """In a pool's worker: from now on :func:`threads` divides the cores among the workers of
    ``busy_workers`` that are compiling (:func:`working`)."""
    global _busy_workers
    _busy_workers = busy_workers


def threads() -> int:
    """Threads calibration may use now: all of CALIBRATION_THREADS, or in a pool's worker its
    share among the busy workers (a worker left alone once the others ran out of work gets them
    all: compare's longest target, reram, finishes on both cores of a 2-core machine)."""
    if _busy_workers is None:
        return CALIBRATION_THREADS
    return max(1, CALIBRATION_THREADS // max(1, _busy_workers.value))


@contextlib.contextmanager
def working():
    """Counts this worker as busy while it compiles (nothing outside a pool's worker)."""
    busy = _busy_workers
    if busy is None:
        yield
        return
    with busy.get_lock():
        busy.value += 1
    try:
        yield
    finally:
        with busy.get_lock():
            busy.value -= 1


def run_exposing(model: ir.Model, values: Iterable[ir.Value], feeds: list[dict[str, np.ndarray]]):
    """Yield, per feed, ``{value name: array}`` for ``values`` (intermediate tensors included)."""
    graph = model.graph
    extra = [v for v in dict.fromkeys(values) if v not in graph.outputs]
    for v in extra:
        if v.type is None:
            raise NnccError("calibration", f"tensor '{v.name}' has no type; run shape inference first")
        graph.outputs.append(v)
    cores = threads()
    try:
        sess = runtime.session(model, threads=cores, where="calibration")
    finally:
        for _ in extra:
            graph.outputs.pop()
    names = [v.name for v in dict.fromkeys(values)]
    runs = (_runs_ahead if cores == 1 else _runs)(sess, names, feeds)
    while True:
        try:
            outputs = next(runs, None)
        except Exception as e:  # onnxruntime's own exception types: a kernel refused the model
            raise NnccError("calibration", f"onnxruntime cannot run the model on the calibration inputs: "
                                           f"{str(e).splitlines()[0]}") from None
        if outputs is None:
            return
        yield dict(zip(names, outputs))


def _runs(sess, names: list[str], feeds: list[dict[str, np.ndarray]]):
    for feed in feeds:
        yield sess.run(names, feed)


def _runs_ahead(sess, names: list[str], feeds: list[dict[str, np.ndarray]]):
    """The runs of a one-thread session in a compare worker sharing the cores, on threads: as
    many at once as :func:`threads` gives now (one while the other workers compile, more once
    they are done: the session's own thread count was fixed before), the next ones started
    while the caller reads this one's tensors. In feed order. In the calling thread otherwise
    (:func:`_runs`), where a second thread's memory arena grew reram's peak by 60 MB on ResNet-50."""
    pending: collections.deque = collections.deque()
    upcoming = iter(feeds)
    with cf.ThreadPoolExecutor(CALIBRATION_THREADS, thread_name_prefix="nncc-calibration") as pool:
        def start() -> None:
            while sum(not f.done() for f in pending) < threads() and (feed := next(upcoming, None)) is not None:
                pending.append(pool.submit(sess.run, names, feed))

        start()
        while pending:
            outputs = pending.popleft().result()
            start()
            yield outputs


def collect_ranges(
    model: ir.Model,
    values: list[ir.Value],
    feeds: list[dict[str, np.ndarray]],
    method: Literal["minmax", "percentile"] = "minmax",
    percentile: float = 99.99,
) -> dict[str, tuple[float, float]]:
    """(low, high) of each tensor over all feeds: the extremes, or the given two-sided percentile."""
    if not values:
        return {}
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    kept: dict[str, list[np.ndarray]] = {}
    for out in run_exposing(model, values, feeds):
        for name, arr in out.items():
            arr = np.asarray(arr, dtype=np.float32).ravel()
            if arr.size == 0:
                continue
            lows[name] = min(lows.get(name, np.inf), float(arr.min()))
            highs[name] = max(highs.get(name, -np.inf), float(arr.max()))
            if method == "percentile":
                stride = max(1, arr.size * len(feeds) // _PERCENTILE_KEEP)
                kept.setdefault(name, []).append(arr[::stride])
    if method == "percentile":
        for name, parts in kept.items():
            allv = np.concatenate(parts)
            lows[name] = float(np.percentile(allv, 100.0 - percentile))
            highs[name] = float(np.percentile(allv, percentile))
    return {name: (lows[name], highs[name]) for name in lows}
