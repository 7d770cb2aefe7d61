/* Float32 weights on a symmetric grid and scaled per channel, computed in float64 as numpy
 * computes them (nncc.grid calls these; numpy computes the same where this module is not
 * built, and tests/test_grid_kernels.py compares the two bit for bit). One pass over the
 * weights where numpy makes five, through float64 temporaries:
 *   grid_codes:  code = rint((double)w / scale)                          (ucnn's codes)
 *   grid_values: q = (float)(rint((double)w / scale) * scale), and max |(double)q - (double)w|
 *                (legalize-core-ops' quantize_symmetric)
 *   scaled:      out = (float)((double)w * factor[channel])                (fold-batchnorm)
 * Each step rounds once, as numpy's does: no fused multiply-adds (-ffp-contract=off), IEEE
 * semantics (no -ffast-math), the default rounding mode (to nearest, ties to even: np.rint and
 * np.round).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#include "kernels_common.h"

/* The bits of a non-negative double, as an int64: ordered as the doubles are, and a NaN (its
 * sign cleared) above infinity, so the largest error is an integer maximum, which vectorizes
 * where a floating-point one (NaN-aware) does not. */
static inline int64_t bits_of(double x) {
    union { double d; int64_t i; } u = {.d = x};
    return u.i;
}

static inline double double_of(int64_t i) {
    union { int64_t i; double d; } u = {.i = i};
    return u.d;
}

static const int64_t INFINITY_BITS = 0x7FF0000000000000LL;

/* The largest |w| as float32 bits (ordered as the floats are, NaN above infinity). */
CLONES static int32_t largest_bits(const float *w, Py_ssize_t n) {
    int32_t largest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        union { float f; int32_t i; } u = {.f = w[i]};
        const int32_t size = u.i & 0x7FFFFFFF;
        largest = size > largest ? size : largest;
    }
    return largest;
}

CLONES static void codes_small(const float *w, Py_ssize_t n, double scale, int32_t *codes) {
    for (Py_ssize_t i = 0; i < n; i++) {
        const double q = (double)w[i] / scale;
        codes[i] = (int32_t)(round_even(q));
    }
}

/* Every code by round_even (kernels_common.h) where the largest |w| / scale is below 2^31 - 1 (the
 * division is monotonic: no other quotient is larger), else by libm's rint, checked. */
static int codes_fast(const float *w, Py_ssize_t n, double scale, int32_t *codes) {
    union { int32_t i; float f; } u = {.i = largest_bits(w, n)};
    if (!(u.i <= 0x7F800000 && fabs((double)u.f / scale) < 2147483647.0))
        return 0;
    codes_small(w, n, scale, codes);
    return 1;
}

static int codes_exact(const float *w, Py_ssize_t n, double scale, int32_t *codes) {
    for (Py_ssize_t i = 0; i < n; i++) {
        const double r = rint((double)w[i] / scale);
        if (!((r >= -2147483648.0) & (r <= 2147483647.0))) /* NaN fails both */
            return 0;
        codes[i] = (int32_t)r;
    }
    return 1;
}

static int codes_loop(const float *w, Py_ssize_t n, double scale, int32_t *codes) {
    return codes_fast(w, n, scale, codes) || codes_exact(w, n, scale, codes);
}

/* max |q - w| over the grid values q of w, in float64, by round_even (kernels_common.h): valid where
 * every |w / scale| < 2^51 (returns -1.0 where one is not, or is NaN). NaN if an error is. */
CLONES static double values_fast(const float *w, Py_ssize_t n, double scale, float *q) {
    int64_t worst = 0;
    int small = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const double x = (double)w[i] / scale;
        small &= fabs(x) < ROUND_EVEN_LIMIT;
        const float v = (float)(round_even(x) * scale);
        const int64_t e = bits_of(fabs((double)v - (double)w[i]));
        q[i] = v;
        worst = e > worst ? e : worst;
    }
    return !small ? -1.0 : worst > INFINITY_BITS ? NAN : double_of(worst);
}

static double values_exact(const float *w, Py_ssize_t n, double scale, float *q) {
    double worst = 0.0;
    int nan = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const float v = (float)(rint((double)w[i] / scale) * scale);
        const double e = fabs((double)v - (double)w[i]);
        q[i] = v;
        nan |= e != e;
        worst = e > worst ? e : worst;
    }
    return nan ? NAN : worst;
}

static double values_loop(const float *w, Py_ssize_t n, double scale, float *q) {
    const double worst = values_fast(w, n, scale, q);
    return worst == -1.0 ? values_exact(w, n, scale, q) : worst;
}

