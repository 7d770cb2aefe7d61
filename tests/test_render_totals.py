"""report.md and report.html: the totals grouped with labels and units, and the breakdowns as
SVG charts (nncc.report_fields, nncc.report_view, nncc.render_svg), on totals as the built-in
targets write them."""

from __future__ import annotations

import html
import re

import pytest

from nncc import render, render_html, report_view
from test_render import parse, synthetic_report


# --- totals: groups, labels, units, charts -------------------------------------------------
# Totals as the built-in targets write them (LeNet-5, abridged): reram itemizes energy in a
# dict and area in sibling keys; ucnn has two records of energy parts; hypar has its workload.

RERAM_TOTALS = {
    "latency_s": 7.1762e-05, "energy_j": 1.699293014613615e-06, "area_mm2": 0.6615360280640001, "macs": 416520,
    "weight_bytes": 246824, "unsupported_ops": 0, "crossbars": 42, "crossbar_area_mm2": 0.002818572288,
    "routing_area_mm2": 0.002963275776, "adc_area_mm2": 0.43836168, "tile_overhead_area_mm2": 0.1205, "tiles": 1,
    "adc_bits_histogram": {"5": 144, "6": 72, "7": 384}, "pipelined_interval_s": 6.272e-05,
    "energy_breakdown_j": {"adc": 6.09728e-07, "dac": 1.2868102944e-07, "crossbar_read": 8.696425911736152e-07,
                           "shift_add": 1.1618292e-08, "buffer": 5.830295e-08, "router": 2.10511e-08, "digital": 2.69052e-10},
    "coverage": {"complete": True, "macs_fraction": 1.0, "macs_costed": 416520, "macs_total": 416520, "unsupported_ops": []},
}
UCNN_TOTALS = {
    "latency_s": 1.279e-05, "energy_j": 2.0769951929e-05, "area_mm2": None, "macs": 416520,
    "ucnn": {"cycles": 2558, "energy_j": 2.0769951929e-05, "arithmetic_j": 3.50098835e-07, "rf_j": 1.580524094e-06,
             "glb_noc_j": 8.651129e-07, "dram_j": 1.79742161e-05},
    "baseline": {"cycles": 2558, "energy_j": 1.3552470688e-05, "arithmetic_j": 1.76057475e-07, "rf_j": 8.76768285e-07,
                 "glb_noc_j": 6.18688128e-07, "dram_j": 1.18809568e-05},
    "energy_ratio": 0.6525037098943592,
}
HYPAR_WORKLOAD = {"workload": {"kind": "training-step", "batch": 256, "accelerators": 16},
                  "per_sample": {"latency_s": 2.99e-06, "energy_j": 2.2992707225e-05, "basis": "run latency / batch"}}


def report_with(totals: dict, layers: list | None = None, target: str = "reram") -> dict:
    """A report of ``target`` (whose own keys its Target.report_fields label) with these totals."""
    report = synthetic_report(3)
    report["totals"] = totals
    report["target"]["name"] = target
    if layers is not None:
        report["layers"] = layers
    return report


def groups_of(report: dict) -> dict[str, dict[str, str]]:
    return {group: {row.label: row.value for row in rows} for group, rows in report_view.grouped_totals(report)}


def chart_rects(page: str, title: str) -> list[tuple[str, float, float]]:
    """(part, width, value) of every bar rectangle of the chart titled ``title``."""
    svg = re.search(r"<svg[^>]*aria-label='" + re.escape(title) + r"'.*?</svg>", page, re.S)
    assert svg, f"no chart {title!r}"
    return [(html.unescape(part), float(w), float(v)) for w, part, v in
            re.findall(r"<rect class='part'[^>]*width='([\d.]+)'[^>]*data-part='([^']*)' data-value='([^']*)'", svg.group(0))]


