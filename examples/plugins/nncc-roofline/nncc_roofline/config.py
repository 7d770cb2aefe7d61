"""The accelerator's constants: each names its source ([V] read in the source, [U] unverified,
with the reasoning) and its valid range, which nncc checks for defaults, ``--set`` and ``--config``.

The array, clock and buffer are Eyeriss's (65 nm); the energies are Horowitz's 45 nm figures, so
the energy is that of an Eyeriss-sized array at 45 nm, not of the Eyeriss chip [U].
"""

from __future__ import annotations

import dataclasses

from nncc.plugin import HardwareConfig, hw

EYERISS = "Eyeriss (Chen, Emer, Sze, ISCA 2016; Chen et al., ISSCC 2016 / JSSC 2017)"
HOROWITZ = "Horowitz, Computing's energy problem, ISSCC 2014, 45 nm, as tabulated in Han et al., NIPS 2015, Table 1"


@dataclasses.dataclass(frozen=True)
class RooflineConfig(HardwareConfig):
    pe_count: int = hw(168, f"{EYERISS}: 12 x 14 PEs [V]", "PEs", minimum=1)
    clock_hz: float = hw(200e6, f"{EYERISS}: 200 MHz [V]", "Hz", above=0)
    buffer_bytes: int = hw(108 * 1024, f"{EYERISS}: 108 KB global buffer [V]", "B", minimum=0)
    dram_bytes_per_s: float = hw(1.6e9, "[U] one 64-bit DRAM channel at 200 MT/s; set your board's", "B/s", above=0)
    mac_pj: float = hw(4.6, f"{HOROWITZ}: 32-bit float multiply 3.7 pJ + add 0.9 pJ [V]", "pJ", above=0)
    alu_pj: float = hw(0.9, f"{HOROWITZ}: 32-bit float add 0.9 pJ [V]; one element-wise op as one add [U]", "pJ", minimum=0)
    transcendental_ops: int = hw(8, "[U] exp/tanh/sigmoid by a short series or table: about 8 simple ops", "ops", minimum=1)
    sram_pj_per_byte: float = hw(1.25, f"{HOROWITZ}: 32-bit SRAM cache access 5 pJ, per byte [V]", "pJ/B", minimum=0)
    dram_pj_per_byte: float = hw(160.0, f"{HOROWITZ}: 32-bit DRAM access 640 pJ, per byte [V]", "pJ/B", minimum=0)
    area_mm2: float = hw(12.25, f"[U] {EYERISS}: core 3.5 mm x 3.5 mm (65 nm), as recalled, not re-read", "mm2", above=0)

    def check(self) -> None:
        # Rules across fields; a single field's range is hw(minimum=..., above=...)'s job.
        if self.alu_pj > self.mac_pj:
            raise ValueError(f"alu_pj ({self.alu_pj}) must be <= mac_pj ({self.mac_pj}): a MAC includes an add")
        if self.sram_pj_per_byte > self.dram_pj_per_byte:
            raise ValueError("sram_pj_per_byte must be <= dram_pj_per_byte: the buffer is what saves DRAM energy")
