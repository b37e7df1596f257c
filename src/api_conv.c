/* api_conv.c - mg_conv2d_* and mg_{max,avg}_pool2d_*: argument checks and drivers.
 *
 * Convolution of one image n (K = c_in*kh*kw, P = OH*OW):
 *
 *   forward     col = im2col(x[n])                       (K, P)
 *               out[n] = weight . col  (+ bias)          (O, K) . (K, P)
 *   backward    dweight += dout[n] . col^T                (O, P) . (P, K)
 *               dx[n] = col2im(weight^T . dout[n])        (K, O) . (O, P)
 *
 * col is built for a band of output rows at a time (at most TILE_ELEMS
 * elements), and for a 1x1 kernel with stride 1 and no padding col is x[n]
 * itself. Every product goes through gemm() below, the one place that calls
 * mg_matmul.
 *
 * Threads and determinism. Images are independent in forward and in dx, so
 * the pool runs blocks of images, one task per thread, each with its own col
 * buffer. dweight and dbias are sums over images: the batch is cut into
 * nchunks chunks (a number that depends on the shapes only), each chunk sums
 * its images in order into its own partial, and the partials are added in
 * chunk order (in float64). mg_matmul's bits do not depend on the thread
 * count either, so nothing does. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cpu/kernels.h"
#include "internal.h"

#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)

/* Elements of one im2col band. */
#define TILE_ELEMS (1 << 18)
/* At most this many partial dweights, and this many bytes for them. */
#define MAX_CHUNKS 32
#define MAX_PARTIAL_BYTES ((int64_t)1 << 25)
/* Below this many multiply-adds a convolution runs on the calling thread
 * (mg_matmul may still use the pool inside). */
#define PARALLEL_MIN_WORK (1 << 18)
/* Pooling: input elements per task. */
#define POOL_CHUNK_ELEMS (1 << 15)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- argument checks ---------------------------------------------------- */

static mg_status check_dtype(const char *fn, int dtype) {
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtype %d is neither float32 (0) nor float64 (1)", fn, dtype);
    return MG_OK;
}

mg_status mg_conv_check_sizes(const char *fn, const char *what, int64_t a, int64_t b, int64_t c, int64_t d) {
    const int64_t dims[4] = {a, b, c, d};
    int64_t total = 8;
    for (int i = 0; i < 4; i++) {
        if (dims[i] < 0)
            return mg_fail(MG_ERR_SHAPE, "%s: %s has a negative size (%lld, %lld, %lld, %lld)", fn, what,
                           (long long)a, (long long)b, (long long)c, (long long)d);
        if (__builtin_mul_overflow(total, dims[i], &total))
            return mg_fail(MG_ERR_SHAPE, "%s: %s (%lld, %lld, %lld, %lld) is too large", fn, what,
                           (long long)a, (long long)b, (long long)c, (long long)d);
    }
    return MG_OK;
}

