/* api_matmul.c - mg_matmul: argument checks and the blocked GEMM driver.
 *
 * The loops (Goto & van de Geijn 2008; BLIS) around the per-ISA kernels of
 * cpu/matmul.c, for one product C = A . B (A m x k, B k x n):
 *
 *   for jc in [0, n) step nc:
 *     for pc in [0, k) step kc:               (in order: this fixes the sums)
 *       pack B(pc.., jc..) into a kc x nc panel         (threads: by slivers)
 *       for each task (a block of A's rows x a share of the panel's columns):
 *         pack its A rows, run the macro-kernel         (threads: by task)
 *
 * Determinism: every C(i,j) is summed over p in the order of the kc blocks
 * (block 0 is stored, later blocks are added: C = C + block), and within a
 * block in p order by the micro-kernel. kc depends on k and the ISA only.
 * mc, nc, the tasks and which thread runs them only decide WHICH elements
 * are computed together, never the order of a sum, so they may follow the
 * thread count freely. The direct path for small products (no packing) also
 * sums in p order; which path runs depends on the shape (and whether B's
 * rows are contiguous) alone, never on the thread count.
 *
 * Batches: many small or medium products run one per task on the pool, each
 * task with its own packing buffers; a large product runs alone with the
 * pool working inside it. */
#include <string.h>

#include "cpu/kernels.h"
#include "internal.h"

#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)

/* Products of at most this many multiply-adds, of at most SKINNY_ROWS rows
 * or of one column (where packing would cost as much as it saves) take the
 * direct path. */
#define SMALL_WORK (1 << 15)
#define SKINNY_ROWS 2
/* A small product whose B has strided columns (B = W^T, as in x @ w.T)
 * takes the direct path too, on a copy of B with contiguous rows, when that
 * copy is at most this big: packing a whole panel for it costs more. */
#define SMALL_B_COPY_BYTES (64 * 1024)
/* Below this, one product is not worth waking the pool for. */
#define PARALLEL_MIN_WORK (1 << 17)
/* Up to this size the products of a batch run one per task. */
#define BATCH_TASK_MAX_WORK (1 << 24)
/* B slivers packed per task when threads pack a panel. */
#define PACK_SLIVERS 16
/* A blocks in flight per thread: bounds the A slots, and so the memory. */
#define BLOCKS_PER_THREAD 8

typedef struct {
    const mg_gemm_kernels *g;
    size_t item;
    int64_t m, n, k;
    const char *a, *b;
    char *c;
    int64_t ars, acs, brs, bcs, ldc;
    int accumulate;
} product;

/* How one product is cut up; the kernels' mr, nr, mc, kc, nc come from g. */
typedef struct {
    int64_t kc;                /* from k alone: ceil(k / nblocks), nblocks = ceil(k / g->kc) */
    int64_t nc;                /* B panel width, a multiple of nr */
    int64_t panels, mblocks;   /* A: ceil(m / mr) micro-panels shared out over mblocks blocks */
    int64_t nsplit;            /* each B panel's slivers shared out over nsplit tasks */
    int64_t group;             /* A blocks run at once: tasks per pool call = group * nsplit */
    size_t a_slot, b_size;     /* bytes: one task's packed A block, the packed B panel */
} plan;

static int64_t ceil_div(int64_t x, int64_t y) { return (x + y - 1) / y; }
static int64_t round_up(int64_t x, int64_t y) { return ceil_div(x, y) * y; }

static plan make_plan(const product *pr, int threads) {
    const mg_gemm_kernels *g = pr->g;
    plan pl;
    pl.kc = ceil_div(pr->k, ceil_div(pr->k, g->kc));
    pl.nc = g->nc < round_up(pr->n, g->nr) ? g->nc : round_up(pr->n, g->nr);
    pl.panels = ceil_div(pr->m, g->mr);
    pl.mblocks = ceil_div(pl.panels, g->mc / g->mr);
    if (threads > 1) {   /* a multiple of the thread count, so that no thread idles */
        pl.mblocks = round_up(pl.mblocks, threads);
        if (pl.mblocks > pl.panels) pl.mblocks = pl.panels;
    }
    pl.nsplit = threads > pl.mblocks ? ceil_div(threads, pl.mblocks) : 1;
    pl.group = pl.mblocks < (int64_t)threads * BLOCKS_PER_THREAD ? pl.mblocks : (int64_t)threads * BLOCKS_PER_THREAD;
    pl.a_slot = (size_t)(ceil_div(pl.panels, pl.mblocks) * g->mr * pl.kc) * pr->item;
    pl.b_size = (size_t)(pl.kc * pl.nc) * pr->item;
    return pl;
}

