/* One crossbar row block in one pass over its weights: the compiled form of
 * nncc.crossbar.cell_matrix_t followed by column_stats' column sums, placed crossbars and row
 * read conductance (backends/reram/block_kernels.py calls it; numpy computes the same where
 * this module is not built, and tests/test_reram_block_kernels.py compares the two).
 *
 * Every figure is the one the numpy code computes, to the last bit:
 *   - a weight code is rint(|w| / scale * (2^bits - 1)) (differential) or
 *     rint(w / scale * (2^(bits-1) - 1)) + 2^(bits-1) (offset), each step in float64 as numpy
 *     does it on the float64 copy of the weights;
 *   - a cell is (code >> shift) & mask, its slice's cut; column sums are integers;
 *   - a crossbar (X consecutive physical columns) is placed when one of its columns holds a
 *     non-zero cell;
 *   - a cell's read conductance is ((float)cell / top) * (g_on - g_off) + g_off, each step
 *     rounded to float32 (numpy's float32 ufuncs; the build turns off contraction into fused
 *     multiply-adds, -ffp-contract=off), and a row's conductance adds the columns of the placed
 *     crossbars one after another in float32, as numpy's sum over the columns of a column-major
 *     buffer does.
 *
 * And the calibration's sampled input vectors: their codes (input_codes: adc.quantize_inputs,
 * float32 as numpy computes it with a Python float scale: rint(x / scale * levels), clipped to
 * the code range, two's complement when signed) and the codes' bit planes (packed_planes:
 * adc.packed_planes and adc.ones_per_block).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_common.h"

typedef struct {
    const float *w_t;          /* [n x k] row-major: one output per row */
    Py_ssize_t n, k, r0, rows; /* the block: rows r0 .. r0 + rows - 1 */
    double scale, top_code, offset;
    int differential, slices, size;
    const uint8_t *shift, *mask; /* per slice, MSB first */
    const float *top;            /* per slice: the top cell value (2^b - 1) as float32 */
    float g_span, g_off;
} Block;

/* The codes of every output over the block's rows, by polarity: codes[(p * n + j) * rows + r].
 * Returns 0 where a code is NaN or outside 0 .. 65535 (numpy's general path must run). */
CLONES static int quantize(const Block *b, uint16_t *restrict codes, double *restrict q) {
    const Py_ssize_t n = b->n, R = b->rows;
    const double scale = b->scale, top = b->top_code, offset = b->offset;
    const int diff = b->differential;
    for (Py_ssize_t j = 0; j < n; j++) {
        const float *restrict src = b->w_t + j * b->k + b->r0;
        uint16_t *restrict pos = codes + j * R, *restrict neg = codes + (n + j) * R;
        int bad = 0;
        for (Py_ssize_t r = 0; r < R; r++) {
            const double x = (double)src[r];
            q[r] = ((diff ? fabs(x) : x) / scale) * top;
        }
        for (Py_ssize_t r = 0; r < R; r++) /* NaN, infinite or far out of range */
            bad |= (q[r] != q[r]) | (q[r] <= -1e15) | (q[r] >= 1e15);
        if (bad)
            return 0;
        for (Py_ssize_t r = 0; r < R; r++) {
            const double v = round_even(q[r]) + offset;
            bad |= (v < 0.0) | (v > 65535.0);
            q[r] = v;
        }
        if (bad)
            return 0;
        for (Py_ssize_t r = 0; r < R; r++) {
            const uint16_t code = (uint16_t)(int32_t)q[r];
            pos[r] = (!diff || src[r] > 0.0f) ? code : 0;
            if (diff)
                neg[r] = src[r] < 0.0f ? code : 0;
        }
    }
    return 1;
}

/* Cells, column sums and placed crossbars, one crossbar (X columns) at a time, and the row
 * conductance of each placed one's columns added in column order while its cells are in cache. */
