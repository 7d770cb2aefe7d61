"""The totals of report.json as the reports show them: labelled rows in groups, and charts.

Both report.md and report.html render what this module builds, so the two agree. Rows come
from :mod:`nncc.report_fields`; charts are of two kinds:

* a *breakdown* splits a total into parts and is drawn as stacked bars: any totals dict named
  ``<quantity>_breakdown_<unit>`` (the convention for a target's own breakdowns), the part
  keys :data:`SIBLING_BREAKDOWNS` declares next to a total (reram's ``*_area_mm2``), and any
  record whose ``*_j`` entries add up to its ``energy_j`` (UCNN and its baseline);
* a *histogram* counts things per category (``adc_bits_histogram``, ``layers_by_bound``).

A part that a target does not itemize is shown as the rest of the total, never dropped,
so the bars always add up to the number in the Cost group.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from nncc.errors import NnccError
from nncc.registry import TARGETS
from nncc.report_fields import FIELDS, GROUPS, Field, field_for, field_order, fmt_value, humanize, unit_of, with_target_rows

BREAKDOWN_KEY = re.compile(r"(?P<what>.+)_breakdown_(?P<unit>j|mm2|s)")
UNIT_TOTALS = {"j": ("energy_j", "J"), "mm2": ("area_mm2", "mm2"), "s": ("latency_s", "s")}
# (title, total key, part-key pattern whose group 1 names the part): parts that a target
# reports as sibling keys of the total instead of one breakdown dict.
SIBLING_BREAKDOWNS = (
    ("Area by component", "area_mm2", r"(.+)_area_mm2"),              # reram: crossbar, ADC, routing, tile
    ("Energy by component", "energy_j", r"(dynamic|static)_energy_j"),  # truenorth
    ("Latency by component", "latency_s", r"(compute|comm)_s"),         # hypar: compute vs. link time
)
# (key pattern, title, category label): per-category counts drawn as one bar each.
HISTOGRAMS = (
    ("adc_bits_histogram", "ADCs by resolution", "{}-bit ADC"),
    ("adc_conversions_by_bits", "ADC conversions by resolution", "{}-bit"),
    ("layers_by_bound", "Layers by what bounds them", "{}"),
    (r".+_histogram|.+_by_.+", None, "{}"),   # a target's own: titled from its key
)
REST = "not itemized"   # what the target does not split out (reram: DACs, shift-add, buses)
TOLERANCE = 1e-6   # relative: parts that add up to more than their total are not its breakdown


@dataclasses.dataclass
class Row:
    key: str      # the dotted totals key ("" for figures from elsewhere in the report)
    label: str
    value: str
    raw: Any = None   # the number as report.json has it, for a tooltip
    also: list[str] = dataclasses.field(default_factory=list)   # keys stating the same fact

    @property
    def keys(self) -> list[str]:
        return [self.key] + self.also

    @property
    def tooltip(self) -> str:
        keys = ", ".join(self.keys)
        return f"{keys} = {self.raw!r}" if _number(self.raw) else keys


@dataclasses.dataclass
class Bar:
    label: str
    parts: list[tuple[str, float]]

    @property
    def total(self) -> float:
        return sum(v for _, v in self.parts)


@dataclasses.dataclass
class Chart:
    title: str
    unit: str                 # of the values, for fmt_value
    kind: str                 # "stacked" (parts of a whole) or "histogram" (counts per category)
    bars: list[Bar]
    keys: list[str]           # the dotted totals keys it shows (not repeated as rows)
    note: str = ""

    def fmt(self, v: float) -> str:
        return fmt_value(v, self.unit)

    def summary(self) -> str:
        """One line for the totals table: the whole and its largest parts."""
        texts = []
        for bar in self.bars:
            shares = sorted(bar.parts, key=lambda p: -p[1])[:3]
            top = ", ".join(f"{name} {_percent(v / bar.total)}" for name, v in shares if bar.total > 0)
            prefix = f"{bar.label}: " if len(self.bars) > 1 else ""
            texts.append(f"{prefix}{self.fmt(bar.total)} ({top})")
        return "; ".join(texts)


def flatten(totals: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists (records or names) stay whole."""
    out: dict[str, Any] = {}
    for k, v in totals.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Stacked:
    """Collects the bars of the stacked charts, one chart per title (UCNN's record and its
    baseline's both land in "Energy by component", on one scale)."""

    def __init__(self) -> None:
        self.by_title: dict[str, Chart] = {}

    def add(self, title: str, unit: str, bar: Bar, keys: list[str], total: Any = None) -> None:
        bar.parts = [(name, v) for name, v in bar.parts if v > 0]   # a zero part is no stripe, only noise
        if not bar.parts or bar.total <= 0:
            return
        if _number(total) and bar.total < total * (1 - TOLERANCE):
            bar.parts.append((REST, total - bar.total))
        chart = self.by_title.setdefault(title, Chart(title, unit, "stacked", [], []))
        chart.bars.append(bar)
        chart.keys += keys


