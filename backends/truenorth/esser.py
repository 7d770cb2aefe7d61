"""Esser et al.'s one-layer-of-patches MNIST network for TrueNorth, rebuilt as ONNX.

Esser, Appuswamy, Merolla, Arthur, Modha, "Backpropagation for Energy-Efficient Neuromorphic
Computing", NIPS 2015 (docs/sources.md, "TrueNorth"), ran a sparsely connected MNIST network
trained for the chip: one copy ("high efficiency", 92.7%) and an ensemble of 64 ("high
accuracy", 99.42%). Only the paper's abstract was readable here; its layer structure is taken
from the one public re-implementation found, pytruenorth's ``FrameClassifier5Core``
(github.com/vmonaco/pytruenorth, ``pytruenorth/trueshadow.py``, Telluride 2016):

- the 28 x 28 digit is cut into four 16 x 16 patches at offsets 0 and 12 on each axis (stride 12:
  rows and columns 12..15 are read by two patches); each patch is one core's 256 axons;
- each of those four cores has 64 neurons (its outputs: 4 x 64 = 256 spikes);
- one output core takes the 256 spikes on its 256 axons; 25 of its neurons vote for each of the
  10 classes (250 class neurons; the class with the most spikes wins, decoded off-chip);
- one tick per image: inputs are spikes with probability = pixel intensity, and the output is
  read two ticks later (one per core layer).

That is 5 cores per copy. Whether the paper's own 1-copy network is this one is not readable
[U]: its abstract gives no core count, and its 64-copy energy is 297x its 1-copy energy (121 uJ
against 0.408 uJ in the proceedings' abstract; 403x, 108 against 0.268 uJ, in a PDF copy), so
each copy of the high-accuracy ensemble is a larger network than this one (structure not read).

Weights: the chip's synapses are binary (connected or not) with one signed weight per axon type
per neuron; pytruenorth trains a connection probability per synapse, initialized uniform in
[0, 1], draws the connections from it, and gives each neuron the weights {-2, -1, 1, 2} over
the four axon types (a permutation per neuron). The seeded network (:func:`export`, what
``fidelity.py`` measures) does the same at initialization: each synapse connected with
probability ``density`` (0.5, the mean of that uniform initialization) and a weight from the
neuron's permutation for the axon's type; it classifies nothing (cost only). :func:`train`,
:func:`sample` and :func:`run` train the connection probabilities and leaks the same way and
deploy sampled copies for one tick (benchmarks/truenorth_esser.py: on nncc's 4,000 MNIST
training digits the trained network keeps 48-50% of its synapses connected).
"""

from __future__ import annotations

import itertools
import pathlib

import numpy as np

PYTRUENORTH = "pytruenorth FrameClassifier5Core (github.com/vmonaco/pytruenorth, pytruenorth/trueshadow.py)"
IMAGE = 28
PATCH = 16
PATCH_STRIDE = 12            # patches at offsets 0 and 12 per axis [pytruenorth]
HIDDEN_PER_CORE = 64         # neurons of each patch core [pytruenorth]
CLASSES = 10
NEURONS_PER_CLASS = 25       # 256 // 10 class neurons per class [pytruenorth's decoder]
AXON_WEIGHTS = (-2, -1, 1, 2)  # the four axon types' weights, permuted per neuron [pytruenorth]
DENSITY = 0.5                # connected fraction: mean of pytruenorth's U(0, 1) connection probability at init
# Spikes per connected synapse per tick of the trained network (esser.train, 10 epochs on nncc's
# 4,000 MNIST training digits) deployed for one tick on the 1,000 test digits: 0.268 at one copy,
# 0.272 over 64 (python benchmarks/truenorth_esser.py prints them). Measured on this network, not
# fitted to any energy figure; the target's spike_rate (0.15) was measured on LeNet-5.
SPIKE_RATE = 0.27
TICKS_PER_FRAME = 1          # one tick per image [pytruenorth: "One tick per sample"]
CORES_PER_COPY = 5           # 4 patch cores + 1 output core [pytruenorth: TrueNorthChip(num_cores=5)]


def patch_offsets() -> list[tuple[int, int]]:
    """(row, column) of each 16 x 16 patch: 0 and 12 on each axis, row-major as pytruenorth's cores 0-3."""
    starts = range(0, IMAGE - PATCH + 1, PATCH_STRIDE)
    return [(r, c) for r in starts for c in starts]