def test_totals_are_grouped_with_human_labels_and_units():
    report = report_with({**RERAM_TOTALS, **HYPAR_WORKLOAD})
    groups = groups_of(report)
    assert list(groups)[:3] == ["Cost", "Unit of work", "Model"]
    assert groups["Cost"]["Latency"] == "71.8 µs" and groups["Cost"]["Energy"] == "1.7 µJ"
    assert groups["Cost"]["Area"] == "0.662 mm²"
    assert groups["Cost"]["Pipelined interval (a new input every)"] == "62.7 µs"
    assert groups["Unit of work"] == {"Workload": "training-step", "Batch": "256", "Accelerators": "16",
                                      "Latency per sample": "2.99 µs", "Energy per sample": "23 µJ",
                                      "Per-sample figures are": "run latency / batch"}
    assert groups["Model"]["Weights"] == "247 kB"
    assert groups["Coverage"]["Share of MACs costed"] == "100.0%" and groups["Coverage"]["Op types left out"] == "none"
    assert groups["Structure"]["Crossbars"] == "42"
    assert "Other" not in groups                     # every reram key is declared
    md, page = render.markdown(report), render_html.page(report)
    for group in ("Cost", "Unit of work", "Model", "Coverage", "Structure", "Breakdowns"):
        assert f"### {group}" in md
    for group in ("Cost", "Unit of work", "Model", "Coverage", "Structure"):
        assert f"<section class='card'><h3>{group}</h3>" in page
    assert "| Pipelined interval (a new input every) | 62.7 µs |" in md
    assert "<td>Pipelined interval (a new input every)</td><td class='num' title='pipelined_interval_s = 6.272e-05'>62.7 µs</td>" in page
    for raw in ("adc_bits_histogram.5", "energy_breakdown_j.crossbar_read", ">pipelined_interval_s<"):
        assert raw not in md and raw not in page


def test_without_workload_there_is_no_unit_of_work_group():
    assert "Unit of work" not in groups_of(report_with(dict(RERAM_TOTALS)))


def test_every_figure_is_shown_somewhere():
    """A key is a row, or a part of a chart: none is dropped for want of a label."""
    report = report_with({**RERAM_TOTALS, **UCNN_TOTALS, **HYPAR_WORKLOAD})
    charts = report_view.charts(report)
    rows = {key for _, group in report_view.grouped_totals(report, charts) for row in group for key in row.keys}
    charted = {key for chart in charts for key in chart.keys}
    assert set(report_view.flatten(report["totals"])) <= rows | charted
    assert not rows & charted                         # and a charted part is not repeated as a row


@pytest.mark.parametrize("value, unit, text", [
    (7.1762e-05, "s", "71.8 µs"), (0.013, "s", "13 ms"), (2.5, "s", "2.5 s"), (999.96e-6, "s", "1 ms"),
    (1.7e-06, "J", "1.7 µJ"), (0.0058861, "J", "5.89 mJ"), (2.69052e-10, "J", "269 pJ"), (0.0, "J", "0 J"),
    (0.002818572288, "mm2", "2,819 µm²"), (0.66153, "mm2", "0.662 mm²"), (246824, "B", "247 kB"),
    (2075144.0, "B", "2.08 MB"), (250.0, "/s", "250 /s"), (0.653, "x", "0.653×"), (416520, "count", "416,520"),
    (1814073344, "count", "1.81 G"), (208257.5, "", "208,258"), (13, "ticks", "13 ticks"), (None, "s", "n/a"), (True, "bool", "yes"),
])
def test_units_take_an_si_prefix_per_value(value, unit, text):
    from nncc.report_fields import fmt_value

    assert fmt_value(value, unit) == text


