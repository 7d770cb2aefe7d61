"""report.json -> report.md (also the CI job summary) and a self-contained report.html.

The Markdown lives here with the number formatters other modules import
(``fmt_seconds``, ``fmt_joules``, ``fmt_count``, ``md_table``: ASCII units, for terminal
tables); the reports themselves write µs and µJ (``nncc.report_fields``). The HTML page is built in
``nncc.render_html`` (``render_html.page``). What the totals' keys mean (group, label, unit)
and their charts come from ``nncc.report_view``, so both formats show the same. Model, layer
and op names come from an untrusted model file: every such string is escaped for the format
it lands in.
"""

from __future__ import annotations

import re
from typing import Any

from nncc.report_fields import fmt_value, humanize, joules, seconds, unit_of
from nncc.report_view import chart_table, charts, grouped_totals

CORE_LAYER_FIELDS = ["name", "op", "macs", "latency_s", "energy_j", "utilization"]
MD_TOP_LAYERS = 10


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s:.3g} s"


def fmt_joules(j: float | None) -> str:
    if j is None:
        return "n/a"
    for unit, scale in (("J", 1), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(j) >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j:.3g} J"


def fmt_count(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def fmt_percent(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table; a ``|`` or line break inside a cell cannot break it."""
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_cell(c: Any) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", str(c)).replace("|", "\\|")


def md_escape(text: Any) -> str:
    """Untrusted text as literal Markdown: no markup, links or raw HTML survive rendering."""
    return re.sub(r"([\\`*\[\]<>#!&])", r"\\\1", str(text))


def extra_layer_fields(layers: list[dict[str, Any]]) -> list[str]:
    """Target-specific per-layer columns, in first-seen order."""
    seen: dict[str, None] = {}
    for row in layers:
        for key in row:
            if key not in CORE_LAYER_FIELDS:
                seen.setdefault(key)
    return list(seen)


def top_layers(layers: list[dict[str, Any]], key: str, n: int) -> tuple[list[dict[str, Any]], int, float]:
    """The ``n`` layers with the largest ``key`` (descending), and the count and sum of the rest."""
    ranked = sorted((r for r in layers if isinstance(r.get(key), (int, float))), key=lambda r: -r[key])
    rest = ranked[n:]
    return ranked[:n], len(rest), float(sum(r[key] for r in rest))


def totals_markdown(report: dict[str, Any]) -> list[str]:
    """The totals, grouped and labelled (nncc.report_view), then each breakdown as a table
    with shares, and the totals that are lists of records."""
    chart_list = charts(report)
    out = ["## Totals"]
    for group, rows in grouped_totals(report, chart_list):
        out += ["", f"### {group}", "", md_table(["", "value"], [[md_escape(r.label), md_escape(r.value)] for r in rows])]
    titled = [(c.title, chart_table(c)) for c in chart_list] + total_tables(report)
    for title, (header, rows) in titled:
        out += ["", f"**{md_escape(title)}**", "", md_table([md_escape(h) for h in header], [[md_escape(c) for c in r] for r in rows])]
    return out


def total_tables(report: dict[str, Any]) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """Totals that are lists of flat records (e.g. HyPar's per-level figures): (name, (header, rows)),
    each value in the unit its column's name implies (``comm_s`` in ms, ``*_bytes`` in kB)."""
    out = []
    for k, v in report["totals"].items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            header = list(dict.fromkeys(key for r in v for key in r))
            rows = [[fmt_value(r[key], unit_of(key)) if key in r else "" for key in header] for r in v]
            out.append((humanize(k).capitalize(), (header, rows)))
    return out


def measured_text(measured: dict[str, Any]) -> str:
    threads = measured.get("threads", 1)
    return (f"Measured on this host ({measured.get('executor', 'onnxruntime')}, {threads} thread{'s' if threads != 1 else ''}): "
            f"{seconds(measured.get('median_s'))} median.")


def verification_lines(v: dict[str, Any]) -> list[str]:
    if v.get("status") == "skipped":
        return ["skipped"]
    lines = []
    if "max_abs_error" in v:
        tol = "" if v.get("tolerance") is None else f", tolerance {v['tolerance']:.3g}"
        same = " (no pass changed the model: the original's own outputs)" if v.get("unchanged") else ""
        lines.append(f"{v['samples']} samples against the original in onnxruntime{same}: max abs error {v['max_abs_error']:.3g}, "
                     f"max rel error {v['max_rel_error']:.3g}{tol}: **{v['status']}**.")
    if "accuracy" in v:
        a = v["accuracy"]
        lines.append(f"Top-1 on {a['samples']} labelled samples: {a['top1_original']:.2%} original, {a['top1_compiled']:.2%} compiled.")
    return lines


def markdown(report: dict[str, Any]) -> str:
    m, t = report["model"], report["target"]
    layers, unsupported = report.get("layers", []), report.get("unsupported", [])
    out = [f"# nncc report: {md_escape(m['name'])} on {md_escape(t['name'])}", ""]
    if report.get("warnings"):  # first: the figures below must not be read without them
        out += [f"**Warnings ({len(report['warnings'])})**", ""]
        out += [f"- {md_escape(w.get('kind', ''))}: {md_escape(w.get('message', ''))}" for w in report["warnings"]] + [""]
    out += totals_markdown(report)
    if report.get("measured"):
        out += ["", measured_text(report["measured"])]
    out += ["", "## Passes", ""]
    if report.get("passes"):
        out.append(md_table(["pass", "params", "modified", "stats", "time"], [
            [md_escape(p["name"]), md_escape(kv(p.get("params", {}))), p.get("modified", ""), md_escape(pass_stats_text(p.get("stats", {}))),
             seconds(p.get("time_s"))] for p in report["passes"]
        ]))
    else:
        out.append("none")
    out += ["", "## Verification", "", *verification_lines(report.get("verification", {}))]
    if report.get("optimize"):
        out += ["", *optimize_lines(report["optimize"])]
    total_latency = sum(r["latency_s"] for r in layers if isinstance(r.get("latency_s"), (int, float)))
    if len(layers) > MD_TOP_LAYERS and total_latency > 0:
        top, rest, rest_sum = top_layers(layers, "latency_s", MD_TOP_LAYERS)
        out += ["", f"## Top {len(top)} layers by latency", ""]
        out.append(md_table(["name", "op", "latency", "share", "energy"], [
            [md_escape(r["name"]), md_escape(r["op"]), seconds(r["latency_s"]), fmt_percent(r["latency_s"] / total_latency),
             joules(r.get("energy_j"))] for r in top
        ] + [[f"other ({rest} layers)", "", seconds(rest_sum), fmt_percent(rest_sum / total_latency), ""]]))
    out += ["", f"## Layers ({len(layers)})", ""]
    columns = CORE_LAYER_FIELDS + extra_layer_fields(layers)
    out.append(md_table(columns, [[md_escape(layer_cell(k, row.get(k))) for k in columns] for row in layers]))
    if unsupported:
        out += ["", f"## Unsupported ({len(unsupported)})", "",
                md_table(["name", "op", "reason"], [[md_escape(u["name"]), md_escape(u["op"]), md_escape(u["reason"])] for u in unsupported])]
    out += ["", "## Target configuration", ""]
    sources = t.get("sources", {})
    if t.get("config"):
        out.append(md_table(["key", "value", "unit", "source"], [
            [md_escape(k), md_escape(cell(val)), md_escape(sources.get(k, {}).get("unit", "")), md_escape(sources.get(k, {}).get("source", ""))]
            for k, val in t["config"].items()
        ]))
    else:
        out.append(f"{md_escape(t['name'])} has no hardware constants.")
    if report.get("artifacts"):
        out += ["", "## Artifacts", "", *(f"- {md_escape(a)}" for a in report["artifacts"])]
    return "\n".join(out) + "\n"


def optimize_rows(search: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the ``nncc optimize`` points, shared by both formats."""
    fmt = joules if search["metric"] == "energy" else seconds
    rows = []
    for i, p in enumerate(search["points"]):
        marks = ", ".join(m for m, on in (("chosen", p["label"] == search["chosen"]), ("front", p["front"]),
                                          ("within budget", p["feasible"])) if on)
        rows.append([i + 1, p["label"], p["stage"], "" if p["accuracy"] is None else f"{p['accuracy']:.2%}",
                     "" if p["cost"] is None else fmt(p["cost"]), p["error"] or marks])
    return ["#", "point", "stage", "top-1", search["metric"], "notes"], rows


def optimize_lines(search: dict[str, Any]) -> list[str]:
    header, rows = optimize_rows(search)
    return [f"## Compression search ({len(rows)} points, {search['samples']} labelled samples)", "",
            f"Minimize {search['metric']} with top-1 at most {search['max_accuracy_drop']:.2%} below the original. "
            f"Method: {md_escape(search['method'])}"
            + (f"; {search['finetune_epochs']} epoch(s) of fine-tuning on separate training data after the structural passes"
               if search.get("finetune_epochs") else "") + f". Chosen: **{md_escape(search['chosen'])}**.", "",
            md_table(header, [[md_escape(c) for c in r] for r in rows])]


def kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={cell(v)}" for k, v in d.items()) if d else ""


def pass_stats_text(stats: dict[str, Any]) -> str:
    """One pass's stats in a table cell: its summary values, then its ``layers`` and ``skipped``
    tables (the schema of :mod:`nncc.pass_base`) as counts and names, so that a long table does
    not crowd the summary out of the cell."""
    tables = {key: stats[key] for key in ("layers", "skipped") if isinstance(stats.get(key), list)}
    parts = [kv({k: v for k, v in stats.items() if k not in tables})]
    parts += [f"{key}={len(rows)}" + (f" ({cell([r.get('name') for r in rows])})" if rows else "") for key, rows in tables.items()]
    return ", ".join(part for part in parts if part)


def layer_cell(key: str, v: Any, limit: int = 60) -> str:
    """One per-layer value as text, in the unit its key names (``comm_s`` in µs, ``*_j`` in nJ)."""
    if v is None:
        return ""
    if key == "utilization" and isinstance(v, (int, float)):
        return fmt_percent(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and unit_of(key):
        return fmt_value(v, unit_of(key))
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return cell(v, limit)


def cell(v: Any, limit: int = 60) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        items = (f"{k}={cell(x)}" for k, x in v.items()) if isinstance(v, dict) else (cell(x) for x in v)
        text = ", ".join(items)
        return text if len(text) < limit else text[: limit - 3] + "..."
    return "" if v is None else str(v)

