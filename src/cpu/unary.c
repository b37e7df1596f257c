/* cpu/unary.c - elementwise maps out[i] = f(x[i]) and their fused backward.
 *
 * Every loop reads x (n elements, contiguous) and writes out (n elements,
 * contiguous); api_unary.c has checked the arguments and cuts big arrays
 * into chunks for the thread pool.
 *
 * float32 transcendentals are written here. exp, tanh and
 * sigmoid work on simd.h vectors (exp needs an exponent-scaling step that
 * the compiler would not find: vscalefps on avx512); log is plain C that
 * the compiler vectorises for the ISA this file is compiled for.
 * exp (and so tanh and sigmoid, which call it) rounds with explicit fused
 * multiply-adds: one instruction on the SIMD paths and the C library's
 * correctly rounded fmaf on the scalar path, so every ISA gives the same
 * bits; the rest use no FMA (-ffp-contract=off).
 * Error bound in float32 ulps of the exact value (tests/test_unary_reduce_kernels.py
 * checks it against float64 on millions of points, every 1021st float32
 * bit pattern among them; measured worst cases: exp 0.87, log 0.83,
 * tanh 1.36, sigmoid 2.41; NumPy 2.4's own float32 exp and log reach 2.3
 * and 3.5):
 *   exp_f32      <= 1.5 ulp   Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2,
 *                             1 + r + r^2 Q(r), Q a degree-4 fit (tools/fit_exp_poly.py)
 *   log_f32      <= 1 ulp     x = m 2^e, m in [sqrt(1/2), sqrt(2)),
 *                             log(m) = f - f^2/2 + s (f^2/2 + R(s^2)),
 *                             f = m - 1, s = f / (2 + f)
 *   tanh_f32     <= 1.5 ulp   |x| < 0.625: x + x^3 P(x^2) (tools/fit_tanh_poly.py);
 *                             else sign(x) (1 - 2 / (exp(2|x|) + 1))
 *   sigmoid_f32  <= 3 ulp     1 / (1 + e) or e / (1 + e), e = exp(-|x|)
 *   sqrt         correctly rounded (the sqrt instruction)
 * float64 uses the C library's exp, log and tanh (correctly rounded or
 * within 1 ulp in glibc and musl), so those loops are not vectorised.
 *
 * Outputs of mg_stream_min_bytes or more are written with streaming stores
 * (api_unary.c sets `stream`) by the loops on simd.h vectors: the float32
 * exp, tanh, sigmoid, relu and abs, and the float32 backward of relu,
 * sigmoid, tanh and sqrt. The other loops are plain C with ordinary stores.
 *
 * pow with a scalar exponent takes PyTorch's shortcuts (x*x for 2, sqrt for
 * 0.5, ...), which vectorise; other exponents, and tensor exponents, call
 * the C library's pow (float32 through double: at most one rounding off). */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "simd.h"

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

/* ---- float32 transcendentals -------------------------------------------- */

static const float LN2_HI = 0x1.62e4p-1f;     /* ln 2 to 15 bits: k * LN2_HI is exact for |k| <= 255 */
static const float LN2_LO = 0x1.7f7d1cp-20f;  /* ln 2 - LN2_HI */
static const float LOG2E = 0x1.715476p+0f;
static const float ROUND_MAGIC = 0x1.8p23f;   /* adding it rounds |y| < 2^22 to an integer */

/* exp(x) = 2^k exp(r), k = round(x / ln 2), on a vector of x. Three fused
 * multiply-adds do the reduction (k * LN2_HI is exact, so the second one is
 * too), six the polynomial, whose value p lies in [1/sqrt 2, sqrt 2]. */
MG_INLINE mg_vf32 exp_reduced_vf32(mg_vf32 x, mg_vf32 *k_out) {
    const mg_vf32 t = mg_vf32_fma(x, mg_vf32_set1(LOG2E), mg_vf32_set1(ROUND_MAGIC));
    const mg_vf32 k = mg_vf32_sub(t, mg_vf32_set1(ROUND_MAGIC));
    const mg_vf32 r = mg_vf32_fma(k, mg_vf32_set1(-LN2_LO), mg_vf32_fma(k, mg_vf32_set1(-LN2_HI), x));
    static const float Q[] = {0x1.687b46p-10f, 0x1.123bdcp-7f, 0x1.555b5cp-5f,  /* exp(r) = 1 + r + r^2 Q(r), */
                              0x1.55548ep-3f, 0x1.fffff8p-2f, 1.0f, 1.0f};      /* Q: tools/fit_exp_poly.py */
    mg_vf32 p = mg_vf32_set1(Q[0]);
    for (int i = 1; i < 7; i++) p = mg_vf32_fma(p, r, mg_vf32_set1(Q[i]));
    *k_out = k;
    return p;
}