def test_unknown_keys_appear_raw_under_other():
    totals = {**RERAM_TOTALS, "frobnication_level": 3, "plugin_stats": {"widgets": 2}, "sram_leak_j": 1e-6,
              "flags": ["a", "b"]}
    report = report_with(totals)
    other = groups_of(report)["Other"]
    assert other == {"frobnication_level": "3", "plugin_stats.widgets": "2", "sram_leak_j": "1 µJ", "flags": "a, b"}
    md, page = render.markdown(report), render_html.page(report)
    assert "### Other" in md and "| plugin_stats.widgets | 2 |" in md and "| sram_leak_j | 1 µJ |" in md
    other_card = page.split("<h3>Other</h3>")[1].split("</section>")[0]
    assert "frobnication_level" in other_card and "sram_leak_j" in other_card and "Latency" not in other_card


def test_a_target_labels_its_own_keys_and_a_report_of_an_unknown_target_shows_them_raw():
    """Target.report_fields label a target's own keys, after the shared rows (a plugin target
    needs no change to nncc); the same keys in a report of a target not installed here appear
    raw under "Other", and a row naming an unknown group lands there too; a malformed row (a
    pattern that does not compile, a label asking for groups the pattern lacks, too many
    fields) is left out, never an exception."""
    from nncc.registry import TARGETS
    from nncc.target import Target

    class Widgets(Target):
        name = "widget-npu"
        report_fields = (("widgets", "Structure", "Widgets", "count"), (r"stage_(.+)", "Activity", "Stage {0}"),
                         ("mood", "Feelings", "Mood"), ("cross(bars", "Structure", "Bad pattern"),
                         ("crossbars", "Structure", "Crossbars {1}"), ("one", "two", "three", "four", "five"))

    totals = {"latency_s": 1e-6, "widgets": 3, "stage_fill_j": 2e-9, "mood": "fine", "crossbars": 4}
    TARGETS.register("widget-npu", Widgets)
    try:
        groups = groups_of(report_with(dict(totals), target="widget-npu"))
    finally:
        TARGETS._loaded.pop("widget-npu"), TARGETS._origin.pop("widget-npu")
    assert groups["Structure"]["Widgets"] == "3" and groups["Activity"] == {"Stage fill": "2 nJ"}
    assert "Crossbars" not in groups["Structure"] and "Bad pattern" not in groups["Structure"]
    assert groups["Other"] == {"Mood": "fine", "crossbars": "4"}  # another target's key is not labelled here
    unknown = groups_of(report_with(dict(totals), target="not-installed-npu"))
    assert unknown["Other"] == {"widgets": "3", "stage_fill_j": "2 nJ", "mood": "fine", "crossbars": "4"}


def test_energy_breakdown_is_a_stacked_bar_whose_widths_are_the_values():
    from nncc.render_svg import BAR_W

    report = report_with(dict(RERAM_TOTALS))
    page = render_html.page(report)
    rects = chart_rects(page, "Energy by component")
    parts = {name: value for name, _, value in rects}
    breakdown = RERAM_TOTALS["energy_breakdown_j"]
    assert parts == {report_view.humanize(k): v for k, v in breakdown.items()}
    for _, width, value in rects:
        assert width == pytest.approx(value / sum(breakdown.values()) * BAR_W, abs=1e-3)
    assert [name for name, _, _ in rects][:3] == ["crossbar read", "ADC", "DAC"]   # largest first
    assert "crossbar read 870 nJ · 51.2%" in page and "digital 269 pJ · &lt;0.1%" in page   # legend
    parse(page)


def test_area_breakdown_shows_what_the_target_did_not_itemize():
    page = render_html.page(report_with(dict(RERAM_TOTALS)))
    parts = {name: value for name, _, value in chart_rects(page, "Area by component")}
    itemized = sum(RERAM_TOTALS[k] for k in ("crossbar_area_mm2", "routing_area_mm2", "adc_area_mm2", "tile_overhead_area_mm2"))
    assert parts[report_view.REST] == pytest.approx(RERAM_TOTALS["area_mm2"] - itemized)
    assert sum(parts.values()) == pytest.approx(RERAM_TOTALS["area_mm2"])
    assert parts["ADC"] == RERAM_TOTALS["adc_area_mm2"]


