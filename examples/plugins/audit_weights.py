"""audit-weights: a single-file nncc plugin, loaded with ``--plugin`` (no packaging, no install).

    nncc --plugin examples/plugins/audit_weights.py compile lenet5.onnx -t null -p audit-weights:zero_below=1e-3

``--plugin FILE`` imports the file and registers every NnccPass or Target subclass it defines
with a ``name``. This one checks the weights before deployment and reports, per weighted layer,
what a pruning or quantization decision starts from: the share of (near-)zero weights, the
largest magnitude, and weights that are NaN or Inf. A non-finite weight means the model file is
broken, which is bad input: one line, exit 2 (``allow_nonfinite=true`` only reports it).

The pass changes nothing (``apply`` returns False), so the compiled model is the original to the
bit: ``exact_tolerance = 0``, which the driver's verification against onnxruntime confirms.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from nncc.plugin import NnccError, NnccPass, layers


@dataclasses.dataclass
class AuditWeights(NnccPass):
    name = "audit-weights"
    summary = "report each weighted layer's zero share, max |w| and non-finite weights; fail on NaN/Inf"
    exact_tolerance = 0.0

    # |w| <= zero_below counts as zero: weights pruned by regularization are rarely exact zeros.
    zero_below: float = 0.0
    allow_nonfinite: bool = False

    def apply(self, model: ir.Model) -> bool:
        rows, skipped = [], []
        for layer in layers(model):
            if layer.weight is None:
                continue  # not a weighted layer: nothing to audit, so not a declined one either
            tensor = layer.weight.value.const_value
            if tensor is None:  # e.g. a QDQ weight: the output of a DequantizeLinear
                skipped.append({"name": layer.name, "op": layer.op, "reason": "weight is computed at run time"})
                continue
            w = tensor.numpy().astype(np.float64)
            finite = np.isfinite(w)
            rows.append({"name": layer.name, "op": layer.op, "weights": int(w.size),
                         "zeros": int(np.count_nonzero(np.abs(w[finite]) <= self.zero_below)),
                         "max_abs": float(np.abs(w[finite]).max(initial=0.0)), "nonfinite": int(w.size - finite.sum())})
        broken = [f"{r['name']} ({r['nonfinite']})" for r in rows if r["nonfinite"]]
        if broken and not self.allow_nonfinite:
            raise NnccError(f"--pass {self.name}", f"NaN or Inf weights in {', '.join(broken)}")
        weights = sum(r["weights"] for r in rows)
        self.stats = {"weights": weights, "zero_fraction": sum(r["zeros"] for r in rows) / weights if weights else 0.0,
                      "nonfinite": sum(r["nonfinite"] for r in rows), "layers": rows, "skipped": skipped}
        return False
