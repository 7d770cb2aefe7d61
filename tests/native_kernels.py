"""What the tests of nncc's compiled kernels share: whether a kernel is built, a mark skipping the
tests that compare it with numpy where it is not, and the test that it is built wherever a C
compiler is (CI has one: its absence there is a failure, not a skip)."""

from __future__ import annotations

import shutil

import pytest

from nncc import native


def kernel_checks(module: str, source: str):
    """(built, the skip mark, the test that a compiler means a built kernel) for ``module``,
    built by setup.py from ``source``. A test module binds the last to a ``test_`` name."""
    built = native.kernels(module) is not None

    def test_kernel_is_built_where_a_compiler_is():
        if shutil.which("cc") or shutil.which("gcc"):
            assert built, f"setup.py builds {source} at install"

    return built, pytest.mark.skipif(not built, reason="the compiled kernel is not built here"), test_kernel_is_built_where_a_compiler_is
