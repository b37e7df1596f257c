/* tests/c/test_unary.c - the maps of api_unary.c / cpu/unary.c at the C
 * level: pow against naive loops, every SIMD path and thread count giving
 * the same bits (pow, and the float32 transcendentals on inputs of every
 * kind, with exp's error bound), and the argument checks.
 * (tests/test_unary_reduce_kernels.py checks all the transcendentals'
 * accuracy from Python, on more points.) */
#include <float.h>
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

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

/* The ulp of float32 at |f| (2^-149 at and below the subnormals). */
static double ulp_f32(float f) {
    const float a = fabsf(f);
    if (a < 0x1p-126f) return 0x1p-149;
    return a == FLT_MAX ? 0x1p104 : (double)nextafterf(a, INFINITY) - a;
}

/* Spread bit patterns (every sign, exponent and NaN payload), windows of
 * consecutive floats where exp overflows, turns subnormal and vanishes, and
 * the infinities. */
static int64_t float32_of_every_kind(float *x, int64_t capacity) {
    static const float edges[] = {88.72283f, -87.33655f, -103.97208f, 0.0f, 0.625f, -9.01f};
    int64_t n = 0;
    for (uint32_t i = 0; n < capacity - 6 * 4001 - 2; i++) x[n++] = float_of(i * 2654435761u);
    for (size_t e = 0; e < sizeof edges / sizeof *edges; e++)
        for (int d = -2000; d <= 2000; d++) x[n++] = float_of(bits_of(edges[e]) + (uint32_t)d);
    x[n++] = INFINITY;
    x[n++] = -INFINITY;
    return n;
}

TEST(float32_transcendentals_same_bits_on_every_isa) {
    enum { M = 200003 };
    const int ops[] = {MG_UNARY_EXP, MG_UNARY_LOG, MG_UNARY_TANH, MG_UNARY_SIGMOID};
    float *x = malloc(sizeof(float) * M), *want = malloc(sizeof(float) * M), *got = malloc(sizeof(float) * M);
    const int64_t n = float32_of_every_kind(x, M);
    int isas[4];
    const int nisa = mg_test_isas(isas);
    for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
        CHECK_STATUS(mg_set_isa(MG_ISA_SCALAR), MG_OK);
        CHECK_STATUS(mg_set_num_threads(1), MG_OK);
        CHECK_STATUS(mg_unary(ops[o], MG_F32, n, x, want), MG_OK);
        for (int k = 0; k < nisa; k++) {
            CHECK_STATUS(mg_set_isa(isas[k]), MG_OK);
            for (int threads = 1; threads <= 3; threads += 2) {
                CHECK_STATUS(mg_set_num_threads(threads), MG_OK);
                CHECK_STATUS(mg_unary(ops[o], MG_F32, n, x, got), MG_OK);
                int64_t bad = 0, first = -1;
                for (int64_t i = 0; i < n; i++)
                    if (!same_f32(got[i], want[i])) bad++, first = first < 0 ? i : first;
                CHECK_MSG(bad == 0, "op %d, isa %d, %d threads: %lld values differ from scalar, first "
                          "x = %a: %a vs %a", ops[o], isas[k], threads, (long long)bad,
                          first < 0 ? 0.0 : x[first], first < 0 ? 0.0 : got[first], first < 0 ? 0.0 : want[first]);
            }
        }
    }
    /* exp: within 1.5 ulp of the exact value (exp in double is within 1 ulp
     * of double, far below a float ulp); NaN exactly for NaN. */
    CHECK_STATUS(mg_set_isa(MG_ISA_SCALAR), MG_OK);
    CHECK_STATUS(mg_unary(MG_UNARY_EXP, MG_F32, n, x, got), MG_OK);
    double worst = 0;
    int64_t worst_i = 0;
    for (int64_t i = 0; i < n; i++) {
        const double exact = exp((double)x[i]);
        double err;
        if (isnan(x[i])) err = isnan(got[i]) ? 0 : INFINITY;
        else if (isinf((float)exact)) err = isinf(got[i]) ? 0 : got[i] == FLT_MAX ? 1 : INFINITY;
        else err = fabs((double)got[i] - exact) / ulp_f32((float)exact);
        if (!(err <= worst)) worst = err, worst_i = i;
    }
    CHECK_MSG(worst <= 1.5, "exp(%a) = %a: %.3g ulp from %a", x[worst_i], got[worst_i], worst, exp((double)x[worst_i]));
    CHECK_STATUS(mg_set_isa(isas[nisa - 1]), MG_OK);
    free(x), free(want), free(got);
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
