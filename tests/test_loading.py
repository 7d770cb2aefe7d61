"""Loading untrusted ONNX: normalization, dynamic shapes, external-data safety, clear errors."""

from __future__ import annotations

import os

import numpy as np
import onnx_ir as ir
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import LIGHT_MODELS, conv_bn_model, light_model
from nncc.errors import NnccError
from nncc.loading import copy_model, infer_shapes, load_model, parse_input_shapes
from nncc import analysis, runtime


def test_light_models_load_fold_and_infer_shapes():
    """Old-opset light models: initializers listed as inputs, weights from ConstantOfShape."""
    assert len(LIGHT_MODELS) == 9
    for name in ["light_squeezenet", "light_shufflenet", "light_inception_v1"]:
        model = load_model(light_model(name))
        ops = {n.op_type for n in model.graph}
        assert "ConstantOfShape" not in ops and "Constant" not in ops
        assert [v.name for v in model.graph.inputs] in (["data_0"], ["gpu_0/data_0"])
        for node in model.graph:
            for out in node.outputs:
                assert out.shape is not None and all(isinstance(d, int) for d in out.shape), (name, node.op_type)


def _without_fold_provenance(proto: onnx.ModelProto) -> bytes:
    """The model's bytes without onnxscript's "pkg.onnxscript.optimizer.folded_from" notes, its
    initializers and value_info in name order (a fill left to onnxscript is lifted after the
    direct ones)."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for item in [*proto.graph.value_info, *proto.graph.initializer, *proto.graph.output, *proto.graph.node]:
        kept = [p for p in item.metadata_props if not p.key.startswith("pkg.onnxscript.")]
        del item.metadata_props[:]
        item.metadata_props.extend(kept)
    for field in (proto.graph.initializer, proto.graph.value_info):
        ordered = sorted(field, key=lambda item: item.name)
        del field[:]
        field.extend(ordered)
    return proto.SerializeToString()


def test_constant_of_shape_weights_are_materialized_as_onnxscripts_folder_makes_them(tmp_path, monkeypatch):
    """Loading turns each ConstantOfShape with a constant shape into the initializer it computes
    directly (folding.py; onnxscript's folder took 0.2 s of ResNet-50's load for them): the model
    is the one onnxscript's fold gives, byte for byte but for the provenance note onnxscript
    leaves on what it folded, on a light model and on fills of other dtypes; one a subgraph
    reads, and one whose output the graph returns, stay with onnxscript."""
    from nncc import folding

    def fill(name, dims, value):
        return [helper.make_node("Constant", [], [f"{name}_shape"], value=numpy_helper.from_array(np.array(dims, np.int64))),
                helper.make_node("ConstantOfShape", [f"{name}_shape"], [name], value=numpy_helper.from_array(np.array([value])))]
    branch = helper.make_graph([helper.make_node("Add", ["x", "b"], ["z"])], "then", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])])
    nodes = [*fill("w", [3, 3], np.float32(0.5)), *fill("b", [2, 3], np.float32(1.0)), *fill("k", [1], np.int64(6)),
             *fill("out2", [1], np.float32(2.0)),
             helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Reshape", ["m", "k"], ["r"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                                       helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in (("r", [6]), ("y", [2, 3]), ("out2", [1]))])
    path = tmp_path / "fills.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    direct = folding._materialize_constant_of_shape
    for model_path in (path, light_model("light_squeezenet")):
        calls = []
        monkeypatch.setattr(folding, "_materialize_constant_of_shape", lambda m: calls.append(direct(m)) or calls[-1])
        fast = ir.serde.serialize_model(load_model(model_path))
        assert any(calls), model_path  # the direct path did the work
        monkeypatch.setattr(folding, "_materialize_constant_of_shape", lambda m: False)
        slow = ir.serde.serialize_model(load_model(model_path))
        assert _without_fold_provenance(fast) == _without_fold_provenance(slow), model_path
    monkeypatch.setattr(folding, "_materialize_constant_of_shape", direct)
    model = load_model(path)
    assert {"w", "k"} <= set(model.graph.initializers) and model.graph.initializers["k"].const_value.numpy().tolist() == [6]


def test_constant_node_weights_become_initializers(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    nodes = [helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    model = load_model(path)
    assert [n.op_type for n in model.graph] == ["MatMul"]
    np.testing.assert_array_equal(model.graph.node(0).inputs[1].const_value.numpy(), w)


def _dynamic_model(tmp_path):
    m = conv_bn_model()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    path = tmp_path / "dyn.onnx"
    onnx.save(m, path)
    return path


def test_dynamic_dim_needs_input_shape(tmp_path):
    path = _dynamic_model(tmp_path)
    with pytest.raises(NnccError, match=r"dynamic dimension 'N' at axis 0.*--input-shape x=1x3x8x8"):
        load_model(path)
    model = load_model(path, parse_input_shapes(["x=2x3x8x8"]))
    assert tuple(model.graph.inputs[0].shape) == (2, 3, 8, 8)
    assert tuple(model.graph.outputs[0].shape) == (2, 5)


@pytest.mark.parametrize("spec,match", [("x=1x3", "rank 4"), ("nope=1x3x8x8", "no input 'nope'"),
                                        ("x=1,3,8,8", "not NAME=DxDx")])
def test_bad_input_shapes(tmp_path, spec, match):
    with pytest.raises(NnccError, match=match):
        load_model(_dynamic_model(tmp_path), parse_input_shapes([spec]))


def test_malformed_files(tmp_path):
    good = tmp_path / "good.onnx"
    onnx.save(conv_bn_model(), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for path in (truncated, noise, empty):
        with pytest.raises(NnccError) as info:
            load_model(path)
        assert info.value.where == str(path)
    with pytest.raises(NnccError, match="no such file"):
        load_model(tmp_path / "missing.onnx")


def test_unknown_op_is_named(tmp_path):
    m = conv_bn_model()
    m.graph.node[2].op_type = "Frobnicate"
    path = tmp_path / "unknown.onnx"
    onnx.save(m, path)
    with pytest.raises(NnccError, match="Frobnicate"):
        load_model(path)


def _external_model(tmp_path, location, length=None):
    w = np.ones((4, 4), dtype=np.float32)
    (tmp_path / "weights.bin").write_bytes(w.tobytes())
    tensor = numpy_helper.from_array(w, "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, "offset": "0", "length": str(length if length is not None else w.nbytes)}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [tensor])
    path = tmp_path / "ext.onnx"
    with open(path, "wb") as f:
        f.write(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10).SerializeToString())
    return path


def test_external_data_inside_folder_loads(tmp_path):
    model = load_model(_external_model(tmp_path, "weights.bin"))
    np.testing.assert_array_equal(model.graph.initializers["w"].const_value.numpy(), np.ones((4, 4), np.float32))


def test_a_copy_reads_external_weights_from_the_same_folder(tmp_path, monkeypatch):
    """compile copies the loaded model (nncc.loading.copy_model); weights left in their file
    must still be found, whatever the working folder."""
    path = _external_model(tmp_path, "weights.bin")
    model = load_model(path)
    assert isinstance(model.graph.initializers["w"].const_value, ir.ExternalTensor)
    monkeypatch.chdir(tmp_path.parent)
    copy = copy_model(model)
    np.testing.assert_array_equal(copy.graph.initializers["w"].const_value.numpy(), np.ones((4, 4), np.float32))
    copy.graph.initializers["w"].const_value = ir.tensor(np.zeros((4, 4), np.float32))
    np.testing.assert_array_equal(model.graph.initializers["w"].const_value.numpy(), np.ones((4, 4), np.float32))


@pytest.mark.parametrize("location,match", [("../weights.bin", r"leaves the model's folder"), ("/etc/passwd", "absolute"),
                                            ("missing.bin", "not found")])
def test_external_data_paths_are_confined(tmp_path, location, match):
    with pytest.raises(NnccError, match=match):
        load_model(_external_model(tmp_path, location))


def test_external_data_symlink_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"\0" * 64)
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external_model(folder, "link.bin")
    os.symlink(outside / "secret.bin", folder / "link.bin")
    with pytest.raises(NnccError, match="symlink"):
        load_model(path)


def test_external_data_size_must_match(tmp_path):
    with pytest.raises(NnccError, match="need 64"):
        load_model(_external_model(tmp_path, "weights.bin", length=32))


def test_raw_data_size_must_match(tmp_path):
    m = conv_bn_model()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:-4]
    path = tmp_path / "short.onnx"
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    with pytest.raises(NnccError, match=r"initializer 'w'.*need 864"):
        load_model(path)


def test_loaded_model_matches_original_in_onnxruntime(conv_bn_path):
    model = load_model(conv_bn_path)
    feed = runtime.sample_inputs(model, 1)[0]
    want = ort.InferenceSession(str(conv_bn_path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    got = runtime.session(model).run(None, feed)[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("shape_from", ["initializer", "Constant node"])
def test_huge_constant_of_shape_is_refused(tmp_path, shape_from):
    """Whether its shape is an initializer or a Constant node's output, a ConstantOfShape over the
    created-tensor cap is refused before anything is allocated, naming the file and the node."""
    shape = numpy_helper.from_array(np.array([100000, 100000, 100], dtype=np.int64), "s")
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["w"], value=numpy_helper.from_array(np.array([1.0], np.float32))),
             helper.make_node("Add", ["x", "w"], ["y"])]
    inits = [shape]
    if shape_from == "Constant node":
        nodes.insert(0, helper.make_node("Constant", [], ["s"], value=shape))
        inits = []
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [100000, 100000, 100])], inits)
    path = tmp_path / "bomb.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    with pytest.raises(NnccError, match=r"ConstantOfShape node 'w' \(shape \[100000, 100000, 100\]\) would create a tensor "
                                        r"of 4,000,000,000,000 bytes, over the .*-byte cap") as caught:
        load_model(path)
    assert str(caught.value.where) == str(path)


def test_shape_inference_keeps_large_integer_initializers(tmp_path):
    """Split sizes are data that shape inference needs: 200 int64 sizes (1.6 KB) must reach it."""
    sizes = numpy_helper.from_array(np.ones(200, np.int64), "sizes")
    graph = helper.make_graph(
        [helper.make_node("Split", ["x", "sizes"], [f"y{i}" for i in range(200)], axis=1),
         helper.make_node("Add", ["y0", "y1"], ["z"])], "split200",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 200])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1])], [sizes])
    path = tmp_path / "split200.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    model = load_model(path)
    infer_shapes(model, path)
    split = next(node for node in model.graph if node.op_type == "Split")
    assert [tuple(v.shape) for v in split.outputs[:2]] == [(1, 1), (1, 1)]
    assert list(model.graph.initializers) == ["sizes"] and len(model.graph.inputs) == 1


# Converter quirks: dynamic axes written as dim_value -1 / 0, Shape-driven chains behind a
# Gemm. Checked in onnxruntime against the original file: folding is exact.

def _save_graph(tmp_path, graph, name="m.onnx"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _run_file(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def _minus_one_model(tmp_path, dims):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [dims[0], 4, None, None])
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g", [x], [y], [w])
    return _save_graph(tmp_path, graph)


@pytest.mark.parametrize("dims", [[-1, 3, -1, -1], [0, 3, 48, 0]])
def test_nonpositive_dim_value_is_dynamic(tmp_path, dims):
    path = _minus_one_model(tmp_path, dims)
    model = load_model(path, parse_input_shapes(["x=1x3x48x192"]))
    assert tuple(model.graph.inputs[0].shape) == (1, 3, 48, 192)
    assert tuple(model.graph.outputs[0].shape) == (1, 4, 46, 190)
    x = np.random.default_rng(1).normal(size=(1, 3, 48, 192)).astype(np.float32)
    # onnxruntime reads -1 as dynamic too, but insists on 0: the reference is the -1 file.
    reference = _minus_one_model(tmp_path / "ref", [-1, 3, -1, -1])
    np.testing.assert_array_equal(runtime.session(model).run(None, {"x": x})[0], _run_file(reference, {"x": x})[0])


def test_nonpositive_dim_value_without_input_shape_names_input_and_axis(tmp_path):
    path = _minus_one_model(tmp_path, [-1, 3, 8, 8])
    with pytest.raises(NnccError, match=r"^.*input 'x' has dynamic dimension at axis 0; give it with --input-shape x=1x3x8x8$"):
        load_model(path)
    # A dimension the model does fix still has to match.
    with pytest.raises(NnccError, match="axis 1 is fixed to 3 in the model, got 4"):
        load_model(path, parse_input_shapes(["x=1x4x8x8"]))


def _shape_chain_model(tmp_path, value_info=()):
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.normal(size=(16, 5)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
             helper.make_node("Concat", ["n1", "minus_one"], ["flat"], name="concat", axis=0),
             helper.make_node("Reshape", ["r", "flat"], ["f"], name="reshape"),
             helper.make_node("Gemm", ["f", "fc"], ["y"], name="gemm")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])
    return _save_graph(tmp_path, helper.make_graph(nodes, "g", [x], [y], inits, value_info=list(value_info)))


@pytest.mark.parametrize("relu_dims", [None, [-1, 4, 2, 2]])
def test_shape_chain_folds_once_the_input_shape_is_fixed(tmp_path, relu_dims):
    """Shape -> Gather -> Concat -> Reshape -> Gemm; an exporter's value_info with -1 must not
    fold into a shape constant holding -1."""
    info = [helper.make_tensor_value_info("r", TensorProto.FLOAT, relu_dims)] if relu_dims else []
    path = _shape_chain_model(tmp_path, info)
    model = load_model(path, parse_input_shapes(["x=3x4x2x2"]))
    assert [n.op_type for n in model.graph] == ["Relu", "Reshape", "Gemm"]
    assert list(model.graph.node(1).inputs[1].const_value.numpy()) == [3, -1]
    assert all(isinstance(d, int) for n in model.graph for o in n.outputs for d in o.shape)
    gemm = next(r for r in analysis.layers(model) if r.op == "Gemm")
    assert gemm.input_shapes[0] == (3, 16) and gemm.output_shapes[0] == (3, 5) and gemm.macs == 3 * 16 * 5
    x = np.random.default_rng(3).normal(size=(3, 4, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(runtime.session(model).run(None, {"x": x})[0], _run_file(path, {"x": x})[0])


def test_large_weights_are_saved_beside_the_model(tmp_path):
    """Above SAVE_EXTERNAL_DATA_BYTES the weights go to model.onnx.data, streamed (inside the
    protobuf they cost two more copies in memory), and onnxruntime runs the pair."""
    from nncc import loading

    w = np.random.default_rng(0).normal(size=(4096, (loading.SAVE_EXTERNAL_DATA_BYTES // 4 // 4096) + 8)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, w.shape[1]])], [numpy_helper.from_array(w, "w")])
    src = tmp_path / "src.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), src)
    out = tmp_path / "out"
    out.mkdir()
    loading.save_model(load_model(src), out / "model.onnx")
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert (out / "model.onnx").stat().st_size < 1 << 20 and (out / "model.onnx.data").stat().st_size == w.nbytes
    x = np.ones((1, 4096), np.float32)
    got, want = (ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
                 for f in (out / "model.onnx", src))
    np.testing.assert_array_equal(got, want)  # the same kernel on the same weights
