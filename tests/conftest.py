"""Shared fixtures: tiny graphs built in the test, and the onnx wheel's light model-zoo models."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import onnx
import pytest
from hypothesis import settings
from onnx import TensorProto, helper, numpy_helper

# CI (CI=true) draws the same property-test examples on every run, so a landing never depends on
# luck; local runs keep exploring new ones (and keep what failed in .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

LIGHT_DIR = pathlib.Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"
LIGHT_MODELS = sorted(p.stem for p in LIGHT_DIR.glob("*.onnx"))


def conv_bn_model(seed: int = 0, opset: int = 17) -> onnx.ModelProto:
    """x -> Conv(3->8, 3x3) -> BatchNorm -> Relu -> Gemm(8*6*6 -> 5) -> y, with random stats."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    beta = rng.normal(size=8).astype(np.float32)
    mean = rng.normal(size=8).astype(np.float32)
    var = rng.uniform(0.5, 2.0, 8).astype(np.float32)
    fc = rng.normal(size=(5, 8 * 6 * 6)).astype(np.float32) * 0.1
    fcb = rng.normal(size=5).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [(w, "w"), (b, "b"), (gamma, "gamma"), (beta, "beta"),
                                                         (mean, "mean"), (var, "var"), (fc, "fc"), (fcb, "fcb")]]
    inits.append(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "flat_shape"))
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1"),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r"], name="relu1"),
        helper.make_node("Reshape", ["r", "flat_shape"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc1", transB=1),
    ]
    graph = helper.make_graph(nodes, "conv_bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def conv_bn_path(tmp_path) -> pathlib.Path:
    path = tmp_path / "conv_bn.onnx"
    onnx.save(conv_bn_model(), path)
    return path


def light_model(name: str) -> pathlib.Path:
    return LIGHT_DIR / f"{name}.onnx"


def light_reference(name: str) -> np.ndarray:
    return numpy_helper.to_array(onnx.load_tensor(str(LIGHT_DIR / f"{name}_output_0.pb")))


@pytest.fixture(scope="module")
def one_blas_thread():
    """LAPACK on one thread: on a loaded 2-core machine OpenBLAS's spinning threads made
    large SVD/QR work ~100x slower than on one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed matter
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
