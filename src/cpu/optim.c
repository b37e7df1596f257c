/* cpu/optim.c - the optimizer updates of optim.py as one fused pass each.
 *
 * Every array is n contiguous elements of one dtype and is updated in place.
 * The order of operations, and the rounding of each hyper-parameter to the
 * dtype, are those of torch.optim (and of the NumPy formulation they
 * replace), so results match it bit for bit; no fused multiply-adds (the
 * library's -ffp-contract=off), so every ISA gives the same bits.
 *
 * SGD (mg_sgd_args):
 *     g = grad + wd*p                         (wd != 0)
 *     buf = g (first step), else buf = momentum*buf + (1 - dampening)*g
 *     g = g + momentum*buf (nesterov), else g = buf       (momentum != 0)
 *     p = p - lr*g
 * Adam (mg_adam_args; step_size = lr/(1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t)):
 *     p = p*decay (AdamW: decay = 1 - lr*wd)  or  g = grad + wd*p (Adam, wd != 0)
 *     m = m + (1 - beta1)*(g - m);   v = beta2*v + (1 - beta2)*g^2
 *     p = p - step_size*(m / (sqrt(v)/bc2_sqrt + eps))                  */
#include <math.h>

#include "kernels.h"

/* SGD: a loop without momentum, and one with it. In each, the options
 * are values chosen per element (g + p*wd or g; ...), not branches around
 * stores, so the compiler vectorises both; a branch inside the loop around
 * the store to buf kept the momentum loop scalar: 136 us for a 256x784
 * float32 step, 35-42 us now, 20 us without momentum (AMD EPYC Zen 3).
 * With dampening 0 the factor (1 - dampening) is 1 and damp*g is g exactly. */
#define DEFINE_OPTIM(T, SQRT, SUFFIX)                                                            \
    static void sgd_##SUFFIX(int64_t n, void *param, const void *gradient, void *momentum_buffer, \
                             const mg_sgd_args *a) {                                              \
        T *p = param, *buf = momentum_buffer;                                                     \
        const T *grad = gradient;                                                                 \
        const T lr = (T)a->lr, wd = (T)a->weight_decay, momentum = (T)a->momentum;               \
        const T damp = (T)(1 - a->dampening);                                                     \
        const int decay = a->weight_decay != 0, first = a->first_step, nesterov = a->nesterov;    \
        if (a->momentum == 0) {                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T g = decay ? grad[i] + p[i] * wd : grad[i];                                \
                p[i] = p[i] - g * lr;                                                             \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                         \
            const T g = decay ? grad[i] + p[i] * wd : grad[i];                                    \
            const T b = first ? g : buf[i] * momentum + damp * g;                                 \
            buf[i] = b;                                                                           \
            p[i] = p[i] - (nesterov ? g + momentum * b : b) * lr;                                 \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    static void adam_##SUFFIX(int64_t n, void *param, const void *gradient, void *exp_avg,       \
                              void *exp_avg_sq, const mg_adam_args *a) {                          \
        T *p = param, *m = exp_avg, *v = exp_avg_sq;                                              \
        const T *grad = gradient;                                                                 \
        const T wd = (T)a->weight_decay, decay = (T)a->decay;                                     \
        const T one_minus_beta1 = (T)(1 - a->beta1), one_minus_beta2 = (T)(1 - a->beta2);         \
        const T beta2 = (T)a->beta2, eps = (T)a->eps;                                             \
        const T step_size = (T)a->step_size, bc2_sqrt = (T)a->bc2_sqrt;                           \
        for (int64_t i = 0; i < n; i++) {                                                         \
            T g = grad[i], pi = p[i];                                                             \
            if (a->decoupled) pi = pi * decay;                                                    \
            else if (a->weight_decay != 0) g = g + pi * wd;                                       \
            const T mi = m[i] + (g - m[i]) * one_minus_beta1;                                     \
            const T vi = v[i] * beta2 + (g * g) * one_minus_beta2;                                \
            m[i] = mi;                                                                            \
            v[i] = vi;                                                                            \
            p[i] = pi - (mi / (SQRT(vi) / bc2_sqrt + eps)) * step_size;                          \
        }                                                                                         \
    }

DEFINE_OPTIM(float, sqrtf, f32)
DEFINE_OPTIM(double, sqrt, f64)

void MG_ISA_FN(mg_fill_optim)(mg_kernel_table *t) {
    t->sgd[0] = sgd_f32;
    t->sgd[1] = sgd_f64;
    t->adam[0] = adam_f32;
    t->adam[1] = adam_f64;
}
