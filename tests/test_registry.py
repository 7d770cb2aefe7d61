"""Every registered pass and target goes through the same contract checks."""

from __future__ import annotations

import dataclasses

import pytest

from nncc import runtime
from nncc.backends.base import Target
from nncc.cost import CostReport
from nncc.driver import CompileOptions, compile_model
from nncc.loading import infer_shapes, load_model
from nncc.pass_base import NnccPass
from nncc.pipeline import PassContext
from nncc.registry import PASSES, TARGETS


def test_builtins_registered_through_entry_points():
    assert {"fold-constants", "fold-batchnorm", "eliminate-dead-code"} <= set(PASSES.names())
    assert {"null", "mobile-cpu"} <= set(TARGETS.names())
    for name in PASSES.names():
        assert PASSES._eps().get(name) is not None or name in PASSES._loaded


@pytest.mark.parametrize("name", PASSES.names())
def test_pass_contract(name, conv_bn_path):
    cls = PASSES.get(name)
    assert cls.name == name
    check_pass_contract(cls, conv_bn_path)


def check_pass_contract(cls: type, model_path) -> None:
    """What every pass keeps, built-in or plugin (tests/test_plugin_examples.py checks the examples)."""
    name = cls.name
    assert issubclass(cls, NnccPass) and cls.summary
    original = load_model(model_path)
    model = load_model(model_path)
    # Passes that plan for crossbars (rank-clip, delete-groups) get the reram target's, as in a compile.
    with PassContext(target="reram", crossbar=TARGETS.create("reram").crossbar_geometry()):
        first = cls()(model)
        infer_shapes(model, model_path)
        second = cls()(model)
    assert first.model is model
    assert not second.modified, f"{name} is not idempotent"
    error = runtime.compare_outputs(runtime.session(original), runtime.session(model), runtime.sample_inputs(original, 2))
    if cls.exact_tolerance is not None:
        assert error["max_abs_error"] <= cls.exact_tolerance
    assert isinstance(cls().params(), dict)


@pytest.mark.parametrize("name", TARGETS.names())
def test_target_contract(name, conv_bn_path):
    cls = TARGETS.get(name)
    assert cls.name == name
    check_target_contract(cls, conv_bn_path)


def check_target_contract(cls: type, model_path) -> None:
    """What every target keeps, built-in or plugin."""
    name = cls.name
    assert issubclass(cls, Target)
    config = cls.default_config()
    assert dataclasses.is_dataclass(config)
    for field in dataclasses.fields(config):
        assert field.metadata.get("source"), f"{name}.{field.name} names no source"
    assert type(config).__dataclass_params__.frozen, f"{name}.Config is not a frozen dataclass"
    for field in dataclasses.fields(config):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, field.name, getattr(config, field.name))
    result = compile_model(model_path, cls(), [], CompileOptions(verify_samples=1))
    assert isinstance(result.cost, CostReport)
    costed = {row.name for row in result.cost.layers} | {u.name for u in result.cost.unsupported}
    assert len(costed) == result.model.graph.num_nodes(), "every node is costed or listed as unsupported"
    totals = result.report["totals"]
    assert totals["latency_s"] >= 0 and totals["energy_j"] >= 0


def test_a_builtin_bug_blames_no_plugin():
    # Only third-party code is named as a plugin: nncc's own targets are entry points too.
    from nncc.registry import plugin_at_fault

    with pytest.raises(AttributeError) as raised:
        TARGETS.create("null").estimate(None)
    assert plugin_at_fault(raised.value) is None
    assert "null" not in {name for name, _, _ in TARGETS.plugins()}
