/* tests/c/test_opencl_kernels.c - the mg_cl_* entries of api_opencl_data.c
 * and api_opencl_conv.c against naive loops, and their argument checks.
 *
 * These tests load OpenCL, so they must run after opencl_without_runtime
 * (test_opencl.c), which forks a child that must start with OpenCL unloaded:
 * CMake's glob lists test_opencl.c first. They pass as skipped without a
 * device; on a device without cl_khr_fp64 the float64 parts are skipped.
 * The Python tests (tests/test_opencl_kernels.py) compare every case with
 * the CPU backend; these check the C contract itself. */
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
/* GCC 12's aarch64 vectorizer stops with an internal compiler error on the
 * naive pooling loops below; test code needs no vectorising. */
#pragma GCC optimize("no-tree-vectorize")
#endif
#include <math.h>

#include "harness.h"

#define OK(call) CHECK_STATUS(call, MG_OK)
#define FAILS(call, status, word) CHECK_FAILS(call, status, word)

static int device_ready(void) { return mg_cl_init() == MG_OK; }

static int have_fp64(void) {
    mg_cl_device_info_t info;
    return mg_cl_device_info(0, &info) == MG_OK && info.fp64;
}

static uint64_t rng = 777;

/* A device buffer holding nbytes of host. */
static mg_cl_buffer_t *upload(const void *host, size_t nbytes) {
    mg_cl_buffer_t *buf = NULL;
    OK(mg_cl_alloc(0, nbytes ? nbytes : 1, &buf));
    if (nbytes) OK(mg_cl_write(buf, 0, host, nbytes));
    return buf;
}

static void download(const mg_cl_buffer_t *buf, void *host, size_t nbytes) { OK(mg_cl_read(buf, 0, host, nbytes)); }

static void random_floats(float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = (float)mg_test_uniform(&rng);
}

