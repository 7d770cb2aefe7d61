"""The two networks of the authors' partition code, as nncc layer tables, for checking nncc's
per-level choices and amounts against what that code computes (tests, fidelity.py).

HyPar's authors published their partition search as linghaosong/AccPar (src/accpar.cpp; run
as ``accpar networks/<net>.txt -1``, it prints the per-level types of "data par", "the trick",
HyPar and AccPar). Its HyPar mode (two types) is the model partition.py implements: type I
(dp) exchanges A(dW) = Cin*Cout*k^2, type II (mp) A(F_out) = B*Cout*out_h*out_w; transitions
and the splits of each level as in partition.py's docstring. It counts elements, hard-codes
batch 512 and 7 levels, and reads these shapes from networks/Alexnet.txt and Vgg11.txt [V,
code]. Its shapes are its own: ``out`` is the map after the layer's pooling (AlexNet conv1
55x55 with no pooling, conv2 55x55 in, 27x27 out), so they differ from fit.py's tables.
"""

from __future__ import annotations

from .graph import LayerSpec
from .partition import LevelPlan, Precision, hierarchical

# name, Cin, in_hw, kernel, Cout, out_hw, as in the code's network files (square maps).
_CONVS = {
    "alexnet": [("conv1", 3, 224, 11, 96, 55), ("conv2", 96, 55, 5, 256, 27), ("conv3", 256, 27, 3, 384, 13),
                ("conv4", 384, 13, 3, 384, 13), ("conv5", 384, 13, 3, 256, 6)],
    "vgg11": [("conv1", 3, 224, 3, 64, 112), ("conv2", 64, 112, 3, 128, 56), ("conv31", 128, 56, 3, 256, 56),
              ("conv32", 256, 56, 3, 256, 28), ("conv41", 256, 28, 3, 512, 28), ("conv42", 512, 28, 3, 512, 14),
              ("conv51", 512, 14, 3, 512, 14), ("conv52", 512, 14, 3, 512, 7)],
}
_FCS = {
    "alexnet": [("fc1", 9216, 4096), ("fc2", 4096, 4096), ("fc3", 4096, 1000)],
    "vgg11": [("fc1", 25088, 4096), ("fc2", 4096, 4096), ("fc3", 4096, 1000)],
}
BATCH, LEVELS = 512, 7          # the code's hard-coded batch and number of levels
ELEMENTS = Precision(8, 8, 0)   # one byte per element: nncc's bytes are the code's element counts


def networks() -> dict[str, list[LayerSpec]]:
    nets = {}
    for name, convs in _CONVS.items():
        specs = [LayerSpec(n, "Conv", float(co * o * o * ci * k * k), float(ci * i * i), float(co * o * o),
                           float(ci * co * k * k), ci) for n, ci, i, k, co, o in convs]
        specs += [LayerSpec(n, "Gemm", float(ci * co), float(ci), float(co), float(ci * co), ci) for n, ci, co in _FCS[name]]
        nets[name] = specs
    return nets


def plans(name: str, batch: int = BATCH, levels: int = LEVELS, strategy: str = "hypar") -> list[LevelPlan]:
    """nncc's plan for one of the code's networks, on a chain, amounts in elements."""
    specs = networks()[name]
    return hierarchical(specs, {(i, i + 1) for i in range(len(specs) - 1)}, batch, levels, ELEMENTS, strategy)


def choices(name: str, batch: int = BATCH, levels: int = LEVELS) -> list[str]:
    """Per level, one digit per layer as the code prints them: 0 = type I (dp), 1 = type II (mp)."""
    return ["".join(str(s) for s in p.assignment) for p in plans(name, batch, levels)]
