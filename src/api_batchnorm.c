/* api_batchnorm.c - the batch normalization entry points (see mg.h).
 *
 * Each entry checks its arguments, cuts the work into fixed blocks, runs the
 * sweeps of cpu/batchnorm.c over the blocks on the thread pool, adds the
 * per-block sums of each channel in block order and turns them into the
 * per-channel coefficients of the next sweep. Blocks depend only on the shape,
 * never on the thread count, so neither do the bits of any result.
 *
 *   S > 1 ("planes"): block b of channel c is the channel's values
 *         [b*BLOCK_VALUES, (b+1)*BLOCK_VALUES) in (n, s) order.
 *   S = 1 ("rows"):   block (rb, g) is rows [rb*R, (rb+1)*R) by channels
 *         [g*ROW_GROUP, (g+1)*ROW_GROUP), R = BLOCK_VALUES / min(C, ROW_GROUP).
 *
 * The math and its derivation: cpu/batchnorm.c and docs/bn_backward.md. */
#include <math.h>
#include <stdlib.h>

#include "cpu/kernels.h"
#include "internal.h"

#define BLOCK_VALUES (1 << 16)
#define ROW_GROUP 512

#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)

typedef struct {
    const mg_bn_kernels *k;
    int64_t N, C, S;
    int64_t block_values, blocks_per_channel;   /* planes */
    int64_t rows_per_block, groups;             /* rows */
    int64_t ntasks, nsums;                      /* blocks; doubles in sums */
    size_t item;
    const char *in0, *in1;   /* x, or dy and x */
    char *out;               /* y or dx */
    double *sums;            /* two per (block, channel) */
    const double *p[4];      /* per-channel coefficients of the sweep */
} bn_job;

/* One block: its channel(s), its values, and where its two sums go. */
typedef struct {
    int64_t offset;          /* element offset of the block's first value */
    int64_t c, begin, end;   /* planes: channel, value range */
    int64_t rows, width;     /* rows: rows by channels from channel c */
    double *s1, *s2;         /* planes: s1[0], s2[0]; rows: s1[0..width), s2[0..width) */
} bn_block;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void plan(bn_job *j, const mg_bn_kernels *k, int64_t N, int64_t C, int64_t S, int dtype) {
    j->k = k;
    j->N = N, j->C = C, j->S = S;
    j->item = dtype == MG_F32 ? 4 : 8;
    if (S > 1) {
        j->block_values = BLOCK_VALUES;
        j->blocks_per_channel = (N * S + BLOCK_VALUES - 1) / BLOCK_VALUES;
        j->ntasks = C * j->blocks_per_channel;
        j->nsums = 2 * j->ntasks;
    } else {
        j->rows_per_block = BLOCK_VALUES / min64(C, ROW_GROUP);
        j->groups = (C + ROW_GROUP - 1) / ROW_GROUP;
        const int64_t row_blocks = (N + j->rows_per_block - 1) / j->rows_per_block;
        j->ntasks = row_blocks * j->groups;
        j->nsums = 2 * C * row_blocks;
    }
}

static bn_block block_of(const bn_job *j, int64_t task) {
    bn_block b;
    if (j->S > 1) {
        b.c = task / j->blocks_per_channel;
        b.begin = task % j->blocks_per_channel * j->block_values;
        b.end = min64(b.begin + j->block_values, j->N * j->S);
        b.offset = b.c * j->S;
        b.s1 = j->sums + 2 * task;
        b.s2 = b.s1 + 1;
    } else {
        const int64_t rb = task / j->groups, r0 = rb * j->rows_per_block;
        b.c = task % j->groups * ROW_GROUP;
        b.rows = min64(j->rows_per_block, j->N - r0);
        b.width = min64(ROW_GROUP, j->C - b.c);
        b.offset = r0 * j->C + b.c;
        b.s1 = j->sums + 2 * j->C * rb + b.c;
        b.s2 = b.s1 + j->C;
    }
    return b;
}

