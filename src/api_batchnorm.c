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
 *         [g*G, (g+1)*G), R = max(1, BLOCK_VALUES / min(C, G)); G = ROW_GROUP
 *         for the training sweeps (whose sums keep partials per channel) and
 *         G = C, whole rows, for the eval sweep. Cut rows would start each
 *         walk afresh for the prefetchers (256x1024: every half row is a
 *         page; eval in cache, 1 thread: 60 -> 49 us), and two threads would
 *         write the halves of the same pages, each core's prefetcher taking
 *         lines from the other (2 threads: 83 -> 29 us).
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
    int64_t row_group, rows_per_block, groups;  /* rows: G, R, and the number of groups */
    int64_t ntasks, nsums;                      /* blocks; doubles in sums */
    size_t item;
    const char *in0, *in1;   /* x, or dy and x */
    char *out;               /* y or dx */
    int stream;              /* out is written with streaming stores (simd.h) */
    double *sums;            /* two per (block, channel) */
    char *center;            /* (C,) of x's dtype: the k of the sum sweeps */
    char *params;            /* (4, C) of x's dtype: the elementwise parameters */
    double *folded;          /* planes, forward: (2, C), each channel's two sums over its blocks */
    /* what the per-channel step between the sweeps reads and writes */
    int dtype;
    double eps;
    const void *weight, *bias;
    double *save_mean, *save_rstd, *batch_var;   /* forward */
    const double *mean, *rstd;                   /* backward: save_mean, save_rstd */
    void *dweight, *dbias;
} bn_job;

/* One block: its channel(s), its values, and where its two sums go. */
typedef struct {
    int64_t offset;          /* element offset of the block's first value */
    int64_t c, begin, end;   /* planes: channel, value range */
    int64_t rows, width;     /* rows: rows by channels from channel c */
    double *s1, *s2;         /* planes: s1[0], s2[0]; rows: s1[0..width), s2[0..width) */
} bn_block;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void plan(bn_job *j, const mg_bn_kernels *k, int64_t N, int64_t C, int64_t S, int dtype,
                 int64_t row_group) {
    j->k = k;
    j->N = N, j->C = C, j->S = S;
    j->dtype = dtype;
    j->item = dtype == MG_F32 ? 4 : 8;
    j->stream = N * C * S * (int64_t)j->item >= mg_stream_min_bytes;
    if (S > 1) {
        j->block_values = BLOCK_VALUES;
        j->blocks_per_channel = (N * S + BLOCK_VALUES - 1) / BLOCK_VALUES;
        j->ntasks = C * j->blocks_per_channel;
        j->nsums = 2 * j->ntasks;
    } else {
        j->row_group = row_group;
        j->rows_per_block = BLOCK_VALUES / min64(C, row_group);
        if (j->rows_per_block == 0) j->rows_per_block = 1;
        j->groups = (C + row_group - 1) / row_group;
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
        b.c = task % j->groups * j->row_group;
        b.rows = min64(j->rows_per_block, j->N - r0);
        b.width = min64(j->row_group, j->C - b.c);
        b.offset = r0 * j->C + b.c;
        b.s1 = j->sums + 2 * j->C * rb + b.c;
        b.s2 = b.s1 + j->C;
    }
    return b;
}

/* rows: adds the sums of every row block into those of row block 0, in
 * row block order, for the channels [c0, c1). Row block by row block, the
 * reads are in memory order (channel by channel, 32 row blocks of
 * 4096x512 would be 32 cache misses per channel). Sums are never -0.0
 * (each starts as 0.0 + a partial), so this gives the bits of adding them
 * to 0.0 in order. */
static void fold_row_sums(const bn_job *j, int64_t c0, int64_t c1) {
    double *first = j->sums;
    for (int64_t at = 2 * j->C; at < j->nsums; at += 2 * j->C)
        for (int64_t c = c0; c < c1; c++) {
            first[c] += j->sums[at + c];
            first[j->C + c] += j->sums[at + j->C + c];
        }
}

/* Channel c's two sums over all blocks, added in block order (rows: once
 * fold_row_sums has run for c). */
static void channel_sums(const bn_job *j, int64_t c, double *s1, double *s2) {
    if (j->S > 1) {
        double a1 = 0.0, a2 = 0.0;
        const double *p = j->sums + 2 * c * j->blocks_per_channel;
        for (int64_t b = 0; b < j->blocks_per_channel; b++) a1 += p[2 * b], a2 += p[2 * b + 1];
        *s1 = a1, *s2 = a2;
    } else {
        *s1 = j->sums[c], *s2 = j->sums[j->C + c];
    }
}

