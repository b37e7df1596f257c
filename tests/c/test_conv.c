/* tests/c/test_conv.c - mg_conv2d_* and mg_{max,avg}_pool2d_* against plain loops.
 *
 * The reference loops below are the definitions in mg.h written out in
 * float64. Each case runs with 1 and 3 threads (the bits must agree), on
 * every SIMD path this machine can run, in float32 and float64. Convolution
 * goes through mg_matmul, whose float32 sums differ from float64 ones by
 * rounding: it is compared with a tolerance; pooling is exact. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

typedef struct { int64_t n, c, h, w, o; mg_window2d_t win; } conv_case;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) { return mg_test_uniform(&rng_state); }

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

/* x[n,c,y,x] or 0 outside the image */
static double at(const double *x, const conv_case *t, int64_t n, int64_t c, int64_t y, int64_t xx) {
    if (y < 0 || y >= t->h || xx < 0 || xx >= t->w) return 0.0;
    return x[((n * t->c + c) * t->h + y) * t->w + xx];
}

static void reference_conv(const conv_case *t, const double *x, const double *wt, const double *b,
                           const double *dout, double *out, double *dx, double *dw, double *db) {
    const mg_window2d_t *k = &t->win;
    const int64_t oh = out_size(t->h, k->kernel_h, k->stride_h, k->pad_h);
    const int64_t ow = out_size(t->w, k->kernel_w, k->stride_w, k->pad_w);
    memset(dx, 0, sizeof(double) * (size_t)(t->n * t->c * t->h * t->w));
    memset(dw, 0, sizeof(double) * (size_t)(t->o * t->c * k->kernel_h * k->kernel_w));
    memset(db, 0, sizeof(double) * (size_t)t->o);
    for (int64_t n = 0; n < t->n; n++)
        for (int64_t o = 0; o < t->o; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    const int64_t oi = ((n * t->o + o) * oh + i) * ow + j;
                    double s = b[o];
                    db[o] += dout[oi];
                    for (int64_t c = 0; c < t->c; c++)
                        for (int64_t p = 0; p < k->kernel_h; p++)
                            for (int64_t q = 0; q < k->kernel_w; q++) {
                                const int64_t y = i * k->stride_h - k->pad_h + p, xx = j * k->stride_w - k->pad_w + q;
                                const int64_t wi = ((o * t->c + c) * k->kernel_h + p) * k->kernel_w + q;
                                s += wt[wi] * at(x, t, n, c, y, xx);
                                dw[wi] += dout[oi] * at(x, t, n, c, y, xx);
                                if (y >= 0 && y < t->h && xx >= 0 && xx < t->w)
                                    dx[((n * t->c + c) * t->h + y) * t->w + xx] += wt[wi] * dout[oi];
                            }
                    out[oi] = s;
                }
}

/* Copies v into a buffer of dtype. */
static void *to_dtype(const double *v, int64_t n, int dtype) {
    void *p = malloc((size_t)(n > 0 ? n : 1) * 8);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == MG_F32) ((float *)p)[i] = (float)v[i];
        else ((double *)p)[i] = v[i];
    }
    return p;
}

static double get(const void *p, int dtype, int64_t i) {
    return dtype == MG_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* max |got - want| / (1 + max |want|) */
static double rel_error(const void *got, int dtype, const double *want, int64_t n) {
    double err = 0.0, scale = 1.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(get(got, dtype, i) - want[i]);
        err = e > err || e != e ? e : err;
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    }
    return err / scale;
}

static double *random_values(int64_t n) {
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) v[i] = uniform();
    return v;
}

