/* simd.h - the few vector operations kernels need, mapped onto the ISA the
 * including file is compiled for (each cpu/<family>.c is compiled once per ISA).
 *
 * For T in f32 (float) and f64 (double):
 *   mg_vT              a vector of MG_VT_LANES elements
 *   mg_vT_zero()       all lanes 0
 *   mg_vT_set1(x)      all lanes x
 *   mg_vT_load(p)      p[0..LANES), p need not be aligned
 *   mg_vT_store(p, v)  p[0..LANES) = v, p need not be aligned
 *   mg_vT_add(x, y)    x + y
 *   mg_vT_sub(x, y)    x - y
 *   mg_vf64_mul(x, y), mg_vf64_div(x, y)   x * y, x / y
 *   mg_vf64_load_f32(p)      MG_VF64_LANES floats p[0..) widened to double
 *   mg_vf64_store_f32(p, v)  v rounded to float into p[0..MG_VF64_LANES)
 *   mg_vT_fmadd(x, y, z)   x * y + z
 *   mg_T_fmadd(x, y, z)    the same on one scalar
 *
 * float32 only, for the maps of cpu/unary.c (each gives the same bits on
 * every path, scalar included):
 *   mg_vf32_mul(x, y), mg_vf32_div(x, y)   x * y, x / y
 *   mg_vf32_fma(x, y, z)     x * y + z rounded ONCE on every path (the
 *                            C library's fmaf on the scalar one)
 *   mg_vf32_abs(x)           |x|
 *   mg_vf32_copysign(m, s)   |m| with the sign of s
 *   mg_vf32_clamp(x, lo, hi) min(max(x, lo), hi); NaN stays NaN
 *   mg_vf32_select_lt(a, b, t, f)   a < b ? t : f, lane by lane
 *   mg_vf32_ldexp(p, k)      p * 2^k rounded once (into subnormals, or to
 *                            0 or inf), for p in [1/2, 2] or NaN and k an
 *                            integer in [-160, 160] (NaN if p is)
 *   mg_vf32_ldexp_normal(p, k)   p * 2^k, exact, for k an integer and p * 2^k a
 *                            normal number (k is added to p's exponent field;
 *                            anything else gives garbage)
 *   mg_vf32_any_abs_above(x, b)  nonzero if some lane has |x| > b or is NaN
 *
 * Streaming stores, for outputs too large to stay in cache (mg_stream_min_bytes in
 * cpu/kernels.h):
 *   mg_vT_stream(p, v)  p[0..LANES) = v, p aligned to MG_VT_LANES * sizeof(T),
 *                       written around the caches (x86: movntps/movntpd): the
 *                       line is not first read from memory, as an ordinary
 *                       store must. On NEON and the scalar path, a store.
 * (mg_stream_fence() in cpu/kernels.h orders them before a task ends.)
 *
 * x86 with AVX2 (the avx2 and avx512 builds) only, where MG_HAVE_TRANSPOSE8_F32
 * is defined (cpu/matmul_template.h packs a column-major B with it):
 *   mg_f32_transpose8(src, ss, dst, ds)   dst[c*ds + r] = src[r*ss + c] for
 *                            r, c < 8: an 8 x 8 block, 24 shuffles in registers
 *
 * fmadd rounds ONCE (an explicit FMA instruction) on avx2, avx512 and neon,
 * and twice (multiply, then add) on the scalar path, which is the plain-C
 * reference. The build has -ffp-contract=off, so nothing else is fused.
 *
 * The path is chosen from the compiler's target macros; the scalar build
 * defines MG_SIMD_SCALAR (CMakeLists.txt) so that it stays plain C even on
 * aarch64, where NEON is always present. */
#ifndef MG_SIMD_H
#define MG_SIMD_H

#if !defined(MG_SIMD_SCALAR) && defined(__AVX512F__)
#define MG_SIMD_AVX512 1
#include <immintrin.h>
#elif !defined(MG_SIMD_SCALAR) && defined(__AVX2__) && defined(__FMA__)
#define MG_SIMD_AVX2 1
#include <immintrin.h>
#elif !defined(MG_SIMD_SCALAR) && defined(__aarch64__) && defined(__ARM_NEON)
#define MG_SIMD_NEON 1
#include <arm_neon.h>
#else
#define MG_SIMD_SCALAR_PATH 1
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MG_INLINE static inline __attribute__((always_inline))

