/* tests/c/test_opencl.c - the mg_cl_* entry points against naive loops.
 *
 * opencl_without_runtime: in a forked child, MGBN_OPENCL_LIBRARY names a
 * missing file and the entries must return MG_ERR_BACKEND with a message
 * naming what to install. The other tests run on OpenCL device 0 and pass
 * as skipped (saying why) without a runtime or device. Run them also with
 * MGBN_OPENCL_FP64=0 for the path of devices without float64:
 *   MGBN_OPENCL_FP64=0 build/dev/mgbn_c_tests opencl */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define OK(call) CHECK_STATUS(call, MG_OK)
#define FAILS(call, status, word) CHECK_FAILS(call, status, word)

/* 1 if device 0 can run the tests; else says why once and the test passes as skipped. */
static int have_device(void) {
    static int said;
    if (mg_cl_init() == MG_OK) return 1;
    if (!said++) printf("    (OpenCL tests skipped, no device: %s)\n", mg_last_error());
    return 0;
}

static uint64_t rng = 12345;

static double *random_doubles(int64_t n, double offset) {
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = mg_test_uniform(&rng) + offset;
    return v;
}

/* A device buffer holding a copy of n doubles (as float when dtype is MG_F32). */
static mg_cl_buffer_t *upload(int dtype, const double *v, int64_t n) {
    mg_cl_buffer_t *buf = NULL;
    const size_t item = dtype == MG_F32 ? 4 : 8;
    OK(mg_cl_alloc(0, (size_t)(n ? n : 1) * item, &buf));
    void *host = malloc((size_t)(n ? n : 1) * item);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == MG_F32) ((float *)host)[i] = (float)v[i];
        else ((double *)host)[i] = v[i];
    }
    OK(mg_cl_write(buf, 0, host, (size_t)n * item));
    free(host);
    return buf;
}

