/* tests/c/test_optim.c - the fused optimizer steps (api_optim.c,
 * cpu/optim.c): against naive loops of mg.h's formulas, the same bits on
 * every SIMD path and thread count, and the argument checks.
 * (tests/test_optim_kernels.py checks them against NumPy from Python.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { N = 100003 };   /* odd, and above the size that goes to the thread pool */

/* SGD with momentum 0.9, dampening 0.25, weight decay 0.01, Nesterov off, not the first step. */
static void naive_sgd_f32(float *p, const float *grad, float *buf, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + p[i] * 0.01f;
        buf[i] = buf[i] * 0.9f + (float)(1 - 0.25) * g;
        p[i] = p[i] - buf[i] * 0.1f;
    }
}

/* AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01) at step 5. */
static void naive_adamw_f64(double *p, const double *grad, double *m, double *v, int64_t n) {
    const double step_size = 1e-3 / (1 - pow(0.9, 5)), bc2 = sqrt(1 - pow(0.999, 5));
    for (int64_t i = 0; i < n; i++) {
        const double pi = p[i] * (1 - 1e-3 * 0.01), g = grad[i];
        m[i] = m[i] + (g - m[i]) * (1 - 0.9);
        v[i] = v[i] * 0.999 + (g * g) * (1 - 0.999);
        p[i] = pi - (m[i] / (sqrt(v[i]) / bc2 + 1e-8)) * step_size;
    }
}

/* The same values in [-1, 1) (in [0, 1) if positive) into f (if not NULL) and d. */
static void fill(float *f, double *d, int64_t n, unsigned seed, int positive) {
    srand(seed);
    for (int64_t i = 0; i < n; i++) {
        double x = (double)rand() / RAND_MAX * 2 - 1;
        if (positive) x = fabs(x);
        if (f) f[i] = (float)x;
        d[i] = x;
    }
}

TEST(optim_steps_match_naive_loops_on_every_isa_and_thread_count) {
    float *p = malloc(N * sizeof *p), *g = malloc(N * sizeof *g), *b = malloc(N * sizeof *b);
    float *p_ref = malloc(N * sizeof *p), *b_ref = malloc(N * sizeof *b);
    double *dp = malloc(N * sizeof *dp), *dg = malloc(N * sizeof *dg), *dm = malloc(N * sizeof *dm);
    double *dv = malloc(N * sizeof *dv), *dp_ref = malloc(N * sizeof *dp), *dm_ref = malloc(N * sizeof *dm);
    double *dv_ref = malloc(N * sizeof *dv);
    int isas[4];
    const int count = mg_test_isas(isas);
    for (int k = 0; k < count; k++) {
        for (int threads = 1; threads <= 3; threads++) {
            CHECK_STATUS(mg_set_isa(isas[k]), MG_OK);
            CHECK_STATUS(mg_set_num_threads(threads), MG_OK);
            fill(p, dp, N, 1, 0);
            fill(g, dg, N, 2, 0);
            fill(b, dm, N, 3, 0);
            fill(NULL, dv, N, 4, 1);             /* exp_avg_sq is never negative */
            memcpy(p_ref, p, N * sizeof *p);
            memcpy(b_ref, b, N * sizeof *b);
            memcpy(dp_ref, dp, N * sizeof *dp);
            memcpy(dm_ref, dm, N * sizeof *dm);
            memcpy(dv_ref, dv, N * sizeof *dv);
            CHECK_STATUS(mg_sgd_step(MG_F32, N, p, g, b, 0.1, 0.9, 0.25, 0.01, 0, 0), MG_OK);
            naive_sgd_f32(p_ref, g, b_ref, N);
            CHECK_MSG(!memcmp(p, p_ref, N * sizeof *p) && !memcmp(b, b_ref, N * sizeof *b),
                      "SGD differs from the naive loop (isa %d, %d threads)", isas[k], threads);
            CHECK_STATUS(mg_adam_step(MG_F64, N, dp, dg, dm, dv, 1e-3, 0.9, 0.999, 1e-8, 0.01, 5, 1), MG_OK);
            naive_adamw_f64(dp_ref, dg, dm_ref, dv_ref, N);
            CHECK_MSG(!memcmp(dp, dp_ref, N * sizeof *dp) && !memcmp(dm, dm_ref, N * sizeof *dm) &&
                      !memcmp(dv, dv_ref, N * sizeof *dv),
                      "AdamW differs from the naive loop (isa %d, %d threads)", isas[k], threads);
        }
    }
    free(p), free(g), free(b), free(p_ref), free(b_ref);
    free(dp), free(dg), free(dm), free(dv), free(dp_ref), free(dm_ref), free(dv_ref);
}

TEST(optim_steps_check_their_arguments) {
    float p[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1}, m[4] = {0}, v[4] = {0};
    CHECK_FAILS(mg_sgd_step(7, 4, p, g, NULL, 0.1, 0, 0, 0, 0, 0), MG_ERR_DTYPE, "mg_sgd_step");
    CHECK_FAILS(mg_sgd_step(MG_F32, -1, p, g, NULL, 0.1, 0, 0, 0, 0, 0), MG_ERR_ARG, "mg_sgd_step");
    CHECK_FAILS(mg_sgd_step(MG_F32, 4, p, NULL, NULL, 0.1, 0, 0, 0, 0, 0), MG_ERR_ARG, "grad is NULL");
    CHECK_FAILS(mg_sgd_step(MG_F32, 4, p, g, NULL, 0.1, 0.9, 0, 0, 0, 0), MG_ERR_ARG, "momentum_buffer");
    CHECK_FAILS(mg_sgd_step(MG_F32, 4, p, g, NULL, INFINITY, 0, 0, 0, 0, 0), MG_ERR_ARG, "lr must be finite");
    CHECK_FAILS(mg_adam_step(MG_F32, 4, p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0), MG_ERR_ARG, "step");
    CHECK_FAILS(mg_adam_step(MG_F32, 4, p, g, m, v, 1e-3, -0.1, 0.999, 1e-8, 0, 1, 0), MG_ERR_ARG, "betas");
    CHECK_FAILS(mg_adam_step(MG_F32, 4, p, g, m, NULL, 1e-3, 0.9, 0.999, 1e-8, 0, 1, 0), MG_ERR_ARG,
                "exp_avg_sq is NULL");
    CHECK(p[0] == 1 && p[3] == 4);                      /* nothing was written */
    CHECK_STATUS(mg_sgd_step(MG_F32, 0, NULL, NULL, NULL, 0.1, 0.9, 0, 0, 0, 0), MG_OK);   /* n = 0 */
    CHECK_STATUS(mg_sgd_step(MG_F32, 4, p, g, NULL, 0.5, 0, 0, 0, 0, 0), MG_OK);
    CHECK(p[0] == 0.5f && p[3] == 3.5f);
}