mg_status mg_conv_make_geometry(const char *fn, const mg_window2d_t *win, int64_t h, int64_t w, int pool,
                                mg_conv_geometry *g) {
    if (!win) return mg_fail(MG_ERR_ARG, "%s: window is NULL", fn);
    if (win->kernel_h < 1 || win->kernel_w < 1 || win->stride_h < 1 || win->stride_w < 1 ||
        win->pad_h < 0 || win->pad_w < 0 || win->pad_h > INT32_MAX || win->pad_w > INT32_MAX ||
        win->kernel_h > INT32_MAX || win->kernel_w > INT32_MAX)
        return mg_fail(MG_ERR_ARG, "%s: bad window: kernel %lldx%lld (need >= 1), stride %lldx%lld (need >= 1), "
                       "padding %lldx%lld (need >= 0)", fn, (long long)win->kernel_h, (long long)win->kernel_w,
                       (long long)win->stride_h, (long long)win->stride_w, (long long)win->pad_h,
                       (long long)win->pad_w);
    if (pool && (2 * win->pad_h > win->kernel_h || 2 * win->pad_w > win->kernel_w))
        return mg_fail(MG_ERR_ARG, "%s: padding %lldx%lld is more than half the kernel %lldx%lld", fn,
                       (long long)win->pad_h, (long long)win->pad_w, (long long)win->kernel_h,
                       (long long)win->kernel_w);
    const int64_t padded_h = h + 2 * win->pad_h, padded_w = w + 2 * win->pad_w;  /* h, w < 2^61 */
    if (padded_h < win->kernel_h || padded_w < win->kernel_w)
        return mg_fail(MG_ERR_SHAPE, "%s: kernel %lldx%lld is larger than the padded input %lldx%lld "
                       "(input %lldx%lld, padding %lldx%lld)", fn, (long long)win->kernel_h,
                       (long long)win->kernel_w, (long long)padded_h, (long long)padded_w, (long long)h,
                       (long long)w, (long long)win->pad_h, (long long)win->pad_w);
    *g = (mg_conv_geometry){
        .channels = 0, .h = h, .w = w,
        .kh = win->kernel_h, .kw = win->kernel_w, .sh = win->stride_h, .sw = win->stride_w,
        .ph = win->pad_h, .pw = win->pad_w,
        .oh = (padded_h - win->kernel_h) / win->stride_h + 1,
        .ow = (padded_w - win->kernel_w) / win->stride_w + 1,
    };
    return MG_OK;
}

/* ---- convolution ---------------------------------------------------------- */

typedef struct {
    int dtype;
    int64_t item;
    int64_t batch, c_out, K, P;      /* K = c_in*kh*kw, P = OH*OW */
    int64_t x_size;                  /* c_in*h*w: one image */
    mg_conv_geometry g;              /* one image, channels = c_in */
    int64_t tile_rows;               /* output rows per im2col band */
    int direct;                      /* 1x1 kernel, stride 1, no padding: col = x[n] */
    const char *x, *weight, *bias, *dout;
    char *out, *dx, *dweight, *dbias;
    int64_t ntasks;                  /* tasks running at once, one buffer each */
    int64_t nchunks;                 /* backward: partial sums over the batch */
    char *col;                       /* ntasks col buffers of col_elems <= TILE_ELEMS elements, */
    int64_t col_elems, col_stride;   /* col_stride bytes apart */
    char *partial_w;                 /* nchunks x (c_out x K), dtype */
    double *partial_b;               /* nchunks x c_out */
    atomic_int status;               /* the first failure of a task, and its message */
    char message[256];
} conv_job;

/* The one place convolution multiplies matrices:
 * C (m x n, row stride ldc) = A . B (or C += A . B with accumulate), with A
 * and B read at element strides (rows, columns). */
static mg_status gemm(const conv_job *j, int64_t m, int64_t n, int64_t k, const void *a, int64_t ars,
                      int64_t acs, const void *b, int64_t brs, int64_t bcs, void *c, int64_t ldc,
                      int accumulate) {
    return mg_matmul(j->dtype, 1, m, n, k, a, 0, ars, acs, b, 0, brs, bcs, c, 0, ldc, accumulate);
}

/* Keeps the first failure of any task (its message is on that task's thread). */
static void task_failed(conv_job *j, mg_status s) {
    int expected = MG_OK;
    if (atomic_compare_exchange_strong(&j->status, &expected, (int)s))
        snprintf(j->message, sizeof j->message, "%s", mg_last_error());
}

static mg_status job_status(conv_job *j) {
    const int s = atomic_load(&j->status);
    return s == MG_OK ? MG_OK : mg_fail((mg_status)s, "%s", j->message);
}

/* out[n] = weight . im2col(x[n]) (+ bias), band by band. */
static mg_status forward_image(const conv_job *j, int64_t n, char *col) {
    const mg_kernel_table *t = mg_kernels;
    const char *x = j->x + n * j->x_size * j->item;
    char *out = j->out + n * j->c_out * j->P * j->item;
    if (j->direct) {
        TRY(gemm(j, j->c_out, j->P, j->K, j->weight, j->K, 1, x, j->P, 1, out, j->P, 0));
    } else {
        for (int64_t row0 = 0; row0 < j->g.oh; row0 += j->tile_rows) {
            const int64_t rows = min64(j->tile_rows, j->g.oh - row0), cols = rows * j->g.ow;
            t->im2col[j->dtype](&j->g, row0, rows, x, col);
            TRY(gemm(j, j->c_out, cols, j->K, j->weight, j->K, 1, col, cols, 1,
                     out + row0 * j->g.ow * j->item, j->P, 0));
        }
    }
    if (j->bias) t->add_bias[j->dtype](j->c_out, j->P, j->bias, out);
    return MG_OK;
}

