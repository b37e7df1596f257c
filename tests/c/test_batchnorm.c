/* tests/c/test_batchnorm.c - the batch normalization entry points at the C
 * level: argument checks (status and message), and a small forward/backward
 * against a plain float64 reference for every layout. Returns non-zero on
 * failure; meant to run under ASan/UBSan too (tools/dev_build.sh -DMGBN_SANITIZE=ON). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The call returned `status` and its message contains `text`. */
static void expect_error(mg_status got, mg_status status, const char *text, int line) {
    if (got != status || !strstr(mg_last_error(), text))
        mg_test_fail(__FILE__, line, "expected status %d with \"%s\", got %d \"%s\"",
                     (int)status, text, (int)got, mg_last_error());
}
#define EXPECT_ERROR(call, status, text) expect_error((call), (status), (text), __LINE__)

TEST(batchnorm_validation) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8], w[2] = {1, 1};
    double mean[2], rstd[2], var[2];

    EXPECT_ERROR(mg_batch_norm_train_forward(0, 1, 2, 1, x, NULL, NULL, 1e-5, y, mean, rstd, var),
                 MG_ERR_ARG, "expected more than 1 value per channel when training");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, 0, 2, 4, x, NULL, NULL, 1e-5, y, mean, rstd, var),
                 MG_ERR_ARG, "expected more than 1 value per channel when training");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, 2, 2, 0, x, NULL, NULL, 1e-5, y, mean, rstd, var),
                 MG_ERR_ARG, "expected more than 1 value per channel when training");
    EXPECT_ERROR(mg_batch_norm_backward(0, 1, 2, 1, x, x, mean, rstd, NULL, y, NULL, NULL),
                 MG_ERR_ARG, "expected more than 1 value per channel when training");
    EXPECT_ERROR(mg_batch_norm_train_forward(7, 4, 2, 1, x, NULL, NULL, 1e-5, y, mean, rstd, var),
                 MG_ERR_DTYPE, "dtype 7");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, -4, 2, 1, x, NULL, NULL, 1e-5, y, mean, rstd, var),
                 MG_ERR_SHAPE, "negative size");
    EXPECT_ERROR(mg_batch_norm_eval_forward(0, 4, -2, 1, x, x, x, NULL, NULL, 1e-5, y),
                 MG_ERR_SHAPE, "negative size");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, (int64_t)1 << 40, (int64_t)1 << 40, 1, x, NULL, NULL,
                                             1e-5, y, mean, rstd, var),
                 MG_ERR_SHAPE, "too large");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, 4, 2, 1, x, NULL, NULL, -1.0, y, mean, rstd, var),
                 MG_ERR_ARG, "eps must be finite and >= 0");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, 4, 2, 1, x, NULL, NULL, NAN, y, mean, rstd, var),
                 MG_ERR_ARG, "eps must be finite and >= 0");
    EXPECT_ERROR(mg_batch_norm_eval_forward(0, 4, 2, 1, x, x, x, NULL, NULL, INFINITY, y),
                 MG_ERR_ARG, "eps must be finite and >= 0");
    EXPECT_ERROR(mg_batch_norm_eval_backward(0, 4, 2, 1, x, x, NULL, -0.5, y),
                 MG_ERR_ARG, "eps must be finite and >= 0");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, 4, 2, 1, NULL, NULL, NULL, 1e-5, y, mean, rstd, var),
                 MG_ERR_ARG, "x is NULL");
    EXPECT_ERROR(mg_batch_norm_train_forward(0, 4, 2, 1, x, w, NULL, 1e-5, y, NULL, rstd, var),
                 MG_ERR_ARG, "save_mean is NULL");
    EXPECT_ERROR(mg_batch_norm_eval_forward(0, 4, 2, 1, x, NULL, x, NULL, NULL, 1e-5, y),
                 MG_ERR_ARG, "running_mean is NULL");
    EXPECT_ERROR(mg_batch_norm_backward(0, 4, 2, 1, x, x, mean, NULL, NULL, y, NULL, NULL),
                 MG_ERR_ARG, "save_rstd is NULL");
    EXPECT_ERROR(mg_batch_norm_eval_backward(0, 4, 2, 1, x, NULL, NULL, 1e-5, y),
                 MG_ERR_ARG, "running_var is NULL");

    /* Nothing to do is fine: empty eval, no channels, no gradient wanted. */
    CHECK(mg_batch_norm_eval_forward(0, 0, 2, 1, NULL, NULL, NULL, NULL, NULL, 1e-5, NULL) == MG_OK);
    CHECK(mg_batch_norm_train_forward(0, 4, 0, 1, NULL, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL) == MG_OK);
    CHECK(mg_batch_norm_backward(0, 4, 2, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) == MG_OK);
    CHECK(mg_batch_norm_train_forward(0, 4, 2, 1, x, NULL, NULL, 0.0, y, mean, rstd, var) == MG_OK);
}

