/* kernels.cl - every OpenCL kernel of mgbn, embedded in the library by CMake.
 *
 * device.c builds this file once per (device, dtype) with
 *   -D REAL=float|double   the element type of the tensors
 *   -D ACC=double|float    sums and BN statistics: double wherever the device
 *                          has cl_khr_fp64 (-D MG_FP64), float elsewhere
 *   -D MATMUL_TS=32|16|8   the side of the matmul tile
 * Kernels trust their arguments (api_opencl*.c checked them). Sizes and
 * indices are long; a work-item past the end of the data does nothing but
 * still takes part in the barriers of its work-group. Reductions are trees
 * over work-groups whose shape depends only on the problem and the device,
 * so a result has the same bits on every run. Written for GPUs: neighbouring
 * work-items read neighbouring addresses, and sums meet in local memory. */
#ifdef MG_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#pragma OPENCL FP_CONTRACT OFF

typedef REAL real;
typedef ACC acc;

/* ---- small helpers ------------------------------------------------------- */

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN };   /* mg_binary_op */
enum { RED_SUM, RED_MAX, RED_MIN };                           /* mg_reduce_op */

/* max/min that return NaN if either side is NaN (fmax would drop it). */
#define MAX_NAN(a, b) ((a) > (b) || isnan(a) ? (a) : (b))
#define MIN_NAN(a, b) ((a) < (b) || isnan(a) ? (a) : (b))

acc reduce_identity(int op) { return op == RED_SUM ? (acc)0 : op == RED_MAX ? -INFINITY : INFINITY; }

acc reduce_combine(int op, acc a, acc b) {
    return op == RED_SUM ? a + b : op == RED_MAX ? MAX_NAN(a, b) : MIN_NAN(a, b);
}

/* Every work-item of the (1-D) work-group passes v; all get the combination
 * of the group's values, added as a tree in local-id order. scratch holds
 * one acc per work-item; the local size is a power of two. */
acc group_reduce(int op, acc v, __local acc *scratch) {
    const int lid = get_local_id(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = get_local_size(0) / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] = reduce_combine(op, scratch[lid], scratch[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    v = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);   /* scratch may be used again right after */
    return v;
}

/* The element offset of flat index i over ndim axes (C order) with shape
 * sizes[0..ndim) and element strides strides[0..ndim) (small arrays in
 * constant memory: every work-item reads the same values). */
long strided_offset(long i, int ndim, __constant long *sizes, __constant long *strides) {
    if (ndim == 1) return i * strides[0];
    long offset = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        offset += i % sizes[d] * strides[d];
        i /= sizes[d];
    }
    return offset;
}

/* ---- fill, binary, unary -------------------------------------------------- */

__kernel void fill(long n, __global real *x, real value) {
    const long i = get_global_id(0);
    if (i < n) x[i] = value;
}

real binary_op(int op, real a, real b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_MAX: return MAX_NAN(a, b);
    default: return MIN_NAN(a, b);
    }
}

/* out[i] = a[i] op b[i], i < n (same shape, both contiguous from their offsets). */
__kernel void binary_contig(int op, long n, __global const real *a, long a_off,
                            __global const real *b, long b_off, __global real *out) {
    const long i = get_global_id(0);
    if (i < n) out[i] = binary_op(op, a[a_off + i], b[b_off + i]);
}

/* out (contiguous, n elements of shape meta[0..ndim)) = a op b, with a and b
 * read at element strides meta[ndim..2 ndim) and meta[2 ndim..3 ndim). */
__kernel void binary_strided(int op, long n, int ndim, __constant long *meta,
                             __global const real *a, long a_off, __global const real *b, long b_off,
                             __global real *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const long ia = a_off + strided_offset(i, ndim, meta, meta + ndim);
    const long ib = b_off + strided_offset(i, ndim, meta, meta + 2 * ndim);
    out[i] = binary_op(op, a[ia], b[ib]);
}