/* Task t: images [t*batch/ntasks, (t+1)*batch/ntasks) with col buffer t. */
static void forward_task(void *ctx, int64_t task) {
    conv_job *j = ctx;
    char *col = j->col + task * j->col_stride;
    for (int64_t n = task * j->batch / j->ntasks; n < (task + 1) * j->batch / j->ntasks; n++) {
        const mg_status s = forward_image(j, n, col);
        if (s != MG_OK) { task_failed(j, s); return; }
    }
}

/* Image n of chunk `chunk`: adds its share of dweight and dbias to the
 * chunk's partials (first = the chunk's first image: store, not add) and
 * writes dx[n]. */
static mg_status backward_image(const conv_job *j, int64_t n, int64_t chunk, int first, char *col) {
    const mg_kernel_table *t = mg_kernels;
    const int64_t K = j->K, P = j->P, O = j->c_out, item = j->item;
    const char *x = j->x ? j->x + n * j->x_size * item : NULL;
    const char *dout = j->dout + n * O * P * item;
    char *dx = j->dx ? j->dx + n * j->x_size * item : NULL;
    char *pw = j->dweight ? j->partial_w + chunk * O * K * item : NULL;

    if (j->dbias) {   /* partial_b[o] += sum of the plane dout[n, o], in a fixed order */
        double *pb = j->partial_b + chunk * O;
        for (int64_t o = 0; o < O; o++) {
            double lanes[MG_SUM_LANES] = {0};
            t->sum_lanes[j->dtype](dout + o * P * item, P, lanes);
            const double s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                             ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
            pb[o] = first ? s : pb[o] + s;
        }
    }
    if (j->direct) {
        /* dweight (O, K) += dout[n] (O, P) . x[n]^T (P, K);  dx[n] (K, P) = weight^T (K, O) . dout[n] (O, P) */
        if (pw) TRY(gemm(j, O, K, P, dout, P, 1, x, 1, P, pw, K, !first));
        if (dx) TRY(gemm(j, K, P, O, j->weight, 1, K, dout, P, 1, dx, P, 0));
        return MG_OK;
    }
    if (dx) memset(dx, 0, (size_t)(j->x_size * item));
    for (int64_t row0 = 0; row0 < j->g.oh; row0 += j->tile_rows) {
        const int64_t rows = min64(j->tile_rows, j->g.oh - row0), cols = rows * j->g.ow;
        const char *dout_band = dout + row0 * j->g.ow * item;     /* (O, cols), row stride P */
        if (pw) {   /* partial (O, K) += dout band (O, cols) . col^T (cols, K) */
            t->im2col[j->dtype](&j->g, row0, rows, x, col);
            TRY(gemm(j, O, K, cols, dout_band, P, 1, col, 1, cols, pw, K, !(first && row0 == 0)));
        }
        if (dx) {   /* col (K, cols) = weight^T (K, O) . dout band (O, cols), then add back into dx */
            TRY(gemm(j, K, cols, O, j->weight, 1, K, dout_band, P, 1, col, cols, 0));
            t->col2im[j->dtype](&j->g, row0, rows, col, dx);
        }
    }
    return MG_OK;
}

/* Task t: chunks [t*nchunks/ntasks, (t+1)*nchunks/ntasks); chunk c holds
 * images [c*batch/nchunks, (c+1)*batch/nchunks). */
