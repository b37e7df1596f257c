/* cpu/elementwise.c - binary elementwise loops: out = a op b.
 *
 * One innermost loop per (op, dtype). The loop reads a and b at element
 * strides sa and sb (0 = a broadcast scalar, 1 = contiguous, anything else =
 * strided) and writes out contiguously. + - * / run their contiguous and
 * scalar-broadcast cases on simd.h vectors (MG_STORE_RUN), with streaming
 * stores when the caller asks (outputs of mg_stream_min_bytes or more); max
 * and min, and every strided case, are plain loops that the compiler
 * vectorises for the ISA this file is being compiled for (CMakeLists.txt).
 * Floating-point contraction is off, so every ISA gives the same bits. */
#include "kernels.h"
#include "simd.h"

#define ADD(x, y) ((x) + (y))
#define SUB(x, y) ((x) - (y))
#define MUL(x, y) ((x) * (y))
#define DIV(x, y) ((x) / (y))
/* NaN in either operand gives NaN (x + y is NaN exactly then), as torch.maximum. */
#define MAX(x, y) (((x) != (x) || (y) != (y)) ? (x) + (y) : ((x) > (y) ? (x) : (y)))
#define MIN(x, y) (((x) != (x) || (y) != (y)) ? (x) + (y) : ((x) < (y) ? (x) : (y)))

/* The three unstrided cases, out[i] = OP(A(i), B(i)) with A(i), B(i) the
 * scalar operands. VECTOR: through VOP on vectors VA(t, i), VB(t, i), with
 * AHEAD the prefetch of the array operands (MG_STORE_RUN); PLAIN: the loop as
 * written (VOP, VA, VB and AHEAD unused). */
#define VECTOR(T, t, OP, VOP, A, B, VA, VB, AHEAD)                                \
    do {                                                                          \
        MG_STORE_RUN(t, stream, out, n, i, VOP(VA(t, i), VB(t, i)), out[i] = OP(A(i), B(i)), AHEAD); \
        if (stream) mg_stream_fence();                                            \
    } while (0)
#define PLAIN(T, t, OP, VOP, A, B, VA, VB, AHEAD)                                 \
    for (int64_t i = 0; i < n; i++) out[i] = OP(A(i), B(i))

#define A_AT(i) a[i]
#define B_AT(i) b[i]
#define X_ONLY(i) x
#define Y_ONLY(i) y
#define VA_AT(t, i) mg_v##t##_load(a + (i))
#define VB_AT(t, i) mg_v##t##_load(b + (i))
#define VX_ONLY(t, i) vx
#define VY_ONLY(t, i) vy

#define DEFINE_BINARY_LOOP(name, T, t, OP, CASES, VOP)                            \
    static void name(int64_t n, const void *a_, int64_t sa, const void *b_,       \
                     int64_t sb, void *out_, int stream) {                        \
        const T *restrict a = a_;                                                 \
        const T *restrict b = b_;                                                 \
        T *restrict out = out_;                                                   \
        if (sa == 1 && sb == 1) {                                                 \
            CASES(T, t, OP, VOP, A_AT, B_AT, VA_AT, VB_AT,                        \
                  (mg_prefetch_ahead(a + i), mg_prefetch_ahead(b + i)));          \
        } else if (sa == 1 && sb == 0) {                                          \
            const T y = b[0];                                                     \
            const mg_v##t vy = mg_v##t##_set1(y);                                 \
            (void)vy;                                                             \
            CASES(T, t, OP, VOP, A_AT, Y_ONLY, VA_AT, VY_ONLY, mg_prefetch_ahead(a + i)); \
        } else if (sa == 0 && sb == 1) {                                          \
            const T x = a[0];                                                     \
            const mg_v##t vx = mg_v##t##_set1(x);                                 \
            (void)vx;                                                             \
            CASES(T, t, OP, VOP, X_ONLY, B_AT, VX_ONLY, VB_AT, mg_prefetch_ahead(b + i)); \
        } else {                                                                  \
            for (int64_t i = 0; i < n; i++) out[i] = OP(a[i * sa], b[i * sb]);    \
        }                                                                         \
    }

#define DEFINE_BOTH_DTYPES(op, OP, CASES)                                         \
    DEFINE_BINARY_LOOP(op##_f32, float, f32, OP, CASES, mg_vf32_##op)             \
    DEFINE_BINARY_LOOP(op##_f64, double, f64, OP, CASES, mg_vf64_##op)

DEFINE_BOTH_DTYPES(add, ADD, VECTOR)
DEFINE_BOTH_DTYPES(sub, SUB, VECTOR)
DEFINE_BOTH_DTYPES(mul, MUL, VECTOR)
DEFINE_BOTH_DTYPES(div, DIV, VECTOR)
DEFINE_BOTH_DTYPES(max, MAX, PLAIN)
DEFINE_BOTH_DTYPES(min, MIN, PLAIN)

void MG_ISA_FN(mg_fill_elementwise)(mg_kernel_table *t) {
    const mg_binary_loop_fn loops[MG_NUM_BINARY_OPS][MG_NUM_DTYPES] = {
        {add_f32, add_f64}, {sub_f32, sub_f64}, {mul_f32, mul_f64},
        {div_f32, div_f64}, {max_f32, max_f64}, {min_f32, min_f64},
    };
    for (int op = 0; op < MG_NUM_BINARY_OPS; op++)
        for (int dt = 0; dt < MG_NUM_DTYPES; dt++) t->binary[op][dt] = loops[op][dt];
}
