/* cpu/batchnorm.c - batch normalization sweeps.
 *
 * The input is contiguous and seen as (N, C, S): S = 1 for (N, C), L for
 * (N, C, L), H*W for (N, C, H, W). Channel c has n = N*S values. The math
 * (derivation from the paper's chain rule in docs/bn_backward.md):
 *
 *   training forward  mean = sum(x)/n, var = sum((x - mean)^2)/n (biased),
 *                     rstd = 1/sqrt(var + eps), y = (x - mean)*(rstd*gamma) + beta
 *   eval forward      y = x*scale + shift, scale = gamma/sqrt(running_var + eps),
 *                     shift = beta - running_mean*scale
 *   backward          dbeta = sum(dy), dgamma = sum(dy*xhat), xhat = (x - mean)*rstd,
 *                     dx = (1/n)*rstd*(n*g - sum(g) - xhat*sum(g*xhat)), g = dy*gamma
 *                        = k*dy + coef*(x - mean) + b
 *                     with k = gamma*rstd, coef = -k*rstd*dgamma/n, b = -k*dbeta/n
 *
 * This file holds the sweeps over the data; api_batchnorm.c cuts the work
 * into fixed blocks, runs them on the pool, adds the per-block sums in block
 * order and turns sums into the per-channel coefficients (mean, k, coef...).
 * The statistics sweep sums shifted values (x - shift, shift = the channel's
 * first value), so a channel with mean 1e4 and std 1 keeps its variance.
 *
 * Two layouts (kernels.h gives the signatures):
 *   planes (S > 1): each (n, c) plane of S values is contiguous. A kernel
 *     walks the values [begin, end) of one channel, plane piece by plane
 *     piece, vectorised along the plane. Sums go into LANES = 16 float64
 *     lanes: lane j takes the piece's values i = j (mod 16) up to the last
 *     whole group of 16, the rest go to 16 tail lanes, and at the end the
 *     lanes are added in one fixed tree. Every ISA holds the same 16 lanes
 *     (4 AVX2 registers, 2 AVX-512, 8 NEON, 16 scalars) and adds the same
 *     numbers in the same order, so every ISA gives the same bits.
 *   rows (S = 1): the C channels of a row are contiguous. A kernel takes 16
 *     channels at a time, keeps their sums in registers and walks the rows;
 *     each channel adds its rows in order, whatever the vector width.
 *
 * All arithmetic is float64: float32 is widened on load and rounded once on
 * store. There is no fused multiply-add (-ffp-contract=off), so the scalar
 * path computes exactly what the vector paths compute. */
#include "kernels.h"
#include "simd.h"

#define LANES 16
#define NV (LANES / MG_VF64_LANES)   /* vectors per 16 lanes */

/* Loads and stores of element i of a float32 (f32 = 1) or float64 buffer,
 * as float64. f32 is a constant in every caller, so the branches fold. */
