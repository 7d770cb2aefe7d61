"""What a totals key of report.json means on a page: its group, a human label and a unit.

report.json keeps the targets' raw keys (``pipelined_interval_s``, ``adc_bits_histogram``)
because scripts and ``compare --baseline`` read them; the reports translate them through one
table instead of branching on key names: :data:`FIELDS` for the keys every target shares,
then the rows the report's own target declares for its keys (``Target.report_fields``, so a
plugin target labels its figures without touching nncc). A key is matched on its dotted path
(nested dicts are flattened: ``coverage.macs_fraction``, ``per_sample.energy_j``). A key no
row declares still appears, raw, in the "Other" group: a report never drops a figure because
nobody labelled it.

Values are formatted with an SI prefix chosen per value (µs next to ms), since one report
mixes a 2 pJ shift-add with a 6 mJ training step.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

GROUPS = ("Cost", "Unit of work", "Model", "Coverage", "Structure", "Activity", "Comparison", "Notes", "Breakdowns",
          "Other")


@dataclasses.dataclass(frozen=True)
class Field:
    """Keys that fully match ``pattern`` land in ``group`` as ``label`` (``{0}``, ``{1}``: the
    pattern's groups, humanized), formatted as ``unit`` ("" = from the key's suffix)."""

    pattern: str
    group: str
    label: str
    unit: str = ""


# The keys every target shares. First match wins, and rows within a group follow this order
# (a target's own rows after these, undeclared keys last).
FIELDS = tuple(Field(*row) for row in (
    ("latency_s", "Cost", "Latency", "s"),
    ("energy_j", "Cost", "Energy", "J"),
    ("area_mm2", "Cost", "Area", "mm2"),
    ("throughput_fps", "Cost", "Throughput", "/s"),
    ("pipelined_interval_s", "Cost", "Pipelined interval (a new input every)", "s"),
    ("invoke_overhead_s", "Cost", "Per-call overhead (included in latency)", "s"),
    ("latency_ticks", "Cost", "Latency in ticks", "ticks"),
    ("pipeline_depth_ticks", "Cost", "Pipeline depth", "ticks"),
    # The workload a figure is for (inference of one sample, a training step of a batch...).
    (r"workload\.kind", "Unit of work", "Workload"),
    (r"workload\.batch", "Unit of work", "Batch", "count"),
    (r"workload\.(.+)", "Unit of work", "{0}"),
    (r"per_sample\.latency_s", "Unit of work", "Latency per sample", "s"),
    (r"per_sample\.energy_j", "Unit of work", "Energy per sample", "J"),
    (r"per_sample\.basis", "Unit of work", "Per-sample figures are"),
    (r"per_sample\.(.+)", "Unit of work", "{0} per sample"),
    ("batch", "Unit of work", "Batch", "count"),
    ("gradient", "Unit of work", "Gradient precision"),
    ("macs", "Model", "MACs", "count"),
    ("weight_bytes", "Model", "Weights", "B"),
    ("unsupported_ops", "Coverage", "Unsupported ops", "count"),
    (r"coverage\.macs_fraction", "Coverage", "Share of MACs costed", "%"),
    (r"coverage\.complete", "Coverage", "Fully costed", "bool"),
    (r"coverage\.macs_costed", "Coverage", "MACs costed", "count"),
    (r"coverage\.macs_total", "Coverage", "MACs in the model", "count"),
    (r"coverage\.unsupported_nodes", "Coverage", "Nodes left out", "count"),
    (r"coverage\.unsupported_ops", "Coverage", "Op types left out"),
    (r"coverage\.macs_unknown_nodes", "Coverage", "Nodes of unknown MACs", "count"),
    (r"coverage\.(.+)", "Coverage", "{0}"),
    (r"vs_uncompressed\.(.+)", "Comparison", "{0} vs. uncompressed", "x"),
))

# A unit a key's name implies, for keys declared without one and for undeclared keys.
SUFFIX_UNITS = (("_s", "s"), ("_j", "J"), ("_mm2", "mm2"), ("_bytes", "B"), ("_fps", "/s"), ("_hz", "Hz"),
                ("_fraction", "%"), ("_ratio", "x"), ("_ticks", "ticks"), ("cycles", "cycles"))
# Words read better capitalized in a label; everything else is the key with spaces.
ACRONYMS = {"adc": "ADC", "dac": "DAC", "dram": "DRAM", "sram": "SRAM", "rf": "RF", "glb": "GLB", "noc": "NoC",
            "pe": "PE", "macs": "MACs", "mvms": "MVMs", "ucnn": "UCNN", "dp": "DP", "mp": "MP", "gemm": "GEMM",
            "comm": "communication"}
SI_PREFIXES = (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3), ("µ", 1e-6), ("n", 1e-9), ("p", 1e-12),
               ("f", 1e-15))
# How far up and down each unit takes SI prefixes: no "ks" or "mB".
SI_RANGE = {"s": (1.0, 1e-15), "J": (1.0, 1e-15), "B": (1e9, 1.0), "Hz": (1e9, 1.0), "/s": (1e9, 1e-3), "W": (1e3, 1e-15)}


def with_target_rows(rows: Iterable[Sequence[str]]) -> tuple[Field, ...]:
    """:data:`FIELDS` then a target's own rows ``(pattern, group, label[, unit])``. A plugin's
    row must not break a report: one whose pattern does not compile, or whose label asks for
    more ``{n}`` than the pattern has groups, is left out (its keys show raw), and a group
    outside :data:`GROUPS` becomes "Other"."""
    own = []
    for row in rows:
        try:
            f = Field(*row)
            f.label.format(*[""] * re.compile(f.pattern).groups)
        except (TypeError, re.error, IndexError, KeyError, ValueError):
            continue
        own.append(f if f.group in GROUPS else dataclasses.replace(f, group="Other"))
    return FIELDS + tuple(own)


def field_for(key: str, fields: tuple[Field, ...] = FIELDS) -> tuple[str, str, str]:
    """(group, label, unit) of a dotted totals key; an undeclared key is "Other", raw."""
    for f in fields:
        m = re.fullmatch(f.pattern, key)
        if m:
            label = f.label.format(*(humanize(g) for g in m.groups()))
            return f.group, label[:1].upper() + label[1:], f.unit or unit_of(m.groups()[-1] if m.groups() else key)
    return "Other", key, unit_of(key)


def field_order(key: str, fields: tuple[Field, ...] = FIELDS) -> int:
    return next((i for i, f in enumerate(fields) if re.fullmatch(f.pattern, key)), len(fields))


def unit_of(key: str) -> str:
    key = key.lower()
    if key.startswith("bytes_"):    # hypar's bytes_per_pair, bytes_all_links
        return "B"
    return next((unit for suffix, unit in SUFFIX_UNITS if key.endswith(suffix)), "")


def humanize(key: str) -> str:
    """``tile_overhead_area_mm2`` -> "tile overhead area"; ``glb_noc_j`` -> "GLB NoC"."""
    stem = key
    for suffix, _ in SUFFIX_UNITS:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return " ".join(ACRONYMS.get(w.lower(), w) for w in re.split(r"[_\s]+", stem) if w)


def fmt_si(x: float, unit: str) -> str:
    """``x`` with the SI prefix that puts 1 to 3 digits before the point (µ, not u)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g} {unit}"
    top, bottom = SI_RANGE.get(unit, (1e9, 1e-15))
    x = float(f"{x:.3g}")    # round first: 999.96 µs is "1 ms", not "1e+03 µs"
    for prefix, scale in SI_PREFIXES:
        if bottom <= scale <= top and (abs(x) >= scale or scale == bottom):
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def fmt_area(mm2: float) -> str:
    # µm² below 0.01 mm²: one crossbar is a few thousand µm², unreadable as 0.00282 mm².
    return f"{sig3(mm2)} mm²" if abs(mm2) >= 0.01 or mm2 == 0 else f"{sig3(mm2 * 1e6)} µm²"


def sig3(v: float) -> str:
    """Three significant digits, never in exponent form for a number a page shows whole (2,818)."""
    return f"{v:,.0f}" if 1e3 <= abs(v) < 1e15 else f"{v:.3g}"


def fmt_value(v: Any, unit: str = "") -> str:
    """One figure as page text, in ``unit`` (see :data:`SUFFIX_UNITS`); any JSON value works."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt_value(x, unit_of(str(k)))}" for k, x in v.items()) if v else "none"
    if not isinstance(v, (int, float)):
        return str(v)
    if unit in SI_RANGE:
        return fmt_si(v, unit)
    if unit == "mm2":
        return fmt_area(v)
    if unit == "%":
        return f"{v:.1%}"
    if unit == "x":
        return f"{v:.3g}×"
    if abs(v) >= 1e6:     # 1.81 G MACs: the exact count is in the page's tooltip and in report.json
        text = fmt_si(v, "").rstrip()
    else:
        text = f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 1e3 else f"{v:.4g}"
    return f"{text} {unit}" if unit in ("ticks", "cycles") else text


def seconds(v: float | None) -> str:
    return fmt_value(v, "s")


def joules(v: float | None) -> str:
    return fmt_value(v, "J")