/* ---- one scalar ---------------------------------------------------------- */

#ifdef MG_SIMD_SCALAR_PATH
MG_INLINE float mg_f32_fmadd(float x, float y, float z) { return x * y + z; }
MG_INLINE double mg_f64_fmadd(double x, double y, double z) { return x * y + z; }
#else
MG_INLINE float mg_f32_fmadd(float x, float y, float z) { return __builtin_fmaf(x, y, z); }
MG_INLINE double mg_f64_fmadd(double x, double y, double z) { return __builtin_fma(x, y, z); }
#endif

/* ---- vectors ------------------------------------------------------------- */

#if defined(MG_SIMD_AVX512)
#define MG_VF32_LANES 16
#define MG_VF64_LANES 8
typedef __m512 mg_vf32;
typedef __m512d mg_vf64;
MG_INLINE mg_vf32 mg_vf32_zero(void) { return _mm512_setzero_ps(); }
MG_INLINE mg_vf32 mg_vf32_set1(float x) { return _mm512_set1_ps(x); }
MG_INLINE mg_vf32 mg_vf32_load(const float *p) { return _mm512_loadu_ps(p); }
MG_INLINE void mg_vf32_store(float *p, mg_vf32 v) { _mm512_storeu_ps(p, v); }
MG_INLINE void mg_vf32_stream(float *p, mg_vf32 v) { _mm512_stream_ps(p, v); }
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return _mm512_add_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return _mm512_fmadd_ps(x, y, z); }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return _mm512_setzero_pd(); }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return _mm512_set1_pd(x); }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return _mm512_loadu_pd(p); }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { _mm512_storeu_pd(p, v); }
MG_INLINE void mg_vf64_stream(double *p, mg_vf64 v) { _mm512_stream_pd(p, v); }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return _mm512_add_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return _mm512_fmadd_pd(x, y, z); }

MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return _mm512_sub_ps(x, y); }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return _mm512_sub_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return _mm512_mul_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_div(mg_vf64 x, mg_vf64 y) { return _mm512_div_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }

MG_INLINE mg_vf32 mg_vf32_mul(mg_vf32 x, mg_vf32 y) { return _mm512_mul_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_div(mg_vf32 x, mg_vf32 y) { return _mm512_div_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_fma(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return _mm512_fmadd_ps(x, y, z); }
MG_INLINE mg_vf32 mg_vf32_abs(mg_vf32 x) { return _mm512_abs_ps(x); }
MG_INLINE mg_vf32 mg_vf32_copysign(mg_vf32 m, mg_vf32 s) {   /* bits: sign mask ? s : m */
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(sign, _mm512_castps_si512(s),
                                                         _mm512_castps_si512(m), 0xca));
}
/* max/min return their SECOND operand when either is NaN: x goes second. */
MG_INLINE mg_vf32 mg_vf32_clamp(mg_vf32 x, float lo, float hi) {
    return _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), x));
}
MG_INLINE mg_vf32 mg_vf32_select_lt(mg_vf32 a, mg_vf32 b, mg_vf32 t, mg_vf32 f) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), f, t);
}
MG_INLINE mg_vf32 mg_vf32_ldexp(mg_vf32 p, mg_vf32 k) { return _mm512_scalef_ps(p, k); }
MG_INLINE mg_vf32 mg_vf32_ldexp_normal(mg_vf32 p, mg_vf32 k) { return _mm512_scalef_ps(p, k); }
MG_INLINE int mg_vf32_any_abs_above(mg_vf32 x, float b) {
    return _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(b), _CMP_NLE_UQ) != 0;
}
#elif defined(MG_SIMD_AVX2)
#define MG_VF32_LANES 8
#define MG_VF64_LANES 4
typedef __m256 mg_vf32;
typedef __m256d mg_vf64;
MG_INLINE mg_vf32 mg_vf32_zero(void) { return _mm256_setzero_ps(); }
MG_INLINE mg_vf32 mg_vf32_set1(float x) { return _mm256_set1_ps(x); }
MG_INLINE mg_vf32 mg_vf32_load(const float *p) { return _mm256_loadu_ps(p); }
MG_INLINE void mg_vf32_store(float *p, mg_vf32 v) { _mm256_storeu_ps(p, v); }
MG_INLINE void mg_vf32_stream(float *p, mg_vf32 v) { _mm256_stream_ps(p, v); }
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return _mm256_add_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return _mm256_fmadd_ps(x, y, z); }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return _mm256_setzero_pd(); }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return _mm256_set1_pd(x); }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return _mm256_loadu_pd(p); }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { _mm256_storeu_pd(p, v); }
MG_INLINE void mg_vf64_stream(double *p, mg_vf64 v) { _mm256_stream_pd(p, v); }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return _mm256_add_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return _mm256_fmadd_pd(x, y, z); }

MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return _mm256_sub_ps(x, y); }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return _mm256_sub_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return _mm256_mul_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_div(mg_vf64 x, mg_vf64 y) { return _mm256_div_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }

MG_INLINE mg_vf32 mg_vf32_mul(mg_vf32 x, mg_vf32 y) { return _mm256_mul_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_div(mg_vf32 x, mg_vf32 y) { return _mm256_div_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_fma(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return _mm256_fmadd_ps(x, y, z); }
MG_INLINE mg_vf32 mg_vf32_abs(mg_vf32 x) {
    return _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)), x);
}
MG_INLINE mg_vf32 mg_vf32_copysign(mg_vf32 m, mg_vf32 s) {
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    return _mm256_or_ps(_mm256_andnot_ps(sign, m), _mm256_and_ps(sign, s));
}
/* max/min return their SECOND operand when either is NaN: x goes second. */
MG_INLINE mg_vf32 mg_vf32_clamp(mg_vf32 x, float lo, float hi) {
    return _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), x));
}
MG_INLINE mg_vf32 mg_vf32_select_lt(mg_vf32 a, mg_vf32 b, mg_vf32 t, mg_vf32 f) {
    return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
/* 2^k = 2^k1 * 2^k2, k1 = floor(k/2): both factors are normal numbers, and
 * p * 2^k1 is exact, so only the second multiply rounds. (A NaN k converts
 * to INT_MIN: garbage factors, but then p is NaN.) */
MG_INLINE mg_vf32 mg_vf32_ldexp(mg_vf32 p, mg_vf32 k) {
    const __m256i ki = _mm256_cvttps_epi32(k), k1 = _mm256_srai_epi32(ki, 1), bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ki, k1), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}
MG_INLINE mg_vf32 mg_vf32_ldexp_normal(mg_vf32 p, mg_vf32 k) {
    const __m256i shifted = _mm256_slli_epi32(_mm256_cvttps_epi32(k), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), shifted));
}
MG_INLINE int mg_vf32_any_abs_above(mg_vf32 x, float b) {
    return _mm256_movemask_ps(_mm256_cmp_ps(mg_vf32_abs(x), _mm256_set1_ps(b), _CMP_NLE_UQ)) != 0;
}
#elif defined(MG_SIMD_NEON)
#define MG_VF32_LANES 4
#define MG_VF64_LANES 2
typedef float32x4_t mg_vf32;
typedef float64x2_t mg_vf64;
MG_INLINE mg_vf32 mg_vf32_zero(void) { return vdupq_n_f32(0.0f); }
MG_INLINE mg_vf32 mg_vf32_set1(float x) { return vdupq_n_f32(x); }
MG_INLINE mg_vf32 mg_vf32_load(const float *p) { return vld1q_f32(p); }
MG_INLINE void mg_vf32_store(float *p, mg_vf32 v) { vst1q_f32(p, v); }
MG_INLINE void mg_vf32_stream(float *p, mg_vf32 v) { vst1q_f32(p, v); }
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return vaddq_f32(x, y); }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return vfmaq_f32(z, x, y); }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return vdupq_n_f64(0.0); }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return vdupq_n_f64(x); }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return vld1q_f64(p); }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { vst1q_f64(p, v); }
MG_INLINE void mg_vf64_stream(double *p, mg_vf64 v) { vst1q_f64(p, v); }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return vaddq_f64(x, y); }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return vfmaq_f64(z, x, y); }

MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return vsubq_f32(x, y); }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return vsubq_f64(x, y); }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return vmulq_f64(x, y); }
MG_INLINE mg_vf64 mg_vf64_div(mg_vf64 x, mg_vf64 y) { return vdivq_f64(x, y); }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return vcvt_f64_f32(vld1_f32(p)); }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { vst1_f32(p, vcvt_f32_f64(v)); }

