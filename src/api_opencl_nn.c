/* api_opencl_nn.c - the OpenCL entry points of batch normalization and of
 * the optimizer steps (see mg.h; the kernels and their math are in
 * src/opencl/kernels.cl).
 *
 * A BN training pass is three launches: per-piece partial sums (work-group
 * trees), one work-group per channel adding its partials in a fixed order
 * and writing the per-channel coefficients, then an elementwise sweep. How
 * the data is cut ("planes" for S >= BN_PLANES_MIN_S, else "cols") depends
 * only on (N, C, S) and the device, so every run gives the same bits. */
#include <math.h>

#include "api_opencl.h"

#define BN_PLANES_MIN_S 32
#define BN_TARGET_GROUPS 256   /* enough work-groups to fill a GPU */

typedef struct {
    const mg_cl_kernel_t *partial;   /* the planes or cols kernel */
    size_t global[2], local[2];
    int64_t G;                       /* planes: groups per channel; cols: groups of rows */
    int64_t P, q, outer, total;      /* how the finish kernel finds a channel's partials */
} bn_plan;

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static void plan(bn_plan *p, const mg_cl_kernel_t *planes, const mg_cl_kernel_t *cols, int64_t N,
                 int64_t C, int64_t S) {
    if (S >= BN_PLANES_MIN_S) {
        const size_t L = mg_clapi_local(planes, S);
        p->partial = planes;
        p->G = clamp64((BN_TARGET_GROUPS + C - 1) / C, 1, N);
        p->local[0] = L, p->local[1] = 1;
        p->global[0] = (size_t)p->G * L, p->global[1] = (size_t)C;
        p->P = p->q = p->G;
        p->outer = 0;
        p->total = C * p->G;
    } else {
        const int64_t CS = C * S;
        const size_t LX = mg_clapi_local(cols, CS < 64 ? CS : 64);
        size_t LY = cols->max_local / LX < 8 ? cols->max_local / LX : 8;
        while (LY > 1 && (int64_t)(LY / 2) >= N) LY /= 2;
        const int64_t xgroups = (CS + (int64_t)LX - 1) / (int64_t)LX;
        p->partial = cols;
        p->G = clamp64((BN_TARGET_GROUPS + xgroups - 1) / xgroups, 1, (N + (int64_t)LY - 1) / (int64_t)LY);
        p->local[0] = LX, p->local[1] = LY;
        p->global[0] = (size_t)xgroups * LX, p->global[1] = (size_t)p->G * LY;
        p->P = p->G * S;
        p->q = S;
        p->outer = CS;
        p->total = p->G * CS;
    }
}

/* The launch size of the elementwise BN kernels: one item per value. */
static void values_local(const mg_cl_kernel_t *k, int64_t count, size_t *global, size_t *local) {
    *global = (size_t)count;
    *local = mg_clapi_local(k, count);
}

static mg_status check_ncs(const char *fn, int64_t N, int64_t C, int64_t S, int64_t *count) {
    if (N < 0 || C < 0 || S < 0)
        return mg_fail(MG_ERR_SHAPE, "%s: negative size in (N, C, S) = (%lld, %lld, %lld)", fn,
                       (long long)N, (long long)C, (long long)S);
    const int64_t shape[3] = {N, C, S};
    return mg_clapi_count(fn, 3, shape, count);
}

static mg_status check_eps(const char *fn, double eps) {
    if (!isfinite(eps) || eps < 0) return mg_fail(MG_ERR_ARG, "%s: eps must be finite and >= 0, got %g", fn, eps);
    return MG_OK;
}

/* An optional (C,) parameter: NULL or a buffer of C elements on device. */
static mg_status check_param(const char *fn, const char *name, const mg_cl_buffer_t *p, int device,
                             int64_t C, size_t item, cl_mem *mem) {
    *mem = NULL;
    if (!p) return MG_OK;
    TRY(mg_clapi_buffer(fn, name, p, device, C, item));
    *mem = p->mem;
    return MG_OK;
}

