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
 * Sums (statistics, backward sweep 1) are float64 sums of short partial
 * sums in x's dtype (see "the sum sweeps" below). Elementwise sweeps (y, dx)
 * run in x's dtype, with the float64 mean split in two parts so that a large
 * offset costs no precision. Products that are added are fused (one
 * rounding): FMA instructions on the vector paths and C99 fma()/fmaf() on
 * the scalar path, so the scalar path computes exactly what the vector paths
 * compute.
 *
 * Two layouts (kernels.h gives the signatures):
 *   planes (S > 1): each (n, c) plane of S values is contiguous. A kernel
 *     walks the values [begin, end) of one channel, plane piece by plane
 *     piece, vectorised along the plane.
 *   rows (S = 1): the C channels of a row are contiguous. Kernels vectorise
 *     across channels and walk the rows. */
#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "simd.h"

#define LANES 16

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

/* The planes walk: runs the statement that follows the arguments once for
 * each piece of a plane inside the channel values [begin, end), with `at`
 * the element offset of the piece and `len` its length. */
#define FOR_EACH_PIECE(S, stride, begin, end, at, len, ...)                                      \
    do {                                                                                         \
        int64_t plane_ = (begin) / (S), s_ = (begin) % (S);                                      \
        for (int64_t i_ = (begin); i_ < (end); plane_++, s_ = 0) {                               \
            const int64_t len = (S) - s_ < (end) - i_ ? (S) - s_ : (end) - i_;                   \
            const int64_t at = plane_ * (stride) + s_;                                           \
            __VA_ARGS__                                                                          \
            i_ += len;                                                                           \
        }                                                                                        \
    } while (0)

/* ---- the sum sweeps -------------------------------------------------------
 * Sweep 1 of the training forward sums d = x - k and d^2; sweep 1 of the
 * backward sums dy and dy*d. k is the channel's center, a value of x's
 * dtype: its first value (forward) or its float64 mean rounded to x's dtype
 * (backward; api_batchnorm.c corrects for the rounding). Near the mean d is
 * exact, so a large offset (mean 1e4, std 1) keeps its variance.
 *
 * d and the products are computed in x's dtype and added there, PARTIAL = 8
 * terms at a time in order; each partial sum is then widened and added to a
 * float64 sum. For float32 a vector then holds twice the values and nothing
 * is widened per value; 8 terms cost at most ~8 float32 roundings before
 * float64 takes over.
 *
 * planes: lane j of LANES = 16 takes the values i = j (mod 16) of a piece up
 *   to its last whole group of 16: partial sums over 8 groups (128 values)
 *   are widened into 16 float64 lanes. The piece's last len % 16 values go
 *   to float64 lanes 0, 1, ... one by one. At the end the 16 lanes are added
 *   in one fixed tree. Every ISA holds the same 16 lanes (2 AVX2 float32
 *   vectors, 1 AVX-512, 4 NEON, 16 scalars) and adds the same numbers in the
 *   same order, so every ISA gives the same bits.
 * rows: the block's rows go in tiles of PARTIAL rows. In a tile, a group of
 *   GROUP_VECTORS vectors of channels keeps its partial sums in registers
 *   while it walks the tile's rows, then widens them into the channels'
 *   float64 sums; then the next group. Each channel adds the same values in
 *   the same order whatever the vector width. */
#define PARTIAL 8
#define GROUP_VECTORS 4

/* The rows walks read 8 rows at a time, a few lines per row, a pattern the
 * hardware prefetchers pick up late on data that comes from memory. So each
 * group, on each row, asks for its lines PREFETCH_BYTES further along the
 * row, or past the row's end, on the same row of the next tile. A hint:
 * prefetches never fault. */
#define PREFETCH_BYTES 256

