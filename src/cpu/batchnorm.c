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
 *                        = k*dy + (c*(x - mean) + b)
 *                     with k = gamma*rstd, c = -k*rstd*dgamma/n, b = -k*dbeta/n
 *
 * This file holds the sweeps over the data; api_batchnorm.c cuts the work
 * into fixed blocks, runs them on the pool, adds the per-block sums in block
 * order and turns sums into the per-channel parameters of the next sweep.
 *
 * Sums (statistics, backward sweep 1) are float64: float32 is widened on
 * load. The statistics sum shifted values x - shift (shift = the channel's
 * first value), so a channel with mean 1e4 and std 1 keeps its variance.
 * Elementwise sweeps (y, dx) run in x's dtype, with the float64 mean split
 * in two parts so that a large offset costs no precision (see below).
 * Products that are added are fused (one rounding): FMA instructions on the
 * vector paths and C99 fma()/fmaf() on the scalar path, so the scalar path
 * computes exactly what the vector paths compute.
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
 *   rows (S = 1): the C channels of a row are contiguous. A sum kernel walks
 *     tiles of TILE_ROWS rows; in a tile it takes 16 channels at a time,
 *     keeps their sums in registers and walks the tile's rows. Each channel
 *     adds its rows in order, whatever the vector width. */
#include <math.h>

#include "kernels.h"
#include "simd.h"

#define LANES 16
#define NV (LANES / MG_VF64_LANES)   /* float64 vectors per 16 lanes */
#define TILE_ROWS 8

typedef float T_f32;
typedef double T_f64;
#define VL_f32 MG_VF32_LANES
#define VL_f64 MG_VF64_LANES

/* x*y + z rounded once, on vectors and on scalars, on every path. */
#if MG_VF64_LANES == 1
MG_INLINE mg_vf32 fused_vf32(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return fmaf(x, y, z); }
MG_INLINE mg_vf64 fused_vf64(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return fma(x, y, z); }
#else
MG_INLINE mg_vf32 fused_vf32(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return mg_vf32_fmadd(x, y, z); }
MG_INLINE mg_vf64 fused_vf64(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return mg_vf64_fmadd(x, y, z); }
#endif
MG_INLINE float fused_f32(float x, float y, float z) { return fmaf(x, y, z); }
MG_INLINE double fused_f64(double x, double y, double z) { return fma(x, y, z); }

/* Element i of a float32 (f32 = 1) or float64 buffer, widened to float64:
 * MG_VF64_LANES of them, or one. f32 is a constant in every caller. */
MG_INLINE mg_vf64 vload(int f32, const void *p, int64_t i) {
    return f32 ? mg_vf64_load_f32((const float *)p + i) : mg_vf64_load((const double *)p + i);
}
MG_INLINE double sload(int f32, const void *p, int64_t i) {
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* The sum of 16 vector lanes and 16 tail lanes, in a fixed order. */
MG_INLINE double fold_lanes(const mg_vf64 v[NV], const double tail[LANES]) {
    double l[LANES];
    for (int i = 0; i < NV; i++) mg_vf64_store(l + i * MG_VF64_LANES, v[i]);
    for (int j = 0; j < LANES; j++) l[j] += tail[j];
    for (int half = LANES / 2; half >= 1; half /= 2)
        for (int j = 0; j < half; j++) l[j] = l[j] + l[j + half];
    return l[0];
}

/* The planes walk: runs the statement that follows the arguments once for
 * each piece of a plane inside the channel values [begin, end), with `at`
 * the element offset of the piece and `len` its length. */
#define FOR_EACH_PIECE(S, stride, begin, end, at, len, ...)                     \
    do {                                                                        \
        int64_t plane_ = (begin) / (S), s_ = (begin) % (S);                     \
        for (int64_t i_ = (begin); i_ < (end); plane_++, s_ = 0) {              \
            const int64_t len = (S) - s_ < (end) - i_ ? (S) - s_ : (end) - i_;   \
            const int64_t at = plane_ * (stride) + s_;                          \
            __VA_ARGS__                                                         \
            i_ += len;                                                          \
        }                                                                       \
    } while (0)

/* ---- training forward, sweep 1: statistics -------------------------------
 * planes: x is channel c's first value; value i is x[(i/S)*stride + i%S].
 *   sums[0] = sum over i in [begin, end) of (x_i - shift), sums[1] = of (x_i - shift)^2. */
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
                a2[v] = fused_vf64(d, d, a2[v]);
            }
        for (int t = 0; j < len; j++, t++) {
            const double d = sload(f32, x, at + j) - shift;
            t1[t] += d;
            t2[t] = fused_f64(d, d, t2[t]);
        }
    });
    sums[0] = fold_lanes(a1, t1);
    sums[1] = fold_lanes(a2, t2);
}

