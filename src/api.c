/* api.c - the public entry points: check the arguments, then run kernels.
 *
 * Everything below this file trusts its arguments. Work large enough to be
 * worth it is cut into fixed-size chunks run on the thread pool; the chunk
 * size never depends on the thread count, which keeps results bitwise equal
 * for any number of threads. */
#include <stdlib.h>

#include "cpu/kernels.h"
#include "internal.h"

#define CHUNK_ELEMS (1 << 15)

static mg_status check_dtype(const char *fn, int dtype) {
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtype %d is neither float32 (0) nor float64 (1)", fn, dtype);
    return MG_OK;
}

static mg_status check_op(const char *fn, int op) {
    if (op < 0 || op >= MG_NUM_BINARY_OPS) return mg_fail(MG_ERR_ARG, "%s: unknown op %d", fn, op);
    return MG_OK;
}

#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)

static size_t itemsize(int dtype) { return dtype == MG_F32 ? 4 : 8; }

/* ---- mg_binary_contig --------------------------------------------------- */

typedef struct {
    mg_binary_loop_fn loop;
    const char *a, *b;
    char *out;
    int64_t n;
    size_t item;
    int stream;   /* the loops with a vector form write out with streaming stores */
} contig_job;

static void contig_task(void *ctx, int64_t task) {
    const contig_job *j = ctx;
    const int64_t start = task * CHUNK_ELEMS;
    const int64_t len = j->n - start < CHUNK_ELEMS ? j->n - start : CHUNK_ELEMS;
    const size_t off = (size_t)start * j->item;
    j->loop(len, j->a + off, 1, j->b + off, 1, j->out + off, j->stream);
}

mg_status mg_binary_contig(int op, int dtype, int64_t n, const void *a, const void *b, void *out) {
    TRY(mg_ensure_init());
    TRY(check_op("mg_binary_contig", op));
    TRY(check_dtype("mg_binary_contig", dtype));
    if (n < 0) return mg_fail(MG_ERR_ARG, "mg_binary_contig: negative length %lld", (long long)n);
    if (n == 0) return MG_OK;
    if (!a || !b || !out) return mg_fail(MG_ERR_ARG, "mg_binary_contig: NULL buffer");
    const size_t item = itemsize(dtype);
    contig_job j = {mg_kernels->binary[op][dtype], a, b, out, n, item, n * (int64_t)item >= mg_stream_min_bytes};
    if (n < MG_PARALLEL_MIN_ELEMS) {
        j.loop(n, a, 1, b, 1, out, j.stream);
        return MG_OK;
    }
    mg_parallel_for((n + CHUNK_ELEMS - 1) / CHUNK_ELEMS, contig_task, &j);
    return MG_OK;
}

/* ---- mg_binary (broadcasting) ------------------------------------------- */

typedef struct {
    mg_binary_loop_fn loop;
    int ndim;                     /* after merging; the last axis is the inner loop */
    int64_t shape[MG_MAX_DIMS];
    int64_t sa[MG_MAX_DIMS], sb[MG_MAX_DIMS];
    const char *a, *b;
    char *out;
    size_t item;
    int stream;                   /* see contig_job */
    int64_t rows;                 /* of the outer axes */
    int64_t rows_per_task;        /* short rows: whole rows per task */
    int64_t pieces_per_row;       /* long rows: CHUNK_ELEMS pieces of a row, one per task */
} strided_job;

/* Runs the inner loop over the elements [start, start + len) of row `row`. */
static void strided_piece(const strided_job *j, int64_t row, int64_t start, int64_t len) {
    const int outer = j->ndim - 1;
    int64_t rest = row, off_a = start * j->sa[outer], off_b = start * j->sb[outer];
    for (int d = outer - 1; d >= 0; d--) {
        const int64_t i = rest % j->shape[d];
        rest /= j->shape[d];
        off_a += i * j->sa[d];
        off_b += i * j->sb[d];
    }
    j->loop(len, j->a + off_a * (int64_t)j->item, j->sa[outer], j->b + off_b * (int64_t)j->item,
            j->sb[outer], j->out + (row * j->shape[outer] + start) * (int64_t)j->item, j->stream);
}

static void strided_task(void *ctx, int64_t task) {
    const strided_job *j = ctx;
    const int64_t inner = j->shape[j->ndim - 1];
    if (j->pieces_per_row > 1) {
        const int64_t start = task % j->pieces_per_row * CHUNK_ELEMS;
        strided_piece(j, task / j->pieces_per_row, start,
                      inner - start < CHUNK_ELEMS ? inner - start : CHUNK_ELEMS);
        return;
    }
    const int64_t first = task * j->rows_per_task;
    const int64_t last = first + j->rows_per_task < j->rows ? first + j->rows_per_task : j->rows;
    for (int64_t row = first; row < last; row++) strided_piece(j, row, 0, inner);
}

