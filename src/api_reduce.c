/* api_reduce.c - sum, max and min over any set of axes (mg_reduce).
 *
 * x has shape[ndim] and element strides (any sign, 0 for broadcast axes);
 * the axes whose bit is set in reduce_mask are reduced; out is contiguous
 * with the kept axes in their original order.
 *
 * Plan: drop size-1 axes, sort the rest by |stride| (memory order, so a
 * transposed input is walked as efficiently as a contiguous one; the output
 * is written at each kept axis's own output stride), merge neighbours that
 * step through memory as one axis, and then:
 *   - innermost axis reduced ("inner"): each output element reduces its own
 *     elements into eight float64 lanes (cpu/reduce.c reduce_lanes);
 *   - innermost axis kept ("outer"): a block of outputs along that axis is
 *     accumulated row by row in float64 (reduce_rows), the reduced axes
 *     walked in a fixed order.
 * Every output element is computed by one task in one fixed order, so the
 * result is bitwise the same for any thread count. */
#include <math.h>
#include <stdlib.h>

#include "cpu/kernels.h"
#include "internal.h"

#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)
#define TASK_ELEMS (1 << 15)   /* input elements per task, roughly */
#define ROW_BLOCK 2048         /* outputs per task along a kept innermost axis */

typedef struct {
    int64_t n, stride, out_stride;
    int reduced;
} axis_t;

typedef struct {
    int op, dtype;
    size_t item;
    const char *x;
    char *out;
    axis_t kept[MG_MAX_DIMS], red[MG_MAX_DIMS];
    int nkept, nred;
    int64_t kept_count, red_count;       /* products over the listed axes */
    int64_t per_task, tasks;
    mg_reduce_lanes_fn lanes;
    mg_reduce_rows_fn rows;
} reduce_job;

/* Element offset (in x, or in out with use_out) of the index-th combination
 * of axes[0..count), the last axis varying fastest. */
static int64_t offset_of(int64_t index, const axis_t *axes, int count, int use_out) {
    int64_t off = 0;
    for (int d = count - 1; d >= 0; d--) {
        const int64_t i = index % axes[d].n;
        index /= axes[d].n;
        off += i * (use_out ? axes[d].out_stride : axes[d].stride);
    }
    return off;
}

static double start_value(int op) {
    return op == MG_REDUCE_SUM ? 0.0 : op == MG_REDUCE_MAX ? -INFINITY : INFINITY;
}

static double combine(int op, double a, double b) {
    if (op == MG_REDUCE_SUM) return a + b;
    if (a != a || b != b) return a + b;
    return op == MG_REDUCE_MAX ? (b > a ? b : a) : (b < a ? b : a);
}

static void store(const reduce_job *j, int64_t index, double value) {
    if (j->dtype == MG_F32) ((float *)j->out)[index] = (float)value;
    else ((double *)j->out)[index] = value;
}

/* Innermost axis reduced: outputs [first, last) of the kept combinations. */
static void inner_task(void *ctx, int64_t task) {
    const reduce_job *j = ctx;
    const axis_t *inner = &j->red[j->nred - 1];
    const int64_t first = task * j->per_task;
    const int64_t last = first + j->per_task < j->kept_count ? first + j->per_task : j->kept_count;
    const int64_t rows = j->red_count / inner->n;
    for (int64_t o = first; o < last; o++) {
        const int64_t base = offset_of(o, j->kept, j->nkept, 0);
        double lanes[MG_SUM_LANES];
        for (int l = 0; l < MG_SUM_LANES; l++) lanes[l] = start_value(j->op);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t off = base + offset_of(r, j->red, j->nred - 1, 0);
            j->lanes(j->x + off * (int64_t)j->item, inner->n, inner->stride, lanes);
        }
        const double a = combine(j->op, combine(j->op, lanes[0], lanes[1]), combine(j->op, lanes[2], lanes[3]));
        const double b = combine(j->op, combine(j->op, lanes[4], lanes[5]), combine(j->op, lanes[6], lanes[7]));
        store(j, offset_of(o, j->kept, j->nkept, 1), combine(j->op, a, b));
    }
}

/* Innermost axis kept: one block of ROW_BLOCK outputs along it, for one
 * combination of the other kept axes. */
static void outer_task(void *ctx, int64_t task) {
    const reduce_job *j = ctx;
    const axis_t *inner = &j->kept[j->nkept - 1];
    const int64_t blocks = (inner->n + ROW_BLOCK - 1) / ROW_BLOCK;
    const int64_t combo = task / blocks, start = (task % blocks) * ROW_BLOCK;
    const int64_t len = inner->n - start < ROW_BLOCK ? inner->n - start : ROW_BLOCK;
    const int64_t base = offset_of(combo, j->kept, j->nkept - 1, 0) + start * inner->stride;
    double acc[ROW_BLOCK];
    for (int64_t i = 0; i < len; i++) acc[i] = start_value(j->op);
    for (int64_t r = 0; r < j->red_count; r++) {
        const int64_t off = base + offset_of(r, j->red, j->nred, 0);
        j->rows(j->x + off * (int64_t)j->item, len, inner->stride, acc);
    }
    const int64_t out_base = offset_of(combo, j->kept, j->nkept - 1, 1) + start * inner->out_stride;
    for (int64_t i = 0; i < len; i++) store(j, out_base + i * inner->out_stride, acc[i]);
}