/* max |got - want| / max(1, max |want|). */
static double rel_error(const float *got, const double *want, int64_t n) {
    double err = 0, scale = 1;
    for (int64_t i = 0; i < n; i++) {
        err = fmax(err, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    return err / scale;
}

TEST(opencl_copy_strided_and_casts) {
    if (!device_ready()) return;
    /* dst (5, 3) contiguous = src (3, 5) transposed, then += a broadcast row (stride 0). */
    float src[15], row[3], dst[15];
    random_floats(src, 15);
    random_floats(row, 3);
    mg_cl_buffer_t *s = upload(src, sizeof src), *r = upload(row, sizeof row), *d = upload(src, sizeof src);
    const int64_t shape[2] = {5, 3}, t_strides[2] = {1, 5}, c_strides[2] = {3, 1}, b_strides[2] = {0, 1};
    OK(mg_cl_copy_strided(2, shape, MG_F32, s, 0, t_strides, MG_F32, d, 0, c_strides, 0));
    OK(mg_cl_copy_strided(2, shape, MG_F32, r, 0, b_strides, MG_F32, d, 0, c_strides, 1));
    download(d, dst, sizeof dst);
    int exact = 1;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) exact &= dst[i * 3 + j] == src[j * 5 + i] + row[j];
    CHECK_MSG(exact, "transpose + broadcast accumulate differs");

    /* float32 -> bool -> int64, and a reversed (negative stride) source. */
    float signs[4] = {0.0f, -2.5f, NAN, 1e-30f};
    int64_t ints[4] = {0};
    unsigned char bools[4] = {0};
    mg_cl_buffer_t *f = upload(signs, sizeof signs), *b = upload(bools, sizeof bools), *l = upload(ints, sizeof ints);
    const int64_t n4[1] = {4}, one[1] = {1}, back[1] = {-1};
    OK(mg_cl_copy_strided(1, n4, MG_F32, f, 3, back, MG_CL_BOOL, b, 0, one, 0));
    OK(mg_cl_copy_strided(1, n4, MG_CL_BOOL, b, 0, one, MG_CL_INT64, l, 0, one, 0));
    download(l, ints, sizeof ints);
    CHECK_MSG(ints[0] == 1 && ints[1] == 1 && ints[2] == 1 && ints[3] == 0, "bools %lld %lld %lld %lld",
              (long long)ints[0], (long long)ints[1], (long long)ints[2], (long long)ints[3]);
    if (have_fp64()) {
        double wide[4] = {0};
        mg_cl_buffer_t *w = upload(wide, sizeof wide);
        OK(mg_cl_copy_strided(1, n4, MG_F32, f, 0, one, MG_F64, w, 0, one, 0));
        download(w, wide, sizeof wide);
        CHECK(wide[1] == -2.5 && isnan(wide[2]) && wide[3] == (double)1e-30f);
        mg_cl_free(w);
    }

    /* argument checks */
    const int64_t zero_strides[2] = {0, 1};
    FAILS(mg_cl_copy_strided(2, shape, MG_F32, s, 0, t_strides, MG_F32, d, 0, zero_strides, 0), MG_ERR_ARG,
          "more than once");
    FAILS(mg_cl_copy_strided(2, shape, MG_F32, d, 0, t_strides, MG_F32, d, 0, c_strides, 0), MG_ERR_ARG, "overlap");
    FAILS(mg_cl_copy_strided(2, shape, MG_F32, s, 1, t_strides, MG_F32, d, 0, c_strides, 0), MG_ERR_SHAPE,
          "mg_cl_copy_strided");
    FAILS(mg_cl_copy_strided(1, n4, MG_F32, f, 0, one, MG_CL_INT64, l, 0, one, 1), MG_ERR_DTYPE, "accumulate");
    FAILS(mg_cl_copy_strided(1, n4, 7, f, 0, one, MG_F32, f, 0, one, 0), MG_ERR_DTYPE, "mg_cl_copy_strided");
    FAILS(mg_cl_copy_strided(1, n4, MG_F32, f, 0, one, MG_F32, NULL, 0, one, 0), MG_ERR_ARG, "dst is NULL");
    mg_cl_buffer_t *all[] = {s, r, d, f, b, l};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_cl_free(all[i]);
}

TEST(opencl_compare_where_pow) {
    if (!device_ready()) return;
    /* mask (2, 3) = a (2, 3) < b (3,) broadcast; out = mask ? a : b. */
    float a[6] = {1, 5, -1, 2, 2, NAN}, b[3] = {2, 2, 2}, got[6];
    unsigned char mask[6] = {0};
    mg_cl_buffer_t *da = upload(a, sizeof a), *db = upload(b, sizeof b), *dm = upload(mask, 6);
    mg_cl_buffer_t *out = upload(a, sizeof a);
    const int64_t shape[2] = {2, 3}, sa[2] = {3, 1}, sb[2] = {0, 1};
    OK(mg_cl_compare(MG_CMP_LT, MG_F32, 2, shape, da, 0, sa, db, 0, sb, dm));
    download(dm, mask, 6);
    CHECK(mask[0] == 1 && mask[1] == 0 && mask[2] == 1 && mask[3] == 0 && mask[4] == 0 && mask[5] == 0);
    OK(mg_cl_where(MG_F32, 2, shape, dm, 0, sa, da, 0, sa, db, 0, sb, out));
    download(out, got, sizeof got);
    CHECK(got[0] == 1 && got[1] == 2 && got[2] == -1 && got[5] == 2);
    OK(mg_cl_compare(MG_CMP_NE, MG_F32, 2, shape, da, 0, sa, da, 0, sa, dm));
    download(dm, mask, 6);
    CHECK_MSG(mask[5] == 1 && mask[0] == 0, "NaN != NaN must be true");
    FAILS(mg_cl_compare(6, MG_F32, 2, shape, da, 0, sa, db, 0, sb, dm), MG_ERR_ARG, "unknown comparison");
    FAILS(mg_cl_compare(MG_CMP_EQ, MG_F32, 2, shape, da, 0, sa, db, 0, sa, dm), MG_ERR_SHAPE, "b");

    /* pow: the shortcut 2, a general exponent, the backward and x ** y. */
    float x[6] = {0.5f, 1.5f, 2.0f, 3.0f, 0.25f, 7.0f};
    double want[6];
    mg_cl_buffer_t *dx = upload(x, sizeof x);
    OK(mg_cl_pow_scalar(MG_F32, 6, dx, 1.7, out));
    download(out, got, sizeof got);
    for (int i = 0; i < 6; i++) want[i] = pow(x[i], (double)1.7f);
    CHECK_MSG(rel_error(got, want, 6) <= 1e-6, "pow 1.7 error %g", rel_error(got, want, 6));
    OK(mg_cl_pow_scalar_backward(MG_F32, 6, dx, dx, 2.0, out));
    download(out, got, sizeof got);
    for (int i = 0; i < 6; i++) want[i] = x[i] * 2.0 * x[i];
    CHECK_MSG(rel_error(got, want, 6) == 0, "pow backward error %g", rel_error(got, want, 6));
    OK(mg_cl_pow(MG_F32, 6, dx, dx, out));
    download(out, got, sizeof got);
    for (int i = 0; i < 6; i++) want[i] = pow(x[i], x[i]);
    CHECK_MSG(rel_error(got, want, 6) <= 1e-6, "x ** y error %g", rel_error(got, want, 6));
    FAILS(mg_cl_pow(MG_F32, 7, dx, dx, out), MG_ERR_SHAPE, "mg_cl_pow");
    mg_cl_buffer_t *all[] = {da, db, dm, out, dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_cl_free(all[i]);
}

TEST(opencl_class_indices) {
    if (!device_ready()) return;
    float x[6] = {1, 2, 3, 4, 5, 6}, got[6], g[2] = {10, 20};
    int64_t index[2] = {2, 0}, bad[2] = {1, 3};
    mg_cl_buffer_t *dx = upload(x, sizeof x), *di = upload(index, sizeof index), *dbad = upload(bad, sizeof bad);
    mg_cl_buffer_t *dg = upload(g, sizeof g), *out = upload(x, sizeof x);
    OK(mg_cl_gather_classes(MG_F32, 2, 3, dx, di, out));
    download(out, got, 2 * sizeof *got);
    CHECK(got[0] == 3 && got[1] == 4);
    OK(mg_cl_gather_classes(MG_F32, 2, 3, dx, dbad, out));
    download(out, got, 2 * sizeof *got);
    CHECK_MSG(got[0] == 2 && isnan(got[1]), "an index out of range must give NaN");
    OK(mg_cl_scatter_classes(MG_F32, 2, 3, dg, 1, di, out));
    download(out, got, sizeof got);
    CHECK(got[0] == 0 && got[1] == 0 && got[2] == 10 && got[3] == 20 && got[4] == 0 && got[5] == 0);
    OK(mg_cl_scatter_classes(MG_F32, 2, 3, dg, 0, di, out));
    download(out, got, sizeof got);
    CHECK(got[2] == 10 && got[3] == 10);
    int64_t first = 0;
    OK(mg_cl_bad_class_index(2, 3, di, &first));
    CHECK(first == -1);
    OK(mg_cl_bad_class_index(2, 3, dbad, &first));
    CHECK(first == 1);
    FAILS(mg_cl_gather_classes(MG_F32, 2, 4, dx, di, out), MG_ERR_SHAPE, "x holds");
    FAILS(mg_cl_gather_classes(MG_F32, 3, 2, dx, di, out), MG_ERR_SHAPE, "index holds");
    FAILS(mg_cl_scatter_classes(MG_F32, 2, 3, dg, 2, di, out), MG_ERR_SHAPE, "values");
    FAILS(mg_cl_bad_class_index(2, -1, di, &first), MG_ERR_SHAPE, "negative");
    mg_cl_buffer_t *all[] = {dx, di, dbad, dg, out};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_cl_free(all[i]);
}

/* ---- convolution and pooling against the naive sums of mg.h ---------------------- */

enum { N = 2, CI = 3, H = 7, W = 6, CO = 4, KH = 3, KW = 2 };

TEST(opencl_conv2d_matches_naive_sums) {
    if (!device_ready()) return;
    const mg_window2d_t win = {KH, KW, 2, 1, 1, 0};
    const int OH = (H + 2 - KH) / 2 + 1, OW = (W - KW) / 1 + 1;
    float x[N * CI * H * W], wt[CO * CI * KH * KW], bias[CO], dout[N * CO * 4 * 5];
    float out[N * CO * 4 * 5] = {0}, dx[N * CI * H * W] = {0}, dw[CO * CI * KH * KW] = {0}, db[CO] = {0};
    CHECK(OH == 4 && OW == 5);
    random_floats(x, N * CI * H * W), random_floats(wt, CO * CI * KH * KW);
    random_floats(bias, CO), random_floats(dout, N * CO * OH * OW);
    double want_out[N * CO * 4 * 5], want_dx[N * CI * H * W] = {0}, want_dw[CO * CI * KH * KW] = {0}, want_db[CO] = {0};
    for (int n = 0; n < N; n++)
        for (int o = 0; o < CO; o++)
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++) {
                    const int at = ((n * CO + o) * OH + i) * OW + j;
                    double s = bias[o];
                    want_db[o] += dout[at];
                    for (int c = 0; c < CI; c++)
                        for (int p = 0; p < KH; p++)
                            for (int q = 0; q < KW; q++) {
                                const int y = i * 2 - 1 + p, xx = j + q;
                                if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                                const int xi = ((n * CI + c) * H + y) * W + xx, wi = ((o * CI + c) * KH + p) * KW + q;
                                s += (double)wt[wi] * x[xi];
                                want_dx[xi] += (double)wt[wi] * dout[at];
                                want_dw[wi] += (double)dout[at] * x[xi];
                            }
                    want_out[at] = s;
                }
    mg_cl_buffer_t *bx = upload(x, sizeof x), *bw = upload(wt, sizeof wt), *bb = upload(bias, sizeof bias);
    mg_cl_buffer_t *bg = upload(dout, sizeof dout), *bo = upload(out, sizeof out), *bdx = upload(dx, sizeof dx);
    mg_cl_buffer_t *bdw = upload(dw, sizeof dw), *bdb = upload(db, sizeof db);
    OK(mg_cl_conv2d_forward(MG_F32, N, CI, H, W, CO, &win, bx, bw, bb, bo));
    OK(mg_cl_conv2d_backward(MG_F32, N, CI, H, W, CO, &win, bx, bw, bg, bdx, bdw, bdb));
    download(bo, out, sizeof out), download(bdx, dx, sizeof dx), download(bdw, dw, sizeof dw), download(bdb, db, sizeof db);
    CHECK_MSG(rel_error(out, want_out, N * CO * OH * OW) <= 1e-5, "out error %g", rel_error(out, want_out, N * CO * OH * OW));
    CHECK_MSG(rel_error(dx, want_dx, N * CI * H * W) <= 1e-5, "dx error %g", rel_error(dx, want_dx, N * CI * H * W));
    CHECK_MSG(rel_error(dw, want_dw, CO * CI * KH * KW) <= 1e-5, "dweight error %g", rel_error(dw, want_dw, CO * CI * KH * KW));
    CHECK_MSG(rel_error(db, want_db, CO) <= 1e-5, "dbias error %g", rel_error(db, want_db, CO));
    /* only dbias: x and weight may be NULL */
    OK(mg_cl_conv2d_backward(MG_F32, N, CI, H, W, CO, &win, NULL, NULL, bg, NULL, NULL, bdb));
    const mg_window2d_t too_big = {KH, 9, 1, 1, 0, 0}, bad_stride = {KH, KW, 0, 1, 0, 0};
    FAILS(mg_cl_conv2d_forward(MG_F32, N, CI, H, W, CO, &too_big, bx, bw, bb, bo), MG_ERR_SHAPE, "larger than");
    FAILS(mg_cl_conv2d_forward(MG_F32, N, CI, H, W, CO, &bad_stride, bx, bw, bb, bo), MG_ERR_ARG, "bad window");
    FAILS(mg_cl_conv2d_forward(MG_F32, N, CI + 1, H, W, CO, &win, bx, bw, bb, bo), MG_ERR_SHAPE, "x");
    FAILS(mg_cl_conv2d_backward(MG_F32, N, CI, H, W, CO, &win, NULL, bw, bg, NULL, bdw, NULL), MG_ERR_ARG,
          "needed for dweight");
    mg_cl_buffer_t *all[] = {bx, bw, bb, bg, bo, bdx, bdw, bdb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_cl_free(all[i]);
}

TEST(opencl_pools_match_naive_loops) {
    if (!device_ready()) return;
    /* 3x3 windows, stride 2, padding 1 on a 5x4 plane with ties: first max wins. */
    const mg_window2d_t win = {3, 3, 2, 2, 1, 1};
    enum { PH = 5, PW = 4, OH = 3, OW = 2 };
    float x[PH * PW], g[OH * OW], out[OH * OW] = {0}, dx[PH * PW] = {0};
    for (int i = 0; i < PH * PW; i++) x[i] = (float)(i % 3);   /* many equal maxima */
    for (int i = 0; i < OH * OW; i++) g[i] = (float)(i + 1);
    double want_max[OH * OW], want_avg[OH * OW], want_dmax[PH * PW] = {0}, want_davg[PH * PW] = {0};
    for (int i = 0; i < OH; i++)
        for (int j = 0; j < OW; j++) {
            int best = -1;
            double sum = 0;
            for (int y = i * 2 - 1; y < i * 2 + 2; y++)
                for (int xx = j * 2 - 1; xx < j * 2 + 2; xx++) {
                    if (y < 0 || y >= PH || xx < 0 || xx >= PW) continue;
                    if (best < 0 || x[y * PW + xx] > x[best]) best = y * PW + xx;
                    sum += x[y * PW + xx];
                    want_davg[y * PW + xx] += g[i * OW + j] / 9.0;
                }
            want_max[i * OW + j] = x[best];
            want_dmax[best] += g[i * OW + j];
            want_avg[i * OW + j] = sum / 9;
        }
    mg_cl_buffer_t *bx = upload(x, sizeof x), *bg = upload(g, sizeof g), *bo = upload(out, sizeof out);
    mg_cl_buffer_t *bdx = upload(dx, sizeof dx);
    OK(mg_cl_max_pool2d_forward(MG_F32, 1, 1, PH, PW, &win, bx, bo));
    download(bo, out, sizeof out);
    CHECK_MSG(rel_error(out, want_max, OH * OW) == 0, "max pool error %g", rel_error(out, want_max, OH * OW));
    OK(mg_cl_max_pool2d_backward(MG_F32, 1, 1, PH, PW, &win, bx, bg, bdx));
    download(bdx, dx, sizeof dx);
    CHECK_MSG(rel_error(dx, want_dmax, PH * PW) == 0, "max pool dx error %g", rel_error(dx, want_dmax, PH * PW));
    OK(mg_cl_avg_pool2d_forward(MG_F32, 1, 1, PH, PW, &win, bx, bo));
    download(bo, out, sizeof out);
    CHECK_MSG(rel_error(out, want_avg, OH * OW) <= 1e-6, "avg pool error %g", rel_error(out, want_avg, OH * OW));
    OK(mg_cl_avg_pool2d_backward(MG_F32, 1, 1, PH, PW, &win, bg, bdx));
    download(bdx, dx, sizeof dx);
    CHECK_MSG(rel_error(dx, want_davg, PH * PW) <= 1e-6, "avg pool dx error %g", rel_error(dx, want_davg, PH * PW));
    const mg_window2d_t wide_pad = {2, 2, 1, 1, 2, 0}, padding_only = {2, 2, 1, 1, 1, 1};
    FAILS(mg_cl_max_pool2d_forward(MG_F32, 1, 1, PH, PW, &wide_pad, bx, bo), MG_ERR_ARG, "half the kernel");
    FAILS(mg_cl_max_pool2d_forward(MG_F32, 1, 1, 0, PW, &padding_only, bx, bo), MG_ERR_SHAPE, "empty image");
    FAILS(mg_cl_avg_pool2d_backward(MG_F32, 2, 1, PH, PW, &win, bg, bdx), MG_ERR_SHAPE, "dout");
    FAILS(mg_cl_max_pool2d_forward(5, 1, 1, PH, PW, &win, bx, bo), MG_ERR_DTYPE, "mg_cl_max_pool2d_forward");
    mg_cl_buffer_t *all[] = {bx, bg, bo, bdx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_cl_free(all[i]);
}