mg_status mg_binary(int op, int dtype, int ndim, const int64_t *shape, const void *a,
                    const int64_t *a_strides, const void *b, const int64_t *b_strides, void *out) {
    TRY(mg_ensure_init());
    TRY(check_op("mg_binary", op));
    TRY(check_dtype("mg_binary", dtype));
    if (ndim < 0 || ndim > MG_MAX_DIMS)
        return mg_fail(MG_ERR_SHAPE, "mg_binary: ndim %d is not in [0, %d]", ndim, MG_MAX_DIMS);
    if (ndim > 0 && (!shape || !a_strides || !b_strides))
        return mg_fail(MG_ERR_ARG, "mg_binary: NULL shape or strides");
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return mg_fail(MG_ERR_SHAPE, "mg_binary: negative size %lld on axis %d", (long long)shape[d], d);
        if (shape[d] > 0 && total > INT64_MAX / shape[d]) return mg_fail(MG_ERR_SHAPE, "mg_binary: shape too large");
        total *= shape[d];
    }
    if (total == 0) return MG_OK;
    if (!a || !b || !out) return mg_fail(MG_ERR_ARG, "mg_binary: NULL buffer");

    /* Merge axis d into axis d+1 wherever both inputs step through them as
     * one flat axis, so that contiguous data becomes one long inner loop. */
    strided_job j = {.loop = mg_kernels->binary[op][dtype], .a = a, .b = b, .out = out, .item = itemsize(dtype)};
    j.ndim = 1;
    j.shape[0] = 1;
    j.sa[0] = j.sb[0] = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        const int last = j.ndim - 1;
        const int mergeable = j.shape[last] == 1 ||
            (j.sa[last] == a_strides[d] * shape[d] && j.sb[last] == b_strides[d] * shape[d]);
        if (mergeable) {
            j.shape[last] *= shape[d];
            j.sa[last] = a_strides[d];
            j.sb[last] = b_strides[d];
        } else {
            j.shape[j.ndim] = shape[d];
            j.sa[j.ndim] = a_strides[d];
            j.sb[j.ndim] = b_strides[d];
            j.ndim++;
        }
    }
    const int64_t inner = j.shape[j.ndim - 1];
    j.rows = total / inner;
    j.stream = total * (int64_t)j.item >= mg_stream_min_bytes;
    int64_t tasks;
    if (inner > CHUNK_ELEMS) {
        j.pieces_per_row = (inner + CHUNK_ELEMS - 1) / CHUNK_ELEMS;
        tasks = j.rows * j.pieces_per_row;
    } else {
        j.pieces_per_row = 1;
        j.rows_per_task = CHUNK_ELEMS / inner;
        tasks = (j.rows + j.rows_per_task - 1) / j.rows_per_task;
    }
    if (total < MG_PARALLEL_MIN_ELEMS)
        for (int64_t task = 0; task < tasks; task++) strided_task(&j, task);
    else
        mg_parallel_for(tasks, strided_task, &j);
    return MG_OK;
}

/* ---- mg_sum --------------------------------------------------------------
 * x is cut into chunks of SUM_CHUNK elements; chunk k is summed into eight
 * float64 lanes, the lanes are added pairwise into partial[k], and the
 * partials are added pairwise in index order. None of this depends on the
 * thread count or the ISA. */

#define SUM_CHUNK (1 << 14)

typedef struct {
    mg_sum_lanes_fn sum_lanes;
    const char *x;
    int64_t n;
    size_t item;
    double *partial;
} sum_job;

static double add_lanes(const double l[MG_SUM_LANES]) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

static double pairwise(const double *v, int64_t n) {
    if (n == 1) return v[0];
    const int64_t half = n / 2;
    return pairwise(v, half) + pairwise(v + half, n - half);
}

static void sum_task(void *ctx, int64_t task) {
    const sum_job *j = ctx;
    const int64_t start = task * SUM_CHUNK;
    const int64_t len = j->n - start < SUM_CHUNK ? j->n - start : SUM_CHUNK;
    double lanes[MG_SUM_LANES] = {0};
    j->sum_lanes(j->x + (size_t)start * j->item, len, lanes);
    j->partial[task] = add_lanes(lanes);
}

mg_status mg_sum(int dtype, const void *x, int64_t n, void *out) {
    TRY(mg_ensure_init());
    TRY(check_dtype("mg_sum", dtype));
    if (n < 0) return mg_fail(MG_ERR_ARG, "mg_sum: negative length %lld", (long long)n);
    if (!out || (n > 0 && !x)) return mg_fail(MG_ERR_ARG, "mg_sum: NULL buffer");
    const int64_t chunks = n == 0 ? 1 : (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double one_partial, *partial = &one_partial;
    if (chunks > 1 && !(partial = malloc((size_t)chunks * sizeof *partial)))
        return mg_fail(MG_ERR_NOMEM, "mg_sum: cannot allocate %lld partial sums", (long long)chunks);
    sum_job j = {mg_kernels->sum_lanes[dtype], x, n, itemsize(dtype), partial};
    one_partial = 0.0;
    if (n < MG_PARALLEL_MIN_ELEMS) {
        for (int64_t task = 0; task < chunks && n > 0; task++) sum_task(&j, task);
    } else {
        mg_parallel_for(chunks, sum_task, &j);
    }
    const double total = pairwise(partial, chunks);
    if (partial != &one_partial) free(partial);
    if (dtype == MG_F32) *(float *)out = (float)total;
    else *(double *)out = total;
    return MG_OK;
}
