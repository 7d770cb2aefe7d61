"""onnxruntime as the reference executor: sessions, sample inputs, numerical checks."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnx_ir as ir
import onnxruntime as ort

from nncc.analysis import input_specs
from nncc.errors import NnccError
from nncc.loading import stamp_runtime_ir_version


# Initializers above this many bytes are handed to onnxruntime as the arrays nncc already holds
# (SessionOptions.add_external_initializers) instead of inside the serialized model: no
# serialized copy, no second copy of the weights in the session. 16 KB, not 1 MB: ResNet-50's
# convs of 16 KB-1 MB made an 18 MB proto to serialize and parse; without them a session comes
# 0.24 s sooner (0.58 -> 0.31 s) and computes the same bits (the same initializers either way).
SHARE_WEIGHT_BYTES = 1 << 14
_SHARED_LOCATION = "nncc-shared-initializer"  # never read: onnxruntime takes the arrays given


def session(model: ir.Model, threads: int = 1, optimize: bool = True, where: object = "model") -> ort.InferenceSession:
    """An onnxruntime CPU session for an in-memory model, sharing its large weights."""
    try:
        proto, shared = prepare(model)
    except Exception as e:  # a graph onnx-ir cannot serialize
        raise NnccError(where, f"onnxruntime cannot run the model: {str(e).splitlines()[0]}") from None
    return session_from(proto, shared, threads, optimize, where)


def session_from(proto: bytes, shared: dict[str, np.ndarray], threads: int = 1, optimize: bool = True,
                 where: object = "model") -> ort.InferenceSession:
    """A session for what :func:`prepare` gave."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Off (fatal only): onnxruntime's own logger writes red multi-line text on stderr, while
    # every failure comes back as an exception that nncc turns into its one line.
    options.log_severity_level = 4
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        if shared:
            options.add_external_initializers(list(shared), [ort.OrtValue.ortvalue_from_numpy(a) for a in shared.values()])
        sess = ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad graphs
        raise NnccError(where, f"onnxruntime cannot run the model: {str(e).splitlines()[0]}") from None
    sess.nncc_shared_weights = shared  # onnxruntime reads these arrays for the session's whole life
    return sess


def prepare(model: ir.Model) -> tuple[bytes, dict[str, np.ndarray]]:
    """What onnxruntime is given for ``model``: the serialized model with its large main-graph
    initializers as data-less external tensors, and those initializers' arrays by name (shared,
    not copied: a session reads them in place)."""
    stamp_runtime_ir_version(model)
    held: list[tuple[ir.Value, ir.TensorProtocol]] = []
    shared: dict[str, np.ndarray] = {}
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if tensor is None or tensor.nbytes <= SHARE_WEIGHT_BYTES:
            continue
        array = np.ascontiguousarray(tensor.numpy())
        shared[value.name] = array
        held.append((value, tensor))
        value.const_value = ir.ExternalTensor(_SHARED_LOCATION, offset=0, length=array.nbytes, dtype=tensor.dtype,
                                              shape=tensor.shape, name=value.name, base_dir="")
    try:
        return ir.serde.serialize_model(model).SerializeToString(), shared
    finally:
        for value, tensor in held:
            value.const_value = tensor


def _integer_range(model: ir.Model, value: ir.Value) -> tuple[int, int]:
    """[low, high) of samples for an integer input: a Loop's trip count runs its body 1-3 times
    (0 trips leaves a torch-exported list empty, which its ConcatFromSequence refuses); a
    Gather index stays inside the gathered axis."""
    if any(node.op_type == "Loop" and index == 0 for node, index in value.uses()):
        return 1, 4
    return 0, _index_bound(model, value)


def _index_bound(model: ir.Model, value: ir.Value) -> int:
    """For integer inputs used as Gather indices: the size of the gathered axis."""
    bound = None
    for node, index in value.uses():
        if node.op_type == "Gather" and index == 1 and node.inputs[0].shape is not None:
            axis = node.attributes.get_int("axis", 0)
            dim = node.inputs[0].shape[axis]
            if isinstance(dim, int):
                bound = dim if bound is None else min(bound, dim)
    return bound or 2


