/* UCNN's weight statistics for G = 1 in one pass over each filter's codes: the compiled form of
 * weight_stats._chunk_stats_single (weight_stats._compiled_single calls it; numpy computes
 * the same where this module is not built, and tests/test_ucnn_filter_kernels.py compares them).
 *
 * numpy sorts each filter's codes stably and reads the groups of equal codes off the order; a
 * filter's groups are found here by remembering, per code, where it was last seen: the same
 * counts, without the sort. Per filter (code 0 is a zero weight, no entry):
 *   - entries: its non-zero weights; unique: its distinct non-zero codes;
 *   - each entry's jump: from the previous entry of the same code, the first of a code from -1
 *     (position + 1), counted in a histogram by length;
 *   - each code's group size (its entries), counted in a histogram by size.
 * Summed over filters: zeros, unique, entries, act_adds = entries - unique,
 * psum_adds = max(unique - 1, 0), base_cycles = max(entries, ceil(unique / multipliers)).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

/* single_group_stats(codes, filters, low, span, multipliers, sizes, jumps) -> (zeros, unique, unique_max, entries,
 *                                                                               act_adds, psum_adds, base_cycles)
 *
 * codes: int32 [filters x k] C-contiguous, every code in low .. low + span - 1. sizes: int64
 * [k + 1] (+= groups by size), jumps: int64 [k + 1] (+= entries by jump length). */
static PyObject *single_group_stats(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer codes = {0}, sizes = {0}, jumps = {0};
    Py_ssize_t filters, low, span, multipliers;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*nnnnw*w*", &codes, &filters, &low, &span, &multipliers, &sizes, &jumps))
        return NULL;
    const Py_ssize_t F = filters, elements = codes.len / (Py_ssize_t)sizeof(int32_t);
    const Py_ssize_t k = F > 0 ? elements / F : 0;
    if (F < 0 || span < 1 || span > (1 << 20) || multipliers < 1 || k * F != elements ||
        codes.len != elements * (Py_ssize_t)sizeof(int32_t) || sizes.len != (k + 1) * (Py_ssize_t)sizeof(int64_t) ||
        jumps.len != (k + 1) * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "single_group_stats: buffer sizes do not match");
        goto done;
    }
    /* Per code: the filter that last saw it (+1; 0 = none yet), where, and how often. */
    int64_t *seen = calloc((size_t)span, sizeof(int64_t));
    int32_t *last = malloc((size_t)span * sizeof(int32_t)), *count = malloc((size_t)span * sizeof(int32_t));
    int32_t *distinct = malloc((size_t)(k > 0 ? k : 1) * sizeof(int32_t));
    if (!seen || !last || !count || !distinct) {
        free(seen); free(last); free(count); free(distinct);
        PyErr_NoMemory();
        goto done;
    }
    int64_t zeros = 0, unique_sum = 0, unique_max = 0, entries_sum = 0, act_adds = 0, psum_adds = 0, base_cycles = 0;
    Py_BEGIN_ALLOW_THREADS
    const int32_t *code = (const int32_t *)codes.buf;
    int64_t *size_hist = (int64_t *)sizes.buf, *jump_hist = (int64_t *)jumps.buf;
    for (Py_ssize_t f = 0; f < F; f++) {
        const int32_t *row = code + f * k;
        const int64_t stamp = (int64_t)f + 1;
        int64_t entries = 0, unique = 0;
        for (Py_ssize_t pos = 0; pos < k; pos++) {
            const int32_t c = row[pos];
            if (c == 0)
                continue;
            const Py_ssize_t v = (Py_ssize_t)c - low;
            entries++;
            if (seen[v] != stamp) {
                seen[v] = stamp;
                count[v] = 0;
                distinct[unique++] = (int32_t)v;
                jump_hist[pos + 1]++;
            } else {
                jump_hist[pos - last[v]]++;
            }
            last[v] = (int32_t)pos;
            count[v]++;
        }
        for (int64_t d = 0; d < unique; d++)
            size_hist[count[distinct[d]]]++;
        zeros += k - entries;
        unique_sum += unique;
        unique_max = unique > unique_max ? unique : unique_max;
        entries_sum += entries;
        act_adds += entries - unique;
        psum_adds += unique > 1 ? unique - 1 : 0;
        const int64_t passes = (unique + multipliers - 1) / multipliers;
        base_cycles += entries > passes ? entries : passes;
    }
    Py_END_ALLOW_THREADS
    free(seen); free(last); free(count); free(distinct);
    result = Py_BuildValue("LLLLLLL", (long long)zeros, (long long)unique_sum, (long long)unique_max, (long long)entries_sum,
                           (long long)act_adds, (long long)psum_adds, (long long)base_cycles);
done:
    PyBuffer_Release(&codes);
    PyBuffer_Release(&sizes);
    PyBuffer_Release(&jumps);
    return result;
}

static PyMethodDef methods[] = {
    {"single_group_stats", single_group_stats, METH_VARARGS, "UCNN's G = 1 weight statistics of a chunk of filters."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_filter_kernels", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__filter_kernels(void) { return PyModule_Create(&module); }
