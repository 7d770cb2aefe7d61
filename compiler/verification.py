"""Numerical verification: the compiled model against the original in onnxruntime, each distinct
model run once.

``nncc compare`` compiles one model for several targets. The original's outputs are the same for
every target, and targets whose passes leave the same model (none changed it, or each ran only
fold-batchnorm) would repeat the same onnxruntime runs: on ResNet-50 that was about 0.9 s per
target, half of the whole compare. A :class:`Verifier` keeps the outputs (and top-1) of each
distinct model it ran. Two models are the same when what onnxruntime is given is the same: the
serialized graph with its small weights, and the bytes of every large weight, compared exactly
(no hash: hashing 100 MB of weights costs more here than comparing them).

A model identical to the original is reported as such (``unchanged``): its error is zero by
construction, not by a second run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from nncc import runtime

# Distinct compiled models whose weights are kept for comparison besides the original (the most
# recent first): compare's targets seldom give more, and each holds a copy of the weights alive.
KEEP_MODELS = 2
IDENTITY = {"reference": "onnxruntime, original model", "inputs": "uniform [0,1) floats, seed 0"}


class _Run:
    """One distinct model: what onnxruntime was given, and what it gave."""

    def __init__(self, proto: bytes, shared: dict[str, np.ndarray]):
        self.proto, self.shared = proto, shared
        self.outputs: dict[int, list[list[np.ndarray]]] = {}  # verify samples -> outputs per sample
        self.top1: dict[str, float] = {}                       # eval data path -> top-1

    def same_as(self, proto: bytes, shared: dict[str, np.ndarray]) -> bool:
        return (self.proto == proto and self.shared.keys() == shared.keys()
                and all(self.shared[k].dtype == a.dtype and np.array_equal(self.shared[k], a) for k, a in shared.items()))


class Verifier:
    """Verifies models compiled from ``original`` (never changed) against it."""

    def __init__(self, original: ir.Model, where: object):
        self.original = _Run(*runtime.prepare(original))
        self.where = where
        self.recent: list[_Run] = []
        self.feeds = lambda samples: runtime.sample_inputs(original, samples)
        self._names: list[str] | None = None

    @staticmethod
    def skipped() -> dict[str, Any]:
        return {**IDENTITY, "status": "skipped"}

    def verify(self, model: ir.Model, samples: int, tolerance: float | None,
               eval_data: tuple[np.ndarray, np.ndarray] | None = None, eval_key: str = "") -> dict[str, Any]:
        """The report's ``verification``: errors over ``samples`` sampled inputs, top-1 on
        ``eval_data`` (``eval_key`` names it: the same key, the same data)."""
        if samples <= 0 and eval_data is None:
            return self.skipped()
        result: dict[str, Any] = dict(IDENTITY)
        self._results(self.original, samples, eval_data, eval_key, original=True)
        compiled = self._run_for(model)
        if compiled is self.original:
            result["unchanged"] = True  # no pass changed what onnxruntime runs: outputs equal by construction
        else:
            self._results(compiled, samples, eval_data, eval_key, original=False)
        if samples > 0:
            result.update(runtime.output_errors(self.original.outputs[samples], compiled.outputs[samples], self._names))
            result["tolerance"] = tolerance
            result["status"] = "passed" if tolerance is None or result["max_abs_error"] <= tolerance else "failed"
        if eval_data is not None:
            result["accuracy"] = {"samples": len(eval_data[0]), "top1_original": self.original.top1[eval_key],
                                  "top1_compiled": compiled.top1[eval_key]}
        return result

    def _run_for(self, model: ir.Model) -> _Run:
        proto, shared = runtime.prepare(model)
        for run in (self.original, *self.recent):
            if run.same_as(proto, shared):
                return run
        run = _Run(proto, shared)
        self.recent = [run, *self.recent][:KEEP_MODELS]
        return run

    def _results(self, run: _Run, samples: int, eval_data, eval_key: str, original: bool) -> None:
        """Fill in what ``run`` lacks, with one session (made only when something is missing and
        dropped after: a session holds onnxruntime's own copy of the weights)."""
        need_outputs = samples > 0 and samples not in run.outputs
        need_top1 = eval_data is not None and (eval_key not in run.top1 or not eval_key)
        if not (need_outputs or need_top1):
            return
        sess = runtime.session_from(run.proto, run.shared, threads=1, where=self.where)
        if self._names is None:
            self._names = [o.name for o in sess.get_outputs()]
        if need_outputs:
            run.outputs[samples] = runtime.run_samples(sess, self.feeds(samples), original)
        if need_top1:
            x, y = eval_data
            run.top1[eval_key] = runtime.top1_accuracy(sess, x.astype(np.float32), y)