/* One (jc, pc) step of a product: the packed B panel and the A slots. */
typedef struct {
    const product *pr;
    const plan *pl;
    char *bp, *ap;
    size_t slot_stride;        /* a_slot when tasks run at once, else 0: one slot for all */
    int64_t jc, nc, pc, kc;
    int64_t block0;            /* the first A block of the group being run */
} step;

static void pack_b_task(void *ctx, int64_t task) {
    const step *s = ctx;
    const product *pr = s->pr;
    const int64_t nr = pr->g->nr, first = task * PACK_SLIVERS * nr;
    const int64_t cols = s->nc - first < PACK_SLIVERS * nr ? s->nc - first : PACK_SLIVERS * nr;
    pr->g->pack_b(s->kc, cols, pr->b + (s->pc * pr->brs + (s->jc + first) * pr->bcs) * (int64_t)pr->item,
                  pr->brs, pr->bcs, s->bp + (size_t)(first * s->kc) * pr->item);
}

/* Task t = (block block0 + t / nsplit of A's rows, share t % nsplit of the
 * panel's slivers): packs those rows of A into slot t and multiplies them by
 * its slivers. */
static void compute_task(void *ctx, int64_t task) {
    const step *s = ctx;
    const product *pr = s->pr;
    const plan *pl = s->pl;
    const mg_gemm_kernels *g = pr->g;
    const int64_t block = s->block0 + task / pl->nsplit, share = task % pl->nsplit;
    const int64_t row0 = block * pl->panels / pl->mblocks * g->mr;
    const int64_t row1 = (block + 1) * pl->panels / pl->mblocks * g->mr;
    const int64_t rows = (row1 < pr->m ? row1 : pr->m) - row0;
    const int64_t slivers = ceil_div(s->nc, g->nr);
    const int64_t col0 = share * slivers / pl->nsplit * g->nr;
    const int64_t col1 = (share + 1) * slivers / pl->nsplit * g->nr;
    const int64_t cols = (col1 < s->nc ? col1 : s->nc) - col0;
    if (rows <= 0 || cols <= 0) return;
    const int64_t item = (int64_t)pr->item;
    char *ap = s->ap + (size_t)task * s->slot_stride;
    g->pack_a(rows, s->kc, pr->a + (row0 * pr->ars + s->pc * pr->acs) * item, pr->ars, pr->acs, ap);
    g->macro(rows, cols, s->kc, ap, s->bp + col0 * s->kc * item,
             pr->c + (row0 * pr->ldc + s->jc + col0) * item, pr->ldc, pr->accumulate || s->pc > 0);
}

/* Runs one product through the blocked loops. With parallel set, the pool
 * runs the tasks of group A blocks at once, each in its own A slot (ap then
 * holds group * nsplit slots); else all tasks run in turn in one slot. */
static void run_blocked(const product *pr, const plan *pl, char *bp, char *ap, int parallel) {
    step s = {pr, pl, bp, ap, parallel ? pl->a_slot : 0, 0, 0, 0, 0, 0};
    for (s.jc = 0; s.jc < pr->n; s.jc += pl->nc) {
        s.nc = pr->n - s.jc < pl->nc ? pr->n - s.jc : pl->nc;
        for (s.pc = 0; s.pc < pr->k; s.pc += pl->kc) {
            s.kc = pr->k - s.pc < pl->kc ? pr->k - s.pc : pl->kc;
            const int64_t pack_tasks = ceil_div(ceil_div(s.nc, pr->g->nr), PACK_SLIVERS);
            if (parallel) {
                mg_parallel_for(pack_tasks, pack_b_task, &s);
                for (s.block0 = 0; s.block0 < pl->mblocks; s.block0 += pl->group) {
                    const int64_t blocks = pl->mblocks - s.block0 < pl->group ? pl->mblocks - s.block0 : pl->group;
                    mg_parallel_for(blocks * pl->nsplit, compute_task, &s);
                }
            } else {
                s.block0 = 0;
                for (int64_t t = 0; t < pack_tasks; t++) pack_b_task(&s, t);
                for (int64_t t = 0; t < pl->mblocks * pl->nsplit; t++) compute_task(&s, t);
            }
        }
    }
}

/* dst[p*n + j] = B(p, j): B's elements as bits of their size, column by column. */
#define COPY_B(U, pr, dst)                                                        \
    do {                                                                          \
        const U *src_ = (const U *)(pr)->b;                                       \
        U *dst_ = (U *)(dst);                                                     \
        for (int64_t j = 0; j < (pr)->n; j++)                                     \
            for (int64_t p = 0; p < (pr)->k; p++)                                 \
                dst_[p * (pr)->n + j] = src_[p * (pr)->brs + j * (pr)->bcs];      \
    } while (0)

