"""Hardware constants of the ``reram`` target: an ISAAC/NeuroSim-style ReRAM crossbar chip.

Source tags as in docs/sources.md, "ReRAM": [V] seen in the named source; [U] not yet confirmed
(a starting point, replace when a better source turns up). The sources read for this file:

- ISAAC = Shafiee et al., ISCA 2016, through the Accelergy hwcomponents-library file
  ``hwcomponents_library/library/isaac.py`` (its CSV comments give energy per action and
  area at 32 nm, and how they were derived from ISAAC's Table of power and area).
- NeuroSim = DNN+NeuroSim V1.3, ``Inference_pytorch/NeuroSIM/Param.cpp`` (defaults).
- bit-slice L1 = Zhang, Yang et al., arXiv 1909.08496, authors' code
  ``zjysteven/bitslice_sparsity`` (``mnist/finetune_bitslice.py``: the magnitude |w| is
  rounded to 8 bits and cut into four 2-bit slices, MSB first).

Signed weights (``weight_encoding``):
- ``differential`` (default): the magnitude |w| in ``weight_bits`` bits goes to a positive
  column set (w > 0) and a negative one (w < 0); the two partial results are subtracted
  digitally. This is how the bit-slice L1 code slices weights (it slices |w|), and it keeps
  a zero (pruned) weight at zero conductance, which is what lets sparsity lower the column
  sums and hence the ADC bits. Cost: twice the columns.
- ``offset``: ISAAC's biased encoding [U, ISAAC Sec. "encoding", not re-read]: w is stored as
  w + 2^(b-1) (unsigned b-bit), one column set; the bias times the input sum is subtracted
  digitally. Half the columns, but a zero weight is stored as a mid-range code, so pruning
  does not lower the ADC resolution.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from nncc.backends.base import HardwareConfig, hw
from nncc.crossbar import CrossbarGeometry

ACC = "Accelergy hwcomponents-library isaac.py (ISAAC, ISCA 2016, 32 nm)"
NSIM = "NeuroSim V1.3 Param.cpp"
ENCODINGS = ("differential", "offset")
WEIGHT_SCALES = ("max", "pow2")
ADC_MODES = ("calibration", "weights", "worst-case")
# The ADC of ISAAC's table (Kull et al., ISSCC 2013) samples at 1.2 GS/s at 8 bits; a SAR ADC
# resolves one bit per internal step, so Accelergy scales its latency linearly with resolution.
ADC_RATE_REF_BITS = 8


@dataclasses.dataclass(frozen=True)
class ReramConfig(HardwareConfig):
    # --- crossbar and cells
    crossbar_size: int = hw(128, source=f"{NSIM}: numRowSubArray = numColSubArray = 128 [V]; ISAAC 128x128 [V, {ACC}: DAC area /128/8]",
                            unit="rows = columns", minimum=1)
    cell_bits: int = hw(2, source=f"{NSIM}: cellBit = 2 [V]; bit-slice L1: 2-bit slices [V]", unit="bit/cell", minimum=1)
    weight_bits: int = hw(8, source="bit-slice L1 authors' code: |w| rounded to 8 bits, four 2-bit slices [V]",
                          unit="bit (magnitude for differential, code for offset)", minimum=1)
    weight_encoding: str = hw("differential", source="bit-slice L1 authors' code slices |w| (sign kept apart) [V]; "
                                                     "'offset' = ISAAC biased encoding [U]", choices=ENCODINGS)
    weight_scale: str = hw("max", source="'max': max |w| of the layer maps to the top code (nncc default) [U]; 'pow2': "
                                         "2^ceil(log2 max |w|), the dynamic fixed point of the bit-slice L1 authors' code [V]",
                           choices=WEIGHT_SCALES)
    input_bits: int = hw(8, source="bit-slice L1 authors' code: 8-bit activations (Activation_fix bitwidth 8) [V]; "
                                   "fed bit-serially through 1-bit DACs as in ISAAC [V, Accelergy IsaacDAC resolution 1]",
                         unit="bit", minimum=1)
    # --- ADCs
    cols_per_adc: int = hw(8, source=f"{NSIM}: numColMuxed = 8, 'How many columns share 1 ADC' [V]", unit="columns", minimum=1)
    adc_bits_max: int = hw(8, source=f"ISAAC 8-bit SAR ADC [V, {ACC}]", unit="bit", minimum=1)
    adc_bits_from: str = hw("calibration", source="nncc estimation setting: 'calibration' = max column sum on calibration inputs "
                                                  '(bit-slice L1; docs/sources.md, "ReRAM"); '
                                                  "'weights' = all inputs ones (safe for any input); 'worst-case' = every row "
                                                  "at the top cell value",
                            choices=ADC_MODES)
    adc_table: str = hw("4:0.79:361.04 5:0.99:476.91 6:1.20:626.91 7:1.42:845.18 8:1.67:1200 9:1.969:1827.91 10:2.379:3002.01",
                        source=f"{ACC}: ADC energy and area by resolution (8-bit: Kull ISSCC 2013; others scaled after "
                               "Saberi 2011) [V]; below the lowest entry its figures are used [U: Accelergy refuses < 4 bits]",
                        unit="bits:pJ/conversion:um^2")
    adc_rate_hz: float = hw(1.2e9, source=f"{ACC}: 1.2 GS/s at 8 bits [V]; time per conversion scales with bits/8 [V, Accelergy "
                                          "scales ADC latency linearly with resolution]", unit="conversions/s", above=0)
    # --- other peripherals (per action energy, area)
    dac_energy_pj: float = hw(0.41667, source=f"{ACC}: 1-bit DAC drive [V]", unit="pJ", minimum=0)
    dac_area_um2: float = hw(0.166015625, source=f"{ACC}: 170 um^2 / 128 rows / 8 crossbars [V]", unit="um^2", minimum=0)
    shift_add_energy_pj: float = hw(0.021, source=f"{ACC}: 16-bit shift-and-add [V]", unit="pJ", minimum=0)
    shift_add_area_um2: float = hw(60.0, source=f"{ACC}: 16-bit shift-and-add [V]; one per ADC as in NeuroSim's sub-array [U]",
                                   unit="um^2", minimum=0)
    psum_bits: int = hw(16, source=f"{ACC}: shift-and-add width 16 bits [V]", unit="bit", minimum=1)
    bus_bits: int = hw(256, source=f"{ACC}: eDRAM and router port width 256 bits [V]", unit="bit", minimum=1)
    edram_energy_pj: float = hw(20.45, source=f"{ACC}: eDRAM 256 b x 2048 read/write per 256-bit access [V]",
                                unit="pJ/access", minimum=0)
    edram_area_um2: float = hw(83000.0, source=f"{ACC}: 64 KB eDRAM per tile [V]", unit="um^2/tile", minimum=0)
    router_energy_pj: float = hw(20.74, source=f"{ACC}: router per 256-bit flit [V]", unit="pJ/flit", minimum=0)
    router_area_um2: float = hw(37500.0, source=f"{ACC}: router 150000 um^2 shared by 4 tiles [V]", unit="um^2/tile", minimum=0)
    bus_area_um2: float = hw(7500.0, source=f"{ACC}: eDRAM bus 29.3 um^2 per bit x 256 bits, reported per IMA [V]",
                             unit="um^2/IMA", minimum=0)
    # --- organisation
    crossbars_per_ima: int = hw(8, source=f"ISAAC: 8 crossbars per IMA [V, {ACC}: 128*8 DACs and 8 ADCs per IMA]",
                                unit="crossbars", minimum=1)
    imas_per_tile: int = hw(12, source=f"ISAAC: 12 IMAs per tile [V, {ACC}: '(20.7e-3 / 12 W/IMA)', 'a bus connects 12 IMAs']",
                            unit="IMAs", minimum=1)
    max_tiles: int = hw(0, source="chip size limit; 0 = chip sized to the model, as NeuroSim floorplans the chip from the "
                                  "network [V, NeuroSim Chip.cpp]; ISAAC's chip has 168 tiles [U]", unit="tiles", minimum=0)
    replicate: int = hw(1, source="weight replication for conv layers (copies of a layer's crossbars working on different "
                                  "output pixels); 1 = none (ISAAC replicates early layers to balance its pipeline [U])",
                        unit="copies", minimum=1)
    # --- device and array (NeuroSim)
    feature_size_nm: float = hw(32.0, source=f"ISAAC's node, 32 nm [V, {ACC} tech_node]", unit="nm", above=0)
    cell_area_f2: float = hw(4.0, source=f"{NSIM}: crossbar cell 2F x 2F (heightInFeatureSizeCrossbar = widthInFeatureSizeCrossbar = 2) "
                                         "[V]; its 1T1R cell is 4F x 12F = 48 F^2", unit="F^2", above=0)
    wire_pitch_f: float = hw(2.0, source="[U] one routing track per 2F (minimum metal pitch); routing-area model in cost.py",
                             unit="F", above=0)
    r_on_ohm: float = hw(6e3, source=f"{NSIM}: resistanceOn = 6e3 [V]", unit="ohm", above=0)
    r_off_ratio: float = hw(150.0, source=f"{NSIM}: resistanceOff = 6e3*150 [V]", unit="Roff/Ron", minimum=1)
    read_voltage_v: float = hw(0.5, source=f"{NSIM}: readVoltage = 0.5 [V]", unit="V", above=0)
    read_pulse_s: float = hw(10e-9, source=f"{NSIM}: readPulseWidth = 10e-9 [V]; one input bit per pulse", unit="s", above=0)
    # --- digital units (ops that are not matrix-vector products)
    clock_hz: float = hw(1e9, source=f"{NSIM}: clkFreq = 1e9 [V]; {ACC}: global_cycle_period 1e-9 [V]", unit="Hz", above=0)
    digital_lanes: int = hw(16, source="[U] 16 x 16-bit ops per cycle (one 256-bit-wide vector unit beside the eDRAM)",
                            unit="ops/cycle", minimum=1)
    digital_op_pj: float = hw(0.021, source=f"[U] one 16-bit add/compare/max costs what {ACC}'s 16-bit shift-and-add does",
                              unit="pJ", minimum=0)
    digital_mul_ops: float = hw(16.0, source="[U] a 16-bit multiply as 16 shift-and-add steps", unit="ops", minimum=0)
    transcendental_ops: float = hw(16.0, source="[U] exp/sigmoid/tanh/erf by table lookup plus one multiply-add (ISAAC uses a "
                                                "sigmoid unit [U])", unit="ops", minimum=0)
    # --- estimation settings (not hardware)
    calib_samples: int = hw(8, source="nncc estimation setting: model runs used to measure column sums (random inputs from "
                                      "runtime.sample_inputs when no calibration data is given)", unit="runs", minimum=1)
    calib_max_vectors: int = hw(512, source="nncc estimation setting: input vectors per layer (sampled uniformly over "
                                             "runs and output pixels) on which column sums are measured; 512 and 2048 give the same ADC bits on "
                                             "convnet and resnet18 (random inputs), at a quarter of the time",
                                unit="vectors", minimum=1)

    def check(self) -> None:
        # The ADC table is a setting too: the cap must have an entry to price it.
        top = max(parse_adc_table(self.adc_table))
        if self.adc_bits_max > top:
            raise ValueError(f"adc_bits_max {self.adc_bits_max} is above the ADC table's highest entry ({top} bits)")
        if self.cell_bits > self.weight_bits:
            raise ValueError(f"cell_bits {self.cell_bits} > weight_bits {self.weight_bits}")

    # --- derived quantities
    @functools.cached_property
    def geometry(self) -> CrossbarGeometry:
        """The crossbars as the mapping places them and passes plan for them (rank-clip, delete-groups)."""
        return CrossbarGeometry(self.crossbar_size, self.cell_bits, self.weight_bits, self.weight_encoding, self.weight_scale)

    @property
    def slices(self) -> int:
        """Cells (columns) per weight and polarity: ceil(weight_bits / cell_bits)."""
        return self.geometry.slices

    @property
    def polarities(self) -> int:
        return self.geometry.polarities

    @property
    def g_on(self) -> float:
        return 1.0 / self.r_on_ohm

    @property
    def g_off(self) -> float:
        return 1.0 / (self.r_on_ohm * self.r_off_ratio)

    @property
    def adcs_per_crossbar(self) -> int:
        return -(-self.crossbar_size // self.cols_per_adc)

    @property
    def crossbar_area_um2(self) -> float:
        f_um = self.feature_size_nm * 1e-3
        return self.crossbar_size ** 2 * self.cell_area_f2 * f_um ** 2

    @property
    def crossbar_side_um(self) -> float:
        return self.crossbar_size * math.sqrt(self.cell_area_f2) * self.feature_size_nm * 1e-3

    def adc_energy_pj(self, bits: int) -> float:
        return _adc_entry(self.adc_table, bits)[0]

    def adc_area_um2(self, bits: int) -> float:
        return _adc_entry(self.adc_table, bits)[1]

    def adc_conversion_s(self, bits: int) -> float:
        return max(bits, 1) / ADC_RATE_REF_BITS / self.adc_rate_hz


@functools.lru_cache(maxsize=32)
def parse_adc_table(text: str) -> dict[int, tuple[float, float]]:
    table = {}
    for item in text.replace(",", " ").split():
        parts = item.split(":")
        try:
            bits, pj, um2 = int(parts[0]), float(parts[1]), float(parts[2])
        except (ValueError, IndexError):
            raise ValueError(f"adc_table: '{item}' is not bits:pJ:um2 (e.g. '8:1.67:1200')") from None
        if bits < 1 or pj < 0 or um2 < 0:
            raise ValueError(f"adc_table: '{item}' has a negative or zero-bit entry")
        table[bits] = (pj, um2)
    if not table:
        raise ValueError("adc_table is empty")
    return table


def _adc_entry(text: str, bits: int) -> tuple[float, float]:
    """(pJ, um^2) at ``bits``; below the table, its lowest entry; between entries, the next one up."""
    table = parse_adc_table(text)
    at_least = [b for b in table if b >= bits]
    return table[min(at_least)] if at_least else table[max(table)]
