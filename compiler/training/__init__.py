"""Training-aware compression: ONNX -> torch, regularized fine-tuning, and back into the same graph.

- :mod:`nncc.training.convert`: ``to_torch(model)`` -> an ``OnnxModule`` whose weights are
  parameters; ``module.export_to(model)`` writes them back into the original initializers.
- :mod:`nncc.training.regularizers`: l1, group-lasso, hoyer, group-hoyer, nuclear, force;
  :mod:`nncc.training.quantization`: bitslice-l1, quant-reg; :mod:`nncc.training.specs`: the
  ``NAME:key=value,...`` spec parsing over both.
- :mod:`nncc.training.params`: the fine-tuning parameters, declared once (no torch import).
- :mod:`nncc.training.finetune`: the training loop, ``nncc finetune`` and the ``finetune`` pass.
"""