CLONES static void cut(const Block *b, const uint16_t *restrict codes, uint8_t *restrict cells, int64_t *restrict col_sum,
                       uint8_t *restrict placed, float *restrict acc) {
    const Py_ssize_t n = b->n, R = b->rows, S = b->slices, X = b->size;
    const Py_ssize_t cols = (b->differential ? 2 : 1) * S * n;
    int first = 1;
    for (Py_ssize_t start = 0; start < cols; start += X) {
        const Py_ssize_t end = start + X < cols ? start + X : cols;
        int64_t any = 0;
        for (Py_ssize_t c = start; c < end; c++) {
            const Py_ssize_t ps = c / n, j = c % n, p = ps / S, s = ps % S;
            const uint16_t *restrict code = codes + (p * n + j) * R;
            uint8_t *restrict dst = cells + c * R;
            const uint16_t sh = b->shift[s], m = b->mask[s];
            uint32_t total = 0;
            for (Py_ssize_t r = 0; r < R; r++) {
                const uint8_t cell = (uint8_t)((code[r] >> sh) & m);
                dst[r] = cell;
                total += cell;
            }
            col_sum[c] = total;
            any |= total;
        }
        placed[start / X] = any != 0;
        if (!any)
            continue;
        for (Py_ssize_t c = start; c < end; c++) {
            const uint8_t *restrict col = cells + c * R;
            const float t = b->top[(c / n) % S], span = b->g_span, off = b->g_off;
            if (first) {
                for (Py_ssize_t r = 0; r < R; r++) {
                    float g = (float)col[r] / t;
                    g = g * span;
                    acc[r] = g + off;
                }
                first = 0;
            } else {
                for (Py_ssize_t r = 0; r < R; r++) {
                    float g = (float)col[r] / t;
                    g = g * span;
                    g = g + off;
                    acc[r] = acc[r] + g;
                }
            }
        }
    }
    if (first)
        for (Py_ssize_t r = 0; r < R; r++)
            acc[r] = 0.0f;
}

/* block_pass(w_t, k, r0, rows, scale, weight_bits, differential, size, shifts, masks, tops, g_span, g_off,
 *            cells_t, col_sums, placed, row_g) -> bool
 *
 * w_t: float32 [n x k] C-contiguous (the layer's [k x n] matrix transposed); the block is rows
 * r0 .. r0 + rows - 1; size: the crossbar's X. shifts, masks: one byte per slice (MSB first);
 * tops: float32 per slice. Writes cells_t: uint8 [P*S*n x rows] (column (p*S + s)*n + j, as
 * cell_matrix_t), col_sums: int64 [P*S*n], placed: one byte per crossbar of X columns,
 * row_g: float32 [rows] (0 where no crossbar is placed). Returns False where numpy's general
 * path must run instead (a code that is NaN or outside 0 .. 65535): nothing written is then
 * to be read. */
static PyObject *block_pass(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer w = {0}, shifts = {0}, masks = {0}, tops = {0}, cells = {0}, sums = {0}, placed = {0}, row_g = {0};
    Py_ssize_t k, r0, rows;
    double scale;
    int bits, differential, size;
    float g_span, g_off;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*nnndiiiy*y*y*ffw*w*w*w*", &w, &k, &r0, &rows, &scale, &bits, &differential, &size,
                          &shifts, &masks, &tops, &g_span, &g_off, &cells, &sums, &placed, &row_g))
        return NULL;
    const Py_ssize_t S = shifts.len, P = differential ? 2 : 1;
    const Py_ssize_t n = k > 0 ? w.len / (Py_ssize_t)sizeof(float) / k : 0;
    const Py_ssize_t cols = P * S * n;
    if (S < 1 || masks.len != S || tops.len != S * (Py_ssize_t)sizeof(float) || k < 1 || r0 < 0 || rows < 1 ||
        r0 + rows > k || size < 1 || bits < 1 || bits > 16 || n * k * (Py_ssize_t)sizeof(float) != w.len ||
        cells.len != cols * rows || sums.len != cols * (Py_ssize_t)sizeof(int64_t) ||
        placed.len != (cols + size - 1) / size || row_g.len != rows * (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "block_pass: buffer sizes do not match");
        goto done;
    }
    const Block block = {
        .w_t = (const float *)w.buf, .n = n, .k = k, .r0 = r0, .rows = rows, .scale = scale,
        .top_code = differential ? (double)((1L << bits) - 1) : (double)((1L << (bits - 1)) - 1),
        .offset = differential ? 0.0 : (double)(1L << (bits - 1)), .differential = differential,
        .slices = (int)S, .size = size, .shift = (const uint8_t *)shifts.buf, .mask = (const uint8_t *)masks.buf,
        .top = (const float *)tops.buf, .g_span = g_span, .g_off = g_off,
    };
    uint16_t *codes = malloc((size_t)(P * n * rows) * sizeof(uint16_t));
    double *scratch = malloc((size_t)rows * sizeof(double));
    if (!codes || !scratch) {
        free(codes);
        free(scratch);
        PyErr_NoMemory();
        goto done;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = quantize(&block, codes, scratch);
    if (ok)
        cut(&block, codes, (uint8_t *)cells.buf, (int64_t *)sums.buf, (uint8_t *)placed.buf, (float *)row_g.buf);
    Py_END_ALLOW_THREADS
    free(codes);
    free(scratch);
    result = PyBool_FromLong(ok);
done:
    PyBuffer_Release(&w);
    PyBuffer_Release(&shifts);
    PyBuffer_Release(&masks);
    PyBuffer_Release(&tops);
    PyBuffer_Release(&cells);
    PyBuffer_Release(&sums);
    PyBuffer_Release(&placed);
    PyBuffer_Release(&row_g);
    return result;
}