MG_INLINE mg_vf32 mg_vf32_mul(mg_vf32 x, mg_vf32 y) { return vmulq_f32(x, y); }
MG_INLINE mg_vf32 mg_vf32_div(mg_vf32 x, mg_vf32 y) { return vdivq_f32(x, y); }
MG_INLINE mg_vf32 mg_vf32_fma(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return vfmaq_f32(z, x, y); }
MG_INLINE mg_vf32 mg_vf32_abs(mg_vf32 x) { return vabsq_f32(x); }
MG_INLINE mg_vf32 mg_vf32_copysign(mg_vf32 m, mg_vf32 s) { return vbslq_f32(vdupq_n_u32(0x80000000u), s, m); }
MG_INLINE mg_vf32 mg_vf32_clamp(mg_vf32 x, float lo, float hi) {  /* FMAX/FMIN propagate NaN */
    return vminq_f32(vmaxq_f32(x, vdupq_n_f32(lo)), vdupq_n_f32(hi));
}
MG_INLINE mg_vf32 mg_vf32_select_lt(mg_vf32 a, mg_vf32 b, mg_vf32 t, mg_vf32 f) {
    return vbslq_f32(vcltq_f32(a, b), t, f);
}
/* 2^k = 2^k1 * 2^k2 as on avx2 (a NaN k converts to 0). */
MG_INLINE mg_vf32 mg_vf32_ldexp(mg_vf32 p, mg_vf32 k) {
    const int32x4_t ki = vcvtq_s32_f32(k), k1 = vshrq_n_s32(ki, 1), bias = vdupq_n_s32(127);
    const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k1, bias), 23));
    const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vsubq_s32(ki, k1), bias), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}
MG_INLINE mg_vf32 mg_vf32_ldexp_normal(mg_vf32 p, mg_vf32 k) {
    const int32x4_t shifted = vshlq_n_s32(vcvtq_s32_f32(k), 23);
    return vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), shifted));
}
MG_INLINE int mg_vf32_any_abs_above(mg_vf32 x, float b) {   /* NaN fails |x| <= b */
    return vminvq_u32(vcleq_f32(vabsq_f32(x), vdupq_n_f32(b))) == 0;
}
#else /* scalar: a "vector" of one element */
#define MG_VF32_LANES 1
#define MG_VF64_LANES 1
typedef float mg_vf32;
typedef double mg_vf64;
MG_INLINE mg_vf32 mg_vf32_zero(void) { return 0.0f; }
MG_INLINE mg_vf32 mg_vf32_set1(float x) { return x; }
MG_INLINE mg_vf32 mg_vf32_load(const float *p) { return *p; }
MG_INLINE void mg_vf32_store(float *p, mg_vf32 v) { *p = v; }
MG_INLINE void mg_vf32_stream(float *p, mg_vf32 v) { *p = v; }
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return x + y; }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return x * y + z; }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return 0.0; }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return x; }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return *p; }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { *p = v; }
MG_INLINE void mg_vf64_stream(double *p, mg_vf64 v) { *p = v; }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return x + y; }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return x * y + z; }
MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return x - y; }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return x - y; }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return x * y; }
MG_INLINE mg_vf64 mg_vf64_div(mg_vf64 x, mg_vf64 y) { return x / y; }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return (double)*p; }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { *p = (float)v; }

