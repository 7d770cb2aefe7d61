"""Per-layer weight bit widths under a model-size or energy budget, from measured sensitivity.

What the code does -- a *sensitivity search*, not the paper's continuous relaxation:

1. Fold BatchNorm and find the Conv/Gemm/MatMul layers, as ``quantize`` does.
2. Sensitivity: for every layer l and candidate width b, quantize only l's weights to b bits
   (the rest stays float) and measure the relative output error
   ``s_l(b) = sum ||y_q - y||^2 / sum ||y||^2`` over calibration inputs in onnxruntime.
3. Search: treat the total error as additive, ``sum_l s_l(b_l)``, and minimize it under the
   budget(s). Greedy: start with every layer at the widest candidate; while a budget is
   exceeded, lower by one step the layer with the smallest error increase per unit of budget
   saved; then spend any slack raising the layers with the largest error decrease per unit.
4. Emit through ``quantize``'s QDQ machinery with those per-layer widths (activations at
   ``activation_bits``, 8 by default, so onnxruntime's integer kernels still apply).

Relation to arXiv 1810.10351 (differentiable fine-grained quantization): there the width of
each layer is relaxed to a continuous variable and learned by gradient descent together with
the weights, trading the task loss against the compression ``32 * sum n_l / sum n_l b_l``.
Here the same trade-off is solved on a discrete grid with measured, separable per-layer
losses and no training; that compression figure is reported as ``compression_1810_10351``.

Budgets: ``size_ratio`` = weight bytes (b-bit packed weights, plus biases, per-channel
scales/zero points and every other initializer) / the float32 model's weight bytes.
``energy_ratio`` = sum over layers of MACs * b_w * b_a / (MACs * 32 * 32): a simple
multiplier-energy model (energy per MAC proportional to the product of operand widths),
relative to float32 operands -- uniform 8/8 gives 0.0625.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from nncc.analysis import node_macs
from nncc.errors import NnccError
from nncc.irutils import const_array
from nncc.loading import runtime_max_ir_version
from nncc.pass_base import NnccPass
from nncc.pipeline import PassContext
from nncc.calibration import calibration_feeds
from nncc.passes.quant_scales import dequantize, quantize_weight, stored_bits
from nncc.passes.ort_kernels import onnxruntime_kernels
from nncc.passes.quantize import QuantConfig, Target, find_targets, prepare, quantize_targets

METHOD = ("sensitivity search: per-layer relative output MSE measured in onnxruntime with one layer's weights "
          "quantized at a time, then a greedy knapsack (smallest error increase per budget unit saved) over the "
          "candidate widths; a discrete, training-free stand-in for the continuous bit-width relaxation of arXiv 1810.10351")


def measure_sensitivity(model: ir.Model, targets: list[Target], candidates: list[int], config: QuantConfig,
                        feeds: list[dict[str, np.ndarray]]) -> dict[str, dict[int, float]]:
    """s_l(b) for every weighted layer l and width b: one session, the weights fed as inputs."""
    weighted = [t for t in targets if t.weight is not None]
    weights = {t.name: (t.weight.value.name, const_array(t.weight.value)) for t in weighted}
    names = {name for name, _ in weights.values()}
    proto = ir.to_proto(model)
    kept = [init for init in proto.graph.initializer if init.name not in names]
    for init in proto.graph.initializer:
        if init.name in names:
            proto.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    proto.ir_version = min(proto.ir_version, runtime_max_ir_version())
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    base = {name: arr for name, arr in weights.values()}

    def run(overrides: dict[str, np.ndarray]) -> list[list[np.ndarray]]:
        return [sess.run(None, {**feed, **base, **overrides}) for feed in feeds]

    reference = run({})
    power = sum(float(np.sum(np.square(y, dtype=np.float64))) for outs in reference for y in outs) or 1.0
    table: dict[str, dict[int, float]] = {}
    for t in weighted:
        wname, w = weights[t.name]
        axis = t.axis if config.per_channel else None
        table[t.name] = {}
        for b in candidates:
            wq = dequantize(*quantize_weight(w, stored_bits(b, config.reduce_range), axis, config.symmetric), axis)
            got = run({wname: wq})
            err = sum(float(np.sum(np.square(g.astype(np.float64) - r))) for go, ro in zip(got, reference) for g, r in zip(go, ro))
            table[t.name][b] = err / power
    return table


@dataclasses.dataclass
class Budget:
    """Costs per layer and width for one constraint, and its limit."""

    name: str
    limit: float
    fixed: float
    per_bit: dict[str, float]  # layer -> cost per bit of weight width

    def total(self, bits: dict[str, int]) -> float:
        return self.fixed + sum(self.per_bit[layer] * b for layer, b in bits.items())


def greedy_bits(sensitivity: dict[str, dict[int, float]], candidates: list[int], budgets: list[Budget]) -> dict[str, int]:
    """Minimize sum s_l(b_l) under every budget (see module doc); widest bits if none is binding."""
    cands = sorted(candidates)
    bits = {layer: cands[-1] for layer in sensitivity}
    while violated := [bd for bd in budgets if bd.total(bits) > bd.limit]:
        best, best_key = None, None
        for layer, b in bits.items():
            i = cands.index(b)
            if i == 0:
                continue
            lower = cands[i - 1]
            saved = sum(bd.per_bit[layer] * (b - lower) / bd.limit for bd in violated)
            if saved <= 0:
                continue
            key = (sensitivity[layer][lower] - sensitivity[layer][b]) / saved
            if best_key is None or key < best_key:
                best, best_key = (layer, lower), key
        if best is None:
            break  # every layer at the narrowest width: the budget cannot be met
        bits[best[0]] = best[1]
    while True:  # spend the slack
        best, best_key = None, 0.0
        for layer, b in bits.items():
            i = cands.index(b)
            if i == len(cands) - 1:
                continue
            trial = {**bits, layer: cands[i + 1]}
            if any(bd.total(trial) > bd.limit for bd in budgets):
                continue
            cost = sum(bd.per_bit[layer] * (cands[i + 1] - b) / bd.limit for bd in budgets) or 1e-30
            key = (sensitivity[layer][b] - sensitivity[layer][cands[i + 1]]) / cost
            if key > best_key:
                best, best_key = (layer, cands[i + 1]), key
        if best is None:
            return bits
        bits[best[0]] = best[1]


@dataclasses.dataclass
class QuantizeMixedPrecision(NnccPass):
    """Choose per-layer weight widths from ``bits`` candidates under ``size_ratio`` and/or
    ``energy_ratio`` (see the module doc for both models), by a measured-sensitivity search;
    quantize with them as QDQ ONNX (activations at ``activation_bits``).

    ``per_channel`` / ``symmetric`` apply to weights as in ``quantize``; ``sensitivity_samples``
    is the number of calibration runs per sensitivity measurement.
    """

    name = "mixed-precision"
    target_independent = True
    summary = "per-layer weight bit widths under a size or energy budget from measured sensitivity, emitted as QDQ"

    bits: str = "2 4 8"
    size_ratio: float | None = 0.25
    energy_ratio: float | None = None
    per_channel: bool = True
    symmetric: bool = True
    activation_bits: int = 8
    calibrate: Literal["minmax", "percentile"] = "minmax"
    sensitivity_samples: int = 16
    calib_samples: int = 256
    fold_batchnorm: bool = True
    reduce_range: bool = True

    def candidates(self) -> list[int]:
        try:
            values = sorted({int(b) for b in str(self.bits).replace(",", " ").split()})
        except ValueError:
            raise NnccError("mixed-precision", f"bits='{self.bits}' is not a list of integers") from None
        if not values or values[0] < 2 or values[-1] > 8:
            raise NnccError("mixed-precision", f"bits='{self.bits}': candidates must lie in 2..8")
        if not 2 <= self.activation_bits <= 8:
            raise NnccError("mixed-precision", f"activation_bits={self.activation_bits} is outside 2..8")
        for label, ratio in (("size_ratio", self.size_ratio), ("energy_ratio", self.energy_ratio)):
            if ratio is not None and ratio <= 0:
                raise NnccError("mixed-precision", f"{label}={ratio} must be positive")
        return values

    def apply(self, model: ir.Model) -> bool:
        cands = self.candidates()
        config = QuantConfig(self.per_channel, self.symmetric, True, self.activation_bits, False, self.calibrate,
                             calib_samples=self.calib_samples, reduce_range=self.reduce_range)
        folded = prepare(model, self.fold_batchnorm, self.stats, "mixed-precision")
        targets, self.stats["skipped"] = find_targets(model.graph)
        self.stats["quantized_layers"] = len(targets)
        if not targets:
            return folded
        budgets = self._budgets(model, targets)
        weighted = [t for t in targets if t.weight is not None]
        sensitivity: dict[str, dict[int, float]] = {t.name: {b: 0.0 for b in cands} for t in weighted}
        if budgets and len(cands) > 1:
            feeds, source = calibration_feeds(model, PassContext.current().calibration, self.sensitivity_samples,
                                              purpose="mixed-precision: layer sensitivity")
            sensitivity = measure_sensitivity(model, targets, cands, config, feeds)
            self.stats["sensitivity_data"] = source
        bits = greedy_bits(sensitivity, cands, budgets)
        achieved = {bd.name: bd.total(bits) / bd.limit * ratio for bd, ratio in zip(budgets, self._ratios())}
        n = {t.name: t.params for t in weighted}
        self.stats.update({
            "method": METHOD,
            "candidates": cands,
            "sensitivity_metric": "sum ||y_q - y||^2 / sum ||y||^2 over all outputs, one layer's weights quantized",
            "sensitivity": {layer: {str(b): s for b, s in row.items()} for layer, row in sensitivity.items()},
            "energy_model": "energy per MAC proportional to b_w * b_a, relative to 32 x 32-bit float MACs",
            "budgets": {bd.name: ratio for bd, ratio in zip(budgets, self._ratios())},
            "achieved": achieved,
            "budget_met": all(bd.total(bits) <= bd.limit * (1 + 1e-9) for bd in budgets),
            "predicted_error": sum(sensitivity[layer][b] for layer, b in bits.items()),
            "compression_1810_10351": 32 * sum(n.values()) / max(1, sum(n[k] * bits[k] for k in n)),
            "mean_weight_bits": sum(n[k] * bits[k] for k in n) / max(1, sum(n.values())),
        })
        self.stats.update(quantize_targets(model, targets, bits, config))
        self.stats["onnxruntime_kernels"] = onnxruntime_kernels(model)
        return True

    def _ratios(self) -> list[float]:
        return [r for r in (self.size_ratio, self.energy_ratio) if r is not None]

    def _budgets(self, model: ir.Model, targets: list[Target]) -> list[Budget]:
        budgets = []
        weighted = [t for t in targets if t.weight is not None]
        if self.size_ratio is not None:
            fp32 = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
            weight_names = {t.weight.value.name for t in weighted}
            other = fp32 - sum(model.graph.initializers[name].const_value.nbytes for name in weight_names)
            channels = sum(t.weight.shape[t.axis] if self.per_channel else 1 for t in weighted)  # one scale per channel
            budgets.append(Budget("size_ratio", self.size_ratio * fp32, other + 5 * channels,  # scale f32 + zero point i8
                                  {t.name: t.params / 8 for t in weighted}))
        if self.energy_ratio is not None:
            a = self.activation_bits
            macs = {t.name: node_macs(t.node) for t in targets}
            if not sum(macs.values()):
                raise NnccError("mixed-precision", "energy_ratio needs MAC counts: the model has no inferred shapes")
            fixed = sum(m * a * a for t, m in zip(targets, macs.values()) if t.weight is None)
            budgets.append(Budget("energy_ratio", self.energy_ratio * 1024 * sum(macs.values()), fixed,
                                  {t.name: macs[t.name] * a for t in weighted}))
        return budgets
