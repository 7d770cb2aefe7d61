"""report.md and report.html from synthetic report dicts: content, top-N plots, escaping, self-containment."""

from __future__ import annotations

import html.parser
import re

import pytest

from nncc import render, render_html, report_view

EVIL = "<script>alert(1)</script>"


def synthetic_report(n_layers: int, utilization: bool = True, area: float | None = None) -> dict:
    layers = []
    for i in range(n_layers):
        latency = (i % 17 + 1) * 1e-5  # non-zero, uneven, deterministic
        layers.append({
            "name": EVIL if i == 1 else f"block{i}/conv",
            "op": "Conv" if i % 3 else "Gemm",
            "macs": 1000 * (i + 1),
            "latency_s": latency,
            "energy_j": latency * 2.5,
            "utilization": (i % 10) / 10 + 0.05 if utilization else None,
            "bound": "memory" if i % 2 else "compute",   # target-specific extra fields
            "tiles": i % 7 + 1,
        })
    return {
        "schema": "nncc.report/1",
        "nncc_version": "0.1.0",
        "model": {"name": "tiny<net>", "path": "/models/tiny.onnx", "sha256": "0" * 64,
                  "original": {"params": 2000, "weight_bytes": 8000, "macs": 10**6, "nodes": n_layers + 5},
                  "params": 1500, "weight_bytes": 6000, "macs": 9 * 10**5, "nodes": n_layers, "ops": {"Conv": n_layers},
                  "inputs": [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "FLOAT"}],
                  "outputs": [{"name": "y", "shape": [1, 10], "dtype": "FLOAT"}]},
        "target": {"name": "toy-npu", "config": {"freq_hz": 1e9, "mac_pj": 0.2},
                   "sources": {"freq_hz": {"source": "toy datasheet rev A", "unit": "Hz"},
                               "mac_pj": {"source": "Horowitz ISSCC 2014", "unit": "pJ", "note": "45 nm"}}},
        "passes": [{"name": "fold-batchnorm", "params": {"eps": 1e-5}, "modified": True, "stats": {"folded": 3}, "time_s": 0.01}],
        "totals": {"latency_s": sum(r["latency_s"] for r in layers), "energy_j": sum(r["energy_j"] for r in layers),
                   "area_mm2": area, "macs": sum(r["macs"] for r in layers), "weight_bytes": 6000, "unsupported_ops": 1},
        "layers": layers,
        "unsupported": [{"name": "nms0", "op": "NonMaxSuppression", "reason": "no estimator"}],
        "verification": {"reference": "onnxruntime, original model", "inputs": "uniform [0,1) floats, seed 0", "samples": 4,
                         "max_abs_error": 1e-6, "max_rel_error": 2e-6, "tolerance": 1e-4, "status": "passed",
                         "accuracy": {"samples": 100, "top1_original": 0.9, "top1_compiled": 0.89}},
        "measured": {"median_s": 0.004, "threads": 1, "executor": "onnxruntime"},
        "artifacts": ["placement.json"],
    }


