/* tests/c/test_unary.c - the maps of api_unary.c / cpu/unary.c at the C
 * level: pow against naive loops, every SIMD path and thread count giving
 * the same bits, and the argument checks. (tests/test_unary_reduce_kernels.py
 * checks the transcendentals' accuracy from Python.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { N = 100003 };   /* odd, and above the size that goes to the thread pool */

static const double EXPONENTS[] = {0, 1, 2, 3, 0.5, -0.5, -1, -2, 2.5, -1.3, 7};

/* x^p as mg_pow_scalar promises: the shortcut's formula, else pow. */
static double naive_pow(double x, double p) {
    if (p == 0) return 1;
    if (p == 1) return x;
    if (p == 2) return x * x;
    if (p == 3) return x * x * x;
    if (p == 0.5) return sqrt(x);
    if (p == -0.5) return 1 / sqrt(x);
    if (p == -1) return 1 / x;
    if (p == -2) return 1 / (x * x);
    return pow(x, p);
}

static float naive_pow_f32(float x, float p) {
    if (p == 0) return 1;
    if (p == 1) return x;
    if (p == 2) return x * x;
    if (p == 3) return x * x * x;
    if (p == 0.5f) return sqrtf(x);
    if (p == -0.5f) return 1 / sqrtf(x);
    if (p == -1) return 1 / x;
    if (p == -2) return 1 / (x * x);
    return (float)pow((double)x, (double)p);
}

static int same_f64(double a, double b) { return a == b || (isnan(a) && isnan(b)); }
static int same_f32(float a, float b) { return a == b || (isnan(a) && isnan(b)); }

TEST(pow_scalar_and_backward_match_naive_on_every_isa) {
    double *x = malloc(sizeof(double) * N), *g = malloc(sizeof(double) * N), *out = malloc(sizeof(double) * N);
    float *xf = malloc(sizeof(float) * N), *gf = malloc(sizeof(float) * N), *outf = malloc(sizeof(float) * N);
    uint64_t rng = 11;
    for (int i = 0; i < N; i++) {
        x[i] = 3 * mg_test_uniform(&rng);          /* negative bases too: NaN for fractional p */
        g[i] = mg_test_uniform(&rng);
        xf[i] = (float)x[i];
        gf[i] = (float)g[i];
    }
    x[0] = xf[0] = 0;
    x[1] = xf[1] = INFINITY;
    x[2] = xf[2] = NAN;
    int isas[4];
    const int nisa = mg_test_isas(isas);
    for (int k = 0; k < nisa; k++) {
        CHECK_STATUS(mg_set_isa(isas[k]), MG_OK);
        for (int threads = 1; threads <= 3; threads += 2) {
            CHECK_STATUS(mg_set_num_threads(threads), MG_OK);
            for (size_t e = 0; e < sizeof EXPONENTS / sizeof *EXPONENTS; e++) {
                const double p = EXPONENTS[e];
                const float pf = (float)p;
                int bad = 0, badf = 0, bad_grad = 0, badf_grad = 0;
                CHECK_STATUS(mg_pow_scalar(MG_F64, N, x, p, out), MG_OK);
                CHECK_STATUS(mg_pow_scalar(MG_F32, N, xf, p, outf), MG_OK);
                for (int i = 0; i < N; i++) {
                    bad += !same_f64(out[i], naive_pow(x[i], p));
                    badf += !same_f32(outf[i], naive_pow_f32(xf[i], pf));
                }
                CHECK_STATUS(mg_pow_scalar_backward(MG_F64, N, x, g, p, out), MG_OK);
                CHECK_STATUS(mg_pow_scalar_backward(MG_F32, N, xf, gf, p, outf), MG_OK);
                for (int i = 0; i < N; i++) {
                    const double want = p == 0 ? 0 : g[i] * (p * naive_pow(x[i], p - 1));
                    const float wantf = pf == 0 ? 0 : gf[i] * (pf * naive_pow_f32(xf[i], pf - 1));
                    bad_grad += !same_f64(out[i], want);
                    badf_grad += !same_f32(outf[i], wantf);
                }
                CHECK_MSG(bad + badf + bad_grad + badf_grad == 0,
                          "isa %d, %d threads, p = %g: %d / %d (f64 / f32) values and %d / %d gradients differ",
                          isas[k], threads, p, bad, badf, bad_grad, badf_grad);
            }
        }
    }
    free(x), free(g), free(out), free(xf), free(gf), free(outf);
}

TEST(pow_tensor_exponent_matches_c_library) {
    enum { M = 1001 };
    double x[M], y[M], out[M];
    float xf[M], yf[M], outf[M];
    uint64_t rng = 12;
    for (int i = 0; i < M; i++) {
        x[i] = 2 * mg_test_uniform(&rng) + 2;
        y[i] = 4 * mg_test_uniform(&rng);
        xf[i] = (float)x[i];
        yf[i] = (float)y[i];
    }
    CHECK_STATUS(mg_pow(MG_F64, M, x, y, out), MG_OK);
    CHECK_STATUS(mg_pow(MG_F32, M, xf, yf, outf), MG_OK);
    int bad = 0;
    for (int i = 0; i < M; i++)
        bad += out[i] != pow(x[i], y[i]) || outf[i] != (float)pow((double)xf[i], (double)yf[i]);
    CHECK_MSG(bad == 0, "%d elements differ", bad);
}

TEST(pow_argument_errors) {
    double x[2] = {1, 2}, out[2];
    CHECK_FAILS(mg_pow_scalar(7, 2, x, 2.0, out), MG_ERR_DTYPE, "mg_pow_scalar");
    CHECK_FAILS(mg_pow_scalar(MG_F64, -1, x, 2.0, out), MG_ERR_ARG, "mg_pow_scalar");
    CHECK_FAILS(mg_pow_scalar(MG_F64, 2, NULL, 2.0, out), MG_ERR_ARG, "mg_pow_scalar");
    CHECK_FAILS(mg_pow_scalar_backward(MG_F64, 2, x, NULL, 2.0, out), MG_ERR_ARG, "mg_pow_scalar_backward");
    CHECK_FAILS(mg_pow(MG_F64, 2, x, NULL, out), MG_ERR_ARG, "mg_pow");
    CHECK_STATUS(mg_pow(MG_F64, 0, NULL, NULL, NULL), MG_OK);          /* nothing to do */
}
