"""Load an untrusted ONNX file into onnx-ir, normalized for the passes and targets.

What loading guarantees to everything downstream:
- the protobuf parsed, passed the ONNX checker and the safety checks in ``nncc.safety``;
- initializers are constants, never graph inputs (old opsets listed them as both);
- weights computed by Constant / ConstantOfShape nodes are folded into initializers;
- every graph input has a static shape (``--input-shape`` fixes dynamic ones; a dimension an
  exporter wrote as ``-1`` or ``0`` is dynamic);
- a scalar input fixed by ``--input-value`` is a constant, no longer a graph input;
- once the input shapes are fixed, ``Shape``-driven chains (Shape -> Gather -> Concat ->
  Reshape) are folded, and every ``If`` whose condition became constant is replaced by its
  branch (``nncc.control_flow``), so the branch's layers are ordinary layers;
- shapes are inferred for every value, inside If/Loop/Scan bodies too.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re

import google.protobuf.message
import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto
import onnx_ir.passes.common as common_passes

from nncc.control_flow import fold_holding_ifs, specialize_control_flow
from nncc.errors import NnccError
from nncc.files import regular_file
from nncc.shapes import first_line, infer_shapes, set_aside_ort_default_domain_ops  # infer_shapes: callers import it from here too
from nncc.validate import validate
from nncc.folding import fold_weight_constants
from nncc.safety import check_fields, check_tensors

# protobuf's cap on one serialized message: a larger .onnx file cannot be a model.
MAX_PROTOBUF_BYTES = (2 << 30) - 1
# Weights above this are saved beside the model file (save_model): streamed, not copied.
SAVE_EXTERNAL_DATA_BYTES = 64 << 20


def parse_input_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1x3x224x224", ...]`` -> ``{"x": (1, 3, 224, 224)}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or ():
        name, sep, dims = spec.rpartition("=")
        if not sep or not name or not re.fullmatch(r"\d+(x\d+)*", dims):
            raise NnccError("--input-shape", f"'{spec}' is not NAME=DxDx... (e.g. input=1x3x224x224)")
        shapes[name] = tuple(int(d) for d in dims.split("x"))
    return shapes


def parse_input_values(specs: list[str] | tuple[str, ...] | None) -> dict[str, int | float | bool]:
    """``["sr=16000", "gain=0.5", "flag=true"]`` -> ``{"sr": 16000, "gain": 0.5, "flag": True}``."""
    values: dict[str, int | float | bool] = {}
    for spec in specs or ():
        name, sep, text = spec.rpartition("=")
        text = text.strip()
        if not sep or not name or not text:
            raise NnccError("--input-value", f"'{spec}' is not NAME=VALUE (e.g. sr=16000)")
        if text.lower() in ("true", "false"):
            values[name] = text.lower() == "true"
            continue
        try:
            values[name] = int(text)
        except ValueError:
            try:
                values[name] = float(text)
            except ValueError:
                raise NnccError("--input-value", f"'{spec}': '{text}' is not a number (e.g. sr=16000)") from None
    return values


def parse_trip_counts(specs: list[str] | tuple[str, ...] | None) -> dict[str, int]:
    """``["decode=32"]`` -> ``{"decode": 32}``: trips of Loops whose count is known only at run time."""
    counts: dict[str, int] = {}
    for spec in specs or ():
        name, sep, text = spec.rpartition("=")
        if not sep or not name or not re.fullmatch(r"\s*\d+\s*", text):
            raise NnccError("--trip-count", f"'{spec}' is not NODE=N with N a whole number (e.g. decode=32)")
        counts[name.strip()] = int(text)
    return counts


def read_proto(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse and validate the protobuf without reading any external data."""
    path = pathlib.Path(path)
    size = regular_file(path).st_size  # a folder, FIFO or device is named, never opened
    if size > MAX_PROTOBUF_BYTES:
        # protobuf cannot hold more: the file is not a model, and reading it all would be wasted.
        raise NnccError(path, f"is {size:,} bytes; an ONNX protobuf holds at most {MAX_PROTOBUF_BYTES:,} "
                              "(larger weights go in external data files)")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (google.protobuf.message.DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as e:
        raise NnccError(path, f"not an ONNX model: protobuf parse failed ({type(e).__name__}); is the file truncated or corrupt?") from None
    if not proto.HasField("graph") or not proto.graph.output:
        raise NnccError(path, "not an ONNX model: no graph with outputs")
    if not proto.opset_import:
        raise NnccError(path, "not an ONNX model: no opset_import")
    check_fields(proto, path)
    _check_graph_types(proto.graph, path)
    check_tensors(proto, path)
    try:
        # By path, so external data is checked relative to the model's folder, not the cwd.
        onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError) as e:
        # onnxruntime's own default-domain ops (nncc.ops.ORT_DEFAULT_DOMAIN) have no ONNX schema
        # at the model's opset: check everything else, with those set aside.
        aside = onnx.ModelProto()
        aside.CopyFrom(proto)
        if not set_aside_ort_default_domain_ops(aside):
            raise NnccError(path, first_line(str(e))) from None
        try:
            onnx.checker.check_model(aside)
        except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError) as again:
            raise NnccError(path, first_line(str(again))) from None
    return proto