MG_INLINE mg_vf32 mg_vf32_mul(mg_vf32 x, mg_vf32 y) { return x * y; }
MG_INLINE mg_vf32 mg_vf32_div(mg_vf32 x, mg_vf32 y) { return x / y; }
MG_INLINE mg_vf32 mg_vf32_fma(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return fmaf(x, y, z); }
MG_INLINE mg_vf32 mg_vf32_abs(mg_vf32 x) { return fabsf(x); }
MG_INLINE mg_vf32 mg_vf32_copysign(mg_vf32 m, mg_vf32 s) { return copysignf(m, s); }
MG_INLINE mg_vf32 mg_vf32_clamp(mg_vf32 x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }
MG_INLINE mg_vf32 mg_vf32_select_lt(mg_vf32 a, mg_vf32 b, mg_vf32 t, mg_vf32 f) { return a < b ? t : f; }
/* 2^k = 2^k1 * 2^k2 as on avx2. */
MG_INLINE mg_vf32 mg_vf32_ldexp(mg_vf32 p, mg_vf32 k) {
    if (k != k) return p;                                  /* p is NaN too */
    const int32_t ki = (int32_t)k, k1 = ki >> 1;           /* (>> of a negative int: arithmetic) */
    const uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(ki - k1 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}
MG_INLINE mg_vf32 mg_vf32_ldexp_normal(mg_vf32 p, mg_vf32 k) {
    uint32_t bits;
    memcpy(&bits, &p, sizeof bits);
    bits += (uint32_t)(int32_t)k << 23;
    memcpy(&p, &bits, sizeof p);
    return p;
}
MG_INLINE int mg_vf32_any_abs_above(mg_vf32 x, float b) { return !(fabsf(x) <= b); }
#endif

#if defined(MG_SIMD_AVX2) || defined(MG_SIMD_AVX512)
#define MG_HAVE_TRANSPOSE8_F32 1
MG_INLINE void mg_f32_transpose8(const float *src, int64_t ss, float *dst, int64_t ds) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ss);
    for (int i = 0; i < 8; i += 2) {            /* t[i], t[i+1]: rows i, i+1 interleaved by pairs of lanes */
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {            /* u: four rows' values of one column per 128-bit half */
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {               /* columns c and c + 4: the low and high halves */
        _mm256_storeu_ps(dst + c * ds, _mm256_permute2f128_ps(u[c], u[c + 4], 0x20));
        _mm256_storeu_ps(dst + (c + 4) * ds, _mm256_permute2f128_ps(u[c], u[c + 4], 0x31));
    }
}
#endif

/* ---- a run of outputs ----------------------------------------------------
 * MG_STORE_RUN(t, stream, o, n, j, VEC, ONE, AHEAD) writes o[0..n) for t =
 * f32 or f64: VEC (an expression of j) is the vector of outputs j.., ONE (a
 * statement) writes output j alone with the same bits. Whole vectors go out
 * from o's first vector-aligned address, with mg_vT_store or, with `stream`,
 * as streaming stores; the outputs before that address and the last ones
 * through ONE. The bits never depend on `stream` or on o's alignment. (As
 * memcpy does: stores across two cache lines cost more than loads. relu of
 * 1M float32 between NumPy arrays 16 bytes past a page, 1 thread: 117 ->
 * 112 us, AMD EPYC Zen 3.) A streamed run
 * reads its inputs from memory with the hardware prefetchers following one
 * stream each (glibc's memcpy keeps four going, and a plain loop reached
 * 0.8 of its speed): AHEAD, a statement of j, runs once per 64-byte line of
 * outputs and asks for the inputs' lines MG_AHEAD_BYTES further on
 * (mg_prefetch_ahead; (void)0 for none). The caller calls mg_stream_fence()
 * (cpu/kernels.h) after streamed runs. */
typedef float mg_f32;
typedef double mg_f64;
#define MG_LANES_f32 MG_VF32_LANES
#define MG_LANES_f64 MG_VF64_LANES
#define MG_AHEAD_BYTES 4096

/* A hint: prefetches never fault, so p + MG_AHEAD_BYTES may lie past the end. */
MG_INLINE void mg_prefetch_ahead(const void *p) { __builtin_prefetch((const char *)p + MG_AHEAD_BYTES); }

#define MG_STORE_RUN(t, stream, o, n, j, VEC, ONE, AHEAD)                                        \
    do {                                                                                         \
        int64_t j = 0;                                                                           \
        for (; j < (n) && (uintptr_t)((o) + j) % (MG_LANES_##t * sizeof(mg_##t)); j++) ONE;     \
        if (stream) {                                                                            \
            const int64_t line_ = 64 / (int64_t)sizeof(mg_##t);                                  \
            while (j + line_ <= (n)) {                                                           \
                AHEAD;                                                                           \
                for (const int64_t end_ = j + line_; j < end_; j += MG_LANES_##t)                \
                    mg_v##t##_stream((o) + j, VEC);                                              \
            }                                                                                    \
        }                                                                                        \
        for (; j + MG_LANES_##t <= (n); j += MG_LANES_##t) mg_v##t##_store((o) + j, VEC);        \
        for (; j < (n); j++) ONE;                                                                \
    } while (0)

#endif /* MG_SIMD_H */
