/* cpu/conv.c - the loops of 2-D convolution and pooling (NCHW, contiguous).
 *
 * Convolution runs as im2col + GEMM (api_conv.c drives it):
 *
 *   x (C, H, W) --im2col--> col (C*kh*kw, OH*OW),   out (O, OH*OW) = weight (O, C*kh*kw) . col
 *
 * Row r = (c*kh + p)*kw + q of col holds, for every output position (i, j),
 * the input x[c, i*sh - ph + p, j*sw - pw + q] (0 outside the image), so one
 * GEMM does every multiply-add. Backward runs the same matrices the other way
 * and col2im adds each entry of a column-shaped gradient back where im2col
 * read it. Both work on a band of output rows [row0, row0 + rows), which
 * keeps the col buffer small for large images.
 *
 * Pooling runs here directly, one (n, c) plane after another. Max pooling
 * keeps PyTorch's rule: the window's first maximum in row-major order, a NaN
 * beats anything (and a later NaN beats an earlier one).
 *
 * No loop here changes the order of a sum with the vector width: every ISA
 * gives the same bits (the GEMM is another matter, see api_matmul.c). */
#include <string.h>

#include "kernels.h"

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The output columns j in [*j0, *j1) whose input column j*s - p + q lies in
 * [0, w): j >= ceil((p - q) / s) and j <= floor((w - 1 + p - q) / s). */
static inline void inside_columns(int64_t q, int64_t s, int64_t p, int64_t w, int64_t ow,
                                  int64_t *j0, int64_t *j1) {
    const int64_t lo = p - q, hi = w - 1 + p - q;
    *j1 = hi < 0 ? 0 : min64(ow, hi / s + 1);
    *j0 = min64(lo <= 0 ? 0 : (lo + s - 1) / s, *j1);
}

/* ---- im2col / col2im -----------------------------------------------------
 * x (channels, h, w);  col (channels*kh*kw, rows*ow), output rows row0.. */

#define DEFINE_IM2COL(name, T)                                                         \
    static void name(const mg_conv_geometry *g, int64_t row0, int64_t rows,             \
                     const void *x_, void *col_) {                                      \
        const T *restrict x = x_;                                                       \
        T *restrict col = col_;                                                         \
        const int64_t ow = g->ow, ncols = rows * ow;                                    \
        for (int64_t c = 0; c < g->channels; c++)                                       \
            for (int64_t p = 0; p < g->kh; p++)                                         \
                for (int64_t q = 0; q < g->kw; q++) {                                   \
                    T *restrict dst = col + ((c * g->kh + p) * g->kw + q) * ncols;      \
                    int64_t j0, j1;                                                     \
                    inside_columns(q, g->sw, g->pw, g->w, ow, &j0, &j1);                \
                    for (int64_t i = row0; i < row0 + rows; i++, dst += ow) {           \
                        const int64_t y = i * g->sh - g->ph + p;                        \
                        if (y < 0 || y >= g->h) {                                       \
                            memset(dst, 0, (size_t)ow * sizeof(T));                     \
                            continue;                                                   \
                        }                                                               \
                        /* src[j*sw] = x[c, y, j*sw - pw + q] */                       \
                        const T *src = x + (c * g->h + y) * g->w - g->pw + q;           \
                        for (int64_t j = 0; j < j0; j++) dst[j] = 0;                    \
                        if (g->sw == 1)                                                 \
                            memcpy(dst + j0, src + j0, (size_t)(j1 - j0) * sizeof(T));  \
                        else                                                            \
                            for (int64_t j = j0; j < j1; j++) dst[j] = src[j * g->sw];  \
                        for (int64_t j = j1; j < ow; j++) dst[j] = 0;                   \
                    }                                                                   \
                }                                                                       \
    }

#define DEFINE_COL2IM(name, T)                                                         \
    static void name(const mg_conv_geometry *g, int64_t row0, int64_t rows,             \
                     const void *col_, void *dx_) {                                     \
        const T *restrict col = col_;                                                   \
        T *restrict dx = dx_;                                                           \
        const int64_t ow = g->ow, ncols = rows * ow;                                    \
        for (int64_t c = 0; c < g->channels; c++)                                       \
            for (int64_t p = 0; p < g->kh; p++)                                         \
                for (int64_t q = 0; q < g->kw; q++) {                                   \
                    const T *restrict src = col + ((c * g->kh + p) * g->kw + q) * ncols;\
                    int64_t j0, j1;                                                     \
                    inside_columns(q, g->sw, g->pw, g->w, ow, &j0, &j1);                \
                    for (int64_t i = row0; i < row0 + rows; i++, src += ow) {           \
                        const int64_t y = i * g->sh - g->ph + p;                        \
                        if (y < 0 || y >= g->h) continue;                               \
                        /* dst[j*sw] = dx[c, y, j*sw - pw + q] */                      \
                        T *dst = dx + (c * g->h + y) * g->w - g->pw + q;                \
                        if (g->sw == 1)                                                 \
                            for (int64_t j = j0; j < j1; j++) dst[j] += src[j];         \
                        else                                                            \
                            for (int64_t j = j0; j < j1; j++) dst[j * g->sw] += src[j]; \
                    }                                                                   \
                }                                                                       \
    }