/* Channel c's two sums over all blocks, added in block order. */
static void channel_sums(const bn_job *j, int64_t c, double *s1, double *s2) {
    double a1 = 0.0, a2 = 0.0;
    if (j->S > 1) {
        const double *p = j->sums + 2 * c * j->blocks_per_channel;
        for (int64_t b = 0; b < j->blocks_per_channel; b++) a1 += p[2 * b], a2 += p[2 * b + 1];
    } else {
        for (int64_t at = c; at < j->nsums; at += 2 * j->C) a1 += j->sums[at], a2 += j->sums[at + j->C];
    }
    *s1 = a1;
    *s2 = a2;
}

#define IN0(b) (j->in0 + (size_t)(b).offset * j->item)
#define IN1(b) (j->in1 + (size_t)(b).offset * j->item)
#define OUT(b) (j->out + (size_t)(b).offset * j->item)

static void stat_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1) {
        double sums[2];
        j->k->stat_planes(IN0(b), j->S, j->C * j->S, b.begin, b.end, j->p[0][b.c], sums);
        *b.s1 = sums[0], *b.s2 = sums[1];
    } else {
        j->k->stat_rows(IN0(b), b.rows, b.width, j->C, j->p[0] + b.c, b.s1, b.s2);
    }
}

static void grad_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1) {
        double sums[2];
        j->k->grad_planes(IN0(b), IN1(b), j->S, j->C * j->S, b.begin, b.end, j->p[0][b.c], sums);
        *b.s1 = sums[0], *b.s2 = sums[1];
    } else {
        j->k->grad_rows(IN0(b), IN1(b), b.rows, b.width, j->C, j->p[0] + b.c, b.s1, b.s2);
    }
}

/* out = (in0 - p[0])*p[1] + p[2] */
static void affine_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1)
        j->k->affine_planes(IN0(b), OUT(b), j->S, j->C * j->S, b.begin, b.end,
                            j->p[0][b.c], j->p[1][b.c], j->p[2][b.c]);
    else
        j->k->affine_rows(IN0(b), OUT(b), b.rows, b.width, j->C,
                          j->p[0] + b.c, j->p[1] + b.c, j->p[2] + b.c);
}

/* out = (p[0]*in0 + p[1]*(in1 - p[2])) + p[3] */
static void dx_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1)
        j->k->dx_planes(IN0(b), IN1(b), OUT(b), j->S, j->C * j->S, b.begin, b.end,
                        j->p[0][b.c], j->p[1][b.c], j->p[2][b.c], j->p[3][b.c]);
    else
        j->k->dx_rows(IN0(b), IN1(b), OUT(b), b.rows, b.width, j->C,
                      j->p[0] + b.c, j->p[1] + b.c, j->p[2] + b.c, j->p[3] + b.c);
}

static void run(bn_job *j, mg_task_fn fn) {
    if (j->N * j->C * j->S < MG_PARALLEL_MIN_ELEMS)
        for (int64_t task = 0; task < j->ntasks; task++) fn(j, task);
    else
        mg_parallel_for(j->ntasks, fn, j);
}

/* Room for the block sums and four per-channel coefficient arrays. */
static mg_status alloc_scratch(const char *fn, bn_job *j, double **coef) {
    const int64_t count = j->nsums + 4 * j->C;
    double *mem = malloc((size_t)count * sizeof *mem);
    if (!mem) return mg_fail(MG_ERR_NOMEM, "%s: cannot allocate %lld doubles of scratch", fn, (long long)count);
    j->sums = mem;
    for (int i = 0; i < 4; i++) coef[i] = mem + j->nsums + i * j->C;
    return MG_OK;
}

/* ---- argument checks ---------------------------------------------------- */

static mg_status check_shape(const char *fn, int dtype, int64_t N, int64_t C, int64_t S) {
    TRY(mg_ensure_init());
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtype %d is neither float32 (0) nor float64 (1)", fn, dtype);
    if (N < 0 || C < 0 || S < 0)
        return mg_fail(MG_ERR_SHAPE, "%s: negative size in (N, C, S) = (%lld, %lld, %lld)", fn,
                       (long long)N, (long long)C, (long long)S);
    const int64_t limit = INT64_MAX / 8;   /* element count times 8 bytes still fits */
    if ((C > 0 && N > limit / C) || (N * C > 0 && S > limit / (N * C)))
        return mg_fail(MG_ERR_SHAPE, "%s: (N, C, S) = (%lld, %lld, %lld) is too large", fn,
                       (long long)N, (long long)C, (long long)S);
    return MG_OK;
}