/* The direct path; B's columns must be contiguous (bcs == 1), or B is
 * first copied into b_copy (k x n, rows contiguous) when b_copy is set. */
static void run_small(const product *pr, char *b_copy) {
    const char *b = pr->b;
    int64_t brs = pr->brs;
    if (b_copy) {
        if (pr->item == 4) COPY_B(uint32_t, pr, b_copy);
        else COPY_B(uint64_t, pr, b_copy);
        b = b_copy, brs = pr->n;
    }
    pr->g->small(pr->m, pr->n, pr->k, pr->a, pr->ars, pr->acs, b, brs, pr->c, pr->ldc, pr->accumulate);
}

/* ---- batches ------------------------------------------------------------ */

typedef struct {
    product first;             /* the product for t = 0 */
    int64_t batch, sa, sb, sc; /* batch count and strides in bytes */
    int64_t ntasks;
    int small;
    plan pl;                   /* blocked path: one (bp, ap) slot pair per task */
    char *buffers;             /* blocked path: the slots */
    size_t slot_bytes;
} batch_job;

static product nth(const batch_job *j, int64_t t) {
    product pr = j->first;
    pr.a += t * j->sa;
    pr.b += t * j->sb;
    pr.c += t * j->sc;
    return pr;
}

/* Task i runs products [i*batch/ntasks, (i+1)*batch/ntasks) one after another. */
static void batch_task(void *ctx, int64_t task) {
    const batch_job *j = ctx;
    for (int64_t t = task * j->batch / j->ntasks; t < (task + 1) * j->batch / j->ntasks; t++) {
        const product pr = nth(j, t);
        if (j->small) {
            _Alignas(64) char b_copy[SMALL_B_COPY_BYTES];   /* on the stack: no allocation per call */
            run_small(&pr, pr.bcs != 1 ? b_copy : NULL);
        } else {
            char *bp = j->buffers + (size_t)task * j->slot_bytes;
            run_blocked(&pr, &j->pl, bp, bp + j->pl.b_size, 0);
        }
    }
}

static mg_status run(batch_job *j) {
    const product *pr = &j->first;
    const double work = (double)pr->m * (double)pr->n * (double)pr->k;
    const int threads = mg_pool_threads();
    const size_t b_bytes = (size_t)(pr->k * pr->n) * pr->item;
    j->small = (work <= SMALL_WORK || pr->m <= SKINNY_ROWS || pr->n == 1) &&
               (pr->bcs == 1 || b_bytes <= SMALL_B_COPY_BYTES);
    if (j->small) {   /* one task per thread when the whole is worth it */
        j->ntasks = threads > 1 && work * (double)j->batch >= PARALLEL_MIN_WORK
                        ? (j->batch < threads ? j->batch : threads) : 1;
        if (j->ntasks > 1) mg_parallel_for(j->ntasks, batch_task, j);
        else batch_task(j, 0);
        return MG_OK;
    }
    const int per_product = j->batch > 1 && work <= BATCH_TASK_MAX_WORK;
    const int inner_threads = !per_product && work >= PARALLEL_MIN_WORK ? threads : 1;
    j->pl = make_plan(pr, inner_threads);
    if (per_product) {
        j->ntasks = threads > 1 && work * (double)j->batch >= PARALLEL_MIN_WORK
                        ? (j->batch < threads ? j->batch : threads) : 1;
        j->slot_bytes = j->pl.b_size + j->pl.a_slot;
    } else {
        j->ntasks = 1;
        j->slot_bytes = j->pl.b_size + j->pl.a_slot * (size_t)(inner_threads > 1 ? j->pl.group * j->pl.nsplit : 1);
    }
    const size_t total = j->slot_bytes * (size_t)j->ntasks;
    if (mg_alloc(total, (void **)&j->buffers) != MG_OK)
        return mg_fail(MG_ERR_NOMEM, "mg_matmul: cannot allocate %zu bytes of packing buffers", total);
    if (j->ntasks > 1) {
        mg_parallel_for(j->ntasks, batch_task, j);
    } else {
        char *bp = j->buffers, *ap = bp + j->pl.b_size;
        for (int64_t t = 0; t < j->batch; t++) {
            const product one = nth(j, t);
            run_blocked(&one, &j->pl, bp, ap, inner_threads > 1);
        }
    }
    mg_free(j->buffers);
    return MG_OK;
}

/* ---- argument checks ---------------------------------------------------- */

/* The largest |offset| in elements reached by a strided operand, checked
 * for overflow (also once scaled to bytes). */