/* rows: x is (rows, ld); for c < width: s1[c] = sum_r (x[r][c] - shift[c]),
 * s2[c] = sum_r (x[r][c] - shift[c])^2 (written). */
MG_INLINE void stat_rows(int f32, const void *x, int64_t rows, int64_t width, int64_t ld,
                         const double *shift, double *s1, double *s2) {
    for (int64_t c = 0; c < width; c++) s1[c] = s2[c] = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += TILE_ROWS) {
        const int64_t r1 = r0 + TILE_ROWS < rows ? r0 + TILE_ROWS : rows;
        int64_t c = 0;
        for (; c + LANES <= width; c += LANES) {
            mg_vf64 a1[NV], a2[NV], k[NV];
            for (int v = 0; v < NV; v++) {
                a1[v] = mg_vf64_load(s1 + c + v * MG_VF64_LANES);
                a2[v] = mg_vf64_load(s2 + c + v * MG_VF64_LANES);
                k[v] = mg_vf64_load(shift + c + v * MG_VF64_LANES);
            }
            for (int64_t r = r0; r < r1; r++)
                for (int v = 0; v < NV; v++) {
                    const mg_vf64 d = mg_vf64_sub(vload(f32, x, r * ld + c + v * MG_VF64_LANES), k[v]);
                    a1[v] = mg_vf64_add(a1[v], d);
                    a2[v] = fused_vf64(d, d, a2[v]);
                }
            for (int v = 0; v < NV; v++) {
                mg_vf64_store(s1 + c + v * MG_VF64_LANES, a1[v]);
                mg_vf64_store(s2 + c + v * MG_VF64_LANES, a2[v]);
            }
        }
        for (; c < width; c++)
            for (int64_t r = r0; r < r1; r++) {
                const double d = sload(f32, x, r * ld + c) - shift[c];
                s1[c] += d;
                s2[c] = fused_f64(d, d, s2[c]);
            }
    }
}

/* ---- backward, sweep 1: sums[0] = sum(dy), sums[1] = sum(dy*(x - mean));
 * then dbeta = sums[0], dgamma = rstd*sums[1]. The walks of sweep 1 above. */
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
                a1[v] = mg_vf64_add(a1[v], g);
                a2[v] = fused_vf64(g, mg_vf64_sub(vload(f32, x, i), vmean), a2[v]);
            }
        for (int t = 0; j < len; j++, t++) {
            const double g = sload(f32, dy, at + j);
            t1[t] += g;
            t2[t] = fused_f64(g, sload(f32, x, at + j) - mean, t2[t]);
        }
    });
    sums[0] = fold_lanes(a1, t1);
    sums[1] = fold_lanes(a2, t2);
}

/* rows: dy, x are (rows, ld); s1[c] = sum_r dy[r][c], s2[c] = sum_r dy[r][c]*(x[r][c] - mean[c]). */
MG_INLINE void grad_rows(int f32, const void *dy, const void *x, int64_t rows, int64_t width,
                         int64_t ld, const double *mean, double *s1, double *s2) {
    for (int64_t c = 0; c < width; c++) s1[c] = s2[c] = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += TILE_ROWS) {
        const int64_t r1 = r0 + TILE_ROWS < rows ? r0 + TILE_ROWS : rows;
        int64_t c = 0;
        for (; c + LANES <= width; c += LANES) {
            mg_vf64 a1[NV], a2[NV], mu[NV];
            for (int v = 0; v < NV; v++) {
                a1[v] = mg_vf64_load(s1 + c + v * MG_VF64_LANES);
                a2[v] = mg_vf64_load(s2 + c + v * MG_VF64_LANES);
                mu[v] = mg_vf64_load(mean + c + v * MG_VF64_LANES);
            }
            for (int64_t r = r0; r < r1; r++)
                for (int v = 0; v < NV; v++) {
                    const int64_t i = r * ld + c + v * MG_VF64_LANES;
                    const mg_vf64 g = vload(f32, dy, i);
                    a1[v] = mg_vf64_add(a1[v], g);
                    a2[v] = fused_vf64(g, mg_vf64_sub(vload(f32, x, i), mu[v]), a2[v]);
                }
            for (int v = 0; v < NV; v++) {
                mg_vf64_store(s1 + c + v * MG_VF64_LANES, a1[v]);
                mg_vf64_store(s2 + c + v * MG_VF64_LANES, a2[v]);
            }
        }
        for (; c < width; c++)
            for (int64_t r = r0; r < r1; r++) {
                const double g = sload(f32, dy, r * ld + c);
                s1[c] += g;
                s2[c] = fused_f64(g, sload(f32, x, r * ld + c) - mean[c], s2[c]);
            }
    }
}

