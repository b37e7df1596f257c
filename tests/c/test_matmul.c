/* tests/c/test_matmul.c - mg_matmul against a naive triple loop, on every
 * SIMD path this machine can run, with transposed, negative and broadcast
 * strides, plus the argument checks. Returns non-zero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static double uniform(unsigned *state) {
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xFFFF) / 32768.0 - 1.0;
}

/* A product of the given shape, A and B in buffers big enough for any of
 * the layouts below; layout bits: 1 = A transposed, 2 = B transposed,
 * 4 = A read backwards along k (negative stride), 8 = B broadcast. */
typedef struct {
    int dtype;
    int64_t batch, m, n, k;
    int layout, accumulate;
} problem;

static double get(const void *p, int dtype, int64_t i) {
    return dtype == 0 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static void set(void *p, int dtype, int64_t i, double v) {
    if (dtype == 0) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
}

/* Runs one problem with the current ISA and thread count; checks against
 * the naive loop and returns C (caller frees) for the bitwise comparisons. */
static void *run_problem(const problem *pr, unsigned seed) {
    const int64_t B = pr->batch, M = pr->m, N = pr->n, K = pr->k, item = pr->dtype == 0 ? 4 : 8;
    const int64_t b_count = pr->layout & 8 ? 1 : B;
    void *a = malloc((size_t)(B * M * K + 1) * item), *b = malloc((size_t)(b_count * K * N + 1) * item);
    void *c = malloc((size_t)(B * M * N + 1) * item);
    double *ref = malloc((size_t)(B * M * N + 1) * sizeof *ref), *mag = malloc((size_t)(B * M * N + 1) * sizeof *mag);
    for (int64_t i = 0; i < B * M * K; i++) set(a, pr->dtype, i, uniform(&seed));
    for (int64_t i = 0; i < b_count * K * N; i++) set(b, pr->dtype, i, uniform(&seed));
    for (int64_t i = 0; i < B * M * N; i++) set(c, pr->dtype, i, uniform(&seed));
    /* strides: A stored (m, k) row-major, or (k, m) when transposed; B likewise */
    int64_t ars = K, acs = 1, brs = N, bcs = 1, a_off = 0;
    if (pr->layout & 1) ars = 1, acs = M;
    if (pr->layout & 2) brs = 1, bcs = K;
    if (pr->layout & 4) a_off = (K - 1) * acs, acs = -acs;   /* A(i,p) is stored at p' = K-1-p */
    const int64_t bbs = pr->layout & 8 ? 0 : K * N;
    for (int64_t t = 0; t < B; t++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = pr->accumulate ? get(c, pr->dtype, (t * M + i) * N + j) : 0.0, s_abs = fabs(s);
                for (int64_t p = 0; p < K; p++) {
                    const double x = get(a, pr->dtype, t * M * K + a_off + i * ars + p * acs);
                    const double y = get(b, pr->dtype, t * bbs + p * brs + j * bcs);
                    s += x * y;
                    s_abs += fabs(x * y);
                }
                ref[(t * M + i) * N + j] = s;
                mag[(t * M + i) * N + j] = s_abs;
            }
    const mg_status st = mg_matmul(pr->dtype, B, M, N, K, (char *)a + a_off * item, M * K, ars, acs,
                                   b, bbs, brs, bcs, c, M * N, N, pr->accumulate);
    CHECK_MSG(st == MG_OK, "mg_matmul failed: %s", mg_last_error());
    const double eps = pr->dtype == 0 ? 0x1p-24 : 0x1p-53;
    for (int64_t i = 0; i < B * M * N && st == MG_OK; i++) {
        const double got = get(c, pr->dtype, i), bound = 2.0 * (K + 2) * eps * mag[i] + 1e-30;
        if (!(fabs(got - ref[i]) <= bound)) {
            CHECK_MSG(0, "dtype %d batch %lld m %lld n %lld k %lld layout %d acc %d: C[%lld] = %.17g, want %.17g",
                  pr->dtype, (long long)B, (long long)M, (long long)N, (long long)K, pr->layout,
                  pr->accumulate, (long long)i, got, ref[i]);
            break;
        }
    }
    free(a), free(b), free(ref), free(mag);
    return c;
}

TEST(matmul_against_naive) {
    static const int64_t shapes[][4] = {   /* batch, m, n, k */
        {1, 1, 1, 1}, {1, 7, 33, 5}, {1, 5, 3, 1000}, {1, 33, 1, 7}, {1, 1, 40, 33},
        {3, 7, 7, 7}, {2, 33, 17, 40}, {1, 70, 150, 300}, {2, 100, 37, 520}, {4, 13, 30, 9},
        {1, 300, 200, 64}, {1, 6, 1100, 70}, {2, 2, 300, 50}, {1, 300, 1, 500}, {1, 3500, 20, 8},
    };
    mg_backend_info_t info;
    mg_get_backend_info(&info);
    for (int isa = 0; isa < 4; isa++) {
        if (!(info.available_isas & (1u << isa))) continue;
        CHECK_MSG(mg_set_isa(isa) == MG_OK, "mg_set_isa(%d): %s", isa, mg_last_error());
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int dtype = 0; dtype < 2; dtype++)
                for (int layout = 0; layout < 16; layout += (s % 2 ? 3 : 5)) {
                    const problem pr = {dtype, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3],
                                        layout, (int)((s + layout) % 2)};
                    void *first = NULL;
                    for (int threads = 1; threads <= 3; threads++) {   /* same bits for any count */
                        mg_set_num_threads(threads);
                        void *c = run_problem(&pr, (unsigned)(s * 31 + layout));
                        const size_t bytes = (size_t)(pr.batch * pr.m * pr.n) * (dtype == 0 ? 4 : 8);
                        if (first) {
                            CHECK_MSG(memcmp(first, c, bytes) == 0, "isa %d shape %zu layout %d: %d threads differ",
                                  isa, s, layout, threads);
                            free(c);
                        } else {
                            first = c;
                        }
                    }
                    free(first);
                }
    }
    mg_set_isa(info.active_isa);
    mg_set_num_threads(info.num_threads);
}

