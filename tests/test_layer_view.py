"""Every target and every pass agrees with the one layer view on the zoo models.

The layer view (:func:`nncc.analysis.layers`, weights and layouts from :mod:`nncc.weights`) says
which layers are weighted and what shape their weight matrix has. Each target places those
layers in its own terms (crossbar rows and columns, GEMM k and m, filters, partitioned weights,
core-op fan-ins) and each pass that rewrites weights reports per layer. Here every one of them
must account for every weighted layer -- mapped with the same fan-in and outputs, or listed as
unsupported / skipped with a reason -- and claim no layer the view does not call weighted.
"""

from __future__ import annotations


import pytest

from nncc import models
from nncc.analysis import layers
from nncc.driver import CompileOptions, compile_model
from nncc.errors import NnccError
from nncc.loading import load_model
from nncc.ops import op_class
from nncc.pipeline import PassContext, parse_pass_spec
from nncc.registry import TARGETS

FAST = ("lenet5", "lenet_caffe", "convnet", "tdnn", "bert_tiny")
ZOO = [e.name for e in models.list_models()]
SLOW = [pytest.param(name, marks=pytest.mark.slow) for name in ZOO if name not in FAST]


def _weight_elements(layer) -> int:
    return layer.weight.elements  # W + R for a recurrent layer


# Per target: {layer name: what the target placed} and the same figure from the layer view.
PLACED = {
    "reram": (lambda m: {r.name: (r.rows, r.cols * r.groups) for r in m.crossbar_layers},
              lambda layer: (layer.weight.fan_in, layer.weight.outputs)),
    "sparse-tc": (lambda m: {r.name: (r.k, r.m * r.batch) for r in m.layers if r.kind in ("gemm", "cuda_core") and r.weight},
                  lambda layer: (layer.weight.fan_in, layer.weight.outputs)),
    "ucnn": (lambda m: {r.name: (r.stats.k, r.stats.filters) for r in m.layers if r.kind == "factorized"},
             lambda layer: (layer.weight.fan_in, layer.weight.outputs)),
    "hypar": (lambda m: {s.name: s.weight_elems for s in (m.graph.specs if m.graph else [])}, _weight_elements),
    "mobile-cpu": (lambda m: {r.name: r.macs for r in m.layers if r.layer is not None and r.layer.weight is not None},
                   lambda layer: layer.macs),
    "truenorth": (lambda m: {r.name: r.fan_in for r in m.layers if r.kind == "core-op"},
                  lambda layer: layer.weight.fan_in),
}


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    return lambda name: models.export(name, folder / f"{name}.onnx")


@pytest.mark.parametrize("name", [*FAST, *SLOW])
def test_every_target_places_the_weighted_layers_of_the_view(name, zoo_files):
    path = zoo_files(name)
    compiled = 0
    for target, (placed_by, expected) in PLACED.items():
        try:
            result = compile_model(path, TARGETS.create(target), [], CompileOptions(verify_samples=0))
        except NnccError as e:  # a chip limit (truenorth on big nets) names what did not fit
            assert "fit" in e.what or "cannot be placed" in e.what, f"{target}: {e.what}"
            continue
        compiled += 1
        view = {layer.name: layer for layer in layers(result.model) if layer.weight is not None}
        placed = placed_by(result.mapping)
        unsupported = {u.name: u.reason for u in result.mapping.unsupported}
        assert set(placed) <= set(view), f"{target} places layers the view does not call weighted: {set(placed) - set(view)}"
        for layer_name, layer in view.items():
            assert layer_name in placed or unsupported.get(layer_name), f"{target} neither places nor lists '{layer_name}'"
            if layer_name in placed:
                assert placed[layer_name] == expected(layer), f"{target} '{layer_name}': {placed[layer_name]} vs the view"
    assert compiled >= len(PLACED) - 1


# Passes that rewrite weights, with parameters that make them act on every layer they can.
WEIGHT_PASSES = ("prune:ratio=0.5", "vector-sparsify", "weight-share", "quantize", "factorize:rank_ratio=0.5",
                 "rank-clip:tolerance=0.3", "delete-groups:ratio=0.1,min_row_blocks=1", "legalize-core-ops:crossbar=256")


@pytest.mark.parametrize("name", [*FAST, *SLOW])
def test_every_weight_pass_reports_each_weighted_layer_once(name, zoo_files):
    path = zoo_files(name)
    table = layers(load_model(path))
    view = {layer.name for layer in table if layer.weight is not None}
    # A pass may also act on products of two activations (quantize puts them on integers too).
    products = {layer.name for layer in table if op_class(layer.op, layer.domain) == "weighted"}
    crossbars = TARGETS.create("reram").crossbar_geometry()
    for spec in WEIGHT_PASSES:
        model = load_model(path)
        pass_ = parse_pass_spec(spec)
        with PassContext(target="reram", crossbar=crossbars):
            pass_(model)
        done = {r["name"] for r in pass_.stats["layers"]}
        skipped = {r["name"] for r in pass_.stats["skipped"]}
        assert view <= done | skipped <= products, \
            f"{spec}: missing {view - done - skipped}, not a weighted op {(done | skipped) - products}"
        assert not done & skipped, f"{spec}: both done and skipped: {done & skipped}"