MG_INLINE mg_vf64 vload(int f32, const void *p, int64_t i) {
    return f32 ? mg_vf64_load_f32((const float *)p + i) : mg_vf64_load((const double *)p + i);
}
MG_INLINE void vstore(int f32, void *p, int64_t i, mg_vf64 v) {
    if (f32) mg_vf64_store_f32((float *)p + i, v);
    else mg_vf64_store((double *)p + i, v);
}
MG_INLINE double sload(int f32, const void *p, int64_t i) {
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
MG_INLINE void sstore(int f32, void *p, int64_t i, double v) {
    if (f32) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
}

/* The sum of 16 vector lanes and 16 tail lanes, in a fixed order. */
MG_INLINE double fold_lanes(const mg_vf64 v[NV], const double tail[LANES]) {
    double l[LANES];
    for (int i = 0; i < NV; i++) mg_vf64_store(l + i * MG_VF64_LANES, v[i]);
    for (int j = 0; j < LANES; j++) l[j] += tail[j];
    for (int width = LANES / 2; width >= 1; width /= 2)
        for (int j = 0; j < width; j++) l[j] = l[j] + l[j + width];
    return l[0];
}

/* The planes walk: calls body(at, len) for each piece of one plane inside the
 * channel values [begin, end); at is the element offset of the piece. */
#define FOR_EACH_PIECE(S, stride, begin, end, at, len, ...)                   \
    do {                                                                      \
        int64_t plane_ = (begin) / (S), s_ = (begin) % (S);                   \
        for (int64_t i_ = (begin); i_ < (end); plane_++, s_ = 0) {            \
            const int64_t len = (S) - s_ < (end) - i_ ? (S) - s_ : (end) - i_; \
            const int64_t at = plane_ * (stride) + s_;                        \
            __VA_ARGS__                                                       \
            i_ += len;                                                        \
        }                                                                     \
    } while (0)

/* ---- training forward: statistics ---------------------------------------
 * x is channel c's first value; value i is x[(i/S)*stride + i%S].
 * sums[0] = sum over i in [begin, end) of (x_i - shift), sums[1] = of (x_i - shift)^2. */
MG_INLINE void stat_planes(int f32, const void *x, int64_t S, int64_t stride, int64_t begin,
                           int64_t end, double shift, double sums[2]) {
    mg_vf64 a1[NV], a2[NV];
    double t1[LANES] = {0}, t2[LANES] = {0};
    for (int v = 0; v < NV; v++) a1[v] = a2[v] = mg_vf64_zero();
    const mg_vf64 vshift = mg_vf64_set1(shift);
    FOR_EACH_PIECE(S, stride, begin, end, at, len, {
        int64_t j = 0;
        for (; j + LANES <= len; j += LANES)
            for (int v = 0; v < NV; v++) {
                const mg_vf64 d = mg_vf64_sub(vload(f32, x, at + j + v * MG_VF64_LANES), vshift);
                a1[v] = mg_vf64_add(a1[v], d);
                a2[v] = mg_vf64_add(a2[v], mg_vf64_mul(d, d));
            }
        for (int t = 0; j < len; j++, t++) {
            const double d = sload(f32, x, at + j) - shift;
            t1[t] += d;
            t2[t] += d * d;
        }
    });
    sums[0] = fold_lanes(a1, t1);
    sums[1] = fold_lanes(a2, t2);
}

/* x is (rows, ld), channels c < width: s1[c] = sum_r (x[r][c] - shift[c]),
 * s2[c] = sum_r (x[r][c] - shift[c])^2 (written). */
MG_INLINE void stat_rows(int f32, const void *x, int64_t rows, int64_t width, int64_t ld,
                         const double *shift, double *s1, double *s2) {
    int64_t c = 0;
    for (; c + LANES <= width; c += LANES) {
        mg_vf64 a1[NV], a2[NV], k[NV];
        for (int v = 0; v < NV; v++) {
            a1[v] = a2[v] = mg_vf64_zero();
            k[v] = mg_vf64_load(shift + c + v * MG_VF64_LANES);
        }
        for (int64_t r = 0; r < rows; r++)
            for (int v = 0; v < NV; v++) {
                const mg_vf64 d = mg_vf64_sub(vload(f32, x, r * ld + c + v * MG_VF64_LANES), k[v]);
                a1[v] = mg_vf64_add(a1[v], d);
                a2[v] = mg_vf64_add(a2[v], mg_vf64_mul(d, d));
            }
        for (int v = 0; v < NV; v++) {
            mg_vf64_store(s1 + c + v * MG_VF64_LANES, a1[v]);
            mg_vf64_store(s2 + c + v * MG_VF64_LANES, a2[v]);
        }
    }
    for (; c < width; c++) {
        double a1 = 0.0, a2 = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const double d = sload(f32, x, r * ld + c) - shift[c];
            a1 += d;
            a2 += d * d;
        }
        s1[c] = a1;
        s2[c] = a2;
    }
}

/* ---- y = (x - m)*a + b: the training normalisation (m = mean, a = rstd*gamma,
 * b = beta), the eval forward (m = 0) and the eval backward (m = 0, b = 0) ---- */
MG_INLINE void affine_planes(int f32, const void *x, void *y, int64_t S, int64_t stride,
                             int64_t begin, int64_t end, double m, double a, double b) {
    const mg_vf64 vm = mg_vf64_set1(m), va = mg_vf64_set1(a), vb = mg_vf64_set1(b);
    FOR_EACH_PIECE(S, stride, begin, end, at, len, {
        int64_t j = 0;
        for (; j + MG_VF64_LANES <= len; j += MG_VF64_LANES) {
            const mg_vf64 d = mg_vf64_sub(vload(f32, x, at + j), vm);
            vstore(f32, y, at + j, mg_vf64_add(mg_vf64_mul(d, va), vb));
        }
        for (; j < len; j++) sstore(f32, y, at + j, (sload(f32, x, at + j) - m) * a + b);
    });
}

