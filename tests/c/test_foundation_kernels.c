/* tests/c/test_foundation_kernels.c - binary ops and sum against naive loops,
 * on every SIMD path this CPU runs and for 1, 2 and 3 threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- the reference: one element at a time, in the dtype's precision ----- */

#define NAIVE_OP(T)                                                         \
    static T naive_##T(int op, T x, T y) {                                  \
        switch (op) {                                                       \
        case MG_OP_ADD: return x + y;                                       \
        case MG_OP_SUB: return x - y;                                       \
        case MG_OP_MUL: return x * y;                                       \
        case MG_OP_DIV: return x / y;                                       \
        case MG_OP_MAX: return isnan(x) || isnan(y) ? (T)NAN : x > y ? x : y; \
        default: return isnan(x) || isnan(y) ? (T)NAN : x < y ? x : y;      \
        }                                                                   \
    }
NAIVE_OP(float)
NAIVE_OP(double)

static size_t itemsize(int dtype) { return dtype == MG_F32 ? 4 : 8; }

static void naive_element(int op, int dtype, const char *a, const char *b, char *out) {
    if (dtype == MG_F32) {
        float x, y, r;
        memcpy(&x, a, 4), memcpy(&y, b, 4);
        r = naive_float(op, x, y);
        memcpy(out, &r, 4);
    } else {
        double x, y, r;
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        r = naive_double(op, x, y);
        memcpy(out, &r, 8);
    }
}

static int is_nan(int dtype, const char *p) {
    if (dtype == MG_F32) { float v; memcpy(&v, p, 4); return isnan(v); }
    double v;
    memcpy(&v, p, 8);
    return isnan(v);
}

/* Index of the first element whose bits differ (any NaN equals any NaN), or -1. */
static int64_t first_mismatch(int dtype, const void *got, const void *want, int64_t n) {
    const size_t item = itemsize(dtype);
    for (int64_t i = 0; i < n; i++) {
        const char *g = (const char *)got + i * item, *w = (const char *)want + i * item;
        if (memcmp(g, w, item) != 0 && !(is_nan(dtype, g) && is_nan(dtype, w))) return i;
    }
    return -1;
}

static void fill_random(int dtype, void *buf, int64_t n, uint64_t *rng) {
    for (int64_t i = 0; i < n; i++) {
        const double v = mg_test_uniform(rng) * 100.0;
        if (dtype == MG_F32) ((float *)buf)[i] = (float)v;
        else ((double *)buf)[i] = v;
    }
}

static const char *const op_names[] = {"add", "sub", "mul", "div", "max", "min"};

/* ---- contiguous --------------------------------------------------------- */

TEST(binary_contig_vs_naive) {
    const int64_t sizes[] = {1, 7, 33, 1000, 100003};
    const int64_t max_n = 100003;
    uint64_t rng = 7;
    int isas[4];
    const int nisa = mg_test_isas(isas);
    for (int dtype = 0; dtype < 2; dtype++) {
        const size_t item = itemsize(dtype);
        char *a = malloc(max_n * item), *b = malloc(max_n * item);
        char *got = malloc(max_n * item), *want = malloc(max_n * item);
        fill_random(dtype, a, max_n, &rng);
        fill_random(dtype, b, max_n, &rng);
        for (int op = 0; op < 6; op++) {
            for (int64_t i = 0; i < max_n; i++)
                naive_element(op, dtype, a + i * item, b + i * item, want + i * item);
            for (int k = 0; k < nisa; k++)
                for (int threads = 1; threads <= 3; threads++)
                    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                        const int64_t n = sizes[s];
                        CHECK_STATUS(mg_set_isa(isas[k]), MG_OK);
                        CHECK_STATUS(mg_set_num_threads(threads), MG_OK);
                        memset(got, 0xFF, n * item);
                        CHECK_STATUS(mg_binary_contig(op, dtype, n, a, b, got), MG_OK);
                        const int64_t bad = first_mismatch(dtype, got, want, n);
                        CHECK_MSG(bad < 0, "%s dtype %d n=%lld isa %d threads %d: element %lld differs",
                                  op_names[op], dtype, (long long)n, isas[k], threads, (long long)bad);
                    }
        }
        free(a), free(b), free(got), free(want);
    }
}

