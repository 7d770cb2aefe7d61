"""Micro-graphs that ``calibrate`` times with onnxruntime (one thread) on the host.

Every builder returns ``(ModelProto, feeds)``. Layers are measured in chains of identical
layers: the per-layer time is the difference between a long and a short chain divided
by the extra layers, so session-run overhead and layout conversions at the graph edges
(onnxruntime's NCHWc reorders) cancel out.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9  # onnxruntime >= 1.20 reads it; newer onnx wheels default to versions it rejects


def _model(nodes, inputs, output: str, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "calibration", inputs, [helper.make_empty_tensor_value_info(output)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def conv_chain(layers: int, channels: int, size: int, kernel: int = 3, group: int = 1, seed: int = 0):
    """``layers`` identical Conv(channels -> channels, k x k, 'same' padding, ``group``) on a size x size map."""
    rng = np.random.default_rng(seed)
    fan_in = channels // group * kernel * kernel
    nodes, inits = [], []
    for i in range(layers):
        w = (rng.standard_normal((channels, channels // group, kernel, kernel)) / np.sqrt(fan_in)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [f"v{i}", f"w{i}"], [f"v{i + 1}"], group=group, pads=[kernel // 2] * 4))
    x = helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1, channels, size, size])
    return _model(nodes, [x], f"v{layers}", inits), {"v0": rng.random((1, channels, size, size), dtype=np.float32)}


def matmul_chain(layers: int, rows: int, width: int, seed: int = 0):
    """``layers`` identical MatMul([rows, width] x [width, width])."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [f"v{i}", f"w{i}"], [f"v{i + 1}"]))
    x = helper.make_tensor_value_info("v0", TensorProto.FLOAT, [rows, width])
    return _model(nodes, [x], f"v{layers}", inits), {"v0": rng.random((rows, width), dtype=np.float32)}