/* x, y are (rows, ld): y[r][c] = (x[r][c] - m[c])*a[c] + b[c] for c < width. */
MG_INLINE void affine_rows(int f32, const void *x, void *y, int64_t rows, int64_t width,
                           int64_t ld, const double *m, const double *a, const double *b) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t row = r * ld;
        int64_t c = 0;
        for (; c + MG_VF64_LANES <= width; c += MG_VF64_LANES) {
            const mg_vf64 d = mg_vf64_sub(vload(f32, x, row + c), mg_vf64_load(m + c));
            vstore(f32, y, row + c, mg_vf64_add(mg_vf64_mul(d, mg_vf64_load(a + c)), mg_vf64_load(b + c)));
        }
        for (; c < width; c++) sstore(f32, y, row + c, (sload(f32, x, row + c) - m[c]) * a[c] + b[c]);
    }
}

/* ---- backward, sweep 1: sums[0] = sum(dy), sums[1] = sum(dy*(x - mean));
 * dbeta = sums[0], dgamma = rstd*sums[1]. Same walks as the statistics. ---- */
MG_INLINE void grad_planes(int f32, const void *dy, const void *x, int64_t S, int64_t stride,
                           int64_t begin, int64_t end, double mean, double sums[2]) {
    mg_vf64 a1[NV], a2[NV];
    double t1[LANES] = {0}, t2[LANES] = {0};
    for (int v = 0; v < NV; v++) a1[v] = a2[v] = mg_vf64_zero();
    const mg_vf64 vmean = mg_vf64_set1(mean);
    FOR_EACH_PIECE(S, stride, begin, end, at, len, {
        int64_t j = 0;
        for (; j + LANES <= len; j += LANES)
            for (int v = 0; v < NV; v++) {
                const int64_t i = at + j + v * MG_VF64_LANES;
                const mg_vf64 g = vload(f32, dy, i);
                const mg_vf64 d = mg_vf64_sub(vload(f32, x, i), vmean);
                a1[v] = mg_vf64_add(a1[v], g);
                a2[v] = mg_vf64_add(a2[v], mg_vf64_mul(g, d));
            }
        for (int t = 0; j < len; j++, t++) {
            const double g = sload(f32, dy, at + j);
            t1[t] += g;
            t2[t] += g * (sload(f32, x, at + j) - mean);
        }
    });
    sums[0] = fold_lanes(a1, t1);
    sums[1] = fold_lanes(a2, t2);
}

/* dy, x are (rows, ld): s1[c] = sum_r dy[r][c], s2[c] = sum_r dy[r][c]*(x[r][c] - mean[c]). */
MG_INLINE void grad_rows(int f32, const void *dy, const void *x, int64_t rows, int64_t width,
                         int64_t ld, const double *mean, double *s1, double *s2) {
    int64_t c = 0;
    for (; c + LANES <= width; c += LANES) {
        mg_vf64 a1[NV], a2[NV], mu[NV];
        for (int v = 0; v < NV; v++) {
            a1[v] = a2[v] = mg_vf64_zero();
            mu[v] = mg_vf64_load(mean + c + v * MG_VF64_LANES);
        }
        for (int64_t r = 0; r < rows; r++)
            for (int v = 0; v < NV; v++) {
                const int64_t i = r * ld + c + v * MG_VF64_LANES;
                const mg_vf64 g = vload(f32, dy, i);
                a1[v] = mg_vf64_add(a1[v], g);
                a2[v] = mg_vf64_add(a2[v], mg_vf64_mul(g, mg_vf64_sub(vload(f32, x, i), mu[v])));
            }
        for (int v = 0; v < NV; v++) {
            mg_vf64_store(s1 + c + v * MG_VF64_LANES, a1[v]);
            mg_vf64_store(s2 + c + v * MG_VF64_LANES, a2[v]);
        }
    }
    for (; c < width; c++) {
        double a1 = 0.0, a2 = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const double g = sload(f32, dy, r * ld + c);
            a1 += g;
            a2 += g * (sload(f32, x, r * ld + c) - mean[c]);
        }
        s1[c] = a1;
        s2[c] = a2;
    }
}

/* ---- backward, sweep 2: dx = (k*dy + coef*(x - m)) + b (written) ---- */
MG_INLINE void dx_planes(int f32, const void *dy, const void *x, void *dx, int64_t S,
                         int64_t stride, int64_t begin, int64_t end, double k, double coef,
                         double m, double b) {
    const mg_vf64 vk = mg_vf64_set1(k), vc = mg_vf64_set1(coef), vm = mg_vf64_set1(m),
                  vb = mg_vf64_set1(b);
    FOR_EACH_PIECE(S, stride, begin, end, at, len, {
        int64_t j = 0;
        for (; j + MG_VF64_LANES <= len; j += MG_VF64_LANES) {
            const mg_vf64 t = mg_vf64_mul(vk, vload(f32, dy, at + j));
            const mg_vf64 u = mg_vf64_mul(vc, mg_vf64_sub(vload(f32, x, at + j), vm));
            vstore(f32, dx, at + j, mg_vf64_add(mg_vf64_add(t, u), vb));
        }
        for (; j < len; j++)
            sstore(f32, dx, at + j,
                   (k * sload(f32, dy, at + j) + coef * (sload(f32, x, at + j) - m)) + b);
    });
}