/* ---- broadcasting and strides ------------------------------------------- */

typedef struct {
    char *buf;                 /* the whole allocation */
    const char *origin;        /* the element at index (0, ..., 0) */
    int64_t strides[MG_TEST_MAX_NDIM];
} operand;

/* Lays an operand of `shape` out in memory at random: axes in a random
 * order, some broadcast (stride 0), some reversed (negative stride), some
 * with gaps, then fills it with random numbers. */
static operand make_operand(int dtype, int ndim, const int64_t *shape, uint64_t *rng) {
    operand o;
    int order[MG_TEST_MAX_NDIM];
    for (int d = 0; d < ndim; d++) order[d] = d;
    if (mg_test_rand(rng) % 2)
        for (int d = ndim - 1; d > 0; d--) {
            const int e = (int)(mg_test_rand(rng) % (uint64_t)(d + 1)), t = order[d];
            order[d] = order[e], order[e] = t;
        }
    int64_t step = 1 + (int64_t)(mg_test_rand(rng) % 4 == 0);
    for (int k = ndim - 1; k >= 0; k--) {
        const int d = order[k];
        if (mg_test_rand(rng) % 4 == 0) { o.strides[d] = 0; continue; }
        o.strides[d] = step;
        step *= shape[d] + (int64_t)(mg_test_rand(rng) % 5 == 0);
    }
    int64_t span = 1, base = 0;
    for (int d = 0; d < ndim; d++) {
        if (mg_test_rand(rng) % 4 == 0) o.strides[d] = -o.strides[d];
        const int64_t reach = (shape[d] - 1) * llabs(o.strides[d]);
        span += reach;
        if (o.strides[d] < 0) base += reach;
    }
    o.buf = malloc((size_t)span * itemsize(dtype));
    fill_random(dtype, o.buf, span, rng);
    o.origin = o.buf + base * (int64_t)itemsize(dtype);
    return o;
}

static void naive_binary(int op, int dtype, int ndim, const int64_t *shape, const operand *a,
                         const operand *b, int64_t total, char *out) {
    const int64_t item = (int64_t)itemsize(dtype);
    for (int64_t i = 0; i < total; i++) {
        int64_t rest = i, off_a = 0, off_b = 0;
        for (int d = ndim - 1; d >= 0; d--) {
            const int64_t index = rest % shape[d];
            rest /= shape[d];
            off_a += index * a->strides[d];
            off_b += index * b->strides[d];
        }
        naive_element(op, dtype, a->origin + off_a * item, b->origin + off_b * item, out + i * item);
    }
}

/* Up to 6 per axis; a big shape (60k to 160k elements, enough to go to the
 * thread pool) has axes of 300 and 257, or one of 77100, and the rest 1 or 2. */
static void random_shape(int ndim, int64_t *shape, uint64_t *rng, int big) {
    for (int d = 0; d < ndim; d++) shape[d] = 1 + (int64_t)(mg_test_rand(rng) % (big ? 2 : 6));
    if (mg_test_rand(rng) % 5 == 0) shape[mg_test_rand(rng) % (uint64_t)ndim] = 1;
    if (big) {
        for (int d = 0, twos = 0; d < ndim; d++)
            if (shape[d] == 2 && twos++) shape[d] = 1;
        const int i = (int)(mg_test_rand(rng) % (uint64_t)ndim), j = (int)(mg_test_rand(rng) % (uint64_t)ndim);
        shape[i] = 300;
        shape[j] = i == j ? 300 * 257 : 257;
    }
}

static void check_strided_case(int op, int dtype, int ndim, const int64_t *shape, uint64_t *rng,
                               const int *isas, int nisa) {
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) total *= shape[d];
    operand a = make_operand(dtype, ndim, shape, rng), b = make_operand(dtype, ndim, shape, rng);
    const size_t item = itemsize(dtype);
    char *want = malloc(total * item), *got = malloc(total * item);
    naive_binary(op, dtype, ndim, shape, &a, &b, total, want);
    for (int k = 0; k < nisa; k++)
        for (int threads = 1; threads <= 3; threads++) {
            CHECK_STATUS(mg_set_isa(isas[k]), MG_OK);
            CHECK_STATUS(mg_set_num_threads(threads), MG_OK);
            memset(got, 0xFF, total * item);
            CHECK_STATUS(mg_binary(op, dtype, ndim, shape, a.origin, a.strides, b.origin, b.strides, got), MG_OK);
            const int64_t bad = first_mismatch(dtype, got, want, total);
            CHECK_MSG(bad < 0, "%s dtype %d ndim %d (%lld elements) isa %d threads %d: element %lld differs",
                      op_names[op], dtype, ndim, (long long)total, isas[k], threads, (long long)bad);
        }
    free(a.buf), free(b.buf), free(want), free(got);
}

