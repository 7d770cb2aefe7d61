"""onnxruntime sessions take nncc's large weights as arrays (runtime.session): not inside a
serialized copy of the model, and with the same results as a session built from the whole model."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from nncc import runtime


def _model(tmp_path):
    rng = np.random.default_rng(3)
    big = rng.normal(size=(512, 1024)).astype(np.float32)     # 2 MB: shared
    small = rng.normal(size=(1024,)).astype(np.float32)       # 4 kB: serialized
    g = helper.make_graph([helper.make_node("MatMul", ["x", "big"], ["m"]), helper.make_node("Add", ["m", "small"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 512])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1024])],
                          [numpy_helper.from_array(big, "big"), numpy_helper.from_array(small, "small")])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return proto, ir.from_proto(proto)


def test_large_weights_are_shared_and_results_equal(tmp_path):
    proto, model = _model(tmp_path)
    sess = runtime.session(model)
    assert list(sess.nncc_shared_weights) == ["big"]
    np.testing.assert_array_equal(sess.nncc_shared_weights["big"], model.graph.initializers["big"].const_value.numpy())
    x = np.random.default_rng(4).normal(size=(2, 512)).astype(np.float32)
    whole = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], whole.run(None, {"x": x})[0])
    # The model itself is unchanged: its initializer still holds the array, not the placeholder.
    assert not isinstance(model.graph.initializers["big"].const_value, ir.ExternalTensor)
    assert onnx.checker.check_model(ir.to_proto(model)) is None


def test_mid_sized_weights_shared_give_the_same_bits(tmp_path, monkeypatch):
    """Convolution weights of 16 kB - 1 MB are shared too (SHARE_WEIGHT_BYTES): onnxruntime's
    optimizations and kernels give the bits a session of the whole serialized model gives."""
    from nncc import models
    from nncc.loading import load_model

    model = load_model(models.export("resnet18", tmp_path / "resnet18.onnx"))
    sizes = [v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None]
    assert any(runtime.SHARE_WEIGHT_BYTES < n <= 1 << 20 for n in sizes)
    feed = runtime.sample_inputs(model, 1)[0]
    shared = runtime.session(model)
    assert len(shared.nncc_shared_weights) > sum(n > 1 << 20 for n in sizes)
    monkeypatch.setattr(runtime, "SHARE_WEIGHT_BYTES", 1 << 62)  # every weight inside the serialized model
    whole = runtime.session(model)
    assert not whole.nncc_shared_weights
    for got, want in zip(shared.run(None, feed), whole.run(None, feed)):
        np.testing.assert_array_equal(got, want)
