"""Corrupt and hostile models never cost a user a traceback: zoo models mutated the ways real
corruption and crafted files do (bit flips and truncation of the bytes; changed dtypes, dims,
attributes, opsets and names; dropped nodes, duplicated outputs, dangling inputs; NaN/Inf
weights) are compiled by ``nncc compile`` in-process for one of the six targets. Each run ends
in exit 0, exit 1 with a failed gate, or exit 2 with exactly one `nncc: error:` line that is not
the last-resort handler's; stderr holds nothing else but `nncc: warning:` lines (fd 2 and
Python warnings included), and no run takes longer than its time budget."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import pathlib
import resource
import shutil
import signal
import tempfile
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nncc import models
from nncc.cli import main

LAST_RESORT = "(rerun with --debug for a traceback)"
MODELS = ["lenet5", "lenet_caffe", "convnet", "tdnn", "bert_tiny"]
TARGETS = ["mobile-cpu", "reram", "sparse-tc", "ucnn", "hypar", "truenorth"]
# The slowest unmutated case (tdnn on reram) takes ~7 s on a loaded 2-core machine; a case over
# this budget is a hang (a loop that never ends, a 10^12-element tensor being filled).
CASE_BUDGET_S = 60
# Address space a case may add: far above any unmutated model's needs (~0.5 GB), far below the
# machine's memory, so an allocation a crafted dim asks for fails as MemoryError (a finding)
# instead of taking the machine down.
CASE_MEMORY_BYTES = 6 << 30

INTERESTING_INTS = [-(2**63), -(2**31), -3, -1, 0, 1, 2, 3, 5, 64, 2**31 - 1, 2**40, 2**63 - 1]
INTERESTING_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-45, 1e38, 3.4e38]
HUGE_DIMS = [0, -1, -7, 2**31, 2**40, 2**62, 10**12]
DTYPES = [TensorProto.UNDEFINED, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE, TensorProto.INT8,
          TensorProto.UINT8, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING,
          TensorProto.COMPLEX64, TensorProto.FLOAT8E4M3FN, 99]
# Attributes the zoo's ops carry (or could): list-valued, int-valued, float-valued.
LIST_ATTRS = ["kernel_shape", "strides", "pads", "dilations", "perm", "axes", "output_padding"]
INT_ATTRS = ["group", "axis", "transA", "transB", "keepdims", "ceil_mode", "count_include_pad", "stash_type"]
FLOAT_ATTRS = ["epsilon", "alpha", "beta", "momentum", "min", "max"]
# Passes that need no labelled data and take well under a second on the zoo's small models.
PASSES = ["fold-batchnorm", "fold-constants", "eliminate-dead-code", "prune", "prune-channels",
          "weight-share", "vector-sparsify", "factorize", "quantize"]


class Zoo(dict):
    """The zoo models' bytes, by name; shown by name only when hypothesis prints a failing case."""

    def __repr__(self) -> str:
        return f"Zoo({', '.join(self)})"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Zoo:
    folder = tmp_path_factory.mktemp("zoo")
    return Zoo({name: models.export(name, folder / f"{name}.onnx").read_bytes() for name in MODELS})


# --- mutations: each is (kind, *plain values) so hypothesis can print and shrink it -------------

def _pick(items, fraction: float):
    return items[min(int(fraction * len(items)), len(items) - 1)] if items else None


def _float_inits(model: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]


def _set_init_dtype(model, where, dtype, convert):
    """An initializer's data_type changed: its bytes kept (a size mismatch when the widths
    differ) or converted (valid bytes of a type its node may not take)."""
    init = _pick(list(model.graph.initializer), where)
    if init is None:
        return
    if convert and dtype not in (TensorProto.UNDEFINED, TensorProto.STRING, 99) and init.data_type == TensorProto.FLOAT:
        array = numpy_helper.to_array(init)
        np_type = helper.tensor_dtype_to_np_dtype(dtype)
        with np.errstate(all="ignore"):
            init.CopyFrom(numpy_helper.from_array(np.nan_to_num(array).astype(np_type), init.name))
        init.data_type = dtype  # bfloat16/float8 arrays come back as their storage type
    else:
        init.data_type = dtype


def _set_value_dtype(model, where, dtype, _):
    values = [*model.graph.input, *model.graph.output]
    value = _pick(values, where)
    if value is not None:
        value.type.tensor_type.elem_type = dtype


def _drop_node(model, where, *_):
    if model.graph.node:
        del model.graph.node[min(int(where * len(model.graph.node)), len(model.graph.node) - 1)]


