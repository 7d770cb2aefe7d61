"""The built-in targets' real totals, as the reports show them: every key declared (a label and
a unit in its Target.report_fields or nncc.report_fields), none dropped, and each target's breakdowns drawn as charts."""

from __future__ import annotations

import pytest

from nncc import models, render, render_html, report_view
from nncc.driver import CompileOptions, compile_model
from nncc.registry import TARGETS

# The charts each target's totals must give (titles); a target may give more.
CHARTS = {
    "reram": {"Energy by component", "Area by component", "ADCs by resolution", "ADC conversions by resolution"},
    "truenorth": {"Energy by component", "Energy by op type"},
    "sparse-tc": {"Energy by op type"},
    "ucnn": {"Energy by component", "Energy by op type"},
    "hypar": {"Latency by component", "Energy by op type"},
    "mobile-cpu": {"Energy by op type", "Layers by what bounds them"},
}


@pytest.fixture(scope="module")
def reports():
    model = models.bundled_path("lenet5")
    return {name: compile_model(model, TARGETS.create(name), [], CompileOptions(verify_samples=0)).report for name in CHARTS}


@pytest.mark.parametrize("target", sorted(CHARTS))
def test_a_built_in_target_has_every_total_labelled(reports, target):
    report = reports[target]
    charts = report_view.charts(report)
    groups = report_view.grouped_totals(report, charts)
    other = [row.key for group, rows in groups if group == "Other" for row in rows]
    assert not other, f"{target} reports totals no one labelled: declare them in its Target.report_fields: {other}"
    shown = {key for _, rows in groups for row in rows for key in row.keys} | {key for chart in charts for key in chart.keys}
    records = {key for key, value in report["totals"].items() if isinstance(value, list) and value and isinstance(value[0], dict)}
    assert set(report_view.flatten(report["totals"])) - records <= shown
    assert CHARTS[target] <= {chart.title for chart in charts}
    whole = {"energy": "energy_j", "area": "area_mm2", "latency": "latency_s"}
    for chart in charts:
        for bar in chart.bars:
            if chart.kind == "stacked" and bar.label in whole:   # not UCNN's records: the baseline is another design
                assert bar.total == pytest.approx(report["totals"][whole[bar.label]], rel=1e-6)   # adds up to the Cost figure
    page, md = render_html.page(report), render.markdown(report)
    assert page.count("class='chart' id='chart-") == len(charts)
    for chart in charts:
        assert f"**{chart.title}**\n\n| {'category' if chart.kind == 'histogram' else 'component'} |" in md
