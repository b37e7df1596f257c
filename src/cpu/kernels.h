/* cpu/kernels.h - the kernel table: one function pointer per kernel and dtype.
 *
 * Every cpu/<family>.c file is compiled once per ISA (CMakeLists.txt) with
 * MG_ISA_SUFFIX set to _scalar, _avx2, _avx512 or _neon, and defines
 * mg_fill_<family><suffix>(), which writes its pointers into the table.
 * dispatch.c calls the fill functions of the chosen ISA. Kernels trust
 * their arguments: api.c has validated them. */
#ifndef MG_CPU_KERNELS_H
#define MG_CPU_KERNELS_H

#include <stdint.h>

#include "../mg.h"   /* mg_status, mg_window2d_t */

#define MG_CAT_(a, b) a##b
#define MG_CAT(a, b) MG_CAT_(a, b)
#define MG_ISA_FN(name) MG_CAT(name, MG_ISA_SUFFIX)

#define MG_NUM_BINARY_OPS 6
#define MG_NUM_DTYPES 2
#define MG_SUM_LANES 8

/* Outputs of at least this many bytes are written with streaming stores:
 * min(6 MiB, half the last-level cache), set once at start-up (dispatch.c).
 * Measured: a scale-and-shift of a buffer followed by a relu that reads it.
 * AVX-512 Xeon (2.5 MiB L2, large L3): ordinary stores 25% faster at 1 MiB
 * (the relu finds the data in cache), about even at 4 MiB, 15-20% slower at
 * 8 and 25 MiB, where the ordinary store's read of each line costs a third
 * of the memory traffic. AMD EPYC (8 MiB L3): ordinary stores 8% faster at
 * 2 MiB, 8-12% slower at 4 MiB, 30% slower at 8 MiB. */
extern int64_t mg_stream_min_bytes;

/* Orders streamed stores before the task that made them reports its output
 * done (x86: sfence; elsewhere streamed stores are ordinary stores). */
#if defined(__x86_64__) || defined(__i386__)
static inline void mg_stream_fence(void) { __builtin_ia32_sfence(); }
#else
static inline void mg_stream_fence(void) {}
#endif

/* out[i*1] = a[i*sa] op b[i*sb] for i < n (strides in elements); with
 * `stream`, the loops that have a vector form write out with streaming
 * stores when a and b are contiguous or broadcast scalars (the bits are the
 * same either way). */
typedef void (*mg_binary_loop_fn)(int64_t n, const void *a, int64_t sa,
                                  const void *b, int64_t sb, void *out, int stream);

/* lanes[j] += x[i] for every i = j (mod 8) in [0, n): eight independent
 * float64 running sums, so the result is the same for every vector width. */
typedef void (*mg_sum_lanes_fn)(const void *x, int64_t n, double lanes[MG_SUM_LANES]);

/* ---- unary (cpu/unary.c) ----------------------------------------------- */
#define MG_NUM_UNARY_OPS 8
#define MG_NUM_UNARY_GRADS 5
/* out[i] = f(x[i]) for i < n, contiguous; with `stream`, the maps that have
 * a vector form write out with streaming stores (the same bits). */
typedef void (*mg_unary_loop_fn)(int64_t n, const void *x, void *out, int stream);
/* out[i] = f'(saved[i]) * g[i]: the fused backward of relu, sigmoid, tanh,
 * sqrt (saved = the op's output) and abs (saved = its input); `stream` as
 * for the maps. */
typedef void (*mg_unary_grad_fn)(int64_t n, const void *saved, const void *g, void *out, int stream);
/* out[i] = min(max(x[i], lo), hi). */
typedef void (*mg_clamp_fn)(int64_t n, const void *x, double lo, double hi, void *out);
/* out[i] = g[i] if lo <= x[i] <= hi else 0. */
typedef void (*mg_clamp_grad_fn)(int64_t n, const void *x, const void *g, double lo, double hi,
                                 void *out);