MG_INLINE void prefetch_ahead(const void *base, int64_t item, int64_t r, int64_t c, int64_t rows,
                              int64_t width, int64_t ld, int64_t nbytes) {
    c += PREFETCH_BYTES / item;
    if (c >= width) c = c - width < width ? c - width : 0, r += PARTIAL;
    if (r >= rows) return;
    for (int64_t b = 0; b < nbytes; b += 64)
        __builtin_prefetch((const char *)base + (r * ld + c) * item + b);
}

/* The planes walks read one channel: a piece of a plane, then a jump of
 * (C - 1)*S values to the next. The prefetchers start over on each plane
 * (a 56x56 plane is 12 KiB, three pages) and the sum sweeps, which read
 * from memory, waited on their loads. So every group of LANES values asks
 * for the line PLANE_PREFETCH_BYTES further along the walk: on the same
 * plane, or `gap` = stride - S values further, on the next. A hint: the
 * address after the channel's last plane may lie outside x, and prefetches
 * never fault. */
#define PLANE_PREFETCH_BYTES 4096

MG_INLINE void prefetch_plane_ahead(const void *base, int64_t at, int64_t j, int64_t len, int64_t gap,
                                    int64_t item) {
    const int64_t ahead = j + PLANE_PREFETCH_BYTES / item;
    __builtin_prefetch((const char *)base + (at + ahead + (ahead < len ? 0 : gap)) * item);
}

/* s[0..VL) += p, each lane of p widened to float64. */
MG_INLINE void widen_add_f32(double *s, mg_vf32 p) {
    float lanes[MG_VF32_LANES];
    mg_vf32_store(lanes, p);
    for (int h = 0; h < MG_VF32_LANES; h += MG_VF64_LANES)
        mg_vf64_store(s + h, mg_vf64_add(mg_vf64_load(s + h), mg_vf64_load_f32(lanes + h)));
}
MG_INLINE void widen_add_f64(double *s, mg_vf64 p) { mg_vf64_store(s, mg_vf64_add(mg_vf64_load(s), p)); }

/* The sum of 16 float64 lanes, in a fixed order. */
MG_INLINE double fold_lanes(double l[LANES]) {
    for (int half = LANES / 2; half >= 1; half /= 2)
        for (int j = 0; j < half; j++) l[j] = l[j] + l[j + half];
    return l[0];
}

