"""formula.cpp and Technology.cpp of DNN+NeuroSim V1.4, the parts its area uses (22 nm bulk
only): standard-cell gate layout with transistor folding, pass gates, minimum-gate enlarging,
the repeater sizing of its H-trees and buses, and the H-tree (HTree.cpp), X-Y bus (XYBus.cpp)
and max-pool (MaxPooling.cpp, Comparator.cpp) areas. nncc's own code following NeuroSim's
[V: each function names the NeuroSim function it follows]; lengths in metres, areas in m^2.
Used by neurosim_area.py.
"""

from __future__ import annotations

import dataclasses
import math

# constant.h
MIN_NMOS_SIZE = 2.0
MAX_TRANSISTOR_HEIGHT = 28.0
MIN_GAP_BET_P_AND_N_DIFFS = 3.5
MIN_POLY_EXT_DIFF = 1.0
MIN_GAP_BET_FIELD_POLY = 1.6
POLY_WIDTH = 1.0
MIN_GAP_BET_GATE_POLY = 2.8
CPP = POLY_WIDTH + MIN_GAP_BET_GATE_POLY
M3_PITCH = 2.8   # along height

INV, NOR, NAND = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Tech:
    """Technology.cpp (22 nm, LSTP) and the Param.cpp values the area uses."""

    F: float = 22 * 1e-9                   # featureSize (Technology.cpp: featureSizeInNano * 1e-9)
    pn: float = 791.90 / 600.20            # pnSizeRatio = currentOnNmos[0] / currentOnPmos[0] (22 nm LSTP)
    wire: float = 40e-9                    # Param.cpp featuresize = wireWidth (22 nm): cell.featureSize
    cell_h: float = 4.0                    # heightInFeatureSize1T1R
    cell_w: float = 12.0                   # widthInFeatureSize1T1R
    alpha: float = 1.44                    # Param.cpp validated: level-shifter wiring factor
    new_sm_ratio: float = 14.0             # newswitchmatrixsizeratio (technode 22)

    @property
    def cell_height(self) -> float:        # MAX_TRANSISTOR_HEIGHT x F
        return MAX_TRANSISTOR_HEIGHT * self.F


def _max_widths(w_n: float, w_p: float, h: float, F: float) -> tuple[float, float, float]:
    """formula.cpp: the widest P and N transistors a cell of height ``h`` holds unfolded, split
    in the gate's P/N ratio (also returned)."""
    ratio = w_p / (w_p + w_n)
    edge = (MIN_POLY_EXT_DIFF + MIN_GAP_BET_FIELD_POLY / 2) * 2 * F
    if ratio == 0:
        return 0.0, h - edge, ratio
    if ratio == 1:
        return h - edge, 0.0, ratio
    max_p = ratio * (h - MIN_GAP_BET_P_AND_N_DIFFS * F - edge)
    return max_p, max_p / ratio * (1 - ratio), ratio


def gate(kind: int, n: int, w_n: float, w_p: float, h: float, t: Tech) -> tuple[float, float]:
    """formula.cpp CalculateGateArea, bulk branch: (height, width)."""
    F = t.F
    max_p, max_n, _ = _max_widths(w_n, w_p, h, F)

    def region(w, mx):
        if w <= 0:
            return 0.0, 1
        if w <= mx:
            return 2 * CPP * F, 1
        folds = math.ceil(w / mx)
        return (folds + 1) * CPP * F, folds

    unit_p, fold_p = region(w_p, max_p)
    unit_n, fold_n = region(w_n, max_n)
    if kind == INV:
        wp, wn = unit_p, unit_n
    else:  # NOR / NAND: shared source/drain without folding
        share = (n - 1) * F * CPP if fold_p == 1 and fold_n == 1 else 0.0
        wp, wn = unit_p * n - share, unit_n * n - share
    return h, max(wn, wp)


def pass_gate(w_n: float, w_p: float, folds: int, t: Tech) -> tuple[float, float]:
    """formula.cpp CalculatePassGateArea, bulk: (height, width)."""
    F = t.F
    width = (folds + 1) * CPP * F
    height = w_p / folds + w_n / folds + MIN_GAP_BET_P_AND_N_DIFFS * F + (MIN_POLY_EXT_DIFF + MIN_GAP_BET_FIELD_POLY / 2) * 2 * F
    return height, width


