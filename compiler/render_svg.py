"""The totals' charts (:class:`nncc.report_view.Chart`) as inline SVG, written by hand.

The per-layer plots are matplotlib's; these are not, because a breakdown is a handful of
rectangles whose widths must *be* the values (tests read them back), and whose labels should
stay real text: selectable, searchable, readable by a screen reader, sharp at any zoom. No
script, no font file, nothing fetched: the page stays one file that opens offline.
"""

from __future__ import annotations

import html
from typing import Any

from nncc.report_view import REST, Chart, chart_table, fmt_share

WIDTH = 1000
LABEL_W = 120          # bar labels (left column)
BAR_W = 700            # the longest bar; the others are drawn to the same scale
ROW_H, GAP = 30, 12
FONT = "font-family='system-ui,-apple-system,Segoe UI,Roboto,sans-serif' font-size='12'"
CHAR_W = 6.8           # average glyph width at 12 px: what a label may take before it is cut
# Tableau 10 without its grey, which is the colour of a target's un-itemized rest.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
REST_COLOR = "#c3c8d0"
HIST_COLOR = "#4e79a7"
LEGEND_COLS = 3


def x(text: Any) -> str:
    return html.escape(str(text), quote=True)


def cut(text: str, width_px: float) -> str:
    n = max(3, int(width_px / CHAR_W))
    return text if len(text) <= n else text[: n - 1] + "…"


def ink(fill: str) -> str:
    """Dark or white text, whichever contrasts more with ``fill`` (WCAG 2 relative luminance)."""
    lin = [(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
           for c in (int(fill[i:i + 2], 16) / 255 for i in (1, 3, 5))]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "#ffffff" if 1.05 / (lum + 0.05) > (lum + 0.05) / 0.06 else "#1d2330"


def colors(chart: Chart) -> dict[str, str]:
    names = list(dict.fromkeys(name for bar in chart.bars for name, _ in bar.parts))
    out, i = {}, 0
    for name in names:
        if name == REST:
            out[name] = REST_COLOR
        else:
            out[name] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def svg(chart: Chart, ident: str) -> str:
    return stacked(chart, ident) if chart.kind == "stacked" else histogram(chart, ident)


def _frame(ident: str, title: str, height: int, body: list[str]) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' id='{x(ident)}' viewBox='0 0 {WIDTH} {height}' "
            f"width='{WIDTH}' height='{height}' role='img' aria-label='{x(title)}' {FONT}>"
            f"<title>{x(title)}</title>" + "".join(body) + "</svg>")


def stacked(chart: Chart, ident: str) -> str:
    """One horizontal bar per :class:`Bar`, its parts stacked in order, all bars on one scale;
    a share is printed inside a part wide enough to hold it, and every part is in the legend."""
    color = colors(chart)
    scale = BAR_W / max(bar.total for bar in chart.bars)
    body, y = [], 8
    for bar in chart.bars:
        body.append(f"<text x='{LABEL_W - 8}' y='{y + ROW_H / 2 + 4:.1f}' text-anchor='end' font-weight='600'>"
                    f"{x(cut(bar.label, LABEL_W - 12))}</text>")
        left = LABEL_W
        for name, value in bar.parts:
            w = value * scale
            share = value / bar.total
            body.append(f"<rect class='part' x='{left:.3f}' y='{y}' width='{w:.3f}' height='{ROW_H}' fill='{color[name]}' "
                        f"data-part='{x(name)}' data-value='{value!r}'><title>{x(name)}: {x(chart.fmt(value))} "
                        f"({fmt_share(share)})</title></rect>")
            label = f"{share:.0%}"
            if w >= CHAR_W * (len(label) + 1):
                body.append(f"<text x='{left + w / 2:.1f}' y='{y + ROW_H / 2 + 4:.1f}' text-anchor='middle' "
                            f"fill='{ink(color[name])}' pointer-events='none'>{label}</text>")
            left += w
        body.append(f"<text x='{left + 8:.1f}' y='{y + ROW_H / 2 + 4:.1f}' font-weight='600'>{x(chart.fmt(bar.total))}</text>")
        y += ROW_H + GAP
    body += _legend(chart, color, y + 4)
    rows = -(-len(color) // LEGEND_COLS)
    return _frame(ident, chart.title, y + 4 + rows * 22 + 4, body)


def _legend(chart: Chart, color: dict[str, str], top: int) -> list[str]:
    """Swatch, name, and (for a single bar) value and share: small parts get their number here."""
    col_w = (WIDTH - LABEL_W) / LEGEND_COLS
    single = chart.bars[0] if len(chart.bars) == 1 else None
    out = []
    for i, name in enumerate(color):
        cx, cy = LABEL_W + (i % LEGEND_COLS) * col_w, top + (i // LEGEND_COLS) * 22
        figure = ""
        if single is not None:
            value = dict(single.parts)[name]
            figure = f" {chart.fmt(value)} · {fmt_share(value / single.total)}"
        text = cut(name, col_w - 24 - CHAR_W * len(figure)) + figure
        out.append(f"<rect x='{cx:.1f}' y='{cy}' width='12' height='12' rx='2' fill='{color[name]}'/>"
                   f"<text class='legend' x='{cx + 18:.1f}' y='{cy + 10}'>{x(text)}</text>")
    return out


def histogram(chart: Chart, ident: str) -> str:
    """One bar per category, on one scale, each with its count and its share of all."""
    (bar,) = chart.bars
    scale = BAR_W / max(v for _, v in bar.parts)
    body, y = [], 8
    for name, value in bar.parts:
        w = value * scale
        body += [f"<text x='{LABEL_W - 8}' y='{y + 15}' text-anchor='end'>{x(cut(name, LABEL_W - 12))}</text>",
                 (f"<rect class='part' x='{LABEL_W}' y='{y}' width='{w:.3f}' height='20' fill='{HIST_COLOR}' "
                  f"data-part='{x(name)}' data-value='{value!r}'><title>{x(name)}: {x(chart.fmt(value))}</title></rect>"),
                 f"<text x='{LABEL_W + w + 8:.1f}' y='{y + 15}'>{x(chart.fmt(value))} ({fmt_share(value / bar.total)})</text>"]
        y += 28
    return _frame(ident, chart.title, y + 4, body)


def charts_html(chart_list: list[Chart], table: Any) -> list[str]:
    """The "Breakdowns" part of the page: per chart a heading, the SVG and, where a legend
    cannot carry every figure (several bars), the values as a table (``table`` builds it)."""
    if not chart_list:
        return []
    out = ["<h3>Breakdowns</h3>"]
    for i, chart in enumerate(chart_list):
        out += [f"<h4>{x(chart.title)}</h4>", f"<div class='plot chart'>{svg(chart, f'chart-{i}')}</div>"]
        if len(chart.bars) > 1:
            header, rows = chart_table(chart)
            out.append(table(header, rows, numeric=set(range(1, len(header)))))
            out.append("<p class='note'>Bars share one scale: their lengths compare the totals.</p>")
    return out
