"""The compiled kernels (everything else is declared in pyproject.toml).

One C extension, reram's row-block kernel (backends/reram/_block_kernels.c). It is optional:
where it cannot be built (no C compiler), the install goes on and nncc computes the same
figures with numpy, only slower. Contraction into fused multiply-adds is off: the kernel's
float32 steps must round as numpy's do.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("nncc.backends.reram._block_kernels", ["backends/reram/_block_kernels.c"],
                             extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c11"],
                             optional=True)])
