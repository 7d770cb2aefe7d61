/* What nncc's C kernels share (compiler/_grid_kernels.c, backends/reram/_block_kernels.c):
 * setup.py builds them with -O3 -ffp-contract=off -fno-fast-math, so each floating-point step
 * rounds once, as numpy's does. */
#ifndef NNCC_KERNELS_COMMON_H
#define NNCC_KERNELS_COMMON_H

/* On x86-64, an AVX2 clone beside the baseline one, chosen at load time by the CPU: the loops
 * are the same, twice the lanes (AVX2 has no FMA, and contraction is off anyway). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* rint() for |q| < 2^51 in the default rounding mode (to nearest, ties to even): adding and
 * taking away 1.5 * 2^52 leaves q rounded to an integer; inline and branch-free (loops using it
 * vectorize), where rint() is a call into libm on a baseline x86-64 build. Not folded away:
 * IEEE semantics (no -ffast-math). */
#define ROUND_EVEN_LIMIT 2251799813685248.0 /* 2^51 */
static inline double round_even(double q) {
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    const double shifted = q + magic;
    return shifted - magic;
}

#endif