/* Float64 reference: forward and backward of one (N, C, S) problem. */
static void reference(int64_t N, int64_t C, int64_t S, const double *x, const double *w,
                      const double *b, const double *dy, double eps, double *y, double *dx,
                      double *dw, double *db) {
    const double n = (double)(N * S);
    for (int64_t c = 0; c < C; c++) {
        double mean = 0, var = 0, sdy = 0, sdyxh = 0;
        for (int64_t i = 0; i < N; i++)
            for (int64_t s = 0; s < S; s++) mean += x[(i * C + c) * S + s];
        mean /= n;
        for (int64_t i = 0; i < N; i++)
            for (int64_t s = 0; s < S; s++) var += pow(x[(i * C + c) * S + s] - mean, 2);
        const double rstd = 1.0 / sqrt(var / n + eps);
        for (int64_t i = 0; i < N; i++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t at = (i * C + c) * S + s;
                const double xhat = (x[at] - mean) * rstd;
                y[at] = xhat * w[c] + b[c];
                sdy += dy[at];
                sdyxh += dy[at] * xhat;
            }
        dw[c] = sdyxh, db[c] = sdy;
        for (int64_t i = 0; i < N; i++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t at = (i * C + c) * S + s;
                const double xhat = (x[at] - mean) * rstd;
                dx[at] = w[c] * rstd / n * (n * dy[at] - sdy - xhat * sdyxh);
            }
    }
}

static double max_abs_diff(const double *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static void check_against_reference(int64_t N, int64_t C, int64_t S) {
    const int64_t total = N * C * S;
    double *mem = malloc(sizeof(double) * (size_t)(6 * total + 9 * C));
    double *x = mem, *dy = x + total, *y = dy + total, *dx = y + total, *ry = dx + total,
           *rdx = ry + total, *w = rdx + total, *b = w + C, *dw = b + C, *db = dw + C,
           *rdw = db + C, *rdb = rdw + C, *mean = rdb + C, *rstd = mean + C, *var = rstd + C;
    srand(12345);
    for (int64_t i = 0; i < total; i++) {
        x[i] = 3.0 + (double)rand() / RAND_MAX;
        dy[i] = (double)rand() / RAND_MAX - 0.5;
    }
    for (int64_t c = 0; c < C; c++) w[c] = 0.5 + 0.1 * (double)c, b[c] = 0.25 * (double)c;
    const double eps = 1e-5;
    reference(N, C, S, x, w, b, dy, eps, ry, rdx, rdw, rdb);
    CHECK(mg_batch_norm_train_forward(MG_F64, N, C, S, x, w, b, eps, y, mean, rstd, var) == MG_OK);
    CHECK(mg_batch_norm_backward(MG_F64, N, C, S, dy, x, mean, rstd, w, dx, dw, db) == MG_OK);
    const double ey = max_abs_diff(y, ry, total), edx = max_abs_diff(dx, rdx, total);
    const double edw = max_abs_diff(dw, rdw, C), edb = max_abs_diff(db, rdb, C);
    CHECK_MSG(ey < 1e-12 && edx < 1e-12 && edw < 1e-10 && edb < 1e-10,
              "(N, C, S) = (%lld, %lld, %lld): errors y %g dx %g dw %g db %g",
              (long long)N, (long long)C, (long long)S, ey, edx, edw, edb);
    free(mem);
}

/* A NaN in one channel makes that channel NaN and leaves the others alone. */
TEST(batchnorm_nan_stays_in_its_channel) {
    float x[6 * 3], y[6 * 3];
    double mean[3], rstd[3], var[3];
    for (int i = 0; i < 18; i++) x[i] = (float)(i % 5);
    x[4] = NAN;   /* row 1, channel 1 */
    CHECK(mg_batch_norm_train_forward(MG_F32, 6, 3, 1, x, NULL, NULL, 1e-5, y, mean, rstd, var) == MG_OK);
    CHECK(isnan(mean[1]) && isnan(y[1]) && isnan(y[16]));
    CHECK(!isnan(mean[0]) && !isnan(y[0]) && !isnan(y[17]));
}

TEST(batchnorm_against_reference) {
    const int64_t shapes[][3] = {{2, 1, 1}, {7, 33, 1}, {1000, 7, 1}, {33, 17, 1}, {3, 2, 7},
                                 {2, 3, 33}, {5, 4, 1000}, {1, 3, 2}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_against_reference(shapes[i][0], shapes[i][1], shapes[i][2]);
}