static mg_status check_training(const char *fn, int64_t N, int64_t C, int64_t S) {
    if (N < 1 || S < 1 || (N == 1 && S == 1))   /* n = N*S < 2, without overflow */
        return mg_fail(MG_ERR_ARG, "%s: expected more than 1 value per channel when training, "
                       "got (N, C, S) = (%lld, %lld, %lld)", fn, (long long)N, (long long)C, (long long)S);
    return MG_OK;
}

static mg_status check_eps(const char *fn, double eps) {
    if (!(eps >= 0.0) || isinf(eps))
        return mg_fail(MG_ERR_ARG, "%s: eps must be finite and >= 0, got %g", fn, eps);
    return MG_OK;
}

#define REQUIRE(ptr)                                                           \
    do {                                                                       \
        if (!(ptr)) return mg_fail(MG_ERR_ARG, "%s: %s is NULL", fn, #ptr);   \
    } while (0)

/* Element c of an optional per-channel parameter, as float64. */
static double param(const void *p, int dtype, int64_t c, double absent) {
    if (!p) return absent;
    return dtype == MG_F32 ? (double)((const float *)p)[c] : ((const double *)p)[c];
}

static void put(void *p, int dtype, int64_t c, double v) {
    if (dtype == MG_F32) ((float *)p)[c] = (float)v;
    else ((double *)p)[c] = v;
}

/* ---- entry points ------------------------------------------------------- */

mg_status mg_batch_norm_train_forward(int dtype, int64_t N, int64_t C, int64_t S, const void *x,
                                      const void *weight, const void *bias, double eps, void *y,
                                      double *save_mean, double *save_rstd, double *batch_var) {
    const char *fn = "mg_batch_norm_train_forward";
    TRY(check_shape(fn, dtype, N, C, S));
    TRY(check_training(fn, N, C, S));
    TRY(check_eps(fn, eps));
    if (C == 0) return MG_OK;
    REQUIRE(x); REQUIRE(y); REQUIRE(save_mean); REQUIRE(save_rstd); REQUIRE(batch_var);

    bn_job j;
    double *coef[4];
    plan(&j, &mg_kernels->batchnorm[dtype], N, C, S, dtype);
    TRY(alloc_scratch(fn, &j, coef));
    j.in0 = x;
    j.out = y;

    /* Sweep 1: sums of x - shift, shift = the channel's first value. */
    for (int64_t c = 0; c < C; c++) coef[0][c] = param(x, dtype, c * S, 0.0);
    j.p[0] = coef[0];
    run(&j, stat_task);

    const double n = (double)(N * S);
    for (int64_t c = 0; c < C; c++) {
        double s1, s2;
        channel_sums(&j, c, &s1, &s2);
        const double mean = coef[0][c] + s1 / n;
        double var = (s2 - s1 * (s1 / n)) / n;
        if (var < 0.0) var = 0.0;   /* rounding; NaN stays NaN */
        const double rstd = 1.0 / sqrt(var + eps);
        save_mean[c] = mean, save_rstd[c] = rstd, batch_var[c] = var;
        coef[0][c] = mean;
        coef[1][c] = rstd * param(weight, dtype, c, 1.0);
        coef[2][c] = param(bias, dtype, c, 0.0);
    }

    /* Sweep 2: y = (x - mean)*(rstd*gamma) + beta. */
    j.p[0] = coef[0], j.p[1] = coef[1], j.p[2] = coef[2];
    run(&j, affine_task);
    free(j.sums);
    return MG_OK;
}

/* y = (x - 0)*scale + shift with the running statistics: one sweep. Also the
 * eval backward with scale = gamma*rstd and shift = 0. */
static mg_status eval_scale_shift(const char *fn, int dtype, int64_t N, int64_t C, int64_t S,
                                  const void *x, const void *running_mean, const void *running_var,
                                  const void *weight, const void *bias, double eps, void *y) {
    bn_job j;
    double *coef[4];
    plan(&j, &mg_kernels->batchnorm[dtype], N, C, S, dtype);
    j.nsums = 0;   /* no sums in this sweep */
    TRY(alloc_scratch(fn, &j, coef));
    for (int64_t c = 0; c < C; c++) {
        const double scale = param(weight, dtype, c, 1.0) / sqrt(param(running_var, dtype, c, 0.0) + eps);
        coef[0][c] = 0.0;
        coef[1][c] = scale;
        coef[2][c] = param(bias, dtype, c, 0.0) - param(running_mean, dtype, c, 0.0) * scale;
    }
    j.in0 = x;
    j.out = y;
    j.p[0] = coef[0], j.p[1] = coef[1], j.p[2] = coef[2];
    run(&j, affine_task);
    free(j.sums);
    return MG_OK;
}

mg_status mg_batch_norm_eval_forward(int dtype, int64_t N, int64_t C, int64_t S, const void *x,
                                     const void *running_mean, const void *running_var,
                                     const void *weight, const void *bias, double eps, void *y) {
    const char *fn = "mg_batch_norm_eval_forward";
    TRY(check_shape(fn, dtype, N, C, S));
    TRY(check_eps(fn, eps));
    if (N * C * S == 0) return MG_OK;
    REQUIRE(x); REQUIRE(y); REQUIRE(running_mean); REQUIRE(running_var);
    return eval_scale_shift(fn, dtype, N, C, S, x, running_mean, running_var, weight, bias, eps, y);
}

mg_status mg_batch_norm_eval_backward(int dtype, int64_t N, int64_t C, int64_t S, const void *dy,
                                      const void *running_var, const void *weight, double eps,
                                      void *dx) {
    const char *fn = "mg_batch_norm_eval_backward";
    TRY(check_shape(fn, dtype, N, C, S));
    TRY(check_eps(fn, eps));
    if (N * C * S == 0) return MG_OK;
    REQUIRE(dy); REQUIRE(dx); REQUIRE(running_var);
    return eval_scale_shift(fn, dtype, N, C, S, dy, NULL, running_var, weight, NULL, eps, dx);
}

mg_status mg_batch_norm_backward(int dtype, int64_t N, int64_t C, int64_t S, const void *dy,
                                 const void *x, const double *save_mean, const double *save_rstd,
                                 const void *weight, void *dx, void *dweight, void *dbias) {
    const char *fn = "mg_batch_norm_backward";
    TRY(check_shape(fn, dtype, N, C, S));
    TRY(check_training(fn, N, C, S));
    if (C == 0 || (!dx && !dweight && !dbias)) return MG_OK;
    REQUIRE(dy); REQUIRE(x); REQUIRE(save_mean); REQUIRE(save_rstd);

    bn_job j;
    double *coef[4];
    plan(&j, &mg_kernels->batchnorm[dtype], N, C, S, dtype);
    TRY(alloc_scratch(fn, &j, coef));
    j.in0 = dy;
    j.in1 = x;
    j.out = dx;

    /* Sweep 1: sum(dy) and sum(dy*(x - mean)). */
    j.p[0] = save_mean;
    run(&j, grad_task);

    const double n = (double)(N * S);
    for (int64_t c = 0; c < C; c++) {
        double sum_dy, sum_dy_xmu;
        channel_sums(&j, c, &sum_dy, &sum_dy_xmu);
        const double rstd = save_rstd[c];
        const double dgamma = sum_dy_xmu * rstd;   /* sum(dy*xhat) */
        if (dweight) put(dweight, dtype, c, dgamma);
        if (dbias) put(dbias, dtype, c, sum_dy);
        const double k = param(weight, dtype, c, 1.0) * rstd;
        coef[0][c] = k;
        coef[1][c] = -k * rstd * (dgamma / n);
        coef[2][c] = save_mean[c];
        coef[3][c] = -k * (sum_dy / n);
    }

    /* Sweep 2: dx = k*dy + coef*(x - mean) + b. */
    if (dx) {
        j.p[0] = coef[0], j.p[1] = coef[1], j.p[2] = coef[2], j.p[3] = coef[3];
        run(&j, dx_task);
    }
    free(j.sums);
    return MG_OK;
}
