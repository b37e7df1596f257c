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
    int64_t stream_min_bytes;  /* outputs this large or larger are written with streaming stores */
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
/* mg_alloc for allocators that take a NULL as failure (cffi's new_allocator,
 * which the Python package uses): the buffer, or NULL with the reason in
 * mg_last_error(). Free it with mg_free. */
void *mg_alloc_or_null(size_t nbytes);
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

/* ---- unary maps (api_unary.c, cpu/unary.c) ------------------------------ */

typedef enum {
    MG_UNARY_EXP = 0,      /* exp(x)          float32: <= 1.5 ulp (own polynomial) */
    MG_UNARY_LOG = 1,      /* log(x)          float32: <= 1 ulp */
    MG_UNARY_SQRT = 2,     /* sqrt(x)         correctly rounded */
    MG_UNARY_TANH = 3,     /* tanh(x)         float32: <= 1.5 ulp */
    MG_UNARY_SIGMOID = 4,  /* 1 / (1 + exp(-x)), float32: <= 3 ulp */
    MG_UNARY_RELU = 5,     /* max(x, 0), NaN stays NaN */
    MG_UNARY_ABS = 6,      /* |x| */
    MG_UNARY_NEG = 7       /* -x */
} mg_unary_op;             /* float64 exp/log/tanh come from the C library */

typedef enum {
    MG_UNARY_GRAD_RELU = 0,     /* gx = g * (y > 0)       saved: y = relu(x) */
    MG_UNARY_GRAD_SIGMOID = 1,  /* gx = g * y * (1 - y)   saved: y = sigmoid(x) */
    MG_UNARY_GRAD_TANH = 2,     /* gx = g * (1 - y * y)   saved: y = tanh(x) */
    MG_UNARY_GRAD_SQRT = 3,     /* gx = g / (2 y)         saved: y = sqrt(x) */
    MG_UNARY_GRAD_ABS = 4       /* gx = g * sign(x)       saved: x */
} mg_unary_grad_op;

/* out[i] = f(x[i]) for i < n; x and out contiguous, same dtype (may alias). */
mg_status mg_unary(int op, int dtype, int64_t n, const void *x, void *out);
/* out[i] = the gradient of the op at i, from the saved array and grad. */
mg_status mg_unary_backward(int op, int dtype, int64_t n, const void *saved,
                            const void *grad, void *out);
/* out[i] = min(max(x[i], lo), hi) (-INFINITY / INFINITY for no bound). */
mg_status mg_clamp(int dtype, int64_t n, const void *x, double lo, double hi, void *out);
/* out[i] = grad[i] where lo <= x[i] <= hi, else 0. */
mg_status mg_clamp_backward(int dtype, int64_t n, const void *x, const void *grad,
                            double lo, double hi, void *out);
/* out[i] = x[i]^p. The exponents PyTorch special-cases take its shortcuts
 * (p = 0: 1, 1: x, 2: x*x, 3: x*x*x, 0.5: sqrt(x), -0.5: 1/sqrt(x), -1:
 * 1/x, -2: 1/(x*x)); any other p the C library's pow (for float32, of x and
 * (float)p in double, then rounded: within 1 ulp). */
mg_status mg_pow_scalar(int dtype, int64_t n, const void *x, double p, void *out);
/* out[i] = grad[i] * (p * x[i]^(p - 1)) (the power by the same rules); all
 * zero when p = 0, as PyTorch. */
mg_status mg_pow_scalar_backward(int dtype, int64_t n, const void *x, const void *grad,
                                 double p, void *out);
/* out[i] = x[i]^y[i], the C library's pow (float32 through double). */
mg_status mg_pow(int dtype, int64_t n, const void *x, const void *y, void *out);

/* ---- reductions over axes (api_reduce.c) --------------------------------- */

typedef enum { MG_REDUCE_SUM = 0, MG_REDUCE_MAX = 1, MG_REDUCE_MIN = 2 } mg_reduce_op;

/* out = op of x over the axes d with bit (1 << d) set in reduce_mask. x has
 * shape[ndim] and element strides (any sign, 0 = broadcast); out is
 * contiguous with the kept axes in order. float32 sums accumulate in
 * float64; max/min give NaN if any element is NaN; max/min over an empty
 * axis is MG_ERR_SHAPE, a sum over one is 0. Bitwise the same for any
 * thread count and SIMD path. */
mg_status mg_reduce(int op, int dtype, int ndim, const int64_t *shape, const void *x,
                    const int64_t *strides, unsigned reduce_mask, void *out);
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