/* max |got - want| / max(|want|, 1) over n values of a buffer of dtype. */
static double error(int dtype, const mg_cl_buffer_t *buf, const double *want, int64_t n) {
    const size_t item = dtype == MG_F32 ? 4 : 8;
    void *host = malloc((size_t)n * item);
    OK(mg_cl_read(buf, 0, host, (size_t)n * item));
    double err = 0, scale = 1;
    for (int64_t i = 0; i < n; i++) {
        const double got = dtype == MG_F32 ? ((float *)host)[i] : ((double *)host)[i];
        err = fmax(err, fabs(got - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    free(host);
    return err / scale;
}

static double tolerance(int dtype) { return dtype == MG_F32 ? 1e-5 : 1e-12; }

/* Runs before the other opencl tests (tests run in file order): the child
 * must start with OpenCL not yet loaded. */
TEST(opencl_without_runtime) {
    const pid_t pid = fork();
    CHECK_MSG(pid >= 0, "fork failed");
    if (pid == 0) {
        setenv("MGBN_OPENCL_LIBRARY", "/no/such/libOpenCL.so.1", 1);
        mg_cl_buffer_t *buf = NULL;
        const int ok = mg_cl_init() == MG_ERR_BACKEND && strstr(mg_last_error(), "pocl-opencl-icd") &&
                       strstr(mg_last_error(), "mg_cl_init") &&
                       mg_cl_alloc(0, 16, &buf) == MG_ERR_BACKEND && strstr(mg_last_error(), "mg_cl_alloc");
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a missing MGBN_OPENCL_LIBRARY was not MG_ERR_BACKEND");
}

TEST(opencl_buffers) {
    if (!have_device()) return;
    mg_cl_buffer_t *a = NULL, *b = NULL;
    double in[5] = {1, 2, 3, 4, 5}, out[5] = {0};
    OK(mg_cl_alloc(0, sizeof in, &a));
    OK(mg_cl_alloc(0, sizeof in, &b));
    OK(mg_cl_write(a, 0, in, sizeof in));
    OK(mg_cl_copy(a, 8, b, 0, 32));
    OK(mg_cl_read(b, 0, out, 32));
    CHECK_MSG(out[0] == 2 && out[3] == 5, "copy gave %g %g", out[0], out[3]);
    FAILS(mg_cl_write(a, 8, in, sizeof in), MG_ERR_ARG, "mg_cl_write");
    FAILS(mg_cl_copy(a, 0, a, 8, 16), MG_ERR_ARG, "overlap");
    FAILS(mg_cl_alloc(0, 0, &b), MG_ERR_ARG, "mg_cl_alloc");
    FAILS(mg_cl_alloc(7, 8, &b), MG_ERR_ARG, "no OpenCL device 7");
    FAILS(mg_cl_fill(2, a, 1, 0.0), MG_ERR_DTYPE, "mg_cl_fill");
    FAILS(mg_cl_fill(MG_F32, a, 11, 0.0), MG_ERR_SHAPE, "mg_cl_fill");
    OK(mg_cl_fill(MG_F32, a, 10, -1.5));
    float filled[10] = {0};
    OK(mg_cl_read(a, 0, filled, sizeof filled));
    CHECK_MSG(filled[0] == -1.5f && filled[9] == -1.5f, "fill gave %g %g", filled[0], filled[9]);
    OK(mg_cl_free(a));
    OK(mg_cl_free(b));
    OK(mg_cl_free(NULL));
}

/* out (4, 33) = a (4, 33) - b (33,) broadcast, b read backwards (stride -1). */
static void check_binary(int dtype) {
    double *a = random_doubles(4 * 33, 0), *b = random_doubles(33, 0), want[4 * 33];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 33; j++) want[i * 33 + j] = a[i * 33 + j] - b[32 - j];
    mg_cl_buffer_t *da = upload(dtype, a, 4 * 33), *db = upload(dtype, b, 33), *out = upload(dtype, want, 4 * 33);
    const int64_t shape[2] = {4, 33}, sa[2] = {33, 1}, sb[2] = {0, -1};
    OK(mg_cl_binary(MG_OP_SUB, dtype, 2, shape, da, 0, sa, db, 32, sb, out));
    CHECK_MSG(error(dtype, out, want, 4 * 33) <= tolerance(dtype), "binary error %g", error(dtype, out, want, 4 * 33));
    FAILS(mg_cl_binary(MG_OP_SUB, dtype, 2, shape, da, 0, sa, db, 31, sb, out), MG_ERR_SHAPE, "before its first");
    FAILS(mg_cl_binary(9, dtype, 2, shape, da, 0, sa, db, 32, sb, out), MG_ERR_ARG, "unknown op");
    mg_cl_free(da), mg_cl_free(db), mg_cl_free(out);
    free(a), free(b);
}

/* Sums of x (3, 5000, 2) over axes 0 and 2, and the max over axis 1. */
static void check_reduce(int dtype) {
    const int64_t shape[3] = {3, 5000, 2}, strides[3] = {10000, 2, 1}, n = 30000;
    double *x = random_doubles(n, 0), sums[5000] = {0}, maxes[6];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5000; j++)
            for (int k = 0; k < 2; k++) {
                const double v = dtype == MG_F32 ? (float)x[(i * 5000 + j) * 2 + k] : x[(i * 5000 + j) * 2 + k];
                sums[j] += v;
                if (j == 0 || v > maxes[i * 2 + k]) maxes[i * 2 + k] = v;
            }
    mg_cl_buffer_t *dx = upload(dtype, x, n), *out = upload(dtype, sums, 5000);
    OK(mg_cl_reduce(0, dtype, 3, shape, dx, 0, strides, 1u | 4u, out));
    CHECK_MSG(error(dtype, out, sums, 5000) <= tolerance(dtype), "sum error %g", error(dtype, out, sums, 5000));
    OK(mg_cl_reduce(1, dtype, 3, shape, dx, 0, strides, 2u, out));
    CHECK_MSG(error(dtype, out, maxes, 6) == 0, "max error %g", error(dtype, out, maxes, 6));
    FAILS(mg_cl_reduce(0, dtype, 3, shape, dx, 0, strides, 8u, out), MG_ERR_ARG, "reduce_mask");
    mg_cl_free(dx), mg_cl_free(out);
    free(x);
}

/* c (33, 17) = a^T @ b with a stored (70, 33) and b (70, 17), then += again. */
static void check_matmul(int dtype) {
    const int m = 33, n = 17, k = 70;
    double *a = random_doubles(k * m, 0), *b = random_doubles(k * n, 0), want[33 * 17];
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += a[p * m + i] * b[p * n + j];
            want[i * n + j] = s;
        }
    mg_cl_buffer_t *da = upload(dtype, a, k * m), *db = upload(dtype, b, k * n), *dc = upload(dtype, want, m * n);
    const double tol = dtype == MG_F32 ? 1e-5 : 1e-12;
    OK(mg_cl_matmul(dtype, 1, m, n, k, da, 0, 0, 1, m, db, 0, 0, n, 1, dc, 0, 0, n, 0));
    CHECK_MSG(error(dtype, dc, want, m * n) <= tol, "matmul error %g", error(dtype, dc, want, m * n));
    OK(mg_cl_matmul(dtype, 1, m, n, k, da, 0, 0, 1, m, db, 0, 0, n, 1, dc, 0, 0, n, 1));
    for (int i = 0; i < m * n; i++) want[i] *= 2;
    CHECK_MSG(error(dtype, dc, want, m * n) <= tol, "accumulate error %g", error(dtype, dc, want, m * n));
    FAILS(mg_cl_matmul(dtype, 2, m, n, k, da, 0, 0, 1, m, db, 0, 0, n, 1, dc, 0, m * n, n, 0), MG_ERR_SHAPE, "c");
    FAILS(mg_cl_matmul(dtype, 1, m, n, k, da, 0, 0, 1, m, db, 0, 0, n, 1, dc, 0, 0, 1, 0), MG_ERR_ARG, "overlap");
    mg_cl_free(da), mg_cl_free(db), mg_cl_free(dc);
    free(a), free(b);
}

/* BN training forward and backward on (N, C, S) against the closed form. */
static void check_batch_norm(int dtype, int64_t N, int64_t C, int64_t S) {
    const int64_t count = N * C * S, per = N * S;
    double *x = random_doubles(count, 100.0), *dy = random_doubles(count, 0), *w = random_doubles(C, 1.0);
    double *bias = random_doubles(C, 0), *y = malloc(count * sizeof *y), *dx = malloc(count * sizeof *dx);
    double *dw = malloc(C * sizeof *dw), *db = malloc(C * sizeof *db);
    if (dtype == MG_F32)
        for (int64_t i = 0; i < count; i++) x[i] = (float)x[i], dy[i] = (float)dy[i];
    for (int64_t c = 0; c < C; c++) {
        double mean = 0, var = 0, s1 = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) mean += x[(n * C + c) * S + s];
        mean /= per;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) var += pow(x[(n * C + c) * S + s] - mean, 2);
        const double rstd = 1 / sqrt(var / per + 1e-5);
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t i = (n * C + c) * S + s;
                y[i] = (x[i] - mean) * rstd * w[c] + bias[c];
                s1 += dy[i], s2 += dy[i] * (x[i] - mean) * rstd;
            }
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t i = (n * C + c) * S + s;
                dx[i] = w[c] * rstd / per * (per * dy[i] - s1 - (x[i] - mean) * rstd * s2);
            }
        dw[c] = s2, db[c] = s1;
    }
    mg_cl_device_info_t info;
    OK(mg_cl_device_info(0, &info));
    const int stat = info.fp64 ? MG_F64 : MG_F32;
    mg_cl_buffer_t *dx_ = upload(dtype, x, count), *ddy = upload(dtype, dy, count), *dw_ = upload(dtype, w, C);
    mg_cl_buffer_t *db_ = upload(dtype, bias, C), *out = upload(dtype, y, count);
    mg_cl_buffer_t *mean = upload(stat, w, C), *rstd = upload(stat, w, C), *var = upload(stat, w, C);
    mg_cl_buffer_t *gw = upload(dtype, w, C), *gb = upload(dtype, w, C);
    OK(mg_cl_batch_norm_train_forward(dtype, N, C, S, dx_, dw_, db_, 1e-5, out, mean, rstd, var));
    CHECK_MSG(error(dtype, out, y, count) <= tolerance(dtype) * 10, "(%lld,%lld,%lld) y error %g", (long long)N,
          (long long)C, (long long)S, error(dtype, out, y, count));
    OK(mg_cl_batch_norm_backward(dtype, N, C, S, ddy, dx_, mean, rstd, dw_, out, gw, gb));
    CHECK_MSG(error(dtype, out, dx, count) <= tolerance(dtype) * 10, "dx error %g", error(dtype, out, dx, count));
    CHECK_MSG(error(dtype, gw, dw, C) <= tolerance(dtype) * 10, "dweight error %g", error(dtype, gw, dw, C));
    CHECK_MSG(error(dtype, gb, db, C) <= tolerance(dtype) * 10, "dbias error %g", error(dtype, gb, db, C));
    FAILS(mg_cl_batch_norm_train_forward(dtype, 1, C, 1, dx_, NULL, NULL, 1e-5, out, mean, rstd, var),
          MG_ERR_ARG, "more than 1 value");
    FAILS(mg_cl_batch_norm_train_forward(dtype, N + 1, C, S, dx_, NULL, NULL, 1e-5, out, mean, rstd, var),
          MG_ERR_SHAPE, "mg_cl_batch_norm_train_forward");
    mg_cl_buffer_t *all[] = {dx_, ddy, dw_, db_, out, mean, rstd, var, gw, gb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_cl_free(all[i]);
    free(x), free(dy), free(w), free(bias), free(y), free(dx), free(dw), free(db);
}

