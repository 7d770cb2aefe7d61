"""The compiled kernels (everything else is declared in pyproject.toml).

Three C extensions: the core's grid kernels (compiler/_grid_kernels.c: weights on a symmetric
grid, scaled per channel), reram's row-block pass (backends/reram/_block_kernels.c) and ucnn's
filter statistics (backends/ucnn/_filter_kernels.c); nncc.native says how the code finds them. Both are
optional: where they cannot be built (no C compiler), the install goes on and nncc computes the
same figures with numpy, only slower. Contraction into fused multiply-adds is off: every
step must round as numpy's does.
"""

from setuptools import Extension, setup

FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math", "-std=c11"]
COMMON = {"extra_compile_args": FLAGS, "include_dirs": ["compiler"], "depends": ["compiler/kernels_common.h"], "optional": True}

setup(ext_modules=[Extension("nncc._grid_kernels", ["compiler/_grid_kernels.c"], **COMMON),
                   Extension("nncc.backends.reram._block_kernels", ["backends/reram/_block_kernels.c"], **COMMON),
                   Extension("nncc.backends.ucnn._filter_kernels", ["backends/ucnn/_filter_kernels.c"], **COMMON)])
