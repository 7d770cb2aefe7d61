"""Load an untrusted ONNX file into onnx-ir, normalized for the passes and targets.

What loading guarantees to everything downstream:
- the protobuf parsed, passed the ONNX checker and the safety checks in ``nncc.safety``;
- initializers are constants, never graph inputs (old opsets listed them as both);
- weights computed by Constant / ConstantOfShape nodes are folded into initializers;
- every graph input has a static shape (``--input-shape`` fixes dynamic ones);
- shapes are inferred for every value.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re

import google.protobuf.message
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common_passes

from nncc.errors import NnccError
from nncc.folding import fold_weight_constants
from nncc.safety import check_tensors

# Tensors above this many bytes in total are written as external data (protobuf's 2 GB cap).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def parse_input_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1x3x224x224", ...]`` -> ``{"x": (1, 3, 224, 224)}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or ():
        name, sep, dims = spec.rpartition("=")
        if not sep or not name or not re.fullmatch(r"\d+(x\d+)*", dims):
            raise NnccError("--input-shape", f"'{spec}' is not NAME=DxDx... (e.g. input=1x3x224x224)")
        shapes[name] = tuple(int(d) for d in dims.split("x"))
    return shapes


def read_proto(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse and validate the protobuf without reading any external data."""
    path = pathlib.Path(path)
    if not path.exists():
        raise NnccError(path, "no such file")
    if not path.is_file():
        raise NnccError(path, "not a regular file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (google.protobuf.message.DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as e:
        raise NnccError(path, f"not an ONNX model: protobuf parse failed ({type(e).__name__}); is the file truncated or corrupt?") from None
    if not proto.HasField("graph") or not proto.graph.output:
        raise NnccError(path, "not an ONNX model: no graph with outputs")
    if not proto.opset_import:
        raise NnccError(path, "not an ONNX model: no opset_import")
    check_tensors(proto, path)
    try:
        # By path, so external data is checked relative to the model's folder, not the cwd.
        onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError) as e:
        raise NnccError(path, _first_line(str(e))) from None
    return proto


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    head = lines[0] if lines else message
    # The checker puts the node's identity on a later "==> Context:" line; keep it.
    context = next((line for line in lines[1:] if "Context" in line or "node" in line.lower()), "")
    return f"{head} {context}".strip()


def load_model(
    path: str | os.PathLike,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    *,
    fold: bool = True,
) -> ir.Model:
    """Load, validate and normalize ``path`` (see the module docstring)."""
    path = pathlib.Path(path)
    proto = read_proto(path)
    model = ir.serde.deserialize_model(proto)
    ir.external_data.set_base_dir(model.graph, str(path.parent))
    del proto
    common_passes.RemoveInitializersFromInputsPass()(model)
    if fold:
        fold_weight_constants(model)
    fix_input_shapes(model, input_shapes or {}, path)
    infer_shapes(model, path)
    return model


def fix_input_shapes(model: ir.Model, shapes: dict[str, tuple[int, ...]], where: object) -> None:
    """Give every graph input a static shape, from ``shapes`` where named."""
    by_name = {v.name: v for v in model.graph.inputs}
    for name in shapes:
        if name not in by_name:
            raise NnccError("--input-shape", f"model has no input '{name}' (inputs: {', '.join(by_name)})")
    for value in model.graph.inputs:
        if value.name in shapes:
            dims = shapes[value.name]
            if value.shape is not None:
                if len(value.shape) != len(dims):
                    raise NnccError("--input-shape", f"input '{value.name}' has rank {len(value.shape)}, got {'x'.join(map(str, dims))}")
                for axis, (old, new) in enumerate(zip(value.shape, dims)):
                    if isinstance(old, int) and old != new:
                        raise NnccError("--input-shape", f"input '{value.name}' axis {axis} is fixed to {old} in the model, got {new}")
            value.shape = ir.Shape(dims)
            continue
        if value.shape is None:
            raise NnccError(where, f"input '{value.name}' has no shape; give it with --input-shape {value.name}=1x...")
        dynamic = [(axis, str(d)) for axis, d in enumerate(value.shape) if not isinstance(d, int)]
        if dynamic:
            axis, dim = dynamic[0]
            example = "x".join(str(d) if isinstance(d, int) else "1" for d in value.shape)
            raise NnccError(where, f"input '{value.name}' has dynamic dimension '{dim}' at axis {axis}; give it with --input-shape {value.name}={example}")


def infer_shapes(model: ir.Model, where: object) -> None:
    """Re-infer every intermediate shape from the (now static) input shapes."""
    for node in model.graph:
        for out in node.outputs:
            if out not in model.graph.outputs:
                out.shape = None
    # onnx-ir's ShapeInferencePass logs and swallows failures; a user needs them, so the
    # same steps (strip big initializers, call onnx, merge back) are run here.
    from onnx_ir.passes.common.shape_inference import _merge_func

    def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)

    try:
        inferred = _call_without_weight_data(infer, model)
    except (onnx.shape_inference.InferenceError, RuntimeError) as e:
        raise NnccError(where, f"shape inference failed: {_first_line(str(e))}") from None
    _merge_func(model, inferred)


# Float tensors above this size go to onnx's shape inference as typed inputs without data
# (it only needs their shapes). Integer tensors keep their data up to the larger cap: they
# are shapes, split sizes, axes and indices, and inference needs their values (onnx-ir's own
# helper drops every tensor over 1 KB, so a Split with more than 125 sizes lost its shapes).
_FLOAT_DATA_LIMIT = 1024
_INT_DATA_LIMIT = 1 << 20


def _call_without_weight_data(func, model: ir.Model):
    """Call ``func`` on a proto of ``model`` whose big float initializers are data-less inputs."""
    graph = model.graph
    n_inputs = len(graph.inputs)
    held: list[tuple[ir.Value, ir.TensorProtocol]] = []
    for value in list(graph.initializers.values()):
        tensor = value.const_value
        if tensor is None:
            continue
        value.shape = value.shape or tensor.shape
        value.dtype = value.dtype or tensor.dtype
        limit = _INT_DATA_LIMIT if tensor.dtype.is_integer() else _FLOAT_DATA_LIMIT
        if tensor.nbytes > limit:
            held.append((value, tensor))
            graph.initializers.pop(value.name)
            value.const_value = None
            if value not in graph.inputs:
                graph.inputs.append(value)
    try:
        return func(ir.serde.serialize_model(model))
    finally:
        for value, tensor in held:
            value.const_value = tensor
            graph.register_initializer(value)
        del graph.inputs[n_inputs:]



@functools.cache
def runtime_max_ir_version() -> int:
    """The newest ONNX IR version the installed onnxruntime accepts (probed once).

    The onnx package may stamp models with a newer IR version than onnxruntime reads,
    though the graph uses nothing new; outputs are stamped with at most this version.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    for version in range(onnx.IR_VERSION, 6, -1):
        probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=version)
        try:
            ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
            return version
        except Exception:  # noqa: BLE001 - "Unsupported model IR version": try the next lower one
            continue
    return 7


def stamp_runtime_ir_version(model: ir.Model) -> None:
    model.ir_version = min(model.ir_version, runtime_max_ir_version())


def save_model(model: ir.Model, path: str | os.PathLike) -> pathlib.Path:
    """Write ``model`` so that onnxruntime can run it; large weights go beside it."""
    path = pathlib.Path(path)
    stamp_runtime_ir_version(model)
    weight_bytes = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    if weight_bytes > EXTERNAL_DATA_THRESHOLD:
        ir.save(model, path, external_data=path.name + ".data")
    else:
        ir.save(model, path)
    return path
