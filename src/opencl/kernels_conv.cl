/* kernels_conv.cl - 2-D convolution (im2col / col2im around the tiled
 * matmul of kernels.cl) and max/avg pooling, NCHW, contiguous. Appended to
 * kernels.cl at build time; api_opencl_conv.c checks the arguments and
 * drives them.
 *
 * The window (as mg_window2d_t): kernel kh x kw, stride sh x sw, padding
 * ph x pw; an H x W image gives OH x OW outputs, output (i, j) covering rows
 * [i*sh - ph, i*sh - ph + kh) and columns [j*sw - pw, j*sw - pw + kw).
 * Input row y lies in the windows of output rows i with
 *     ceil((y + ph - kh + 1) / sh) <= i <= floor((y + ph) / sh),  0 <= i < OH
 * (window_range); the backward kernels gather over those windows, one
 * work-item per input element, so nothing is added twice at once (no
 * atomics) and the sums run in a fixed order: i, then j, ascending. */

#define WINDOW_ARGS long C, long H, long W, long OH, long OW, long kh, long kw, long sh, long sw, long ph, long pw

/* The outputs [*lo, *hi) along one axis whose windows hold input position y. */
void window_range(long y, long k, long s, long p, long out_size, long *lo, long *hi) {
    const long first = y + p - k + 1;
    *lo = first <= 0 ? 0 : (first + s - 1) / s;
    *hi = min((y + p) / s + 1, out_size);
}

/* ---- convolution -----------------------------------------------------------------
 * One chunk of nb images at a time (K = C*kh*kw, P = OH*OW):
 *   forward   cols (K, nb*P) = im2col(x[n0 .. n0+nb))
 *             out[n0 + n] = weight (C_out, K) @ cols[:, n*P .. (n+1)*P)   (batched matmul)
 *   backward  gradT (C_out, nb*P) = the chunk of grad, axes 0 and 1 swapped (copy_real)
 *             dweight (+)= gradT @ cols^T                                  (C_out, K)
 *             dcols (K, nb*P) = weight^T @ gradT;  dx = col2im(dcols)
 *             dbias = grad summed over n, i, j                              (a reduction) */

/* cols[k, n, i, j] = x[n0 + n, c, i*sh - ph + p, j*sw - pw + q] with k = (c*kh + p)*kw + q,
 * 0 outside the image; one work-item per element of cols (total = K*nb*P):
 * neighbouring items write neighbouring columns and read along an image row. */
__kernel void im2col(long total, long nb, WINDOW_ARGS, __global const real *x, long x_off,
                     __global real *cols) {
    const long e = get_global_id(0);
    if (e >= total) return;
    const long j = e % OW, i = e / OW % OH, n = e / (OW * OH) % nb, k = e / (OW * OH * nb);
    const long q = k % kw, p = k / kw % kh, c = k / (kw * kh);
    const long y = i * sh - ph + p, xx = j * sw - pw + q;
    cols[e] = y >= 0 && y < H && xx >= 0 && xx < W ? x[x_off + ((n * C + c) * H + y) * W + xx] : (real)0;
}

/* dx[n0 + n, c, y, x] = sum of dcols[k, n, i, j] over the windows (i, j) that read it, at
 * window offsets p = y + ph - i*sh, q = x + pw - j*sw (k = (c*kh + p)*kw + q); written,
 * not added to. One work-item per element of the chunk's dx (total = nb*C*H*W). */
__kernel void col2im(long total, long nb, WINDOW_ARGS, __global const real *dcols, __global real *dx,
                     long dx_off) {
    const long e = get_global_id(0);
    if (e >= total) return;
    const long xx = e % W, y = e / W % H, c = e / (W * H) % C, n = e / (W * H * C);
    long i0, i1, j0, j1;
    window_range(y, kh, sh, ph, OH, &i0, &i1);
    window_range(xx, kw, sw, pw, OW, &j0, &j1);
    const long P = OH * OW;
    acc sum = 0;
    for (long i = i0; i < i1; i++) {
        const long p = y + ph - i * sh;
        for (long j = j0; j < j1; j++) {
            const long k = (c * kh + p) * kw + (xx + pw - j * sw);
            sum += dcols[(k * nb + n) * P + i * OW + j];
        }
    }
    dx[dx_off + e] = (real)sum;
}

/* out[n, o, s] += bias[o] for out (N, C_out, S) contiguous; one item per element. */
__kernel void add_channel_bias(long total, long channels, long S, __global const real *bias,
                               __global real *out) {
    const long e = get_global_id(0);
    if (e < total) out[e] += bias[e / S % channels];
}

