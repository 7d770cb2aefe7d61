"""The compiled kernels (everything else is declared in pyproject.toml).

Two C extensions: reram's row-block pass (backends/reram/_block_kernels.c) and ucnn's filter
statistics (backends/ucnn/_filter_kernels.c); nncc.native says how targets find them. Both are
optional: where they cannot be built (no C compiler), the install goes on and nncc computes the
same figures with numpy, only slower. Contraction into fused multiply-adds is off: reram's
float32 steps must round as numpy's do.
"""

from setuptools import Extension, setup

FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c11"]

setup(ext_modules=[Extension("nncc.backends.reram._block_kernels", ["backends/reram/_block_kernels.c"], extra_compile_args=FLAGS,
                             optional=True),
                   Extension("nncc.backends.ucnn._filter_kernels", ["backends/ucnn/_filter_kernels.c"], extra_compile_args=FLAGS,
                             optional=True)])