/* out[i] = x[i]^p (mg_pow_scalar lists the exponents with shortcuts). */
typedef void (*mg_pow_scalar_fn)(int64_t n, const void *x, double p, void *out);
/* out[i] = g[i] * (p * x[i]^(p - 1)), 0 when p = 0. */
typedef void (*mg_pow_scalar_grad_fn)(int64_t n, const void *x, const void *g, double p, void *out);
/* out[i] = x[i]^y[i]. */
typedef void (*mg_pow_fn)(int64_t n, const void *x, const void *y, void *out);

/* ---- reductions over axes (cpu/reduce.c) --------------------------------- */
#define MG_NUM_REDUCE_OPS 3
/* lanes[i % 8] = lanes[i % 8] op x[i * stride] for i < n: sum adds in float64,
 * max/min propagate NaN. The lane of each element is fixed, so every ISA and
 * every stride gives the same bits. */
typedef void (*mg_reduce_lanes_fn)(const void *x, int64_t n, int64_t stride,
                                   double lanes[MG_SUM_LANES]);
/* acc[j] = acc[j] op x[j * stride] for j < n (a row added into a row of
 * float64 accumulators: the reduction over an outer axis). */
typedef void (*mg_reduce_rows_fn)(const void *x, int64_t n, int64_t stride, double *acc);
/* matmul (cpu/matmul.c): the per-ISA pieces of the blocked GEMM that
 * api_matmul.c drives; shapes and layouts are documented there and in
 * cpu/matmul_template.h. mc, nc are multiples of mr, nr. */
typedef struct {
    int mr, nr;          /* micro-tile: mr rows of C by nr columns */
    int mc, kc, nc;      /* cache blocks: A block mc x kc (L2), B panel kc x nc (L3) */
    void (*pack_a)(int64_t mc, int64_t kc, const void *a, int64_t rs, int64_t cs, void *ap);
    void (*pack_b)(int64_t kc, int64_t nc, const void *b, int64_t rs, int64_t cs, void *bp);
    void (*macro)(int64_t mc, int64_t nc, int64_t kc, const void *ap, const void *bp,
                  void *c, int64_t ldc, int add);
    void (*small)(int64_t m, int64_t n, int64_t k, const void *a, int64_t ars, int64_t acs,
                  const void *b, int64_t brs, void *c, int64_t ldc, int accumulate);
} mg_gemm_kernels;
/* ---- batch normalization (cpu/batchnorm.c) ---------------------------------
 * x is contiguous (N, C, S). "planes" kernels (S > 1) walk the values
 * [begin, end) of one channel, value i at x[(i / S) * stride + i % S] with
 * stride = C * S; "rows" kernels (S = 1) walk rows r < rows and channels
 * c < width at x[r * ld + c]. Sums are float64; the centers k (one per
 * channel: planes k[0], rows k[c]) and the per-channel parameters p of the
 * elementwise sweeps have x's dtype, parameter i of channel c at
 * p[i * ps + c] (planes: c = 0). */