def sample_inputs(model: ir.Model, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Deterministic inputs: uniform [0, 1) floats (image-like), valid indices for integer inputs."""
    rng = np.random.default_rng(seed)
    specs = input_specs(model)
    by_name = {v.name: v for v in model.graph.inputs}
    samples = []
    for _ in range(count):
        feed = {}
        for name, shape, dtype in specs:
            if np.issubdtype(dtype, np.floating):
                feed[name] = rng.random(shape, dtype=np.float64).astype(dtype)
            elif np.issubdtype(dtype, np.integer):
                feed[name] = rng.integers(*_integer_range(model, by_name[name]), size=shape).astype(dtype)
            elif dtype == np.bool_:
                feed[name] = rng.random(shape) < 0.5
            else:
                raise NnccError("--verify", f"cannot make sample data for input '{name}' of type {dtype}")
        samples.append(feed)
    return samples


def compare_outputs(reference: ort.InferenceSession, candidate: ort.InferenceSession, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Max absolute and relative (to the reference's largest magnitude) error over all outputs."""
    return output_errors(run_samples(reference, feeds, original=True), run_samples(candidate, feeds, original=False),
                         [o.name for o in reference.get_outputs()])


def run_samples(sess: ort.InferenceSession, feeds: list[dict[str, np.ndarray]], original: bool) -> list[list[np.ndarray]]:
    """The outputs of each feed (each given the inputs ``sess`` takes); a model onnxruntime cannot
    run on them is one NnccError, which for the ``original`` says how to fix or skip it."""
    inputs = {i.name for i in sess.get_inputs()}
    outputs = []
    for feed in feeds:
        try:
            outputs.append(sess.run(None, {k: v for k, v in feed.items() if k in inputs}))
        except Exception as e:  # onnxruntime's own exception types
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            if original:
                raise NnccError("--verify", f"onnxruntime cannot run the original model on sampled inputs ({first}); "
                                            "fix the inputs it needs with --input-value NAME=VALUE, or skip verification "
                                            "with --verify 0") from None
            raise NnccError("verification", f"onnxruntime cannot run the compiled model on sampled inputs ({first})") from None
    return outputs


def output_errors(reference: list[list[np.ndarray]], got: list[list[np.ndarray]], names: list[str]) -> dict[str, Any]:
    """Max absolute and relative (to the reference's largest magnitude) error over all outputs
    of all samples (``reference[sample][output]``)."""
    max_abs = 0.0
    max_ref = 0.0
    for ref_outputs, got_outputs in zip(reference, got):
        for name, a, b in zip(names, ref_outputs, got_outputs):
            a = np.asarray(a, dtype=np.float64)
            b = np.asarray(b, dtype=np.float64)
            if a.shape != b.shape:
                raise NnccError("verification", f"output '{name}' changed shape {a.shape} -> {b.shape}")
            if a.size:
                # NaN/Inf weights give non-finite outputs: equal ones (the same infinity, NaN in
                # both) are no error; the rest make the error NaN or Inf, without numpy's warnings.
                with np.errstate(invalid="ignore", over="ignore"):
                    diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
                max_abs = max(max_abs, float(np.max(diff)), key=lambda e: (np.isnan(e), e))
                max_ref = max(max_ref, float(np.max(np.abs(a), initial=0.0, where=np.isfinite(a))))
    return {"samples": len(reference), "max_abs_error": max_abs, "max_rel_error": max_abs / max_ref if max_ref > 0 else max_abs}


# onnxruntime's input type names -> the numpy type a feed of labelled samples is cast to.
_ORT_NUMPY = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
              "tensor(bool)": np.bool_}


def top1_accuracy(sess: ort.InferenceSession, x: np.ndarray, y: np.ndarray, where: object = "--eval") -> float:
    """Top-1 accuracy over a labelled set, batch by batch as the model's batch dim allows.

    Samples that do not fit the model's first input (another shape per sample, a model with
    more inputs than the one fed) are one NnccError naming ``where``."""
    inputs = sess.get_inputs()
    inp = inputs[0]
    per_sample = [d if isinstance(d, int) and d > 0 else None for d in inp.shape[1:]]
    if x.ndim != len(inp.shape) or any(d is not None and d != got for d, got in zip(per_sample, x.shape[1:])):
        shown = "x".join(str(d) if d is not None else "?" for d in per_sample)
        raise NnccError(where, f"'x' has samples of shape {list(x.shape[1:])}; the model's input '{inp.name}' takes {shown or 'scalars'} per sample")
    if len(inputs) > 1:
        raise NnccError(where, f"labelled data feeds one input; the model has {len(inputs)} ({', '.join(i.name for i in inputs)})")
    x = x.astype(_ORT_NUMPY.get(inp.type, x.dtype), copy=False)
    batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else len(x)
    correct = 0
    usable = len(x) - len(x) % batch
    for start in range(0, usable, batch):
        try:
            logits = sess.run(None, {inp.name: x[start:start + batch]})[0]
        except Exception as e:  # onnxruntime's own exception types
            raise NnccError(where, f"onnxruntime cannot run the model on the labelled samples: {str(e).splitlines()[0]}") from None
        correct += int(np.sum(np.argmax(logits.reshape(batch, -1), axis=1) == y[start:start + batch]))
    return correct / usable if usable else float("nan")


def measure_latency(sess: ort.InferenceSession, feed: dict[str, np.ndarray], warmup: int = 3, min_runs: int = 10, min_time_s: float = 0.5) -> dict[str, float]:
    """Median wall time of one inference (single thread as configured by the session)."""
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time_s:
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    times.sort()
    return {"median_s": times[len(times) // 2], "min_s": times[0], "runs": len(times)}