static mg_status check_extent(const char *name, int64_t item, int64_t n0, int64_t s0,
                              int64_t n1, int64_t s1, int64_t n2, int64_t s2) {
    const int64_t counts[3] = {n0, n1, n2}, strides[3] = {s0, s1, s2};
    int64_t extent = 0;
    for (int d = 0; d < 3; d++) {
        int64_t span;
        if (strides[d] == INT64_MIN || __builtin_mul_overflow(counts[d] - 1, strides[d] < 0 ? -strides[d] : strides[d], &span) ||
            __builtin_add_overflow(extent, span, &extent))
            return mg_fail(MG_ERR_SHAPE, "mg_matmul: the strides of %s reach past the address space", name);
    }
    if (__builtin_mul_overflow(extent, item, &extent))
        return mg_fail(MG_ERR_SHAPE, "mg_matmul: the strides of %s reach past the address space", name);
    return MG_OK;
}

mg_status mg_matmul(int dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                    const void *a, int64_t a_batch_stride, int64_t a_row_stride, int64_t a_col_stride,
                    const void *b, int64_t b_batch_stride, int64_t b_row_stride, int64_t b_col_stride,
                    void *c, int64_t c_batch_stride, int64_t c_row_stride, int accumulate) {
    TRY(mg_ensure_init());
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "mg_matmul: dtype %d is neither float32 (0) nor float64 (1)", dtype);
    if (batch < 0 || m < 0 || n < 0 || k < 0)
        return mg_fail(MG_ERR_SHAPE, "mg_matmul: negative size (batch=%lld, m=%lld, n=%lld, k=%lld)",
                       (long long)batch, (long long)m, (long long)n, (long long)k);
    if (batch == 0 || m == 0 || n == 0) return MG_OK;
    if (!c || (k > 0 && (!a || !b)))
        return mg_fail(MG_ERR_ARG, "mg_matmul: NULL buffer (a=%p, b=%p, c=%p)", a, b, c);
    /* Strides along an axis of size 1 are never used: make them harmless,
     * and let a batch of single rows read as the rows of one matrix. */
    if (batch == 1) a_batch_stride = b_batch_stride = c_batch_stride = 0;
    if (m == 1) a_row_stride = a_batch_stride, c_row_stride = c_batch_stride;
    if (n == 1) b_col_stride = 1;
    if (k == 1) a_col_stride = b_row_stride = 0;
    int64_t c_matrix;   /* elements spanned by one C matrix */
    if (m > 1 && c_row_stride < n)
        return mg_fail(MG_ERR_ARG, "mg_matmul: c_row_stride %lld is less than n = %lld: rows of C would overlap",
                       (long long)c_row_stride, (long long)n);
    if (__builtin_mul_overflow(m - 1, c_row_stride, &c_matrix) || __builtin_add_overflow(c_matrix, n, &c_matrix))
        return mg_fail(MG_ERR_SHAPE, "mg_matmul: C (m=%lld, n=%lld, row stride %lld) is too large",
                       (long long)m, (long long)n, (long long)c_row_stride);
    if (batch > 1 && c_batch_stride < c_matrix)
        return mg_fail(MG_ERR_ARG, "mg_matmul: c_batch_stride %lld is less than one C matrix (%lld elements): "
                       "matrices of C would overlap", (long long)c_batch_stride, (long long)c_matrix);
    const int64_t item = dtype == MG_F32 ? 4 : 8;
    TRY(check_extent("C", item, batch, c_batch_stride, m, c_row_stride, n, 1));
    if (k > 0) {
        TRY(check_extent("A", item, batch, a_batch_stride, m, a_row_stride, k, a_col_stride));
        TRY(check_extent("B", item, batch, b_batch_stride, k, b_row_stride, n, b_col_stride));
    }

    /* One B for every t, and A and C batches that continue each other's rows:
     * that is a single product with batch * m rows. */
    int64_t a_rows, c_rows;
    if (batch > 1 && b_batch_stride == 0 && !__builtin_mul_overflow(m, a_row_stride, &a_rows) &&
        !__builtin_mul_overflow(m, c_row_stride, &c_rows) && a_batch_stride == a_rows && c_batch_stride == c_rows) {
        m *= batch;
        batch = 1;
    }
    if (k == 0) {   /* an empty sum */
        if (!accumulate)
            for (int64_t t = 0; t < batch; t++)
                for (int64_t i = 0; i < m; i++)
                    memset((char *)c + (t * c_batch_stride + i * c_row_stride) * item, 0, (size_t)(n * item));
        return MG_OK;
    }
    batch_job j = {
        .first = {&mg_kernels->gemm[dtype], (size_t)item, m, n, k, a, b, c,
                  a_row_stride, a_col_stride, b_row_stride, b_col_stride, c_row_stride, accumulate != 0},
        .batch = batch, .sa = a_batch_stride * item, .sb = b_batch_stride * item, .sc = c_batch_stride * item,
    };
    return run(&j);
}
