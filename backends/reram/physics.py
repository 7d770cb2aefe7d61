"""Technology scaling and the NeuroSim-style circuit models of the ``reram`` target.

Facts carried over (docs/sources.md, "ReRAM"; the code here is nncc's own):

- CMOS scaling between nodes: the Stillmaker & Baas (Integration 2017) tables as Accelergy's
  hwcomponents uses them (``hwcomponents/scaling/techscaling.py``) [V]: area by a factor per
  node pair, energy by a quadratic in Vdd per node (evaluated at its default 0.8 V), linear
  interpolation in the node between table entries. Every ISAAC 32 nm figure (ADC, DAC, eDRAM,
  router, shift-add, digital op) is moved to ``feature_size_nm`` with these; at 32 nm both
  factors are exactly 1, so the default (ISAAC) totals do not move.
- Per-node device facts of DNN+NeuroSim V1.4 (``Technology.cpp``, PTM low-power models, the
  roadmap ``Param.cpp`` selects with ``deviceroadmap = 2``) [V]: Vdd and gate capacitance per
  metre of width (ideal + fringe); ``constant.h``: MIN_NMOS_SIZE = 2 F.
- NeuroSim's current-mode multilevel sense amplifier (a flash ADC: 2^b - 1 comparator levels
  against reference columns; ``MultilevelSenseAmp.cpp``) [V]: its column sensing time is a
  fit per node (``ColumnLatency_Table``, the ``currentMode`` branch, as Param.cpp sets
  ``currentMode = true``): logarithmic in the reference resistance below 4832 Ohm, linear above;
  ``CalculateLatency`` takes the larger of the fits at the highest reference (Rref[L-2]) and the
  second lowest (Rref[1]), with Rref[i] = (R_on / rows) / (1 - i / L) for L = 2^b levels
  (``Initialize``, parallel read). Its correction for a column capacitance above the fit's own,
  added above 12.7 kOhm at 22 nm, is not modelled (it needs the access transistors' drain
  capacitance; 2 % of the sensing time at 32 rows, none at 64). Its dynamic energy is per level
  a set of gate/junction charges at Vdd plus the column's static current over the sensing time.
- The array read of ``SubArray.cpp`` (1T1R, parallel read) [V]: every activated row (input
  bit 1) charges its word line once per column-mux step (0.2 fF/um x row length, at Vdd);
  the column line (0.2 fF/um x column length, at the read voltage) is switched once per sense,
  in the sense amplifier's energy (its bit-line term is commented out there for that reason).
"""

from __future__ import annotations

import bisect
import math

# --- Stillmaker & Baas via Accelergy hwcomponents techscaling.py [V]
SCALING_NODES = (90.0, 65.0, 45.0, 32.0, 20.0)
# Area factor from 32 nm (ISAAC's node) to each node: the 32 nm row of AREA_SCALING.
AREA_FROM_32 = (6.1, 3.3, 2.2, 1.0, 0.46)
# Energy ~ a Vdd^2 + b Vdd + c per node (ENERGY_SCALING rows for 90, 65, 45, 32, 20 nm).
ENERGY_POLY = ((4.762, -4.781, 2.092), (3.755, -4.398, 1.975), (1.103, -0.362, 0.2767),
               (0.9559, -0.7823, 0.471), (0.373, -0.1582, 0.04104))
SCALING_VDD = 0.8  # the library's default Vdd for the quadratic
REFERENCE_NODE = 32.0


def _interpolate(node_nm: float, values: tuple[float, ...]) -> float:
    """Linear in nm between the two table nodes around ``node_nm`` (the table runs 90 -> 20)."""
    if not SCALING_NODES[-1] <= node_nm <= SCALING_NODES[0]:
        raise ValueError(f"feature_size_nm {node_nm:g} is outside the scaling table ({SCALING_NODES[-1]:g}-{SCALING_NODES[0]:g} nm)")
    ascending = SCALING_NODES[::-1]
    i = bisect.bisect_left(ascending, node_nm)
    if ascending[i] == node_nm:
        return values[::-1][i]
    lo, hi = ascending[i - 1], ascending[i]
    v_lo, v_hi = values[::-1][i - 1], values[::-1][i]
    return v_lo + (v_hi - v_lo) * (node_nm - lo) / (hi - lo)


def energy_scale(node_nm: float, from_nm: float = REFERENCE_NODE) -> float:
    """Factor on a switching energy moved from ``from_nm`` to ``node_nm``."""
    per_node = tuple(a * SCALING_VDD ** 2 + b * SCALING_VDD + c for a, b, c in ENERGY_POLY)
    return _interpolate(node_nm, per_node) / _interpolate(from_nm, per_node)


def area_scale(node_nm: float, from_nm: float = REFERENCE_NODE) -> float:
    """Factor on a circuit's area moved from ``from_nm`` to ``node_nm``."""
    return _interpolate(node_nm, AREA_FROM_32) / _interpolate(from_nm, AREA_FROM_32)