/* rintf() for every float, clipped to [low, high]: adding and taking away 1.5 * 2^23 rounds q
 * to an integer (ties to even) where |q| < 2^22; a larger |q| lies outside every code range
 * (at most 16 bits) and, off by a little, is clipped the same. NaN: the caller's flag. One loop
 * per code width, so that each vectorizes. */
#define CODES_LOOP(NAME, TYPE)                                                                          \
    CLONES static int NAME(const float *x, Py_ssize_t n, float scale, float levels, float low, float high, \
                           float wrap, TYPE *out) {                                                     \
        int nan = 0;                                                                                    \
        for (Py_ssize_t i = 0; i < n; i++) {                                                            \
            const float magic = 12582912.0f; /* 1.5 * 2^23 */                                           \
            const float q = x[i] / scale * levels;                                                      \
            float r = (q + magic) - magic;                                                              \
            nan |= q != q;                                                                              \
            r = r < low ? low : r > high ? high : r;                                                    \
            r = r < 0.0f ? r + wrap : r;                                                                \
            out[i] = (TYPE)(int32_t)r;                                                                  \
        }                                                                                               \
        return !nan;                                                                                    \
    }
CODES_LOOP(codes_u8, uint8_t)
CODES_LOOP(codes_u16, uint16_t)

/* input_codes(x: float32 buffer, scale: float, bits, signed, out: uint8 (bits <= 8) or uint16
 * buffer) -> bool (False: an x / scale was NaN; numpy computes them). */