def enlarge(w_n: float, w_p: float, t: Tech) -> tuple[float, float]:
    """formula.cpp EnlargeSize, bulk: a minimum-size gate widened to the standard-cell height."""
    F, h = t.F, t.cell_height
    max_p, max_n, ratio = _max_widths(w_n, w_p, h, F)
    if ratio == 0 and w_n < max_n:
        return max_n, w_p
    if ratio == 1 and w_p < max_p:
        return w_n, max_p
    if 0 < w_p < max_p and 0 < w_n < max_n:
        return max_n, max_p
    return w_n, w_p


# ---------------------------------------------------------------- bus repeaters (HTree.cpp / XYBus.cpp Initialize)

# Technology.cpp, 22 nm LSTP (PTM 22nm_LP), at 300 K; Param.cpp wires at wireWidth = 40 nm.
VDD = 0.85
CAP_IDEAL_GATE, CAP_FRINGE = 5.245e-10, 8.004e-10
CAP_OVERLAP = 0.2 * CAP_IDEAL_GATE
R_MULT = 1.77                                   # effectiveResistanceMultiplier
I_ON_N, I_ON_P = 791.90, 600.20                 # currentOnNmos[0], currentOnPmos[0] (A/m)
_BIP = 0.9                                      # buildInPotential
CAP_JUNCTION = 1e-3 / (1 + VDD / _BIP) ** 0.5
CAP_SIDEWALL = 2.5e-10 / (1 + VDD / _BIP) ** 0.33
CAP_DRAIN_CHANNEL = 0.5e-10 / (1 + VDD / _BIP) ** 0.33
WIRE_R = 2.97e-8 / (40 * 1e-9 * 40 * 1e-9 * 1.9)  # Param.cpp Rho / (wireWidth^2 x AR), 40 nm
WIRE_C = 0.2e-15 / 1e-6


TECH = Tech()


def _r_on(width: float, nmos: bool) -> float:
    """formula.cpp CalculateOnResistance (bulk, 300 K)."""
    return math.inf if width <= 0 else R_MULT * VDD / ((I_ON_N if nmos else I_ON_P) * width)


def _inv_caps(w_n: float, w_p: float, t: Tech) -> tuple[float, float]:
    """formula.cpp CalculateGateCap x2 and CalculateGateCapacitance's output (drain) capacitance of
    an inverter at the standard-cell height (bulk)."""
    c_in = (CAP_IDEAL_GATE + CAP_OVERLAP + CAP_FRINGE) * (w_n + w_p)
    if w_n + w_p <= 0:
        return c_in, 0.0
    F, h = t.F, t.cell_height
    ratio = w_p / (w_p + w_n)
    max_p = ratio * (h - MIN_GAP_BET_P_AND_N_DIFFS * F - (MIN_POLY_EXT_DIFF + MIN_GAP_BET_FIELD_POLY / 2) * 2 * F)
    max_n = max_p / ratio * (1 - ratio)

    def drain(w, mx):
        if w <= 0:
            return 0.0, 0.0, 1
        if w <= mx:
            return F * MIN_GAP_BET_GATE_POLY, w, 1
        folds = math.ceil(w / mx)
        return math.ceil((folds + 1) / 2) * F * MIN_GAP_BET_GATE_POLY, mx, folds

    wd_p, hd_p, f_p = drain(w_p, max_p)
    wd_n, hd_n, f_n = drain(w_n, max_n)
    side_p = wd_p * 2 + hd_p * (1 + (f_p + 1) % 2) if w_p > 0 else 0.0
    side_n = wd_n * 2 + hd_n * (1 + (f_p + 1) % 2) if w_n > 0 else 0.0  # sic: NeuroSim uses the PMOS folds
    c_out = (wd_n * hd_n + wd_p * hd_p) * CAP_JUNCTION + (side_n + side_p) * CAP_SIDEWALL \
        + (f_n * hd_n + f_p * hd_p) * CAP_DRAIN_CHANNEL
    return c_in, c_out