TEST(binary_broadcast_strided_vs_naive) {
    uint64_t rng = 2024;
    int isas[4];
    const int nisa = mg_test_isas(isas);
    int64_t shape[MG_TEST_MAX_NDIM];
    for (int c = 0; c < 120; c++) {
        const int ndim = 1 + (int)(mg_test_rand(&rng) % 6);
        random_shape(ndim, shape, &rng, c % 12 == 0);
        check_strided_case(c % 6, (c / 6) % 2, ndim, shape, &rng, isas, nisa);
    }
    /* 16 axes, with every other one of size 2. */
    for (int d = 0; d < MG_TEST_MAX_NDIM; d++) shape[d] = d % 2 ? 2 : 1;
    check_strided_case(MG_OP_ADD, MG_F64, MG_TEST_MAX_NDIM, shape, &rng, isas, nisa);
}

TEST(binary_scalar_and_full_broadcast) {
    /* ndim = 0 is one element; a (1, n) row against an (m, 1) column. */
    double x = 3, y = 4, r = 0;
    CHECK_STATUS(mg_binary(MG_OP_MUL, MG_F64, 0, NULL, &x, NULL, &y, NULL, &r), MG_OK);
    CHECK(r == 12);
    enum { M = 300, N = 301 };
    float row[N], col[M];
    float *out = malloc(sizeof(float) * M * N);
    for (int j = 0; j < N; j++) row[j] = (float)j;
    for (int i = 0; i < M; i++) col[i] = (float)i * 0.5f;
    const int64_t shape[2] = {M, N}, s_row[2] = {0, 1}, s_col[2] = {1, 0};
    for (int threads = 1; threads <= 3; threads++) {
        CHECK_STATUS(mg_set_num_threads(threads), MG_OK);
        CHECK_STATUS(mg_binary(MG_OP_SUB, MG_F32, 2, shape, col, s_col, row, s_row, out), MG_OK);
        int bad = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) bad += out[i * N + j] != col[i] - row[j];
        CHECK_MSG(bad == 0, "threads %d: %d elements differ", threads, bad);
    }
    free(out);
}

/* ---- NaN in max and min ------------------------------------------------- */

TEST(max_min_propagate_nan) {
    enum { N = 37 };
    double a[N], b[N], out[N];
    float af[N], bf[N], outf[N];
    for (int i = 0; i < N; i++) {
        a[i] = i % 3 == 0 ? NAN : i % 5 == 0 ? INFINITY : i - 10.0;
        b[i] = i % 4 == 0 ? NAN : i % 7 == 0 ? -INFINITY : 8.0 - i;
        af[i] = (float)a[i], bf[i] = (float)b[i];
    }
    int isas[4];
    const int nisa = mg_test_isas(isas);
    for (int k = 0; k < nisa; k++) {
        CHECK_STATUS(mg_set_isa(isas[k]), MG_OK);
        for (int op = MG_OP_MAX; op <= MG_OP_MIN; op++) {
            CHECK_STATUS(mg_binary_contig(op, MG_F64, N, a, b, out), MG_OK);
            CHECK_STATUS(mg_binary_contig(op, MG_F32, N, af, bf, outf), MG_OK);
            for (int i = 0; i < N; i++) {
                const int nan_in = isnan(a[i]) || isnan(b[i]);
                CHECK_MSG(nan_in ? isnan(out[i]) : out[i] == naive_double(op, a[i], b[i]),
                          "%s f64 isa %d element %d: %g, %g -> %g", op_names[op], isas[k], i, a[i], b[i], out[i]);
                CHECK_MSG(nan_in ? isnan(outf[i]) : outf[i] == naive_float(op, af[i], bf[i]),
                          "%s f32 isa %d element %d", op_names[op], isas[k], i);
            }
            /* A NaN scalar broadcast against a vector, on either side. */
            const double nan = NAN;
            const int64_t shape[1] = {N}, one[1] = {1}, zero[1] = {0};
            CHECK_STATUS(mg_binary(op, MG_F64, 1, shape, a, one, &nan, zero, out), MG_OK);
            for (int i = 0; i < N; i++) CHECK(isnan(out[i]));
            CHECK_STATUS(mg_binary(op, MG_F64, 1, shape, &nan, zero, b, one, out), MG_OK);
            for (int i = 0; i < N; i++) CHECK(isnan(out[i]));
        }
    }
}