typedef struct {
    /* sums[0] = sum(x - k), sums[1] = sum((x - k)^2) */
    void (*stat_planes)(const void *x, int64_t S, int64_t stride, int64_t begin, int64_t end,
                        const void *k, double sums[2]);
    /* sums[0] = sum(dy), sums[1] = sum(dy * (x - k)) */
    void (*grad_planes)(const void *dy, const void *x, int64_t S, int64_t stride, int64_t begin,
                        int64_t end, const void *k, double sums[2]);
    /* y = (x - m) * a + b, p = {m, a, b} */
    void (*affine_planes)(const void *x, void *y, int64_t S, int64_t stride, int64_t begin,
                          int64_t end, const void *p, int64_t ps, int stream);
    /* dx = k * dy + (c * (x - m) + b), p = {k, c, m, b} */
    void (*dx_planes)(const void *dy, const void *x, void *dx, int64_t S, int64_t stride,
                      int64_t begin, int64_t end, const void *p, int64_t ps, int stream);
    /* y = x * a + b, p = {a, b} (eval: forward, and backward with b = 0) */
    void (*scale_planes)(const void *x, void *y, int64_t S, int64_t stride, int64_t begin,
                         int64_t end, const void *p, int64_t ps, int stream);
    /* the same five per channel c < width (s1, s2 written, not accumulated) */
    void (*stat_rows)(const void *x, int64_t rows, int64_t width, int64_t ld, const void *k,
                      double *s1, double *s2);
    void (*grad_rows)(const void *dy, const void *x, int64_t rows, int64_t width, int64_t ld,
                      const void *k, double *s1, double *s2);
    void (*affine_rows)(const void *x, void *y, int64_t rows, int64_t width, int64_t ld,
                        const void *p, int64_t ps, int stream);
    void (*dx_rows)(const void *dy, const void *x, void *dx, int64_t rows, int64_t width,
                    int64_t ld, const void *p, int64_t ps, int stream);
    void (*scale_rows)(const void *x, void *y, int64_t rows, int64_t width, int64_t ld,
                       const void *p, int64_t ps, int stream);
    /* the eval sweep's p = {a, b} for C channels (ps = C) from the running
     * statistics; weight, bias, running_mean may be NULL */
    void (*eval_params)(void *p, int64_t C, const void *running_mean, const void *running_var,
                        const void *weight, const void *bias, double eps);
    /* the training forward's statistics and p = {m, a, b} (ps = C) for the
     * channels [c0, c1), from s1[c] = sum(x - k), s2[c] = sum((x - k)^2) over
     * n values and the centers k; weight, bias may be NULL; p, s1, s2 and k
     * overlap nothing else (they are restrict) */
    void (*forward_params)(void *p, int64_t C, int64_t c0, int64_t c1, double n, const double *s1,
                           const double *s2, const void *k, const void *weight, const void *bias,
                           double eps, double *save_mean, double *save_rstd, double *batch_var);
} mg_bn_kernels;
/* conv (cpu/conv.c): im2col/col2im for convolution (api_conv.c runs the
 * GEMMs) and the pooling loops. One geometry describes images of shape
 * (channels, h, w) and a window giving outputs of shape (oh, ow). */
typedef struct {
    int64_t channels, h, w;
    int64_t kh, kw, sh, sw, ph, pw;    /* kernel, stride, padding */
    int64_t oh, ow;
} mg_conv_geometry;

/* api_conv.c, shared with api_opencl_conv.c: sizes >= 0 whose product (and
 * that product in bytes) fits in int64; the window checked against an h x w
 * image, filling g (channels excluded). pool: PyTorch's pooling rule,
 * padding at most half the kernel. */
mg_status mg_conv_check_sizes(const char *fn, const char *what, int64_t a, int64_t b, int64_t c, int64_t d);
mg_status mg_conv_make_geometry(const char *fn, const mg_window2d_t *win, int64_t h, int64_t w, int pool,
                                mg_conv_geometry *g);

/* col ((channels*kh*kw) x (rows*ow)) = the windows of output rows
 * [row0, row0 + rows) of one image x (channels, h, w); 0 outside the image. */
typedef void (*mg_im2col_fn)(const mg_conv_geometry *g, int64_t row0, int64_t rows,
                             const void *x, void *col);
/* dx (channels, h, w) += each entry of col, laid out as for im2col, added
 * at the position it was read from. */
typedef void (*mg_col2im_fn)(const mg_conv_geometry *g, int64_t row0, int64_t rows,
                             const void *col, void *dx);
/* out (rows x cols) += bias[row] for every column. */
typedef void (*mg_add_bias_fn)(int64_t rows, int64_t cols, const void *bias, void *out);
/* Pooling of g->channels planes: out (channels, oh, ow) from x (channels, h, w). */
typedef void (*mg_pool_forward_fn)(const mg_conv_geometry *g, const void *x, void *out);
/* dx (channels, h, w) = dout routed to each window's max found in x (written). */
typedef void (*mg_max_pool_backward_fn)(const mg_conv_geometry *g, const void *x,
                                        const void *dout, void *dx);
/* dx (channels, h, w) = dout spread evenly over each window (written). */
typedef void (*mg_avg_pool_backward_fn)(const mg_conv_geometry *g, const void *dout, void *dx);