def _bypass_node(model, where, *_):
    """A node removed and its readers rewired to its first input: a valid graph whose shapes no
    longer agree (a Conv reading what its predecessor read), reaching validation and the targets."""
    nodes = [n for n in model.graph.node if n.input and n.output]
    node = _pick(nodes, where)
    if node is None:
        return
    source, gone = node.input[0], set(node.output)
    model.graph.node.remove(node)
    for other in model.graph.node:
        for i, name in enumerate(other.input):
            if name in gone:
                other.input[i] = source
    for output in model.graph.output:
        if output.name in gone:
            output.name = source


def _duplicate_output(model, where, as_node_output, _):
    """A graph output listed twice, or a node writing a value another node already writes."""
    if as_node_output and len(model.graph.node) > 1:
        node = _pick(list(model.graph.node[1:]), where)
        node.output[0] = model.graph.node[0].output[0]
    else:
        model.graph.output.append(model.graph.output[0])


def _set_attribute(model, where, name_fraction, value_fraction, length):
    node = _pick(list(model.graph.node), where)
    if node is None:
        return
    # Mostly an attribute the node has (an unknown one stops at onnx's checker).
    own = [a.name for a in node.attribute]
    name = _pick(own, name_fraction / 0.7) if own and name_fraction < 0.7 else \
        _pick(LIST_ATTRS + INT_ATTRS + FLOAT_ATTRS, (name_fraction - 0.7) / 0.3 if own else name_fraction)
    existing = next((a for a in node.attribute if a.name == name), None)
    if name in LIST_ATTRS or (existing is not None and existing.type == onnx.AttributeProto.INTS):
        value = [_pick(INTERESTING_INTS, (value_fraction * (i + 3)) % 1.0) for i in range(length)]
        attribute = helper.make_attribute(name, value, attr_type=onnx.AttributeProto.INTS)
    elif name in FLOAT_ATTRS or (existing is not None and existing.type == onnx.AttributeProto.FLOAT):
        attribute = helper.make_attribute(name, _pick(INTERESTING_FLOATS, value_fraction))
    else:
        attribute = helper.make_attribute(name, _pick(INTERESTING_INTS, value_fraction))
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, attribute])


def _poison_weights(model, where, value_fraction, share):
    """NaN, Inf, denormal or huge values in a share of a float initializer."""
    init = _pick(_float_inits(model), where)
    if init is None:
        return
    if len(init.raw_data) != 4 * math.prod(init.dims):
        return  # an earlier mutation changed its dims: no array to poison
    array = numpy_helper.to_array(init).copy()
    flat = array.reshape(-1)
    flat[: max(1, int(share * flat.size))] = _pick(INTERESTING_FLOATS, value_fraction)
    init.CopyFrom(numpy_helper.from_array(array, init.name))


def _set_dim(model, where, which, dim_fraction, symbolic):
    """A dim of an input, output, value_info or initializer set to 0, negative, huge or a symbol."""
    dim = _pick(HUGE_DIMS, dim_fraction)
    if which == "initializer":
        init = _pick(list(model.graph.initializer), where)
        if init is not None and init.dims:
            init.dims[int(dim_fraction * 997) % len(init.dims)] = max(dim, -(2**63))
        return
    values = {"input": model.graph.input, "output": model.graph.output, "value_info": model.graph.value_info}[which]
    value = _pick(list(values), where)
    if value is None or not value.type.tensor_type.shape.dim:
        return
    dims = value.type.tensor_type.shape.dim
    target = dims[int(dim_fraction * 997) % len(dims)]
    if symbolic:
        target.dim_param = "n"
    else:
        target.dim_value = dim


def _declare_value_info(model, where, dtype, dim_fraction, rank):
    """A declared type for an intermediate value (exporters write them): wrong rank, dtype or dims."""
    node = _pick(list(model.graph.node), where)
    if node is None or not node.output:
        return
    dims = [_pick(HUGE_DIMS + [1, 3, 8], (dim_fraction * (i + 7)) % 1.0) for i in range(rank)]
    model.graph.value_info.append(helper.make_tensor_value_info(node.output[0], dtype, dims))


def _set_opset(model, version_fraction, drop, domain):
    if drop:
        del model.opset_import[:]
        return
    version = _pick([0, 1, 5, 9, 11, 13, 16, 22, 23, 99, 2**31 - 1, -1], version_fraction)
    if domain or not model.opset_import:
        model.opset_import.append(helper.make_opsetid(domain, version))
    else:
        model.opset_import[0].version = version


