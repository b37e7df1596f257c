/* mg.h - the public C API of mgbn, the arithmetic core of microgradbn.
 *
 * This is the only header the Python side sees: the text between the
 * MG_CDEF_BEGIN and MG_CDEF_END markers is handed to cffi verbatim at build
 * time (tools/gen_cffi.py), so it must stay plain C declarations with no
 * preprocessor lines.
 *
 * Conventions
 *   - every symbol starts with mg_, every type with mg_ and ends in _t or is
 *     an enum;
 *   - every function returns an mg_status, except mg_last_error() and
 *     mg_version(), which return strings;
 *   - the library validates its arguments, never aborts, prints or exits;
 *     on failure it returns an MG_ERR_* code and mg_last_error() gives a
 *     thread-local message;
 *   - tensors are plain buffers of float32 or float64; shapes and strides are
 *     int64_t and strides count ELEMENTS, not bytes (0 = broadcast).
 */
#ifndef MG_H
#define MG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MG_CDEF_BEGIN */

/* ---- status, version, backend ------------------------------------------- */

typedef enum {
    MG_OK = 0,
    MG_ERR_ARG = 1,      /* a bad argument (null pointer, negative size, unknown enum) */
    MG_ERR_SHAPE = 2,    /* shapes do not agree */
    MG_ERR_DTYPE = 3,    /* an unsupported or mismatched dtype */
    MG_ERR_NOMEM = 4,    /* an allocation failed */
    MG_ERR_BACKEND = 5,  /* a backend or SIMD path is unavailable */
    MG_ERR_INTERNAL = 6  /* a bug in mgbn: please report it */
} mg_status;

typedef enum { MG_F32 = 0, MG_F64 = 1 } mg_dtype;

typedef enum {
    MG_ISA_SCALAR = 0,
    MG_ISA_AVX2 = 1,     /* AVX2 + FMA (x86-64) */
    MG_ISA_AVX512 = 2,   /* AVX-512F (x86-64) */
    MG_ISA_NEON = 3      /* Advanced SIMD (aarch64) */
} mg_isa;

typedef struct {
    int active_isa;            /* the mg_isa whose kernels run now */
    unsigned compiled_isas;    /* bit (1 << isa) for each path built into this library */
    unsigned available_isas;   /* ...that this CPU and OS can also run */
    int num_threads;           /* threads the pool uses (1 = the caller only) */
} mg_backend_info_t;

/* Message of the last failing call on this thread ("" if none). */
const char *mg_last_error(void);
/* Library version, "MAJOR.MINOR.PATCH". */
const char *mg_version(void);

/* Detects the CPU, applies MGBN_SIMD and MGBN_NUM_THREADS. Called once by
 * every other entry point; call it first to see an environment error. */
mg_status mg_init(void);
mg_status mg_get_backend_info(mg_backend_info_t *out);
/* Force a SIMD path (MG_ERR_BACKEND if this CPU cannot run it). */
mg_status mg_set_isa(int isa);
/* Threads used by kernels, >= 1. Results do not depend on it. */
mg_status mg_set_num_threads(int n);

/* ---- memory ------------------------------------------------------------- */

/* A 64-byte-aligned buffer of nbytes (> 0). Freed buffers are cached by size
 * class and handed out again, so a training step does not re-fault pages. */
mg_status mg_alloc(size_t nbytes, void **out);
mg_status mg_free(void *ptr);
/* Returns every cached buffer to the system. */
mg_status mg_release_cached(void);

/* ---- elementwise -------------------------------------------------------- */

typedef enum {
    MG_OP_ADD = 0,   /* a + b */
    MG_OP_SUB = 1,   /* a - b */
    MG_OP_MUL = 2,   /* a * b */
    MG_OP_DIV = 3,   /* a / b */
    MG_OP_MAX = 4,   /* max(a, b), NaN if either is NaN */
    MG_OP_MIN = 5    /* min(a, b), NaN if either is NaN */
} mg_binary_op;

/* out[i] = a[i] op b[i] for i < n; all three contiguous, same dtype. */
mg_status mg_binary_contig(int op, int dtype, int64_t n,
                           const void *a, const void *b, void *out);

/* out = a op b with broadcasting: out is contiguous of shape[ndim]; a and b
 * are read at element strides a_strides/b_strides (0 on broadcast axes, may
 * be negative). ndim <= 16; ndim = 0 is a single element. */