CLONES static void scaled_loop(const float *w, Py_ssize_t outer, Py_ssize_t count, Py_ssize_t inner,
                               const double *factor, float *out) {
    for (Py_ssize_t o = 0; o < outer; o++)
        for (Py_ssize_t c = 0; c < count; c++) {
            const Py_ssize_t base = (o * count + c) * inner;
            const double f = factor[c];
            for (Py_ssize_t i = 0; i < inner; i++)
                out[base + i] = (float)((double)w[base + i] * f);
        }
}

/* grid(w: float32 array, C-ordered or strided, scale: float, out: 4-byte buffer, values: bool):
 *   values False: out int32 codes -> bool (False: a code is NaN or outside int32; the caller
 *                 then computes with numpy);
 *   values True:  out float32 grid values -> max |out - w| (NaN if any is).
 * A strided w (a block cut out of a layer's weight) is read a contiguous run at a time (its
 * innermost axes that are contiguous), out written in C order: no copy of the block first. */
static PyObject *grid(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *array;
    Py_buffer w = {0}, out = {0};
    double scale;
    int values;
    if (!PyArg_ParseTuple(args, "Odw*p", &array, &scale, &out, &values))
        return NULL;
    if (PyObject_GetBuffer(array, &w, PyBUF_STRIDES) != 0) {
        PyBuffer_Release(&out);
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t n = w.len / (Py_ssize_t)sizeof(float);
    /* The contiguous innermost axes: one run; the outer ones are walked with an index. */
    Py_ssize_t inner = w.itemsize, k = w.ndim;
    while (k > 0 && (w.strides[k - 1] == inner || w.shape[k - 1] == 1)) {
        inner *= w.shape[k - 1];
        k--;
    }
    const Py_ssize_t run = inner / (Py_ssize_t)sizeof(float);
    if (w.itemsize != (Py_ssize_t)sizeof(float) || out.len != w.len || k > 32) { /* int32 and float32: 4 bytes each */
        PyErr_SetString(PyExc_ValueError, "grid: buffer sizes do not match");
    } else {
        double worst = 0.0;
        int ok = 1, nan = 0;
        Py_ssize_t index[32] = {0};
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t done = 0; run > 0 && done < n; done += run) {
            Py_ssize_t offset = 0;
            for (Py_ssize_t d = 0; d < k; d++)
                offset += index[d] * w.strides[d];
            const float *src = (const float *)((const char *)w.buf + offset);
            if (values) {
                const double e = values_loop(src, run, scale, (float *)out.buf + done);
                nan |= e != e;
                worst = e > worst ? e : worst;
            } else if (!codes_loop(src, run, scale, (int32_t *)out.buf + done)) {
                ok = 0;
                break;
            }
            for (Py_ssize_t d = k - 1; d >= 0; d--) { /* the next outer index, C order */
                if (++index[d] < w.shape[d])
                    break;
                index[d] = 0;
            }
        }
        Py_END_ALLOW_THREADS
        result = values ? PyFloat_FromDouble(nan ? NAN : worst) : PyBool_FromLong(ok);
    }
    PyBuffer_Release(&w);
    PyBuffer_Release(&out);
    return result;
}

/* scaled(w: float32 buffer [outer x count x inner], factor: float64 buffer [count], inner,
 * out: float32 buffer) -> None. */
static PyObject *scaled(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer w = {0}, factor = {0}, out = {0};
    Py_ssize_t inner;
    if (!PyArg_ParseTuple(args, "y*y*nw*", &w, &factor, &inner, &out))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = w.len / (Py_ssize_t)sizeof(float), count = factor.len / (Py_ssize_t)sizeof(double);
    if (inner < 1 || count < 1 || w.len != n * (Py_ssize_t)sizeof(float) || factor.len != count * (Py_ssize_t)sizeof(double) ||
        out.len != w.len || n % (count * inner)) {
        PyErr_SetString(PyExc_ValueError, "scaled: buffer sizes do not match");
    } else {
        Py_BEGIN_ALLOW_THREADS
        scaled_loop((const float *)w.buf, n / (count * inner), count, inner, (const double *)factor.buf, (float *)out.buf);
        Py_END_ALLOW_THREADS
        Py_INCREF(Py_None);
        result = Py_None;
    }
    PyBuffer_Release(&w);
    PyBuffer_Release(&factor);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"grid", grid, METH_VARARGS, "Codes rint(w / scale) of float32 weights in float64, or their grid values and largest error."},
    {"scaled", scaled, METH_VARARGS, "Float32 weights times a float64 factor per channel, rounded once."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_grid_kernels", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__grid_kernels(void) { return PyModule_Create(&module); }
