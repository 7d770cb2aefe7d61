"""What a plugin imports: the names nncc keeps stable for third-party passes and targets.

A plugin (a distribution registering through the ``nncc.passes`` / ``nncc.targets`` entry-point
groups, or a file given to ``--plugin``) imports from this module only, so the core's modules can
be reorganized without breaking it. The names are defined where the built-ins get them; this
module only gathers them. Worked examples: ``examples/plugins/``.

- Passes: :class:`NnccPass` (dataclass fields are the ``-p name:key=value`` parameters;
  ``apply(model: onnx_ir.Model) -> bool`` rewrites in place and fills ``self.stats``),
  :class:`PassContext` (``PassContext.current()``: calibration data, the compile target;
  a pass that reads nothing of the target sets ``target_independent = True``).
- Targets: :class:`Target` (``lower(model, calibration=None) -> Mapping``,
  ``estimate(mapping) -> CostReport``), :class:`HardwareConfig` and :func:`hw` (each constant
  with its source and valid range), :class:`Mapping`, :func:`partition_layers`,
  :class:`CostReport`, :class:`LayerCost` (subclass it for extra report columns),
  :func:`optional`, :class:`Unsupported`, :class:`SearchOption` and :func:`knob`
  (``nncc optimize``'s knobs).
- Both: :class:`Layer` and :func:`layers` (the layer view: shapes, MACs, bytes, weight),
  :func:`op_class` (the op-class table), :class:`NnccError` (bad input: one line, exit 2).
"""

from __future__ import annotations

from nncc.analysis import Layer, layers
from nncc.cost import CostReport, LayerCost, Unsupported, optional
from nncc.errors import NnccError
from nncc.ops import op_class
from nncc.pass_base import NnccPass
from nncc.pipeline import PassContext
from nncc.target import HardwareConfig, Mapping, SearchOption, Target, hw, knob, partition_layers

__all__ = ["CostReport", "HardwareConfig", "Layer", "LayerCost", "Mapping", "NnccError", "NnccPass", "PassContext",
           "SearchOption", "Target", "Unsupported", "hw", "knob", "layers", "op_class", "optional", "partition_layers"]
