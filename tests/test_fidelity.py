"""The fidelity contract: which figures count as validation (nncc.fidelity)."""

from __future__ import annotations

import math

from nncc.fidelity import SILICON_BAND, SIMULATOR_BAND, Reference, run


def _ref(value, reference=10.0, **kw):
    return Reference("t", "q", reference, "J", "docs/sources.md#reram", lambda: value, **kw)


def test_band_is_symmetric_in_log_and_fitted_figures_never_count():
    (low, high, out, fitted) = run([_ref(10 / SILICON_BAND), _ref(10 * SILICON_BAND), _ref(10 * SILICON_BAND * 1.01),
                                    _ref(10.0, fitted=True)])
    assert low.within_band and high.within_band and not out.within_band
    assert fitted.ratio == 1.0 and not fitted.within_band


def test_simulator_references_have_the_tighter_band():
    (inside, outside) = run([_ref(12.9, simulator=True), _ref(13.1, simulator=True)])
    assert SIMULATOR_BAND == 1.3 and inside.within_band and not outside.within_band


def test_a_failing_measure_is_recorded_not_raised():
    def broken():
        raise RuntimeError("model missing")

    (check, ok) = run([Reference("t", "q", 1.0, "s", "src", broken), _ref(10.0)])
    assert check.value is None and check.ratio is None and not check.within_band
    assert check.error == "RuntimeError: model missing" and ok.ratio == 1.0
    assert not run([_ref(math.nan)])[0].within_band


def test_a_gain_is_compared_by_its_excess_over_one():
    (small, close) = run([_ref(1.04, reference=1.51, gain=True), _ref(1.45, reference=1.51, gain=True)])
    assert abs(small.ratio - 0.04 / 0.51) < 1e-12 and not small.within_band
    assert close.within_band