def test_bars_of_one_chart_share_a_scale():
    page = render_html.page(report_with(dict(UCNN_TOTALS)))
    rects = chart_rects(page, "Energy by component")
    assert len(rects) == 8                            # ucnn and baseline, four parts each
    ucnn, baseline = sum(w for _, w, _ in rects[:4]), sum(w for _, w, _ in rects[4:])
    assert baseline / ucnn == pytest.approx(UCNN_TOTALS["baseline"]["energy_j"] / UCNN_TOTALS["ucnn"]["energy_j"], rel=1e-4)
    assert "<th>ucnn</th><th>share</th><th>baseline</th><th>share</th>" in page   # values beside the chart


def test_adc_histogram_is_a_bar_chart():
    page = render_html.page(report_with(dict(RERAM_TOTALS)))
    rects = chart_rects(page, "ADCs by resolution")
    assert [name for name, _, _ in rects] == ["5-bit ADC", "6-bit ADC", "7-bit ADC"]
    widths = {name: w for name, w, _ in rects}
    assert widths["5-bit ADC"] / widths["7-bit ADC"] == pytest.approx(144 / 384, rel=1e-4)
    assert "384 (64.0%)" in page


def test_markdown_has_breakdown_tables_with_shares():
    md = render.markdown(report_with(dict(RERAM_TOTALS)))
    energy = md.split("**Energy by component**")[1].split("\n\n**")[0]
    assert "| component | value | share |" in energy
    assert "| crossbar read | 870 nJ | 51.2% |" in energy and "| digital | 269 pJ | \\<0.1% |" in energy
    assert "| total | 1.7 µJ | 100.0% |" in energy
    area = md.split("**Area by component**")[1].split("\n\n**")[0]
    assert "| not itemized | 0.0969 mm² | 14.6% |" in area
    assert "| 7-bit ADC | 384 | 64.0% |" in md.split("**ADCs by resolution**")[1]
    assert "| Energy by component | 1.7 µJ (crossbar read 51%, ADC 36%, DAC 8%) |" in md   # the Breakdowns group
    ucnn = render.markdown(report_with(dict(UCNN_TOTALS))).split("**Energy by component**")[1].split("\n\n**")[0]
    assert "| component | ucnn | share | baseline | share |" in ucnn
    assert "| DRAM | 18 µJ | 86.5% | 11.9 µJ | 87.7% |" in ucnn
    assert "| total | 20.8 µJ | 100.0% | 13.6 µJ | 100.0% |" in ucnn


def test_energy_by_op_type_from_the_layers():
    layers = [{"name": f"l{i}", "op": op, "macs": 1, "latency_s": 1e-6, "energy_j": e}
              for i, (op, e) in enumerate([("Conv", 3e-6), ("Gemm", 1e-6), ("Conv", 2e-6), ("Relu", 0.0)])]
    page = render_html.page(report_with({"latency_s": 4e-6, "energy_j": 6e-6}, layers))
    assert {name: value for name, _, value in chart_rects(page, "Energy by op type")} == pytest.approx({"Conv": 5e-6, "Gemm": 1e-6})


def test_parts_that_exceed_their_total_are_not_a_breakdown():
    """hypar's all-DP and all-MP energies sit beside energy_j but are alternatives, not parts."""
    totals = {"latency_s": 1.0, "energy_j": 1.0, "dynamic_energy_j": 0.9, "static_energy_j": 0.8}
    assert report_view.charts(report_with(totals, [])) == []
    assert groups_of(report_with(totals, []))["Other"] == {"dynamic_energy_j": "900 mJ", "static_energy_j": "800 mJ"}


def test_chart_labels_from_a_plugin_are_escaped():
    totals = {"latency_s": 1.0, "energy_j": 1.0, "energy_breakdown_j": {"<b>x</b>": 0.5, "y'": 0.5}}
    page = render_html.page(report_with(totals, []))
    parse(page)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert {name for name, _, _ in chart_rects(page, "Energy by component")} == {"<b>x</b>", "y'"}
