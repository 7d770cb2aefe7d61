"""Checks on untrusted ONNX protobufs, run before any tensor is read.

External data must stay inside the model's folder (no ``..``, no absolute path, no
symlink), and every tensor's byte size must match dims x dtype, so a crafted file can
neither read outside its folder nor make us allocate or map more than it declares.
"""

from __future__ import annotations

import math
import os
import pathlib
import stat

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto

from nncc.errors import NnccError
from nncc.files import file_kind

# Bits per element for the sub-byte types numpy cannot describe.
_SUB_BYTE_BITS = {
    getattr(TensorProto, name): bits
    for name, bits in [("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2)]
    if hasattr(TensorProto, name)
}


# Element types onnx-ir reads (its enum is what the loader turns every type number into).
_KNOWN_DTYPES = frozenset(int(t) for t in ir.DataType)


def tensor_nbytes(tensor: TensorProto) -> int | None:
    """Bytes dims x dtype take in raw form; None for strings and unknown types."""
    count = math.prod(tensor.dims)
    if tensor.data_type in _SUB_BYTE_BITS:
        return (count * _SUB_BYTE_BITS[tensor.data_type] + 7) // 8
    if tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    return count * itemsize


def _typed_field_count(tensor: TensorProto) -> int:
    return max(
        len(tensor.float_data), len(tensor.int32_data), len(tensor.int64_data),
        len(tensor.double_data), len(tensor.uint64_data),
    )


def _iter_tensors(graph: onnx.GraphProto, path: str):
    """Every TensorProto in a graph: initializers, node attributes, subgraphs."""
    for t in graph.initializer:
        yield f"{path}initializer '{t.name}'", t
    for node in graph.node:
        where = f"{path}node '{node.name or node.op_type}' ({node.op_type})"
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield f"{where} attribute '{attr.name}'", attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                for i, t in enumerate(attr.tensors):
                    yield f"{where} attribute '{attr.name}'[{i}]", t
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _iter_tensors(attr.g, f"{where} subgraph '{attr.name}': ")
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _iter_tensors(g, f"{where} subgraph '{attr.name}': ")


def resolve_external_location(base_dir: pathlib.Path, location: str, where: str, model_path) -> pathlib.Path:
    """The file an external-data location names, refusing anything outside ``base_dir``."""
    if not location:
        raise NnccError(model_path, f"{where}: external data has no location")
    if "\0" in location:
        # The OS cuts a path at its NUL byte: the file read would not be the one named.
        raise NnccError(model_path, f"{where}: external data location {location!r} contains a NUL byte")
    rel = pathlib.PurePosixPath(location.replace("\\", "/"))
    if rel.is_absolute() or os.path.isabs(location) or (len(location) > 1 and location[1] == ":"):
        raise NnccError(model_path, f"{where}: external data location '{location}' is absolute; it must be relative to the model's folder")
    if ".." in rel.parts:
        raise NnccError(model_path, f"{where}: external data location '{location}' leaves the model's folder ('..')")
    try:
        return _confined_regular_file(base_dir.resolve(), rel, location, where, model_path)
    except OSError as e:  # a name too long, a component that is a file, a folder we may not read
        raise NnccError(model_path, f"{where}: external data location '{location[:80]}' cannot be read: {e.strerror or e}") from None


def _confined_regular_file(base: pathlib.Path, rel: pathlib.PurePosixPath, location: str, where: str, model_path) -> pathlib.Path:
    target = base.joinpath(*rel.parts)
    # No component may be a symlink: a link could point anywhere on the machine.
    probe = base
    for part in rel.parts:
        probe = probe / part
        if probe.is_symlink():
            raise NnccError(model_path, f"{where}: external data location '{location}' goes through a symlink ({probe.name})")
    if not target.resolve().is_relative_to(base):
        raise NnccError(model_path, f"{where}: external data location '{location}' leaves the model's folder")
    if not target.exists():
        raise NnccError(model_path, f"{where}: external data file '{location}' not found beside the model")
    info = target.stat()
    if not stat.S_ISREG(info.st_mode):
        # A folder, a FIFO (reading it would block) or a device (/dev/zero never ends).
        raise NnccError(model_path, f"{where}: external data location '{location}' is {file_kind(info.st_mode)}, not a regular file")
    if info.st_nlink > 1:
        # A hard link is a second name of a file that may live anywhere on the same disk
        # (one a crafted archive linked in); its other names cannot be found to check them.
        raise NnccError(model_path, f"{where}: external data file '{location}' has {info.st_nlink} hard links; "
                                    "it may be a file from outside the model's folder (copy it to give it one name)")
    return target


def check_tensors(model: onnx.ModelProto, model_path: str | os.PathLike) -> None:
    """Validate every tensor's declared size and every external-data reference."""
    base_dir = pathlib.Path(model_path).parent
    for where, t in _iter_tensors(model.graph, ""):
        if any(d < 0 for d in t.dims):
            raise NnccError(model_path, f"{where}: negative dimension in {list(t.dims)}")
        expected = tensor_nbytes(t)
        if t.data_location == TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            target = resolve_external_location(base_dir, info.get("location", ""), where, model_path)
            try:
                offset = int(info.get("offset", 0))
                length = int(info["length"]) if "length" in info else None
            except ValueError:
                raise NnccError(model_path, f"{where}: external data offset/length are not integers") from None
            file_size = target.stat().st_size
            if offset < 0 or (length is not None and length < 0):
                raise NnccError(model_path, f"{where}: external data offset {offset} / length {length} is negative")
            if length is None:
                length = file_size - offset
            if expected is not None and length != expected:
                raise NnccError(model_path, f"{where}: external data holds {length} bytes but dims {list(t.dims)} x {onnx.helper.tensor_dtype_to_string(t.data_type)} need {expected}")
            if offset < 0 or offset + length > file_size:
                raise NnccError(model_path, f"{where}: external data range {offset}..{offset + length} exceeds '{info['location']}' ({file_size} bytes)")
        elif expected is not None:
            if t.HasField("raw_data"):
                if len(t.raw_data) != expected:
                    raise NnccError(model_path, f"{where}: raw data holds {len(t.raw_data)} bytes but dims {list(t.dims)} x {onnx.helper.tensor_dtype_to_string(t.data_type)} need {expected}")
            else:
                count = _typed_field_count(t)
                n = math.prod(t.dims)
                # Packed types (fp16 in int32_data, complex in pairs) store more or fewer
                # entries per element; only an empty tensor body for a non-empty shape is wrong.
                if n > 0 and count == 0 and t.data_type not in (TensorProto.STRING,):
                    raise NnccError(model_path, f"{where}: tensor of shape {list(t.dims)} has no data")


def check_fields(model: onnx.ModelProto, model_path: str | os.PathLike) -> None:
    """Every name, op type, domain and string attribute is UTF-8 text, and every tensor and
    value type is a data type onnx-ir knows.

    ONNX is proto2, whose strings and enums protobuf does not validate: a flipped bit in a name
    parses, then onnx's checker fails to turn its own message about that name into text; an
    element type of 33 passes the checker, then fails deep in onnx-ir's reader."""
    found = _first_bad_field(model, "")
    if found is not None:
        where, problem = found
        raise NnccError(model_path, f"{where} {problem}; is the file corrupt?")


_DTYPE_FIELDS = ("data_type", "elem_type")


def _first_bad_field(message, where: str) -> tuple[str, str] | None:
    for field, value in message.ListFields():
        if field.type not in (field.TYPE_STRING, field.TYPE_MESSAGE) and field.name not in _DTYPE_FIELDS:
            continue
        items = list(value) if field.is_repeated else [value]
        for i, item in enumerate(items):
            label = f"{where}{'.' if where else ''}{field.name}" + (f"[{i}]" if field.is_repeated else "")
            if field.type == field.TYPE_STRING:
                if isinstance(item, bytes):  # protobuf hands back bytes where they do not decode
                    return label, f"is not UTF-8 text ({item[:40]!r})"
            elif field.type != field.TYPE_MESSAGE:
                if item not in _KNOWN_DTYPES:
                    return label, f"is {item}, not an ONNX data type"
            else:
                name = getattr(item, "name", "") if field.name in ("node", "initializer", "input", "output") else ""
                found = _first_bad_field(item, f"{label} '{name}'" if isinstance(name, str) and name else label)
                if found is not None:
                    return found
    return None


# A pass may create tensors (folded constants, factorized weights); a crafted model could
# ask for a ConstantOfShape of 10^12 elements. Nothing a pass creates may exceed this.
MAX_CREATED_TENSOR_BYTES = int(os.environ.get("NNCC_MAX_TENSOR_BYTES", 4 << 30))


def check_created_tensor(nbytes: int, where: object, what: str) -> None:
    if nbytes > MAX_CREATED_TENSOR_BYTES:
        raise NnccError(where, f"{what} would create a tensor of {nbytes:,} bytes, over the {MAX_CREATED_TENSOR_BYTES:,}-byte cap (NNCC_MAX_TENSOR_BYTES)")