# --- NeuroSim V1.4 per-node facts (low-power PTM), nodes it models for RRAM at 22-65 nm [V]
# node: (Vdd, capIdealGate + capFringe in F/m, column-latency slope s/Ohm, intercept s) -- the linear
# branch of MultilevelSenseAmp.cpp ColumnLatency_Table with currentMode = true (Param.cpp) [V]
NEUROSIM_NODES: dict[int, tuple[float, float, float, float]] = {
    65: (1.1, 1.1926e-9 + 9.62148e-10, 2.12366e-14, 2.14339e-9),
    45: (1.0, 8.930709e-10 + 8.849901e-10, 1.54619e-14, 1.60263e-9),
    32: (0.9, 8.375279e-10 + 6.856677e-10, 1.15509e-14, 1.19475e-9),
    22: (0.85, 5.245e-10 + 8.004e-10, 8.02517e-15, 8.51803e-10),
}
# The same table's branch below COLUMN_LOG_BELOW_OHM: latency = a x ln(R) + b, (a s, b s) per node [V].
COLUMN_LOG_BELOW_OHM = 4832.0
NEUROSIM_COLUMN_LOG: dict[int, tuple[float, float]] = {
    65: (-8.11436e-11, 2.2554e-9),
    45: (-1.12976e-10, 2.16762e-9),
    32: (-1.31777e-10, 2.03151e-9),
    22: (-1.32118e-10, 1.7552e-9),
}
MIN_NMOS_F = 2.0          # constant.h MIN_NMOS_SIZE: a minimum NMOS is 2 F wide [V]
WIRE_CAP_F_PER_M = 0.2e-15 / 1e-6  # SubArray.cpp: capRow/capBL = length x 0.2 fF/um [V]


def neurosim_node(node_nm: float) -> tuple[float, float, float, float]:
    """The NeuroSim facts at ``node_nm`` (must be one of the nodes taken from the source)."""
    key = round(node_nm)
    if key not in NEUROSIM_NODES or abs(node_nm - key) > 1e-9:
        raise ValueError(f"the neurosim profile has device data at {sorted(NEUROSIM_NODES)} nm, not {node_nm:g} nm")
    return NEUROSIM_NODES[key]


def vdd(node_nm: float) -> float:
    return neurosim_node(node_nm)[0]


def min_gate_cap(node_nm: float) -> float:
    """Gate capacitance (F) of a minimum NMOS: MIN_NMOS_SIZE x F wide."""
    _, cap_per_m, _, _ = neurosim_node(node_nm)
    return MIN_NMOS_F * node_nm * 1e-9 * cap_per_m


def column_latency(node_nm: float, r_ohm: float) -> float:
    """MultilevelSenseAmp.cpp ColumnLatency_Table (currentMode) at reference resistance ``r_ohm``."""
    _, _, slope, intercept = neurosim_node(node_nm)
    if r_ohm < COLUMN_LOG_BELOW_OHM:
        a, b = NEUROSIM_COLUMN_LOG[round(node_nm)]
        return a * math.log(r_ohm) + b
    return slope * r_ohm + intercept


def flash_sense_time(node_nm: float, r_on_ohm: float, rows_parallel: int, bits: int) -> float:
    """Seconds one current-mode sense takes (MultilevelSenseAmp.cpp CalculateLatency): the larger of
    the column-latency fit at the highest reference, Rref[L-2] = R_on / rows x L / 2, and at
    Rref[1] = R_on / rows x L / (L - 1) (its ladder divides the conductance of ``rows`` on-cells
    into L = 2^bits steps)."""
    levels = 2 ** bits
    r_start = r_on_ohm / max(rows_parallel, 1)
    top = column_latency(node_nm, r_start * levels / 2)
    if levels < 3:  # a single reference level (NeuroSim would read past its one entry)
        return top
    return max(top, column_latency(node_nm, r_start * levels / (levels - 1)))


def flash_energy_j(node_nm: float, bits: int, level_gates: float) -> float:
    """Dynamic energy of one conversion, without the column current: 2^bits - 1 comparator
    levels, each switching ``level_gates`` minimum-gate capacitances at Vdd."""
    if bits <= 0:
        return 0.0
    return (2 ** bits - 1) * level_gates * min_gate_cap(node_nm) * vdd(node_nm) ** 2


def flash_area_um2(node_nm: float, bits: int, level_transistors: float, transistor_f2: float) -> float:
    """2^bits - 1 levels of ``level_transistors`` minimum transistors of ``transistor_f2`` F^2."""
    f_um = node_nm * 1e-3
    return (2 ** bits - 1) * level_transistors * transistor_f2 * f_um ** 2 if bits > 0 else 0.0


def wire_energy_j(length_m: float, volts: float) -> float:
    """C V^2 of a wire of ``length_m`` at NeuroSim's 0.2 fF/um."""
    return length_m * WIRE_CAP_F_PER_M * volts ** 2