def _rename_input(model, where, dangling, _):
    """A graph input renamed without its readers (they dangle), or a node reading a name nothing writes."""
    if dangling:
        node = _pick(list(model.graph.node), where)
        if node is not None and node.input:
            node.input[0] = "nowhere"
    elif model.graph.input:
        model.graph.input[0].name = "renamed"


def _add_unused_input(model, where, dtype, _):
    model.graph.input.append(helper.make_tensor_value_info("unused", dtype, [1, _pick(HUGE_DIMS, where)]))


def _set_op_type(model, where, op_fraction, custom_domain):
    node = _pick(list(model.graph.node), where)
    if node is not None:
        node.op_type = _pick(["Foo", "Conv", "MatMul", "Relu", "Gemm", "Reshape", "Loop", "If", "Softmax"], op_fraction)
        if custom_domain:
            node.domain = "com.example"


def _set_ir_version(model, version_fraction, *_):
    model.ir_version = _pick([0, 1, 3, 7, 11, 99], version_fraction)


PROTO_MUTATIONS = {
    "init-dtype": (_set_init_dtype, st.tuples(st.floats(0, 1), st.sampled_from(DTYPES), st.booleans())),
    "value-dtype": (_set_value_dtype, st.tuples(st.floats(0, 1), st.sampled_from(DTYPES), st.none())),
    "drop-node": (_drop_node, st.tuples(st.floats(0, 1), st.none(), st.none())),
    "bypass-node": (_bypass_node, st.tuples(st.floats(0, 1), st.none(), st.none())),
    "duplicate-output": (_duplicate_output, st.tuples(st.floats(0, 1), st.booleans(), st.none())),
    "attribute": (_set_attribute, st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.integers(0, 6))),
    "nan-inf-weights": (_poison_weights, st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))),
    "dim": (_set_dim, st.tuples(st.floats(0, 1), st.sampled_from(["input", "output", "value_info", "initializer"]),
                                st.floats(0, 1), st.booleans())),
    "value-info": (_declare_value_info, st.tuples(st.floats(0, 1), st.sampled_from(DTYPES), st.floats(0, 1), st.integers(0, 5))),
    "opset": (_set_opset, st.tuples(st.floats(0, 1), st.sampled_from([False, False, False, True]),
                                    st.sampled_from(["", "ai.onnx.ml", "com.microsoft"]))),
    "rename-input": (_rename_input, st.tuples(st.floats(0, 1), st.booleans(), st.none())),
    "unused-input": (_add_unused_input, st.tuples(st.floats(0, 1), st.sampled_from(DTYPES), st.none())),
    "op-type": (_set_op_type, st.tuples(st.floats(0, 1), st.floats(0, 1), st.booleans())),
    "ir-version": (_set_ir_version, st.tuples(st.floats(0, 1), st.none(), st.none())),
}


# Mutations that often leave a model the checker accepts come up more: they are the ones that
# reach validation, the passes and the targets (the rest mostly stop at onnx's checker).
WEIGHTED_KINDS = sorted(PROTO_MUTATIONS) + ["nan-inf-weights", "nan-inf-weights", "attribute", "attribute", "bypass-node",
                                            "value-info", "dim", "init-dtype"]


def _weight_ranges(model: onnx.ModelProto, data: bytes) -> list[tuple[int, int]]:
    """Where initializer payloads lie in the serialized bytes (the rest is structure)."""
    ranges = []
    for init in model.graph.initializer:
        if len(init.raw_data) >= 64:
            start = data.find(init.raw_data)
            if start >= 0:
                ranges.append((start, start + len(init.raw_data)))
    return sorted(ranges)


def _structure_offset(data: bytes, weights: list[tuple[int, int]], fraction: float) -> int:
    """The ``fraction``-th byte among those outside the weight payloads: flips there hit field
    tags, lengths, names and dims, not just a weight's value."""
    gaps, at = [], 0
    for start, end in weights:
        gaps.append((at, start))
        at = end
    gaps.append((at, len(data)))
    total = sum(end - start for start, end in gaps)
    index = int(fraction * total)
    for start, end in gaps:
        if index < end - start:
            return start + index
        index -= end - start
    return len(data) - 1


def _flip_bits(data: bytes, weights, flips: list[tuple[float, int, bool]]) -> bytes:
    out = bytearray(data)
    for fraction, bit, in_structure in flips:
        at = _structure_offset(data, weights, fraction) if in_structure else min(int(fraction * len(out)), len(out) - 1)
        out[at] ^= 1 << bit
    return bytes(out)


