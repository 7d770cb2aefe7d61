"""Hardware constants of the UCNN target and of its Eyeriss-style sparse baseline.

UCNN (Hegde et al., "UCNN: Exploiting Computational Reuse in Deep Neural Networks via Weight
Repetition", ISCA 2018) and the baseline it is compared with share one provisioning: the
same PE count, clock, buffers and energy table; only the PE datapath and the weight format
differ. Sources: docs/sources.md, "UCNN"; tags: [V] seen in the named source; [U] not yet
confirmed (a starting point); "fitted constant: ..." names the rerunnable fit that produced the value.

Energy: access energies are Eyeriss's normalized costs (Chen et al., ISCA 2016: RF 1x,
PE-array NoC 2x, global buffer 6x, DRAM 200x the energy of one MAC), scaled to picojoules
by a 16-bit MAC built from Horowitz's 45 nm arithmetic energies (ISSCC 2014: 8-bit add
0.03 pJ, 32-bit add 0.1 pJ, 8-bit multiply 0.2 pJ, 32-bit multiply 3.1 pJ; 16 bits taken
as the geometric mean of the 8- and 32-bit figures: add 0.055 pJ, multiply 0.79 pJ).
"""

from __future__ import annotations

import dataclasses

from nncc.backends.base import HardwareConfig, hw

UCNN = "Hegde et al., UCNN, ISCA 2018"
EYERISS = "Chen, Emer, Sze, Eyeriss: a spatial architecture for energy-efficient dataflow, ISCA 2016"
EYERISS_CHIP = "Chen et al., Eyeriss, ISSCC 2016 / JSSC 2017"
HOROWITZ = "Horowitz, Computing's energy problem, ISSCC 2014 (45 nm)"
DESIGNS = ("ucnn", "baseline")