#define IN0(b) (j->in0 + (size_t)(b).offset * j->item)
#define IN1(b) (j->in1 + (size_t)(b).offset * j->item)
#define OUT(b) (j->out + (size_t)(b).offset * j->item)
#define PARAMS(b) (j->params + (size_t)(b).c * j->item)
#define CENTER(b) (j->center + (size_t)(b).c * j->item)

static void stat_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1) {
        double sums[2];
        j->k->stat_planes(IN0(b), j->S, j->C * j->S, b.begin, b.end, CENTER(b), sums);
        *b.s1 = sums[0], *b.s2 = sums[1];
    } else {
        j->k->stat_rows(IN0(b), b.rows, b.width, j->C, CENTER(b), b.s1, b.s2);
    }
}

static void grad_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1) {
        double sums[2];
        j->k->grad_planes(IN0(b), IN1(b), j->S, j->C * j->S, b.begin, b.end, CENTER(b), sums);
        *b.s1 = sums[0], *b.s2 = sums[1];
    } else {
        j->k->grad_rows(IN0(b), IN1(b), b.rows, b.width, j->C, CENTER(b), b.s1, b.s2);
    }
}

static void affine_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1)
        j->k->affine_planes(IN0(b), OUT(b), j->S, j->C * j->S, b.begin, b.end, PARAMS(b), j->C, j->stream);
    else
        j->k->affine_rows(IN0(b), OUT(b), b.rows, b.width, j->C, PARAMS(b), j->C, j->stream);
}

static void scale_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1)
        j->k->scale_planes(IN0(b), OUT(b), j->S, j->C * j->S, b.begin, b.end, PARAMS(b), j->C, j->stream);
    else
        j->k->scale_rows(IN0(b), OUT(b), b.rows, b.width, j->C, PARAMS(b), j->C, j->stream);
}

static void dx_task(void *ctx, int64_t task) {
    const bn_job *j = ctx;
    const bn_block b = block_of(j, task);
    if (j->S > 1)
        j->k->dx_planes(IN0(b), IN1(b), OUT(b), j->S, j->C * j->S, b.begin, b.end, PARAMS(b), j->C, j->stream);
    else
        j->k->dx_rows(IN0(b), IN1(b), OUT(b), b.rows, b.width, j->C, PARAMS(b), j->C, j->stream);
}

/* A sweep over the blocks in reverse order: block ntasks - 1 - task as task. */
typedef struct {
    const bn_job *j;
    mg_task_fn fn;
} bn_reversed_job;

static void reversed_task(void *ctx, int64_t task) {
    const bn_reversed_job *r = ctx;
    r->fn((void *)r->j, r->j->ntasks - 1 - task);
}

/* One sweep over every block. Which block runs when never changes a bit
 * (each writes its own outputs), so the second sweep of a pair goes last
 * block first: it starts on what the first sweep read last, still in L2. */
static void run(const bn_job *j, mg_task_fn fn, int reversed) {
    bn_reversed_job r = {j, fn};
    if (reversed) fn = reversed_task;
    void *ctx = reversed ? (void *)&r : (void *)j;
    if (j->N * j->C * j->S < MG_PARALLEL_MIN_ELEMS)
        for (int64_t task = 0; task < j->ntasks; task++) fn(ctx, task);
    else
        mg_parallel_for(j->ntasks, fn, ctx);
}

/* Two sweeps with a per-channel step between them: sweep1 over every block,
 * then finish(c0, c1) for the channels, then sweep2 (if not NULL) over every block. */
typedef void (*bn_finish_fn)(const bn_job *j, int64_t c0, int64_t c1);
typedef struct {
    const bn_job *j;
    mg_task_fn sweep1, sweep2;
    bn_finish_fn finish;
    int64_t pieces, blocks_per_piece;
} bn_piece_job;

/* A piece is the blocks of some channels: planes, channel p (its blocks
 * p*blocks_per_channel + i); rows, channel group p (row block i's block
 * i*groups + p). */
static int64_t piece_block(const bn_job *j, int64_t piece, int64_t i) {
    return j->S > 1 ? piece * j->blocks_per_channel + i : i * j->groups + piece;
}

/* All of a piece: its blocks of sweep 1, finish for its channels, its blocks
 * of sweep 2 (last first, as run() does). */
static void piece_task(void *ctx, int64_t piece) {
    const bn_piece_job *pj = ctx;
    const bn_job *j = pj->j;
    for (int64_t i = 0; i < pj->blocks_per_piece; i++) pj->sweep1((void *)j, piece_block(j, piece, i));
    const int64_t c0 = j->S > 1 ? piece : piece * j->row_group;
    const int64_t c1 = j->S > 1 ? piece + 1 : min64(c0 + j->row_group, j->C);
    if (j->S == 1) fold_row_sums(j, c0, c1);
    pj->finish(j, c0, c1);
    if (pj->sweep2)
        for (int64_t i = pj->blocks_per_piece - 1; i >= 0; i--) pj->sweep2((void *)j, piece_block(j, piece, i));
}