class _Checker(html.parser.HTMLParser):
    """Collects tags and attributes, and checks that non-void HTML tags are balanced."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.stack = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):  # <path .../> inside SVG
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def parse(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [], f"unclosed tags: {checker.stack}"
    return checker


@pytest.fixture(scope="module")
def small():
    report = synthetic_report(3)
    return report, render.markdown(report), render_html.page(report)


@pytest.fixture(scope="module")
def large():
    report = synthetic_report(300)
    return report, render.markdown(report), render_html.page(report)


def test_markdown_small(small):
    report, md, _ = small
    assert md.startswith("# nncc report: tiny\\<net\\> on toy-npu")
    assert "| Area | n/a |" in md
    assert "| Params (original → compiled) | 2,000 → 1,500 |" in md
    assert "| Unsupported ops | 1 |" in md
    assert "12 ms" not in md and "4 ms median" in md
    assert "## Layers (3)" in md and "bound" in md and "tiles" in md
    layer_rows = md.split("## Layers (3)")[1]
    assert "| block0/conv | Gemm | 1,000 | 10 µs | 25 µJ | 5.0% |" in layer_rows   # units, as in the HTML table
    assert "e-05" not in layer_rows
    assert "NonMaxSuppression" in md
    assert "Horowitz ISSCC 2014" in md and "toy datasheet rev A" in md
    assert "**passed**" in md and "89.00% compiled" in md
    assert "Top " not in md                         # 3 layers: no top-N section


def test_markdown_large_has_top_layers_and_every_row(large):
    report, md, _ = large
    assert "## Top 10 layers by latency" in md
    assert "other (290 layers)" in md
    assert "## Layers (300)" in md
    assert md.count("/conv |") == 299 + 10          # full table plus the top-10 table
    layer_rows = md.split("## Layers (300)")[1].split("## Unsupported")[0].strip().splitlines()
    assert len(layer_rows) == 2 + 300
    # 8 columns (6 core + 2 target-specific): 9 unescaped pipes on every row, the evil name's included
    assert {len(re.findall(r"(?<!\\)\|", row)) for row in layer_rows} == {9}


def test_markdown_escapes_untrusted_text(small):
    _, md, _ = small
    assert EVIL not in md
    assert "\\<script\\>alert(1)\\</script\\>" in md


def test_md_table_keeps_pipes_and_newlines_inside_cells():
    table = render.md_table(["a", "b"], [["x|y", "line1\nline2"]])
    assert table.splitlines()[2] == "| x\\|y | line1 line2 |"


def test_html_small_sections(small):
    report, _, page = small
    checker = parse(page)
    assert page.startswith("<!doctype html>")
    for heading in ("Totals", "Passes", "Verification", "Per-layer cost", "Layers (3)", "Unsupported (1)",
                    "Target configuration: toy-npu", "Artifacts"):
        assert f"<h2>{heading}</h2>" in page, heading
    assert page.count("<div class='plot'>") == 3   # per layer: latency, energy, utilization
    assert checker.tags.count("svg") == 4          # and the totals' energy by op type
    assert "<td>Area</td><td class='num' title='area_mm2'>n/a</td>" in page   # null area; raw key as tooltip
    assert "Horowitz ISSCC 2014" in page and "45 nm" in page and "toy datasheet rev A" in page
    assert "fold-batchnorm" in page and "eps=1e-05" in page and "folded=3" in page
    assert "4 ms median" in page
    assert "89.00%" in page and "badge passed" in page
    assert "<th>bound</th>" in page and "<th>tiles</th>" in page and "memory" in page
    assert "All 3 layers with a latency" in page


def test_html_large_shows_top_n_plus_other(large):
    _, _, page = large
    parse(page)
    assert "Top 40 of 300 layers by latency; the other 260 are summed" in page
    assert "Top 40 of 300 layers by energy" in page
    assert "Layers (300)" in page
    assert page.count("/conv</td>") == 299           # every layer in the table, the evil one aside
    assert "in execution order" in page              # utilization as a per-layer-index chart


def test_html_escapes_untrusted_names(small, large):
    for _, _, page in (small, large):
        assert "<script" not in page.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "tiny&lt;net&gt;" in page
        assert "<net>" not in page


def test_html_is_self_contained(small, large):
    for _, _, page in (small, large):
        checker = parse(page)
        for name, value in checker.attrs:
            if name in ("src", "href", "xlink:href"):
                assert not re.match(r"\s*(https?:|//|javascript:|data:)", value or "", re.I), (name, value)
        assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:)?//", page, re.I)
        assert "<script" not in page and "<link" not in page and "@import" not in page
        assert "<?xml" not in page and "<!DOCTYPE svg" not in page
        assert "<style>" in page                    # inline CSS


def test_svg_ids_are_unique_across_plots(small):
    _, _, page = small
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert ids and len(ids) == len(set(ids))
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', page):
        assert ref in ids


def test_area_value_and_missing_utilization():
    report = synthetic_report(5, utilization=False, area=12.5)
    page, md = render_html.page(report), render.markdown(report)
    assert "12.5 mm²" in page and "12.5 mm²" in md
    assert page.count("<div class='plot'>") == 2     # no utilization plot without utilization


def test_zero_cost_report_has_no_empty_plots():
    report = synthetic_report(4, utilization=False)
    for row in report["layers"]:
        row["latency_s"] = row["energy_j"] = 0.0
    report["totals"].update(latency_s=0.0, energy_j=0.0)
    page = render_html.page(report)
    parse(page)
    assert "<svg" not in page
    assert "latency is zero or missing" in page


def test_math_text_and_odd_names_do_not_break_plots():
    report = synthetic_report(3)
    report["layers"][0]["name"] = r"$\frac{a}{"          # would be a mathtext error if parsed
    report["layers"][2]["name"] = "x" * 500 + "\n\t"
    page = render_html.page(report)
    assert page.count("<div class='plot'>") == 3
    assert "$\\frac{a}{" in page


def test_artifact_links_are_relative_only():
    report = synthetic_report(3)
    report["artifacts"] = ["plan.json", "../up.json", "javascript:alert(1)", "https://example.com/x"]
    page = render_html.page(report)
    assert "href='plan.json'" in page
    for bad in ("../up.json", "javascript:alert(1)", "https://example.com/x"):
        assert f"href='{bad}'" not in page and bad in page


def test_formatters_other_modules_import():
    assert render.fmt_seconds(0.0021) == "2.1 ms"
    assert render.fmt_joules(3e-6) == "3 uJ"
    assert render.fmt_count(25_530_474) == "25.5M"
    assert render.fmt_seconds(None) == render.fmt_joules(None) == render.fmt_count(None) == "n/a"


def test_totals_lists_of_records_become_their_own_tables():
    from nncc.render import markdown, total_tables

    report = {"model": {"name": "m"}, "target": {"name": "t", "config": {}}, "layers": [], "unsupported": [],
              "totals": {"latency_s": 1.0, "energy_j": 2.0, "vs": {"a": 0.5, "b": 2},
                         "levels": [{"level": 0, "mode": "dp"}, {"level": 1, "mode": "mp", "extra": 3, "comm_s": 2e-4}]}}
    keys = [row.key for _, rows in report_view.grouped_totals(report) for row in rows]
    assert "vs.a" in keys and "vs.b" in keys and not any(k.startswith("levels") for k in keys)
    (name, (header, rows)), = total_tables(report)
    assert name == "Levels" and header == ["level", "mode", "extra", "comm_s"]
    assert rows[1] == ["1", "mp", "3", "200 µs"]      # each value in its column's unit
    assert "| 1 | mp | 3 | 200 µs |" in markdown(report)