static PyObject *input_codes(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer x = {0}, out = {0};
    double scale;
    int bits, is_signed;
    if (!PyArg_ParseTuple(args, "y*dipw*", &x, &scale, &bits, &is_signed, &out))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = x.len / (Py_ssize_t)sizeof(float);
    const int wide = bits > 8;
    if (bits < 1 || bits > 16 || x.len != n * (Py_ssize_t)sizeof(float) || out.len != n * (wide ? 2 : 1)) {
        PyErr_SetString(PyExc_ValueError, "input_codes: buffer sizes do not match");
    } else {
        /* numpy: x / scale * levels with a Python float scale and int levels, both taken as float32 */
        const float levels = (float)((is_signed ? 1L << (bits - 1) : 1L << bits) - 1);
        const float low = is_signed ? -(float)(1L << (bits - 1)) : 0.0f, high = levels;
        int ok;
        Py_BEGIN_ALLOW_THREADS
        ok = wide ? codes_u16((const float *)x.buf, n, (float)scale, levels, low, high, (float)(1L << bits), (uint16_t *)out.buf)
                  : codes_u8((const float *)x.buf, n, (float)scale, levels, low, high, (float)(1L << bits), (uint8_t *)out.buf);
        Py_END_ALLOW_THREADS
        result = PyBool_FromLong(ok);
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    return result;
}

/* The 1 bits of a byte, branch-free on its own lanes (the loops over codes vectorize). */
static inline uint8_t ones8(uint8_t x) {
    x = (uint8_t)(x - ((x >> 1) & 0x55));
    x = (uint8_t)((x & 0x33) + ((x >> 2) & 0x33));
    return (uint8_t)((x + (x >> 4)) & 0x0F);
}

CLONES static void planes_loop(const uint8_t *code, Py_ssize_t V, Py_ssize_t rows, Py_ssize_t bits, Py_ssize_t block_bytes,
                               uint8_t *plane, int64_t *ones, int32_t *block) {
    const Py_ssize_t nbytes = (rows + 7) / 8, blocks = (nbytes + block_bytes - 1) / block_bytes;
    const uint8_t mask = (uint8_t)((1u << bits) - 1);
    memset(ones, 0, (size_t)rows * sizeof(int64_t));
    for (Py_ssize_t v = 0; v < V; v++) {
        const uint8_t *row = code + v * rows;
        for (Py_ssize_t r = 0; r < rows; r++)
            ones[r] += ones8((uint8_t)(row[r] & mask));
        for (Py_ssize_t b = 0; b < bits; b++)
            memset(block + (b * V + v) * blocks, 0, (size_t)blocks * sizeof(int32_t));
        for (Py_ssize_t i = 0; i < nbytes; i++) {
            uint64_t word = 0;
            const Py_ssize_t take = rows - 8 * i < 8 ? rows - 8 * i : 8;
            memcpy(&word, row + 8 * i, (size_t)take); /* little-endian: row 8i + t in byte t */
            const Py_ssize_t blk = i / block_bytes;
            for (Py_ssize_t b = 0; b < bits; b++) { /* each plane's byte from the same word */
                const uint8_t packed = (uint8_t)((((word >> b) & 0x0101010101010101ULL) * 0x8040201008040201ULL) >> 56);
                plane[(b * V + v) * nbytes + i] = packed;
                block[(b * V + v) * blocks + blk] += ones8(packed);
            }
        }
    }
}

/* packed_planes(codes: uint8 [V x rows] buffer, V, rows, bits (1..8), block_bytes,
 * planes: uint8 [bits*V x ceil(rows/8)] buffer, row_ones: int64 [rows] buffer,
 * block_ones: int32 [bits*V x blocks] buffer) -> None
 *
 * adc.packed_planes and adc.ones_per_block in one pass: plane b*V + v holds bit b of vector v's
 * codes, 8 rows a byte, the first row in the high bit (np.packbits); row_ones counts each row's 1
 * bits over the planes; block_ones each plane's 1 bits in each run of block_bytes bytes. Eight
 * codes are read as one 64-bit word: bit b of each byte, moved to its byte's low bit, is gathered
 * into one byte by a multiplication (row t lands on bit 7 - t of the top byte). */
static PyObject *packed_planes(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer codes = {0}, planes = {0}, row_ones = {0}, block_ones = {0};
    Py_ssize_t V, rows, bits, block_bytes;
    if (!PyArg_ParseTuple(args, "y*nnnnw*w*w*", &codes, &V, &rows, &bits, &block_bytes, &planes, &row_ones, &block_ones))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t nbytes = (rows + 7) / 8, blocks = block_bytes > 0 ? (nbytes + block_bytes - 1) / block_bytes : 0;
    if (V < 0 || rows < 0 || bits < 1 || bits > 8 || block_bytes < 1 || codes.len != V * rows ||
        planes.len != bits * V * nbytes || row_ones.len != rows * (Py_ssize_t)sizeof(int64_t) ||
        block_ones.len != bits * V * blocks * (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "packed_planes: buffer sizes do not match");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    planes_loop((const uint8_t *)codes.buf, V, rows, bits, block_bytes, (uint8_t *)planes.buf, (int64_t *)row_ones.buf,
                (int32_t *)block_ones.buf);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&codes);
    PyBuffer_Release(&planes);
    PyBuffer_Release(&row_ones);
    PyBuffer_Release(&block_ones);
    return result;
}

/* level_counts(cells: float32 [m x rows] buffer of small integers 0 .. top, m, top,
 * counts: int64 [top x m] buffer) -> None: counts[i][c] = how many cells of row c equal
 * top - i (adc._LevelBound's table: highest level first). */
static PyObject *level_counts(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer cells = {0}, counts = {0};
    Py_ssize_t m, top;
    if (!PyArg_ParseTuple(args, "y*nnw*", &cells, &m, &top, &counts))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t rows = m > 0 ? cells.len / (Py_ssize_t)sizeof(float) / m : 0;
    if (m < 0 || top < 0 || top > 255 || rows * m * (Py_ssize_t)sizeof(float) != cells.len ||
        counts.len != top * m * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "level_counts: buffer sizes do not match");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const float *cell = (const float *)cells.buf;
    int64_t *count = (int64_t *)counts.buf;
    for (Py_ssize_t c = 0; c < m; c++) {
        int64_t seen[256] = {0};
        const float *row = cell + c * rows;
        for (Py_ssize_t r = 0; r < rows; r++)
            seen[(int)row[r] & 255]++;
        for (Py_ssize_t i = 0; i < top; i++)
            count[i * m + c] = seen[top - i];
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&cells);
    PyBuffer_Release(&counts);
    return result;
}

static PyMethodDef methods[] = {
    {"block_pass", block_pass, METH_VARARGS, "A crossbar row block's cells, column sums, placed crossbars and row conductance."},
    {"input_codes", input_codes, METH_VARARGS, "Activation codes of float32 input vectors, as adc.quantize_inputs computes them."},
    {"level_counts", level_counts, METH_VARARGS, "Per row of small-integer float32 cells, how many hold each level, highest first."},
    {"packed_planes", packed_planes, METH_VARARGS, "Bit planes of 8-bit codes packed 8 rows a byte, with their 1 bits per row and per block."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_block_kernels", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__block_kernels(void) { return PyModule_Create(&module); }
