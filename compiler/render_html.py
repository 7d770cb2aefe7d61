"""report.json -> one self-contained report.html: inline CSS, inline SVG plots, no JavaScript.

Every string taken from the report goes through :func:`esc` (names come from an untrusted
model file); markup built here is wrapped in :class:`Html` so tables know not to escape it.
Per-layer plots are drawn by matplotlib on the Agg backend and inlined as SVG with text as
paths; the totals' breakdown charts are SVG written by ``nncc.render_svg``. Either way the page
needs no fonts, scripts or network.
"""

from __future__ import annotations

import html as html_lib
import io
import re
from typing import Any, Callable

from nncc.render import (CORE_LAYER_FIELDS, cell, extra_layer_fields, fmt_percent, kv, layer_cell, measured_text,
                         optimize_rows, pass_stats_text, top_layers, total_tables)
from nncc.report_fields import joules, seconds
from nncc.render_svg import charts_html
from nncc.report_view import charts, grouped_totals, mean_utilization

PLOT_TOP_N = 40        # bars per chart; the rest are summed into one "other" bar
LABEL_CHARS = 48       # longer layer names are cut in plot labels (the table has them whole)
CARD_NUMBER_CHARS = 24  # a longer totals value is prose (a calibration note): left-aligned, wrapped

CSS = """
.warnings { border-left: 4px solid #d97706; background: #fffbeb; padding: 0.2em 1em; margin: 1em 0; }
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
.meta{color:#5b6475;margin:0 0 16px;word-break:break-all}
table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:13px}
th,td{border:1px solid #d8dce3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{max-height:640px;overflow:auto;border:1px solid #d8dce3}.scroll table{margin:0;width:max-content}
.scroll thead th{position:sticky;top:0}.wide{overflow-x:auto}.wrap{white-space:normal;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 8px;border-radius:9px;font-weight:600;font-size:12px}
.passed{background:#d9f2e0;color:#14642e}.failed{background:#fbdada;color:#8f1d1d}.skipped{background:#e8eaee;color:#4b5363}
.note{color:#5b6475;font-size:13px}.plot svg{max-width:100%;height:auto;background:#fff}
.groups{columns:360px 3;column-gap:12px}
.card{break-inside:avoid;background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:4px 10px 8px;margin:0 0 12px}
.card h3{font-size:14px;margin:4px 0;color:#3569c4}.card table{width:100%;margin:0;border:0}
.card td{border:0;border-top:1px solid #eef1f5}.card tr:nth-child(even){background:none}
.card td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}.card td.text{color:#3d4555}
h3{font-size:16px;margin:20px 0 6px}h4{font-size:14px;margin:14px 0 4px}.plot svg.chart{background:none}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
"""


class Html(str):
    """Markup built here: tables insert it as is instead of escaping it."""


def esc(v: Any) -> str:
    return v if isinstance(v, Html) else html_lib.escape("" if v is None else str(v), quote=True)


def table(header: list[str], rows: list[list[Any]], numeric: set[int] = frozenset(), cls: str = "") -> Html:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{esc(c)}</td>" if i in numeric else f"<td>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return Html(f"<div class='{cls}'>{out}</div>" if cls else out)


def badge(status: Any) -> Html:
    kind = status if status in ("passed", "failed", "skipped") else "skipped"
    return Html(f"<span class='badge {kind}'>{esc(status)}</span>")


def page(report: dict[str, Any]) -> str:
    m, t = report["model"], report["target"]
    title = f"nncc report: {m['name']} on {t['name']}"
    parts = [
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>nncc {esc(report.get('nncc_version', '?'))} · schema {esc(report.get('schema', '?'))} · "
        f"model sha256 <code>{esc(m.get('sha256', '?'))}</code></p>",
    ] + warnings_section(report.get("warnings", [])) + totals_section(report)
    if report.get("measured"):
        parts.append(f"<p>{esc(measured_text(report['measured']))}</p>")
    parts += model_section(m) + passes_section(report.get("passes", [])) + verification_section(report.get("verification", {}))
    if report.get("optimize"):
        parts += optimize_section(report["optimize"])
    parts += plots_section(report.get("layers", []))
    parts += layers_section(report.get("layers", [])) + unsupported_section(report.get("unsupported", []))
    parts += target_section(t) + artifacts_section(report.get("artifacts", []))
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(parts) + "\n</main></body></html>\n")


def warnings_section(warnings: list[dict[str, Any]]) -> list[str]:
    """What compile warned about, first: a figure on random calibration or partial coverage must
    not be read without it."""
    if not warnings:
        return []
    items = "".join(f"<li><b>{esc(w.get('kind', ''))}</b>: {esc(w.get('message', ''))}</li>" for w in warnings)
    return [f"<div class='warnings'><h2>Warnings ({len(warnings)})</h2><ul>{items}</ul></div>"]