/* ---- optimizer steps (api_optim.c, cpu/optim.c) ---------------------------- */

/* One in-place step over n contiguous elements of dtype, as torch.optim (the
 * formulas of mg_cl_sgd_step / mg_cl_adam_step below, the same arguments):
 * the same order of operations, each hyper-parameter rounded to the dtype,
 * so the bits are torch.optim's (and the same on every ISA and thread count).
 * SGD: momentum_buffer may be NULL when momentum == 0; first_step != 0 sets
 * it to the (decayed) gradient. Adam: step >= 1 counts this step; decoupled
 * != 0 is AdamW. Hyper-parameters must be finite, betas in [0, 1). */
mg_status mg_sgd_step(int dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                      double lr, double momentum, double dampening, double weight_decay,
                      int nesterov, int first_step);
mg_status mg_adam_step(int dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                       void *exp_avg_sq, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int64_t step, int decoupled);

/* ---- OpenCL ---- (src/opencl/, api_opencl.c, api_opencl_nn.c) ----------- */

/* libOpenCL is opened with dlopen on the first call of any mg_cl_ function
 * (MGBN_OPENCL_LIBRARY names another library to open); mgbn never links it.
 * Without a runtime or a device every mg_cl_ function returns MG_ERR_BACKEND
 * with a message naming what to install. float64 on a device without
 * cl_khr_fp64 is MG_ERR_DTYPE.
 *
 * Operations are enqueued on the device's in-order queue and return at once;
 * mg_cl_read waits for what was enqueued before it. Buffers of one call must
 * be on one device. Offsets, strides and n count ELEMENTS of the dtype.
 * "Statistics" buffers (BN save_mean, save_rstd, batch_var) hold doubles on
 * devices with cl_khr_fp64 and floats elsewhere (mg_cl_device_info_t.fp64);
 * float32 sums accumulate in that type too. MGBN_OPENCL_FP64=0 makes every
 * device behave as one without cl_khr_fp64. Do not use a device from a
 * child process forked after the parent has used it. */

typedef struct mg_cl_buffer mg_cl_buffer_t;   /* opaque: a cl_mem and its device */

typedef struct {
    char name[256];
    char vendor[256];
    char version[128];             /* "OpenCL 3.0 PoCL ..." */
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;      /* largest single buffer */
    int64_t max_work_group_size;
    int compute_units;
    int fp64;                      /* 1 if the device has cl_khr_fp64 */
    int is_gpu;
} mg_cl_device_info_t;

/* Loads the runtime and opens every device, once per process. */
mg_status mg_cl_init(void);
mg_status mg_cl_device_count(int *out);
mg_status mg_cl_device_info(int device, mg_cl_device_info_t *out);

/* A device buffer of nbytes (> 0); mg_cl_free(NULL) does nothing. */
mg_status mg_cl_alloc(int device, size_t nbytes, mg_cl_buffer_t **out);
mg_status mg_cl_free(mg_cl_buffer_t *buf);
mg_status mg_cl_buffer_size(const mg_cl_buffer_t *buf, size_t *nbytes, int *device);
/* Host -> device (returns once src may be reused) and device -> host (waits). */
mg_status mg_cl_write(mg_cl_buffer_t *dst, size_t dst_offset_bytes, const void *src, size_t nbytes);
mg_status mg_cl_read(const mg_cl_buffer_t *src, size_t src_offset_bytes, void *dst, size_t nbytes);
/* Device -> device on one device. */
mg_status mg_cl_copy(const mg_cl_buffer_t *src, size_t src_offset_bytes, mg_cl_buffer_t *dst,
                     size_t dst_offset_bytes, size_t nbytes);
/* buf[0..n) = value. */
mg_status mg_cl_fill(int dtype, mg_cl_buffer_t *buf, int64_t n, double value);
/* Waits until every command enqueued on device has finished. */
mg_status mg_cl_finish(int device);

/* out = a op b (an mg_binary_op) with broadcasting, as mg_binary; a and b are
 * read from element a_offset/b_offset at element strides (0 = broadcast). */
mg_status mg_cl_binary(int op, int dtype, int ndim, const int64_t *shape,
                       const mg_cl_buffer_t *a, int64_t a_offset, const int64_t *a_strides,
                       const mg_cl_buffer_t *b, int64_t b_offset, const int64_t *b_strides,
                       mg_cl_buffer_t *out);
