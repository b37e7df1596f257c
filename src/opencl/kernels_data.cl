/* kernels_data.cl - strided copies and casts, comparisons, where, pow, and
 * the class-index gather/scatter of the classification losses. Appended to
 * kernels.cl at build time (one program: REAL, ACC, strided_offset and
 * MAX_NAN come from there). api_opencl_data.c checks the arguments.
 *
 * Buffer element types: real (REAL: float or double), float, uchar (bool:
 * 0 or 1) and long (int64 class indices). Strided kernels take one
 * work-item per element of the (merged) shape, in C order, so neighbouring
 * work-items touch neighbouring elements of whichever side is contiguous. */

/* ---- strided copy and cast ----------------------------------------------------
 * For every flat index i < n of the shape meta[0..ndim) (C order):
 *     dst[dst_off + offset(i, dst strides)] = CONVERT(src[src_off + offset(i, src strides)])
 * (or += when accumulate: real -> real only). meta holds the shape, the dst
 * strides and the src strides, ndim values each; src strides may be 0
 * (broadcast) or negative, dst never aliases itself (api checked). */

#define DEFINE_COPY(name, S, D, CONVERT)                                                          \
    __kernel void name(long n, int ndim, __constant long *meta, __global const S *src, long src_off, \
                       __global D *dst, long dst_off, int accumulate) {                           \
        const long i = get_global_id(0);                                                          \
        if (i >= n) return;                                                                       \
        const S v = src[src_off + strided_offset(i, ndim, meta, meta + 2 * ndim)];                \
        __global D *out = dst + dst_off + strided_offset(i, ndim, meta, meta + ndim);             \
        *out = accumulate ? *out + CONVERT(v) : CONVERT(v);                                       \
    }

/* The conversions, as NumPy's astype: floats round to nearest; to bool,
 * anything but 0 is 1 (NaN too); to int64, toward zero, saturated (NaN is 0). */
#define AS_REAL(v) ((real)(v))
#define AS_FLOAT(v) ((float)(v))
#define AS_BOOL(v) ((uchar)((v) != 0))
#define AS_LONG(v) convert_long_sat_rtz(v)
#define AS_SAME(v) (v)   /* same type, or bool -> int64 (0 or 1) */

DEFINE_COPY(copy_real, real, real, AS_SAME)
DEFINE_COPY(copy_u8, uchar, uchar, AS_SAME)
DEFINE_COPY(copy_i64, long, long, AS_SAME)
/* float <-> real: the float32 <-> float64 casts, run from the float64
 * program (in the float32 program they are plain copies, unused). */
DEFINE_COPY(cast_f32_to_real, float, real, AS_REAL)
DEFINE_COPY(cast_real_to_f32, real, float, AS_FLOAT)
DEFINE_COPY(cast_u8_to_real, uchar, real, AS_REAL)
DEFINE_COPY(cast_real_to_u8, real, uchar, AS_BOOL)
DEFINE_COPY(cast_i64_to_real, long, real, AS_REAL)
DEFINE_COPY(cast_real_to_i64, real, long, AS_LONG)
DEFINE_COPY(cast_u8_to_i64, uchar, long, AS_SAME)
DEFINE_COPY(cast_i64_to_u8, long, uchar, AS_BOOL)

/* ---- comparisons and where ------------------------------------------------------
 * out (contiguous, n elements of shape meta[0..ndim)) from operands read at
 * the strides that follow the shape in meta, ndim values per operand. */

enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };   /* mg_cl_compare_op */

/* out[i] = a op b as a bool (IEEE: every comparison with a NaN is false but ne). */
__kernel void compare(int op, long n, int ndim, __constant long *meta, __global const real *a, long a_off,
                      __global const real *b, long b_off, __global uchar *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const real x = a[a_off + strided_offset(i, ndim, meta, meta + ndim)];
    const real y = b[b_off + strided_offset(i, ndim, meta, meta + 2 * ndim)];
    int r;
    switch (op) {
    case CMP_EQ: r = x == y; break;
    case CMP_NE: r = x != y; break;
    case CMP_LT: r = x < y; break;
    case CMP_LE: r = x <= y; break;
    case CMP_GT: r = x > y; break;
    default: r = x >= y; break;
    }
    out[i] = (uchar)r;
}

