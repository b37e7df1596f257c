/* api_unary.c - entry points of the elementwise maps (cpu/unary.c):
 * check the arguments, then run the loop, in fixed chunks on the thread
 * pool when the array is big. Elementwise results never depend on how the
 * work is cut, so any thread count gives the same bits. */
#include <math.h>

#include "cpu/kernels.h"
#include "internal.h"

#define CHUNK_ELEMS (1 << 15)
#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)

static mg_status check_common(const char *fn, int dtype, int64_t n) {
    TRY(mg_ensure_init());
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtype %d is neither float32 (0) nor float64 (1)", fn, dtype);
    if (n < 0) return mg_fail(MG_ERR_ARG, "%s: negative length %lld", fn, (long long)n);
    return MG_OK;
}

/* One job type for every kernel kind: which pointer is set says which.
 * g is the second input (the gradient, or pow's exponents); lo is also
 * pow's scalar exponent. */
typedef struct {
    mg_unary_loop_fn unary;
    mg_unary_grad_fn grad;
    mg_clamp_fn clamp;
    mg_clamp_grad_fn clamp_grad;
    mg_pow_scalar_fn pow_scalar;
    mg_pow_scalar_grad_fn pow_scalar_grad;
    mg_pow_fn pow;
    const char *x, *g;
    char *out;
    double lo, hi;
    int64_t n;
    size_t item;
    int stream;   /* the loops with a vector form write out with streaming stores */
} unary_job;

/* Outputs [start, start + len). */
static void run_range(const unary_job *j, int64_t start, int64_t len) {
    const size_t off = (size_t)start * j->item;
    const char *x = j->x + off, *g = j->g ? j->g + off : NULL;
    char *out = j->out + off;
    if (j->unary) j->unary(len, x, out, j->stream);
    else if (j->grad) j->grad(len, x, g, out, j->stream);
    else if (j->clamp) j->clamp(len, x, j->lo, j->hi, out);
    else if (j->clamp_grad) j->clamp_grad(len, x, g, j->lo, j->hi, out);
    else if (j->pow_scalar) j->pow_scalar(len, x, j->lo, out);
    else if (j->pow_scalar_grad) j->pow_scalar_grad(len, x, g, j->lo, out);
    else j->pow(len, x, g, out);
}

static void unary_task(void *ctx, int64_t task) {
    const unary_job *j = ctx;
    const int64_t start = task * CHUNK_ELEMS;
    run_range(j, start, j->n - start < CHUNK_ELEMS ? j->n - start : CHUNK_ELEMS);
}

static mg_status run(unary_job *j, int dtype) {
    j->item = dtype == MG_F32 ? 4 : 8;
    j->stream = j->n * (int64_t)j->item >= mg_stream_min_bytes;
    if (j->n < MG_PARALLEL_MIN_ELEMS) run_range(j, 0, j->n);
    else mg_parallel_for((j->n + CHUNK_ELEMS - 1) / CHUNK_ELEMS, unary_task, j);
    return MG_OK;
}

mg_status mg_unary(int op, int dtype, int64_t n, const void *x, void *out) {
    TRY(check_common("mg_unary", dtype, n));
    if (op < 0 || op >= MG_NUM_UNARY_OPS) return mg_fail(MG_ERR_ARG, "mg_unary: unknown op %d", op);
    if (n == 0) return MG_OK;
    if (!x || !out) return mg_fail(MG_ERR_ARG, "mg_unary: NULL buffer");
    unary_job j = {.unary = mg_kernels->unary[op][dtype], .x = x, .out = out, .n = n};
    return run(&j, dtype);
}

mg_status mg_unary_backward(int op, int dtype, int64_t n, const void *saved, const void *grad,
                            void *out) {
    TRY(check_common("mg_unary_backward", dtype, n));
    if (op < 0 || op >= MG_NUM_UNARY_GRADS)
        return mg_fail(MG_ERR_ARG, "mg_unary_backward: unknown op %d", op);
    if (n == 0) return MG_OK;
    if (!saved || !grad || !out) return mg_fail(MG_ERR_ARG, "mg_unary_backward: NULL buffer");
    unary_job j = {.grad = mg_kernels->unary_grad[op][dtype], .x = saved, .g = grad, .out = out, .n = n};
    return run(&j, dtype);
}

static mg_status check_bounds(const char *fn, double lo, double hi) {
    if (isnan(lo) || isnan(hi)) return mg_fail(MG_ERR_ARG, "%s: a bound is NaN", fn);
    return MG_OK;
}

mg_status mg_clamp(int dtype, int64_t n, const void *x, double lo, double hi, void *out) {
    TRY(check_common("mg_clamp", dtype, n));
    TRY(check_bounds("mg_clamp", lo, hi));
    if (n == 0) return MG_OK;
    if (!x || !out) return mg_fail(MG_ERR_ARG, "mg_clamp: NULL buffer");
    unary_job j = {.clamp = mg_kernels->clamp[dtype], .x = x, .out = out, .lo = lo, .hi = hi, .n = n};
    return run(&j, dtype);
}

mg_status mg_clamp_backward(int dtype, int64_t n, const void *x, const void *grad, double lo,
                            double hi, void *out) {
    TRY(check_common("mg_clamp_backward", dtype, n));
    TRY(check_bounds("mg_clamp_backward", lo, hi));
    if (n == 0) return MG_OK;
    if (!x || !grad || !out) return mg_fail(MG_ERR_ARG, "mg_clamp_backward: NULL buffer");
    unary_job j = {.clamp_grad = mg_kernels->clamp_grad[dtype], .x = x, .g = grad, .out = out,
                   .lo = lo, .hi = hi, .n = n};
    return run(&j, dtype);
}

mg_status mg_pow_scalar(int dtype, int64_t n, const void *x, double p, void *out) {
    TRY(check_common("mg_pow_scalar", dtype, n));
    if (n == 0) return MG_OK;
    if (!x || !out) return mg_fail(MG_ERR_ARG, "mg_pow_scalar: NULL buffer");
    unary_job j = {.pow_scalar = mg_kernels->pow_scalar[dtype], .x = x, .out = out, .lo = p, .n = n};
    return run(&j, dtype);
}

mg_status mg_pow_scalar_backward(int dtype, int64_t n, const void *x, const void *grad, double p,
                                 void *out) {
    TRY(check_common("mg_pow_scalar_backward", dtype, n));
    if (n == 0) return MG_OK;
    if (!x || !grad || !out) return mg_fail(MG_ERR_ARG, "mg_pow_scalar_backward: NULL buffer");
    unary_job j = {.pow_scalar_grad = mg_kernels->pow_scalar_grad[dtype], .x = x, .g = grad,
                   .out = out, .lo = p, .n = n};
    return run(&j, dtype);
}

mg_status mg_pow(int dtype, int64_t n, const void *x, const void *y, void *out) {
    TRY(check_common("mg_pow", dtype, n));
    if (n == 0) return MG_OK;
    if (!x || !y || !out) return mg_fail(MG_ERR_ARG, "mg_pow: NULL buffer");
    unary_job j = {.pow = mg_kernels->pow[dtype], .x = x, .g = y, .out = out, .n = n};
    return run(&j, dtype);
}