mg_status mg_cl_batch_norm_train_forward(int dtype, int64_t N, int64_t C, int64_t S,
                                         const mg_cl_buffer_t *x, const mg_cl_buffer_t *weight,
                                         const mg_cl_buffer_t *bias, double eps, mg_cl_buffer_t *y,
                                         mg_cl_buffer_t *save_mean, mg_cl_buffer_t *save_rstd,
                                         mg_cl_buffer_t *batch_var) {
    static const char fn[] = "mg_cl_batch_norm_train_forward";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t count;
    TRY(mg_clapi_begin(fn, dtype, x, "x", &d, &k));
    TRY(check_ncs(fn, N, C, S, &count));
    if (N * S <= 1)
        return mg_fail(MG_ERR_ARG, "%s: expected more than 1 value per channel when training, got "
                       "(N, C, S) = (%lld, %lld, %lld)", fn, (long long)N, (long long)C, (long long)S);
    TRY(check_eps(fn, eps));
    const int dev = x->device;
    const size_t item = ITEM(dtype), acc = ACC_ITEM(d);
    cl_mem wmem, bmem;
    TRY(mg_clapi_buffer(fn, "x", x, dev, count, item));
    TRY(mg_clapi_buffer(fn, "y", y, dev, count, item));
    TRY(check_param(fn, "weight", weight, dev, C, item, &wmem));
    TRY(check_param(fn, "bias", bias, dev, C, item, &bmem));
    TRY(mg_clapi_buffer(fn, "save_mean", save_mean, dev, C, acc));
    TRY(mg_clapi_buffer(fn, "save_rstd", save_rstd, dev, C, acc));
    TRY(mg_clapi_buffer(fn, "batch_var", batch_var, dev, C, acc));
    if (C == 0) return MG_OK;

    bn_plan p;
    plan(&p, &k[MG_CLK_bn_stats_planes], &k[MG_CLK_bn_stats_cols], N, C, S);
    cl_mem partial, params = NULL;
    TRY(mg_cl_temp(fn, d, NULL, 3 * (size_t)p.total * acc, &partial));
    mg_status s = mg_cl_temp(fn, d, NULL, 4 * (size_t)C * item, &params);
    const size_t items = p.local[0] * p.local[1];
    const mg_cl_kernel_t *kf = &k[MG_CLK_bn_stats_finish], *ka = &k[MG_CLK_bn_forward_apply];
    const size_t lf = mg_clapi_local(kf, p.P), gf = (size_t)C * lf;
    size_t ga, la;
    values_local(ka, count, &ga, &la);
    const int affine = (weight ? 1 : 0) | (bias ? 2 : 0);
    mg_cl_real_t e = mg_cl_real(ACC_DTYPE(d), eps);
    pthread_mutex_lock(&d->lock);
    if (s == MG_OK)
        s = MG_CL_LAUNCH(fn, d, p.partial, 2, p.global, p.local, MG_CL_ARG(N), MG_CL_ARG(C), MG_CL_ARG(S),
                         MG_CL_ARG(p.G), MG_CL_ARG(x->mem), MG_CL_ARG(partial), MG_CL_LOCAL(items * acc),
                         MG_CL_LOCAL(items * acc), MG_CL_LOCAL(items * acc));
    if (s == MG_OK)
        s = MG_CL_LAUNCH(fn, d, kf, 1, &gf, &lf, MG_CL_ARG(C), MG_CL_ARG(p.P), MG_CL_ARG(p.q),
                         MG_CL_ARG(p.outer), MG_CL_ARG(p.total), MG_CL_ARG(partial), MG_CL_REAL(ACC_DTYPE(d), e),
                         MG_CL_ARG(wmem), MG_CL_ARG(bmem), MG_CL_ARG(affine), MG_CL_ARG(save_mean->mem),
                         MG_CL_ARG(save_rstd->mem), MG_CL_ARG(batch_var->mem), MG_CL_ARG(params),
                         MG_CL_LOCAL(lf * acc), MG_CL_LOCAL(lf * acc), MG_CL_LOCAL(lf * acc));
    if (s == MG_OK)
        s = MG_CL_LAUNCH(fn, d, ka, 1, &ga, &la, MG_CL_ARG(N), MG_CL_ARG(C), MG_CL_ARG(S), MG_CL_ARG(x->mem),
                         MG_CL_ARG(params), MG_CL_ARG(y->mem));
    pthread_mutex_unlock(&d->lock);
    mg_cl_release(partial);
    mg_cl_release(params);
    return s;
}