static mg_status check(int op, int dtype, int ndim, const int64_t *shape, const void *x,
                       const int64_t *strides, unsigned reduce_mask, void *out) {
    TRY(mg_ensure_init());
    if (op < 0 || op >= MG_NUM_REDUCE_OPS) return mg_fail(MG_ERR_ARG, "mg_reduce: unknown op %d", op);
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "mg_reduce: dtype %d is neither float32 (0) nor float64 (1)", dtype);
    if (ndim < 0 || ndim > MG_MAX_DIMS)
        return mg_fail(MG_ERR_SHAPE, "mg_reduce: ndim %d is not in [0, %d]", ndim, MG_MAX_DIMS);
    if (ndim > 0 && (!shape || !strides)) return mg_fail(MG_ERR_ARG, "mg_reduce: NULL shape or strides");
    if (ndim < 32 && (reduce_mask >> ndim) != 0)
        return mg_fail(MG_ERR_ARG, "mg_reduce: reduce_mask 0x%x names an axis >= ndim %d", reduce_mask, ndim);
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return mg_fail(MG_ERR_SHAPE, "mg_reduce: negative size %lld on axis %d", (long long)shape[d], d);
        if (shape[d] > 0 && total > INT64_MAX / shape[d]) return mg_fail(MG_ERR_SHAPE, "mg_reduce: shape too large");
        total *= shape[d];
    }
    if (!out) return mg_fail(MG_ERR_ARG, "mg_reduce: NULL output");
    if (total > 0 && !x) return mg_fail(MG_ERR_ARG, "mg_reduce: NULL input");
    return MG_OK;
}

mg_status mg_reduce(int op, int dtype, int ndim, const int64_t *shape, const void *x,
                    const int64_t *strides, unsigned reduce_mask, void *out) {
    TRY(check(op, dtype, ndim, shape, x, strides, reduce_mask, out));
    reduce_job j = {.op = op, .dtype = dtype, .item = dtype == MG_F32 ? 4 : 8, .x = x, .out = out,
                    .lanes = mg_kernels->reduce_lanes[op][dtype], .rows = mg_kernels->reduce_rows[op][dtype]};

    /* The axes that matter, with their output strides. */
    axis_t axes[MG_MAX_DIMS];
    int count = 0;
    int64_t out_count = 1, red_count = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        const int reduced = (reduce_mask >> d) & 1;
        if (shape[d] != 1) axes[count++] = (axis_t){shape[d], strides[d], out_count, reduced};
        if (reduced) red_count *= shape[d];
        else out_count *= shape[d];
    }
    if (out_count == 0) return MG_OK;
    if (red_count == 0) {
        if (op != MG_REDUCE_SUM)
            return mg_fail(MG_ERR_SHAPE, "mg_reduce: %s over an empty axis is undefined",
                           op == MG_REDUCE_MAX ? "max" : "min");
        for (int64_t o = 0; o < out_count; o++) store(&j, o, 0.0);
        return MG_OK;
    }
    /* Sort by |stride|, largest first (stable), then merge neighbours. */
    for (int a = 0; a < count / 2; a++) {            /* collected innermost-first: reverse */
        const axis_t t = axes[a]; axes[a] = axes[count - 1 - a]; axes[count - 1 - a] = t;
    }
    for (int a = 1; a < count; a++)
        for (int b = a; b > 0 && llabs(axes[b - 1].stride) < llabs(axes[b].stride); b--) {
            const axis_t t = axes[b]; axes[b] = axes[b - 1]; axes[b - 1] = t;
        }
    for (int a = 0; a < count; a++) {
        axis_t *list = axes[a].reduced ? j.red : j.kept;
        int *len = axes[a].reduced ? &j.nred : &j.nkept;
        axis_t *prev = a > 0 ? &axes[a - 1] : NULL;
        const int adjacent = *len > 0 && prev && prev->reduced == axes[a].reduced;
        axis_t *last = *len > 0 ? &list[*len - 1] : NULL;
        if (adjacent && last->stride == axes[a].stride * axes[a].n &&
            (axes[a].reduced || last->out_stride == axes[a].out_stride * axes[a].n)) {
            last->n *= axes[a].n;
            last->stride = axes[a].stride;
            last->out_stride = axes[a].out_stride;
        } else {
            list[(*len)++] = axes[a];
        }
    }
    if (j.nred == 0) j.red[j.nred++] = (axis_t){1, 0, 0, 1};   /* only size-1 axes reduced */
    j.kept_count = out_count;
    j.red_count = red_count;
    const int inner_reduced = j.nkept == 0 || count == 0 || axes[count - 1].reduced;
    const int64_t total = out_count * red_count;
    if (inner_reduced) {
        j.per_task = red_count >= TASK_ELEMS ? 1 : TASK_ELEMS / red_count;
        j.tasks = (out_count + j.per_task - 1) / j.per_task;
        if (total < MG_PARALLEL_MIN_ELEMS) for (int64_t t = 0; t < j.tasks; t++) inner_task(&j, t);
        else mg_parallel_for(j.tasks, inner_task, &j);
    } else {
        const int64_t inner = j.kept[j.nkept - 1].n;
        j.tasks = (out_count / inner) * ((inner + ROW_BLOCK - 1) / ROW_BLOCK);
        if (total < MG_PARALLEL_MIN_ELEMS) for (int64_t t = 0; t < j.tasks; t++) outer_task(&j, t);
        else mg_parallel_for(j.tasks, outer_task, &j);
    }
    return MG_OK;
}