/* out[i] = f(x[i]); op numbers are mg_unary_op's. */
__kernel void unary(int op, long n, __global const real *x, __global real *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const real v = x[i];
    real r;
    switch (op) {
    case 0: r = exp(v); break;
    case 1: r = log(v); break;
    case 2: r = sqrt(v); break;
    case 3: r = tanh(v); break;
    case 4: r = (real)1 / ((real)1 + exp(-v)); break;
    case 5: r = v < (real)0 ? (real)0 : v; break;   /* NaN stays NaN */
    case 6: r = fabs(v); break;
    default: r = -v; break;
    }
    out[i] = r;
}

/* out[i] = the input gradient from the saved array (y = f(x), or x for abs)
 * and the output gradient g; op numbers are mg_unary_grad_op's. */
__kernel void unary_backward(int op, long n, __global const real *saved, __global const real *grad,
                             __global real *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const real y = saved[i], g = grad[i];
    real r;
    switch (op) {
    case 0: r = g * (y > (real)0 ? (real)1 : (real)0); break;   /* relu */
    case 1: r = g * y * ((real)1 - y); break;                      /* sigmoid */
    case 2: r = g * ((real)1 - y * y); break;                      /* tanh */
    case 3: r = g / ((real)2 * y); break;                          /* sqrt */
    default: r = g * sign(y); break;                               /* abs: saved x */
    }
    out[i] = r;
}

__kernel void clamp_forward(long n, __global const real *x, real lo, real hi, __global real *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const real v = x[i];
    out[i] = v < lo ? lo : v > hi ? hi : v;
}

__kernel void clamp_backward(long n, __global const real *x, __global const real *grad, real lo,
                             real hi, __global real *out) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const real v = x[i];
    out[i] = v >= lo && v <= hi ? grad[i] : (real)0;
}

/* ---- reductions over axes --------------------------------------------------
 * x is seen as M outputs by R reduced values: output o's values start at
 * x_off + strided_offset(o over the nk kept axes) and value r sits
 * strided_offset(r over the nr reduced axes) further. meta holds the kept
 * sizes, kept strides, reduced sizes, reduced strides. */

#define KEPT_OFFSET(o) strided_offset(o, nk, meta, meta + nk)
#define REDUCED_OFFSET(r) strided_offset(r, nr, meta + 2 * nk, meta + 2 * nk + nr)

/* One work-item per output (many outputs, or few values each). */
__kernel void reduce_items(int op, long M, long R, int nk, int nr, __constant long *meta,
                           __global const real *x, long x_off, __global real *out) {
    const long o = get_global_id(0);
    if (o >= M) return;
    const long base = x_off + KEPT_OFFSET(o);
    acc v = reduce_identity(op);
    for (long r = 0; r < R; r++) v = reduce_combine(op, v, x[base + REDUCED_OFFSET(r)]);
    out[o] = (real)v;
}

/* Work-group o*G + g reduces values [g*chunk, (g+1)*chunk) of output o, its
 * work-items striding by the local size (neighbours read neighbours), then
 * as a tree: into out[o] when G == 1, else into partial[o*G + g]. (One grid
 * dimension: some GPUs allow only 65535 work-groups in the others.) */
__kernel void reduce_groups(int op, long M, long R, long G, long chunk, int nk, int nr,
                            __constant long *meta, __global const real *x, long x_off,
                            __global acc *partial, __global real *out, __local acc *scratch) {
    const long g = get_group_id(0) % G, o = get_group_id(0) / G;
    const long start = g * chunk, end = min(start + chunk, R);
    const long base = x_off + KEPT_OFFSET(o);
    acc v = reduce_identity(op);
    for (long r = start + get_local_id(0); r < end; r += get_local_size(0))
        v = reduce_combine(op, v, x[base + REDUCED_OFFSET(r)]);
    v = group_reduce(op, v, scratch);
    if (get_local_id(0) == 0) {
        if (G == 1) out[o] = (real)v;
        else partial[o * G + g] = v;
    }
}

