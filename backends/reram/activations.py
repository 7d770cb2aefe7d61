"""Calibration inputs of every crossbar layer, for measuring column sums.

The model runs in onnxruntime with each crossbar layer's input exposed as an extra graph
output (the graph is restored afterwards) on the calibration data ``lower`` received when
present, else on ``runtime.sample_inputs(model, calib_samples)`` (uniform [0, 1) inputs:
they say little about real data, so the source is recorded in the mapping). From each
run a bounded, seeded sample of input vectors is kept (conv patches at sampled output
pixels, Gemm/MatMul rows); the per-layer input scale is the max |x| over the whole
tensors of all runs, and a layer whose input was never negative is quantized unsigned.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from nncc.analysis import Layer
from nncc.errors import NnccError

from nncc import reuse
from nncc.calibration import calibration_feeds, run_exposing

from . import adc

# The last two measurements of this process (raw vectors and ranges are read, never changed):
# a sweep point with a user pass measures its model and, for the ratios to the uncompressed
# model, the plain one, which the next point measures again.
_MEASURED = reuse.LastResult(size=2)


class Calibration:
    def __init__(self, model: ir.Model | None, mvm_layers: list[Layer], config, data: dict[str, np.ndarray] | None = None):
        self.config = config
        self.raw: dict[str, list[np.ndarray]] = {}
        self.stats: dict[str, tuple[float, float]] = {}
        self.source = ""
        if model is None or not mvm_layers:
            self.source = "no crossbar layers" if model is not None else ""
            return
        feeds, self.source = calibration_feeds(model, data, config.calib_samples, random_count=config.calib_samples,
                                               purpose=_purpose(config))
        graph_inputs = {v.name for v in model.graph.inputs}
        values = [lay.node.inputs[0] for lay in mvm_layers if lay.node.inputs[0].name not in graph_inputs]
        per_run = max(1, math.ceil(config.calib_max_vectors / len(feeds)))
        # What the runs give depends on the model, the layers sampled, the inputs and the sample
        # size only: a sweep's next hardware point (crossbar size, cell bits) reuses them.
        key = (reuse.ModelFingerprint(model), tuple((lay.name, lay.op) for lay in mvm_layers), per_run,
               reuse.arrays_digest(feeds))
        if (kept := _MEASURED.get(key)) is not None:
            self.raw, self.stats = kept
            return
        try:
            for run, (feed, out) in enumerate(zip(feeds, run_exposing(model, values, feeds))):
                for lay in mvm_layers:
                    name = lay.node.inputs[0].name
                    x = feed[name] if name in graph_inputs else out[name]
                    self._record(lay, np.asarray(x, dtype=np.float32), run, per_run)
        except NnccError as e:
            self.raw.clear()
            self.source = f"calibration run failed ({e.what}); ADC bits from the weight bound"
            return
        _MEASURED.put(key, (self.raw, self.stats))

    @classmethod
    def none(cls, source: str) -> Calibration:
        cal = cls(None, [], None)
        cal.source = source
        return cal

    def _record(self, lay: Layer, x: np.ndarray, run: int, per_run: int) -> None:
        low, high = self.stats.get(lay.name, (np.inf, 0.0))
        x_min = float(x.min())
        # max |x| without an |x| copy of the tensor: the larger of max x and -min x (abs() keeps
        # 0.0 for an all-zero tensor, where -min x may be -0.0; a NaN stays NaN either way).
        self.stats[lay.name] = (min(low, x_min), max(high, abs(max(float(x.max()), -x_min))))
        node = lay.node
        if lay.op == "Conv":
            w_shape = lay.input_shapes[1]
            if w_shape is None or len(w_shape) not in (3, 4):
                return  # 3-D convs: no patch sampler; the weight bound is used
            spatial = tuple(lay.output_shapes[0][2:])
            picks = adc.pick_positions(x.shape[0] * math.prod(spatial), per_run, seed=run)
            self.raw.setdefault(lay.name, []).append(adc.conv_patches(x, w_shape, lay.attributes, spatial, picks))
            return
        if lay.op == "Gemm" and node.attributes.get_int("transA", 0):
            x = x.T
        vecs = x.reshape(-1, x.shape[-1])
        self.raw.setdefault(lay.name, []).append(vecs[adc.pick_positions(len(vecs), per_run, seed=run)][:, :, None])

    def vectors(self, lay: Layer, groups: int, k: int):
        """(activation codes [groups x V x K], quantization record), or None when nothing was measured."""
        parts = self.raw.get(lay.name)
        if not parts:
            return None
        channels, window = parts[0].shape[1:]  # each run's part: [vectors, C, kernel elements]
        if channels % groups or (channels // groups) * window != k:
            return None
        low, scale = self.stats[lay.name]
        signed = low < 0
        bits = self.config.input_bits
        # Each run's vectors quantized apart and their codes joined: the float vectors are never
        # copied into one array (4x the bytes of 8-bit codes, fresh memory for every layer).
        codes = np.concatenate([adc.quantize_inputs(part, bits, scale, signed) for part in parts])
        vectors = len(codes)
        codes = codes.reshape(vectors, groups, k).transpose(1, 0, 2)
        record = {"inputs": f"{bits} bits, {'two' + chr(39) + 's complement' if signed else 'unsigned'}, one scale per layer "
                            "(max |x| over the calibration runs)",
                  "input_scale": scale, "input_signed": bool(signed), "calibration_vectors": int(vectors)}
        return codes, record


def _purpose(config) -> str:
    """What the calibration inputs set, for the warning when they are random."""
    if config.adc_bits_from == "fixed":  # fixed ADC bits: the inputs set only the array read energy
        return "reram: input bit density for the array read energy (adc_bits_from=fixed)"
    return f"reram: ADC resolution (adc_bits_from={config.adc_bits_from})"
