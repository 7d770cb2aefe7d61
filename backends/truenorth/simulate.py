"""Rate-coded spiking inference of a small network on TrueNorth cores (numpy).

What is simulated, per image and copy, over ``ticks`` ticks:

- Input: each pixel in [0, 1] spikes with that probability every tick (Bernoulli, seeded; every
  copy draws its own spikes -- the spatial copies of Esser et al. NIPS 2015 differ that way).
- Weights: the network as ``legalize-core-ops`` leaves it for this target (the same blocks
  from ``describe_weighted`` and the same symmetric per-layer +-255 grid from
  ``quantize_symmetric``), then TrueNorth's limit of 4 signed weights per neuron, one per
  axon type (``weight_scheme``):
  * ``neuron-levels``: per neuron (conv: per output channel) the weights are rescaled to
    +-255 and clustered by k-means into 4 integer levels; a weight nearer 0 than to any level
    gets no synapse. A documented simplification: the chip shares one axon type per axon
    across the core's neurons, so the per-synapse choice among the neuron's 4 levels is
    optimistic (the faithful scheme below costs twice the axons).
  * ``sign-split``: every input on an excitatory and an inhibitory axon (Esser et al. PNAS
    2016 style), ternary weights {-s, 0, +s} per neuron (threshold 0.7 mean|w|, as in TWN).
- Neurons: integrate-and-fire, V += sum(spikes x weight) + leak; a spike when V >= threshold,
  then V -= threshold (linear reset); at most one spike per tick; V floored at -2^19 (the
  20-bit membrane). Scaling after Diehl et al. (IJCNN 2015) / Rueckauer et al. (2017): with
  lambda_l the 99.9th percentile of layer l's activations on calibration images (training
  digits), weights w = Delta_j q, threshold = round(lambda_l / (Delta_j lambda_(l-1))) and
  leak = round(bias / (Delta_j lambda_(l-1))) (9-bit leak, clipped at +-255), so the firing
  rate approximates ReLU(activation) / lambda_l.
- Fan-in split layers: the partial sums travel through +/- relay neuron pairs (threshold set
  from the partials' 99.9th percentile) into merge neurons with axon weights +-255 (the merge
  scheme of mapping.py), so the extra rate quantization of merges is simulated too.
- Pooling: max-pool runs as average pooling ('avg': weights 1, threshold = window, exact in
  rates) or as an OR of spikes ('or': weight 1, threshold 1, reset to 0: fires when any input
  fires, a rate >= the max). Splitter neurons are exact relays and are not simulated.
- Output: spike counts of the last layer summed over copies (argmax); ties go to the higher
  membrane potential (its integrated input).
- Timing (a simplification): layers are simulated one after another over the same T ticks,
  each starting when its inputs start; on the chip every stage adds a tick of delay, paid in
  the cost model's latency (T + pipeline depth), and a neuron's leak would need to start with
  its first input tick (e.g. a bias axon driven from the previous layer).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import onnx_ir as ir
import onnxruntime as ort

from nncc.errors import NnccError
from nncc.blocks import BLOCKED_OPS, describe_weighted, quantize_symmetric
from nncc.weights import layer_name

V_FLOOR = -(1 << 19)
PERCENTILE = 99.9


@dataclasses.dataclass
class SpikeLayer:
    kind: str                          # conv, fc, pool, flatten
    name: str
    q: np.ndarray | None = None        # integer weights: conv [M, C, *k], fc [M, K]
    delta: np.ndarray | None = None    # per neuron: real weight = delta * q
    bias: np.ndarray | None = None     # real bias [M]
    chunks: list[tuple[int, int]] = dataclasses.field(default_factory=lambda: [])  # fan-in chunks (merged when > 1)
    relu: bool = False
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    # set by calibrate()
    lam: float = 1.0
    threshold: np.ndarray | None = None
    leak: np.ndarray | None = None
    relay_threshold: np.ndarray | None = None  # [M], shared by the chunks (one +-255 merge weight)
    leak_clipped: int = 0


# --- building the constrained network -------------------------------------------------------

def neuron_levels(w: np.ndarray, scheme: str, levels: int = 4, iters: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(integer weights [M, F] with <= ``levels`` non-zero values per row, per-row scale)."""
    peak = np.abs(w).max(axis=1)
    delta = np.where(peak > 0, peak / 255.0, 1.0)
    z = w / delta[:, None]
    if scheme == "sign-split":
        tau = 0.7 * np.abs(z).mean(axis=1, keepdims=True)
        big = np.abs(z) > tau
        s = np.round(np.where(big.any(1), (np.abs(z) * big).sum(1) / np.maximum(big.sum(1), 1), 0))[:, None]
        return np.sign(z) * big * s, delta
    # k-means over each row's values with a fixed extra centre at 0 (no synapse)
    qs = np.linspace(0.5, 0.95, levels // 2)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no weight of one sign
        centres = np.concatenate([np.stack([np.nanquantile(np.where(z > 0, z, np.nan), q, axis=1) for q in qs], 1),
                                  np.stack([np.nanquantile(np.where(z < 0, z, np.nan), 1 - q, axis=1) for q in qs], 1)], 1)
    centres = np.nan_to_num(centres)
    for _ in range(iters):
        full = np.concatenate([np.zeros((len(z), 1)), centres], 1)
        pick = np.abs(z[:, :, None] - full[:, None, :]).argmin(2)
        for k in range(levels):
            hit = pick == k + 1
            count = hit.sum(1)
            centres[:, k] = np.where(count > 0, (z * hit).sum(1) / np.maximum(count, 1), centres[:, k])
    full = np.concatenate([np.zeros((len(z), 1)), np.clip(np.round(centres), -255, 255)], 1)
    pick = np.abs(z[:, :, None] - full[:, None, :]).argmin(2)
    return np.take_along_axis(full, pick, 1), delta


def build(model: ir.Model, config: Any, levels: bool = True) -> list[SpikeLayer]:
    """The chain of spiking layers of ``model`` (before legalization) under ``config``'s limits."""
    out: list[SpikeLayer] = []
    bits = config.weight_magnitude_bits + 1
    for node in model.graph:
        op, name = node.op_type, layer_name(node)
        if op in BLOCKED_OPS:
            desc = describe_weighted(node, config.inputs_per_core, config.neurons_per_core)
            if isinstance(desc, str):
                raise NnccError("simulate", f"layer '{name}': {desc}")
            w, _, _ = quantize_symmetric(desc.weight.astype(np.float64), bits)
            if op == "Conv":
                if node.attributes.get_int("group", 1) != 1:
                    raise NnccError("simulate", f"layer '{name}': grouped convs are not simulated")
                mat = w.reshape(w.shape[0], -1)
                k = int(np.prod(w.shape[2:]))
                chunks = [(b.in0 * k, b.in1 * k) for b in desc.plan[0]]
            else:
                mat = w.T
                chunks = [(b.in0, b.in1) for b in desc.plan[0]]
            q, delta = neuron_levels(mat, config.weight_scheme, config.axon_types) if levels else (mat, np.ones(len(mat)))
            bias = np.zeros(len(mat)) if desc.bias is None else np.asarray(desc.bias, np.float64)
            bias = bias[0] if bias.ndim == 2 else bias
            attrs = {}
            if op == "Conv":
                attrs = {"shape": w.shape, "strides": tuple(node.attributes.get_ints("strides", [1, 1])),
                         "pads": tuple(node.attributes.get_ints("pads", [0, 0, 0, 0]))}
            out.append(SpikeLayer("conv" if op == "Conv" else "fc", name, q, delta, bias, chunks, attrs=attrs))
        elif op == "Relu" and out and out[-1].kind in ("conv", "fc"):
            out[-1].relu = True
        elif op in ("MaxPool", "AveragePool"):
            kernel = tuple(node.attributes.get_ints("kernel_shape", []))
            out.append(SpikeLayer("pool", name, attrs={"kernel": kernel, "strides": tuple(node.attributes.get_ints("strides", kernel)),
                                                      "mode": config.pooling if op == "MaxPool" else "avg"}))
        elif op in ("Flatten", "Reshape"):
            out.append(SpikeLayer("flatten", name))
        elif op not in ("Identity", "Dropout"):
            raise NnccError("simulate", f"node '{name}' ({op}) has no spiking model in this simulation")
    return out


# --- linear maps shared by the analog reference and the spiking run --------------------------

def _conv(x: np.ndarray, q: np.ndarray, layer: SpikeLayer, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """x [N, C_chunk, H, W] with the weights q[:, lo:hi] -> [N, M, Ho, Wo] (float32, onnxruntime's Conv)."""
    m, _, kh, kw = layer.attrs["shape"]
    key = (lo, hi)
    sess = layer.attrs.setdefault("sessions", {}).get(key)
    if sess is None:
        w = np.ascontiguousarray(q[:, lo:hi].reshape(m, -1, kh, kw), np.float32)
        graph = onnx.helper.make_graph(
            [onnx.helper.make_node("Conv", ["x", "w"], ["y"], strides=list(layer.attrs["strides"]), pads=list(layer.attrs["pads"]))],
            "conv", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", w.shape[1], *x.shape[2:]])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [onnx.numpy_helper.from_array(w, "w")])
        proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sess = layer.attrs["sessions"][key] = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]


def _linear(layer: SpikeLayer, x: np.ndarray, chunk: tuple[int, int] | None = None) -> np.ndarray:
    lo, hi = chunk or (0, layer.q.shape[1])
    if layer.kind == "fc":
        return x[:, lo:hi] @ layer.q[:, lo:hi].T
    k = int(np.prod(layer.attrs["shape"][2:]))
    return _conv(x[:, lo // k:hi // k], layer.q, layer, lo, hi)


def _per_neuron(v: np.ndarray, layer: SpikeLayer) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (2 if layer.kind == "conv" else 0))


def _pool(x: np.ndarray, layer: SpikeLayer) -> np.ndarray:
    """Window mean ('avg') or max ('or': on spikes, the OR) over strided slices."""
    kh, kw = layer.attrs["kernel"]
    sh, sw = layer.attrs["strides"]
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    parts = (x[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] for i in range(kh) for j in range(kw))
    if layer.attrs["mode"] == "avg":
        total = np.zeros(x.shape[:2] + (ho, wo), np.float32 if x.dtype != np.float64 else np.float64)
        for p in parts:
            total += p
        return total / (kh * kw)
    out = next(parts).copy()
    for p in parts:
        np.maximum(out, p, out=out)
    return out


def analog(layers: list[SpikeLayer], x: np.ndarray, record: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """The non-spiking network with the same weights (activations, ReLU, pools as configured)."""
    acts = []
    for layer in layers:
        if layer.kind == "flatten":
            x = x.reshape(len(x), -1)
        elif layer.kind == "pool":
            x = _pool(x, layer)
        else:
            x = _linear(layer, x) * _per_neuron(layer.delta, layer) + _per_neuron(layer.bias, layer)
            x = np.maximum(x, 0) if layer.relu else x
        if record:
            acts.append(x)
    return x, acts


def calibrate(layers: list[SpikeLayer], x: np.ndarray) -> dict[str, Any]:
    """Set thresholds, leaks and relay thresholds from activations on calibration images."""
    lam_in = 1.0  # pixels in [0, 1] are spike probabilities
    clipped = 0
    h = x.astype(np.float64)
    for layer in layers:
        if layer.kind in ("conv", "fc"):
            pre = _linear(layer, h) * _per_neuron(layer.delta, layer) + _per_neuron(layer.bias, layer)
            act = np.maximum(pre, 0) if layer.relu else pre
            positive = act[act > 0]
            layer.lam = float(np.percentile(positive, PERCENTILE)) if positive.size else 1.0
            scale = layer.delta * lam_in  # real value of one unit of integer current
            layer.threshold = np.maximum(1, np.round(layer.lam / scale)).astype(np.int64)
            leak = np.round(layer.bias / scale)
            layer.leak_clipped = int(np.sum(np.abs(leak) > 255))
            clipped += layer.leak_clipped
            layer.leak = np.clip(leak, -255, 255).astype(np.int64)
            if len(layer.chunks) > 1:  # partial currents per tick (integer units) at the calibration rates
                rates = h / lam_in
                parts = np.stack([np.abs(_linear(layer, rates, c)) for c in layer.chunks])  # [chunks, N, M, ...]
                parts = np.moveaxis(parts, 2, 0).reshape(parts.shape[2], -1)
                layer.relay_threshold = np.maximum(1, np.round(np.percentile(parts, PERCENTILE, axis=1))).astype(np.int64)
            h, lam_in = act, layer.lam
        elif layer.kind == "pool":
            h = _pool(h, layer)
        else:
            h = h.reshape(len(h), -1)
    return {"leaks_clipped": clipped, "lambdas": {l.name: l.lam for l in layers if l.kind in ("conv", "fc")}}


# --- the spiking run ------------------------------------------------------------------------

def _integrate(current: np.ndarray, threshold: np.ndarray | float, v_init: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """current [N, T, ...] integer per tick -> (spikes [N, T, ...] uint8, final V); V starts at v_init x threshold."""
    v = np.zeros(current[:, 0].shape, np.float64) + np.floor(v_init * np.asarray(threshold, np.float64))
    spikes = np.empty(current.shape, np.uint8)
    for t in range(current.shape[1]):
        v += current[:, t]
        fire = v >= threshold
        v -= fire * threshold
        np.maximum(v, V_FLOOR, out=v)
        spikes[:, t] = fire
    return spikes, v


def _spiking_weighted(layer: SpikeLayer, s: np.ndarray, v_init: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input spikes [N, T, ...] -> (output spikes, final V, thresholds)."""
    n, t = s.shape[:2]
    flat = s.reshape((n * t,) + s.shape[2:]).astype(np.float32)
    per = lambda v: _per_neuron(v, layer)  # noqa: E731
    if len(layer.chunks) == 1:
        current = _linear(layer, flat) + per(layer.leak)
        threshold = per(layer.threshold)
    else:  # +/- relay pairs per partial (one threshold per neuron), merged with axon weights +-255
        merged = 0.0
        theta_r = per(layer.relay_threshold)
        for chunk in layer.chunks:
            part = _linear(layer, flat, chunk)
            part = part.reshape((n, t) + part.shape[1:])
            pos, _ = _integrate(part, theta_r, v_init)
            neg, _ = _integrate(-part, theta_r, v_init)
            merged = merged + 255.0 * (pos.astype(np.float32) - neg)
        scale = 255.0 / theta_r
        current = merged.reshape((n * t,) + merged.shape[2:]) + np.clip(np.round(per(layer.leak) * scale), -255, 255)
        threshold = np.maximum(1, np.round(per(layer.threshold) * scale))
    current = current.reshape((n, t) + current.shape[1:])
    spikes, v = _integrate(current, threshold, v_init)
    return spikes, v, np.broadcast_to(threshold, v.shape)


@dataclasses.dataclass
class SimResult:
    counts: np.ndarray       # [copies, N, classes] output spikes over the ticks
    potential: np.ndarray    # [copies, N, classes] final membrane potential / threshold
    input_rates: dict[str, float]  # mean spikes per input axon per tick, per layer
    ticks: int

    def scores(self, copies: int) -> np.ndarray:
        """Mean spike count over the first ``copies`` copies; the potential only breaks ties."""
        count = self.counts[:copies].mean(0)
        pot = self.potential[:copies].mean(0)
        return count + 0.45 * np.tanh(pot) / copies  # |tie-break| < 1 / (2 copies): never reorders counts

    def accuracy(self, y: np.ndarray, copies: int) -> float:
        return float(np.mean(self.scores(copies).argmax(1) == y))


def run(layers: list[SpikeLayer], x: np.ndarray, ticks: int, copies: int, seed: int = 0, batch: int = 50,
        v_init: float = 0.5) -> SimResult:
    """``v_init``: initial membrane potential in thresholds (config.initial_potential)."""
    """Spike trains through the calibrated layers; every copy draws its own input spikes."""
    counts, pots = [], []
    rate_sum: dict[str, float] = {}
    rate_n: dict[str, int] = {}
    for copy in range(copies):
        rng = np.random.default_rng([seed, copy])
        c_out, p_out = [], []
        for start in range(0, len(x), batch):
            xb = np.asarray(x[start:start + batch], np.float64)
            s = (rng.random((len(xb), ticks) + xb.shape[1:]) < xb[:, None]).astype(np.uint8)
            v = th = None
            for layer in layers:
                n = len(s)
                if layer.kind != "flatten":
                    rate_sum[layer.name] = rate_sum.get(layer.name, 0.0) + float(np.count_nonzero(s)) / s[0].size
                    rate_n[layer.name] = rate_n.get(layer.name, 0) + n
                if layer.kind == "flatten":
                    s = s.reshape(n, ticks, -1)
                elif layer.kind == "pool":
                    flat = _pool(s.reshape((n * ticks,) + s.shape[2:]), layer)
                    flat = flat.reshape((n, ticks) + flat.shape[1:])
                    if layer.attrs["mode"] == "avg":  # weights 1, threshold = window, linear reset
                        s, _ = _integrate(flat * np.prod(layer.attrs["kernel"]), float(np.prod(layer.attrs["kernel"])), v_init)
                    else:
                        s = flat.astype(np.uint8)
                else:
                    s, v, th = _spiking_weighted(layer, s, v_init)
            c_out.append(s.sum(1).reshape(len(xb), -1))
            p_out.append((v / th).reshape(len(xb), -1))
        counts.append(np.concatenate(c_out))
        pots.append(np.concatenate(p_out))
    rates = {k: rate_sum[k] / rate_n[k] for k in rate_sum}
    return SimResult(np.stack(counts), np.stack(pots), rates, ticks)


def simulate(model: ir.Model, config: Any, x: np.ndarray, calib_x: np.ndarray, copies: int | None = None,
             seed: int = 0, batch: int = 50) -> tuple[SimResult, list[SpikeLayer], dict[str, Any]]:
    """Build, calibrate (on ``calib_x``) and run ``copies`` (default config.copies) copies on ``x``."""
    layers = build(model, config)
    info = calibrate(layers, calib_x)
    return run(layers, x, config.ticks, copies or config.copies, seed, batch, config.initial_potential), layers, info