def gemm_chain(layers: int, rows: int, width: int, seed: int = 0):
    """``layers`` identical Gemm(transB=1) with bias: a fully connected layer as torch exports it."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [f"v{i}", f"w{i}", f"b{i}"], [f"v{i + 1}"], transB=1))
    x = helper.make_tensor_value_info("v0", TensorProto.FLOAT, [rows, width])
    return _model(nodes, [x], f"v{layers}", inits), {"v0": rng.random((rows, width), dtype=np.float32)}


# Element-wise ops calibrated one by one: (extra attributes, second input: None, "same" or "slope").
ELEMENTWISE: dict[str, tuple[dict, str | None]] = {
    "Relu": ({}, None), "Clip": ({}, "clip"), "LeakyRelu": ({"alpha": 0.1}, None), "PRelu": ({}, "slope"),
    "HardSigmoid": ({}, None), "HardSwish": ({}, None), "Sigmoid": ({}, None), "Tanh": ({}, None), "Erf": ({}, None),
    "Add": ({}, "same"), "Sub": ({}, "same"), "Mul": ({}, "same"), "BatchNormalization": ({}, "bn"),
    "Softmax": ({"axis": -1}, None), "LayerNormalization": ({"axis": -1}, "ln"), "LRN": ({"size": 5}, None),
}


def elementwise_chain(layers: int, op: str, channels: int = 64, size: int = 56, seed: int = 0):
    """``layers`` of one element-wise op on zero-mean data (half the values negative, as
    after a conv: branchy kernels such as PRelu pay their mispredictions)."""
    rng = np.random.default_rng(seed)
    attrs, extra = ELEMENTWISE[op]
    nodes, inits = [], []
    for i in range(layers):
        inputs = [f"v{i}"]
        if extra == "same":
            inputs.append("v0")
        elif extra == "slope":
            inputs.append(f"s{i}")
            inits.append(numpy_helper.from_array(rng.uniform(0.1, 0.3, (channels, 1, 1)).astype(np.float32), f"s{i}"))
        elif extra == "clip":
            inputs += ["lo", "hi"]
        elif extra in ("bn", "ln"):
            n = channels if extra == "bn" else size
            names = [f"bn_{k}{i}" for k in ("g", "b", "m", "v")[: 4 if extra == "bn" else 2]]
            inits += [numpy_helper.from_array(rng.uniform(0.5, 1.5, n).astype(np.float32), k) for k in names]
            inputs += names
        nodes.append(helper.make_node(op, inputs, [f"v{i + 1}"], **attrs))
    if extra == "clip":
        inits += [numpy_helper.from_array(np.array(-1, np.float32), "lo"), numpy_helper.from_array(np.array(1, np.float32), "hi")]
    x = helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1, channels, size, size])
    return _model(nodes, [x], f"v{layers}", inits), {"v0": rng.standard_normal((1, channels, size, size)).astype(np.float32)}


def tiny_chain(layers: int, kind: str):
    """``layers`` tiny ops (8 channels, 1 x 1 map): what remains is dispatch overhead."""
    if kind == "conv":
        return conv_chain(layers, 8, 1, kernel=1)
    if kind == "gemm":
        return gemm_chain(layers, 1, 8)
    nodes = [helper.make_node(kind, [f"v{i}"], [f"v{i + 1}"], **({"kernel_shape": [1, 1]} if kind == "MaxPool" else {}))
             for i in range(layers)]
    x = helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1, 8, 1, 1])
    return _model(nodes, [x], f"v{layers}", []), {"v0": np.random.default_rng(0).random((1, 8, 1, 1), dtype=np.float32)}


def qlinearconv_chain(layers: int, channels: int, size: int, kernel: int = 3, seed: int = 0):
    """``layers`` identical QLinearConv (uint8 activations, int8 weights)."""
    rng = np.random.default_rng(seed)
    scalars = [numpy_helper.from_array(np.array(0.02, np.float32), "sx"), numpy_helper.from_array(np.array(128, np.uint8), "zx"),
               numpy_helper.from_array(np.array(0.01, np.float32), "sw"), numpy_helper.from_array(np.array(0, np.int8), "zw")]
    nodes, inits = [], list(scalars)
    for i in range(layers):
        w = rng.integers(-64, 64, (channels, channels, kernel, kernel)).astype(np.int8)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("QLinearConv", [f"v{i}", "sx", "zx", f"w{i}", "sw", "zw", "sx", "zx"], [f"v{i + 1}"],
                                      pads=[kernel // 2] * 4))
    x = helper.make_tensor_value_info("v0", TensorProto.UINT8, [1, channels, size, size])
    return _model(nodes, [x], f"v{layers}", inits), {"v0": rng.integers(0, 255, (1, channels, size, size)).astype(np.uint8)}


def add_graph(elements: int, seed: int = 0):
    """One Add of two ``elements``-float tensors: 12 bytes moved per element."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Add", ["a", "b"], ["c"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [elements]) for n in ("a", "b")]
    return _model(nodes, inputs, "c", []), {"a": rng.random(elements, dtype=np.float32), "b": rng.random(elements, dtype=np.float32)}


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def time_graph(model: onnx.ModelProto, feeds: dict[str, np.ndarray], min_time_s: float = 0.2, min_runs: int = 5,
               clock=time.perf_counter, max_runs: int = 2000) -> float:
    """Median time of one run (onnxruntime, 1 thread) after 2 warm-up runs, by ``clock``: wall
    time, or ``time.thread_time`` for the CPU time of the thread that runs a one-thread session."""
    sess = session(model)
    for _ in range(2):
        sess.run(None, feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < min_time_s and len(times) < max_runs):
        t0 = clock()
        sess.run(None, feeds)
        times.append(clock() - t0)
    return float(np.median(times))


def per_layer(build, short: int, long: int, min_time_s: float, **kwargs) -> float:
    """Time of one layer: (T(long chain) - T(short chain)) / (long - short), floored at 1 ns."""
    t_short = time_graph(*build(short, **kwargs), min_time_s=min_time_s)
    t_long = time_graph(*build(long, **kwargs), min_time_s=min_time_s)
    return max((t_long - t_short) / (long - short), 1e-9)


def reference_conv_s() -> float:
    """One 3x3 conv layer (64 channels, 56 x 56, one of calibrate's own points) as onnxruntime
    runs it now. Calibration records it; timed again later, it shows how far a shared
    machine's speed has moved since (its CPU time per kernel drifts by 10% and more)."""
    return per_layer(conv_chain, 1, 3, 0.5, channels=64, size=56)
