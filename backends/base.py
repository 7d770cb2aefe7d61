"""What target packages import: the Target contract (it lives in the core, :mod:`nncc.target`,
because the driver and the registry use it too) and the helpers targets share."""

from nncc.target import (HardwareConfig, Mapping, SearchOption, Target, config_sources, config_to_json, hw, knob,
                         partition_layers)

__all__ = ["HardwareConfig", "Mapping", "SearchOption", "Target", "config_sources", "config_to_json", "hw", "knob",
           "partition_layers"]
