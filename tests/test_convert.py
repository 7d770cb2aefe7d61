"""ONNX -> torch converter: outputs match onnxruntime; export writes values back into the same graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from nncc import analysis, models, runtime
from nncc.errors import NnccError
from nncc.loading import load_model, save_model
from nncc.training.convert import to_torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


def _zoo_path(name, zoo_dir):
    if name == "lenet5":
        return models.bundled_path("lenet5")
    path = zoo_dir / f"{name}.onnx"
    if not path.exists():
        models.export(name, path)
    return path


def _torch_run(module, feed):
    with torch.no_grad():
        out = module(*[torch.from_numpy(feed[n]) for n in module.input_names])
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", ["lenet5", "convnet", "tdnn", "mobilenet_v2", "bert_tiny",
                                  pytest.param("resnet18", marks=pytest.mark.slow),
                                  pytest.param("vargfacenet", marks=pytest.mark.slow)])
def test_matches_onnxruntime(name, zoo_dir):
    model = load_model(_zoo_path(name, zoo_dir))
    module = to_torch(model).eval()
    sess = runtime.session(model)
    for feed in runtime.sample_inputs(model, 2, seed=3):
        ref = sess.run(None, feed)[0]
        got = _torch_run(module, feed).numpy()
        assert got.shape == ref.shape
        # 1e-4 relative to the output's magnitude (tdnn's logits reach ~1e3)
        assert np.max(np.abs(got - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def test_weights_are_parameters_named_after_initializers():
    model = load_model(models.bundled_path("lenet5"))
    module = to_torch(model)
    params = {module.onnx_names[k] for k, _ in module.named_parameters()}
    weights = {n.inputs[1].name for n in model.graph if n.op_type in ("Conv", "Gemm")}
    biases = {n.inputs[2].name for n in model.graph if n.op_type in ("Conv", "Gemm")}
    assert weights | biases == params
    # The trainable layers are the layer view's weighted layers, with its layouts.
    view = [layer for layer in analysis.layers(model) if layer.weight is not None]
    assert [(t.onnx_name, t.layout) for t in module.layers] == [(v.weight.value.name, v.weight.layout) for v in view]
    assert [v.op for v in view] == ["Conv", "Conv", "Gemm", "Gemm", "Gemm"]


def test_round_trip_unchanged_weights_is_exact(tmp_path):
    path = models.bundled_path("lenet5")
    model = load_model(path)
    before = {k: np.array(v.const_value.numpy()) for k, v in model.graph.initializers.items()}
    ops = [n.op_type for n in model.graph]
    to_torch(model).export_to(model)
    assert [n.op_type for n in model.graph] == ops
    for k, v in model.graph.initializers.items():
        np.testing.assert_array_equal(v.const_value.numpy(), before[k])
    out = save_model(model, tmp_path / "rt.onnx")
    feed = runtime.sample_inputs(model, 1)[0]
    ref = runtime.session(load_model(path)).run(None, feed)[0]
    np.testing.assert_array_equal(runtime.session(load_model(out)).run(None, feed)[0], ref)


def test_export_writes_trained_values_and_bn_stats(tmp_path, conv_bn_path):
    model = load_model(conv_bn_path)
    module = to_torch(model)
    with torch.no_grad():
        module.tensor("w").mul_(2.0)
    module.train()
    module(torch.rand(4, 3, 8, 8))  # batch statistics update the running mean/var buffers
    module.eval()
    module.export_to(model)
    np.testing.assert_allclose(model.graph.initializers["w"].const_value.numpy(), module.tensor("w").detach().numpy())
    np.testing.assert_allclose(model.graph.initializers["mean"].const_value.numpy(), module.tensor("mean").numpy())
    feed = runtime.sample_inputs(model, 1)[0]
    ref = runtime.session(model).run(None, feed)[0]
    np.testing.assert_allclose(_torch_run(module, feed).numpy(), ref, atol=1e-4)


def test_minibatch_on_batch1_export_matches_per_sample():
    model = load_model(models.bundled_path("lenet5"))
    module = to_torch(model).eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        batched = module(x)
        single = torch.cat([module(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_unsupported_op_names_node_and_op(tmp_path):
    graph = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "hm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(NnccError, match=r"node 'hm' \(Hardmax\)"):
        to_torch(load_model(path))


def test_asymmetric_pads_and_groups(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c", group=2, pads=[0, 1, 1, 2], strides=[2, 1], dilations=[1, 2]),
             helper.make_node("MaxPool", ["c"], ["p"], name="p", kernel_shape=[2, 2], pads=[1, 0, 0, 1]),
             helper.make_node("AveragePool", ["p"], ["a"], name="a", kernel_shape=[2, 2], count_include_pad=1, pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["a"], ["t"], name="t", perm=[0, 2, 3, 1]),
             helper.make_node("Softmax", ["t"], ["y"], name="s", axis=-1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "h", "w", "c"])], [numpy_helper.from_array(w, "w")])
    path = tmp_path / "pads.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    model = load_model(path)
    feed = runtime.sample_inputs(model, 1)[0]
    ref = runtime.session(model).run(None, feed)[0]
    np.testing.assert_allclose(_torch_run(to_torch(model).eval(), feed).numpy(), ref, atol=1e-5)