def _check_graph_types(graph: onnx.GraphProto, path: pathlib.Path) -> None:
    """A graph input or output typed as a tensor of UNDEFINED elements: onnx's checker lets it
    pass, then shape inference and sample inputs have no element type to work with."""
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for value in values:
            if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type == TensorProto.UNDEFINED:
                raise NnccError(path, f"{kind} '{value.name}' has no element type (elem_type 0, UNDEFINED)")


def load_model(
    path: str | os.PathLike,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    *,
    input_values: dict[str, object] | None = None,
    fold: bool = True,
) -> ir.Model:
    """Load, validate and normalize ``path`` (see the module docstring).

    ``input_values`` fixes scalar inputs (``{"sr": 16000}``): they become constants, and an
    If that tests them is specialized to its branch (only when ``fold``)."""
    path = pathlib.Path(path)
    proto = read_proto(path)
    model = ir.serde.deserialize_model(proto)
    ir.external_data.set_base_dir(model.graph, str(path.parent))
    del proto
    common_passes.RemoveInitializersFromInputsPass()(model)
    _nonpositive_dims_dynamic(model)
    fix_input_values(model, input_values or {}, input_shapes or {})
    if fold:
        # Ifs are kept from onnxscript's own inlining: nncc.control_flow names the branch's values.
        try:
            fold_holding_ifs(model, fold_weight_constants)
        except NnccError as e:  # the created-tensor cap names no file: this one
            raise NnccError(path, e.what) from None
    fix_input_shapes(model, input_shapes or {}, path)
    if fold and _has_shape_or_control_flow(model):
        # Shape-driven chains fold only once the shapes are known, and an If's condition may be
        # one of them; a dead branch may not even infer (silero's), so lenient until the end.
        lenient = functools.partial(infer_shapes, where=path, strict=False)
        lenient(model)
        specialize_control_flow(model, fold_weight_constants, lenient)
    try:
        infer_shapes(model, path)
    except NnccError as e:
        raise NnccError(path, e.what + _if_input_hint(model)) from None
    validate(model, path)
    freeze_weights(model)
    return model


def copy_model(model: ir.Model) -> ir.Model:
    """A copy of a loaded model whose graph can be rewritten without touching ``model``: new
    nodes and values, the same weight tensors (a pass replaces a weight, never writes into one:
    :func:`freeze_weights` makes an array written in place raise). No serialization, no second
    copy of the weights: compare copies the model once per target."""
    return model.clone()


def freeze_weights(model: ir.Model) -> None:
    """Make the numpy arrays behind ``model``'s initializers read-only, so that code writing
    into a weight shared by copies (:func:`copy_model`) fails loudly instead of changing them all."""
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            raw = getattr(tensor, "raw", None)
            if isinstance(raw, np.ndarray):
                raw.flags.writeable = False


def _if_input_hint(model: ir.Model) -> str:
    """When an If still tests a scalar graph input, a hint to fix it (both branches must infer)."""
    scalars = [v.name for v in model.graph.inputs if v.shape is not None and all(d == 1 for d in v.shape)]
    ifs = [n for n in model.graph if n.op_type == "If"]
    if not scalars or not ifs:
        return ""
    names = " or ".join(f"--input-value {name}=VALUE" for name in scalars)
    return f" (an If runs either branch; if its condition tests an input, fix it with {names})"