def totals_section(report: dict[str, Any]) -> list[str]:
    """Grouped, labelled totals as cards (the raw key in each value's tooltip), then the
    "Breakdowns" group as charts rather than rows, then the totals that are record tables."""
    chart_list = charts(report)
    cards = []
    for group, rows in grouped_totals(report, chart_list):
        if group == "Breakdowns":
            continue
        body = "".join(
            f"<tr><td>{esc(r.label)}</td><td class='{'num' if len(r.value) <= CARD_NUMBER_CHARS else 'text'}'"
            + (f" title='{esc(r.tooltip)}'" if r.key else "") + f">{esc(r.value)}</td></tr>" for r in rows)
        cards.append(f"<section class='card'><h3>{esc(group)}</h3><table><tbody>{body}</tbody></table></section>")
    out = ["<h2>Totals</h2>", "<div class='groups'>" + "".join(cards) + "</div>"]
    out += charts_html(chart_list, table)
    for name, (header, rows) in total_tables(report):
        out += [f"<h3>{esc(name)}</h3>", table(header, rows, numeric=set(range(1, len(header))))]
    return out


def model_section(m: dict[str, Any]) -> list[str]:
    io_rows = [[kind, x.get("name"), "×".join(map(str, x.get("shape") or [])) or "?", x.get("dtype", "")]
               for kind in ("inputs", "outputs") for x in m.get(kind, [])]
    out = ["<h2>Model</h2>"]
    if m.get("path"):
        out.append(f"<p class='meta'>{esc(m['path'])}</p>")
    if io_rows:
        out.append(table(["", "name", "shape", "dtype"], [[k[:-1], *rest] for k, *rest in io_rows]))
    if m.get("ops"):
        out.append(f"<p class='note'>ops: {esc(', '.join(f'{k}×{v}' for k, v in m['ops'].items()))}</p>")
    return out


def passes_section(passes: list[dict[str, Any]]) -> list[str]:
    if not passes:
        return ["<h2>Passes</h2>", "<p>none</p>"]
    return ["<h2>Passes</h2>", table(["pass", "params", "modified", "stats", "time"], [
        [p["name"], kv(p.get("params", {})), p.get("modified", ""), pass_stats_text(p.get("stats", {})), seconds(p.get("time_s"))]
        for p in passes], numeric={4})]


def verification_section(v: dict[str, Any]) -> list[str]:
    out = ["<h2>Verification</h2>"]
    if v.get("status") == "skipped" or not v:
        return out + [f"<p>{badge('skipped')}</p>"]
    rows = []
    if "max_abs_error" in v:
        rows += [["status", badge(v.get("status"))], ["samples", v.get("samples")],
                 ["max abs error", f"{v['max_abs_error']:.3g}"], ["max rel error", f"{v['max_rel_error']:.3g}"],
                 ["tolerance", "none (recorded only)" if v.get("tolerance") is None else f"{v['tolerance']:.3g}"]]
        if v.get("unchanged"):
            rows.append(["compiled model", "identical to the original (no pass changed it): the original's own outputs"])
    if "accuracy" in v:
        a = v["accuracy"]
        rows += [["top-1 original", f"{a['top1_original']:.2%}"], ["top-1 compiled", f"{a['top1_compiled']:.2%}"],
                 ["labelled samples", a["samples"]]]
    out.append(table(["", "value"], rows))
    ref = ", ".join(str(v[k]) for k in ("reference", "inputs") if v.get(k))
    return out + ([f"<p class='note'>against {esc(ref)}</p>"] if ref else [])


# --- plots -----------------------------------------------------------------------------