def _truncate(data: bytes, weights, fraction: float, in_structure: bool) -> bytes:
    at = _structure_offset(data, weights, fraction) if in_structure else int(fraction * len(data))
    return data[:at]


@dataclasses.dataclass
class Case:
    model: str
    target: str
    proto: list[tuple]            # (kind, args) applied to the parsed model, in order
    flips: list[tuple[float, int, bool]]
    truncate: tuple[float, bool] | None
    passes: tuple[str, ...] = ()  # user passes (-p) run on the mutated model before the target's own

    def build(self, original: bytes) -> bytes:
        model = onnx.ModelProto.FromString(original)
        for kind, args in self.proto:
            PROTO_MUTATIONS[kind][0](model, *args)
        data = model.SerializeToString() if self.proto else original
        weights = _weight_ranges(model, data) if self.flips or self.truncate else []
        if self.flips:
            data = _flip_bits(data, weights, self.flips)
        if self.truncate is not None:
            data = _truncate(data, weights, *self.truncate)
        return data


@st.composite
def cases(draw) -> Case:
    # Most cases mutate one layer only: a byte-level hit almost always stops the parse, which
    # would leave the loader's later checks, the passes and the targets untried.
    layer = draw(st.sampled_from(["proto", "proto", "proto", "proto", "bytes", "both"]))
    proto = draw(st.lists(st.sampled_from(WEIGHTED_KINDS).flatmap(
        lambda kind: st.tuples(st.just(kind), PROTO_MUTATIONS[kind][1])), min_size=1, max_size=3)) if layer != "bytes" else []
    flips, truncate = [], None
    if layer != "proto":
        flips = draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7), st.booleans()), max_size=4))
        truncate = draw(st.none() | st.tuples(st.floats(0, 1, exclude_max=True), st.booleans()))
        if not flips and truncate is None:
            flips = [(draw(st.floats(0, 1, exclude_max=True)), draw(st.integers(0, 7)), True)]
    passes = tuple(draw(st.lists(st.sampled_from(PASSES), max_size=2)))
    return Case(draw(st.sampled_from(MODELS)), draw(st.sampled_from(TARGETS)), proto, flips, truncate, passes)


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no handler in nncc can swallow it."""


@contextlib.contextmanager
def _fd2_captured():
    """What anything (onnx's C++, onnxruntime) writes to file descriptor 2 while the case runs."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        written: list[bytes] = []
        try:
            yield written
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            written.append(sink.read())


@contextlib.contextmanager
def _memory_capped(extra: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if not os.path.exists("/proc/self/statm"):  # not Linux: no cap (the run is still timed)
        yield
        return
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (min(used + extra, hard) if hard != resource.RLIM_INFINITY else used + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _on_alarm(signum, frame):
    raise CaseTimeout


def run_case(case: Case, zoo: dict[str, bytes]) -> tuple[int, list[str]]:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="nncc-fuzz-"))
    try:
        model = folder / f"{case.model}.onnx"
        model.write_bytes(case.build(zoo[case.model]))
        return run_compile(model, case.target, folder / "out", case.passes, about=case)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_compile(model: pathlib.Path, target: str, out: pathlib.Path, passes=(), about: object = None) -> tuple[int, list[str]]:
    """``nncc compile`` in-process under the time and memory guards; fails unless it ends as the
    standard says (see the module docstring). Returns the exit code and the stderr lines."""
    about = about if about is not None else model
    args = ["compile", str(model), "-t", target, "-o", str(out), "--format", "json", "--verify", "1",
            *(arg for name in passes for arg in ("-p", name))]
    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(CASE_BUDGET_S)
    try:
        with (_fd2_captured() as raw, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()),
              warnings.catch_warnings(record=True) as caught, _memory_capped(CASE_MEMORY_BYTES)):
            warnings.simplefilter("always")
            code = main(args)
    except CaseTimeout:
        pytest.fail(f"nncc {' '.join(args[:4])} ran past its {CASE_BUDGET_S} s budget: {about}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    lines = err.getvalue().strip().splitlines()
    # What a user's terminal would show: Python warnings of the kinds shown by default, and raw
    # fd-2 writes, are stray output as much as a traceback is.
    shown = [f"{w.category.__name__}: {w.message}" for w in caught
             if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning))]
    assert not shown and not raw[0], f"stray stderr output {shown} {raw[0][:300]!r} for {about}"
    errors = [line for line in lines if not line.startswith("nncc: warning: ")]
    if code == 0:
        assert not errors, (errors, about)
    elif code == 1:
        assert len(errors) == 1 and errors[0].startswith("nncc: gate failed: "), (errors, about)
    else:
        assert code == 2 and len(errors) == 1, (code, errors, about)
        assert errors[0].startswith("nncc: error: ") and not errors[0].endswith(LAST_RESORT), (errors[0], about)
    return code, lines