TEST(matmul_k_zero) {
    double c[6] = {1, 2, 3, 4, 5, 6}, a[1], b[1];
    CHECK_MSG(mg_matmul(1, 1, 2, 3, 0, a, 0, 0, 1, b, 0, 3, 1, c, 0, 3, 1) == MG_OK, "k=0 accumulate");
    CHECK_MSG(c[5] == 6.0, "k=0 with accumulate must leave C alone");
    CHECK_MSG(mg_matmul(1, 1, 2, 3, 0, NULL, 0, 0, 1, NULL, 0, 3, 1, c, 0, 3, 0) == MG_OK, "k=0");
    for (int i = 0; i < 6; i++) CHECK_MSG(c[i] == 0.0, "k=0 must give C = 0");
    CHECK_MSG(mg_matmul(1, 1, 0, 3, 4, NULL, 0, 4, 1, NULL, 0, 3, 1, NULL, 0, 3, 0) == MG_OK, "m=0 is a no-op");
}

static void expect(mg_status want, mg_status got, const char *what) {
    CHECK_MSG(got == want, "%s: status %d, want %d (%s)", what, (int)got, (int)want, mg_last_error());
    CHECK_MSG(want == MG_OK || strstr(mg_last_error(), "mg_matmul"), "%s: message '%s' lacks the function name",
          what, mg_last_error());
}

TEST(matmul_argument_checks) {
    float a[64] = {0}, b[64] = {0}, c[64] = {0};
    expect(MG_ERR_DTYPE, mg_matmul(2, 1, 2, 2, 2, a, 0, 2, 1, b, 0, 2, 1, c, 0, 2, 0), "bad dtype");
    expect(MG_ERR_SHAPE, mg_matmul(0, 1, -1, 2, 2, a, 0, 2, 1, b, 0, 2, 1, c, 0, 2, 0), "negative m");
    expect(MG_ERR_SHAPE, mg_matmul(0, -2, 1, 2, 2, a, 0, 2, 1, b, 0, 2, 1, c, 0, 2, 0), "negative batch");
    expect(MG_ERR_SHAPE, mg_matmul(0, 1, 1, 2, -2, a, 0, 2, 1, b, 0, 2, 1, c, 0, 2, 0), "negative k");
    expect(MG_ERR_ARG, mg_matmul(0, 1, 2, 2, 2, NULL, 0, 2, 1, b, 0, 2, 1, c, 0, 2, 0), "NULL a");
    expect(MG_ERR_ARG, mg_matmul(0, 1, 2, 2, 2, a, 0, 2, 1, b, 0, 2, 1, NULL, 0, 2, 0), "NULL c");
    expect(MG_ERR_ARG, mg_matmul(0, 1, 2, 3, 2, a, 0, 2, 1, b, 0, 3, 1, c, 0, 2, 0), "C rows overlap");
    expect(MG_ERR_ARG, mg_matmul(0, 2, 2, 2, 2, a, 4, 2, 1, b, 4, 2, 1, c, 3, 2, 0), "C matrices overlap");
    expect(MG_ERR_ARG, mg_matmul(0, 2, 2, 2, 2, a, 4, 2, 1, b, 4, 2, 1, c, 0, 2, 0), "C batch stride 0");
    expect(MG_ERR_SHAPE, mg_matmul(0, 1, 3, 2, 2, a, 0, INT64_MAX / 2, 1, b, 0, 2, 1, c, 0, 2, 0),
           "A strides overflow");
    expect(MG_ERR_SHAPE, mg_matmul(0, 1, 2, 2, 3, a, 0, 2, 1, b, 0, INT64_MIN, 1, c, 0, 2, 0),
           "B stride INT64_MIN");
    expect(MG_ERR_SHAPE, mg_matmul(1, 1, 2, 2, 2, a, 0, 2, INT64_MAX / 4, b, 0, 2, 1, c, 0, 2, 0),
           "A bytes overflow");
    expect(MG_OK, mg_matmul(0, 1, 2, 2, 2, a, 0, 2, 1, b, 0, 2, 1, c, 0, 2, 0), "a valid call");
}