mg_status mg_cl_batch_norm_eval_forward(int dtype, int64_t N, int64_t C, int64_t S,
                                        const mg_cl_buffer_t *x, const mg_cl_buffer_t *running_mean,
                                        const mg_cl_buffer_t *running_var, const mg_cl_buffer_t *weight,
                                        const mg_cl_buffer_t *bias, double eps, mg_cl_buffer_t *y) {
    static const char fn[] = "mg_cl_batch_norm_eval_forward";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t count;
    TRY(mg_clapi_begin(fn, dtype, x, "x", &d, &k));
    TRY(check_ncs(fn, N, C, S, &count));
    TRY(check_eps(fn, eps));
    const int dev = x->device;
    const size_t item = ITEM(dtype);
    cl_mem wmem, bmem;
    TRY(mg_clapi_buffer(fn, "x", x, dev, count, item));
    TRY(mg_clapi_buffer(fn, "y", y, dev, count, item));
    TRY(mg_clapi_buffer(fn, "running_mean", running_mean, dev, C, item));
    TRY(mg_clapi_buffer(fn, "running_var", running_var, dev, C, item));
    TRY(check_param(fn, "weight", weight, dev, C, item, &wmem));
    TRY(check_param(fn, "bias", bias, dev, C, item, &bmem));
    if (count == 0) return MG_OK;
    const mg_cl_kernel_t *ke = &k[MG_CLK_bn_eval_forward];
    size_t global, local;
    values_local(ke, count, &global, &local);
    const int affine = (weight ? 1 : 0) | (bias ? 2 : 0);
    mg_cl_real_t e = mg_cl_real(dtype, eps);
    pthread_mutex_lock(&d->lock);
    mg_status s = MG_CL_LAUNCH(fn, d, ke, 1, &global, &local, MG_CL_ARG(N), MG_CL_ARG(C), MG_CL_ARG(S),
                               MG_CL_ARG(x->mem), MG_CL_ARG(running_mean->mem), MG_CL_ARG(running_var->mem),
                               MG_CL_ARG(wmem), MG_CL_ARG(bmem), MG_CL_ARG(affine), MG_CL_REAL(dtype, e),
                               MG_CL_ARG(y->mem));
    pthread_mutex_unlock(&d->lock);
    return s;
}