static void test_conv_case(const conv_case *t, int dtype) {
    const mg_window2d_t *k = &t->win;
    const int64_t oh = out_size(t->h, k->kernel_h, k->stride_h, k->pad_h);
    const int64_t ow = out_size(t->w, k->kernel_w, k->stride_w, k->pad_w);
    const int64_t nx = t->n * t->c * t->h * t->w, nw = t->o * t->c * k->kernel_h * k->kernel_w;
    const int64_t nout = t->n * t->o * oh * ow;
    const size_t item = dtype == MG_F32 ? 4 : 8;
    double *x = random_values(nx), *wt = random_values(nw), *b = random_values(t->o), *dout = random_values(nout);
    double *out = malloc(sizeof(double) * (size_t)nout), *dx = malloc(sizeof(double) * (size_t)nx);
    double *dw = malloc(sizeof(double) * (size_t)nw), *db = malloc(sizeof(double) * (size_t)t->o);
    reference_conv(t, x, wt, b, dout, out, dx, dw, db);
    void *xd = to_dtype(x, nx, dtype), *wd = to_dtype(wt, nw, dtype), *bd = to_dtype(b, t->o, dtype);
    void *doutd = to_dtype(dout, nout, dtype);
    void *got[2][4];   /* [1 thread, 3 threads][out, dx, dw, db] */
    const int64_t sizes[4] = {nout, nx, nw, t->o};
    const double tol = dtype == MG_F32 ? 1e-5 : 1e-12;
    for (int run = 0; run < 2; run++) {
        mg_set_num_threads(run == 0 ? 1 : 3);
        for (int a = 0; a < 4; a++) got[run][a] = malloc(item * (size_t)(sizes[a] > 0 ? sizes[a] : 1));
        mg_status s = mg_conv2d_forward(dtype, t->n, t->c, t->h, t->w, t->o, k, xd, wd, bd, got[run][0]);
        CHECK_MSG(s == MG_OK, "forward: %s", mg_last_error());
        s = mg_conv2d_backward(dtype, t->n, t->c, t->h, t->w, t->o, k, xd, wd, doutd,
                               got[run][1], got[run][2], got[run][3]);
        CHECK_MSG(s == MG_OK, "backward: %s", mg_last_error());
    }
    const double *want[4] = {out, dx, dw, db};
    const char *names[4] = {"out", "dx", "dweight", "dbias"};
    for (int a = 0; a < 4; a++) {
        const double e = rel_error(got[0][a], dtype, want[a], sizes[a]);
        CHECK_MSG(e <= tol, "conv n=%lld c=%lld %lldx%lld o=%lld k=%lldx%lld s=%lld p=%lld dtype=%d: %s error %g",
              (long long)t->n, (long long)t->c, (long long)t->h, (long long)t->w, (long long)t->o,
              (long long)k->kernel_h, (long long)k->kernel_w, (long long)k->stride_h, (long long)k->pad_h,
              dtype, names[a], e);
        CHECK_MSG(memcmp(got[0][a], got[1][a], item * (size_t)sizes[a]) == 0,
              "conv %s differs between 1 and 3 threads", names[a]);
    }
    for (int run = 0; run < 2; run++)
        for (int a = 0; a < 4; a++) free(got[run][a]);
    free(x), free(wt), free(b), free(dout), free(out), free(dx), free(dw), free(db);
    free(xd), free(wd), free(bd), free(doutd);
}

/* ---- pooling ---------------------------------------------------------------- */

static void reference_pool(int is_max, const conv_case *t, const double *x, const double *dout,
                           double *out, double *dx) {
    const mg_window2d_t *k = &t->win;
    const int64_t oh = out_size(t->h, k->kernel_h, k->stride_h, k->pad_h);
    const int64_t ow = out_size(t->w, k->kernel_w, k->stride_w, k->pad_w);
    memset(dx, 0, sizeof(double) * (size_t)(t->n * t->c * t->h * t->w));
    for (int64_t pl = 0; pl < t->n * t->c; pl++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                double best = -INFINITY, sum = 0.0;
                int64_t arg = -1;
                for (int64_t p = 0; p < k->kernel_h; p++)
                    for (int64_t q = 0; q < k->kernel_w; q++) {
                        const int64_t y = i * k->stride_h - k->pad_h + p, xx = j * k->stride_w - k->pad_w + q;
                        if (y < 0 || y >= t->h || xx < 0 || xx >= t->w) continue;
                        const int64_t idx = (pl * t->h + y) * t->w + xx;
                        sum += x[idx];
                        if (arg < 0 || x[idx] > best) best = x[idx], arg = idx;
                    }
                const int64_t oi = (pl * oh + i) * ow + j;
                const double count = (double)(k->kernel_h * k->kernel_w);
                if (is_max) {
                    out[oi] = best;
                    dx[arg] += dout[oi];
                } else {
                    out[oi] = sum / count;
                    for (int64_t p = 0; p < k->kernel_h; p++)
                        for (int64_t q = 0; q < k->kernel_w; q++) {
                            const int64_t y = i * k->stride_h - k->pad_h + p, xx = j * k->stride_w - k->pad_w + q;
                            if (y >= 0 && y < t->h && xx >= 0 && xx < t->w)
                                dx[(pl * t->h + y) * t->w + xx] += dout[oi] / count;
                        }
                }
            }
}

