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

void MG_ISA_FN(mg_fill_reduce)(mg_kernel_table *t) {
    t->sum_lanes[0] = sum_lanes_f32;
    t->sum_lanes[1] = sum_lanes_f64;
}