mg_status mg_cl_batch_norm_backward(int dtype, int64_t N, int64_t C, int64_t S,
                                    const mg_cl_buffer_t *dy, const mg_cl_buffer_t *x,
                                    const mg_cl_buffer_t *save_mean, const mg_cl_buffer_t *save_rstd,
                                    const mg_cl_buffer_t *weight, mg_cl_buffer_t *dx,
                                    mg_cl_buffer_t *dweight, mg_cl_buffer_t *dbias) {
    static const char fn[] = "mg_cl_batch_norm_backward";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t count;
    TRY(mg_clapi_begin(fn, dtype, x, "x", &d, &k));
    TRY(check_ncs(fn, N, C, S, &count));
    const int dev = x->device;
    const size_t item = ITEM(dtype), acc = ACC_ITEM(d);
    cl_mem wmem, dxmem, dwmem, dbmem;
    TRY(mg_clapi_buffer(fn, "x", x, dev, count, item));
    TRY(mg_clapi_buffer(fn, "dy", dy, dev, count, item));
    TRY(mg_clapi_buffer(fn, "save_mean", save_mean, dev, C, acc));
    TRY(mg_clapi_buffer(fn, "save_rstd", save_rstd, dev, C, acc));
    TRY(check_param(fn, "weight", weight, dev, C, item, &wmem));
    TRY(check_param(fn, "dx", dx, dev, count, item, &dxmem));
    TRY(check_param(fn, "dweight", dweight, dev, C, item, &dwmem));
    TRY(check_param(fn, "dbias", dbias, dev, C, item, &dbmem));
    if (C == 0 || (!dx && !dweight && !dbias)) return MG_OK;
    if (N * S == 0) {   /* no values: zero sums, an empty dx */
        if (dweight) TRY(mg_cl_fill(dtype, dweight, C, 0.0));
        if (dbias) TRY(mg_cl_fill(dtype, dbias, C, 0.0));
        return MG_OK;
    }

    bn_plan p;
    plan(&p, &k[MG_CLK_bn_sums_planes], &k[MG_CLK_bn_sums_cols], N, C, S);
    cl_mem partial, params = NULL;
    TRY(mg_cl_temp(fn, d, NULL, 2 * (size_t)p.total * acc, &partial));
    mg_status s = mg_cl_temp(fn, d, NULL, 5 * (size_t)C * item, &params);
    const size_t items = p.local[0] * p.local[1];
    const mg_cl_kernel_t *kf = &k[MG_CLK_bn_sums_finish], *kd = &k[MG_CLK_bn_backward_dx];
    const size_t lf = mg_clapi_local(kf, p.P), gf = (size_t)C * lf;
    size_t gd, ld;
    values_local(kd, count, &gd, &ld);
    const int has_weight = weight != NULL, want = (dbias ? 1 : 0) | (dweight ? 2 : 0);
    const int64_t n = N * S;
    pthread_mutex_lock(&d->lock);
    if (s == MG_OK)
        s = MG_CL_LAUNCH(fn, d, p.partial, 2, p.global, p.local, MG_CL_ARG(N), MG_CL_ARG(C), MG_CL_ARG(S),
                         MG_CL_ARG(p.G), MG_CL_ARG(dy->mem), MG_CL_ARG(x->mem), MG_CL_ARG(save_mean->mem),
                         MG_CL_ARG(save_rstd->mem), MG_CL_ARG(partial), MG_CL_LOCAL(items * acc),
                         MG_CL_LOCAL(items * acc));
    if (s == MG_OK)
        s = MG_CL_LAUNCH(fn, d, kf, 1, &gf, &lf, MG_CL_ARG(C), MG_CL_ARG(p.P), MG_CL_ARG(p.q),
                         MG_CL_ARG(p.outer), MG_CL_ARG(p.total), MG_CL_ARG(n), MG_CL_ARG(partial),
                         MG_CL_ARG(save_mean->mem), MG_CL_ARG(save_rstd->mem), MG_CL_ARG(wmem),
                         MG_CL_ARG(has_weight), MG_CL_ARG(want), MG_CL_ARG(dwmem), MG_CL_ARG(dbmem),
                         MG_CL_ARG(params), MG_CL_LOCAL(lf * acc), MG_CL_LOCAL(lf * acc));
    if (s == MG_OK && dx)
        s = MG_CL_LAUNCH(fn, d, kd, 1, &gd, &ld, MG_CL_ARG(N), MG_CL_ARG(C), MG_CL_ARG(S), MG_CL_ARG(dy->mem),
                         MG_CL_ARG(x->mem), MG_CL_ARG(params), MG_CL_ARG(dxmem));
    pthread_mutex_unlock(&d->lock);
    mg_cl_release(partial);
    mg_cl_release(params);
    return s;
}

mg_status mg_cl_batch_norm_eval_backward(int dtype, int64_t N, int64_t C, int64_t S,
                                         const mg_cl_buffer_t *dy, const mg_cl_buffer_t *running_var,
                                         const mg_cl_buffer_t *weight, double eps, mg_cl_buffer_t *dx) {
    static const char fn[] = "mg_cl_batch_norm_eval_backward";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t count;
    TRY(mg_clapi_begin(fn, dtype, dy, "dy", &d, &k));
    TRY(check_ncs(fn, N, C, S, &count));
    TRY(check_eps(fn, eps));
    const int dev = dy->device;
    const size_t item = ITEM(dtype);
    cl_mem wmem;
    TRY(mg_clapi_buffer(fn, "dy", dy, dev, count, item));
    TRY(mg_clapi_buffer(fn, "dx", dx, dev, count, item));
    TRY(mg_clapi_buffer(fn, "running_var", running_var, dev, C, item));
    TRY(check_param(fn, "weight", weight, dev, C, item, &wmem));
    if (count == 0) return MG_OK;
    const mg_cl_kernel_t *ke = &k[MG_CLK_bn_eval_backward];
    size_t global, local;
    values_local(ke, count, &global, &local);
    const int has_weight = weight != NULL;
    mg_cl_real_t e = mg_cl_real(dtype, eps);
    pthread_mutex_lock(&d->lock);
    mg_status s = MG_CL_LAUNCH(fn, d, ke, 1, &global, &local, MG_CL_ARG(N), MG_CL_ARG(C), MG_CL_ARG(S),
                               MG_CL_ARG(dy->mem), MG_CL_ARG(running_var->mem), MG_CL_ARG(wmem),
                               MG_CL_ARG(has_weight), MG_CL_REAL(dtype, e), MG_CL_ARG(dx->mem));
    pthread_mutex_unlock(&d->lock);
    return s;
}