/* When a piece's inputs fit in FUSE_BYTES, one task can take a whole piece
 * through both sweeps: the second sweep then reads it from cache instead of
 * memory, and the pool is woken once instead of twice. The blocks and the
 * order of every addition stay the same, so does every bit; only the schedule
 * changes. Used when the pieces keep the threads evenly busy. (A piece of
 * rows is whole rows of up to ROW_GROUP channels: narrower slabs of rows
 * would fit more shapes but run slower, each row a TLB miss, and with a
 * power-of-two row length, in a few cache sets only.) */
#define FUSE_BYTES (4 << 20)

static void run_two_sweeps(const bn_job *j, int inputs, mg_task_fn sweep1, bn_finish_fn finish,
                           mg_task_fn sweep2) {
    const int threads = mg_pool_threads();
    bn_piece_job pj = {.j = j, .sweep1 = sweep1, .sweep2 = sweep2, .finish = finish};
    pj.pieces = j->S > 1 ? j->C : j->groups;
    pj.blocks_per_piece = j->S > 1 ? j->blocks_per_channel : j->ntasks / j->groups;
    const double piece_bytes = (double)(j->N * (j->S > 1 ? j->S : min64(j->C, j->row_group))) * (double)j->item * inputs;
    const int balanced = threads == 1 || pj.pieces % threads == 0 || pj.pieces >= 4 * threads;
    if (piece_bytes <= FUSE_BYTES && balanced) {
        if (j->N * j->C * j->S < MG_PARALLEL_MIN_ELEMS)
            for (int64_t piece = 0; piece < pj.pieces; piece++) piece_task(&pj, piece);
        else
            mg_parallel_for(pj.pieces, piece_task, &pj);
        return;
    }
    run(j, sweep1, 0);
    if (j->S == 1) fold_row_sums(j, 0, j->C);
    finish(j, 0, j->C);
    if (sweep2) run(j, sweep2, 1);
}

/* Room for the block sums, the centers, the elementwise parameters and the
 * folded sums. */
static mg_status alloc_scratch(const char *fn, bn_job *j) {
    const int64_t count = j->nsums + 7 * j->C;
    double *mem = malloc((size_t)count * sizeof *mem);
    if (!mem) return mg_fail(MG_ERR_NOMEM, "%s: cannot allocate %lld doubles of scratch", fn, (long long)count);
    j->sums = mem;
    j->center = (char *)(mem + j->nsums);
    j->params = (char *)(mem + j->nsums + j->C);
    j->folded = mem + j->nsums + 5 * j->C;
    return MG_OK;
}

/* Parameter i of channel c, rounded to x's dtype. */
static void set_param(const bn_job *j, int i, int64_t c, double v) {
    if (j->item == 4) ((float *)j->params)[i * j->C + c] = (float)v;
    else ((double *)j->params)[i * j->C + c] = v;
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

/* The centers k of the forward's first sweep, which sums x - k and (x - k)^2
 * in x's dtype: k of channel c is the mean of CENTER_SAMPLES values spread
 * evenly over the channel (repeated when it has fewer), added pairwise and
 * rounded to x's dtype. Pairwise, 8 equal values add up exactly, so a
 * constant channel gets k = its value and then exactly beta. Near the mean
 * (the first value may be far out), x - k stays small, and it is exact for
 * x within a factor 2 of k, as in a channel with a large offset. */
#define CENTER_SAMPLES 8
_Static_assert(CENTER_SAMPLES == 8, "forward_centers adds exactly 8 samples pairwise");

static void forward_centers(const bn_job *j, const void *x) {
    const int64_t n = j->N * j->S;
    int64_t at[CENTER_SAMPLES];   /* offset of sample i of channel 0 */
    for (int i = 0; i < CENTER_SAMPLES; i++) {
        const int64_t value = i * n / CENTER_SAMPLES;   /* index in (n, s) order */
        at[i] = value / j->S * j->C * j->S + value % j->S;
    }
    for (int64_t c = 0; c < j->C; c++) {
        double v[CENTER_SAMPLES];
        for (int i = 0; i < CENTER_SAMPLES; i++) v[i] = param(x, j->dtype, at[i] + c * j->S, 0.0);
        /* The pairs (i, i + 4), then (i, i + 2), then the last two, in scalar
         * registers: written as a loop over v, GCC added it in vectors loaded
         * from the stack right after scalar stores to it, and each load waited
         * for the stores (store forwarding fails across sizes): 70% of a
         * (2, 1024) float32 forward's own time (24.2 -> 11.7 us, AMD EPYC Zen 3). */
        const double a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
        put(j->center, j->dtype, c, ((a0 + a2) + (a1 + a3)) / CENTER_SAMPLES);
    }
}

/* ---- entry points ------------------------------------------------------- */

/* Forward, between the sweeps: the statistics of the channels [c0, c1) and
 * the parameters of y = (x - mean)*(rstd*gamma) + beta (the kernel's
 * forward_params has the formulas). */
static void finish_forward(const bn_job *j, int64_t c0, int64_t c1) {
    const double *s1 = j->sums, *s2 = j->sums + j->C;   /* rows, once fold_row_sums has run */
    if (j->S > 1) {
        for (int64_t c = c0; c < c1; c++) channel_sums(j, c, &j->folded[c], &j->folded[j->C + c]);
        s1 = j->folded, s2 = j->folded + j->C;
    }
    j->k->forward_params(j->params, j->C, c0, c1, (double)(j->N * j->S), s1, s2, j->center, j->weight,
                         j->bias, j->eps, j->save_mean, j->save_rstd, j->batch_var);
}

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
    plan(&j, &mg_kernels->batchnorm[dtype], N, C, S, dtype, ROW_GROUP);
    TRY(alloc_scratch(fn, &j));
    j.in0 = x, j.out = y;
    j.eps = eps, j.weight = weight, j.bias = bias;
    j.save_mean = save_mean, j.save_rstd = save_rstd, j.batch_var = batch_var;
    /* Sweep 1 sums x - k with k from forward_centers; sweep 2 writes y. */
    forward_centers(&j, x);
    run_two_sweeps(&j, 1, stat_task, finish_forward, affine_task);
    free(j.sums);
    return MG_OK;
}

