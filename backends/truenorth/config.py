"""Hardware constants of the TrueNorth target (IBM neurosynaptic chip).

Source tags as in docs/sources.md, "TrueNorth": [V] seen in the named source; [U] not yet
confirmed (a starting point; replace when a better source turns up); "fitted constant: ..."
names the rerunnable measurement that produced the value.
"""

from __future__ import annotations

import dataclasses

from nncc.backends.base import HardwareConfig, hw

PYTN = 'TrueNorth core (docs/sources.md, "TrueNorth") [V, pytruenorth]'
AKOPYAN = "Akopyan et al., TrueNorth: design and tool flow of a 65 mW 1 million neuron programmable neurosynaptic chip, TCAD 2015"
WEIGHT_SCHEMES = ("neuron-levels", "sign-split")
POOLING = ("avg", "or")
COPY_MODES = ("spatial", "temporal")


@dataclasses.dataclass(frozen=True)
class TrueNorthConfig(HardwareConfig):
    # --- one core: a 256 x 256 binary crossbar, weights indexed by axon type
    axons_per_core: int = hw(256, source=PYTN, unit="axons", minimum=1)
    neurons_per_core: int = hw(256, source=PYTN, unit="neurons", minimum=1)
    axon_types: int = hw(4, source=f"{PYTN}: each neuron has one signed weight per axon type", unit="types", minimum=1)
    weight_magnitude_bits: int = hw(8, source=f"{PYTN}: sign + 8-bit magnitude per axon type (-255..255)", unit="bit",
                                    minimum=1)
    tick_s: float = hw(1e-3, source='[U] 1 ms tick (docs/sources.md, "TrueNorth": secondary sources only)', unit="s",
                       minimum=0)
    # --- the chip and how many of them the deployment may use
    cores_per_chip: int = hw(4096, source=f"{AKOPYAN} [V]: 4096 cores, 1M neurons, 256M synapses", unit="cores", minimum=1)
    max_chips: int = hw(1, source="deployment choice [U]: one chip (as on an NS1e board); raise it for multi-chip systems",
                        unit="chips", minimum=1)
    host_fallback: bool = hw(False, source="nncc estimation setting: a node with no TrueNorth form (a custom op, a recurrent "
                                           "layer, an op with no neuron model) refuses the compile in one line; true lets it "
                                           "run on a host beside the chip instead, listed as unsupported and not costed")
    # --- how a network runs: rate coding over `ticks`, `copies` averaged
    ticks: int = hw(4, source="choice [U]: Esser et al. (NIPS 2015, PNAS 2016) show a frame for 1 tick to networks trained for "
                              "binary spikes; a float-trained network converted to rates needs more (Diehl et al. IJCNN 2015, "
                              "Rueckauer et al. 2017). On LeNet-5/MNIST at one copy: 66% at 1 tick, 94.4% at 2, 95.7% at 4 "
                              "(analog ceiling 97.2%): 4 is the smallest T within 1.5 points of it "
                              "(python -m nncc.backends.truenorth.benchmark)", unit="ticks", minimum=1)
    copies: int = hw(1, source="Esser et al. NIPS 2015 [U]: 1 to 64 copies averaged (92.7% at 1, 99.42% at 64 on MNIST)",
                     unit="copies", minimum=1)
    copy_mode: str = hw("spatial", source="Wen et al. DAC 2016 [V]: copies are spatial (more cores) or temporal (more ticks)",
                        choices=COPY_MODES)
    # --- how a real weight becomes a TrueNorth synapse (see simulate.py)
    weight_scheme: str = hw("neuron-levels", source=(
        "mapping choice: 'neuron-levels' = one axon per input, each neuron's weights rounded to 4 signed levels "
        "(k-means) + 0 (no synapse) -- optimistic: it assumes an axon type chosen per synapse, while the chip shares "
        "a type across the core's neurons; 'sign-split' = each input on an excitatory and an inhibitory axon, "
        "ternary weights {-s, 0, +s} per neuron (the faithful Esser et al. PNAS 2016 style; 128 inputs per core)"),
                            choices=WEIGHT_SCHEMES)
    pooling: str = hw("or", source="mapping choice: max-pooling runs as an OR of spikes ('or': fires when any input fires, a "
                                   "rate >= the max; LeNet-5 97.2% analog) or as average pooling ('avg': exact in rates, 96.5%, "
                                   "and slower to pass spikes at few ticks); see simulate.py", choices=POOLING)
    initial_potential: float = hw(0.5, source="mapping choice [U]: membranes start at half the threshold, which centres the rate "
                                              "quantization error (Rueckauer et al. 2017; Bu et al. ICLR 2022); without it LeNet-5 "
                                              "needs 8 ticks to classify at all. TrueNorth's initial membrane state is set at "
                                              "configuration [U]; below 1: a start at a whole threshold fires before any input",
                                      unit="threshold", minimum=0, below=1)
    # --- energy
    pj_per_synaptic_event: float = hw(26.0, source='docs/sources.md, "TrueNorth" [U]: ~26 pJ per synaptic event (chip '
                                                   "power / events at 20 Hz, 128 active synapses per neuron; Merolla Science "
                                                   "2014 via secondary sources)", unit="pJ", minimum=0)
    chip_power_w: float = hw(0.065, source=f"{AKOPYAN} [V] 65 mW per chip; charged here as static power, scaled by cores used / "
                                           "cores_per_chip [U] (an upper bound: the 65 mW already holds some dynamic power)",
                             unit="W", minimum=0)
    spike_rate: float = hw(0.15, source="fitted constant: mean spikes per input axon per tick, synapse-weighted, measured by the "
                                        "spiking simulation of LeNet-5 on 1000 MNIST test digits at 4 ticks (0.149; "
                                        "python -m nncc.backends.truenorth.benchmark prints it); the cost model's activity "
                                        "where no simulation supplies per-layer rates", unit="spikes/axon/tick",
                              minimum=0, maximum=1)

    def check(self) -> None:
        if self.axons_per_input > self.axons_per_core:
            raise ValueError(f"a core must hold at least one input ({self.weight_scheme} takes {self.axons_per_input} axons "
                             f"per input, axons_per_core = {self.axons_per_core})")

    @property
    def max_cores(self) -> int:
        return self.cores_per_chip * self.max_chips

    @property
    def axons_per_input(self) -> int:
        """Axons one input feature occupies: 2 under 'sign-split' (excitatory + inhibitory)."""
        return 2 if self.weight_scheme == "sign-split" else 1

    @property
    def inputs_per_core(self) -> int:
        return self.axons_per_core // self.axons_per_input

    @property
    def spatial_copies(self) -> int:
        return self.copies if self.copy_mode == "spatial" else 1

    @property
    def temporal_copies(self) -> int:
        return self.copies if self.copy_mode == "temporal" else 1