def optimize_section(search: dict[str, Any]) -> list[str]:
    """``nncc optimize``: accuracy against cost of every point, the Pareto front joined."""
    fmt = joules if search["metric"] == "energy" else seconds
    ok = [p for p in search["points"] if p["error"] is None]
    base = next(p for p in ok if p["label"] == search["base"])
    fig, ax = _figure(12)
    ax.grid(axis="y", color="#e3e6eb", linewidth=0.6)
    ax.scatter([p["cost"] for p in ok], [p["accuracy"] for p in ok], s=18, color="#9aa3b2", label="evaluated", zorder=2)
    front = sorted((p for p in ok if p["front"]), key=lambda p: p["cost"])
    ax.step([p["cost"] for p in front], [p["accuracy"] for p in front], where="post", color="#3569c4", zorder=3)
    ax.scatter([p["cost"] for p in front], [p["accuracy"] for p in front], s=26, color="#3569c4", label="Pareto front", zorder=4)
    chosen = next(p for p in ok if p["label"] == search["chosen"])
    ax.scatter([chosen["cost"]], [chosen["accuracy"]], s=90, facecolors="none", edgecolors="#d1495b", linewidths=2,
               label="chosen", zorder=5)
    ax.axhline(base["accuracy"] - search["max_accuracy_drop"], color="#d1495b", linestyle="--", linewidth=0.8,
               label="accuracy budget")
    number = {p["label"]: i + 1 for i, p in enumerate(search["points"])}  # the table's "#" column
    for p in front + [chosen]:
        ax.annotate(f"#{number[p['label']]}", (p["cost"], p["accuracy"]), fontsize=8, xytext=(4, 5), textcoords="offset points")
    # The y axis follows the front and the budget: a collapsed point far below would flatten them.
    floor = min([p["accuracy"] for p in front] + [base["accuracy"] - search["max_accuracy_drop"]])
    top = max(p["accuracy"] for p in ok)
    low = max(0.0, floor - max(0.05, 0.25 * (top - floor)))
    ax.set_ylim(low, min(1.0, top + 0.02) if top < 1.0 else 1.005)
    below = sum(p["accuracy"] < low for p in ok)
    ax.xaxis.set_major_formatter(lambda x, _pos: fmt(x) if x else "0")
    ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")
    ax.set_xlabel(search["metric"])
    ax.set_ylabel("top-1")
    ax.legend(fontsize=8, loc="lower right")
    header, rows = optimize_rows(search)
    note = (f"Minimize {search['metric']} with top-1 at most {search['max_accuracy_drop']:.2%} below the original "
            f"({search['samples']} labelled samples). Method: {search['method']}. Labels: the table's # column."
            + (f" {below} point(s) below {low:.0%} top-1 are off the plot (see the table)." if below else ""))
    return ["<h2>Compression search: accuracy against cost</h2>", _svg_block(fig, "pareto"),
            f"<p class='note'>{esc(note)}</p>", table(header, rows, numeric={0, 3, 4})]


def plots_section(layers: list[dict[str, Any]]) -> list[str]:
    out = ["<h2>Per-layer cost</h2>"]
    for key, what, fmt in (("latency_s", "latency", seconds), ("energy_j", "energy", joules)):
        out += bar_chart(layers, key, what, fmt)
    if any(isinstance(r.get("utilization"), (int, float)) for r in layers):
        out += utilization_chart(layers)
    return out


def bar_chart(layers: list[dict[str, Any]], key: str, what: str, fmt: Callable[[float], str]) -> list[str]:
    top, rest, rest_sum = top_layers(layers, key, PLOT_TOP_N)
    total = sum(r[key] for r in top) + rest_sum
    if not top or total <= 0:
        return [f"<p class='note'>Every layer's {what} is zero or missing: no {what} plot.</p>"]
    labels = [_label(r) for r in top]
    values = [float(r[key]) for r in top]
    colors = ["#3569c4"] * len(top)
    if rest:
        labels.append(f"other ({rest} layers)")
        values.append(rest_sum)
        colors.append("#9aa3b2")
    # A huge "other" bar would flatten the top layers: the axis follows them and that bar is cut.
    limit = max(values[: len(top)]) * 1.25
    cut = rest and rest_sum > limit
    fig, ax = _figure(len(values))
    y = range(len(values))
    bars = ax.barh(y, [min(v, limit) for v in values], color=colors)
    if cut:
        bars[-1].set_hatch("//")
    ax.set_yticks(list(y), labels=labels, parse_math=False, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, limit * 1.2)
    ax.xaxis.set_major_formatter(lambda x, _pos: fmt(x) if x else "0")
    ax.set_xlabel(what)
    for i, val in enumerate(values):
        mark = " (bar cut)" if cut and i == len(values) - 1 else ""
        ax.text(min(val, limit), i, f" {fmt(val)} ({val / total:.1%}){mark}", va="center", fontsize=7, parse_math=False)
    caption = (f"Top {len(top)} of {len(top) + rest} layers by {what}; the other {rest} are summed in the grey bar"
               + (", drawn cut (hatched) so the top layers stay readable." if cut else ".")
               if rest else f"All {len(top)} layers with {'an' if what[0] in 'aeiou' else 'a'} {what}, largest first.")
    return [_svg_block(fig, what), f"<p class='note'>{esc(caption)} Total {esc(fmt(total))}.</p>"]