def charts(report: dict[str, Any]) -> list[Chart]:
    """Every chart the totals hold: breakdowns first (largest part first), then histograms."""
    totals = report.get("totals", {})
    stacked = _Stacked()
    for key, v in totals.items():      # <quantity>_breakdown_<unit>: {part: value}
        m = BREAKDOWN_KEY.fullmatch(key)
        if m and isinstance(v, dict) and v and all(_number(x) for x in v.values()):
            total_key, unit = UNIT_TOTALS[m["unit"]]
            whole = totals.get(total_key) if m["what"] == total_key.rsplit("_", 1)[0] else None
            stacked.add(f"{humanize(m['what']).capitalize()} by component", unit,
                        Bar(humanize(m["what"]), [(humanize(k), float(x)) for k, x in v.items()]), [f"{key}.{k}" for k in v], whole)
    for title, total_key, pattern in SIBLING_BREAKDOWNS:
        parts = {k: v for k, v in totals.items() if re.fullmatch(pattern, k) and _number(v) and k != total_key}
        whole = totals.get(total_key)
        if len(parts) >= 2 and _number(whole) and sum(parts.values()) <= whole * (1 + TOLERANCE):
            bar = Bar(humanize(total_key), [(humanize(re.fullmatch(pattern, k)[1]), float(x)) for k, x in parts.items()])
            stacked.add(title, unit_of(total_key), bar, list(parts), whole)
    for key, v in totals.items():      # a record whose *_j entries add up to its energy_j
        parts = {k: x for k, x in v.items() if k.endswith("_j") and k != "energy_j" and _number(x)} if isinstance(v, dict) else {}
        whole = v.get("energy_j") if isinstance(v, dict) else None
        if len(parts) >= 2 and _number(whole) and whole > 0 and abs(sum(parts.values()) - whole) <= whole * TOLERANCE:
            stacked.add("Energy by component", "J", Bar(key, [(humanize(k), float(x)) for k, x in parts.items()]),
                        [f"{key}.{k}" for k in parts])
    _by_op_type(report, stacked)
    out = [_ordered(c) for c in stacked.by_title.values()]
    return out + _histograms(totals, {k for c in out for k in c.keys})


def _histograms(totals: dict[str, Any], charted: set[str]) -> list[Chart]:
    out = []
    for key, v in totals.items():
        if not (isinstance(v, dict) and v and all(_number(x) and x >= 0 for x in v.values())) or BREAKDOWN_KEY.fullmatch(key):
            continue
        spec = next((s for s in HISTOGRAMS if re.fullmatch(s[0], key)), None)
        if spec is None or any(f"{key}.{k}" in charted for k in v):
            continue
        items = sorted(v.items(), key=lambda kv: float(kv[0])) if all(_is_float(k) for k in v) else list(v.items())
        bar = Bar(humanize(key), [(spec[2].format(k), float(x)) for k, x in items])
        out.append(Chart(spec[1] or humanize(key).capitalize(), unit_of(key) or "count", "histogram", [bar],
                         [f"{key}.{k}" for k in v]))
    return out


def chart_table(chart: Chart) -> tuple[list[str], list[list[str]]]:
    """A chart as a table (header, rows), values and shares: Markdown's form of it, and the
    HTML page's for charts of several bars."""
    names = list(dict.fromkeys(name for bar in chart.bars for name, _ in bar.parts))
    first = "category" if chart.kind == "histogram" else "component"
    header = [first] + [h for bar in chart.bars for h in ((bar.label, "share") if len(chart.bars) > 1 else ("value", "share"))]
    rows = []
    for name in names + ["total"]:
        row = [name]
        for bar in chart.bars:
            v = bar.total if name == "total" else dict(bar.parts).get(name)
            row += ["", ""] if v is None else [chart.fmt(v), fmt_share(v / bar.total) if bar.total > 0 else ""]
        rows.append(row)
    return header, rows


def _by_op_type(report: dict[str, Any], stacked: _Stacked) -> None:
    """Energy by op type, from the layers: a target that itemizes nothing (mobile-cpu,
    sparse-tc) still shows where its energy goes. Energy only: it is the layers' sum on every
    target, while a pipelined target's layer latencies overlap and do not add up to its latency."""
    by_op: dict[str, float] = {}
    for row in report.get("layers", []):
        if _number(row.get("energy_j")):
            by_op[str(row.get("op"))] = by_op.get(str(row.get("op")), 0.0) + float(row["energy_j"])
    total = report.get("totals", {}).get("energy_j")
    if len([v for v in by_op.values() if v > 0]) >= 2 and _number(total) and sum(by_op.values()) <= total * (1 + TOLERANCE):
        stacked.add("Energy by op type", "J", Bar("energy", list(by_op.items())), [], total)