/* optimizer steps (cpu/optim.c): the hyper-parameters in double; each
 * kernel rounds them to its dtype as torch.optim does. */
typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov, first_step;
} mg_sgd_args;
typedef struct {
    double weight_decay, beta1, beta2, eps;
    double decay;                /* AdamW's 1 - lr*weight_decay */
    double step_size, bc2_sqrt;  /* lr/(1 - beta1^t), sqrt(1 - beta2^t) */
    int decoupled;
} mg_adam_args;
/* One SGD / Adam step over n elements of p, grad and the state, in place. */
typedef void (*mg_sgd_fn)(int64_t n, void *p, const void *grad, void *momentum_buffer,
                          const mg_sgd_args *a);
typedef void (*mg_adam_fn)(int64_t n, void *p, const void *grad, void *exp_avg, void *exp_avg_sq,
                           const mg_adam_args *a);

/* One member per family; each family's kernel types sit in its own block. */
typedef struct {
    /* elementwise */
    mg_binary_loop_fn binary[MG_NUM_BINARY_OPS][MG_NUM_DTYPES];
    /* reduce */
    mg_sum_lanes_fn sum_lanes[MG_NUM_DTYPES];
    /* unary */
    mg_unary_loop_fn unary[MG_NUM_UNARY_OPS][MG_NUM_DTYPES];
    mg_unary_grad_fn unary_grad[MG_NUM_UNARY_GRADS][MG_NUM_DTYPES];
    mg_clamp_fn clamp[MG_NUM_DTYPES];
    mg_clamp_grad_fn clamp_grad[MG_NUM_DTYPES];
    mg_pow_scalar_fn pow_scalar[MG_NUM_DTYPES];
    mg_pow_scalar_grad_fn pow_scalar_grad[MG_NUM_DTYPES];
    mg_pow_fn pow[MG_NUM_DTYPES];
    /* reductions over axes (in cpu/reduce.c) */
    mg_reduce_lanes_fn reduce_lanes[MG_NUM_REDUCE_OPS][MG_NUM_DTYPES];
    mg_reduce_rows_fn reduce_rows[MG_NUM_REDUCE_OPS][MG_NUM_DTYPES];
    /* matmul */
    mg_gemm_kernels gemm[MG_NUM_DTYPES];
    /* batchnorm */
    mg_bn_kernels batchnorm[MG_NUM_DTYPES];
    /* conv */
    mg_im2col_fn im2col[MG_NUM_DTYPES];
    mg_col2im_fn col2im[MG_NUM_DTYPES];
    mg_add_bias_fn add_bias[MG_NUM_DTYPES];
    mg_pool_forward_fn max_pool_forward[MG_NUM_DTYPES];
    mg_max_pool_backward_fn max_pool_backward[MG_NUM_DTYPES];
    mg_pool_forward_fn avg_pool_forward[MG_NUM_DTYPES];
    mg_avg_pool_backward_fn avg_pool_backward[MG_NUM_DTYPES];
    /* optim */
    mg_sgd_fn sgd[MG_NUM_DTYPES];
    mg_adam_fn adam[MG_NUM_DTYPES];
} mg_kernel_table;

/* The table of the active ISA (dispatch.c). */
extern const mg_kernel_table *mg_kernels;

#define MG_DECLARE_FILL(family)                                         \
    void family##_scalar(mg_kernel_table *t);                           \
    void family##_avx2(mg_kernel_table *t);                             \
    void family##_avx512(mg_kernel_table *t);                           \
    void family##_neon(mg_kernel_table *t);

/* The kernel families: one cpu/<family>.c each. X(name) is applied to every
 * family (dispatch.c calls each family's fill function). Add a line per new family. */
#define MG_KERNEL_FAMILIES(X) \
    X(elementwise)            \
    X(reduce)                 \
    X(unary)                  \
    X(matmul)                 \
    X(batchnorm)              \
    X(conv)                   \
    X(optim)

#define MG_DECLARE_FAMILY(family) MG_DECLARE_FILL(mg_fill_##family)
MG_KERNEL_FAMILIES(MG_DECLARE_FAMILY)

#endif