/* out[i] = f(x[i]), i < n. op: 0 exp, 1 log, 2 sqrt, 3 tanh, 4 sigmoid,
 * 5 relu, 6 abs, 7 neg (the CPU's mg_unary_op numbers). x may be out. */
mg_status mg_cl_unary(int op, int dtype, int64_t n, const mg_cl_buffer_t *x, mg_cl_buffer_t *out);
/* out[i] = the gradient from the saved array and grad. op: 0 relu
 * (saved y = relu(x): g*(y > 0)), 1 sigmoid (saved y: g*y*(1-y)), 2 tanh
 * (saved y: g*(1-y*y)), 3 sqrt (saved y: g/(2y)), 4 abs (saved x: g*sign(x)). */
mg_status mg_cl_unary_backward(int op, int dtype, int64_t n, const mg_cl_buffer_t *saved,
                               const mg_cl_buffer_t *grad, mg_cl_buffer_t *out);
/* out = min(max(x, lo), hi); backward: grad where lo <= x <= hi, else 0. */
mg_status mg_cl_clamp(int dtype, int64_t n, const mg_cl_buffer_t *x, double lo, double hi,
                      mg_cl_buffer_t *out);
mg_status mg_cl_clamp_backward(int dtype, int64_t n, const mg_cl_buffer_t *x,
                               const mg_cl_buffer_t *grad, double lo, double hi, mg_cl_buffer_t *out);

/* out = op (0 sum, 1 max, 2 min) of x over the axes with bit (1 << d) set in
 * reduce_mask, as mg_reduce: x read from x_offset at element strides, out
 * contiguous with the kept axes in order. Work-group tree reductions in an
 * order fixed by the shape and the device: the same bits on every run. */
mg_status mg_cl_reduce(int op, int dtype, int ndim, const int64_t *shape,
                       const mg_cl_buffer_t *x, int64_t x_offset, const int64_t *strides,
                       unsigned reduce_mask, mg_cl_buffer_t *out);

/* c[p] (+)= a[p] @ b[p] for p < batch, a (m, k), b (k, n), c (m, n), each at
 * an element offset with batch/row/column strides (any layout: transposes are
 * strides). c's columns are contiguous. Tiled, local-memory kernel. */
mg_status mg_cl_matmul(int dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                       const mg_cl_buffer_t *a, int64_t a_offset, int64_t a_batch_stride,
                       int64_t a_row_stride, int64_t a_col_stride,
                       const mg_cl_buffer_t *b, int64_t b_offset, int64_t b_batch_stride,
                       int64_t b_row_stride, int64_t b_col_stride,
                       mg_cl_buffer_t *c, int64_t c_offset, int64_t c_batch_stride,
                       int64_t c_row_stride, int accumulate);

/* Over the last axis of contiguous (rows, cols): softmax y = exp(x - max)/sum,
 * or with is_log = 1 log_softmax y = x - max - log(sum). Backward from y:
 * softmax dx = y*(g - sum(g*y)), log_softmax dx = g - exp(y)*sum(g). */
mg_status mg_cl_softmax(int dtype, int64_t rows, int64_t cols, const mg_cl_buffer_t *x, int is_log,
                        mg_cl_buffer_t *y);
mg_status mg_cl_softmax_backward(int dtype, int64_t rows, int64_t cols, const mg_cl_buffer_t *y,
                                 const mg_cl_buffer_t *grad, int is_log, mg_cl_buffer_t *dx);

/* Batch normalization on contiguous x seen as (N, C, S), as the CPU's
 * mg_batch_norm_*: the same math, argument order and NULL rules; the
 * statistics are (C,) buffers of the statistics type (above). */
mg_status mg_cl_batch_norm_train_forward(int dtype, int64_t N, int64_t C, int64_t S,
                                         const mg_cl_buffer_t *x, const mg_cl_buffer_t *weight,
                                         const mg_cl_buffer_t *bias, double eps, mg_cl_buffer_t *y,
                                         mg_cl_buffer_t *save_mean, mg_cl_buffer_t *save_rstd,
                                         mg_cl_buffer_t *batch_var);
mg_status mg_cl_batch_norm_eval_forward(int dtype, int64_t N, int64_t C, int64_t S,
                                        const mg_cl_buffer_t *x, const mg_cl_buffer_t *running_mean,
                                        const mg_cl_buffer_t *running_var, const mg_cl_buffer_t *weight,
                                        const mg_cl_buffer_t *bias, double eps, mg_cl_buffer_t *y);