/* y = x*scale + shift in one sweep, scale = gamma/sqrt(running_var + eps),
 * shift = beta - running_mean*scale; with running_mean = beta = NULL it is
 * the eval backward dx = dy*gamma/sqrt(running_var + eps). */
static mg_status eval_scale_shift(const char *fn, int dtype, int64_t N, int64_t C, int64_t S,
                                  const void *x, const void *running_mean, const void *running_var,
                                  const void *weight, const void *bias, double eps, void *y) {
    bn_job j;
    plan(&j, &mg_kernels->batchnorm[dtype], N, C, S, dtype, C);
    j.nsums = 0;   /* no sums in this sweep */
    TRY(alloc_scratch(fn, &j));
    j.k->eval_params(j.params, C, running_mean, running_var, weight, bias, eps);
    j.in0 = x;
    j.out = y;
    run(&j, scale_task, 0);
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

/* Backward, between the sweeps: dweight, dbias of channel c and the
 * parameters of dx = k*dy + (c*(x - mean) + b). */
static void finish_backward_channel(const bn_job *j, int64_t c) {
    double sum_dy, sum_dy_xk;
    channel_sums(j, c, &sum_dy, &sum_dy_xk);
    const double n = (double)(j->N * j->S);
    const double rstd = j->rstd[c], mean = j->mean[c], hi = param(j->center, j->dtype, c, 0.0);
    /* sweep 1 summed dy*(x - hi), hi = mean rounded to x's dtype */
    const double sum_dy_xmu = sum_dy_xk - (mean - hi) * sum_dy;
    const double dgamma = sum_dy_xmu * rstd;   /* sum(dy*xhat) */
    if (j->dweight) put(j->dweight, j->dtype, c, dgamma);
    if (j->dbias) put(j->dbias, j->dtype, c, sum_dy);
    const double k = param(j->weight, j->dtype, c, 1.0) * rstd, cf = -k * rstd * (dgamma / n);
    set_param(j, 0, c, k);
    set_param(j, 1, c, cf);
    set_param(j, 2, c, hi);
    set_param(j, 3, c, -k * (sum_dy / n) - cf * (mean - hi));
}

static void finish_backward(const bn_job *j, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) finish_backward_channel(j, c);
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
    plan(&j, &mg_kernels->batchnorm[dtype], N, C, S, dtype, ROW_GROUP);
    TRY(alloc_scratch(fn, &j));
    j.in0 = dy, j.in1 = x, j.out = dx;
    j.weight = weight, j.mean = save_mean, j.rstd = save_rstd, j.dweight = dweight, j.dbias = dbias;
    /* Sweep 1 sums dy and dy*(x - k), k = the mean rounded to x's dtype; sweep 2 writes dx. */
    for (int64_t c = 0; c < C; c++) put(j.center, dtype, c, save_mean[c]);
    run_two_sweeps(&j, 2, grad_task, finish_backward, dx ? dx_task : NULL);
    free(j.sums);
    return MG_OK;
}