static void backward_task(void *ctx, int64_t task) {
    conv_job *j = ctx;
    char *col = j->col + task * j->col_stride;
    for (int64_t c = task * j->nchunks / j->ntasks; c < (task + 1) * j->nchunks / j->ntasks; c++)
        for (int64_t n = c * j->batch / j->nchunks; n < (c + 1) * j->batch / j->nchunks; n++) {
            const mg_status s = backward_image(j, n, c, n == c * j->batch / j->nchunks, col);
            if (s != MG_OK) { task_failed(j, s); return; }
        }
}

/* Checks shared by forward and backward; fills the job's shapes. */
static mg_status setup(conv_job *j, const char *fn, int dtype, int64_t batch, int64_t c_in, int64_t h,
                       int64_t w, int64_t c_out, const mg_window2d_t *window) {
    TRY(mg_ensure_init());
    TRY(check_dtype(fn, dtype));
    TRY(mg_conv_check_sizes(fn, "input", batch, c_in, h, w));
    if (c_out < 0) return mg_fail(MG_ERR_SHAPE, "%s: negative c_out %lld", fn, (long long)c_out);
    TRY(mg_conv_make_geometry(fn, window, h, w, 0, &j->g));
    TRY(mg_conv_check_sizes(fn, "weight", c_out, c_in, j->g.kh, j->g.kw));
    TRY(mg_conv_check_sizes(fn, "output", batch, c_out, j->g.oh, j->g.ow));
    TRY(mg_conv_check_sizes(fn, "im2col matrix", c_in * j->g.kh * j->g.kw, j->g.oh * j->g.ow, 1, 1));
    j->g.channels = c_in;
    j->dtype = dtype;
    j->item = dtype == MG_F32 ? 4 : 8;
    j->batch = batch;
    j->c_out = c_out;
    j->K = c_in * j->g.kh * j->g.kw;
    j->P = j->g.oh * j->g.ow;
    j->x_size = c_in * h * w;
    j->direct = j->g.kh == 1 && j->g.kw == 1 && j->g.sh == 1 && j->g.sw == 1 && j->g.ph == 0 && j->g.pw == 0;
    const int64_t band = j->K * j->g.ow;
    j->tile_rows = band == 0 ? j->g.oh : min64(j->g.oh, TILE_ELEMS / band > 1 ? TILE_ELEMS / band : 1);
    j->col_elems = j->direct ? 0 : j->tile_rows * band;
    atomic_init(&j->status, MG_OK);
    return MG_OK;
}

/* How many tasks run at once on `units` independent pieces of work. */
static int64_t task_count(const conv_job *j, int64_t units) {
    const double work = (double)j->batch * (double)j->c_out * (double)j->K * (double)j->P;
    const int64_t threads = mg_pool_threads();
    return work < PARALLEL_MIN_WORK || units < 1 ? 1 : min64(threads, units);
}

static size_t round64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* Allocates ntasks col buffers plus `extra` bytes after them, each piece
 * starting on a 64-byte boundary (col_stride is col_elems rounded up). */
static mg_status alloc_work(conv_job *j, const char *fn, size_t extra, char **tail) {
    j->col_stride = (int64_t)round64((size_t)(j->col_elems * j->item));
    const size_t col_bytes = (size_t)(j->ntasks * j->col_stride), total = col_bytes + extra;
    j->col = NULL;
    *tail = NULL;
    if (total == 0) return MG_OK;
    if (mg_alloc(total, (void **)&j->col) != MG_OK)
        return mg_fail(MG_ERR_NOMEM, "%s: cannot allocate %zu bytes of workspace", fn, total);
    *tail = j->col + col_bytes;
    return MG_OK;
}

mg_status mg_conv2d_forward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w, int64_t c_out,
                            const mg_window2d_t *window, const void *x, const void *weight, const void *bias,
                            void *out) {
    const char *fn = "mg_conv2d_forward";
    conv_job j = {0};
    TRY(setup(&j, fn, dtype, batch, c_in, h, w, c_out, window));
    if (batch * c_out * j.P == 0) return MG_OK;
    if (!out || (j.batch * j.x_size > 0 && !x) || (c_out * j.K > 0 && !weight))
        return mg_fail(MG_ERR_ARG, "%s: NULL buffer (x=%p, weight=%p, out=%p)", fn, x, weight, out);
    j.x = x;
    j.weight = weight;
    j.bias = bias;
    j.out = out;
    j.ntasks = task_count(&j, batch);
    char *unused;
    TRY(alloc_work(&j, fn, 0, &unused));
    mg_parallel_for(j.ntasks, forward_task, &j);
    if (j.col) mg_free(j.col);
    return job_status(&j);
}

