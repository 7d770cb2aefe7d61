"""The published figures of mobile-cpu, truenorth, sparse-tc and ucnn (backends/<target>/fidelity.py).

What is asserted is the shape of each declaration, never how close nncc comes to a figure: the
ratios are the fidelity table's to print (benchmarks/fidelity.py), and a model change that moves
one must not fail a unit test. The ReRAM and HyPar modules have tests of their own.
"""

from __future__ import annotations

import importlib
import math
import pathlib
import re

import pytest

from nncc.fidelity import Reference
from nncc.registry import TARGETS

SOURCES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "sources.md"
MODULES = {"mobile-cpu": "mobile_cpu", "truenorth": "truenorth", "sparse-tc": "sparse_tc", "ucnn": "ucnn"}


def references(target: str) -> list[Reference]:
    return importlib.import_module(f"nncc.backends.{MODULES[target]}.fidelity").REFERENCES


def sections() -> set[str]:
    return {line[3:].strip() for line in SOURCES.read_text().splitlines() if line.startswith("## ")}


@pytest.mark.parametrize("target", MODULES)
def test_at_least_two_figures_no_constant_was_fitted_to(target):
    refs = references(target)
    assert all(isinstance(r, Reference) and r.target == target for r in refs)
    assert target in TARGETS.names()
    assert sum(not r.fitted for r in refs) >= 2, [r.quantity for r in refs]


@pytest.mark.parametrize("target", MODULES)
def test_every_source_names_a_section_of_docs_sources(target):
    known = sections()
    for r in references(target):
        named = re.findall(r'docs/sources\.md, "([^"]+)"', r.source)
        assert named and all(name in known for name in named), (r.quantity, r.source)


@pytest.mark.parametrize("target", MODULES)
def test_figures_are_positive_with_units_and_fitted_ones_carry_their_leave_one_out_error(target):
    for r in references(target):
        assert r.reference > 0 and math.isfinite(r.reference) and r.unit and r.quantity, r
        assert callable(r.measure)
        # a figure reproduced by construction is only shown with the error of the fit left out
        assert not r.fitted or (r.loo_error is not None and math.isfinite(r.loo_error)), r.quantity


ALL = [(target, i) for target in MODULES for i in range(len(references(target)))]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "index"), ALL, ids=[f"{t}-{i}" for t, i in ALL])
def test_every_measure_runs_offline_and_gives_a_positive_finite_figure(target, index):
    value = references(target)[index].measure()
    assert isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_sparse_tc_leave_one_out_errors_are_the_recorded_ones():
    from nncc.backends.sparse_tc import fidelity

    recomputed = fidelity.loo_errors()
    assert recomputed.keys() == fidelity.LOO_ERROR.keys()
    for mode, error in recomputed.items():
        assert error == pytest.approx(fidelity.LOO_ERROR[mode], abs=1e-3), mode