/* The dtypes device 0 runs: float32, and float64 where it has cl_khr_fp64. */
static int last_dtype(void) {
    mg_cl_device_info_t info;
    return mg_cl_device_info(0, &info) == MG_OK && info.fp64 ? MG_F64 : MG_F32;
}

TEST(opencl_binary_reduce_matmul) {
    if (!have_device()) return;
    for (int dtype = MG_F32; dtype <= last_dtype(); dtype++) {
        check_binary(dtype);
        check_reduce(dtype);
        check_matmul(dtype);
    }
}

TEST(opencl_batch_norm) {
    if (!have_device()) return;
    for (int dtype = MG_F32; dtype <= last_dtype(); dtype++) {
        check_batch_norm(dtype, 2, 3, 1);
        check_batch_norm(dtype, 1000, 7, 1);
        check_batch_norm(dtype, 3, 4, 37);
        check_batch_norm(dtype, 5, 2, 5);
    }
}

TEST(opencl_float64_needs_fp64) {
    if (!have_device() || last_dtype() == MG_F64) return;
    mg_cl_buffer_t *buf = NULL;
    OK(mg_cl_alloc(0, 8, &buf));
    FAILS(mg_cl_fill(MG_F64, buf, 1, 0.0), MG_ERR_DTYPE, "cl_khr_fp64");
    mg_cl_free(buf);
}
