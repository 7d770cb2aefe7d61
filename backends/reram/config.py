"""Hardware constants of the ``reram`` target: an ISAAC/NeuroSim-style ReRAM crossbar chip.

Source tags as in docs/sources.md, "ReRAM": [V] seen in the named source; [U] not yet confirmed
(a starting point, replace when a better source turns up). The sources read for this file:

- ISAAC = Shafiee et al., ISCA 2016, through the Accelergy hwcomponents-library file
  ``hwcomponents_library/library/isaac.py`` (its CSV comments give energy per action and
  area at 32 nm, and how they were derived from ISAAC's Table of power and area).
- NeuroSim = DNN+NeuroSim V1.3, ``Inference_pytorch/NeuroSIM/Param.cpp`` (defaults); the
  ``neurosim`` profile (``neurosim()`` below, ``--set profile=neurosim``) takes V1.4's
  (``neurosim/DNN_NeuroSim_V1.4``: Param.cpp, Technology.cpp, MultilevelSenseAmp.cpp,
  SubArray.cpp, Chip.cpp; the models in physics.py) and its manual's Table VII settings.
- Technology scaling = Stillmaker & Baas 2017 through Accelergy hwcomponents
  ``hwcomponents/scaling/techscaling.py`` (physics.py).
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

from . import physics

ACC = "Accelergy hwcomponents-library isaac.py (ISAAC, ISCA 2016, 32 nm)"
NSIM = "NeuroSim V1.3 Param.cpp"
ENCODINGS = ("differential", "offset")
WEIGHT_SCALES = ("max", "pow2")
ADC_MODES = ("calibration", "weights", "worst-case", "fixed")
PROFILES = ("isaac", "neurosim")
ADC_TYPES = ("sar", "flash")
# The ADC of ISAAC's table (Kull et al., ISSCC 2013) samples at 1.2 GS/s at 8 bits; a SAR ADC
# resolves one bit per internal step, so Accelergy scales its latency linearly with resolution.
ADC_RATE_REF_BITS = 8


@dataclasses.dataclass(frozen=True)
class ReramConfig(HardwareConfig):
    # --- which circuit models cost.py applies (the neurosim preset: ``--set profile=neurosim``, see ``neurosim()``)
    profile: str = hw("isaac", source="nncc model choice: 'isaac' = ISAAC's per-action energies (Accelergy isaac.py), DAC per "
                                      "row drive, cell current over the read pulse; 'neurosim' = DNN+NeuroSim V1.4's array "
                                      "read (bit/word-line charging per activated row, cell current over the sense time, "
                                      "SubArray.cpp) and its latency (column-muxed sensing, MultilevelSenseAmp.cpp) [V]",
                       choices=PROFILES)
    adc_type: str = hw("sar", source=f"'sar' = ISAAC's SAR ADC table (adc_table) [V, {ACC}]; 'flash' = NeuroSim's current-mode "
                                     "multilevel sense amplifier, 2^b - 1 comparator levels (MultilevelSenseAmp.cpp) [V]",
                       choices=ADC_TYPES)
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
                                                  "at the top cell value; 'fixed' = adc_bits_max everywhere, as NeuroSim "
                                                  "provisions one ADC precision (levelOutput, Param.cpp) [V], inputs still "
                                                  "measured for the read energy",
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
    parallel_read: int = hw(0, source="rows read at once (NeuroSim V1.4 'partial parallel mode', --parallelRead N) [V, NeuroSim V1.4 "
                                      "README]; 0 = every row of the crossbar at once (ISAAC [V])", unit="rows", minimum=0)
    pipeline_speedup: int = hw(0, source="NeuroSim's layer pipeline: conv layers replicated ceil((IFM / ceil(IFM_max / d))^2) "
                                         "times, d = min(this, IFM_max / IFM_min) (Chip.cpp ChipDesignInitialize; Param.cpp "
                                         "speedUpDegree = 8) [V]; 0 = off (replicate applies)", unit="degree", minimum=0)
    # --- device and array (NeuroSim)
    feature_size_nm: float = hw(32.0, source=f"ISAAC's node, 32 nm [V, {ACC} tech_node]; every ISAAC energy and peripheral area "
                                          "is moved from 32 nm to this node by the Stillmaker-Baas tables of Accelergy "
                                          "hwcomponents scaling/techscaling.py [V] (physics.py; 20-90 nm)", unit="nm", above=0)
    cell_area_f2: float = hw(4.0, source=f"{NSIM}: crossbar cell 2F x 2F (heightInFeatureSizeCrossbar = widthInFeatureSizeCrossbar = 2) "
                                         "[V]; its 1T1R cell is 4F x 12F = 48 F^2", unit="F^2", above=0)
    cell_aspect: float = hw(1.0, source=f"cell width / height: crossbar cell 2F x 2F [V, {NSIM}]; 1T1R 12F x 4F = 3 [V, NeuroSim "
                                        "V1.4 Param.cpp widthInFeatureSize1T1R = 12, heightInFeatureSize1T1R = 4]; sets the "
                                        "word-line (row) and bit-line (column) lengths of the neurosim profile", above=0)
    wire_pitch_f: float = hw(2.0, source="[U] one routing track per 2F (minimum metal pitch); routing-area model in cost.py",
                             unit="F", above=0)
    r_on_ohm: float = hw(6e3, source=f"{NSIM}: resistanceOn = 6e3 [V]", unit="ohm", above=0)
    r_off_ratio: float = hw(150.0, source=f"{NSIM}: resistanceOff = 6e3*150 [V]", unit="Roff/Ron", minimum=1)
    access_resistance_ratio: float = hw(0.0, source="access transistor's on-resistance / R_on, in series with every cell; 0 = a "
                                                    "selector-free crossbar (ISAAC); NeuroSim's 1T1R: IR_DROP_TOLERANCE = 0.25 "
                                                    "(constant.h; SubArray.cpp resCellAccess = resistanceOn x 0.25, cell "
                                                    "R_on + R_access and R_off + R_access) [V]", unit="R_on", minimum=0)
    read_voltage_v: float = hw(0.5, source=f"{NSIM}: readVoltage = 0.5 [V]", unit="V", above=0)
    read_pulse_s: float = hw(10e-9, source=f"{NSIM}: readPulseWidth = 10e-9 [V]; one input bit per pulse", unit="s", above=0)
    flash_level_gates: float = hw(22.0, source="[U] minimum-gate capacitances switched per comparator level of NeuroSim's "
                                                "current-mode sense amplifier: its switching terms count 7 NMOS and 6 PMOS gates "
                                                "and 7 junctions (MultilevelSenseAmp.cpp CalculatePower [V]); PMOS = 1.32 NMOS at 22 nm "
                                                "(Technology.cpp pnSizeRatio [V]); a junction taken as one gate [U]",
                                  unit="gates", minimum=0)
    flash_level_transistors: float = hw(9.0, source="NeuroSim MultilevelSenseAmp.cpp CalculateArea: 9 minimum NMOS per level "
                                                    "per column [V]", unit="transistors", minimum=0)
    transistor_area_f2: float = hw(112.0, source="[U] one minimum transistor: MAX_TRANSISTOR_HEIGHT = 28 F tall (NeuroSim "
                                                 "constant.h [V]) x 4 F wide (2 F gate + contacts, [U])", unit="F^2", above=0)
    sense_cycle_factor: float = hw(1.0, source="factor on the sensing time in the neurosim profile's latency; NeuroSim's beta = 1.4 "
                                               "'latency factor of sensing cycle' (Param.cpp, validated = true) [V]; 1 = none",
                                   minimum=1)
    sense_all_row_groups: bool = hw(False, source="neurosim profile: every sense of a column reads all ceil(crossbar_size / "
                                                   "parallel_read) row groups of the sub-array, used or not, as NeuroSim's "
                                                   "synchronous latency counts them (SubArray.cpp CalculateLatency: "
                                                   "readLatencyADC = numColMuxed x numAdd, numAdd = ceil(numRowSubArray / "
                                                   "numRowParallel) from ProcessingUnitInitialize) [V]; False = the row "
                                                   "groups the layer's tallest row block fills (latency only)")
    neurosim_periphery: bool = hw(False, source="add NeuroSim V1.4's buffer and interconnect cycles to each layer's latency: its "
                                                 "tile/PE floorplan, global/tile/PE buffers, tile H-trees and X-Y bus counted "
                                                 "as its synchronous mode counts them (Chip.cpp, Tile.cpp, ProcessingUnit.cpp, "
                                                 "Buffer.cpp, DFF.cpp, HTree.cpp, XYBus.cpp; backends/reram/neurosim_periphery.py) "
                                                 "[V], at one sense cycle per clock; False = none (ISAAC)")
    neurosim_area: bool = hw(False, source="the chip area is NeuroSim V1.4's: its sub-arrays (height x width of the stacked "
                                            "periphery, empty space included), PEs, tiles, buffers, H-trees, X-Y bus and "
                                            "accumulation on its floorplan (SubArray.cpp CalculateArea, ProcessingUnit.cpp, "
                                            "Tile.cpp, Chip.cpp ChipCalculateArea and the component models they call; "
                                            "backends/reram/neurosim_area.py) [V]; 22 nm and the 1T1R cell only; False = "
                                            "nncc's crossbar + ADC + periphery sum (ISAAC)")
    post_layout_energy: float = hw(1.0, source="factor on all energy; 1 = none (ISAAC); NeuroSim's zeta = 1.22 'post-layout energy "
                                               "increase', divided into its TOPS/W (Param.cpp validated = true; main.cpp) [V]",
                                   minimum=1)
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
        physics.energy_scale(self.feature_size_nm)  # raises outside the scaling table
        if self.adc_type == "flash" or self.profile == "neurosim":
            physics.neurosim_node(self.feature_size_nm)  # raises where NeuroSim has no device data
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
        return 1.0 / (self.r_on_ohm + self.r_on_ohm * self.access_resistance_ratio)

    @property
    def g_off(self) -> float:
        return 1.0 / (self.r_on_ohm * self.r_off_ratio + self.r_on_ohm * self.access_resistance_ratio)

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

    @functools.cached_property
    def energy_factor(self) -> float:
        """ISAAC's 32 nm energies at feature_size_nm (exactly 1 at 32 nm)."""
        return physics.energy_scale(self.feature_size_nm)

    @functools.cached_property
    def area_factor(self) -> float:
        return physics.area_scale(self.feature_size_nm)

    def pj(self, name: str) -> float:
        """An ISAAC per-action energy field (``dac_energy_pj``, ...) at this node."""
        return getattr(self, name) * self.energy_factor

    def um2(self, name: str) -> float:
        """An ISAAC peripheral area field (``edram_area_um2``, ...) at this node."""
        return getattr(self, name) * self.area_factor

    @property
    def rows_parallel(self) -> int:
        """Rows one sense reads at once."""
        return min(self.parallel_read, self.crossbar_size) if self.parallel_read else self.crossbar_size

    @property
    def cell_width_f(self) -> float:
        return math.sqrt(self.cell_area_f2 * self.cell_aspect)

    @property
    def cell_height_f(self) -> float:
        return math.sqrt(self.cell_area_f2 / self.cell_aspect)

    def adc_energy_pj(self, bits: int) -> float:
        if self.adc_type == "flash":
            return physics.flash_energy_j(self.feature_size_nm, bits, self.flash_level_gates) * 1e12
        return _adc_entry(self.adc_table, bits)[0] * self.energy_factor

    def adc_area_um2(self, bits: int) -> float:
        if self.adc_type == "flash":
            return physics.flash_area_um2(self.feature_size_nm, bits, self.flash_level_transistors, self.transistor_area_f2)
        return _adc_entry(self.adc_table, bits)[1] * self.area_factor

    def adc_conversion_s(self, bits: int) -> float:
        if self.adc_type == "flash":
            return physics.flash_sense_time(self.feature_size_nm, self.r_on_ohm, self.rows_parallel, max(bits, 1))
        return max(bits, 1) / ADC_RATE_REF_BITS / self.adc_rate_hz