def utilization_chart(layers: list[dict[str, Any]]) -> list[str]:
    rows = [(i, r) for i, r in enumerate(layers) if isinstance(r.get("utilization"), (int, float))]
    values = [float(r["utilization"]) for _, r in rows]
    few = len(rows) <= PLOT_TOP_N
    fig, ax = _figure(len(rows) if few else 12)
    if few:
        y = range(len(rows))
        ax.barh(y, values, color="#2f9e77")
        ax.set_yticks(list(y), labels=[_label(r) for _, r in rows], parse_math=False, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max(1.0, max(values)))
        ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:.0%}")
        ax.set_xlabel("utilization")
    else:
        ax.bar([i for i, _ in rows], values, width=1.0, color="#2f9e77")
        ax.set_ylim(0, max(1.0, max(values)))
        ax.yaxis.set_major_formatter(lambda x, _pos: f"{x:.0%}")
        ax.set_xlabel("layer index (execution order)")
        ax.set_ylabel("utilization")
    mean, how = mean_utilization(layers)
    caption = f"Utilization of the {len(rows)} layers that report one, in execution order; {how} mean {fmt_percent(mean)}."
    return [_svg_block(fig, "utilization"), f"<p class='note'>{esc(caption)}</p>"]


def _label(row: dict[str, Any]) -> str:
    text = f"{row.get('name', '?')} ({row.get('op', '?')})"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _figure(bars: int):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    fig = Figure(figsize=(10, 1.0 + 0.24 * max(bars, 3)), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(axis="x", color="#e3e6eb", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _svg_block(fig, name: str) -> str:
    """``fig`` as inline SVG markup; ``name`` (a fixed word, unique in the page) prefixes its ids."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "nncc"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]                                   # drop the XML declaration and DOCTYPE
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # Several SVGs share one HTML document: give this one's ids their own prefix.
    prefix = f"{name}-"
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r'(href="#|url\(#)([^")]+)', rf"\g<1>{prefix}\2", svg)
    svg = svg.replace("<svg ", f"<svg role='img' aria-label='{esc(name)} per layer' ", 1)
    return f"<div class='plot'>{svg}</div>"


# --- tables ----------------------------------------------------------------------------

def layers_section(layers: list[dict[str, Any]]) -> list[str]:
    columns = CORE_LAYER_FIELDS + extra_layer_fields(layers)
    total_latency = sum(r["latency_s"] for r in layers if isinstance(r.get("latency_s"), (int, float)))
    header = columns[:5] + ["latency share"] + columns[5:]
    rows = []
    for r in layers:
        lat = r.get("latency_s")
        share = fmt_percent(lat / total_latency) if total_latency > 0 and isinstance(lat, (int, float)) else ""
        cells = [_layer_cell(k, r.get(k)) for k in columns]
        rows.append(cells[:5] + [share] + cells[5:])
    numeric = {i for i, k in enumerate(header) if k not in ("name", "op") and _is_numeric_column(layers, k)} | {5}
    return [f"<h2>Layers ({len(layers)})</h2>", table(header, rows, numeric=numeric, cls="scroll")]


def _is_numeric_column(layers: list[dict[str, Any]], key: str) -> bool:
    return all(isinstance(r.get(key), (int, float, type(None))) for r in layers)


def _layer_cell(key: str, v: Any) -> Any:
    text = layer_cell(key, v, limit=120)
    return Html(f"<span title='{esc(v)}'>{esc(text)}</span>") if not isinstance(v, (int, float)) and text != str(v) else text


def unsupported_section(unsupported: list[dict[str, Any]]) -> list[str]:
    if not unsupported:
        return []
    return [f"<h2>Unsupported ({len(unsupported)})</h2>",
            "<p class='note'>No estimator of the target could cost these ops; they are not counted in the totals.</p>",
            table(["name", "op", "reason"], [[u.get("name"), u.get("op"), u.get("reason")] for u in unsupported])]


def target_section(t: dict[str, Any]) -> list[str]:
    out = [f"<h2>Target configuration: {esc(t['name'])}</h2>"]
    config, sources = t.get("config", {}), t.get("sources", {})
    if not config:
        return out + [f"<p>{esc(t['name'])} has no hardware constants.</p>"]
    rows = [[k, _wrapping(cell(v, limit=120)), sources.get(k, {}).get("unit", ""), sources.get(k, {}).get("source", ""),
             sources.get(k, {}).get("note", "")] for k, v in config.items()]
    return out + [table(["key", "value", "unit", "source", "note"], rows, numeric={1}, cls="wide")]


def _wrapping(text: str) -> Any:
    """A long value in a number column may wrap: unwrapped, reram's adc_table took the width
    of the sources column and pushed the table past the page."""
    return Html(f"<span class='wrap'>{esc(text)}</span>") if len(text) > CARD_NUMBER_CHARS else text


def artifacts_section(artifacts: list[str]) -> list[str]:
    if not artifacts:
        return []
    items = []
    for a in artifacts:
        # Artifacts sit beside report.html: link plain relative paths only.
        plain = not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^/|\\|(^|/)\.\.(/|$)", a)
        items.append(f"<li><a href='{esc(a)}'><code>{esc(a)}</code></a></li>" if plain else f"<li><code>{esc(a)}</code></li>")
    return ["<h2>Artifacts</h2>", "<ul>" + "".join(items) + "</ul>"]