static void test_pool_case(int is_max, const conv_case *t, int dtype) {
    const mg_window2d_t *k = &t->win;
    const int64_t oh = out_size(t->h, k->kernel_h, k->stride_h, k->pad_h);
    const int64_t ow = out_size(t->w, k->kernel_w, k->stride_w, k->pad_w);
    const int64_t nx = t->n * t->c * t->h * t->w, nout = t->n * t->c * oh * ow;
    const size_t item = dtype == MG_F32 ? 4 : 8;
    double *x = random_values(nx), *dout = random_values(nout);
    for (int64_t i = 0; i < nx; i += 7) x[i] = x[i / 2];   /* some ties */
    double *out = malloc(sizeof(double) * (size_t)nout), *dx = malloc(sizeof(double) * (size_t)nx);
    void *xd = to_dtype(x, nx, dtype), *doutd = to_dtype(dout, nout, dtype);
    for (int64_t i = 0; i < nx; i++) x[i] = get(xd, dtype, i);   /* ties as the dtype sees them */
    reference_pool(is_max, t, x, dout, out, dx);
    void *got[2][2];
    for (int run = 0; run < 2; run++) {
        mg_set_num_threads(run == 0 ? 1 : 3);
        got[run][0] = malloc(item * (size_t)nout);
        got[run][1] = malloc(item * (size_t)nx);
        mg_status s = is_max ? mg_max_pool2d_forward(dtype, t->n, t->c, t->h, t->w, k, xd, got[run][0])
                             : mg_avg_pool2d_forward(dtype, t->n, t->c, t->h, t->w, k, xd, got[run][0]);
        CHECK_MSG(s == MG_OK, "pool forward: %s", mg_last_error());
        s = is_max ? mg_max_pool2d_backward(dtype, t->n, t->c, t->h, t->w, k, xd, doutd, got[run][1])
                   : mg_avg_pool2d_backward(dtype, t->n, t->c, t->h, t->w, k, doutd, got[run][1]);
        CHECK_MSG(s == MG_OK, "pool backward: %s", mg_last_error());
    }
    const double tol = dtype == MG_F32 ? 1e-6 : 1e-14;
    CHECK_MSG(rel_error(got[0][0], dtype, out, nout) <= tol, "%s pool forward differs (dtype %d, %lldx%lld k%lld s%lld p%lld)",
          is_max ? "max" : "avg", dtype, (long long)t->h, (long long)t->w, (long long)k->kernel_h,
          (long long)k->stride_h, (long long)k->pad_h);
    CHECK_MSG(rel_error(got[0][1], dtype, dx, nx) <= tol, "%s pool backward differs (dtype %d, %lldx%lld k%lld s%lld p%lld)",
          is_max ? "max" : "avg", dtype, (long long)t->h, (long long)t->w, (long long)k->kernel_h,
          (long long)k->stride_h, (long long)k->pad_h);
    CHECK_MSG(memcmp(got[0][0], got[1][0], item * (size_t)nout) == 0 && memcmp(got[0][1], got[1][1], item * (size_t)nx) == 0,
          "pool results differ between 1 and 3 threads");
    for (int run = 0; run < 2; run++) free(got[run][0]), free(got[run][1]);
    free(x), free(dout), free(out), free(dx), free(xd), free(doutd);
}

/* ---- errors --------------------------------------------------------------------- */