def neurosim() -> ReramConfig:
    """DNN+NeuroSim V1.4's defaults with the RRAM settings of its manual's Table VII (22 nm, 1-bit
    cells, 8-bit weights and inputs, 128 x 128 sub-arrays, 4-bit ADC, on/off 17, parallel read
    32; docs/sources.md, "ReRAM"). Each value's source is the field's; the ones set here:"""
    return ReramConfig(
        profile="neurosim", adc_type="flash",
        feature_size_nm=22.0,                 # Param.cpp technode = 22 [V]
        cell_bits=1,                          # Table VII: 1 bit per cell [V]
        weight_encoding="offset",             # one unsigned column set per weight, sign by a reference column [U]
        adc_bits_max=4, adc_bits_from="fixed",  # one fixed 4-bit sense amplifier per 8 columns [V]
        parallel_read=32,                     # Table VII row 1 [V]
        pipeline_speedup=8,                   # Param.cpp pipeline = true, speedUpDegree = 8 [V]
        r_on_ohm=100e3, r_off_ratio=17.0,     # Param.cpp resistanceOn = 100e3; Table VII on/off 17 [V]
        access_resistance_ratio=0.25,         # 1T1R access transistor [V]
        read_voltage_v=0.55,                  # Param.cpp readVoltage at 22 nm [V]
        cell_area_f2=48.0, cell_aspect=3.0,   # 1T1R 12F x 4F [V]
        post_layout_energy=1.22,              # zeta [V]
        sense_cycle_factor=1.4,               # beta [V]
        neurosim_periphery=True,              # buffers and interconnect, synchronous cycles (neurosim_periphery.py) [V]
        sense_all_row_groups=True,            # SubArray.cpp: numAdd row groups per sense, used or not [V]
        neurosim_area=True,                   # NeuroSim's chip area on its floorplan (neurosim_area.py) [V]
    )


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
