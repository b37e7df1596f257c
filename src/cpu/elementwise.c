/* cpu/elementwise.c - binary elementwise loops: out = a op b.
 *
 * One innermost loop per (op, dtype). The loop reads a and b at element
 * strides sa and sb (0 = a broadcast scalar, 1 = contiguous, anything else =
 * strided) and writes out contiguously. The contiguous and broadcast cases
 * are written separately so that the compiler vectorises them for the ISA
 * this file is being compiled for (see CMakeLists.txt); floating-point
 * contraction is off, so every ISA gives the same bits.
 *
 * stream_copy moves a finished piece of output from a staging buffer in L1
 * to its place in memory with streaming stores (see MG_STREAM_MIN_BYTES). */
#include <string.h>

#include "kernels.h"
#include "simd.h"

#define ADD(x, y) ((x) + (y))
#define SUB(x, y) ((x) - (y))
#define MUL(x, y) ((x) * (y))
#define DIV(x, y) ((x) / (y))
/* NaN in either operand gives NaN (x + y is NaN exactly then), as torch.maximum. */
#define MAX(x, y) (((x) != (x) || (y) != (y)) ? (x) + (y) : ((x) > (y) ? (x) : (y)))
#define MIN(x, y) (((x) != (x) || (y) != (y)) ? (x) + (y) : ((x) < (y) ? (x) : (y)))

#define DEFINE_BINARY_LOOP(name, T, OP)                                       \
    static void name(int64_t n, const void *a_, int64_t sa, const void *b_,   \
                     int64_t sb, void *out_) {                                \
        const T *restrict a = a_;                                             \
        const T *restrict b = b_;                                             \
        T *restrict out = out_;                                               \
        if (sa == 1 && sb == 1) {                                             \
            for (int64_t i = 0; i < n; i++) out[i] = OP(a[i], b[i]);          \
        } else if (sa == 1 && sb == 0) {                                      \
            const T y = b[0];                                                 \
            for (int64_t i = 0; i < n; i++) out[i] = OP(a[i], y);             \
        } else if (sa == 0 && sb == 1) {                                      \
            const T x = a[0];                                                 \
            for (int64_t i = 0; i < n; i++) out[i] = OP(x, b[i]);             \
        } else {                                                              \
            for (int64_t i = 0; i < n; i++) out[i] = OP(a[i * sa], b[i * sb]);\
        }                                                                     \
    }

#define DEFINE_BOTH_DTYPES(op, OP)                                            \
    DEFINE_BINARY_LOOP(op##_f32, float, OP)                                   \
    DEFINE_BINARY_LOOP(op##_f64, double, OP)

DEFINE_BOTH_DTYPES(add, ADD)
DEFINE_BOTH_DTYPES(sub, SUB)
DEFINE_BOTH_DTYPES(mul, MUL)
DEFINE_BOTH_DTYPES(div, DIV)
DEFINE_BOTH_DTYPES(max, MAX)
DEFINE_BOTH_DTYPES(min, MIN)

static void stream_copy(void *dst_, const void *src_, int64_t nbytes) {
    char *dst = dst_;
    const char *src = src_;
    int64_t head = (int64_t)(-(uintptr_t)dst & 63), i;
    if (head > nbytes) head = nbytes;
    memcpy(dst, src, (size_t)head);
    for (i = head; i + 64 <= nbytes; i += 64)
        for (int v = 0; v < 64; v += MG_VF32_LANES * 4) {
            mg_vf32 line_part;
            memcpy(&line_part, src + i + v, sizeof line_part);   /* src may be unaligned */
            mg_vf32_stream((float *)(dst + i + v), line_part);
        }
    memcpy(dst + i, src + i, (size_t)(nbytes - i));
}

void MG_ISA_FN(mg_fill_elementwise)(mg_kernel_table *t) {
    const mg_binary_loop_fn loops[MG_NUM_BINARY_OPS][MG_NUM_DTYPES] = {
        {add_f32, add_f64}, {sub_f32, sub_f64}, {mul_f32, mul_f64},
        {div_f32, div_f64}, {max_f32, max_f64}, {min_f32, min_f64},
    };
    for (int op = 0; op < MG_NUM_BINARY_OPS; op++)
        for (int dt = 0; dt < MG_NUM_DTYPES; dt++) t->binary[op][dt] = loops[op][dt];
    t->stream_copy = stream_copy;
}