#define DEFINE_SUMS(t)                                                                           \
    /* planes: x is channel c's first value; value i is x[(i/S)*stride + i%S].                   \
     * sums[0] = sum over i in [begin, end) of d_i = x_i - k, sums[1] = of d_i^2. */             \
    static void stat_planes_##t(const void *x_, int64_t S, int64_t stride, int64_t begin,        \
                                int64_t end, const void *center, double sums[2]) {               \
        const T_##t *x = x_, k = *(const T_##t *)center;                                         \
        const mg_v##t vk = mg_v##t##_set1(k);                                                    \
        double a1[LANES] = {0}, a2[LANES] = {0};                                                 \
        FOR_EACH_PIECE(S, stride, begin, end, at, len, {                                         \
            const int64_t whole = len - len % LANES;                                             \
            int64_t j = 0;                                                                       \
            while (j < whole) {                                                                  \
                const int64_t stop = j + PARTIAL * LANES < whole ? j + PARTIAL * LANES : whole;  \
                mg_v##t p1[LANES / VL_##t], p2[LANES / VL_##t];                                  \
                for (int v = 0; v < LANES / VL_##t; v++) p1[v] = p2[v] = mg_v##t##_zero();       \
                for (; j < stop; j += LANES) {                                                   \
                    prefetch_plane_ahead(x, at, j, len, stride - S, sizeof(T_##t));              \
                    for (int v = 0; v < LANES / VL_##t; v++) {                                   \
                        const mg_v##t d = mg_v##t##_sub(mg_v##t##_load(x + at + j + v * VL_##t), vk); \
                        p1[v] = mg_v##t##_add(p1[v], d);                                         \
                        p2[v] = fused_v##t(d, d, p2[v]);                                         \
                    }                                                                            \
                }                                                                                \
                for (int v = 0; v < LANES / VL_##t; v++) {                                       \
                    widen_add_##t(a1 + v * VL_##t, p1[v]);                                       \
                    widen_add_##t(a2 + v * VL_##t, p2[v]);                                       \
                }                                                                                \
            }                                                                                    \
            for (int l = 0; j < len; j++, l++) {                                                 \
                const double d = (T_##t)(x[at + j] - k);                                         \
                a1[l] += d;                                                                      \
                a2[l] = fused_f64(d, d, a2[l]);                                                  \
            }                                                                                    \
        });                                                                                      \
        sums[0] = fold_lanes(a1);                                                                \
        sums[1] = fold_lanes(a2);                                                                \
    }                                                                                            \
                                                                                                 \
    /* planes: sums[0] = sum of dy_i, sums[1] = sum of dy_i*(x_i - k). */                        \
    static void grad_planes_##t(const void *dy_, const void *x_, int64_t S, int64_t stride,      \
                                int64_t begin, int64_t end, const void *center, double sums[2]) { \
        const T_##t *dy = dy_, *x = x_, k = *(const T_##t *)center;                              \
        const mg_v##t vk = mg_v##t##_set1(k);                                                    \
        double a1[LANES] = {0}, a2[LANES] = {0};                                                 \
        FOR_EACH_PIECE(S, stride, begin, end, at, len, {                                         \
            const int64_t whole = len - len % LANES;                                             \
            int64_t j = 0;                                                                       \
            while (j < whole) {                                                                  \
                const int64_t stop = j + PARTIAL * LANES < whole ? j + PARTIAL * LANES : whole;  \
                mg_v##t p1[LANES / VL_##t], p2[LANES / VL_##t];                                  \
                for (int v = 0; v < LANES / VL_##t; v++) p1[v] = p2[v] = mg_v##t##_zero();       \
                for (; j < stop; j += LANES) {                                                   \
                    prefetch_plane_ahead(dy, at, j, len, stride - S, sizeof(T_##t));             \
                    prefetch_plane_ahead(x, at, j, len, stride - S, sizeof(T_##t));              \
                    for (int v = 0; v < LANES / VL_##t; v++) {                                   \
                        const int64_t i = at + j + v * VL_##t;                                   \
                        const mg_v##t g = mg_v##t##_load(dy + i);                                \
                        p1[v] = mg_v##t##_add(p1[v], g);                                         \
                        p2[v] = fused_v##t(g, mg_v##t##_sub(mg_v##t##_load(x + i), vk), p2[v]);  \
                    }                                                                            \
                }                                                                                \
                for (int v = 0; v < LANES / VL_##t; v++) {                                       \
                    widen_add_##t(a1 + v * VL_##t, p1[v]);                                       \
                    widen_add_##t(a2 + v * VL_##t, p2[v]);                                       \
                }                                                                                \
            }                                                                                    \
            for (int l = 0; j < len; j++, l++) {                                                 \
                const double g = dy[at + j];                                                     \
                a1[l] += g;                                                                      \
                a2[l] = fused_f64(g, (T_##t)(x[at + j] - k), a2[l]);                             \
            }                                                                                    \
        });                                                                                      \
        sums[0] = fold_lanes(a1);                                                                \
        sums[1] = fold_lanes(a2);                                                                \
    }                                                                                            \
                                                                                                 \
    /* rows, one group of nv vectors of channels from c over the rows [r0, r1)                   \
     * (nv is a constant after inlining: p1, p2 and k stay in registers). */                     \
    MG_INLINE void stat_group_##t(const T_##t *x, int64_t r0, int64_t r1, int64_t rows,          \
                                  int64_t width, int64_t ld, int64_t c,                          \
                                  const T_##t *center, double *s1, double *s2, int nv) {         \
        mg_v##t p1[GROUP_VECTORS], p2[GROUP_VECTORS], k[GROUP_VECTORS];                          \
        for (int v = 0; v < nv; v++) {                                                           \
            p1[v] = p2[v] = mg_v##t##_zero();                                                    \
            k[v] = mg_v##t##_load(center + c + v * VL_##t);                                      \
        }                                                                                        \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            prefetch_ahead(x, sizeof(T_##t), r, c, rows, width, ld, nv * VL_##t * sizeof(T_##t)); \
            for (int v = 0; v < nv; v++) {                                                       \
                const mg_v##t d = mg_v##t##_sub(mg_v##t##_load(x + r * ld + c + v * VL_##t), k[v]); \
                p1[v] = mg_v##t##_add(p1[v], d);                                                 \
                p2[v] = fused_v##t(d, d, p2[v]);                                                 \
            }                                                                                    \
        }                                                                                        \
        for (int v = 0; v < nv; v++) {                                                           \
            widen_add_##t(s1 + c + v * VL_##t, p1[v]);                                           \
            widen_add_##t(s2 + c + v * VL_##t, p2[v]);                                           \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    MG_INLINE void grad_group_##t(const T_##t *dy, const T_##t *x, int64_t r0, int64_t r1,       \
                                  int64_t rows, int64_t width, int64_t ld, int64_t c, const T_##t *center, double *s1, \
                                  double *s2, int nv) {                                          \
        mg_v##t p1[GROUP_VECTORS], p2[GROUP_VECTORS], k[GROUP_VECTORS];                          \
        for (int v = 0; v < nv; v++) {                                                           \
            p1[v] = p2[v] = mg_v##t##_zero();                                                    \
            k[v] = mg_v##t##_load(center + c + v * VL_##t);                                      \
        }                                                                                        \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            prefetch_ahead(dy, sizeof(T_##t), r, c, rows, width, ld, nv * VL_##t * sizeof(T_##t)); \
            prefetch_ahead(x, sizeof(T_##t), r, c, rows, width, ld, nv * VL_##t * sizeof(T_##t)); \
            for (int v = 0; v < nv; v++) {                                                       \
                const int64_t i = r * ld + c + v * VL_##t;                                       \
                const mg_v##t g = mg_v##t##_load(dy + i);                                        \
                p1[v] = mg_v##t##_add(p1[v], g);                                                 \
                p2[v] = fused_v##t(g, mg_v##t##_sub(mg_v##t##_load(x + i), k[v]), p2[v]);        \
            }                                                                                    \
        }                                                                                        \
        for (int v = 0; v < nv; v++) {                                                           \
            widen_add_##t(s1 + c + v * VL_##t, p1[v]);                                           \
            widen_add_##t(s2 + c + v * VL_##t, p2[v]);                                           \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    /* rows: x is (rows, ld); for c < width: s1[c] = sum_r d[r][c],                              \
     * s2[c] = sum_r d[r][c]^2 with d[r][c] = x[r][c] - k[c] (written). */                       \
    static void stat_rows_##t(const void *x_, int64_t rows, int64_t width, int64_t ld,           \
                              const void *center, double *s1, double *s2) {                      \
        const T_##t *x = x_, *k = center;                                                        \
        for (int64_t c = 0; c < width; c++) s1[c] = s2[c] = 0.0;                                 \
        for (int64_t r0 = 0; r0 < rows; r0 += PARTIAL) {                                         \
            const int64_t r1 = r0 + PARTIAL < rows ? r0 + PARTIAL : rows;                        \
            int64_t c = 0;                                                                       \
            for (; c + GROUP_VECTORS * VL_##t <= width; c += GROUP_VECTORS * VL_##t)             \
                stat_group_##t(x, r0, r1, rows, width, ld, c, k, s1, s2, GROUP_VECTORS);         \
            for (; c + VL_##t <= width; c += VL_##t) stat_group_##t(x, r0, r1, rows, width, ld, c, k, s1, s2, 1); \
            for (; c < width; c++) {                                                             \
                T_##t p1 = 0, p2 = 0;                                                            \
                for (int64_t r = r0; r < r1; r++) {                                              \
                    const T_##t d = x[r * ld + c] - k[c];                                        \
                    p1 += d;                                                                     \
                    p2 = fused_##t(d, d, p2);                                                    \
                }                                                                                \
                s1[c] += p1;                                                                     \
                s2[c] += p2;                                                                     \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    /* rows: s1[c] = sum_r dy[r][c], s2[c] = sum_r dy[r][c]*(x[r][c] - k[c]) (written). */       \
    static void grad_rows_##t(const void *dy_, const void *x_, int64_t rows, int64_t width,      \
                              int64_t ld, const void *center, double *s1, double *s2) {          \
        const T_##t *dy = dy_, *x = x_, *k = center;                                             \
        for (int64_t c = 0; c < width; c++) s1[c] = s2[c] = 0.0;                                 \
        for (int64_t r0 = 0; r0 < rows; r0 += PARTIAL) {                                         \
            const int64_t r1 = r0 + PARTIAL < rows ? r0 + PARTIAL : rows;                        \
            int64_t c = 0;                                                                       \
            for (; c + GROUP_VECTORS * VL_##t <= width; c += GROUP_VECTORS * VL_##t)             \
                grad_group_##t(dy, x, r0, r1, rows, width, ld, c, k, s1, s2, GROUP_VECTORS);     \
            for (; c + VL_##t <= width; c += VL_##t)                                             \
                grad_group_##t(dy, x, r0, r1, rows, width, ld, c, k, s1, s2, 1);                 \
            for (; c < width; c++) {                                                             \
                T_##t p1 = 0, p2 = 0;                                                            \
                for (int64_t r = r0; r < r1; r++) {                                              \
                    const T_##t g = dy[r * ld + c];                                              \
                    p1 += g;                                                                     \
                    p2 = fused_##t(g, x[r * ld + c] - k[c], p2);                                 \
                }                                                                                \
                s1[c] += p1;                                                                     \
                s2[c] += p2;                                                                     \
            }                                                                                    \
        }                                                                                        \
    }

DEFINE_SUMS(f32)
DEFINE_SUMS(f64)

/* ---- elementwise sweeps, in x's dtype t (f32 or f64) ----------------------
 * affine: y = (x - m)*a + b, p = {m, a, b}: the training normalisation
 *   (m = mean_hi, a = rstd*gamma, b = beta - mean_lo*a).
 * dx: dx = k*dy + (c*(x - m) + b), p = {k, c, m, b} (m = mean_hi,
 *   b = -k*dbeta/n - c*mean_lo).
 * scale: y = x*a + b, p = {a, b}: the eval forward (a = scale, b = shift)
 *   and the eval backward (b = 0): affine with m = 0 would load m and
 *   subtract it for nothing (the eval of 256x1024 float32 in cache, avx2,
 *   AMD EPYC Zen 3: 42 -> 40.5 us for the sweep).
 * The float64 mean is mean_hi + mean_lo with mean_hi in x's dtype: x - mean_hi
 * is exact when x is near the mean, and mean_lo moves into b, so a large
 * offset costs no precision. Parameter i is at p[i*ps] (planes) or, for
 * channel c, at p[i*ps + c] (rows). The rows kernels walk the rows in memory
 * order with the parameters in L1: walking a column of rows instead would
 * load from addresses that alias the pending stores whenever the row length
 * is a multiple of 4 KiB. With `stream` (outputs of mg_stream_min_bytes or
 * more) the outputs are written with streaming stores (MG_STORE_RUN, simd.h);
 * the bits are the same. */

#define DEFINE_ELEMENTWISE(t)                                                                    \
    static void affine_planes_##t(const void *x_, void *y_, int64_t S, int64_t stride,           \
                                  int64_t begin, int64_t end, const void *p_, int64_t ps,        \
                                  int stream) {                                                  \
        const T_##t *x = x_, *p = p_;                                                            \
        T_##t *y = y_;                                                                           \
        const mg_v##t m = mg_v##t##_set1(p[0]), a = mg_v##t##_set1(p[ps]),                       \
                      b = mg_v##t##_set1(p[2 * ps]);                                             \
        FOR_EACH_PIECE(S, stride, begin, end, at, len, {                                         \
            const T_##t *xs = x + at;                                                            \
            T_##t *ys = y + at;                                                                  \
            MG_STORE_RUN(t, stream, ys, len, j,                                                  \
                      fused_v##t(mg_v##t##_sub(mg_v##t##_load(xs + j), m), a, b),                \
                      ys[j] = fused_##t(xs[j] - p[0], p[ps], p[2 * ps]), mg_prefetch_ahead(xs + j)); \
        });                                                                                      \
        if (stream) mg_stream_fence();                                                           \
    }                                                                                            \
                                                                                                 \
    static void affine_rows_##t(const void *x_, void *y_, int64_t rows, int64_t width,           \
                                int64_t ld, const void *p_, int64_t ps, int stream) {            \
        const T_##t *p = p_;                                                                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T_##t *x = (const T_##t *)x_ + r * ld;                                         \
            T_##t *y = (T_##t *)y_ + r * ld;                                                     \
            MG_STORE_RUN(t, stream, y, width, c,                                                 \
                      fused_v##t(mg_v##t##_sub(mg_v##t##_load(x + c), mg_v##t##_load(p + c)),    \
                                 mg_v##t##_load(p + ps + c), mg_v##t##_load(p + 2 * ps + c)),    \
                      y[c] = fused_##t(x[c] - p[c], p[ps + c], p[2 * ps + c]), mg_prefetch_ahead(x + c)); \
        }                                                                                        \
        if (stream) mg_stream_fence();                                                           \
    }                                                                                            \
                                                                                                 \
    static void scale_planes_##t(const void *x_, void *y_, int64_t S, int64_t stride,            \
                                 int64_t begin, int64_t end, const void *p_, int64_t ps,         \
                                 int stream) {                                                   \
        const T_##t *x = x_, *p = p_;                                                            \
        T_##t *y = y_;                                                                           \
        const mg_v##t a = mg_v##t##_set1(p[0]), b = mg_v##t##_set1(p[ps]);                       \
        FOR_EACH_PIECE(S, stride, begin, end, at, len, {                                         \
            const T_##t *xs = x + at;                                                            \
            T_##t *ys = y + at;                                                                  \
            MG_STORE_RUN(t, stream, ys, len, j, fused_v##t(mg_v##t##_load(xs + j), a, b),        \
                      ys[j] = fused_##t(xs[j], p[0], p[ps]), mg_prefetch_ahead(xs + j));         \
        });                                                                                      \
        if (stream) mg_stream_fence();                                                           \
    }                                                                                            \
                                                                                                 \
    static void scale_rows_##t(const void *x_, void *y_, int64_t rows, int64_t width,            \
                               int64_t ld, const void *p_, int64_t ps, int stream) {             \
        const T_##t *p = p_;                                                                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T_##t *x = (const T_##t *)x_ + r * ld;                                         \
            T_##t *y = (T_##t *)y_ + r * ld;                                                     \
            MG_STORE_RUN(t, stream, y, width, c,                                                 \
                      fused_v##t(mg_v##t##_load(x + c), mg_v##t##_load(p + c), mg_v##t##_load(p + ps + c)), \
                      y[c] = fused_##t(x[c], p[c], p[ps + c]), mg_prefetch_ahead(x + c));        \
        }                                                                                        \
        if (stream) mg_stream_fence();                                                           \
    }                                                                                            \
                                                                                                 \
    static void dx_planes_##t(const void *dy_, const void *x_, void *dx_, int64_t S,             \
                              int64_t stride, int64_t begin, int64_t end, const void *p_,        \
                              int64_t ps, int stream) {                                          \
        const T_##t *dy = dy_, *x = x_, *p = p_;                                                 \
        T_##t *dx = dx_;                                                                         \
        const mg_v##t k = mg_v##t##_set1(p[0]), cf = mg_v##t##_set1(p[ps]),                      \
                      m = mg_v##t##_set1(p[2 * ps]), b = mg_v##t##_set1(p[3 * ps]);              \
        FOR_EACH_PIECE(S, stride, begin, end, at, len, {                                         \
            const T_##t *dys = dy + at, *xs = x + at;                                            \
            T_##t *dxs = dx + at;                                                                \
            MG_STORE_RUN(t, stream, dxs, len, j,                                                 \
                      fused_v##t(k, mg_v##t##_load(dys + j),                                     \
                                 fused_v##t(cf, mg_v##t##_sub(mg_v##t##_load(xs + j), m), b)),   \
                      dxs[j] = fused_##t(p[0], dys[j], fused_##t(p[ps], xs[j] - p[2 * ps], p[3 * ps])), \
                      (mg_prefetch_ahead(dys + j), mg_prefetch_ahead(xs + j)));                  \
        });                                                                                      \
        if (stream) mg_stream_fence();                                                           \
    }                                                                                            \
                                                                                                 \
    static void dx_rows_##t(const void *dy_, const void *x_, void *dx_, int64_t rows,            \
                            int64_t width, int64_t ld, const void *p_, int64_t ps, int stream) { \
        const T_##t *p = p_;                                                                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T_##t *dy = (const T_##t *)dy_ + r * ld, *x = (const T_##t *)x_ + r * ld;      \
            T_##t *dx = (T_##t *)dx_ + r * ld;                                                   \
            MG_STORE_RUN(t, stream, dx, width, c,                                                \
                      fused_v##t(mg_v##t##_load(p + c), mg_v##t##_load(dy + c),                  \
                                 fused_v##t(mg_v##t##_load(p + ps + c),                          \
                                            mg_v##t##_sub(mg_v##t##_load(x + c), mg_v##t##_load(p + 2 * ps + c)), \
                                            mg_v##t##_load(p + 3 * ps + c))),                    \
                      dx[c] = fused_##t(p[c], dy[c], fused_##t(p[ps + c], x[c] - p[2 * ps + c], p[3 * ps + c])), \
                      (mg_prefetch_ahead(dy + c), mg_prefetch_ahead(x + c)));                    \
        }                                                                                        \
        if (stream) mg_stream_fence();                                                           \
    }

DEFINE_ELEMENTWISE(f32)
DEFINE_ELEMENTWISE(f64)

/* The eval sweep's parameters: p[c] = scale = gamma/sqrt(running_var + eps),
 * p[C + c] = shift = beta - running_mean*scale, computed in float64 and
 * rounded to x's dtype; an absent gamma is 1, beta and running_mean (the
 * eval backward passes none) 0. It sits here, compiled once per ISA, so
 * that the loop is vectorised at the ISA's width: sqrt and divide are
 * correctly rounded at any width, so every path gives the same bits. In the
 * generic code (two doubles per SSE2 instruction) a (1, 1024) float32 eval,
 * nearly all of it this loop, took 2.4 us; 1.3 us here (AMD EPYC Zen 3). */
#define DEFINE_EVAL_PARAMS(t)                                                                    \
    static void eval_params_##t(void *p_, int64_t C, const void *rm_, const void *rv_,           \
                                const void *w_, const void *b_, double eps) {                    \
        const T_##t *rm = rm_, *rv = rv_, *w = w_, *b = b_;                                      \
        T_##t *p = p_;                                                                           \
        for (int64_t c = 0; c < C; c++) {                                                        \
            const double scale = (w ? (double)w[c] : 1.0) / sqrt((double)rv[c] + eps);           \
            p[c] = (T_##t)scale;                                                                 \
            p[C + c] = (T_##t)((b ? (double)b[c] : 0.0) - (rm ? (double)rm[c] : 0.0) * scale);  \
        }                                                                                        \
    }

DEFINE_EVAL_PARAMS(f32)
DEFINE_EVAL_PARAMS(f64)

/* The training forward, between its sweeps, channel by channel, in float64:
 *   mean = k + s1/n, var = (s2 - s1*(s1/n))/n (0 if rounding makes it
 *   negative; NaN stays NaN), rstd = 1/sqrt(var + eps),
 *   p = {m, a, b}: m = mean rounded to x's dtype (mean_hi), a = rstd*gamma,
 *   b = beta - (mean - m)*a, each rounded to x's dtype.
 * Here for the same reason as eval_params: its two divides and sqrt run at
 * the vector width (a (2, 1024) float32 forward, nearly all of it this
 * loop and the centers: 11.7 -> 5.8 us, AMD EPYC Zen 3). GCC vectorises the loop only without branches in it, so
 * there is one loop for each of gamma and beta present or absent, and only
 * with p, s1, s2 and k restrict (api_batchnorm.c's scratch, apart from each
 * other and from the caller's arrays, for which GCC checks overlap at run
 * time). */
#define FORWARD_PARAMS_LOOP(t, GAMMA, BETA)                                                      \
    for (int64_t c = c0; c < c1; c++) {                                                          \
        const double mean = (double)k[c] + s1[c] / n;                                            \
        const double v = (s2[c] - s1[c] * (s1[c] / n)) / n;                                      \
        const double var = v < 0.0 ? 0.0 : v;                                                    \
        const double rstd = 1.0 / sqrt(var + eps);                                               \
        save_mean[c] = mean, save_rstd[c] = rstd, batch_var[c] = var;                            \
        const double m = (double)(T_##t)mean, a = rstd * (GAMMA);                                \
        pm[c] = (T_##t)m;                                                                        \
        pa[c] = (T_##t)a;                                                                        \
        pb[c] = (T_##t)((BETA) - (mean - m) * a);                                                \
    }

#define DEFINE_FORWARD_PARAMS(t)                                                                 \
    static void forward_params_##t(void *restrict p, int64_t C, int64_t c0, int64_t c1, double n, \
                                   const double *restrict s1, const double *restrict s2,         \
                                   const void *restrict k_, const void *w_, const void *b_,      \
                                   double eps, double *save_mean, double *save_rstd,             \
                                   double *batch_var) {                                          \
        const T_##t *k = k_, *w = w_, *b = b_;                                                   \
        T_##t *restrict pm = p, *restrict pa = pm + C, *restrict pb = pm + 2 * C;                \
        if (w && b) FORWARD_PARAMS_LOOP(t, (double)w[c], (double)b[c])                           \
        else if (w) FORWARD_PARAMS_LOOP(t, (double)w[c], 0.0)                                    \
        else if (b) FORWARD_PARAMS_LOOP(t, 1.0, (double)b[c])                                    \
        else FORWARD_PARAMS_LOOP(t, 1.0, 0.0)                                                    \
    }

DEFINE_FORWARD_PARAMS(f32)
DEFINE_FORWARD_PARAMS(f64)

#define KERNELS(t)                                                                               \
    {stat_planes_##t, grad_planes_##t, affine_planes_##t, dx_planes_##t, scale_planes_##t,       \
     stat_rows_##t,   grad_rows_##t,   affine_rows_##t,   dx_rows_##t,   scale_rows_##t,         \
     eval_params_##t, forward_params_##t}

void MG_ISA_FN(mg_fill_batchnorm)(mg_kernel_table *t) {
    const mg_bn_kernels f32 = KERNELS(f32), f64 = KERNELS(f64);
    t->batchnorm[0] = f32;   /* MG_F32 */
    t->batchnorm[1] = f64;   /* MG_F64 */
}
