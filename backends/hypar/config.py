"""Hardware and training constants of the HyPar target (an array of HMC-based accelerators).

Sources: docs/sources.md, "HyPar"; tags: [V] seen in the named source; [U] not yet
confirmed (a starting point; replace when a better source turns up); "fitted constant: ..."
names the rerunnable fit (``nncc.backends.hypar.fit``) that produced the value.
"""

from __future__ import annotations

import dataclasses

from nncc.backends.base import HardwareConfig, hw

HYPAR = 'Song et al., HyPar, HPCA 2019 (docs/sources.md, "HyPar")'
TETRIS = "Gao et al., TETRIS: scalable and efficient neural network acceleration with 3D memory, ASPLOS 2017"
HOROWITZ = "Horowitz ISSCC 2014 (45 nm), via Han et al. NIPS 2015 Table 1"
GRADIENTS = ("fp32", "ternary")
TOPOLOGIES = ("htree", "pairwise")
FIT = "fitted constant: nncc.backends.hypar.fit.fit_constants (python -m nncc.backends.hypar.fit)"


@dataclasses.dataclass(frozen=True)
class HyparConfig(HardwareConfig):
    # --- the array and the training step
    accelerators: int = hw(16, source=f"{HYPAR} [V]: 16 HMC-based accelerators, 4 levels of binary splits",
                           unit="accelerators", minimum=1)
    batch: int = hw(256, source="[U] mini-batch of one training step (HyPar's own batch not confirmed; AccPar code uses 512); "
                                "the fit of link bandwidth/energy is made at this batch. --batch N sets it; totals.per_sample "
                                "divides the step by it", unit="samples", minimum=1)
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
    hmc_bytes: int = hw(8 * 2**30, source="[U] one HMC 2.0 cube, 8 GB (4 or 8 GB in the HMC 2.0 spec): holds the accelerator's "
                                          "weights, gradients and momentum (3 copies of its weight share) and the feature maps "
                                          "stashed for the backward pass", unit="B", above=0)
    elementwise_per_s: float = hw(3.136e11, source="[U] element-wise/pooling ops: one op per PE per cycle, 16 vaults x 196 PEs x "
                                                   "100 MHz-equivalent (1/5 of the MAC rate: no operand reuse)",
                                  unit="op/s", above=0)
    pj_per_elementwise: float = hw(0.9, source=f"{HOROWITZ} [V]: fp32 add 0.9 pJ per element-wise op", unit="pJ", minimum=0)
    # --- the links between accelerators
    # Both fitted to the paper's geometric-mean gains over data parallelism on 8 of its 10 networks at
    # batch 256 (fit.py). They sit ~30x below / ~50x above HMC link specs: read them as the ratio of
    # link to compute cost that the paper's gains imply (a slower or costlier accelerator moves them).
    link_bytes_per_s: float = hw(0.971e9, source=f"{FIT}: performance gain 3.39x ({HYPAR} [V]); for scale, an HMC 2.1 "
                                                 "full-width link is 16 lanes x 15 Gb/s = 30 GB/s per direction [U]",
                                 unit="B/s", above=0)
    link_pj_per_bit: float = hw(265.7, source=f"{FIT}: energy-efficiency gain 1.51x ({HYPAR} [V]); for scale, HMC SerDes "
                                             "links are quoted near 5 pJ/bit [U]", unit="pJ/bit", minimum=0)

    def check(self) -> None:
        n = self.accelerators
        if n & (n - 1):
            raise ValueError(f"accelerators must be a power of two (got {n}): the array is split in halves")

    @property
    def levels(self) -> int:
        return self.accelerators.bit_length() - 1