/* out (rows, cols) += bias[row] */
#define DEFINE_ADD_BIAS(name, T)                                                       \
    static void name(int64_t rows, int64_t cols, const void *bias_, void *out_) {        \
        const T *restrict bias = bias_;                                                 \
        T *restrict out = out_;                                                         \
        for (int64_t r = 0; r < rows; r++) {                                            \
            const T b = bias[r];                                                        \
            for (int64_t k = 0; k < cols; k++) out[r * cols + k] += b;                  \
        }                                                                               \
    }

/* ---- pooling ---------------------------------------------------------------
 * x (channels, h, w) -> out (channels, oh, ow). The window of output (i, j)
 * covers rows [i*sh - ph, i*sh - ph + kh) and columns [j*sw - pw, .. + kw),
 * clipped to the image: rows [y0, y1), columns [x0, x1). */

#define WINDOW(g, i, j)                                                                \
    const int64_t y0 = max64((i) * (g)->sh - (g)->ph, 0);                               \
    const int64_t y1 = min64((i) * (g)->sh - (g)->ph + (g)->kh, (g)->h);                \
    const int64_t x0 = max64((j) * (g)->sw - (g)->pw, 0);                               \
    const int64_t x1 = min64((j) * (g)->sw - (g)->pw + (g)->kw, (g)->w)

/* Whether v takes over from the running max m: larger, or a NaN (PyTorch's
 * rule). Both comparisons are evaluated (no branch: random data would
 * mispredict half of them). */
#define TAKES_OVER(v, m) (((v) > (m)) | ((v) != (v)))

/* cond ? a : b on the bits, which compilers turn into blends (vectorised)
 * where a floating-point ?: becomes a branch. */
#define DEFINE_PICK(name, T, U)                                                        \
    static inline T name(int cond, T a, T b) {                                          \
        U ua, ub;                                                                       \
        memcpy(&ua, &a, sizeof ua);                                                     \
        memcpy(&ub, &b, sizeof ub);                                                     \
        const U mask = (U)0 - (U)cond;                                                  \
        ua = (ua & mask) | (ub & ~mask);                                                \
        memcpy(&a, &ua, sizeof a);                                                      \
        return a;                                                                       \
    }
DEFINE_PICK(pick_f32, float, uint32_t)
DEFINE_PICK(pick_f64, double, uint64_t)

/* The flat index y*w + x of the max of one window of plane: start from the
 * first position, move on to a larger value or to any NaN. */
#define DEFINE_WINDOW_ARGMAX(name, T, pick)                                            \
    static inline int64_t name(const mg_conv_geometry *g, const T *plane,               \
                               int64_t i, int64_t j) {                                  \
        WINDOW(g, i, j);                                                                \
        int64_t best = y0 * g->w + x0;                                                  \
        T max = plane[best];                                                            \
        for (int64_t y = y0; y < y1; y++)                                               \
            for (int64_t x = x0; x < x1; x++) {                                         \
                const T v = plane[y * g->w + x];                                        \
                const int take = TAKES_OVER(v, max);                                    \
                max = pick(take, v, max);                                               \
                best = take ? y * g->w + x : best;                                      \
            }                                                                           \
        return best;                                                                    \
    }

/* The common 2x2 window with stride 2 and no padding ("pairs"): output
 * (i, j) looks at a = x[2i, 2j], b = x[2i, 2j+1], c = x[2i+1, 2j],
 * d = x[2i+1, 2j+1] in that order, with the rule of the general loop,
 * branch-free so that the compiler vectorises along j. The windows do not
 * overlap, so backward writes every position of a window once. */
static inline int is_pairs(const mg_conv_geometry *g) {
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0;
}