/* dweight = sum of the chunk partials in chunk order, dbias likewise. */
static void combine_partials(const conv_job *j) {
    const int64_t n = j->c_out * j->K;
    if (j->dweight) {
        for (int64_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int64_t c = 0; c < j->nchunks; c++)
                s += j->dtype == MG_F32 ? (double)((const float *)j->partial_w)[c * n + i]
                                        : ((const double *)j->partial_w)[c * n + i];
            if (j->dtype == MG_F32) ((float *)j->dweight)[i] = (float)s;
            else ((double *)j->dweight)[i] = s;
        }
    }
    if (j->dbias) {
        for (int64_t o = 0; o < j->c_out; o++) {
            double s = 0.0;
            for (int64_t c = 0; c < j->nchunks; c++) s += j->partial_b[c * j->c_out + o];
            if (j->dtype == MG_F32) ((float *)j->dbias)[o] = (float)s;
            else ((double *)j->dbias)[o] = s;
        }
    }
}

mg_status mg_conv2d_backward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w, int64_t c_out,
                             const mg_window2d_t *window, const void *x, const void *weight, const void *dout,
                             void *dx, void *dweight, void *dbias) {
    const char *fn = "mg_conv2d_backward";
    conv_job j = {0};
    TRY(setup(&j, fn, dtype, batch, c_in, h, w, c_out, window));
    const int64_t w_size = c_out * j.K;
    if (!dx && !dweight && !dbias) return MG_OK;
    if ((dx && j.batch * j.x_size > 0 && (!weight || !dout)) ||
        (dweight && w_size > 0 && (!x || !dout)) || (dbias && c_out > 0 && !dout))
        return mg_fail(MG_ERR_ARG, "%s: NULL buffer (x=%p, weight=%p, dout=%p, dx=%p, dweight=%p, dbias=%p)",
                       fn, x, weight, dout, dx, dweight, dbias);
    if (batch * j.P == 0 || c_out == 0) {   /* empty sums */
        if (dx) memset(dx, 0, (size_t)(batch * j.x_size * j.item));
        if (dweight) memset(dweight, 0, (size_t)(w_size * j.item));
        if (dbias) memset(dbias, 0, (size_t)(c_out * j.item));
        return MG_OK;
    }
    j.x = x;
    j.weight = weight;
    j.dout = dout;
    j.dx = dx;
    j.dweight = w_size > 0 ? dweight : NULL;
    j.dbias = dbias;
    j.nchunks = min64(batch, MAX_CHUNKS);
    if (j.dweight) j.nchunks = min64(j.nchunks, MAX_PARTIAL_BYTES / (w_size * j.item) > 1
                                                    ? MAX_PARTIAL_BYTES / (w_size * j.item) : 1);
    j.ntasks = task_count(&j, j.nchunks);
    const size_t w_bytes = j.dweight ? round64((size_t)(j.nchunks * w_size * j.item)) : 0;
    const size_t b_bytes = dbias ? (size_t)(j.nchunks * c_out) * sizeof(double) : 0;
    char *tail;
    TRY(alloc_work(&j, fn, w_bytes + b_bytes, &tail));
    j.partial_w = tail;
    j.partial_b = (double *)(tail + w_bytes);
    mg_parallel_for(j.ntasks, backward_task, &j);
    if (atomic_load(&j.status) == MG_OK) combine_partials(&j);
    if (j.col) mg_free(j.col);
    return job_status(&j);
}

/* ---- pooling ---------------------------------------------------------------- */

typedef enum { MAX_FORWARD, MAX_BACKWARD, AVG_FORWARD, AVG_BACKWARD } pool_kind;

