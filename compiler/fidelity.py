"""Published figures a target is checked against, and how far nncc is from each.

A target declares its references as :class:`Reference` records (``backends/<target>/fidelity.py``,
a module-level ``REFERENCES`` list); ``benchmarks/fidelity.py`` runs every ``measure`` and
prints one table: target, quantity, nncc, reference, ratio, source, and whether a constant was
fitted to that reference. A figure a constant was fitted to does not validate the model: it is
reported, marked ``fitted``, with the leave-one-out error of the fit beside it when there is
one, and it never counts toward "within band".

The band is the issue's: within 2x of a measured or published chip figure, within 1.3x of
another simulator run on the same settings (``simulator=True``). A gain over a baseline
(``gain=True``: a speedup, an efficiency ratio) is compared by its excess over 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

SILICON_BAND = 2.0     # nncc against a measured or published hardware figure
SIMULATOR_BAND = 1.3   # nncc against another simulator configured the same way


@dataclasses.dataclass(frozen=True)
class Reference:
    """One published figure and the nncc run that should reproduce it."""

    target: str
    quantity: str                  # what is compared, with its workload: "energy per image, VGG-8 CIFAR-10"
    reference: float               # the published value, in ``unit``
    unit: str                      # "J", "s", "mm^2", "x" (a ratio), "fps", ...
    source: str                    # a section of docs/sources.md and where in the publication
    measure: Callable[[], float]   # compiles with nncc and returns its figure, in ``unit``
    fitted: bool = False           # some constant of the target was fitted to this very figure
    simulator: bool = False        # the reference is another simulator's output (tighter band)
    loo_error: float | None = None  # fitted: relative error of the figure predicted with it left out of the fit
    note: str = ""                 # assumptions that differ from the reference's, in a few words
    gain: bool = False             # a speedup or efficiency ratio over a baseline: its excess over 1 is compared

    @property
    def band(self) -> float:
        return SIMULATOR_BAND if self.simulator else SILICON_BAND


@dataclasses.dataclass(frozen=True)
class Check:
    """A reference with nncc's figure: what the fidelity table prints."""

    ref: Reference
    value: float | None
    error: str = ""                # why nncc could not produce the figure

    @property
    def ratio(self) -> float | None:
        """nncc / reference; for a gain, (nncc - 1) / (reference - 1): a 1.04x gain against a
        published 1.51x is 0.08 of it, not 0.69 -- almost no gain is not half the gain."""
        if self.value is None or not self.ref.reference:
            return None
        if self.ref.gain:
            return (self.value - 1) / (self.ref.reference - 1) if self.ref.reference != 1 else None
        return self.value / self.ref.reference

    @property
    def within_band(self) -> bool:
        """Counts toward validation: not fitted, and within the band either way."""
        ratio = self.ratio
        return (not self.ref.fitted and ratio is not None and ratio > 0
                and abs(math.log(ratio)) <= math.log(self.ref.band))


def run(references: list[Reference]) -> list[Check]:
    """Measure every reference; a failure is recorded, not raised (one bad figure must not hide the rest)."""
    checks = []
    for ref in references:
        try:
            checks.append(Check(ref, float(ref.measure())))
        except Exception as e:  # noqa: BLE001 - the table says what failed
            checks.append(Check(ref, None, f"{type(e).__name__}: {e}"))
    return checks