/* Where every |x| <= 86.5, |k| <= 125 and p 2^k is a normal number: 2^k is
 * added to p's exponent field (three instructions on avx2). Elsewhere
 * (a rarely taken branch: one per vector) x is first clamped to [-104, 89]:
 * beyond, exp is 0 or inf in float32 (exp(-104) is below half the smallest
 * subnormal, exp(89) above FLT_MAX), and the clamped value gives exactly
 * that; NaN passes through; mg_vf32_ldexp applies 2^k with one rounding,
 * into subnormals too. Both branches give the same bits where both apply.
 * On avx512 either scaling is one instruction (vscalefps). About sixteen
 * vector instructions per 8 values on avx2. */
MG_INLINE mg_vf32 exp_vf32(mg_vf32 x) {
    mg_vf32 k;
    if (mg_vf32_any_abs_above(x, 86.5f)) {
        const mg_vf32 p = exp_reduced_vf32(mg_vf32_clamp(x, -104.0f, 89.0f), &k);
        return mg_vf32_ldexp(p, k);
    }
    const mg_vf32 p = exp_reduced_vf32(x, &k);
    return mg_vf32_ldexp_normal(p, k);
}

static inline float log_f32(float x) {
    const int subnormal = x < 0x1p-126f;                     /* (also true for x <= 0) */
    const float xs = subnormal ? x * 0x1p23f : x;
    /* xs = m * 2^e with m in [sqrt(1/2), sqrt(2)): shift the bits so that
     * sqrt(1/2) lands on an exponent boundary, then split. */
    const uint32_t shifted = bits_of(xs) - bits_of(0x1.6a09e6p-1f);
    const int32_t e = ((int32_t)shifted >> 23) - (subnormal ? 23 : 0);
    const float m = float_of((shifted & 0x007fffffu) + bits_of(0x1.6a09e6p-1f));
    const float f = m - 1.0f;                                /* exact */
    const float s = f / (2.0f + f);
    const float z = s * s;
    /* log(1 + f) = 2 atanh(s) = 2s + s R, R = 2z/3 + 2z^2/5 + 2z^3/7 + 2z^4/9 */
    float R = 2.0f / 9.0f;
    R = R * z + 2.0f / 7.0f;
    R = R * z + 2.0f / 5.0f;
    R = R * z + 2.0f / 3.0f;
    R = R * z;
    const float hfsq = 0.5f * f * f;
    const float ef = (float)e;
    float y = ef * LN2_HI - ((hfsq - (s * (hfsq + R) + ef * LN2_LO)) - f);
    y = x == INFINITY ? INFINITY : y;
    y = x == 0.0f ? -INFINITY : y;
    y = x < 0.0f ? NAN : y;
    return x != x ? x : y;
}

/* tanh(x) = x + x^3 P(x^2) for |x| < 0.625 (each step a multiply, then an
 * add), else sign(x) (1 - 2 / (exp(2|x|) + 1)). */
MG_INLINE mg_vf32 tanh_vf32(mg_vf32 x) {
    const mg_vf32 a = mg_vf32_abs(x), z = mg_vf32_mul(x, x), one = mg_vf32_set1(1.0f);
    static const float P[] = {0x1.1842f8p-9f, -0x1.0bc5eep-7f, 0x1.6380e4p-6f,   /* tools/fit_tanh_poly.py */
                              -0x1.b9ed7ep-5f, 0x1.11106p-3f, -0x1.555554p-2f};
    mg_vf32 p = mg_vf32_set1(P[0]);
    for (int i = 1; i < 6; i++) p = mg_vf32_add(mg_vf32_mul(p, z), mg_vf32_set1(P[i]));
    const mg_vf32 small = mg_vf32_add(x, mg_vf32_mul(mg_vf32_mul(x, z), p));
    const mg_vf32 e = exp_vf32(mg_vf32_add(a, a));
    const mg_vf32 large = mg_vf32_copysign(
        mg_vf32_sub(one, mg_vf32_div(mg_vf32_set1(2.0f), mg_vf32_add(e, one))), x);
    return mg_vf32_select_lt(a, mg_vf32_set1(0.625f), small, large);
}

/* sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with
 * e = exp(-|x|) <= 1: nothing overflows, and tiny results keep their digits. */
MG_INLINE mg_vf32 sigmoid_vf32(mg_vf32 x) {
    const mg_vf32 one = mg_vf32_set1(1.0f);
    const mg_vf32 e = exp_vf32(mg_vf32_sub(mg_vf32_zero(), mg_vf32_abs(x)));
    const mg_vf32 r = mg_vf32_div(one, mg_vf32_add(one, e));
    return mg_vf32_select_lt(x, mg_vf32_zero(), mg_vf32_mul(e, r), r);
}

/* out[i] = F(x[i]) over whole vectors, streamed when `stream` (from out's
 * first vector-aligned address on). The values before that address and the
 * last ones go through F too, in a zero-padded vector, so every element gets
 * the same bits wherever it sits. */
MG_INLINE void padded_vf32(mg_vf32 (*F)(mg_vf32), const float *x, float *out, int64_t n) {
    float part[MG_VF32_LANES] = {0};
    memcpy(part, x, (size_t)n * sizeof *x);
    mg_vf32_store(part, F(mg_vf32_load(part)));
    memcpy(out, part, (size_t)n * sizeof *out);
}

/* Two vectors per iteration: two independent dependency chains through F. */
#define PAIRS_OF_VECTORS(F, STORE)                                            \
    for (; i + 2 * MG_VF32_LANES <= n; i += 2 * MG_VF32_LANES) {              \
        const mg_vf32 y0 = F(mg_vf32_load(x + i));                            \
        const mg_vf32 y1 = F(mg_vf32_load(x + i + MG_VF32_LANES));            \
        STORE(out + i, y0);                                                   \
        STORE(out + i + MG_VF32_LANES, y1);                                   \
    }

#define DEFINE_VEC_LOOP_F32(name, F)                                          \
    static void name(int64_t n, const void *x_, void *out_, int stream) {     \
        const float *x = x_;                                                  \
        float *out = out_;                                                    \
        int64_t i = 0;                                                        \
        if (stream) {                                                         \
            const int64_t lead = (int64_t)(-(uintptr_t)out % (MG_VF32_LANES * sizeof *out)) / (int64_t)sizeof *out; \
            i = lead < n ? lead : n;                                          \
            if (i > 0) padded_vf32(F, x, out, i);                             \
            PAIRS_OF_VECTORS(F, mg_vf32_stream);                              \
            mg_stream_fence();                                                \
        }                                                                     \
        PAIRS_OF_VECTORS(F, mg_vf32_store);                                   \
        for (; i + MG_VF32_LANES <= n; i += MG_VF32_LANES)                    \
            mg_vf32_store(out + i, F(mg_vf32_load(x + i)));                   \
        if (i < n) padded_vf32(F, x + i, out + i, n - i);                     \
    }

static inline double sigmoid_f64(double x) {
    const double e = exp(-fabs(x));
    const double r = 1.0 / (1.0 + e);
    return x >= 0.0 ? r : e * r;
}

/* relu(NaN) = NaN and relu(-0) = -0, as max(x, 0) in PyTorch. */
#define RELU(x) ((x) < 0 ? 0 : (x))
MG_INLINE mg_vf32 relu_vf32(mg_vf32 x) { return mg_vf32_select_lt(x, mg_vf32_zero(), mg_vf32_zero(), x); }
#define NEG(x) (-(x))

/* out[i] = F(x[i]), a plain loop (never streamed). */
#define DEFINE_UNARY_LOOP(name, T, F)                                         \
    static void name(int64_t n, const void *x_, void *out_, int stream) {     \
        const T *restrict x = x_;                                             \
        T *restrict out = out_;                                               \
        for (int64_t i = 0; i < n; i++) out[i] = F(x[i]);                     \
    }