typedef struct {
    pool_kind kind;
    int dtype;
    int64_t item, planes, per_task;   /* planes = batch*channels; per_task planes per task */
    mg_conv_geometry g;               /* channels unused: each call sets its own */
    const char *x, *dout;
    char *out;                        /* out, or dx in backward */
} pool_job;

static void pool_task(void *ctx, int64_t task) {
    const pool_job *j = ctx;
    const mg_kernel_table *t = mg_kernels;
    mg_conv_geometry g = j->g;
    const int64_t first = task * j->per_task;
    g.channels = min64(j->per_task, j->planes - first);
    const int64_t in_off = first * g.h * g.w * j->item, out_off = first * g.oh * g.ow * j->item;
    switch (j->kind) {
    case MAX_FORWARD: t->max_pool_forward[j->dtype](&g, j->x + in_off, j->out + out_off); break;
    case AVG_FORWARD: t->avg_pool_forward[j->dtype](&g, j->x + in_off, j->out + out_off); break;
    case MAX_BACKWARD: t->max_pool_backward[j->dtype](&g, j->x + in_off, j->dout + out_off, j->out + in_off); break;
    case AVG_BACKWARD: t->avg_pool_backward[j->dtype](&g, j->dout + out_off, j->out + in_off); break;
    }
}

static mg_status pool(const char *fn, pool_kind kind, int dtype, int64_t batch, int64_t channels, int64_t h,
                      int64_t w, const mg_window2d_t *window, const void *x, const void *dout, void *out) {
    TRY(mg_ensure_init());
    TRY(check_dtype(fn, dtype));
    TRY(mg_conv_check_sizes(fn, "input", batch, channels, h, w));
    pool_job j = {.kind = kind, .dtype = dtype, .item = dtype == MG_F32 ? 4 : 8, .planes = batch * channels,
                  .x = x, .dout = dout, .out = out};
    TRY(mg_conv_make_geometry(fn, window, h, w, 1, &j.g));
    TRY(mg_conv_check_sizes(fn, "output", batch, channels, j.g.oh, j.g.ow));
    if (j.planes == 0) return MG_OK;
    if (h == 0 || w == 0)   /* a window of padding alone has no max */
        return mg_fail(MG_ERR_SHAPE, "%s: empty image %lldx%lld", fn, (long long)h, (long long)w);
    const int64_t in_elems = j.planes * h * w, out_elems = j.planes * j.g.oh * j.g.ow;
    const int needs_x = kind != AVG_BACKWARD, needs_dout = kind == MAX_BACKWARD || kind == AVG_BACKWARD;
    if (!out || (needs_x && !x) || (needs_dout && !dout))
        return mg_fail(MG_ERR_ARG, "%s: NULL buffer", fn);
    const int64_t plane_elems = h * w + j.g.oh * j.g.ow;
    j.per_task = in_elems + out_elems < MG_PARALLEL_MIN_ELEMS ? j.planes
                 : POOL_CHUNK_ELEMS / plane_elems > 1 ? POOL_CHUNK_ELEMS / plane_elems : 1;
    mg_parallel_for((j.planes + j.per_task - 1) / j.per_task, pool_task, &j);
    return MG_OK;
}

mg_status mg_max_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                const mg_window2d_t *window, const void *x, void *out) {
    return pool("mg_max_pool2d_forward", MAX_FORWARD, dtype, batch, channels, h, w, window, x, NULL, out);
}

mg_status mg_max_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                 const mg_window2d_t *window, const void *x, const void *dout, void *dx) {
    return pool("mg_max_pool2d_backward", MAX_BACKWARD, dtype, batch, channels, h, w, window, x, dout, dx);
}

mg_status mg_avg_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                const mg_window2d_t *window, const void *x, void *out) {
    return pool("mg_avg_pool2d_forward", AVG_FORWARD, dtype, batch, channels, h, w, window, x, NULL, out);
}

mg_status mg_avg_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                 const mg_window2d_t *window, const void *dout, void *dx) {
    return pool("mg_avg_pool2d_backward", AVG_BACKWARD, dtype, batch, channels, h, w, window, NULL, dout, dx);
}