/* ---- elementwise sweeps, in x's dtype t (f32 or f64) ----------------------
 * affine: y = (x - m)*a + b, p = {m, a, b}: the training normalisation
 *   (m = mean_hi, a = rstd*gamma, b = beta - mean_lo*a), the eval forward
 *   (m = 0, a = scale, b = shift) and the eval backward (m = 0, b = 0).
 * dx: dx = k*dy + (c*(x - m) + b), p = {k, c, m, b} (m = mean_hi,
 *   b = -k*dbeta/n - c*mean_lo).
 * The float64 mean is mean_hi + mean_lo with mean_hi in x's dtype: x - mean_hi
 * is exact when x is near the mean, and mean_lo moves into b, so a large
 * offset costs no precision. Parameter i is at p[i*ps] (planes) or, for
 * channel c, at p[i*ps + c] (rows). The rows kernels walk the rows in memory
 * order with the parameters in L1: walking a column of rows instead would
 * load from addresses that alias the pending stores whenever the row length
 * is a multiple of 4 KiB. */

#define DEFINE_ELEMENTWISE(t)                                                                    \
    static void affine_planes_##t(const void *x_, void *y_, int64_t S, int64_t stride,           \
                                  int64_t begin, int64_t end, const void *p_, int64_t ps) {      \
        const T_##t *x = x_, *p = p_;                                                            \
        T_##t *y = y_;                                                                           \
        const mg_v##t m = mg_v##t##_set1(p[0]), a = mg_v##t##_set1(p[ps]),                       \
                      b = mg_v##t##_set1(p[2 * ps]);                                             \
        FOR_EACH_PIECE(S, stride, begin, end, at, len, {                                         \
            int64_t j = 0;                                                                       \
            for (; j + VL_##t <= len; j += VL_##t)                                               \
                mg_v##t##_store(y + at + j, fused_v##t(mg_v##t##_sub(mg_v##t##_load(x + at + j), m), a, b)); \
            for (; j < len; j++) y[at + j] = fused_##t(x[at + j] - p[0], p[ps], p[2 * ps]);      \
        });                                                                                      \
    }                                                                                            \
                                                                                                 \
    static void affine_rows_##t(const void *x_, void *y_, int64_t rows, int64_t width,           \
                                int64_t ld, const void *p_, int64_t ps) {                        \
        const T_##t *p = p_;                                                                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T_##t *x = (const T_##t *)x_ + r * ld;                                         \
            T_##t *y = (T_##t *)y_ + r * ld;                                                     \
            int64_t c = 0;                                                                       \
            for (; c + VL_##t <= width; c += VL_##t) {                                           \
                const mg_v##t d = mg_v##t##_sub(mg_v##t##_load(x + c), mg_v##t##_load(p + c));  \
                mg_v##t##_store(y + c, fused_v##t(d, mg_v##t##_load(p + ps + c), mg_v##t##_load(p + 2 * ps + c))); \
            }                                                                                    \
            for (; c < width; c++) y[c] = fused_##t(x[c] - p[c], p[ps + c], p[2 * ps + c]);      \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    static void dx_planes_##t(const void *dy_, const void *x_, void *dx_, int64_t S,             \
                              int64_t stride, int64_t begin, int64_t end, const void *p_,        \
                              int64_t ps) {                                                      \
        const T_##t *dy = dy_, *x = x_, *p = p_;                                                 \
        T_##t *dx = dx_;                                                                         \
        const mg_v##t k = mg_v##t##_set1(p[0]), cf = mg_v##t##_set1(p[ps]),                      \
                      m = mg_v##t##_set1(p[2 * ps]), b = mg_v##t##_set1(p[3 * ps]);              \
        FOR_EACH_PIECE(S, stride, begin, end, at, len, {                                         \
            int64_t j = 0;                                                                       \
            for (; j + VL_##t <= len; j += VL_##t) {                                             \
                const mg_v##t u = fused_v##t(cf, mg_v##t##_sub(mg_v##t##_load(x + at + j), m), b); \
                mg_v##t##_store(dx + at + j, fused_v##t(k, mg_v##t##_load(dy + at + j), u));     \
            }                                                                                    \
            for (; j < len; j++)                                                                 \
                dx[at + j] = fused_##t(p[0], dy[at + j], fused_##t(p[ps], x[at + j] - p[2 * ps], p[3 * ps])); \
        });                                                                                      \
    }                                                                                            \
                                                                                                 \
    static void dx_rows_##t(const void *dy_, const void *x_, void *dx_, int64_t rows,            \
                            int64_t width, int64_t ld, const void *p_, int64_t ps) {             \
        const T_##t *p = p_;                                                                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T_##t *dy = (const T_##t *)dy_ + r * ld, *x = (const T_##t *)x_ + r * ld;      \
            T_##t *dx = (T_##t *)dx_ + r * ld;                                                   \
            int64_t c = 0;                                                                       \
            for (; c + VL_##t <= width; c += VL_##t) {                                           \
                const mg_v##t d = mg_v##t##_sub(mg_v##t##_load(x + c), mg_v##t##_load(p + 2 * ps + c)); \
                const mg_v##t u = fused_v##t(mg_v##t##_load(p + ps + c), d, mg_v##t##_load(p + 3 * ps + c)); \
                mg_v##t##_store(dx + c, fused_v##t(mg_v##t##_load(p + c), mg_v##t##_load(dy + c), u)); \
            }                                                                                    \
            for (; c < width; c++)                                                               \
                dx[c] = fused_##t(p[c], dy[c], fused_##t(p[ps + c], x[c] - p[2 * ps + c], p[3 * ps + c])); \
        }                                                                                        \
    }

