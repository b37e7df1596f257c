/* internal.h - what the pieces of mgbn share; never seen by Python. */
#ifndef MG_INTERNAL_H
#define MG_INTERNAL_H

#include "mg.h"

#define MG_VERSION_STRING "0.1.0"
#define MG_MAX_DIMS 16

/* Records a printf-style message for mg_last_error() and returns status. */
mg_status mg_fail(mg_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mg_clear_error(void);

/* The one-time setup every entry point runs first (dispatch.c). */
mg_status mg_ensure_init(void);

/* The hyper-parameter checks of the optimizer steps (api_optim.c), shared by
 * the CPU and OpenCL entries: finite values; Adam's step >= 1 and betas in [0, 1). */
mg_status mg_check_sgd_hyper(const char *fn, double lr, double momentum, double dampening,
                             double weight_decay);
mg_status mg_check_adam_hyper(const char *fn, int64_t step, double lr, double beta1, double beta2,
                              double eps, double weight_decay);

/* ---- thread pool (threads.c) ---------------------------------------------
 * Runs fn(ctx, task) for every task in [0, ntasks) on the pool, the calling
 * thread included, and returns when all are done. Which thread runs a task
 * must not change its result: callers give each task its own output slot and
 * combine slots in task order, which makes results independent of the
 * thread count. With one thread, or when another caller holds the pool,
 * the tasks run in order on the calling thread. */
typedef void (*mg_task_fn)(void *ctx, int64_t task);
void mg_parallel_for(int64_t ntasks, mg_task_fn fn, void *ctx);
int mg_pool_threads(void);
void mg_pool_set_threads(int n);
int mg_default_threads(void);

/* Work below this many elements runs on the calling thread: waking the pool
 * costs a few microseconds. */
#define MG_PARALLEL_MIN_ELEMS (1 << 16)

#endif
