"""The real-model corpus (tests/corpus.py): third-party models from pinned wheels.

Fast: every pinned file is there with its sha256, passes the ONNX checker and loads given its
input shapes. Slow: every corpus model compiled for every target, one table of costed MACs
against the model's MACs, unsupported ops or the one-line NnccError.
"""

from __future__ import annotations

import dataclasses
import inspect

import onnx
import pytest

import corpus
from nncc import loading
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc.loading import load_model
from nncc.registry import TARGETS


def load_kwargs(entry: corpus.Entry) -> dict:
    """The scalar input values (sr=16000), where loading takes them (``--input-value``)."""
    if entry.values and "input_values" in inspect.signature(load_model).parameters:
        return {"input_values": dict(entry.values)}
    return {}


def compile_options(entry: corpus.Entry) -> CompileOptions:
    """CompileOptions with the entry's input shapes, and its input values where the driver takes them."""
    shapes: dict = dict(entry.shapes)
    extra = {}
    if entry.values:
        if "input_values" in {f.name for f in dataclasses.fields(CompileOptions)}:
            extra["input_values"] = dict(entry.values)
        elif hasattr(loading, "InputShapes"):  # input shapes that carry the input values to load_model
            shapes = loading.InputShapes(shapes, input_values=dict(entry.values))
    return CompileOptions(verify_samples=0, input_shapes=shapes, **extra)


def test_corpus_has_ten_pinned_third_party_models_with_licenses():
    pinned = [corpus.ENTRY[n] for n in corpus.PINNED]
    assert len(pinned) >= 10
    for entry in pinned:
        assert entry.sha256 and len(entry.sha256) == 64, entry.name
        assert entry.license in {"MIT", "Apache-2.0"}, entry.name
    for project in corpus.WHEELS:
        license_file = corpus.CORPUS_DIR / project / corpus.WHEELS[project].license_file
        assert license_file.is_file(), f"{license_file} is missing: run `make install`"
    kinds = " ".join(e.exercises for e in pinned)
    for needed in ("If", "LSTM", "ConvInteger", "fp16", "Resize", "transformer"):
        assert needed in kinds, needed


def test_missing_file_fails_with_a_clear_message_not_a_skip(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `make install`"):
        corpus.path("ddddocr_det", corpus_dir=tmp_path)
    with pytest.raises(KeyError, match="no corpus model"):
        corpus.path("no-such-model")


@pytest.mark.parametrize("name", corpus.PINNED)
def test_pinned_file_is_there_with_its_sha256_and_passes_the_checker(name):
    p = corpus.path(name)
    assert corpus.sha256_file(p) == corpus.ENTRY[name].sha256, f"{p} differs from its pin: rerun `make install`"
    onnx.checker.check_model(str(p))


@pytest.mark.parametrize("name", corpus.PINNED)
def test_pinned_model_loads_with_its_input_shapes(name):
    entry = corpus.ENTRY[name]
    model = load_model(corpus.path(name), entry.shapes, **load_kwargs(entry))
    for value in model.graph.inputs:
        assert value.shape is not None and all(isinstance(d, int) for d in value.shape), value.name


def test_fp16_model_is_fp16_inside():
    model = onnx.load(str(corpus.path("ppocr_rec_fp16")))
    floats = [t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    floats += [a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute
               if a.name == "value" and a.t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and len(a.t.dims)]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT16 for t in floats)


def _one_line(message: str, width: int = 240) -> str:
    message = " ".join(message.split())
    return message if len(message) <= width else message[: width - 1] + "…"


def coverage_row(name: str, target: str) -> dict:
    """Compile ``name`` for ``target``: costed MACs against the model's, unsupported ops, or the NnccError."""
    entry = corpus.ENTRY[name]
    row = {"model": name, "target": target}
    model_path = corpus.path(name)
    try:
        result = compile_model(model_path, TARGETS.create(target), [], compile_options(entry))
    except NnccError as e:
        row["error"] = _one_line(e.what if e.where == str(model_path) else str(e))  # the model's path is the row's
        return row
    except Exception as e:  # noqa: BLE001 - reported in the table, then failed on
        row["crash"] = _one_line(f"{type(e).__name__}: {e}")
        return row
    row["model_macs"] = int(result.report["model"]["original"]["macs"])
    row["costed_macs"] = int(result.cost.macs)
    row["unsupported"] = sorted({u.op for u in result.cost.unsupported})
    return row


def render(rows: list[dict]) -> str:
    lines = ["| model | target | model MACs | costed MACs | costed | unsupported ops / error |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r or "crash" in r:
            what = f"NnccError: {r['error']}" if "error" in r else f"CRASH {r['crash']}"
            lines.append(f"| {r['model']} | {r['target']} | | | | {what} |")
            continue
        share = f"{r['costed_macs'] / r['model_macs']:.1%}" if r["model_macs"] else "-"
        lines.append(f"| {r['model']} | {r['target']} | {r['model_macs']:,} | {r['costed_macs']:,} | {share} | "
                     f"{', '.join(r['unsupported']) or '-'} |")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_corpus_model_for_every_target(capsys):
    """Only NnccError may stop a compile; the table is what the issue's "Done when" will assert
    at full coverage (every MAC costed, nothing unsupported, no error)."""
    rows = [coverage_row(name, target) for name in corpus.ENTRY for target in sorted(TARGETS.names())]
    with capsys.disabled():
        print("\n" + render(rows))
    crashes = [f"{r['model']} on {r['target']}: {r['crash']}" for r in rows if "crash" in r]
    assert not crashes, "raised something other than NnccError:\n" + "\n".join(crashes)