def _core_types(rng: np.random.Generator, axons: int, neurons: int) -> np.ndarray:
    """[neurons, axons] signed weights of one fully connected core: axon types balanced and
    shuffled, each neuron one permutation of AXON_WEIGHTS over the types [pytruenorth]."""
    types = rng.permutation(np.resize(np.arange(len(AXON_WEIGHTS)), axons))
    perms = np.array(list(itertools.permutations(AXON_WEIGHTS)), dtype=np.float32)
    per_neuron = perms[rng.permutation(np.resize(np.arange(len(perms)), neurons))]   # [neurons, 4]
    return per_neuron[:, types]


def _core_weights(rng: np.random.Generator, axons: int, neurons: int, density: float) -> np.ndarray:
    """[neurons, axons] weights of one core (:func:`_core_types`), each synapse connected with
    probability ``density``."""
    weights = _core_types(rng, axons, neurons)
    connected = rng.random((neurons, axons)) < density
    return (weights * connected).astype(np.float32)


def build(density: float = DENSITY, seed: int = 0, weights: list[np.ndarray] | None = None,
          leaks: list[np.ndarray] | None = None):
    """The 5-core network as an eval-mode torch module (input [1, 1, 28, 28], output the 250
    class neurons' rates): seeded (``density``, leaks zero) unless ``weights`` and ``leaks``
    (per core, [neurons, axons] and [neurons], patch cores first) are given."""
    import torch
    from torch import nn

    rng = np.random.default_rng(seed)
    offsets = patch_offsets()

    class Esser5Core(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patches = nn.ModuleList(nn.Linear(PATCH * PATCH, HIDDEN_PER_CORE) for _ in offsets)
            self.relus = nn.ModuleList(nn.ReLU() for _ in offsets)
            self.classes = nn.Linear(len(offsets) * HIDDEN_PER_CORE, CLASSES * NEURONS_PER_CLASS)
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hidden = [relu(core(torch.flatten(x[:, :, r:r + PATCH, c:c + PATCH], 1)))
                      for (r, c), core, relu in zip(offsets, self.patches, self.relus)]
            return self.relu(self.classes(torch.cat(hidden, dim=1)))

    model = Esser5Core()
    with torch.no_grad():
        for i, layer in enumerate([*model.patches, model.classes]):
            w = _core_weights(rng, layer.in_features, layer.out_features, density) if weights is None else weights[i]
            layer.weight.copy_(torch.from_numpy(np.asarray(w, np.float32)))
            if leaks is None:
                layer.bias.zero_()
            else:
                layer.bias.copy_(torch.from_numpy(np.asarray(leaks[i], np.float32)))
    return model.eval()


def export(path: str | pathlib.Path, density: float = DENSITY, seed: int = 0, weights: list[np.ndarray] | None = None,
           leaks: list[np.ndarray] | None = None) -> pathlib.Path:
    """Write the 5-core network (:func:`build`) as ONNX (opset 17) to ``path``."""
    import torch
    from nncc.models._export import export_module

    return export_module(build(density, seed, weights, leaks), {"input": torch.zeros(1, 1, IMAGE, IMAGE)}, path)


# --- training as Esser et al. describe it (abstract) and pytruenorth implements it -----------
#
# Spikes and synapses are probabilities: a neuron's input x_i (spike probability), connection
# probability c_ij, weight s_ij (its axon type's) and leak b_j give a membrane sum with mean
# mu = b + sum x c s and variance sum x c (1 - x c) s^2; the neuron fires when the sum is above 0,
# with probability Phi(mu / sigma) (normal approximation). c and b are trained by backpropagation
# (Adam, c clipped to [0, 1] and b to [-255, 255], as pytruenorth; learning rate 0.01 where
# pytruenorth takes 0.1: on nncc's 4,000 training digits 0.1 gave 77% / 83% at 1 / 64 copies after
# 15 epochs, 0.01 79% / 93% after 10); the loss is the cross-entropy of the expected class votes
# (pytruenorth's is of a normal approximation to the class means). Deployment samples the
# connections (c > U) and runs the spikes for one tick.


def _patches(x: np.ndarray) -> list[np.ndarray]:
    """The four [N, 256] patch inputs of [N, 1, 28, 28] digits."""
    return [x[:, 0, r:r + PATCH, c:c + PATCH].reshape(len(x), PATCH * PATCH) for r, c in patch_offsets()]


def train(x: np.ndarray, y: np.ndarray, epochs: int = 10, batch: int = 100, seed: int = 0,
          lr: float = 0.01) -> dict[str, list[np.ndarray]]:
    """Train the 5-core shadow network on digits ``x`` [N, 1, 28, 28] in [0, 1], labels ``y``.
    Returns per core (patch cores first) ``c`` [neurons, axons] connection probabilities, ``s``
    the signed axon-type weights and ``b`` the leaks."""
    import torch

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    shapes = [(HIDDEN_PER_CORE, PATCH * PATCH)] * len(patch_offsets()) + [(CLASSES * NEURONS_PER_CLASS, 256)]
    s = [torch.from_numpy(_core_types(rng, a, n)) for n, a in shapes]
    c = [torch.rand(n, a, requires_grad=True) for n, a in shapes]
    b = [torch.zeros(n, requires_grad=True) for n, _ in shapes]
    decoder = torch.zeros(CLASSES, CLASSES * NEURONS_PER_CLASS)
    decoder[torch.arange(CLASSES * NEURONS_PER_CLASS) % CLASSES, torch.arange(CLASSES * NEURONS_PER_CLASS)] = 1.0
    opt = torch.optim.Adam([*c, *b], lr=lr)
    normal = torch.distributions.Normal(0.0, 1.0)

    def core(inp, i):
        mu = b[i] + inp @ (c[i] * s[i]).T                                # sum x c s
        var = (inp @ (c[i] * s[i] ** 2).T - (inp ** 2) @ (c[i] ** 2 * s[i] ** 2).T).clamp_min(1e-6)  # sum x c (1 - x c) s^2
        return normal.cdf(mu / var.sqrt())

    xs = [torch.from_numpy(p) for p in _patches(np.asarray(x, np.float32))]
    ys = torch.from_numpy(np.asarray(y, np.int64))
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(ys)))
        for k in range(0, len(ys), batch):
            idx = order[k:k + batch]
            hidden = torch.cat([core(p[idx], i) for i, p in enumerate(xs)], dim=1)
            out = core(hidden, len(xs))
            logits = out @ decoder.T                                       # expected votes per class
            loss = torch.nn.functional.cross_entropy(logits, ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for ci, bi in zip(c, b):
                    ci.clamp_(0.0, 1.0)
                    bi.clamp_(-255.0, 255.0)
    return {"c": [t.detach().numpy().copy() for t in c], "s": [t.numpy().copy() for t in s],
            "b": [np.round(t.detach().numpy()).astype(np.float32) for t in b]}


def sample(params: dict[str, list[np.ndarray]], rng: np.random.Generator) -> list[np.ndarray]:
    """One deployed copy: each synapse connected with its trained probability; [neurons, axons] weights."""
    return [(s * (rng.random(c.shape) < c)).astype(np.float32) for c, s in zip(params["c"], params["s"])]


def run(copies: list[list[np.ndarray]], leaks: list[np.ndarray], x: np.ndarray, rng: np.random.Generator) -> dict[str, object]:
    """One tick per digit on each deployed copy: input spikes with probability = pixel, a neuron
    spikes when its membrane (leak + weighted input spikes) is above 0. Returns the ensemble's
    class votes [N, 10] and the mean input spike rate of each core layer (per axon per tick) and
    per connected synapse."""
    votes = np.zeros((len(x), CLASSES))
    rates = {"input": [], "hidden": []}
    events = synapses = 0.0
    for weights in copies:
        spikes = [(p > rng.random(p.shape)).astype(np.float32) for p in _patches(np.asarray(x, np.float32))]
        hidden = np.concatenate([(sp @ w.T + b > 0) for sp, w, b in zip(spikes, weights, leaks)], axis=1).astype(np.float32)
        out = (hidden @ weights[-1].T + leaks[-1] > 0).astype(np.float32)
        for k in range(CLASSES):
            votes[:, k] += out[:, k::CLASSES].sum(1)
        rates["input"].append(np.mean([sp.mean() for sp in spikes]))
        rates["hidden"].append(hidden.mean())
        for sp, w in zip([*spikes, hidden], weights):
            connected = (w != 0)
            events += float((sp @ connected.T).sum())                    # spikes x their connected synapses
            synapses += float(connected.sum()) * len(x)
    return {"votes": votes, "input_rate": float(np.mean(rates["input"])), "hidden_rate": float(np.mean(rates["hidden"])),
            "synapse_rate": events / synapses}