FUZZ_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                          HealthCheck.function_scoped_fixture])


# Cases that reached the last-resort handler or printed stray output before their fix; kept as
# explicit examples so the fast suite replays them on every run.
FOUND = [
    # A flipped bit in an attribute name: onnx's checker raised UnicodeDecodeError on its own message.
    Case("lenet5", "mobile-cpu", [], [(0.53125, 7, True)], None),
    # A data_type (99, or 33 after bit flips) no enum holds: onnx-ir's reader raised SerdeError.
    Case("lenet5", "hypar", [("init-dtype", (0.1, 99, True))], [], None),
    Case("bert_tiny", "ucnn", [("value-dtype", (0.68, 99, None))], [], None),
    # An input of 10^12 (or 2^31 8-byte) elements: sample inputs raised MemoryError.
    Case("lenet5", "ucnn", [("unused-input", (0.86, TensorProto.BOOL, None))], [], None),
    Case("lenet5", "sparse-tc", [("unused-input", (0.46, TensorProto.UINT8, None))], [], None),
    # A graph input of UNDEFINED elements: shape inference raised ValueError.
    Case("bert_tiny", "mobile-cpu", [("value-dtype", (0.2, TensorProto.UNDEFINED, None))], [], None),
    # A Flatten axis of -2^63 or 2^40 (onnx's inference reads 32 bits of it): reram's calibration
    # run in onnxruntime raised its own Fail.
    Case("lenet5", "reram", [("attribute", (0.55, 0.55, 0.0, 0))], [(0.55, 0, False)], None),
    Case("convnet", "reram", [("attribute", (0.895, 0.303, 0.895, 3))], [], None, ("vector-sparsify",)),
    # NaN/Inf weights: numpy's RuntimeWarnings on stderr (verification, crossbar quantization).
    Case("lenet5", "mobile-cpu", [("nan-inf-weights", (0.91, 0.34, 0.14))], [], None),
    Case("convnet", "reram", [("nan-inf-weights", (0.3, 0.3, 0.0001))], [], None),
]


def _with_found(test):
    for case in reversed(FOUND):
        test = example(case=case)(test)
    return test


@settings(max_examples=100, **FUZZ_SETTINGS)
@given(case=cases())
@_with_found
def test_mutated_zoo_models_end_in_one_line(zoo, case):
    run_case(case, zoo)


@pytest.mark.slow
@settings(max_examples=1000, **FUZZ_SETTINGS)
@given(case=cases())
def test_a_thousand_mutated_zoo_models(zoo, case):
    run_case(case, zoo)


def test_the_guard_catches_the_last_resort(zoo, monkeypatch):
    """The assertion can fail: a loader that raises what nncc did not foresee is caught."""
    def broken(*args, **kwargs):
        raise KeyError("unforeseen")

    monkeypatch.setattr("nncc.driver.load_model", broken)
    with pytest.raises(AssertionError, match="rerun with --debug"):
        run_case(Case("lenet5", "mobile-cpu", [], [], None), zoo)


def test_a_huge_activation_is_refused_not_walked(tmp_path):
    """A MaxPool padded by 2^40 makes a 10^12-element activation: truenorth walked it and never
    finished (a hang the fuzzing found); now loading refuses it in one line naming the node."""
    pool = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], pads=[2**40, 0, 0, 0])
    graph = helper.make_graph([pool], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])])
    model = tmp_path / "pool.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), model)
    code, lines = run_compile(model, "truenorth", tmp_path / "out")
    assert code == 2 and "node 'pool' (MaxPool): output 'y' of shape [1, 3, 1099511627779, 3]" in lines[0], lines


def test_quantize_of_infinite_weights(zoo):
    """-inf in conv1's weights gives NaN activation ranges; the quantize pass refuses in one line
    (it raised ValueError into the last-resort handler on every target)."""
    run_case(Case("convnet", "mobile-cpu", [("nan-inf-weights", (0.0083, 0.3167, 1e-05))], [], None, ("quantize",)), zoo)
