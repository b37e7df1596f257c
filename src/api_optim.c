/* api_optim.c - entry points of the fused optimizer steps (cpu/optim.c):
 * check the arguments, then update in fixed chunks on the thread pool when
 * the parameter is big. Each element's update is independent of the others,
 * so any thread count gives the same bits. */
#include <math.h>

#include "cpu/kernels.h"
#include "internal.h"

#define CHUNK_ELEMS (1 << 15)
#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)

static mg_status check_arrays(const char *fn, int dtype, int64_t n, const void *const *arrays,
                              const char *const *names, int count) {
    TRY(mg_ensure_init());
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtype %d is neither float32 (0) nor float64 (1)", fn, dtype);
    if (n < 0) return mg_fail(MG_ERR_ARG, "%s: negative length %lld", fn, (long long)n);
    for (int i = 0; i < count; i++)
        if (n > 0 && !arrays[i]) return mg_fail(MG_ERR_ARG, "%s: %s is NULL", fn, names[i]);
    return MG_OK;
}

static mg_status check_finite(const char *fn, const char *name, double v) {
    if (!isfinite(v)) return mg_fail(MG_ERR_ARG, "%s: %s must be finite, got %g", fn, name, v);
    return MG_OK;
}

mg_status mg_check_sgd_hyper(const char *fn, double lr, double momentum, double dampening,
                             double weight_decay) {
    TRY(check_finite(fn, "lr", lr));
    TRY(check_finite(fn, "momentum", momentum));
    TRY(check_finite(fn, "dampening", dampening));
    return check_finite(fn, "weight_decay", weight_decay);
}

mg_status mg_check_adam_hyper(const char *fn, int64_t step, double lr, double beta1, double beta2,
                              double eps, double weight_decay) {
    if (step < 1) return mg_fail(MG_ERR_ARG, "%s: step must be >= 1, got %lld", fn, (long long)step);
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
        return mg_fail(MG_ERR_ARG, "%s: betas must be in [0, 1), got (%g, %g)", fn, beta1, beta2);
    TRY(check_finite(fn, "lr", lr));
    TRY(check_finite(fn, "eps", eps));
    return check_finite(fn, "weight_decay", weight_decay);
}

/* One job for both steps: adam_args is NULL for SGD. */
typedef struct {
    int dtype;
    int64_t n;
    char *p, *m, *v;      /* m: SGD's momentum buffer or Adam's exp_avg; v: exp_avg_sq */
    const char *grad;
    const mg_sgd_args *sgd;
    const mg_adam_args *adam;
} step_job;

static void run_range(const step_job *j, int64_t start, int64_t len) {
    const size_t off = (size_t)start * (j->dtype == MG_F32 ? 4 : 8);
    char *m = j->m ? j->m + off : NULL;
    if (j->adam) mg_kernels->adam[j->dtype](len, j->p + off, j->grad + off, m, j->v + off, j->adam);
    else mg_kernels->sgd[j->dtype](len, j->p + off, j->grad + off, m, j->sgd);
}

static void step_task(void *ctx, int64_t task) {
    const step_job *j = ctx;
    const int64_t start = task * CHUNK_ELEMS;
    run_range(j, start, j->n - start < CHUNK_ELEMS ? j->n - start : CHUNK_ELEMS);
}

static void run(const step_job *j) {
    if (j->n < MG_PARALLEL_MIN_ELEMS) run_range(j, 0, j->n);
    else mg_parallel_for((j->n + CHUNK_ELEMS - 1) / CHUNK_ELEMS, step_task, (void *)j);
}

mg_status mg_sgd_step(int dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                      double lr, double momentum, double dampening, double weight_decay,
                      int nesterov, int first_step) {
    static const char fn[] = "mg_sgd_step";
    const void *arrays[] = {param, grad, momentum_buffer};
    const char *names[] = {"param", "grad", "momentum_buffer"};
    TRY(check_arrays(fn, dtype, n, arrays, names, momentum != 0 ? 3 : 2));
    TRY(mg_check_sgd_hyper(fn, lr, momentum, dampening, weight_decay));
    const mg_sgd_args args = {lr, momentum, dampening, weight_decay, nesterov != 0, first_step != 0};
    const step_job j = {dtype, n, param, momentum != 0 ? momentum_buffer : NULL, NULL, grad, &args, NULL};
    run(&j);
    return MG_OK;
}

mg_status mg_adam_step(int dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                       void *exp_avg_sq, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int64_t step, int decoupled) {
    static const char fn[] = "mg_adam_step";
    const void *arrays[] = {param, grad, exp_avg, exp_avg_sq};
    const char *names[] = {"param", "grad", "exp_avg", "exp_avg_sq"};
    TRY(check_arrays(fn, dtype, n, arrays, names, 4));
    TRY(mg_check_adam_hyper(fn, step, lr, beta1, beta2, eps, weight_decay));
    const mg_adam_args args = {
        .weight_decay = weight_decay, .beta1 = beta1, .beta2 = beta2, .eps = eps,
        .decay = 1 - lr * weight_decay,
        .step_size = lr / (1 - pow(beta1, (double)step)),
        .bc2_sqrt = sqrt(1 - pow(beta2, (double)step)),
        .decoupled = decoupled != 0 && weight_decay != 0,
    };
    const step_job j = {dtype, n, param, exp_avg, exp_avg_sq, grad, NULL, &args};
    run(&j);
    return MG_OK;
}