/* ---- pooling -----------------------------------------------------------------------
 * x (N, C, H, W) -> out (N, C, OH, OW); one work-item per output (forward)
 * or per input element (backward). Padding reads as -inf (max) or 0 (avg):
 * a window is clipped to the image, rows [y0, y1), columns [x0, x1). */

#define CLIPPED_WINDOW(o)                                                                \
    const long j = (o) % OW, i = (o) / OW % OH, plane = (o) / (OW * OH);                 \
    const long y0 = max(i * sh - ph, 0L), y1 = min(i * sh - ph + kh, H);                 \
    const long x0 = max(j * sw - pw, 0L), x1 = min(j * sw - pw + kw, W)

/* The flat index y*W + x, in plane p of x, of output o's window maximum:
 * start at the first position, move on to a larger value or to any NaN
 * (PyTorch's rule: the first maximum, or the last NaN). */
long window_argmax(long o, WINDOW_ARGS, __global const real *x) {
    CLIPPED_WINDOW(o);
    __global const real *p = x + plane * H * W;
    long best = y0 * W + x0;
    real m = p[best];
    for (long y = y0; y < y1; y++)
        for (long xx = x0; xx < x1; xx++) {
            const real v = p[y * W + xx];
            if (v > m || isnan(v)) m = v, best = y * W + xx;
        }
    return best;
}

/* out[o] = the window's maximum (a NaN wins). */
__kernel void max_pool_forward(long total, WINDOW_ARGS, __global const real *x, __global real *out) {
    const long o = get_global_id(0);
    if (o >= total) return;
    out[o] = x[o / (OW * OH) * H * W + window_argmax(o, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, x)];
}

/* arg[o] = window_argmax of output o: the first pass of the backward. */
__kernel void max_pool_argmax(long total, WINDOW_ARGS, __global const real *x, __global long *arg) {
    const long o = get_global_id(0);
    if (o < total) arg[o] = window_argmax(o, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, x);
}

/* dx[plane, y, x] = the sum of grad[plane, i, j] over the windows (i, j) whose
 * argmax is (y, x): the CPU's dx[argmax] += grad in (i, j) order, gathered. */
__kernel void max_pool_backward(long total, WINDOW_ARGS, __global const long *arg, __global const real *grad,
                                __global real *dx) {
    const long e = get_global_id(0);
    if (e >= total) return;
    const long xx = e % W, y = e / W % H, plane = e / (W * H), here = y * W + xx;
    long i0, i1, j0, j1;
    window_range(y, kh, sh, ph, OH, &i0, &i1);
    window_range(xx, kw, sw, pw, OW, &j0, &j1);
    real sum = 0;
    for (long i = i0; i < i1; i++)
        for (long j = j0; j < j1; j++) {
            const long o = (plane * OH + i) * OW + j;
            if (arg[o] == here) sum += grad[o];
        }
    dx[e] = sum;
}

/* out[o] = (the sum of the window inside the image, in ACC) / (kh*kw):
 * count_include_pad, padding counts as zeros. */
__kernel void avg_pool_forward(long total, WINDOW_ARGS, __global const real *x, __global real *out) {
    const long o = get_global_id(0);
    if (o >= total) return;
    CLIPPED_WINDOW(o);
    __global const real *p = x + plane * H * W;
    acc sum = 0;
    for (long y = y0; y < y1; y++)
        for (long xx = x0; xx < x1; xx++) sum += p[y * W + xx];
    out[o] = (real)(sum / (acc)(kh * kw));
}

/* dx[plane, y, x] = the sum of grad[plane, i, j] / (kh*kw) over the windows
 * holding (y, x), in (i, j) order (the CPU's sum, so the same bits). */
__kernel void avg_pool_backward(long total, WINDOW_ARGS, __global const real *grad, __global real *dx) {
    const long e = get_global_id(0);
    if (e >= total) return;
    const long xx = e % W, y = e / W % H, plane = e / (W * H);
    long i0, i1, j0, j1;
    window_range(y, kh, sh, ph, OH, &i0, &i1);
    window_range(xx, kw, sw, pw, OW, &j0, &j1);
    const real count = (real)(kh * kw);
    real sum = 0;
    for (long i = i0; i < i1; i++)
        for (long j = j0; j < j1; j++) sum += grad[(plane * OH + i) * OW + j] / count;
    dx[e] = sum;
}