/* ---- sum ---------------------------------------------------------------- */

TEST(sum_same_bits_every_isa_and_thread_count) {
    const int64_t sizes[] = {1, 7, 33, 1000, 16384, 16385, 100003, 1000000};
    const int64_t max_n = 1000000;
    int isas[4];
    const int nisa = mg_test_isas(isas);
    uint64_t rng = 99;
    double *x = malloc(max_n * sizeof *x);
    float *xf = malloc(max_n * sizeof *xf);
    for (int64_t i = 0; i < max_n; i++) {   /* a wide range of magnitudes and signs */
        x[i] = mg_test_uniform(&rng) * ldexp(1.0, (int)(mg_test_rand(&rng) % 40) - 20);
        xf[i] = (float)x[i];
    }
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int64_t n = sizes[s];
        double want, exact = 0, magnitude = 0;
        float wantf;
        CHECK_STATUS(mg_set_isa(MG_ISA_SCALAR), MG_OK);
        CHECK_STATUS(mg_set_num_threads(1), MG_OK);
        CHECK_STATUS(mg_sum(MG_F64, x, n, &want), MG_OK);
        CHECK_STATUS(mg_sum(MG_F32, xf, n, &wantf), MG_OK);
        long double acc = 0;
        for (int64_t i = 0; i < n; i++) acc += x[i], magnitude += fabs(x[i]);
        exact = (double)acc;
        CHECK_MSG(fabs(want - exact) <= 1e-13 * magnitude, "f64 n=%lld: %.17g vs %.17g", (long long)n, want, exact);
        for (int k = 0; k < nisa; k++)
            for (int threads = 1; threads <= 3; threads++) {
                double got;
                float gotf;
                CHECK_STATUS(mg_set_isa(isas[k]), MG_OK);
                CHECK_STATUS(mg_set_num_threads(threads), MG_OK);
                CHECK_STATUS(mg_sum(MG_F64, x, n, &got), MG_OK);
                CHECK_STATUS(mg_sum(MG_F32, xf, n, &gotf), MG_OK);
                CHECK_MSG(memcmp(&got, &want, sizeof got) == 0, "f64 n=%lld isa %d threads %d: %.17g vs %.17g",
                          (long long)n, isas[k], threads, got, want);
                CHECK_MSG(memcmp(&gotf, &wantf, sizeof gotf) == 0, "f32 n=%lld isa %d threads %d: %.9g vs %.9g",
                          (long long)n, isas[k], threads, gotf, wantf);
            }
    }
    free(x), free(xf);
}

TEST(sum_f32_accumulates_in_f64) {
    /* 1e6 copies of 0.1f: float accumulation drifts by about 1%; float64
     * accumulation gives the exact sum rounded once to float. */
    const int64_t n = 1000000;
    float *x = malloc(n * sizeof *x), got;
    for (int64_t i = 0; i < n; i++) x[i] = 0.1f;
    CHECK_STATUS(mg_sum(MG_F32, x, n, &got), MG_OK);
    CHECK_MSG(got == (float)(n * (double)0.1f), "sum = %.9g", got);
    /* A large offset: 1e4 + small values, cancelled exactly in float64. */
    for (int64_t i = 0; i < n; i++) x[i] = i % 2 ? 1e4f + 0.5f : -1e4f;
    CHECK_STATUS(mg_sum(MG_F32, x, n, &got), MG_OK);
    CHECK(got == 0.5f * (float)(n / 2));
    free(x);
}
