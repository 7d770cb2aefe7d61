"""Every target against the published figures it declares (nncc.fidelity): one table.

Prints; asserts nothing. Usage:
    .venv/bin/python benchmarks/fidelity.py [--only reram,hypar]

Each row: target, quantity, nncc's figure, the reference, their ratio, whether a constant
was fitted to that reference (then the leave-one-out error of the fit, when there is one),
whether the ratio is within the band (2x against hardware, 1.3x against another simulator;
a fitted figure never counts), and the source (a section of docs/sources.md). A target's
references live in ``backends/<target>/fidelity.py`` as ``REFERENCES``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import time

from nncc.fidelity import Check, Reference, run
from nncc.registry import TARGETS
from nncc.render import md_table


def _module_name(target: str) -> str:
    return f"nncc.backends.{target.replace('-', '_')}.fidelity"


def references(only: list[str] | None = None) -> list[Reference]:
    """Every installed target's REFERENCES (a target without a fidelity module has none)."""
    refs: list[Reference] = []
    for name in TARGETS.names():
        if only and name not in only:
            continue
        try:
            module = importlib.import_module(_module_name(name))
        except ModuleNotFoundError as e:
            if e.name != _module_name(name):
                raise
            continue
        refs.extend(getattr(module, "REFERENCES", []))
    return refs


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} {unit}".strip()


def table(checks: list[Check]) -> str:
    rows = []
    for c in checks:
        ref = c.ref
        ratio = f"{c.ratio:.2f}x" + (" of the gain" if ref.gain else "") if c.ratio is not None else f"failed: {c.error}"
        fitted = "fitted" + (f" (LOO {ref.loo_error:+.0%})" if ref.loo_error is not None else "") if ref.fitted else "no"
        verdict = "-" if ref.fitted or c.ratio is None else ("yes" if c.within_band else "NO")
        rows.append([ref.target, ref.quantity, _figure(c.value, ref.unit), _figure(ref.reference, ref.unit), ratio,
                     fitted, f"{verdict} (±{ref.band:g}x)", ref.source + (f"; {ref.note}" if ref.note else "")])
    return md_table(["target", "quantity", "nncc", "reference", "ratio", "constant fitted to it", "within band",
                     "source"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated targets")
    args = parser.parse_args()
    only = [t.strip() for t in args.only.split(",")] if args.only else None
    print(f"load average {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    checks = run(references(only))
    print(table(checks))
    independent = [c for c in checks if not c.ref.fitted]
    print(f"\n{sum(c.within_band for c in independent)} of {len(independent)} independent figures within band; "
          f"{len(checks) - len(independent)} fitted figures shown for reference; {time.perf_counter() - start:.0f} s")
    per_target = {}
    for c in independent:
        per_target[c.ref.target] = per_target.get(c.ref.target, 0) + 1
    # A target with no hardware constants (the null target) has nothing to check.
    modelled = [t for t in TARGETS.names() if dataclasses.fields(TARGETS.get(t).Config)]
    short = [t for t in modelled if (not only or t in only) and per_target.get(t, 0) < 2]
    if short:
        print(f"targets with fewer than two independent references: {', '.join(short)}")


if __name__ == "__main__":
    main()
