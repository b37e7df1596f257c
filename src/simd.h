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
 *   mg_vf64_mul(x, y)  x * y
 *   mg_vf64_load_f32(p)      MG_VF64_LANES floats p[0..) widened to double
 *   mg_vf64_store_f32(p, v)  v rounded to float into p[0..MG_VF64_LANES)
 *   mg_vT_fmadd(x, y, z)   x * y + z
 *   mg_T_fmadd(x, y, z)    the same on one scalar
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
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return _mm512_add_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return _mm512_fmadd_ps(x, y, z); }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return _mm512_setzero_pd(); }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return _mm512_set1_pd(x); }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return _mm512_loadu_pd(p); }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { _mm512_storeu_pd(p, v); }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return _mm512_add_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return _mm512_fmadd_pd(x, y, z); }

MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return _mm512_sub_ps(x, y); }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return _mm512_sub_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return _mm512_mul_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
#elif defined(MG_SIMD_AVX2)
#define MG_VF32_LANES 8
#define MG_VF64_LANES 4
typedef __m256 mg_vf32;
typedef __m256d mg_vf64;
MG_INLINE mg_vf32 mg_vf32_zero(void) { return _mm256_setzero_ps(); }
MG_INLINE mg_vf32 mg_vf32_set1(float x) { return _mm256_set1_ps(x); }
MG_INLINE mg_vf32 mg_vf32_load(const float *p) { return _mm256_loadu_ps(p); }
MG_INLINE void mg_vf32_store(float *p, mg_vf32 v) { _mm256_storeu_ps(p, v); }
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return _mm256_add_ps(x, y); }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return _mm256_fmadd_ps(x, y, z); }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return _mm256_setzero_pd(); }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return _mm256_set1_pd(x); }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return _mm256_loadu_pd(p); }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { _mm256_storeu_pd(p, v); }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return _mm256_add_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return _mm256_fmadd_pd(x, y, z); }

MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return _mm256_sub_ps(x, y); }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return _mm256_sub_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return _mm256_mul_pd(x, y); }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
#elif defined(MG_SIMD_NEON)
#define MG_VF32_LANES 4
#define MG_VF64_LANES 2
typedef float32x4_t mg_vf32;
typedef float64x2_t mg_vf64;
MG_INLINE mg_vf32 mg_vf32_zero(void) { return vdupq_n_f32(0.0f); }
MG_INLINE mg_vf32 mg_vf32_set1(float x) { return vdupq_n_f32(x); }
MG_INLINE mg_vf32 mg_vf32_load(const float *p) { return vld1q_f32(p); }
MG_INLINE void mg_vf32_store(float *p, mg_vf32 v) { vst1q_f32(p, v); }
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return vaddq_f32(x, y); }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return vfmaq_f32(z, x, y); }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return vdupq_n_f64(0.0); }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return vdupq_n_f64(x); }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return vld1q_f64(p); }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { vst1q_f64(p, v); }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return vaddq_f64(x, y); }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return vfmaq_f64(z, x, y); }

MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return vsubq_f32(x, y); }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return vsubq_f64(x, y); }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return vmulq_f64(x, y); }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return vcvt_f64_f32(vld1_f32(p)); }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { vst1_f32(p, vcvt_f32_f64(v)); }
#else /* scalar: a "vector" of one element */
#define MG_VF32_LANES 1
#define MG_VF64_LANES 1
typedef float mg_vf32;
typedef double mg_vf64;
MG_INLINE mg_vf32 mg_vf32_zero(void) { return 0.0f; }
MG_INLINE mg_vf32 mg_vf32_set1(float x) { return x; }
MG_INLINE mg_vf32 mg_vf32_load(const float *p) { return *p; }
MG_INLINE void mg_vf32_store(float *p, mg_vf32 v) { *p = v; }
MG_INLINE mg_vf32 mg_vf32_add(mg_vf32 x, mg_vf32 y) { return x + y; }
MG_INLINE mg_vf32 mg_vf32_fmadd(mg_vf32 x, mg_vf32 y, mg_vf32 z) { return x * y + z; }
MG_INLINE mg_vf64 mg_vf64_zero(void) { return 0.0; }
MG_INLINE mg_vf64 mg_vf64_set1(double x) { return x; }
MG_INLINE mg_vf64 mg_vf64_load(const double *p) { return *p; }
MG_INLINE void mg_vf64_store(double *p, mg_vf64 v) { *p = v; }
MG_INLINE mg_vf64 mg_vf64_add(mg_vf64 x, mg_vf64 y) { return x + y; }
MG_INLINE mg_vf64 mg_vf64_fmadd(mg_vf64 x, mg_vf64 y, mg_vf64 z) { return x * y + z; }
MG_INLINE mg_vf32 mg_vf32_sub(mg_vf32 x, mg_vf32 y) { return x - y; }
MG_INLINE mg_vf64 mg_vf64_sub(mg_vf64 x, mg_vf64 y) { return x - y; }
MG_INLINE mg_vf64 mg_vf64_mul(mg_vf64 x, mg_vf64 y) { return x * y; }
MG_INLINE mg_vf64 mg_vf64_load_f32(const float *p) { return (double)*p; }
MG_INLINE void mg_vf64_store_f32(float *p, mg_vf64 v) { *p = (float)v; }
#endif

#endif /* MG_SIMD_H */