mg_status mg_cl_batch_norm_backward(int dtype, int64_t N, int64_t C, int64_t S,
                                    const mg_cl_buffer_t *dy, const mg_cl_buffer_t *x,
                                    const mg_cl_buffer_t *save_mean, const mg_cl_buffer_t *save_rstd,
                                    const mg_cl_buffer_t *weight, mg_cl_buffer_t *dx,
                                    mg_cl_buffer_t *dweight, mg_cl_buffer_t *dbias);
mg_status mg_cl_batch_norm_eval_backward(int dtype, int64_t N, int64_t C, int64_t S,
                                         const mg_cl_buffer_t *dy, const mg_cl_buffer_t *running_var,
                                         const mg_cl_buffer_t *weight, double eps, mg_cl_buffer_t *dx);

/* In-place optimizer steps over n elements, as torch.optim (see optim.py):
 * SGD  g = grad + wd*p; with momentum != 0: buf = g on the first step, else
 *      buf = momentum*buf + (1 - dampening)*g, and g = g + momentum*buf
 *      (nesterov) or buf; p -= lr*g. momentum_buffer may be NULL if momentum == 0.
 * Adam (decoupled = AdamW: p *= 1 - lr*wd instead of g += wd*p)
 *      m += (1 - beta1)*(g - m); v = beta2*v + (1 - beta2)*g*g;
 *      p -= lr/(1 - beta1^step) * m/(sqrt(v)/sqrt(1 - beta2^step) + eps). */
mg_status mg_cl_sgd_step(int dtype, int64_t n, mg_cl_buffer_t *param, const mg_cl_buffer_t *grad,
                         mg_cl_buffer_t *momentum_buffer, double lr, double momentum,
                         double dampening, double weight_decay, int nesterov, int first_step);
mg_status mg_cl_adam_step(int dtype, int64_t n, mg_cl_buffer_t *param, const mg_cl_buffer_t *grad,
                          mg_cl_buffer_t *exp_avg, mg_cl_buffer_t *exp_avg_sq, double lr,
                          double beta1, double beta2, double eps, double weight_decay,
                          int64_t step, int decoupled);

/* ---- OpenCL: strided copies, casts, comparisons, where, pow, class indices
 * (api_opencl_data.c, src/opencl/kernels_data.cl) ---- */

/* Element types of OpenCL buffers: MG_F32 and MG_F64 (mg_dtype), and for
 * masks and class indices bool (one byte, 0 or 1) and int64. */
typedef enum { MG_CL_BOOL = 2, MG_CL_INT64 = 3 } mg_cl_dtype;

/* For every index i of shape[ndim] (C order):
 *     dst[dst_offset + sum_d i_d*dst_strides[d]] = src[src_offset + sum_d i_d*src_strides[d]]
 * converted from src_dtype to dst_dtype (any of F32, F64, BOOL, INT64), or
 * += with accumulate = 1 (float dst of src's dtype only). Conversions as
 * NumPy's astype: floats round to nearest; to bool, non-zero (NaN too) is
 * 1; float to int64 rounds toward zero, saturating, NaN giving 0. src
 * strides may be negative or 0 (broadcast). dst's axes, sorted by |stride|,
 * must each step past all that the shorter-strided ones reach (so no element
 * is written twice; every view of a contiguous array qualifies), else
 * MG_ERR_ARG; src and dst in one buffer must not overlap. float64 on
 * either side needs cl_khr_fp64. This is .contiguous(), views written into
 * (cat, stack, the backward of slicing: accumulate into a view of zeros) and
 * astype. */
mg_status mg_cl_copy_strided(int ndim, const int64_t *shape,
                             int src_dtype, const mg_cl_buffer_t *src, int64_t src_offset,
                             const int64_t *src_strides,
                             int dst_dtype, mg_cl_buffer_t *dst, int64_t dst_offset,
                             const int64_t *dst_strides, int accumulate);

typedef enum {
    MG_CMP_EQ = 0, MG_CMP_NE = 1, MG_CMP_LT = 2, MG_CMP_LE = 3, MG_CMP_GT = 4, MG_CMP_GE = 5
} mg_cl_compare_op;

/* out (bool, contiguous, shape) = a op b with broadcasting (element strides,
 * 0 = broadcast), a and b of dtype; IEEE: only ne is true for a NaN. */