DEFINE_ELEMENTWISE(f32)
DEFINE_ELEMENTWISE(f64)

/* ---- the float64-sum sweeps, one instance per dtype ---- */

#define DEFINE_SUMS(t, f32)                                                                      \
    static void stat_planes_##t(const void *x, int64_t S, int64_t stride, int64_t begin,        \
                                int64_t end, double shift, double sums[2]) {                     \
        stat_planes(f32, x, S, stride, begin, end, shift, sums);                                 \
    }                                                                                            \
    static void grad_planes_##t(const void *dy, const void *x, int64_t S, int64_t stride,       \
                                int64_t begin, int64_t end, double mean, double sums[2]) {       \
        grad_planes(f32, dy, x, S, stride, begin, end, mean, sums);                              \
    }                                                                                            \
    static void stat_rows_##t(const void *x, int64_t rows, int64_t width, int64_t ld,           \
                              const double *shift, double *s1, double *s2) {                     \
        stat_rows(f32, x, rows, width, ld, shift, s1, s2);                                       \
    }                                                                                            \
    static void grad_rows_##t(const void *dy, const void *x, int64_t rows, int64_t width,       \
                              int64_t ld, const double *mean, double *s1, double *s2) {          \
        grad_rows(f32, dy, x, rows, width, ld, mean, s1, s2);                                    \
    }

DEFINE_SUMS(f32, 1)
DEFINE_SUMS(f64, 0)

#define KERNELS(t)                                                                               \
    {stat_planes_##t, grad_planes_##t, affine_planes_##t, dx_planes_##t,                         \
     stat_rows_##t,   grad_rows_##t,   affine_rows_##t,   dx_rows_##t}

void MG_ISA_FN(mg_fill_batchnorm)(mg_kernel_table *t) {
    const mg_bn_kernels f32 = KERNELS(f32), f64 = KERNELS(f64);
    t->batchnorm[0] = f32;   /* MG_F32 */
    t->batchnorm[1] = f64;   /* MG_F64 */
}