mg_status mg_binary(int op, int dtype, int ndim, const int64_t *shape,
                    const void *a, const int64_t *a_strides,
                    const void *b, const int64_t *b_strides, void *out);

/* ---- reductions --------------------------------------------------------- */

/* *out = sum of x[0..n) (contiguous). float32 is accumulated in float64.
 * The order of additions is fixed: the bits do not depend on the thread
 * count or the SIMD path. *out has the dtype of x. */
mg_status mg_sum(int dtype, const void *x, int64_t n, void *out);

/* ---- matrix multiplication --------------------------------------------- */

/* Batched GEMM: for every t < batch,
 *     C[t] = A[t] . B[t]          (accumulate == 0)
 *     C[t] = C[t] + A[t] . B[t]   (accumulate != 0; useful for gradients)
 * with A[t] m x k, B[t] k x n, C[t] m x n, all of dtype. Element addresses:
 *     A[t](i,p) = a + t*a_batch_stride + i*a_row_stride + p*a_col_stride
 *     B[t](p,j) = b + t*b_batch_stride + p*b_row_stride + j*b_col_stride
 *     C[t](i,j) = c + t*c_batch_stride + i*c_row_stride + j
 * in ELEMENTS. A and B strides may be anything (negative: reversed; a
 * transposed matrix is just swapped strides; batch stride 0 broadcasts one
 * matrix to every t). C's columns are contiguous, c_row_stride >= n (when
 * m > 1) and c_batch_stride >= (m-1)*c_row_stride + n (when batch > 1):
 * C elements never overlap, and C must not overlap A or B. k = 0 gives
 * C = 0 (or leaves C as it is, with accumulate).
 * float32 products are summed in float32 (like BLAS): expect a relative
 * error growing like k * 2^-24. The order of the sum over p depends only on
 * the shape and the SIMD path, never on the thread count: results are
 * bitwise identical for any number of threads. */
mg_status mg_matmul(int dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                    const void *a, int64_t a_batch_stride, int64_t a_row_stride, int64_t a_col_stride,
                    const void *b, int64_t b_batch_stride, int64_t b_row_stride, int64_t b_col_stride,
                    void *c, int64_t c_batch_stride, int64_t c_row_stride, int accumulate);
/* ---- batch normalization ---- */

/* x is a contiguous float32 or float64 tensor seen as (N, C, S): S = 1 for
 * (N, C), L for (N, C, L), H*W for (N, C, H, W); channel c has n = N*S
 * values. weight (gamma) and bias (beta) are (C,) of x's dtype, or NULL
 * (gamma = 1, beta = 0). The per-channel statistics are float64 whatever the
 * dtype, so backward sees the mean without rounding. Results do not depend
 * on the thread count; the math is in docs/bn_backward.md.
 *
 * Training forward: mean = sum(x)/n, var = sum((x - mean)^2)/n (biased),
 * rstd = 1/sqrt(var + eps), y = (x - mean)*rstd*gamma + beta. Writes y (like
 * x), save_mean, save_rstd and batch_var (C,). Needs n > 1 and eps >= 0. */
mg_status mg_batch_norm_train_forward(int dtype, int64_t N, int64_t C, int64_t S,
                                      const void *x, const void *weight, const void *bias,
                                      double eps, void *y, double *save_mean,
                                      double *save_rstd, double *batch_var);

/* Eval forward: y = x*scale + shift, scale = gamma/sqrt(running_var + eps),
 * shift = beta - running_mean*scale; running_* are (C,) of x's dtype. */
mg_status mg_batch_norm_eval_forward(int dtype, int64_t N, int64_t C, int64_t S,
                                     const void *x, const void *running_mean,
                                     const void *running_var, const void *weight,
                                     const void *bias, double eps, void *y);

/* Training backward from dy (like x), x, and save_mean, save_rstd of the
 * forward: dbias = sum(dy), dweight = sum(dy*xhat), xhat = (x - mean)*rstd,
 * dx = (1/n)*rstd*(n*g - sum(g) - xhat*sum(g*xhat)), g = dy*gamma.
 * dx, dweight, dbias may each be NULL (not wanted). */
