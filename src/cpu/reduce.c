/* cpu/reduce.c - reduction loops.
 *
 * sum_lanes: lanes[j] += x[i] for i = j (mod 8), i in [0, n). Eight running
 * float64 sums that do not depend on each other: the compiler maps them onto
 * one AVX-512 register, two AVX2 registers or four NEON registers, and every
 * mapping adds the same numbers in the same order, so all ISAs give the same
 * bits. float32 input is widened to float64 before it is added. */
#include "kernels.h"

#define DEFINE_SUM_LANES(name, T)                                             \
    static void name(const void *x_, int64_t n, double lanes[MG_SUM_LANES]) { \
        const T *restrict x = x_;                                             \
        double acc[MG_SUM_LANES];                                             \
        for (int j = 0; j < MG_SUM_LANES; j++) acc[j] = lanes[j];             \
        int64_t i = 0;                                                        \
        for (; i + MG_SUM_LANES <= n; i += MG_SUM_LANES)                      \
            for (int j = 0; j < MG_SUM_LANES; j++) acc[j] += (double)x[i + j];\
        for (int j = 0; i + j < n; j++) acc[j] += (double)x[i + j];           \
        for (int j = 0; j < MG_SUM_LANES; j++) lanes[j] = acc[j];             \
    }

DEFINE_SUM_LANES(sum_lanes_f32, float)
DEFINE_SUM_LANES(sum_lanes_f64, double)

/* ---- reductions over axes (api_reduce.c drives them) ---------------------
 * reduce_lanes: the eight-lane pattern above, for sum, max and min and any
 * stride; element i always goes to lane i % 8, so the bits do not depend on
 * the stride, the ISA or how the caller cut the work.
 * reduce_rows: acc[j] op= x[j * stride], one row of an outer reduction. */

#define SUM(acc, v) ((acc) + (v))
/* NaN in either gives NaN (acc + v is NaN exactly then), as torch.amax. */
#define MAX(acc, v) (((acc) != (acc) || (v) != (v)) ? (acc) + (v) : ((v) > (acc) ? (v) : (acc)))
#define MIN(acc, v) (((acc) != (acc) || (v) != (v)) ? (acc) + (v) : ((v) < (acc) ? (v) : (acc)))

#define DEFINE_REDUCE_LANES(name, T, OP)                                      \
    static void name(const void *x_, int64_t n, int64_t stride,               \
                     double lanes[MG_SUM_LANES]) {                            \
        const T *restrict x = x_;                                             \
        double acc[MG_SUM_LANES];                                             \
        for (int j = 0; j < MG_SUM_LANES; j++) acc[j] = lanes[j];             \
        int64_t i = 0;                                                        \
        if (stride == 1) {                                                    \
            for (; i + MG_SUM_LANES <= n; i += MG_SUM_LANES)                  \
                for (int j = 0; j < MG_SUM_LANES; j++)                        \
                    acc[j] = OP(acc[j], (double)x[i + j]);                    \
        } else {                                                              \
            for (; i + MG_SUM_LANES <= n; i += MG_SUM_LANES)                  \
                for (int j = 0; j < MG_SUM_LANES; j++)                        \
                    acc[j] = OP(acc[j], (double)x[(i + j) * stride]);         \
        }                                                                     \
        for (int j = 0; i + j < n; j++)                                       \
            acc[j] = OP(acc[j], (double)x[(i + j) * stride]);                 \
        for (int j = 0; j < MG_SUM_LANES; j++) lanes[j] = acc[j];             \
    }

#define DEFINE_REDUCE_ROWS(name, T, OP)                                       \
    static void name(const void *x_, int64_t n, int64_t stride, double *acc) {\
        const T *restrict x = x_;                                             \
        if (stride == 1) {                                                    \
            for (int64_t j = 0; j < n; j++) acc[j] = OP(acc[j], (double)x[j]);\
        } else {                                                              \
            for (int64_t j = 0; j < n; j++)                                   \
                acc[j] = OP(acc[j], (double)x[j * stride]);                   \
        }                                                                     \
    }

#define DEFINE_REDUCE(op, OP)                                                 \
    DEFINE_REDUCE_LANES(op##_lanes_f32, float, OP)                            \
    DEFINE_REDUCE_LANES(op##_lanes_f64, double, OP)                           \
    DEFINE_REDUCE_ROWS(op##_rows_f32, float, OP)                              \
    DEFINE_REDUCE_ROWS(op##_rows_f64, double, OP)

DEFINE_REDUCE_LANES(sum_lanes_f32_any, float, SUM)
DEFINE_REDUCE_LANES(sum_lanes_f64_any, double, SUM)
DEFINE_REDUCE_ROWS(sum_rows_f32, float, SUM)
DEFINE_REDUCE_ROWS(sum_rows_f64, double, SUM)
DEFINE_REDUCE(max, MAX)
DEFINE_REDUCE(min, MIN)

void MG_ISA_FN(mg_fill_reduce)(mg_kernel_table *t) {
    t->sum_lanes[0] = sum_lanes_f32;
    t->sum_lanes[1] = sum_lanes_f64;
    const mg_reduce_lanes_fn lanes[MG_NUM_REDUCE_OPS][MG_NUM_DTYPES] = {
        {sum_lanes_f32_any, sum_lanes_f64_any}, {max_lanes_f32, max_lanes_f64},
        {min_lanes_f32, min_lanes_f64}};
    const mg_reduce_rows_fn rows[MG_NUM_REDUCE_OPS][MG_NUM_DTYPES] = {
        {sum_rows_f32, sum_rows_f64}, {max_rows_f32, max_rows_f64}, {min_rows_f32, min_rows_f64}};
    for (int op = 0; op < MG_NUM_REDUCE_OPS; op++)
        for (int dt = 0; dt < MG_NUM_DTYPES; dt++) {
            t->reduce_lanes[op][dt] = lanes[op][dt];
            t->reduce_rows[op][dt] = rows[op][dt];
        }
}