/* out[i] = cond ? a : b; meta: shape, cond strides, a strides, b strides.
 * Only the chosen operand is read. */
__kernel void where_select(long n, int ndim, __constant long *meta, __global const uchar *cond, long c_off,
                           __global const real *a, long a_off, __global const real *b, long b_off,
                           __global real *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    out[i] = cond[c_off + strided_offset(i, ndim, meta, meta + ndim)]
                 ? a[a_off + strided_offset(i, ndim, meta, meta + 2 * ndim)]
                 : b[b_off + strided_offset(i, ndim, meta, meta + 3 * ndim)];
}

/* ---- pow ----------------------------------------------------------------------------
 * v^e with PyTorch's shortcuts (e = 0: 1, 1: v, 2: v*v, 3: v*v*v, 0.5:
 * sqrt, -0.5: 1/sqrt, -1: 1/v, -2: 1/(v*v)); any other e is pow in ACC
 * (double wherever the device has it: the CPU's float32 rule, pow in double
 * then rounded). e is uniform over the launch, so the switch does not diverge. */
real pow_shortcut(real v, real e) {
    if (e == (real)0) return (real)1;
    if (e == (real)1) return v;
    if (e == (real)2) return v * v;
    if (e == (real)3) return v * v * v;
    if (e == (real)0.5) return sqrt(v);
    if (e == (real)-0.5) return (real)1 / sqrt(v);
    if (e == (real)-1) return (real)1 / v;
    if (e == (real)-2) return (real)1 / (v * v);
    return (real)pow((acc)v, (acc)e);
}

/* out[i] = x[i]^p (p already rounded to REAL, as PyTorch). */
__kernel void pow_scalar(long n, __global const real *x, real p, __global real *out) {
    const long i = get_global_id(0);
    if (i < n) out[i] = pow_shortcut(x[i], p);
}

/* out[i] = grad[i] * (p * x[i]^(p - 1)), 0 when p = 0 (PyTorch's grouping). */
__kernel void pow_scalar_backward(long n, __global const real *x, __global const real *grad, real p,
                                  __global real *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    out[i] = p == (real)0 ? (real)0 : grad[i] * (p * pow_shortcut(x[i], p - (real)1));
}

/* out[i] = x[i]^y[i] (pow in ACC, as above). */
__kernel void pow_tensor(long n, __global const real *x, __global const real *y, __global real *out) {
    const long i = get_global_id(0);
    if (i < n) out[i] = (real)pow((acc)x[i], (acc)y[i]);
}

/* ---- class indices (cross entropy, nll) -------------------------------------------
 * x and dx are (rows, classes) contiguous; index is (rows,) of int64. */

/* out[r] = x[r, index[r]]; NaN for an index outside [0, classes) (a visible
 * wrong answer; index_check finds such rows beforehand). */
__kernel void gather_classes(long rows, long classes, __global const real *x, __global const long *index,
                             __global real *out) {
    const long r = get_global_id(0);
    if (r >= rows) return;
    const long t = index[r];
    out[r] = t >= 0 && t < classes ? x[r * classes + t] : (real)NAN;
}

/* dx[r, c] = values[r * values_stride] where c == index[r], else 0; one
 * work-item per element of dx, so every element is written once (no fill
 * pass, no atomics). values_stride 0 spreads one value over the rows. */
__kernel void scatter_classes(long rows, long classes, __global const real *values, long values_stride,
                              __global const long *index, __global real *dx) {
    const long i = get_global_id(0);
    if (i >= rows * classes) return;
    const long r = i / classes;
    dx[i] = index[r] == i - r * classes ? values[r * values_stride] : (real)0;
}

/* first[0] = the smallest row r < rows whose index is outside [0, classes),
 * kept if it is smaller already (the host sets it to rows first; rows <
 * 2^31, checked by the host). */
__kernel void index_check(long rows, long classes, __global const long *index, __global int *first) {
    const long r = get_global_id(0);
    if (r >= rows) return;
    const long t = index[r];
    if (t < 0 || t >= classes) atomic_min(first, (int)r);
}