mg_status mg_batch_norm_backward(int dtype, int64_t N, int64_t C, int64_t S,
                                 const void *dy, const void *x, const double *save_mean,
                                 const double *save_rstd, const void *weight,
                                 void *dx, void *dweight, void *dbias);

/* Eval backward: dx = dy*gamma/sqrt(running_var + eps). */
mg_status mg_batch_norm_eval_backward(int dtype, int64_t N, int64_t C, int64_t S,
                                      const void *dy, const void *running_var,
                                      const void *weight, double eps, void *dx);
/* ---- convolution and pooling ------------------------------------------ */

/* A 2-D sliding window: kernel size, stride (>= 1) and padding (>= 0) along
 * the height and the width. An input of height H gives an output of height
 *     OH = (H + 2*pad_h - kernel_h) / stride_h + 1      (rounded down)
 * and likewise for the width (dilation 1, PyTorch's ceil_mode=False). */
typedef struct {
    int64_t kernel_h, kernel_w;
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
} mg_window2d_t;

/* 2-D convolution (cross-correlation), as torch.nn.functional.conv2d with
 * groups = 1 and dilation = 1; x reads as 0 outside the image:
 *     out[n,o,i,j] = bias[o] + sum_{c,p,q} weight[o,c,p,q] * x[n, c, i*stride_h - pad_h + p,
 *                                                              j*stride_w - pad_w + q]
 * x (batch, c_in, h, w), weight (c_out, c_in, kernel_h, kernel_w), bias
 * (c_out) or NULL, out (batch, c_out, OH, OW): contiguous, all of dtype.
 * Runs as im2col + mg_matmul, so float32 products are summed in float32 as
 * mg_matmul does. The bits do not depend on the thread count. */
mg_status mg_conv2d_forward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w,
                            int64_t c_out, const mg_window2d_t *window,
                            const void *x, const void *weight, const void *bias, void *out);

/* The gradients of mg_conv2d_forward, given dout (batch, c_out, OH, OW):
 *     dx[n,c,y,x]     = sum of weight[o,c,p,q] * dout[n,o,i,j] over the (o,i,j,p,q) that read x[n,c,y,x]
 *     dweight[o,c,p,q] = sum_{n,i,j} dout[n,o,i,j] * x[n, c, i*stride_h - pad_h + p, j*stride_w - pad_w + q]
 *     dbias[o]        = sum_{n,i,j} dout[n,o,i,j]       (float32 summed in float64)
 * dx, dweight and dbias may each be NULL (not wanted); the others are
 * written, not added to. x may be NULL when dweight is, weight when dx is. */
mg_status mg_conv2d_backward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w,
                             int64_t c_out, const mg_window2d_t *window,
                             const void *x, const void *weight, const void *dout,
                             void *dx, void *dweight, void *dbias);

/* 2-D max pooling, as torch.nn.functional.max_pool2d (dilation 1, floor
 * mode): padding reads as -infinity and may be at most half the kernel.
 * x (batch, channels, h, w), out (batch, channels, OH, OW), contiguous.
 * out = the largest value of each window; a NaN counts as larger than
 * anything (the max is NaN), as in PyTorch. */
mg_status mg_max_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                const mg_window2d_t *window, const void *x, void *out);

/* dx (shaped like x) = dout routed to the position of each window's max:
 * the first maximum in row-major window order (PyTorch's rule; with NaNs,
 * the last NaN). The positions are found again from x, so forward needs
 * to store nothing. dx is written, not added to. */
mg_status mg_max_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                 const mg_window2d_t *window, const void *x, const void *dout,
                                 void *dx);

/* 2-D average pooling, as torch.nn.functional.avg_pool2d with
 * count_include_pad=True (PyTorch's default): each output is the sum of the
 * window's values inside the image divided by kernel_h * kernel_w (padding
 * counts as zeros); padding may be at most half the kernel. float32 is
 * summed in float64. */
mg_status mg_avg_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                const mg_window2d_t *window, const void *x, void *out);

/* dx (batch, channels, h, w) = sum over the windows holding each input
 * position of dout / (kernel_h * kernel_w). dx is written, not added to. */
mg_status mg_avg_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                 const mg_window2d_t *window, const void *dout, void *dx);

/* MG_CDEF_END */

#ifdef __cplusplus
}
#endif
#endif /* MG_H */