def _dynamic_dim(dim: object) -> bool:
    """An exporter's way of writing "unknown": a symbol, nothing, or a ``dim_value`` of -1 or 0."""
    return not isinstance(dim, int) or dim <= 0


def _nonpositive_dims_dynamic(model: ir.Model) -> None:
    """Read ``dim_value: -1`` / ``0`` as a dynamic dimension, on every value of every graph
    (so that the folder never turns ``Shape`` of such a value into a constant holding -1)."""
    for graph in model.graphs():
        values = [*graph.inputs, *graph.outputs, *(v for node in graph for v in node.outputs)]
        for value in values:
            if value.shape is not None and any(isinstance(d, int) and d <= 0 for d in value.shape):
                value.shape = ir.Shape([ir.SymbolicDim(None) if isinstance(d, int) and d <= 0 else d for d in value.shape])


def _has_shape_or_control_flow(model: ir.Model) -> bool:
    return any(node.op_type in ("Shape", "Size", "If", "Loop", "Scan") for graph in model.graphs() for node in graph)


def fix_input_values(model: ir.Model, values: dict[str, object], shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """Make each named scalar graph input a constant of the given value (``--input-value``)."""
    by_name = {v.name: v for v in model.graph.inputs}
    for name, raw in values.items():
        if name not in by_name:
            raise NnccError("--input-value", f"model has no input '{name}' (inputs: {', '.join(by_name) or 'none'})")
        if shapes and name in shapes:
            raise NnccError("--input-value", f"input '{name}' is given by both --input-shape and --input-value")
        value = by_name[name]
        dims = list(value.shape) if value.shape is not None else []
        if any(isinstance(d, int) and d > 1 for d in dims):
            raise NnccError("--input-value", f"input '{name}' has shape {'x'.join(map(str, dims))}; --input-value fixes scalar inputs only")
        dtype = value.dtype or ir.DataType.FLOAT
        if not dtype.is_floating_point() and not dtype.is_integer() and dtype != ir.DataType.BOOL:
            raise NnccError("--input-value", f"input '{name}' is {dtype.name}; --input-value fixes numeric inputs only")
        if dtype.is_integer() and (isinstance(raw, float) and not float(raw).is_integer()):
            raise NnccError("--input-value", f"input '{name}' is {dtype.name}, got {raw}")
        array = np.array(raw).astype(dtype.numpy()).reshape([1] * len(dims))
        if dtype.is_integer() and int(array.item()) != raw:
            raise NnccError("--input-value", f"input '{name}' is {dtype.name}: {raw} does not fit")
        model.graph.inputs.remove(value)
        value.shape = ir.Shape(array.shape)
        value.const_value = ir.tensor(array, name=name)
        model.graph.register_initializer(value)


def fix_input_shapes(model: ir.Model, shapes: dict[str, tuple[int, ...]], where: object) -> None:
    """Give every graph input a static shape, from ``shapes`` where named.

    A dimension written as -1 or 0 counts as dynamic, like a symbolic or missing one."""
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
                    if not _dynamic_dim(old) and old != new:
                        raise NnccError("--input-shape", f"input '{value.name}' axis {axis} is fixed to {old} in the model, got {new}")
            value.shape = ir.Shape(dims)
            continue
        if value.shape is None:
            raise NnccError(where, f"input '{value.name}' has no shape; give it with --input-shape {value.name}=1x...")
        dynamic = [(axis, d) for axis, d in enumerate(value.shape) if _dynamic_dim(d)]
        if dynamic:
            axis, dim = dynamic[0]
            label = f"'{dim.value}' " if isinstance(dim, ir.SymbolicDim) and dim.value else ""
            example = "x".join("1" if _dynamic_dim(d) else str(d) for d in value.shape)
            raise NnccError(where, f"input '{value.name}' has dynamic dimension {label}at axis {axis}; give it with --input-shape {value.name}={example}")


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
    """Write ``model`` so that onnxruntime can run it; large weights go beside it
    (``<name>.data``), written one tensor at a time: inside the protobuf they would be held
    twice more in memory while it is serialized (a 100 MB ResNet-50 added 290 MB)."""
    path = pathlib.Path(path)
    stamp_runtime_ir_version(model)
    weight_bytes = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    if weight_bytes > SAVE_EXTERNAL_DATA_BYTES:
        ir.save(model, path, external_data=path.name + ".data")
    else:
        ir.save(model, path)
    return path