/* out[i] = F(x[i]) with VF, F's vector form, on whole vectors (MG_STORE_RUN). */
#define DEFINE_MAP_LOOP(name, t, VF, F)                                       \
    static void name(int64_t n, const void *x_, void *out_, int stream) {     \
        const mg_##t *x = x_;                                                 \
        mg_##t *out = out_;                                                   \
        MG_STORE_RUN(t, stream, out, n, i, VF(mg_v##t##_load(x + i)), out[i] = F(x[i]), \
                     mg_prefetch_ahead(x + i));                               \
        if (stream) mg_stream_fence();                                        \
    }

DEFINE_VEC_LOOP_F32(exp_loop_f32, exp_vf32)
DEFINE_UNARY_LOOP(exp_loop_f64, double, exp)
DEFINE_UNARY_LOOP(log_loop_f32, float, log_f32)
DEFINE_UNARY_LOOP(log_loop_f64, double, log)
DEFINE_UNARY_LOOP(sqrt_loop_f32, float, sqrtf)
DEFINE_UNARY_LOOP(sqrt_loop_f64, double, sqrt)
DEFINE_VEC_LOOP_F32(tanh_loop_f32, tanh_vf32)
DEFINE_UNARY_LOOP(tanh_loop_f64, double, tanh)
DEFINE_VEC_LOOP_F32(sigmoid_loop_f32, sigmoid_vf32)
DEFINE_UNARY_LOOP(sigmoid_loop_f64, double, sigmoid_f64)
DEFINE_MAP_LOOP(relu_loop_f32, f32, relu_vf32, RELU)
DEFINE_UNARY_LOOP(relu_loop_f64, double, RELU)
DEFINE_MAP_LOOP(abs_loop_f32, f32, mg_vf32_abs, fabsf)
DEFINE_UNARY_LOOP(abs_loop_f64, double, fabs)
DEFINE_UNARY_LOOP(neg_loop_f32, float, NEG)
DEFINE_UNARY_LOOP(neg_loop_f64, double, NEG)

/* ---- clamp: out = min(max(x, lo), hi); NaN stays NaN --------------------- */

#define DEFINE_CLAMP(name, T)                                                 \
    static void name(int64_t n, const void *x_, double lo_, double hi_,       \
                     void *out_) {                                            \
        const T *restrict x = x_;                                             \
        T *restrict out = out_;                                               \
        const T lo = (T)lo_, hi = (T)hi_;                                     \
        for (int64_t i = 0; i < n; i++) {                                     \
            const T v = x[i] < lo ? lo : x[i];                                \
            out[i] = v > hi ? hi : v;                                         \
        }                                                                     \
    }

DEFINE_CLAMP(clamp_f32, float)
DEFINE_CLAMP(clamp_f64, double)

/* gx = g where lo <= x <= hi, else 0 (PyTorch passes the gradient at the bounds). */
#define DEFINE_CLAMP_GRAD(name, T)                                            \
    static void name(int64_t n, const void *x_, const void *g_, double lo_,   \
                     double hi_, void *out_) {                                \
        const T *restrict x = x_;                                             \
        const T *restrict g = g_;                                             \
        T *restrict out = out_;                                               \
        const T lo = (T)lo_, hi = (T)hi_;                                     \
        for (int64_t i = 0; i < n; i++)                                       \
            out[i] = (x[i] >= lo && x[i] <= hi) ? g[i] : 0;                   \
    }

DEFINE_CLAMP_GRAD(clamp_grad_f32, float)
DEFINE_CLAMP_GRAD(clamp_grad_f64, double)

/* ---- fused backward: gx[i] = g[i] * f'(...) from the saved y or x ------- */

#define RELU_GRAD(y, g) ((y) > 0 ? (g) : 0)                 /* saved y = relu(x) */
#define SIGMOID_GRAD(y, g) ((g) * ((y) * (1 - (y))))        /* saved y = sigmoid(x) */
#define TANH_GRAD(y, g) ((g) * (1 - (y) * (y)))             /* saved y = tanh(x) */
#define SQRT_GRAD(y, g) ((g) / ((y) + (y)))                 /* saved y = sqrt(x) */
#define ABS_GRAD(x, g) ((x) > 0 ? (g) : (x) < 0 ? -(g) : (g) * 0 * (x))  /* saved x; sign(0) = 0 */

/* Their vector forms, float32 (the same bits: the same operations in order). */
MG_INLINE mg_vf32 relu_grad_vf32(mg_vf32 y, mg_vf32 g) {
    return mg_vf32_select_lt(mg_vf32_zero(), y, g, mg_vf32_zero());
}
MG_INLINE mg_vf32 sigmoid_grad_vf32(mg_vf32 y, mg_vf32 g) {
    return mg_vf32_mul(g, mg_vf32_mul(y, mg_vf32_sub(mg_vf32_set1(1.0f), y)));
}
MG_INLINE mg_vf32 tanh_grad_vf32(mg_vf32 y, mg_vf32 g) {
    return mg_vf32_mul(g, mg_vf32_sub(mg_vf32_set1(1.0f), mg_vf32_mul(y, y)));
}
MG_INLINE mg_vf32 sqrt_grad_vf32(mg_vf32 y, mg_vf32 g) { return mg_vf32_div(g, mg_vf32_add(y, y)); }

/* out[i] = F(s[i], g[i]), a plain loop (never streamed). */
#define DEFINE_GRAD_LOOP(name, T, F)                                          \
    static void name(int64_t n, const void *s_, const void *g_, void *out_,   \
                     int stream) {                                            \
        const T *restrict s = s_;                                             \
        const T *restrict g = g_;                                             \
        T *restrict out = out_;                                               \
        for (int64_t i = 0; i < n; i++) out[i] = F(s[i], g[i]);               \
    }

/* The same on whole vectors with VF, F's vector form (MG_STORE_RUN). */
#define DEFINE_GRAD_MAP(name, VF, F)                                          \
    static void name(int64_t n, const void *s_, const void *g_, void *out_,   \
                     int stream) {                                            \
        const float *s = s_, *g = g_;                                         \
        float *out = out_;                                                    \
        MG_STORE_RUN(f32, stream, out, n, i, VF(mg_vf32_load(s + i), mg_vf32_load(g + i)), \
                     out[i] = F(s[i], g[i]), (mg_prefetch_ahead(s + i), mg_prefetch_ahead(g + i))); \
        if (stream) mg_stream_fence();                                        \
    }

#define DEFINE_GRAD_BOTH(op, F)                                               \
    DEFINE_GRAD_MAP(op##_grad_f32, op##_grad_vf32, F)                         \
    DEFINE_GRAD_LOOP(op##_grad_f64, double, F)

DEFINE_GRAD_BOTH(relu, RELU_GRAD)
DEFINE_GRAD_BOTH(sigmoid, SIGMOID_GRAD)
DEFINE_GRAD_BOTH(tanh, TANH_GRAD)
DEFINE_GRAD_BOTH(sqrt, SQRT_GRAD)
DEFINE_GRAD_LOOP(abs_grad_f32, float, ABS_GRAD)
DEFINE_GRAD_LOOP(abs_grad_f64, double, ABS_GRAD)

/* ---- pow ------------------------------------------------------------------
 * x^e with PyTorch's shortcuts for e in {0, 1, 2, 3, 0.5, -0.5, -1, -2},
 * else the C library's pow. POW_CASES runs one loop, picked once per call,
 * whose body is STORE(i, x[i]^e) with the power written as an expression
 * of v = x[i]: the shortcut loops vectorise. */

#define POW_F32(v, e) ((float)pow((double)(v), (double)(e)))
#define POW_F64(v, e) pow(v, e)

#define POW_LOOP(T, STORE, EXPR)                                              \
    for (int64_t i = 0; i < n; i++) {                                         \
        const T v = x[i];                                                     \
        (void)v;                                                              \
        STORE(i, (EXPR));                                                     \
    }

#define POW_CASES(T, e, STORE, SQRT, POW)                                     \
    if (e == 0) POW_LOOP(T, STORE, (T)1)                                      \
    else if (e == 1) POW_LOOP(T, STORE, v)                                    \
    else if (e == 2) POW_LOOP(T, STORE, v * v)                                \
    else if (e == 3) POW_LOOP(T, STORE, v * v * v)                            \
    else if (e == (T)0.5) POW_LOOP(T, STORE, SQRT(v))                         \
    else if (e == (T)-0.5) POW_LOOP(T, STORE, (T)1 / SQRT(v))                 \
    else if (e == -1) POW_LOOP(T, STORE, (T)1 / v)                            \
    else if (e == -2) POW_LOOP(T, STORE, (T)1 / (v * v))                      \
    else POW_LOOP(T, STORE, POW(v, e))

/* out = x^p; the exponent is rounded to the dtype first, as PyTorch does. */
#define POW_STORE(i, r) (out[i] = (r))
#define DEFINE_POW_SCALAR(name, T, SQRT, POW)                                 \
    static void name(int64_t n, const void *x_, double p_, void *out_) {      \
        const T *restrict x = x_;                                             \
        T *restrict out = out_;                                               \
        const T p = (T)p_;                                                    \
        POW_CASES(T, p, POW_STORE, SQRT, POW)                                 \
    }

/* gx = g * (p * x^(p-1)), grouped as PyTorch computes it; 0 for p = 0. */
#define POW_GRAD_STORE(i, r) (out[i] = g[i] * (p * (r)))
#define DEFINE_POW_SCALAR_GRAD(name, T, SQRT, POW)                            \
    static void name(int64_t n, const void *x_, const void *g_, double p_,    \
                     void *out_) {                                            \
        const T *restrict x = x_;                                             \
        const T *restrict g = g_;                                             \
        T *restrict out = out_;                                               \
        const T p = (T)p_, q = p - 1;                                         \
        if (p == 0) {                                                         \
            for (int64_t i = 0; i < n; i++) out[i] = 0;                       \
            return;                                                           \
        }                                                                     \
        POW_CASES(T, q, POW_GRAD_STORE, SQRT, POW)                            \
    }

/* out = x^y elementwise. */
#define DEFINE_POW(name, T, POW)                                              \
    static void name(int64_t n, const void *x_, const void *y_, void *out_) { \
        const T *restrict x = x_;                                             \
        const T *restrict y = y_;                                             \
        T *restrict out = out_;                                               \
        for (int64_t i = 0; i < n; i++) out[i] = POW(x[i], y[i]);             \
    }

DEFINE_POW_SCALAR(pow_scalar_f32, float, sqrtf, POW_F32)
DEFINE_POW_SCALAR(pow_scalar_f64, double, sqrt, POW_F64)
DEFINE_POW_SCALAR_GRAD(pow_scalar_grad_f32, float, sqrtf, POW_F32)
DEFINE_POW_SCALAR_GRAD(pow_scalar_grad_f64, double, sqrt, POW_F64)
DEFINE_POW(pow_f32, float, POW_F32)
DEFINE_POW(pow_f64, double, POW_F64)

void MG_ISA_FN(mg_fill_unary)(mg_kernel_table *t) {
    const mg_unary_loop_fn loops[MG_NUM_UNARY_OPS][MG_NUM_DTYPES] = {
        {exp_loop_f32, exp_loop_f64},   {log_loop_f32, log_loop_f64},
        {sqrt_loop_f32, sqrt_loop_f64}, {tanh_loop_f32, tanh_loop_f64},
        {sigmoid_loop_f32, sigmoid_loop_f64}, {relu_loop_f32, relu_loop_f64},
        {abs_loop_f32, abs_loop_f64},   {neg_loop_f32, neg_loop_f64},
    };
    const mg_unary_grad_fn grads[MG_NUM_UNARY_GRADS][MG_NUM_DTYPES] = {
        {relu_grad_f32, relu_grad_f64}, {sigmoid_grad_f32, sigmoid_grad_f64},
        {tanh_grad_f32, tanh_grad_f64}, {sqrt_grad_f32, sqrt_grad_f64},
        {abs_grad_f32, abs_grad_f64},
    };
    for (int dt = 0; dt < MG_NUM_DTYPES; dt++) {
        for (int op = 0; op < MG_NUM_UNARY_OPS; op++) t->unary[op][dt] = loops[op][dt];
        for (int op = 0; op < MG_NUM_UNARY_GRADS; op++) t->unary_grad[op][dt] = grads[op][dt];
    }
    t->clamp[0] = clamp_f32;
    t->clamp[1] = clamp_f64;
    t->clamp_grad[0] = clamp_grad_f32;
    t->clamp_grad[1] = clamp_grad_f64;
    t->pow_scalar[0] = pow_scalar_f32;
    t->pow_scalar[1] = pow_scalar_f64;
    t->pow_scalar_grad[0] = pow_scalar_grad_f32;
    t->pow_scalar_grad[1] = pow_scalar_grad_f64;
    t->pow[0] = pow_f32;
    t->pow[1] = pow_f64;
}