/* The second level: out[o] = the G partials of output o, in order. */
__kernel void reduce_partials(int op, long M, long G, __global const acc *partial, __global real *out) {
    const long o = get_global_id(0);
    if (o >= M) return;
    acc v = reduce_identity(op);
    for (long g = 0; g < G; g++) v = reduce_combine(op, v, partial[o * G + g]);
    out[o] = (real)v;
}

/* ---- matmul ----------------------------------------------------------------
 * c[p] (+)= a[p] @ b[p]: a (m, k), b (k, n), c (m, n) at batch p = global
 * id 2. A work-group of TS x TS/WPT items computes a TS x TS block of c,
 * each item a column of WPT values TS/WPT rows apart. The k axis is walked
 * in TS-wide steps: the group copies a TS x TS tile of a and of b into local
 * memory (neighbouring items read neighbouring columns), then every item
 * multiplies out of local memory with fma. */

#define TS MATMUL_TS
#define WPT 4
#define RTS (TS / WPT)

__kernel __attribute__((reqd_work_group_size(TS, RTS, 1)))
void matmul(long m, long n, long k,
            __global const real *a, long a_off, long a_sb, long a_sm, long a_sk,
            __global const real *b, long b_off, long b_sb, long b_sk, long b_sn,
            __global real *c, long c_off, long c_sb, long c_sm, int accumulate) {
    __local real a_tile[TS][TS + 1];   /* a_tile[row][kk] */
    __local real b_tile[TS][TS + 1];   /* b_tile[kk][col] */
    const int tx = get_local_id(0), ty = get_local_id(1);
    const long col = get_group_id(0) * TS + tx;
    const long row0 = get_group_id(1) * TS;
    const long p = get_global_id(2);
    a += a_off + p * a_sb;
    b += b_off + p * b_sb;
    c += c_off + p * c_sb;
    real sum[WPT];
    for (int w = 0; w < WPT; w++) sum[w] = 0;
    for (long k0 = 0; k0 < k; k0 += TS) {
        for (int w = 0; w < WPT; w++) {
            const int r = ty + w * RTS;
            const long ar = row0 + r, ak = k0 + tx, bk = k0 + r;
            a_tile[r][tx] = ar < m && ak < k ? a[ar * a_sm + ak * a_sk] : (real)0;
            b_tile[r][tx] = bk < k && col < n ? b[bk * b_sk + col * b_sn] : (real)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TS; kk++) {
            const real bv = b_tile[kk][tx];
            for (int w = 0; w < WPT; w++) sum[w] = fma(a_tile[ty + w * RTS][kk], bv, sum[w]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (col >= n) return;
    for (int w = 0; w < WPT; w++) {
        const long row = row0 + ty + w * RTS;
        if (row < m) c[row * c_sm + col] = accumulate ? c[row * c_sm + col] + sum[w] : sum[w];
    }
}

/* ---- softmax over the last axis ---------------------------------------------
 * One work-group per row of cols values. */

__kernel void softmax(long cols, __global const real *x, int log_, __global real *y,
                      __local acc *scratch) {
    const long row = get_group_id(0);
    const int lid = get_local_id(0), L = get_local_size(0);
    x += row * cols;
    y += row * cols;
    acc m = -INFINITY;
    for (long j = lid; j < cols; j += L) m = MAX_NAN(m, (acc)x[j]);
    const real mx = (real)group_reduce(RED_MAX, m, scratch);
    acc s = 0;
    for (long j = lid; j < cols; j += L) s += exp(x[j] - mx);
    const real total = (real)group_reduce(RED_SUM, s, scratch);
    const real log_total = log(total);
    for (long j = lid; j < cols; j += L)
        y[j] = log_ ? (x[j] - mx) - log_total : exp(x[j] - mx) / total;
}

/* softmax: dx = y*(g - sum(g*y)); log_softmax: dx = g - exp(y)*sum(g). */
__kernel void softmax_backward(long cols, __global const real *y, __global const real *g, int log_,
                               __global real *dx, __local acc *scratch) {
    const long row = get_group_id(0);
    const int lid = get_local_id(0), L = get_local_size(0);
    y += row * cols;
    g += row * cols;
    dx += row * cols;
    acc s = 0;
    for (long j = lid; j < cols; j += L) s += log_ ? g[j] : g[j] * y[j];
    const real total = (real)group_reduce(RED_SUM, s, scratch);
    for (long j = lid; j < cols; j += L)
        dx[j] = log_ ? g[j] - exp(y[j]) * total : y[j] * (g[j] - total);
}

/* ---- batch normalization ----------------------------------------------------
 * x is (N, C, S) contiguous; channel c has n = N*S values; CS = C*S is the
 * length of one row n. Math and names as docs/bn_backward.md:
 *   forward  mean, var (biased), rstd = 1/sqrt(var + eps),
 *            y = (x - mean)*rstd*gamma + beta
 *   backward dbias = sum dy, dweight = sum dy*xhat, xhat = (x - mean)*rstd,
 *            dx = (1/n)*rstd*(n*g - sum g - xhat*sum(g*xhat)), g = dy*gamma
 * Per-channel sums come in three steps: partial kernels (work-groups over
 * pieces of the data, a tree in local memory each), a finish kernel (one
 * work-group per channel adds the channel's partials as a tree and turns
 * them into per-channel coefficients), and an elementwise kernel.
 *   "planes" (S large): work-group (g, c) takes the planes n = g, g+G, ...
 *            of channel c; its items walk each plane at a stride of the
 *            local size. Channel c's partials: partial[c*G + g].
 *   "cols"   (S small): a 2-D work-group takes LX neighbouring columns
 *            j = c*S + s of rows n = gy*LY + ly, step G*LY, and adds its LY
 *            rows as a tree. Channel c's partials: partial[gy*CS + c*S + s].
 * The finish kernels see both as partial index (t / q)*outer + c*q + t % q,
 * t < P: planes q = P = G, outer = 0; cols q = S, P = G*S, outer = CS.
 * Statistics: each work-item sums d = v - shift and d*d over its values,
 * shift being its first value (no division per value, and no cancellation
 * for data with a large offset), and turns them into a Welford triple
 * (count, mean, M2); triples are merged with Chan's formula. A partial
 * triple is stored as partial[i], partial[total + i], partial[2*total + i]. */

/* The triple of count values whose differences from shift sum to s1, their
 * squares to s2. */
void shifted_to_welford(long count, acc shift, acc s1, acc s2, acc *n, acc *mean, acc *m2) {
    *n = count;
    *mean = count ? shift + s1 / count : 0;
    *m2 = count ? fmax(s2 - s1 * (s1 / count), (acc)0) : 0;
}

void welford_merge(acc *count, acc *mean, acc *m2, acc nb, acc mean_b, acc m2_b) {
    if (nb == 0) return;
    const acc n = *count + nb, d = mean_b - *mean;
    *mean += d * (nb / n);
    *m2 += m2_b + d * d * (*count * nb / n);
    *count = n;
}

/* Merges the triples of the work-group's items as a tree over ly (items of
 * them, a power of two), keeping lx apart: item ly*stride + lx of the
 * local arrays. Item (lx, 0) ends with the result of its column lx. */
void welford_group(int lx, int ly, int stride, int items, __local acc *ln, __local acc *lmean,
                   __local acc *lm2) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = items / 2; s > 0; s >>= 1) {
        if (ly < s) {
            const int me = ly * stride + lx, other = (ly + s) * stride + lx;
            acc n = ln[me], mean = lmean[me], m2 = lm2[me];
            welford_merge(&n, &mean, &m2, ln[other], lmean[other], lm2[other]);
            ln[me] = n, lmean[me] = mean, lm2[me] = m2;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

__kernel void bn_stats_planes(long N, long C, long S, long G, __global const real *x,
                              __global acc *partial, __local acc *ln, __local acc *lmean,
                              __local acc *lm2) {
    const long g = get_group_id(0), c = get_group_id(1);
    const int lid = get_local_id(0), L = get_local_size(0);
    const acc shift = g < N && lid < S ? x[(g * C + c) * S + lid] : 0;
    acc s1 = 0, s2 = 0;
    long count = 0;
    for (long plane = g; plane < N; plane += G) {
        __global const real *p = x + (plane * C + c) * S;
        for (long s = lid; s < S; s += L, count++) {
            const acc d = p[s] - shift;
            s1 += d;
            s2 += d * d;
        }
    }
    acc n, mean, m2;
    shifted_to_welford(count, shift, s1, s2, &n, &mean, &m2);
    ln[lid] = n, lmean[lid] = mean, lm2[lid] = m2;
    welford_group(0, lid, 1, L, ln, lmean, lm2);
    if (lid == 0) {
        const long total = C * G, i = c * G + g;
        partial[i] = ln[0], partial[total + i] = lmean[0], partial[2 * total + i] = lm2[0];
    }
}

__kernel void bn_stats_cols(long N, long C, long S, long G, __global const real *x,
                            __global acc *partial, __local acc *ln, __local acc *lmean, __local acc *lm2) {
    const long CS = C * S, j = get_global_id(0), gy = get_group_id(1);
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int LX = get_local_size(0), LY = get_local_size(1);
    const long first = gy * LY + ly;
    const acc shift = j < CS && first < N ? x[first * CS + j] : 0;
    acc s1 = 0, s2 = 0;
    long count = 0;
    if (j < CS)
        for (long row = first; row < N; row += G * LY, count++) {
            const acc d = x[row * CS + j] - shift;
            s1 += d;
            s2 += d * d;
        }
    acc n, mean, m2;
    shifted_to_welford(count, shift, s1, s2, &n, &mean, &m2);
    const int me = ly * LX + lx;
    ln[me] = n, lmean[me] = mean, lm2[me] = m2;
    welford_group(lx, ly, LX, LY, ln, lmean, lm2);
    if (ly == 0 && j < CS) {
        const long total = G * CS, i = gy * CS + j;
        partial[i] = ln[lx], partial[total + i] = lmean[lx], partial[2 * total + i] = lm2[lx];
    }
}

/* One work-group per channel: the statistics, and in params (4, C) of REAL
 * the coefficients of y = ((x - mean_hi) - mean_lo)*scale + shift, where
 * mean_hi + mean_lo is the mean split into two REALs (so that float32 x
 * loses nothing to a rounded mean), scale = rstd*gamma, shift = beta. */
__kernel void bn_stats_finish(long C, long P, long q, long outer, long total,
                              __global const acc *partial, acc eps,
                              __global const real *weight, __global const real *bias, int affine,
                              __global acc *save_mean, __global acc *save_rstd, __global acc *batch_var,
                              __global real *params, __local acc *ln, __local acc *lmean, __local acc *lm2) {
    const long c = get_group_id(0);
    const int lid = get_local_id(0), L = get_local_size(0);
    acc n = 0, mean = 0, m2 = 0;
    for (long t = lid; t < P; t += L) {
        const long i = t / q * outer + c * q + t % q;
        welford_merge(&n, &mean, &m2, partial[i], partial[total + i], partial[2 * total + i]);
    }
    ln[lid] = n, lmean[lid] = mean, lm2[lid] = m2;
    welford_group(0, lid, 1, L, ln, lmean, lm2);
    if (lid != 0) return;
    const acc var = lm2[0] / ln[0], rstd = (acc)1 / sqrt(var + eps);
    mean = lmean[0];
    save_mean[c] = mean, save_rstd[c] = rstd, batch_var[c] = var;
    const real hi = (real)mean;
    params[c] = hi;
    params[C + c] = (real)(mean - hi);
    params[2 * C + c] = affine & 1 ? (real)(rstd * weight[c]) : (real)rstd;
    params[3 * C + c] = affine & 2 ? bias[c] : (real)0;
}

/* y = ((x - mean_hi) - mean_lo)*scale + shift; one item per value. */
__kernel void bn_forward_apply(long N, long C, long S, __global const real *x,
                               __global const real *params, __global real *y) {
    const long i = get_global_id(0);
    if (i >= N * C * S) return;
    const long c = i / S % C;
    y[i] = ((x[i] - params[c]) - params[C + c]) * params[2 * C + c] + params[3 * C + c];
}

/* The backward's two sums per channel, sum dy and sum dy*xhat, as (sum1,
 * sum2) pairs: partial[i], partial[total + i]. */
__kernel void bn_sums_planes(long N, long C, long S, long G, __global const real *dy,
                             __global const real *x, __global const acc *mean,
                             __global const acc *rstd, __global acc *partial,
                             __local acc *l1, __local acc *l2) {
    const long g = get_group_id(0), c = get_group_id(1);
    const int lid = get_local_id(0), L = get_local_size(0);
    const acc mu = mean[c], r = rstd[c];
    acc s1 = 0, s2 = 0;
    for (long plane = g; plane < N; plane += G) {
        const long base = (plane * C + c) * S;
        for (long s = lid; s < S; s += L) {
            const acc d = dy[base + s];
            s1 += d;
            s2 += d * ((x[base + s] - mu) * r);
        }
    }
    s1 = group_reduce(RED_SUM, s1, l1);
    s2 = group_reduce(RED_SUM, s2, l2);
    if (lid == 0) {
        const long total = C * G, i = c * G + g;
        partial[i] = s1, partial[total + i] = s2;
    }
}

__kernel void bn_sums_cols(long N, long C, long S, long G, __global const real *dy,
                           __global const real *x, __global const acc *mean, __global const acc *rstd,
                           __global acc *partial, __local acc *l1, __local acc *l2) {
    const long CS = C * S, j = get_global_id(0), gy = get_group_id(1);
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int LX = get_local_size(0), LY = get_local_size(1);
    acc s1 = 0, s2 = 0;
    if (j < CS) {
        const acc mu = mean[j / S], r = rstd[j / S];
        for (long row = gy * LY + ly; row < N; row += G * LY) {
            const acc d = dy[row * CS + j];
            s1 += d;
            s2 += d * ((x[row * CS + j] - mu) * r);
        }
    }
    const int me = ly * LX + lx;
    l1[me] = s1, l2[me] = s2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = LY / 2; s > 0; s >>= 1) {
        if (ly < s) l1[me] += l1[me + s * LX], l2[me] += l2[me + s * LX];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ly == 0 && j < CS) {
        const long total = G * CS, i = gy * CS + j;
        partial[i] = l1[lx], partial[total + i] = l2[lx];
    }
}

/* One work-group per channel: dbias, dweight (when wanted: bit 1, bit 2 of
 * want) and, in params (5, C) of REAL, the coefficients of
 *   dx = (dy*k_dy - ((x - mean_hi) - mean_lo)*k_x) - k_0
 * with k_dy = gamma*rstd, k_x = gamma*rstd^2*sum2/n, k_0 = gamma*rstd*sum1/n
 * (the closed form above, expanded). */
__kernel void bn_sums_finish(long C, long P, long q, long outer, long total, long count,
                             __global const acc *partial, __global const acc *mean,
                             __global const acc *rstd, __global const real *weight, int has_weight,
                             int want, __global real *dweight, __global real *dbias,
                             __global real *params, __local acc *l1, __local acc *l2) {
    const long c = get_group_id(0);
    const int lid = get_local_id(0), L = get_local_size(0);
    acc s1 = 0, s2 = 0;
    for (long t = lid; t < P; t += L) {
        const long i = t / q * outer + c * q + t % q;
        s1 += partial[i];
        s2 += partial[total + i];
    }
    s1 = group_reduce(RED_SUM, s1, l1);
    s2 = group_reduce(RED_SUM, s2, l2);
    if (lid != 0) return;
    if (want & 1) dbias[c] = (real)s1;
    if (want & 2) dweight[c] = (real)s2;
    const acc gr = (has_weight ? (acc)weight[c] : (acc)1) * rstd[c], m = mean[c];
    const real hi = (real)m;
    params[c] = hi;
    params[C + c] = (real)(m - hi);
    params[2 * C + c] = (real)gr;
    params[3 * C + c] = (real)(gr * rstd[c] * s2 / (acc)count);
    params[4 * C + c] = (real)(gr * s1 / (acc)count);
}

/* dx from the coefficients of bn_sums_finish; one item per value. */
__kernel void bn_backward_dx(long N, long C, long S, __global const real *dy, __global const real *x,
                             __global const real *params, __global real *dx) {
    const long i = get_global_id(0);
    if (i >= N * C * S) return;
    const long c = i / S % C;
    const real xc = (x[i] - params[c]) - params[C + c];
    dx[i] = (dy[i] * params[2 * C + c] - xc * params[3 * C + c]) - params[4 * C + c];
}

/* Eval: y = x*scale + shift, scale = gamma/sqrt(var + eps), shift = beta -
 * mean*scale; one item per value. affine: bit 1 weight, bit 2 bias given. */
__kernel void bn_eval_forward(long N, long C, long S, __global const real *x,
                              __global const real *mean, __global const real *var,
                              __global const real *weight, __global const real *bias, int affine,
                              real eps, __global real *y) {
    const long i = get_global_id(0);
    if (i >= N * C * S) return;
    const long c = i / S % C;
    const real scale = (affine & 1 ? weight[c] : (real)1) / sqrt(var[c] + eps);
    const real shift = (affine & 2 ? bias[c] : (real)0) - mean[c] * scale;
    y[i] = x[i] * scale + shift;
}

/* Eval backward: dx = dy*gamma/sqrt(var + eps); one item per value. */
__kernel void bn_eval_backward(long N, long C, long S, __global const real *dy,
                               __global const real *var, __global const real *weight, int has_weight,
                               real eps, __global real *dx) {
    const long i = get_global_id(0);
    if (i >= N * C * S) return;
    const long c = i / S % C;
    dx[i] = dy[i] * ((has_weight ? weight[c] : (real)1) / sqrt(var[c] + eps));
}

/* ---- optimizer steps (in place; the order of operations of optim.py) ------- */

__kernel void sgd_step(long n, __global real *p, __global const real *grad, __global real *buf,
                       real lr, real momentum, real dampening, real weight_decay, int nesterov,
                       int first) {
    const long i = get_global_id(0);
    if (i >= n) return;
    real g = grad[i];
    if (weight_decay != (real)0) g = g + weight_decay * p[i];
    if (momentum != (real)0) {
        real b;
        if (first) b = g;
        else b = buf[i] * momentum + (dampening == (real)0 ? g : ((real)1 - dampening) * g);
        buf[i] = b;
        g = nesterov ? g + momentum * b : b;
    }
    p[i] = p[i] - lr * g;
}

/* step_size = lr/(1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) come from the host. */
__kernel void adam_step(long n, __global real *p, __global const real *grad, __global real *m,
                        __global real *v, real lr, real beta1, real beta2, real eps, real weight_decay,
                        int decoupled, real step_size, real bc2_sqrt) {
    const long i = get_global_id(0);
    if (i >= n) return;
    real g = grad[i], pi = p[i];
    if (weight_decay != (real)0) {
        if (decoupled) pi = pi * ((real)1 - lr * weight_decay);
        else g = g + weight_decay * pi;
    }
    const real mi = m[i] + ((real)1 - beta1) * (g - m[i]);
    const real vi = v[i] * beta2 + ((real)1 - beta2) * (g * g);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * (mi / (sqrt(vi) / bc2_sqrt + eps));
}
