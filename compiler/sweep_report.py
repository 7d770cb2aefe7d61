"""A sweep's Pareto fronts, report.html (inline SVG scatter plots, a sortable table) and the
CSV/JSON exports.

Objectives: energy and latency per sample (``totals.per_sample``: comparable across targets
whose runs process different numbers of samples) and area, all minimized, and top-1 accuracy,
maximized, when the points have it. Fronts are per model: a design that costs less on a
smaller network does not beat one on a bigger network. A point is on the front when no other
point of its model is at least as good on every objective and better on one.

The page is one file that opens offline: SVG written here (no matplotlib: each point is an
element with a tooltip naming its parameters), a dozen lines of inline script to sort the
table, nothing fetched.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Callable
from typing import Any

from nncc.render import fmt_joules, fmt_seconds
from nncc.render_html import CSS, esc
from nncc.render_svg import FONT, PALETTE, x

# (name, how to read it from a row, minimize?, axis label, formatter)
OBJECTIVES: list[tuple[str, Callable[[dict[str, Any]], Any], bool, str, Callable[[float], str]]] = [
    ("energy", lambda r: r["totals"]["per_sample"]["energy_j"], True, "energy / sample", fmt_joules),
    ("latency", lambda r: r["totals"]["per_sample"]["latency_s"], True, "latency / sample", fmt_seconds),
    ("area", lambda r: r["totals"].get("area_mm2"), True, "area (mm²)", lambda v: f"{v:.4g} mm²"),
    ("accuracy", lambda r: r["accuracy"], False, "top-1", lambda v: f"{v:.1%}"),
]
PAIRS = [("latency", "energy"), ("area", "energy"), ("latency", "area"), ("energy", "accuracy")]
W, H = 560, 360
LEFT, RIGHT, TOP, BOTTOM = 78, 14, 30, 46


def value(row: dict[str, Any], name: str) -> float | None:
    get = next(o[1] for o in OBJECTIVES if o[0] == name)
    try:
        v = get(row)
    except (KeyError, TypeError):
        return None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def objectives(rows: list[dict[str, Any]]) -> list[str]:
    """The objectives every finished point of ``rows`` has (area: not every target models it)."""
    ok = [r for r in rows if r["status"] == "ok"]
    return [name for name, *_ in OBJECTIVES if ok and all(value(r, name) is not None for r in ok)]


def _signed(row: dict[str, Any], names: list[str]) -> tuple[float, ...]:
    """The objectives as numbers to minimize (accuracy negated)."""
    minimize = {o[0]: o[2] for o in OBJECTIVES}
    return tuple(value(row, n) if minimize[n] else -value(row, n) for n in names)


def front_keys(rows: list[dict[str, Any]]) -> set[str]:
    """Keys of the points on their model's Pareto front (over every objective all of its points have)."""
    keys: set[str] = set()
    for model in dict.fromkeys(r["model_sha256"] for r in rows):
        group = [r for r in rows if r["model_sha256"] == model and r["status"] == "ok"]
        names = objectives(group)
        scored = [(_signed(r, names), r["key"]) for r in group]
        for s, key in scored:
            if not any(all(a <= b for a, b in zip(t, s)) and t != s for t, _ in scored):
                keys.add(key)
    return keys


# --- exports -----------------------------------------------------------------------------

def flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per point: what --csv and --json write."""
    front = front_keys(rows)
    set_keys = sorted({k for r in rows for k in r["params"]["set"]})
    out = []
    for r in rows:
        t = r["totals"] or {}
        rec = {"key": r["key"], "model": r["model"], "model_sha256": r["model_sha256"], "target": r["target"]}
        rec.update({f"set.{k}": r["params"]["set"].get(k) for k in set_keys})
        rec["passes"] = " ".join(r["params"]["passes"])
        rec.update({"status": r["status"], "front": r["key"] in front,
                    "energy_j_per_sample": value(r, "energy") if t else None,
                    "latency_s_per_sample": value(r, "latency") if t else None,
                    "energy_j": t.get("energy_j"), "latency_s": t.get("latency_s"), "area_mm2": t.get("area_mm2"),
                    "accuracy": r["accuracy"], "coverage": (t.get("coverage") or {}).get("macs_fraction"),
                    "error": r["error"], "seconds": r["seconds"], "nncc_version": r["nncc_version"]})
        out.append(rec)
    return out


def export_csv(rows: list[dict[str, Any]]) -> str:
    records = flat(rows)
    buf = io.StringIO()
    if records:
        writer = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return buf.getvalue()


def export_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"schema": "nncc.sweep/1", "points": flat(rows),
                       "totals": {r["key"]: r["totals"] for r in rows}}, indent=1)


# --- the page ----------------------------------------------------------------------------

def page(rows: list[dict[str, Any]], title: str = "nncc sweep") -> str:
    front = front_keys(rows)
    targets = list(dict.fromkeys(r["target"] for r in rows))
    color = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(targets)}
    number = {r["key"]: i + 1 for i, r in enumerate(rows)}  # the table's # column, the plots' tooltips
    body = [f"<h1>{esc(title)}</h1>", _counts(rows)]
    for sha in dict.fromkeys(r["model_sha256"] for r in rows):
        group = [r for r in rows if r["model_sha256"] == sha and r["status"] == "ok"]
        if not group:
            continue
        names = objectives(group)
        on = [r for r in group if r["key"] in front]
        # An objective no parameter moves (reram's latency against its ADC bits) is a line of text, not an axis.
        fixed = [n for n in names if len({value(r, n) for r in group}) == 1]
        spec = {o[0]: o for o in OBJECTIVES}
        same = "; ".join(f"{spec[n][3]} is {spec[n][4](value(group[0], n))} at every point" for n in fixed)
        body.append(f"<h2>{esc(group[0]['model'])}: Pareto front of {esc(', '.join(names))}</h2>")
        body.append(f"<p class='note'>{len(on)} of {len(group)} finished points are on the front (filled, outlined; "
                    "the others are pale). The line in each plot is that plot's own two-objective front."
                    + (f" {esc(same)}." if same else "") + "</p>")
        plots = [scatter(group, a, b, front, color, number, f"plot-{sha[:8]}-{a}-{b}")
                 for a, b in PAIRS if a in names and b in names and a not in fixed and b not in fixed]
        body.append("<div class='plots'>" + "".join(plots) + "</div>")
        body.append(_legend(color, [t for t in targets if any(r["target"] == t for r in group)]))
    body += ["<h2>All points</h2>", "<p class='note'>Click a column heading to sort.</p>", _table(rows, front, number)]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{CSS}{EXTRA_CSS}</style></head><body><main>"
            + "".join(body) + f"</main><script>{SORT_JS}</script></body></html>")


EXTRA_CSS = """
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{background:#fff;border:1px solid #d8dce3}
tr.front td:first-child{border-left:4px solid #3569c4}th.sort{cursor:pointer}th.sort:after{content:" ⇅";color:#9aa3b2}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:11px;height:11px;border-radius:6px;margin-right:4px}
"""

# Sorts by each cell's data-v (a number where the column is numeric), ascending then descending.
SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], up = th.dataset.dir !== 'asc';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.dir); th.dataset.dir = up ? 'asc' : 'desc';
  const key = tr => { const v = tr.cells[col].dataset.v ?? tr.cells[col].textContent; return v === '' || isNaN(v) ? v : +v; };
  [...body.rows].sort((a, b) => { const p = key(a), q = key(b);
    const c = typeof p === typeof q ? (p < q ? -1 : p > q ? 1 : 0) : (typeof p === 'number' ? -1 : 1);
    return up ? c : -c; }).forEach(tr => body.appendChild(tr));
}));
"""


def _counts(rows: list[dict[str, Any]]) -> str:
    by: dict[str, int] = {}
    for r in rows:
        by[r["status"]] = by.get(r["status"], 0) + 1
    text = ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
    return (f"<p class='meta'>{len(rows)} points ({esc(text)}). Fronts are per model; energy and latency are per "
            "sample processed (totals.per_sample).</p>")


def _legend(color: dict[str, str], targets: list[str]) -> str:
    return "<p class='legend'>" + "".join(f"<span><i style='background:{color[t]}'></i>{esc(t)}</span>" for t in targets) + "</p>"


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        ticks = []
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
            steps = (1, 2, 5) if math.log10(hi / lo) < 3 else (1,)
            ticks += [m * 10 ** e for m in steps if lo <= m * 10 ** e <= hi]
        return ticks or [lo, hi]
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


class _Axis:
    """Value -> pixel on one axis: logarithmic when the values span more than 20×."""

    def __init__(self, values: list[float], a: float, b: float):
        lo, hi = min(values), max(values)
        self.log = lo > 0 and hi / lo > 20
        if self.log:
            lo, hi = lo / 1.15, hi * 1.15
        else:
            pad = (hi - lo) * 0.06 or abs(hi) * 0.05 or 1.0
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        f = (math.log(v / self.lo) / math.log(self.hi / self.lo)) if self.log else (v - self.lo) / (self.hi - self.lo)
        return self.a + f * (self.b - self.a)

    def ticks(self) -> list[float]:
        return _ticks(self.lo, self.hi, self.log)


def _pair_front(points: list[tuple[float, float]], y_min: bool) -> list[tuple[float, float]]:
    """The two-objective front of (x minimized, y minimized or maximized), by increasing x."""
    line: list[tuple[float, float]] = []
    for px, py in sorted(points, key=lambda p: (p[0], p[1] if y_min else -p[1])):
        if not line or (py < line[-1][1] if y_min else py > line[-1][1]):
            line.append((px, py))
    return line


def scatter(rows: list[dict[str, Any]], xname: str, yname: str, front: set[str], color: dict[str, str],
            number: dict[str, int], ident: str) -> str:
    spec = {o[0]: o for o in OBJECTIVES}
    xs, ys = [value(r, xname) for r in rows], [value(r, yname) for r in rows]
    ax, ay = _Axis(xs, LEFT, W - RIGHT), _Axis(ys, H - BOTTOM, TOP)
    fx, fy = spec[xname][4], spec[yname][4]
    title = f"{spec[yname][3]} against {spec[xname][3]}"
    body = [f"<text x='{LEFT}' y='18' font-weight='600'>{x(title)}</text>"]
    for t in ax.ticks():
        px = ax(t)
        body.append(f"<line x1='{px:.1f}' x2='{px:.1f}' y1='{TOP}' y2='{H - BOTTOM}' stroke='#eef1f5'/>"
                    f"<text x='{px:.1f}' y='{H - BOTTOM + 16}' text-anchor='middle' fill='#5b6475'>{x(fx(t))}</text>")
    for t in ay.ticks():
        py = ay(t)
        body.append(f"<line x1='{LEFT}' x2='{W - RIGHT}' y1='{py:.1f}' y2='{py:.1f}' stroke='#eef1f5'/>"
                    f"<text x='{LEFT - 6}' y='{py + 4:.1f}' text-anchor='end' fill='#5b6475'>{x(fy(t))}</text>")
    body.append(f"<rect x='{LEFT}' y='{TOP}' width='{W - LEFT - RIGHT}' height='{H - TOP - BOTTOM}' fill='none' stroke='#9aa3b2'/>")
    body.append(f"<text x='{(LEFT + W - RIGHT) / 2:.0f}' y='{H - 10}' text-anchor='middle'>{x(spec[xname][3])}"
                + (" (log)" if ax.log else "") + "</text>")
    body.append(f"<text transform='translate(14 {(TOP + H - BOTTOM) / 2:.0f}) rotate(-90)' text-anchor='middle'>"
                f"{x(spec[yname][3])}" + (" (log)" if ay.log else "") + "</text>")
    line = _pair_front(list(zip(xs, ys)), spec[yname][2])
    if len(line) > 1:
        path = [f"{ax(line[0][0]):.1f},{ay(line[0][1]):.1f}"]
        for (_x0, y0), (x1, y1) in itertools.pairwise(line):
            path += [f"{ax(x1):.1f},{ay(y0):.1f}", f"{ax(x1):.1f},{ay(y1):.1f}"]
        body.append(f"<polyline class='pair-front' points='{' '.join(path)}' fill='none' stroke='#3569c4' stroke-width='1.5'/>")
    # Dominated points first, so the front's are drawn on top.
    for r, vx, vy in sorted(zip(rows, xs, ys), key=lambda t: t[0]["key"] in front):
        on = r["key"] in front
        tip = f"#{number[r['key']]} {r['target']} {_params_text(r)}: {fx(vx)}, {fy(vy)}" + (" (Pareto front)" if on else "")
        style = (f"fill='{color[r['target']]}' stroke='#1d2330' stroke-width='1.5' r='5.5'" if on
                 else f"fill='{color[r['target']]}' fill-opacity='0.3' stroke='none' r='4'")
        body.append(f"<circle class='{'front' if on else 'point'}' data-key='{x(r['key'])}' cx='{ax(vx):.1f}' cy='{ay(vy):.1f}' "
                    f"{style}><title>{x(tip)}</title></circle>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' id='{x(ident)}' viewBox='0 0 {W} {H}' width='{W}' height='{H}' "
            f"role='img' aria-label='{x(title)}' {FONT}><title>{x(title)}</title>" + "".join(body) + "</svg>")


def _params_text(row: dict[str, Any]) -> str:
    sets = " ".join(f"{k}={v}" for k, v in row["params"]["set"].items())
    return " ".join(filter(None, [sets, *row["params"]["passes"]]))


def _varying(rows: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for r in rows for k in r["params"]["set"]})
    return [k for k in keys if len({r["params"]["set"].get(k) for r in rows}) > 1]


def _table(rows: list[dict[str, Any]], front: set[str], number: dict[str, int]) -> str:
    keys = _varying(rows)
    passes = len({tuple(r["params"]["passes"]) for r in rows}) > 1
    accuracy = any(r["accuracy"] is not None for r in rows)  # only with --eval
    header = ["#", "model", "target", *keys] + (["passes"] if passes else []) + [
        "status", "energy / sample", "latency / sample", "area mm²"] + (["top-1"] if accuracy else []) + [
        "coverage", "compile s", "front"]
    out = ["<div class='scroll'><table class='sortable'><thead><tr>"
           + "".join(f"<th class='sort'>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for r in rows:
        def num(v, fmt):
            return ("<td class='num' data-v=''></td>" if v is None
                    else f"<td class='num' data-v='{v!r}'>{esc(fmt(v))}</td>")
        cells = [num(number[r["key"]], str), f"<td>{esc(r['model'])}</td>", f"<td>{esc(r['target'])}</td>"]
        for k in keys:
            v = r["params"]["set"].get(k)
            cells.append(num(float(v), lambda _v, s=v: s) if _is_number(v) else f"<td>{esc(v if v is not None else '')}</td>")
        if passes:
            cells.append(f"<td>{esc(' '.join(r['params']['passes']))}</td>")
        ok = r["status"] == "ok"
        status = r["status"] if ok else f"{r['status']}: {r['error']}"
        cov = (r["totals"] or {}).get("coverage", {}).get("macs_fraction") if ok else None
        cells += [f"<td class='wrap'>{esc(status)}</td>",
                  num(value(r, "energy") if ok else None, fmt_joules), num(value(r, "latency") if ok else None, fmt_seconds),
                  num(value(r, "area") if ok else None, lambda v: f"{v:.4g}"),
                  *([num(r["accuracy"], lambda v: f"{v:.2%}")] if accuracy else []), num(cov, lambda v: f"{v:.1%}"),
                  num(r["seconds"], lambda v: f"{v:.1f}"), f"<td>{'yes' if r['key'] in front else ''}</td>"]
        out.append(f"<tr class='{'front' if r['key'] in front else ''}'>" + "".join(cells) + "</tr>")
    return "".join(out) + "</tbody></table></div>"


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
