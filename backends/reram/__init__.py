"""The ``reram`` target (entry point ``nncc.backends.reram:ReramTarget``)."""

from nncc.backends.reram.config import ReramConfig
from nncc.backends.reram.cost import CrossbarCost, DigitalCost, crossbar_area_ratio
from nncc.backends.reram.mapping import CrossbarLayer, ReramMapping
from nncc.backends.reram.target import ReramTarget
from nncc.crossbar import group_scissor_counts  # the crossbar counts live in the core; re-exported for old callers

__all__ = ["CrossbarCost", "CrossbarLayer", "DigitalCost", "ReramConfig", "ReramMapping", "ReramTarget", "crossbar_area_ratio",
           "group_scissor_counts"]
