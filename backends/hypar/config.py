"""Hardware and training constants of the HyPar target (an array of HMC-based accelerators).

Sources: docs/sources.md, "HyPar"; tags: [V] seen in the named source; [U] not yet
confirmed (a starting point; replace when a better source turns up). No constant is fitted
to the paper's gains: ``nncc.backends.hypar.fit`` remains as an analysis (what link the
paper's gains would imply, with its leave-one-out error), not as a source of defaults.
"""

from __future__ import annotations

import dataclasses

from nncc.backends.base import HardwareConfig, hw

HYPAR = 'Song et al., HyPar, HPCA 2019 (docs/sources.md, "HyPar")'
TETRIS = "Gao et al., TETRIS: scalable and efficient neural network acceleration with 3D memory, ASPLOS 2017"
HOROWITZ = "Horowitz ISSCC 2014 (45 nm), via Han et al. NIPS 2015 Table 1"
GRADIENTS = ("fp32", "ternary")
TOPOLOGIES = ("htree", "uniform", "pairwise")
# The paper's figures and its topology section, seen as images of the paper in a third-party study note
# (the GitHub repository PGTKi/ReferencePapersCollecting, its HyPar study note and the figure images beside it).
HYPAR_FIGS = f"{HYPAR}, Figs. 6-8, 11, 12 and its topology section, seen via the PGTKi/ReferencePapersCollecting study note"
DENALI = ("Denali Memory Report (Cadence), 2012-08-14, on the HMC short-reach PHY draft: 'on the order of 5-10 pJ/bit' "
          "(Micron's Mike Black)")
HMC = "HMC 1.0 specification (Hybrid Memory Cube Consortium, 2013), as summarised in the Wikipedia HMC article"
# HMC 1.0 [V]: full-duplex links of 16 lanes (8 at half width), each lane 10, 12.5 or 15 Gb/s.
LINK_LANES, LANE_BITS_PER_S = 16, 15e9