/* ---- optimizer steps ----------------------------------------------------------------- */

mg_status mg_cl_sgd_step(int dtype, int64_t n, mg_cl_buffer_t *param, const mg_cl_buffer_t *grad,
                         mg_cl_buffer_t *momentum_buffer, double lr, double momentum,
                         double dampening, double weight_decay, int nesterov, int first_step) {
    static const char fn[] = "mg_cl_sgd_step";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin(fn, dtype, param, "param", &d, &k));
    if (n < 0) return mg_fail(MG_ERR_ARG, "%s: negative length %lld", fn, (long long)n);
    const size_t item = ITEM(dtype);
    TRY(mg_clapi_buffer(fn, "param", param, param->device, n, item));
    TRY(mg_clapi_buffer(fn, "grad", grad, param->device, n, item));
    cl_mem buf = NULL;
    if (momentum != 0) {
        TRY(mg_clapi_buffer(fn, "momentum_buffer", momentum_buffer, param->device, n, item));
        buf = momentum_buffer->mem;
    }
    TRY(mg_check_sgd_hyper(fn, lr, momentum, dampening, weight_decay));
    mg_cl_real_t l = mg_cl_real(dtype, lr), m = mg_cl_real(dtype, momentum);
    mg_cl_real_t da = mg_cl_real(dtype, dampening), wd = mg_cl_real(dtype, weight_decay);
    const int nest = nesterov != 0, first = first_step != 0;
    return LAUNCH_1D(fn, d, &k[MG_CLK_sgd_step], n, MG_CL_ARG(n), MG_CL_ARG(param->mem), MG_CL_ARG(grad->mem),
                       MG_CL_ARG(buf), MG_CL_REAL(dtype, l), MG_CL_REAL(dtype, m), MG_CL_REAL(dtype, da),
                       MG_CL_REAL(dtype, wd), MG_CL_ARG(nest), MG_CL_ARG(first));
}

mg_status mg_cl_adam_step(int dtype, int64_t n, mg_cl_buffer_t *param, const mg_cl_buffer_t *grad,
                          mg_cl_buffer_t *exp_avg, mg_cl_buffer_t *exp_avg_sq, double lr,
                          double beta1, double beta2, double eps, double weight_decay,
                          int64_t step, int decoupled) {
    static const char fn[] = "mg_cl_adam_step";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin(fn, dtype, param, "param", &d, &k));
    if (n < 0) return mg_fail(MG_ERR_ARG, "%s: negative length %lld", fn, (long long)n);
    TRY(mg_check_adam_hyper(fn, step, lr, beta1, beta2, eps, weight_decay));
    const size_t item = ITEM(dtype);
    TRY(mg_clapi_buffer(fn, "param", param, param->device, n, item));
    TRY(mg_clapi_buffer(fn, "grad", grad, param->device, n, item));
    TRY(mg_clapi_buffer(fn, "exp_avg", exp_avg, param->device, n, item));
    TRY(mg_clapi_buffer(fn, "exp_avg_sq", exp_avg_sq, param->device, n, item));
    mg_cl_real_t l = mg_cl_real(dtype, lr), b1 = mg_cl_real(dtype, beta1), b2 = mg_cl_real(dtype, beta2);
    mg_cl_real_t e = mg_cl_real(dtype, eps), wd = mg_cl_real(dtype, weight_decay);
    mg_cl_real_t size = mg_cl_real(dtype, lr / (1 - pow(beta1, (double)step)));
    mg_cl_real_t bc2 = mg_cl_real(dtype, sqrt(1 - pow(beta2, (double)step)));
    const int dec = decoupled != 0;
    return LAUNCH_1D(fn, d, &k[MG_CLK_adam_step], n, MG_CL_ARG(n), MG_CL_ARG(param->mem),
                       MG_CL_ARG(grad->mem), MG_CL_ARG(exp_avg->mem), MG_CL_ARG(exp_avg_sq->mem),
                       MG_CL_REAL(dtype, l), MG_CL_REAL(dtype, b1), MG_CL_REAL(dtype, b2), MG_CL_REAL(dtype, e),
                       MG_CL_REAL(dtype, wd), MG_CL_ARG(dec), MG_CL_REAL(dtype, size), MG_CL_REAL(dtype, bc2));
}
