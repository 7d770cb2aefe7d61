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
TOPOLOGIES = ("htree", "pairwise")
HMC = "HMC 1.0 specification (Hybrid Memory Cube Consortium, 2013), as summarised in the Wikipedia HMC article"
# HMC 1.0 [V]: full-duplex links of 16 lanes (8 at half width), each lane 10, 12.5 or 15 Gb/s.
LINK_LANES, LANE_BITS_PER_S = 16, 15e9


@dataclasses.dataclass(frozen=True)
class HyparConfig(HardwareConfig):
    # --- the array and the training step
    accelerators: int = hw(16, source=f"{HYPAR} [V]: 16 HMC-based accelerators, 4 levels of binary splits",
                           unit="accelerators", minimum=1)
    batch: int = hw(256, source="[U] mini-batch of one training step (HyPar's own batch not confirmed; AccPar code uses 512). "
                                "--batch N sets it; totals.per_sample divides the step by it", unit="samples", minimum=1)
    data_bits: int = hw(32, source="[U] fp32 feature maps, errors and gradients in training (HyPar's precision not confirmed)",
                        unit="bit", minimum=1)
    gradient: str = hw("fp32", source="'fp32' or 'ternary': TernGrad (Wen et al., NIPS 2017, seed abstract) [V] sends gradients as "
                                      "{-1,0,1} (2 bits per element) plus one fp32 scalar per tensor", choices=GRADIENTS)
    ternary_bits: int = hw(2, source="TernGrad [V]: three levels coded in 2 bits per gradient element", unit="bit", minimum=1)
    training_passes: int = hw(3, source="[V] standard back-propagation: forward, error backward, weight gradient -- each "
                                        "as many MACs as the forward pass", unit="passes", minimum=1)
    topology: str = hw("htree", source="[U] 'htree': at level h the 2^h group pairs each talk over one link (the array as a binary "
                                       "tree, HyPar's hierarchy); 'pairwise': every accelerator exchanges with its mirror in the "
                                       "other half, so a level's traffic spreads over accelerators/2^(h+1) links per pair",
                       choices=TOPOLOGIES)
    # --- one HMC-based accelerator
    macs_per_s: float = hw(1.568e12, source=f"[U] TETRIS-like accelerator ({TETRIS}): 16 vaults x 196 PEs x 500 MHz",
                           unit="MAC/s", above=0)
    pj_per_mac: float = hw(4.6, source=f"{HOROWITZ} [V]: fp32 mult 3.7 pJ + add 0.9 pJ; [U] buffer/DRAM traffic per MAC not added",
                           unit="pJ", minimum=0)
    hmc_bytes: int = hw(8 * 2**30, source=f"{HMC} [V]: cubes of 2, 4 or 8 GB; [U] HyPar's capacity. One 8 GB cube "
                                          "holds the accelerator's weights, gradients and momentum (3 copies of its weight share) "
                                          "and the feature maps stashed for the backward pass", unit="B", above=0)
    elementwise_per_s: float = hw(3.136e11, source="[U] element-wise/pooling ops: one op per PE per cycle, 16 vaults x 196 PEs x "
                                                   "100 MHz-equivalent (1/5 of the MAC rate: no operand reuse)",
                                  unit="op/s", above=0)
    pj_per_elementwise: float = hw(0.9, source=f"{HOROWITZ} [V]: fp32 add 0.9 pJ per element-wise op", unit="pJ", minimum=0)
    # --- the links between accelerators
    # From the HMC specification, not fitted: with them the gains over data parallelism come out
    # well below the paper's (benchmarks/hypar.py; backends/hypar/fidelity.py says by how much).
    link_bytes_per_s: float = hw(LINK_LANES * LANE_BITS_PER_S / 8, source=f"{HMC} [V]: one full-width link, 16 lanes x "
                                 "15 Gb/s (the spec's fastest lane) = 30 GB/s in each direction; [U] that HyPar's array used "
                                 "full-width links at this rate (10 Gb/s lanes: 20 GB/s)", unit="B/s", above=0)
    link_pj_per_bit: float = hw(5.0, source="[U] SerDes energy per bit of an HMC link: no measured figure found; 5 pJ/bit is an "
                                            "assumed order of magnitude for a 15 Gb/s chip-to-chip lane (benchmarks/hypar.py "
                                            "prints 2 and 10 beside it; the gains barely move)", unit="pJ/bit", minimum=0)

    def check(self) -> None:
        n = self.accelerators
        if n & (n - 1):
            raise ValueError(f"accelerators must be a power of two (got {n}): the array is split in halves")

    @property
    def levels(self) -> int:
        return self.accelerators.bit_length() - 1