@dataclasses.dataclass(frozen=True)
class HyparConfig(HardwareConfig):
    # --- the array and the training step
    accelerators: int = hw(16, source=f"{HYPAR} [V]: 16 HMC-based accelerators, 4 levels of binary splits",
                           unit="accelerators", minimum=1)
    batch: int = hw(256, source=f"[U] mini-batch of one training step: the paper's stated batch was not seen, but at 256 "
                                f"nncc's per-step traffic matches {HYPAR_FIGS} Fig. 8 (HyPar plans of LeNet-c, Cifar-c, VGG-A..E "
                                "within 2-9%, AlexNet's all-mp traffic 13.0 GB exactly; fit.FIG8). AccPar's code uses 512. "
                                "--batch N sets it; totals.per_sample divides the step by it", unit="samples", minimum=1)
    data_bits: int = hw(32, source=f"{HYPAR_FIGS} [V, derived]: Fig. 8's all-dp traffic is 4 bytes per weight-gradient "
                                   "element, both directions, over the 15 group pairs (LeNet-c 0.0517 GB = 430,500 weights x 120 B, "
                                   "VGG-A..E likewise): fp32 maps, errors and gradients", unit="bit", minimum=1)
    gradient: str = hw("fp32", source="'fp32' or 'ternary': TernGrad (Wen et al., NIPS 2017, seed abstract) [V] sends gradients as "
                                      "{-1,0,1} (2 bits per element) plus one fp32 scalar per tensor", choices=GRADIENTS)
    ternary_bits: int = hw(2, source="TernGrad [V]: three levels coded in 2 bits per gradient element", unit="bit", minimum=1)
    training_passes: int = hw(3, source="[V] standard back-propagation: forward, error backward, weight gradient -- each "
                                        "as many MACs as the forward pass", unit="passes", minimum=1)
    topology: str = hw("htree", source=f"{HYPAR_FIGS} [V]: 'htree', the paper's H tree (Fig. 4c): 'the bandwidth between groups "
                                       "in a higher hierarchy are doubled compared to that of a lower hierarchy (but the number of "
                                       "links is halved)' -- the top link is link_bytes_per_s, each level down has twice the links at "
                                       "half the rate, so each level's 2^h pairs share one link's bandwidth. [U] which level is one "
                                       "full HMC link: the top, because the paper's Fig. 11 has data parallelism's speedup fall from "
                                       "~4.4x at 8 accelerators to 1.2x at 64 as its traffic grows with N, which a tree whose bottom "
                                       "links stay one HMC link (time bounded by 2x one level's) cannot give. 'uniform': every pair "
                                       "on one full-rate link (nncc's earlier model); 'pairwise': every accelerator exchanges with its "
                                       "mirror in the other half, a level's traffic over accelerators/2^(h+1) full-rate links per pair",
                       choices=TOPOLOGIES)
    # --- one HMC-based accelerator
    macs_per_s: float = hw(1.568e12, source=f"[U] TETRIS-like accelerator ({TETRIS}): 16 vaults x 196 PEs x 500 MHz, one "
                                         "MAC per PE per cycle at any data width (TETRIS's PEs are 16-bit fixed point; "
                                         "HyPar's per-accelerator rate was not seen)",
                           unit="MAC/s", above=0)
    pj_per_mac: float = hw(4.6, source=f"{HOROWITZ} [V]: fp32 mult 3.7 pJ + add 0.9 pJ, for layers wider than 16 bits "
                                       "(data_bits 32, the paper's); [U] buffer/DRAM traffic per MAC not added",
                           unit="pJ", minimum=0)
    pj_per_mac_fp16: float = hw(1.5, source=f"{HOROWITZ} [V]: fp16 mult 1.1 pJ + add 0.4 pJ, for 9-16-bit layers (float16 "
                                            "models, data_bits=16)", unit="pJ", minimum=0)
    pj_per_mac_int8: float = hw(0.23, source=f"{HOROWITZ} [V]: int8 mult 0.2 pJ + add 0.03 pJ, for layers of 8 bits or fewer "
                                            "(pre-quantized integer ops)", unit="pJ", minimum=0)
    hmc_bytes: int = hw(8 * 2**30, source=f"{HMC} [V]: cubes of 2, 4 or 8 GB; [U] HyPar's capacity. One 8 GB cube "
                                          "holds the accelerator's weights, gradients and momentum (3 copies of its weight share) "
                                          "and the feature maps stashed for the backward pass", unit="B", above=0)
    elementwise_per_s: float = hw(3.136e11, source="[U] element-wise/pooling ops: one op per PE per cycle, 16 vaults x 196 PEs x "
                                                   "100 MHz-equivalent (1/5 of the MAC rate: no operand reuse)",
                                  unit="op/s", above=0)
    pj_per_elementwise: float = hw(0.9, source=f"{HOROWITZ} [V]: fp32 add 0.9 pJ per element-wise op (data_bits > 16)",
                                   unit="pJ", minimum=0)
    pj_per_elementwise_fp16: float = hw(0.4, source=f"{HOROWITZ} [V]: fp16 add 0.4 pJ (data_bits 9-16)", unit="pJ", minimum=0)
    pj_per_elementwise_int8: float = hw(0.03, source=f"{HOROWITZ} [V]: int8 add 0.03 pJ (data_bits <= 8)", unit="pJ", minimum=0)
    # --- the links between accelerators
    # From the HMC specification, not fitted: with them the gains over data parallelism come out
    # well below the paper's (benchmarks/hypar.py; backends/hypar/fidelity.py says by how much).
    link_bytes_per_s: float = hw(LINK_LANES * LANE_BITS_PER_S / 8, source=f"{HMC} [V]: one full-width link, 16 lanes x "
                                 "15 Gb/s (the spec's fastest lane) = 30 GB/s in each direction: under 'htree' the top "
                                 "level's link, each level below half as fast; [U] that HyPar's array used full-width links at "
                                 "this rate (10 Gb/s lanes: 20 GB/s)", unit="B/s", above=0)
    link_pj_per_bit: float = hw(5.0, source=f"{DENALI} [V]: HMC short-reach (board) PHY 5-10 pJ/bit; nncc takes the low end "
                                            "[U: HyPar's figure; benchmarks/hypar.py prints 2 and 10 beside it]",
                                unit="pJ/bit", minimum=0)

    def check(self) -> None:
        n = self.accelerators
        if n & (n - 1):
            raise ValueError(f"accelerators must be a power of two (got {n}): the array is split in halves")

    @property
    def levels(self) -> int:
        return self.accelerators.bit_length() - 1

    def mac_pj(self, bits: int) -> float:
        """Energy of one MAC at a layer's data width (Horowitz's int8 / fp16 / fp32 figures)."""
        return self.pj_per_mac_int8 if bits <= 8 else self.pj_per_mac_fp16 if bits <= 16 else self.pj_per_mac

    def elementwise_pj(self, bits: int) -> float:
        return self.pj_per_elementwise_int8 if bits <= 8 else self.pj_per_elementwise_fp16 if bits <= 16 else self.pj_per_elementwise
