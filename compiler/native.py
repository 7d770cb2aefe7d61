"""Compiled kernels: the C extensions setup.py builds at install (the core's grid kernels,
reram's row-block pass, ucnn's filter statistics), each a faster way to the very figures its
numpy code computes.

Code asks :func:`kernels` for its module and computes with numpy where it gets None: the
extension was not built (no C compiler at install), or ``NNCC_NUMPY_KERNELS=1`` turned the
compiled kernels off (to compare the two: the tests check they agree to the last bit).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def kernels(module: str) -> ModuleType | None:
    """The compiled module ``module`` (e.g. ``nncc.backends.reram._block_kernels``), or None."""
    if os.environ.get("NNCC_NUMPY_KERNELS") == "1":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:  # not built: numpy computes the same
        return None