#define DEFINE_MAX_POOL_FORWARD(name, T, argmax, pick)                                 \
    static void name(const mg_conv_geometry *g, const void *x_, void *out_) {           \
        const T *restrict x = x_;                                                       \
        T *restrict out = out_;                                                         \
        const int64_t hw = g->h * g->w, ohw = g->oh * g->ow;                            \
        const int pairs = is_pairs(g);                                                  \
        for (int64_t c = 0; c < g->channels; c++) {                                     \
            const T *plane = x + c * hw;                                                \
            T *o = out + c * ohw;                                                       \
            for (int64_t i = 0; i < g->oh; i++) {                                       \
                if (pairs) {                                                            \
                    const T *restrict r0 = plane + 2 * i * g->w, *restrict r1 = r0 + g->w; \
                    T *restrict orow = o + i * g->ow;                                   \
                    for (int64_t j = 0; j < g->ow; j++) {                               \
                        const T a = r0[2 * j], b = r0[2 * j + 1];                       \
                        const T cc = r1[2 * j], d = r1[2 * j + 1];                      \
                        const T m1 = pick(TAKES_OVER(b, a), b, a);                      \
                        const T m2 = pick(TAKES_OVER(cc, m1), cc, m1);                  \
                        orow[j] = pick(TAKES_OVER(d, m2), d, m2);                       \
                    }                                                                   \
                } else {                                                                \
                    for (int64_t j = 0; j < g->ow; j++)                                 \
                        o[i * g->ow + j] = plane[argmax(g, plane, i, j)];               \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }

/* dx = 0, then dx[argmax of window (i, j)] += dout[i, j] in (i, j) order.
 * Pairs: each window's four positions get dout or 0; a last odd row or
 * column, in no window, gets 0. */
#define DEFINE_MAX_POOL_BACKWARD(name, T, argmax, pick)                                \
    static void name(const mg_conv_geometry *g, const void *x_, const void *dout_,      \
                     void *dx_) {                                                       \
        const T *restrict x = x_, *restrict dout = dout_;                               \
        T *restrict dx = dx_;                                                           \
        const int64_t hw = g->h * g->w, ohw = g->oh * g->ow;                            \
        if (!is_pairs(g)) {                                                             \
            memset(dx, 0, (size_t)(g->channels * hw) * sizeof(T));                      \
            for (int64_t c = 0; c < g->channels; c++)                                   \
                for (int64_t i = 0; i < g->oh; i++)                                     \
                    for (int64_t j = 0; j < g->ow; j++)                                 \
                        dx[c * hw + argmax(g, x + c * hw, i, j)] += dout[c * ohw + i * g->ow + j]; \
            return;                                                                     \
        }                                                                               \
        for (int64_t c = 0; c < g->channels; c++) {                                     \
            for (int64_t i = 0; i < g->oh; i++) {                                       \
                const int64_t r = c * hw + 2 * i * g->w;                                \
                const T *restrict x0 = x + r, *restrict x1 = x0 + g->w;                 \
                T *restrict d0 = dx + r, *restrict d1 = d0 + g->w;                      \
                const T *restrict grow = dout + c * ohw + i * g->ow;                    \
                for (int64_t j = 0; j < g->ow; j++) {                                   \
                    const T a = x0[2 * j], b = x0[2 * j + 1], cc = x1[2 * j], d = x1[2 * j + 1]; \
                    const int tb = TAKES_OVER(b, a);                                    \
                    const T m1 = pick(tb, b, a);                                        \
                    const int tc = TAKES_OVER(cc, m1);                                  \
                    const int td = TAKES_OVER(d, pick(tc, cc, m1));                     \
                    const T gv = grow[j];      /* to the last position that took over */\
                    d0[2 * j] = pick(!(tb | tc | td), gv, 0);                           \
                    d0[2 * j + 1] = pick(tb & !tc & !td, gv, 0);                        \
                    d1[2 * j] = pick(tc & !td, gv, 0);                                  \
                    d1[2 * j + 1] = pick(td, gv, 0);                                    \
                }                                                                       \
                if (g->w & 1) d0[g->w - 1] = d1[g->w - 1] = 0;                          \
            }                                                                           \
            if (g->h & 1) memset(dx + c * hw + (g->h - 1) * g->w, 0, (size_t)g->w * sizeof(T)); \
        }                                                                               \
    }

/* out[i, j] = (sum of the window inside the image, in double) / (kh*kw) */
#define DEFINE_AVG_POOL_FORWARD(name, T)                                               \
    static void name(const mg_conv_geometry *g, const void *x_, void *out_) {           \
        const T *restrict x = x_;                                                       \
        T *restrict out = out_;                                                         \
        const double count = (double)(g->kh * g->kw);                                   \
        for (int64_t c = 0; c < g->channels; c++) {                                     \
            const T *plane = x + c * g->h * g->w;                                       \
            for (int64_t i = 0; i < g->oh; i++)                                         \
                for (int64_t j = 0; j < g->ow; j++) {                                   \
                    WINDOW(g, i, j);                                                    \
                    double sum = 0.0;                                                   \
                    for (int64_t y = y0; y < y1; y++)                                   \
                        for (int64_t x = x0; x < x1; x++) sum += (double)plane[y * g->w + x]; \
                    out[(c * g->oh + i) * g->ow + j] = (T)(sum / count);                \
                }                                                                       \
        }                                                                               \
    }

/* dx = 0, then every position of window (i, j) += dout[i, j] / (kh*kw), in
 * (i, j) order. Windows that tile the image (stride = kernel, no padding)
 * give each position one share at most: written row by row, no sums. */
#define DEFINE_AVG_POOL_BACKWARD(name, T)                                              \
    static void name(const mg_conv_geometry *g, const void *dout_, void *dx_) {         \
        const T *restrict dout = dout_;                                                 \
        T *restrict dx = dx_;                                                           \
        const T count = (T)(g->kh * g->kw);                                             \
        if (g->sh == g->kh && g->sw == g->kw && g->ph == 0 && g->pw == 0) {             \
            for (int64_t c = 0; c < g->channels; c++)                                   \
                for (int64_t y = 0; y < g->h; y++) {                                    \
                    T *restrict row = dx + (c * g->h + y) * g->w;                       \
                    const int64_t i = y / g->kh;                                        \
                    int64_t x = 0;                                                      \
                    if (i < g->oh) {                                                    \
                        const T *restrict grow = dout + (c * g->oh + i) * g->ow;        \
                        for (int64_t j = 0; j < g->ow; j++) {                           \
                            const T share = grow[j] / count;                            \
                            for (int64_t q = 0; q < g->kw; q++) row[x++] = share;       \
                        }                                                               \
                    }                                                                   \
                    for (; x < g->w; x++) row[x] = 0;                                   \
                }                                                                       \
            return;                                                                     \
        }                                                                               \
        memset(dx, 0, (size_t)(g->channels * g->h * g->w) * sizeof(T));                \
        for (int64_t c = 0; c < g->channels; c++) {                                     \
            T *plane = dx + c * g->h * g->w;                                            \
            for (int64_t i = 0; i < g->oh; i++)                                         \
                for (int64_t j = 0; j < g->ow; j++) {                                   \
                    WINDOW(g, i, j);                                                    \
                    const T share = dout[(c * g->oh + i) * g->ow + j] / count;          \
                    for (int64_t y = y0; y < y1; y++)                                   \
                        for (int64_t x = x0; x < x1; x++) plane[y * g->w + x] += share; \
                }                                                                       \
        }                                                                               \
    }

#define DEFINE_CONV_KERNELS(T, sfx)                                                    \
    DEFINE_IM2COL(im2col_##sfx, T)                                                      \
    DEFINE_COL2IM(col2im_##sfx, T)                                                      \
    DEFINE_ADD_BIAS(add_bias_##sfx, T)                                                  \
    DEFINE_WINDOW_ARGMAX(window_argmax_##sfx, T, pick_##sfx)                            \
    DEFINE_MAX_POOL_FORWARD(max_pool_forward_##sfx, T, window_argmax_##sfx, pick_##sfx) \
    DEFINE_MAX_POOL_BACKWARD(max_pool_backward_##sfx, T, window_argmax_##sfx, pick_##sfx) \
    DEFINE_AVG_POOL_FORWARD(avg_pool_forward_##sfx, T)                                  \
    DEFINE_AVG_POOL_BACKWARD(avg_pool_backward_##sfx, T)

DEFINE_CONV_KERNELS(float, f32)
DEFINE_CONV_KERNELS(double, f64)

void MG_ISA_FN(mg_fill_conv)(mg_kernel_table *t) {
    t->im2col[0] = im2col_f32;
    t->im2col[1] = im2col_f64;
    t->col2im[0] = col2im_f32;
    t->col2im[1] = col2im_f64;
    t->add_bias[0] = add_bias_f32;
    t->add_bias[1] = add_bias_f64;
    t->max_pool_forward[0] = max_pool_forward_f32;
    t->max_pool_forward[1] = max_pool_forward_f64;
    t->max_pool_backward[0] = max_pool_backward_f32;
    t->max_pool_backward[1] = max_pool_backward_f64;
    t->avg_pool_forward[0] = avg_pool_forward_f32;
    t->avg_pool_forward[1] = avg_pool_forward_f64;
    t->avg_pool_backward[0] = avg_pool_backward_f32;
    t->avg_pool_backward[1] = avg_pool_backward_f64;
}