/* dy, x, dx are (rows, ld): per channel c < width the same with k[c], coef[c], m[c], b[c]. */
MG_INLINE void dx_rows(int f32, const void *dy, const void *x, void *dx, int64_t rows,
                       int64_t width, int64_t ld, const double *k, const double *coef,
                       const double *m, const double *b) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t row = r * ld;
        int64_t c = 0;
        for (; c + MG_VF64_LANES <= width; c += MG_VF64_LANES) {
            const mg_vf64 t = mg_vf64_mul(mg_vf64_load(k + c), vload(f32, dy, row + c));
            const mg_vf64 d = mg_vf64_sub(vload(f32, x, row + c), mg_vf64_load(m + c));
            const mg_vf64 u = mg_vf64_mul(mg_vf64_load(coef + c), d);
            vstore(f32, dx, row + c, mg_vf64_add(mg_vf64_add(t, u), mg_vf64_load(b + c)));
        }
        for (; c < width; c++)
            sstore(f32, dx, row + c,
                   (k[c] * sload(f32, dy, row + c) + coef[c] * (sload(f32, x, row + c) - m[c])) + b[c]);
    }
}

/* ---- one non-inline instance per dtype ---- */

#define INSTANTIATE(suffix, f32)                                                                 \
    static void stat_planes_##suffix(const void *x, int64_t S, int64_t stride, int64_t begin,   \
                                     int64_t end, double shift, double sums[2]) {               \
        stat_planes(f32, x, S, stride, begin, end, shift, sums);                                 \
    }                                                                                            \
    static void grad_planes_##suffix(const void *dy, const void *x, int64_t S, int64_t stride,  \
                                     int64_t begin, int64_t end, double mean, double sums[2]) { \
        grad_planes(f32, dy, x, S, stride, begin, end, mean, sums);                              \
    }                                                                                            \
    static void affine_planes_##suffix(const void *x, void *y, int64_t S, int64_t stride,       \
                                       int64_t begin, int64_t end, double m, double a,          \
                                       double b) {                                               \
        affine_planes(f32, x, y, S, stride, begin, end, m, a, b);                                \
    }                                                                                            \
    static void dx_planes_##suffix(const void *dy, const void *x, void *dx, int64_t S,          \
                                   int64_t stride, int64_t begin, int64_t end, double k,        \
                                   double coef, double m, double b) {                            \
        dx_planes(f32, dy, x, dx, S, stride, begin, end, k, coef, m, b);                         \
    }                                                                                            \
    static void stat_rows_##suffix(const void *x, int64_t rows, int64_t width, int64_t ld,      \
                                   const double *shift, double *s1, double *s2) {                \
        stat_rows(f32, x, rows, width, ld, shift, s1, s2);                                       \
    }                                                                                            \
    static void grad_rows_##suffix(const void *dy, const void *x, int64_t rows, int64_t width,  \
                                   int64_t ld, const double *mean, double *s1, double *s2) {     \
        grad_rows(f32, dy, x, rows, width, ld, mean, s1, s2);                                    \
    }                                                                                            \
    static void affine_rows_##suffix(const void *x, void *y, int64_t rows, int64_t width,       \
                                     int64_t ld, const double *m, const double *a,              \
                                     const double *b) {                                          \
        affine_rows(f32, x, y, rows, width, ld, m, a, b);                                        \
    }                                                                                            \
    static void dx_rows_##suffix(const void *dy, const void *x, void *dx, int64_t rows,         \
                                 int64_t width, int64_t ld, const double *k, const double *coef, \
                                 const double *m, const double *b) {                             \
        dx_rows(f32, dy, x, dx, rows, width, ld, k, coef, m, b);                                 \
    }                                                                                            \
    static const mg_bn_kernels kernels_##suffix = {                                              \
        stat_planes_##suffix, grad_planes_##suffix, affine_planes_##suffix, dx_planes_##suffix,  \
        stat_rows_##suffix,   grad_rows_##suffix,   affine_rows_##suffix,   dx_rows_##suffix,    \
    };

INSTANTIATE(f32, 1)
INSTANTIATE(f64, 0)

void MG_ISA_FN(mg_fill_batchnorm)(mg_kernel_table *t) {
    t->batchnorm[0] = kernels_f32;
    t->batchnorm[1] = kernels_f64;
}