@dataclasses.dataclass(frozen=True)
class UcnnConfig(HardwareConfig):
    # --- which design is the report's headline (both are always in the report rows)
    design: str = hw("ucnn", source=f"{UCNN}: UCNN vs a 'similarly provisioned' baseline with Eyeriss-style sparsity "
                                    "optimizations; 'baseline' makes the baseline the headline row", choices=DESIGNS)
    # --- weights as the hardware stores them
    weight_bits: int = hw(16, source=f"{UCNN} [V abstract; docs/sources.md, \"UCNN\"]: networks evaluated with 16-bit "
                                     "and 8-bit weights. Float weights are quantized inside the cost model (per layer, symmetric, "
                                     "scale = max|w| / (2^(b-1)-1)) to count the distinct values; the graph is unchanged",
                          unit="bit", minimum=2, maximum=32)
    act_bits: int = hw(16, source=f"{UCNN} [U]: 16-bit activations (Eyeriss: 16-bit fixed point [V {EYERISS_CHIP}])",
                       unit="bit", minimum=2, maximum=32)
    group: int = hw(1, source=f"{UCNN} [U, paper's 'activation group reuse']: G filters share one indirection table, "
                              "sorted by their weight tuples; sums of activations are formed once for the G filters. "
                              "G = 1 is the plain factorized dot product; at most 4, as the tuple sort grows as K^G",
                    unit="filters", minimum=1, maximum=4)
    index_bits: int = hw(0, source=f"{UCNN} [U]: an indirection-table entry gives the jump to the next activation of its "
                                   "weight group (a full address would take ceil(log2 K) bits); jumps longer than the "
                                   "width take padding entries; 0 = the width that makes each layer's table smallest. "
                                   "Each entry also carries G group-transition bits", unit="bit", minimum=0)
    # --- the array (shared by both designs)
    pes: int = hw(168, source=f"{EYERISS_CHIP} [V]: 12 x 14 = 168 PEs; UCNN provisions the same [U]", unit="PEs", minimum=1)
    clock_hz: float = hw(200e6, source=f"{EYERISS_CHIP} [V]: 200 MHz core clock [U for UCNN]", unit="Hz", above=0)
    multipliers_per_pe: int = hw(1, source=f"{UCNN} [U]: one multiplier per filter of the group (G per PE); the adder "
                                           "takes one indirection entry per cycle", unit="per filter", minimum=1)
    glb_bytes: int = hw(108 * 1024, source=f"{EYERISS_CHIP} [V]: 108 KB global buffer", unit="B", minimum=1)
    rf_weight_bytes: int = hw(448, source=f"{EYERISS_CHIP} [V]: 224-entry x 16-bit filter scratch pad per PE", unit="B",
                              minimum=1)
    # --- energy (normalized to one 16-bit MAC, Eyeriss) and the absolute scale (Horowitz)
    e_mult16_pj: float = hw(0.787, source=f"{HOROWITZ} [V 8/32-bit figures]: sqrt(0.2 x 3.1) pJ; scaled by "
                                          "(weight bits x act bits) / 256 (an array multiplier's area ~ n^2)", unit="pJ",
                         above=0)
    e_add16_pj: float = hw(0.055, source=f"{HOROWITZ} [V 8/32-bit figures]: sqrt(0.03 x 0.1) pJ; scaled by bits / 16",
                           unit="pJ", above=0)
    rf_x: float = hw(1.0, source=f"{EYERISS} [V]: RF access 1x MAC energy (per 16-bit word; scaled by bits)", unit="x MAC",
                     above=0)
    noc_x: float = hw(2.0, source=f"{EYERISS} [V]: inter-PE / array NoC 2x", unit="x MAC", above=0)
    glb_x: float = hw(6.0, source=f"{EYERISS} [V]: global buffer 6x", unit="x MAC", above=0)
    dram_x: float = hw(200.0, source=f"{EYERISS} [V]: DRAM 200x", unit="x MAC", above=0)
    # --- sparsity
    activation_density: float = hw(0.5, source="[U] fraction of non-zero input activations (post-ReLU CNNs: Eyeriss reports "
                                               "zero gating of ifmaps, Han et al. / Cnvlutin ~40-60% zeros); gates arithmetic "
                                               "in both designs, never cycles", unit="fraction", above=0, maximum=1)
    density_samples: int = hw(64, source="nncc estimation setting: model runs on --calib/--eval data that measure each "
                                          "layer's input activation density (replacing activation_density)",
                              unit="runs", minimum=1)
    gate_zero_sums: bool = hw(True, source=f"[U] nncc design, the baseline's gating carried over: Eyeriss gates its "
                                           f"datapath on zero data [V {EYERISS_CHIP} abstract: 'data gating'], and UCNN "
                                           "is compared with a 'similarly provisioned' baseline [V UCNN abstract]; UCNN "
                                           "skips a multiply (and its unique-weight read and partial-sum update) whose "
                                           "sum of activations is zero, i.e. all n of them zero: probability (1-d)^n at "
                                           "activation density d. Whether the paper's PE does this was not read; "
                                           "false: every multiply is performed", choices=(True, False))
    rlc_run_bits: int = hw(5, source=f"{EYERISS_CHIP} [V]: run-length coding with 5-bit runs (used here for the feature "
                                     "maps in DRAM, both designs, and for the baseline's compressed weights in DRAM [U: "
                                     "an nncc addition]; each keeps the smaller of dense and RLC)",
                           unit="bit", minimum=1)
    compress_activations: bool = hw(True, source=f"{EYERISS_CHIP} [V, ISSCC 2016 text as summarized (study.space): "
                                                 "output feature maps are rectified and run-length compressed before "
                                                 "DRAM, which halves the average image bandwidth]: input and output "
                                                 "activations of a factorized layer cross DRAM as RLC at activation "
                                                 "density d, in both designs (UCNN provisioned alike [U]); the output's "
                                                 "density taken as d [U]. false: dense activations",
                                    choices=(True, False))
    pe_area_overhead: str = hw("17-24%", source=f"{UCNN} [V abstract]: UCNN PE area +17-24% over the baseline PE; "
                                                "reported, not modelled (no absolute area)")

    @property
    def e_mac16_pj(self) -> float:
        """The unit of Eyeriss's normalized table: one 16-bit multiply plus one add."""
        return self.e_mult16_pj + self.e_add16_pj