def _ordered(chart: Chart) -> Chart:
    """Largest part first (by the first bar, which the others follow so colours line up), the
    un-itemized rest last: the eye reads a stacked bar from its left end."""
    first = dict(chart.bars[0].parts)
    names = sorted(dict.fromkeys(n for bar in chart.bars for n, _ in bar.parts),
                   key=lambda n: (n == REST, -first.get(n, 0.0)))
    for bar in chart.bars:
        values = dict(bar.parts)
        bar.parts = [(n, values[n]) for n in names if n in values]
    return chart


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def fmt_share(share: float) -> str:
    """A share to 0.1%; a sliver that rounds to nothing says so instead of "0.0%"."""
    return "<0.1%" if 0 < share < 0.0005 else f"{share:.1%}"


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def grouped_totals(report: dict[str, Any], chart_list: list[Chart] | None = None) -> list[tuple[str, list[Row]]]:
    """(group, rows) in :data:`GROUPS` order, empty groups left out. Keys a chart shows are
    summarized in "Breakdowns" instead of one row per part; lists of records (HyPar's levels)
    are :func:`nncc.render.total_tables`' business."""
    chart_list = charts(report) if chart_list is None else chart_list
    shown = {k for c in chart_list for k in c.keys}
    flat = flatten(report.get("totals", {}))
    fields = report_fields(report)
    groups: dict[str, list[tuple[int, Row]]] = {g: [] for g in GROUPS}
    for key, v in flat.items():
        if key in shown or ("." not in key and _records(v)):   # a top-level list of records is its own table
            continue
        group, label, unit = field_for(key, fields)
        groups[group].append((field_order(key, fields), Row(key, label, _model_value(report, key, v, unit), v)))
    groups["Model"] += [(10**5 + i, row) for i, row in enumerate(_model_rows(report))]
    util = mean_utilization(report.get("layers", []))
    if util is not None:
        groups["Structure"].append((10**6, Row("", f"Mean utilization ({util[1]})", fmt_share(util[0]))))
    groups["Breakdowns"] += [(i, Row("", c.title, c.summary())) for i, c in enumerate(chart_list)]
    out = []
    for group, rows in groups.items():
        # Two keys may state one fact (hypar's batch in its own totals and in the workload): one row.
        unique: dict[tuple[str, str], Row] = {}
        for _, row in sorted(rows, key=lambda r: r[0]):
            first = unique.setdefault((row.label, row.value), row)
            if first is not row:
                first.also.append(row.key)
        if unique:
            out.append((group, list(unique.values())))
    return out


def report_fields(report: dict[str, Any]) -> tuple[Field, ...]:
    """The label rows for this report: the shared ones, then its target's own (``Target.report_fields``).
    A report of a target not installed here (a plugin's, read elsewhere) gets the shared rows:
    its own keys then show raw."""
    name = (report.get("target") or {}).get("name")
    if not isinstance(name, str):
        return FIELDS
    try:
        return with_target_rows(TARGETS.get(name).report_fields)
    except (NnccError, AttributeError, TypeError):  # not installed here, or report_fields not a sequence of rows
        return FIELDS


def _records(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(r, dict) for r in v)


def _model_value(report: dict[str, Any], key: str, v: Any, unit: str) -> str:
    before = report.get("model", {}).get("original", {}).get(key) if key == "macs" else None
    return before_after(before, v, unit)


def before_after(before: Any, after: Any, unit: str = "count") -> str:
    if before is None or before == after:
        return fmt_value(after, unit)
    return f"{fmt_value(before, unit)} → {fmt_value(after, unit)}"


def _model_rows(report: dict[str, Any]) -> list[Row]:
    m = report.get("model", {})
    orig = m.get("original", {})
    return [Row("", f"{what.capitalize()} (original → compiled)", before_after(orig.get(what), m.get(what)))
            for what in ("params", "nodes") if m.get(what) is not None or orig.get(what) is not None]


def mean_utilization(layers: list[dict[str, Any]]) -> tuple[float, str] | None:
    """The layers' mean utilization, weighted by latency when there is any, and how it was weighted."""
    rows = [r for r in layers if _number(r.get("utilization"))]
    if not rows:
        return None
    weights = [r.get("latency_s") if _number(r.get("latency_s")) else 0.0 for r in rows]
    if sum(weights) > 0:
        return sum(r["utilization"] * w for r, w in zip(rows, weights)) / sum(weights), "latency-weighted"
    return sum(r["utilization"] for r in rows) / len(rows), "plain"