mg_status mg_cl_compare(int op, int dtype, int ndim, const int64_t *shape,
                        const mg_cl_buffer_t *a, int64_t a_offset, const int64_t *a_strides,
                        const mg_cl_buffer_t *b, int64_t b_offset, const int64_t *b_strides,
                        mg_cl_buffer_t *out);
/* out (dtype, contiguous, shape) = cond ? a : b with broadcasting; cond is a
 * bool buffer, a and b of dtype. */
mg_status mg_cl_where(int dtype, int ndim, const int64_t *shape,
                      const mg_cl_buffer_t *cond, int64_t cond_offset, const int64_t *cond_strides,
                      const mg_cl_buffer_t *a, int64_t a_offset, const int64_t *a_strides,
                      const mg_cl_buffer_t *b, int64_t b_offset, const int64_t *b_strides,
                      mg_cl_buffer_t *out);

/* As mg_pow_scalar, mg_pow_scalar_backward and mg_pow (PyTorch's shortcut
 * exponents; any other power is pow in double where the device has
 * cl_khr_fp64, else in float, within the device's pow accuracy). */
mg_status mg_cl_pow_scalar(int dtype, int64_t n, const mg_cl_buffer_t *x, double p, mg_cl_buffer_t *out);
mg_status mg_cl_pow_scalar_backward(int dtype, int64_t n, const mg_cl_buffer_t *x,
                                    const mg_cl_buffer_t *grad, double p, mg_cl_buffer_t *out);
mg_status mg_cl_pow(int dtype, int64_t n, const mg_cl_buffer_t *x, const mg_cl_buffer_t *y,
                    mg_cl_buffer_t *out);

/* Class indices, index an int64 (rows,) buffer, x/dx (rows, classes) of dtype:
 * gather   out[r] = x[r, index[r]] (NaN where index[r] is outside [0, classes))
 * scatter  dx[r, c] = values[r*values_stride] if c == index[r] else 0
 *          (values_stride 0: one value for every row; dx is written whole)
 * bad      *first = the first row whose index is outside [0, classes), or -1;
 *          waits for the device (rows < 2^31). */
mg_status mg_cl_gather_classes(int dtype, int64_t rows, int64_t classes, const mg_cl_buffer_t *x,
                               const mg_cl_buffer_t *index, mg_cl_buffer_t *out);
mg_status mg_cl_scatter_classes(int dtype, int64_t rows, int64_t classes, const mg_cl_buffer_t *values,
                                int64_t values_stride, const mg_cl_buffer_t *index, mg_cl_buffer_t *dx);
mg_status mg_cl_bad_class_index(int64_t rows, int64_t classes, const mg_cl_buffer_t *index,
                                int64_t *first);

/* ---- OpenCL: convolution and pooling (api_opencl_conv.c, kernels_conv.cl) ----
 * The CPU's mg_conv2d_* and mg_{max,avg}_pool2d_* with device buffers: the
 * same arguments, math, window rules and NULL rules. Convolution runs as
 * im2col + the tiled matmul (float32 products summed in float32) on chunks
 * of images; the backward passes gather (one work-item per input element),
 * so results are the same bits on every run. */
mg_status mg_cl_conv2d_forward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w,
                               int64_t c_out, const mg_window2d_t *window, const mg_cl_buffer_t *x,
                               const mg_cl_buffer_t *weight, const mg_cl_buffer_t *bias, mg_cl_buffer_t *out);
mg_status mg_cl_conv2d_backward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w,
                                int64_t c_out, const mg_window2d_t *window, const mg_cl_buffer_t *x,
                                const mg_cl_buffer_t *weight, const mg_cl_buffer_t *dout,
                                mg_cl_buffer_t *dx, mg_cl_buffer_t *dweight, mg_cl_buffer_t *dbias);
mg_status mg_cl_max_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                   const mg_window2d_t *window, const mg_cl_buffer_t *x, mg_cl_buffer_t *out);
mg_status mg_cl_max_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                    const mg_window2d_t *window, const mg_cl_buffer_t *x,
                                    const mg_cl_buffer_t *dout, mg_cl_buffer_t *dx);
mg_status mg_cl_avg_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                   const mg_window2d_t *window, const mg_cl_buffer_t *x, mg_cl_buffer_t *out);
mg_status mg_cl_avg_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                    const mg_window2d_t *window, const mg_cl_buffer_t *dout,
                                    mg_cl_buffer_t *dx);

/* MG_CDEF_END */

#ifdef __cplusplus
}
#endif
#endif /* MG_H */
