/* cpu/matmul.c - the kernels of the Goto/BLIS matrix multiplication.
 *
 * C = A . B with A (M,K), B (K,N) is computed by api_matmul.c in blocks:
 *
 *   for jc in steps of nc:            B panel kc x nc, packed  (stays in L3)
 *     for pc in steps of kc:
 *       pack B(pc:pc+kc, jc:jc+nc)
 *       for ic in steps of mc:        A block mc x kc, packed  (stays in L2)
 *         pack A(ic:ic+mc, pc:pc+kc)
 *         macro-kernel: for each NR sliver of B (L1), for each MR panel of A:
 *           micro-kernel: MR x NR tile of C += panel . sliver, in registers
 *
 * This file holds the per-ISA pieces (packing, macro/micro-kernel, and a
 * direct kernel for small products); their code is in matmul_template.h,
 * included once per dtype. The micro-tile fills the vector registers: MR*NV
 * accumulators, NV vectors of B and one broadcast of A.
 *   scalar   4 x 4   (f32 and f64)           plain C, the reference
 *   avx2     6 x 16 f32, 6 x 8 f64            12 of 16 ymm accumulators
 *   avx512  12 x 32 f32, 12 x 16 f64          24 of 32 zmm accumulators
 *   neon     8 x 8 f32, 8 x 4 f64             16 of 32 q accumulators (GCC keeps
 *                                             the 8 values of A in 8 more)
 * Cache blocks: an A block mc x kc fills about half of L2, a B sliver
 * kc x NR about half of L1, a B panel kc x nc a few MiB of L3 (tuned on
 * AMD Zen 3 for avx2: L1d 32 KiB, L2 512 KiB per core). */
#include "kernels.h"
#include "simd.h"

#if defined(MG_SIMD_AVX512)
enum { MR_F32 = 12, NV_F32 = 2, MC_F32 = 144, KC_F32 = 256, NC_F32 = 4096,
       MR_F64 = 12, NV_F64 = 2, MC_F64 = 72, KC_F64 = 256, NC_F64 = 2048 };
#elif defined(MG_SIMD_AVX2)
enum { MR_F32 = 6, NV_F32 = 2, MC_F32 = 144, KC_F32 = 256, NC_F32 = 4080,
       MR_F64 = 6, NV_F64 = 2, MC_F64 = 72, KC_F64 = 256, NC_F64 = 4080 };
#elif defined(MG_SIMD_NEON)
enum { MR_F32 = 8, NV_F32 = 2, MC_F32 = 128, KC_F32 = 256, NC_F32 = 3072,
       MR_F64 = 8, NV_F64 = 2, MC_F64 = 64, KC_F64 = 256, NC_F64 = 3072 };
#else
enum { MR_F32 = 4, NV_F32 = 4, MC_F32 = 128, KC_F32 = 256, NC_F32 = 1024,
       MR_F64 = 4, NV_F64 = 4, MC_F64 = 64, KC_F64 = 256, NC_F64 = 1024 };
#endif

#define T float
#define VEC mg_vf32
#define V(op) mg_vf32_##op
#define S_FMADD mg_f32_fmadd
#define LANES MG_VF32_LANES
#define MR MR_F32
#define NV NV_F32
#define FN(name) name##_f32
#ifdef MG_HAVE_TRANSPOSE8_F32
#define TRANSPOSE8 mg_f32_transpose8
#endif
#include "matmul_template.h"
#undef TRANSPOSE8
#undef T
#undef VEC
#undef V
#undef S_FMADD
#undef LANES
#undef MR
#undef NV
#undef FN

#define T double
#define VEC mg_vf64
#define V(op) mg_vf64_##op
#define S_FMADD mg_f64_fmadd
#define LANES MG_VF64_LANES
#define MR MR_F64
#define NV NV_F64
#define FN(name) name##_f64
#include "matmul_template.h"
#undef T
#undef VEC
#undef V
#undef S_FMADD
#undef LANES
#undef MR
#undef NV
#undef FN

void MG_ISA_FN(mg_fill_matmul)(mg_kernel_table *t) {
    t->gemm[0] = (mg_gemm_kernels){MR_F32, NV_F32 * MG_VF32_LANES, MC_F32, KC_F32, NC_F32,
                                   pack_a_f32, pack_b_f32, macro_f32, small_f32};
    t->gemm[1] = (mg_gemm_kernels){MR_F64, NV_F64 * MG_VF64_LANES, MC_F64, KC_F64, NC_F64,
                                   pack_a_f64, pack_b_f64, macro_f64, small_f64};
}