TEST(conv_and_pool_errors) {
    float buf[64] = {0};
    mg_window2d_t win = {3, 3, 1, 1, 0, 0};
    CHECK_FAILS(mg_conv2d_forward(MG_F32, 1, 1, 2, 2, 1, &win, buf, buf, NULL, buf), MG_ERR_SHAPE,
                "mg_conv2d_forward");
    CHECK_MSG(strstr(mg_last_error(), "larger than the padded input") != NULL, "message: %s", mg_last_error());
    CHECK_FAILS(mg_conv2d_forward(7, 1, 1, 4, 4, 1, &win, buf, buf, NULL, buf), MG_ERR_DTYPE, "mg_conv2d_forward");
    CHECK_FAILS(mg_conv2d_forward(MG_F32, 1, 1, 4, 4, 1, NULL, buf, buf, NULL, buf), MG_ERR_ARG, "mg_conv2d_forward");
    CHECK_FAILS(mg_conv2d_forward(MG_F32, 1, 1, 4, 4, 1, &win, NULL, buf, NULL, buf), MG_ERR_ARG, "mg_conv2d_forward");
    CHECK_FAILS(mg_conv2d_forward(MG_F32, -1, 1, 4, 4, 1, &win, buf, buf, NULL, buf), MG_ERR_SHAPE,
                "mg_conv2d_forward");
    CHECK_FAILS(mg_conv2d_forward(MG_F32, INT64_MAX, 4, 4, 4, 1, &win, buf, buf, NULL, buf), MG_ERR_SHAPE,
                "mg_conv2d_forward");
    mg_window2d_t zero_stride = {3, 3, 0, 1, 0, 0};
    CHECK_FAILS(mg_conv2d_forward(MG_F32, 1, 1, 4, 4, 1, &zero_stride, buf, buf, NULL, buf), MG_ERR_ARG,
                "mg_conv2d_forward");
    mg_window2d_t big_pad = {2, 2, 2, 2, 2, 0};
    CHECK_FAILS(mg_max_pool2d_forward(MG_F32, 1, 1, 4, 4, &big_pad, buf, buf), MG_ERR_ARG, "mg_max_pool2d_forward");
    mg_window2d_t pool_win = {2, 2, 2, 2, 1, 1};
    CHECK_FAILS(mg_avg_pool2d_forward(MG_F32, 1, 1, 0, 4, &pool_win, buf, buf), MG_ERR_SHAPE, "mg_avg_pool2d_forward");
    CHECK_FAILS(mg_conv2d_backward(MG_F32, 1, 1, 4, 4, 1, &win, NULL, buf, buf, NULL, buf, NULL), MG_ERR_ARG,
                "mg_conv2d_backward");
    /* nothing wanted: nothing to do */
    CHECK_STATUS(mg_conv2d_backward(MG_F32, 1, 1, 4, 4, 1, &win, NULL, NULL, NULL, NULL, NULL, NULL), MG_OK);
}

static const conv_case convs[] = {
    {2, 3, 7, 9, 4, {3, 3, 1, 1, 1, 1}},
    {1, 1, 5, 5, 1, {3, 3, 1, 1, 0, 0}},
    {3, 2, 8, 7, 5, {3, 2, 2, 1, 1, 0}},
    {2, 4, 6, 6, 3, {1, 1, 1, 1, 0, 0}},   /* the direct path: col = x */
    {2, 4, 6, 5, 3, {1, 1, 2, 2, 0, 0}},
    {1, 2, 3, 3, 2, {5, 5, 1, 1, 2, 2}},   /* kernel larger than the image */
    {5, 3, 20, 20, 8, {3, 3, 1, 1, 1, 1}}, /* threads share the images */
    {1, 16, 70, 70, 2, {3, 3, 1, 1, 1, 1}},/* several im2col bands */
    {33, 2, 4, 4, 3, {2, 2, 2, 2, 0, 0}},  /* more images than dweight chunks */
};

static const conv_case pools[] = {
    {2, 3, 8, 8, 0, {2, 2, 2, 2, 0, 0}},
    {1, 2, 7, 9, 0, {3, 3, 2, 2, 1, 1}},
    {3, 1, 5, 6, 0, {3, 2, 1, 1, 1, 1}},
    {1, 1, 1, 1, 0, {1, 1, 1, 1, 0, 0}},
    {4, 16, 33, 31, 0, {2, 2, 2, 2, 0, 0}},
    {4, 16, 33, 31, 0, {3, 3, 3, 2, 1, 0}},
};

TEST(conv2d_matches_naive_loops_on_every_isa_and_thread_count) {
    int isas[4];
    const int count = mg_test_isas(isas);
    for (int k = 0; k < count; k++) {
        mg_set_isa(isas[k]);
        for (int dtype = 0; dtype < 2; dtype++)
            for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) test_conv_case(&convs[i], dtype);
    }
}

TEST(pool2d_matches_naive_loops_on_every_isa_and_thread_count) {
    int isas[4];
    const int count = mg_test_isas(isas);
    for (int k = 0; k < count; k++) {
        mg_set_isa(isas[k]);
        for (int dtype = 0; dtype < 2; dtype++)
            for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
                test_pool_case(1, &pools[i], dtype);
                test_pool_case(0, &pools[i], dtype);
            }
    }
}