def repeater_width(t: Tech = TECH, tolerance: float = 0.1) -> float:
    """HTree.cpp / XYBus.cpp Initialize: the repeater size (int) of the optimal-delay repeated wire,
    halved while the unit-length delay stays under (1 + delay tolerance) x the optimum
    (local/globalBusDelayTolerance = 0.1); returns the width of its inverter layout."""
    F, pn = t.F, t.pn
    w_n0, w_p0 = MIN_NMOS_SIZE * F, pn * MIN_NMOS_SIZE * F
    c_in, c_out = _inv_caps(w_n0, w_p0, t)
    r = (_r_on(w_n0, True) + _r_on(w_p0, False)) / 2
    size = math.floor(math.sqrt(r * WIRE_C / c_in / WIRE_R))
    dist = math.sqrt(2 * r * (c_out + c_in) / (WIRE_R * WIRE_C))

    def delay(sz: int, d: float) -> float:
        cin, cout = _inv_caps(MIN_NMOS_SIZE * F * sz, pn * MIN_NMOS_SIZE * F * sz, t)
        rr = (_r_on(MIN_NMOS_SIZE * F * sz, True) + _r_on(pn * MIN_NMOS_SIZE * F * sz, False)) / 2
        if math.isinf(rr):
            return math.inf
        return 0.7 * (rr * (cin + cout + WIRE_C * d) + 0.54 * WIRE_R * d * WIRE_C * d + WIRE_R * d * cin) / d

    target = delay(size, dist) * (1 + tolerance)
    d = 0.0
    while d < target:
        size //= 2
        dist *= 0.9
        d = delay(size, dist)
    size = max(1, size)
    return gate(INV, 1, size * MIN_NMOS_SIZE * F, size * pn * MIN_NMOS_SIZE * F, t.cell_height, t)[1]


# ---------------------------------------------------------------- interconnect and pooling

def htree(pes_per_side: int, bus: float, unit_h: float, unit_w: float, rep_w: float, t: Tech,
          folded: float = 16.0) -> float:
    """HTree.cpp CalculateArea: the tile's H-tree over pes_per_side^2 PEs, ``bus`` bits, folded
    ``folded`` times (TileCalculateArea passes 16). Vertical stages are as wide as the repeater
    inverter (``rep_w``), horizontal ones as its height (the standard-cell height); the last
    stage overlaps the PEs; the main bus runs from the centre to the nearest edge."""
    stages = 2 * math.ceil(math.log2(pes_per_side)) + 1 if pes_per_side > 1 else 1
    n = 2 ** ((stages - 1) // 2)
    h_inv = t.cell_height
    len_v, len_h = unit_h * n / 2, unit_w * n / 2
    wid_v = wid_h = area = 0.0
    for _ in range(1, (stages - 1) // 2):
        len_v /= 2
        wid_v += bus * rep_w / folded
        area += wid_v * len_v / 2
        len_h /= 2
        wid_h += bus * h_inv / folded
        area += wid_h * len_h / 2
    x_center = n / 2.0
    if n - x_center < 1:
        x_center -= 1
    # A one-PE tile (n = 1) puts NeuroSim's centre at -0.5 and its main bus at a negative length; nncc: 0.
    return area + bus * h_inv / folded * max(0.0, min(n - x_center, x_center)) * unit_w


def xy_bus(tile_rows: int, tile_cols: int, bus: float, unit_h: float, unit_w: float, rep_w: float, t: Tech,
           folded: float = 4.0) -> float:
    """XYBus.cpp CalculateArea (globalBusType = false): a Y bus over tile_rows tiles as wide as the
    repeater inverter and an X bus over tile_cols tiles as its height, per bit, folded
    treeFoldedRatio = 4 times."""
    return bus * rep_w / folded * unit_h * tile_rows + bus * t.cell_height / folded * unit_w * tile_cols


def max_pool(bits: int, window: int, units: int, t: Tech) -> float:
    """MaxPooling.cpp CalculateUnitArea / CalculateArea: ``units`` max-pool units of N-bit
    comparators (Comparator.cpp: 4 INV, 4 NAND2, 3 NAND3 per bit), every gate enlarged."""
    F, H, pn = t.F, t.cell_height, t.pn
    comparators, n = 0, window
    while n:
        comparators += n // 2
        n //= 2
    comparators += window % 2
    h_inv, w_inv = gate(INV, 1, *enlarge(MIN_NMOS_SIZE * F, pn * MIN_NMOS_SIZE * F, t), H, t)
    inv = h_inv * w_inv
    nand2 = math.prod(gate(NAND, 2, *enlarge(2 * MIN_NMOS_SIZE * F, pn * MIN_NMOS_SIZE * F, t), H, t))
    nand3 = math.prod(gate(NAND, 3, *enlarge(3 * MIN_NMOS_SIZE * F, pn * MIN_NMOS_SIZE * F, t), H, t))
    nor = math.prod(gate(NOR, 2, *enlarge(4 * MIN_NMOS_SIZE * F, pn * MIN_NMOS_SIZE * F, t), H, t))
    nor2 = math.prod(gate(NOR, bits, *enlarge(bits * 2 * MIN_NMOS_SIZE * F, pn * MIN_NMOS_SIZE * F, t), H, t))
    comparator = inv * 4 + nand2 * 4 + nand3 * 3                       # one 1-bit comparator
    unit = (comparator + inv * 5) * bits + inv * 6 + (nand2 + inv) + nor + nor2
    return unit * comparators * units
