/* cpu/matmul_template.h - the GEMM pieces for one dtype. cpu/matmul.c
 * includes this file once per dtype, with these defined:
 *   T          float or double
 *   VEC        the simd.h vector of T (mg_vf32 or mg_vf64)
 *   V(op)      the simd.h vector op for T  (V(fmadd) -> mg_vf32_fmadd)
 *   S_FMADD    the simd.h scalar fmadd for T
 *   LANES      elements per VEC
 *   MR, NV     micro-tile: MR rows by NR = NV * LANES columns
 *   FN(name)   name with the dtype suffix  (FN(pack_a) -> pack_a_f32)
 *   TRANSPOSE8 (optional) an 8 x 8 block transpose of T, as mg_f32_transpose8
 *
 * Notation: A is m x k, B is k x n, C is m x n. A(i,p) = a[i*rs + p*cs] and
 * B(p,j) = b[p*rs + j*cs] at any element strides (transposed, negative);
 * C(i,j) = c[i*ldc + j]. Every C element is a sum over p IN ORDER, one
 * fused multiply-add per step (separate multiply and add on the scalar
 * path), so its bits depend on the blocking of p only (see api_matmul.c). */

#define NR (NV * LANES)

/* Packs the mc x kc block of A into micro-panels of MR rows:
 *   ap[q*MR*kc + p*MR + i] = A(q*MR + i, p), and 0 for rows >= mc,
 * so the micro-kernel reads MR values of A per step, contiguously. */
static void FN(pack_a)(int64_t mc, int64_t kc, const void *a_, int64_t rs, int64_t cs, void *ap_) {
    const T *a = a_;
    T *ap = ap_;
    for (int64_t q = 0; q < mc; q += MR, ap += MR * kc) {
        const int rows = mc - q < MR ? (int)(mc - q) : MR;
        const T *src = a + q * rs;
        if (rows == MR && rs == 1) {          /* column-major A: MR contiguous values per p */
            for (int64_t p = 0; p < kc; p++)
                for (int i = 0; i < MR; i++) ap[p * MR + i] = src[p * cs + i];
            continue;
        }
        if (rows == MR && cs == 1) {          /* row-major A: MR rows read side by side */
            const T *row[MR];
            for (int i = 0; i < MR; i++) row[i] = src + i * rs;
            for (int64_t p = 0; p < kc; p++)
#pragma GCC unroll 16
                for (int i = 0; i < MR; i++) ap[p * MR + i] = row[i][p];
            continue;
        }
        for (int64_t p = 0; p < kc; p++) {
            for (int i = 0; i < rows; i++) ap[p * MR + i] = src[i * rs + p * cs];
            for (int i = rows; i < MR; i++) ap[p * MR + i] = 0;
        }
    }
}

/* Packs the kc x nc panel of B into slivers of NR columns:
 *   bp[s*NR*kc + p*NR + j] = B(p, s*NR + j), and 0 for columns >= nc. */
static void FN(pack_b)(int64_t kc, int64_t nc, const void *b_, int64_t rs, int64_t cs, void *bp_) {
    const T *b = b_;
    T *bp = bp_;
    for (int64_t s = 0; s < nc; s += NR, bp += NR * kc) {
        const int cols = nc - s < NR ? (int)(nc - s) : NR;
        const T *src = b + s * cs;
        if (cols == NR && cs == 1) {          /* row-major B: NR contiguous values per p */
            for (int64_t p = 0; p < kc; p++)
                for (int j = 0; j < NR; j++) bp[p * NR + j] = src[p * rs + j];
            continue;
        }
        int64_t p = 0;
#ifdef TRANSPOSE8
        if (cols == NR && rs == 1)            /* column-major B (x @ W^T): 8 x 8 blocks turned */
            for (; p + 8 <= kc; p += 8)
                for (int j = 0; j < NR; j += 8) TRANSPOSE8(src + j * cs + p, cs, bp + p * NR + j, NR);
#endif
        for (; p < kc; p++) {
            for (int j = 0; j < cols; j++) bp[p * NR + j] = src[p * rs + j * cs];
            for (int j = cols; j < NR; j++) bp[p * NR + j] = 0;
        }
    }
}

/* The micro-kernel: an MR x NR tile of C from one A micro-panel and one B
 * sliver, the accumulators held in MR*NV vector registers:
 *   acc(i,j) = sum_{p<kc} ap[p*MR + i] * bp[p*NR + j]   (fmadd from 0, p in order)
 *   C(i,j) = acc(i,j)            if !add
 *   C(i,j) = C(i,j) + acc(i,j)   if add        (C rows ldc apart) */
MG_INLINE void FN(micro)(int64_t kc, const T *restrict ap, const T *restrict bp,
                         T *restrict c, int64_t ldc, int add) {
    VEC acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = V(zero)();
    for (int i = 0; i < MR; i++) __builtin_prefetch(c + i * ldc, 1);
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++, ap += MR, bp += NR) {
        VEC bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) bv[v] = V(load)(bp + v * LANES);
#pragma GCC unroll 32
        for (int i = 0; i < MR; i++) {
            const VEC av = V(set1)(ap[i]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = V(fmadd)(av, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            T *cij = c + i * ldc + v * LANES;
            V(store)(cij, add ? V(add)(V(load)(cij), acc[i][v]) : acc[i][v]);
        }
}

/* The macro-kernel: C[0..mc)[0..nc) (=, or += if add) Ap . Bp, where Ap is
 * a packed mc x kc block of A and Bp a packed kc x nc panel of B. Each B
 * sliver stays in L1 while the A micro-panels stream past it from L2. Edge
 * tiles are computed whole (the packed panels are zero-padded) into a local
 * tile and only their valid part is written, with the same c + acc add. */
static void FN(macro)(int64_t mc, int64_t nc, int64_t kc, const void *ap_, const void *bp_,
                      void *c_, int64_t ldc, int add) {
    const T *ap0 = ap_, *bp0 = bp_;
    T *c0 = c_;
    for (int64_t j = 0; j < nc; j += NR) {
        const T *bp = bp0 + j * kc;
        const int cols = nc - j < NR ? (int)(nc - j) : NR;
        for (int64_t i = 0; i < mc; i += MR) {
            const T *ap = ap0 + i * kc;
            const int rows = mc - i < MR ? (int)(mc - i) : MR;
            T *c = c0 + i * ldc + j;
            if (rows == MR && cols == NR) {
                FN(micro)(kc, ap, bp, c, ldc, add);
                continue;
            }
            T tile[MR * NR];
            FN(micro)(kc, ap, bp, tile, NR, 0);
            for (int r = 0; r < rows; r++)
                for (int q = 0; q < cols; q++)
                    c[r * ldc + q] = add ? c[r * ldc + q] + tile[r * NR + q] : tile[r * NR + q];
        }
    }
}

/* c[0] = sum_{p<k} a[p] * b[p], both contiguous: 4 vectors of partial sums
 * over p = v*LANES + lane (mod 4*LANES), added up in a fixed order. */
static T FN(dot)(int64_t k, const T *a, const T *b) {
    VEC acc[4] = {V(zero)(), V(zero)(), V(zero)(), V(zero)()};
    int64_t p = 0;
    for (; p + 4 * LANES <= k; p += 4 * LANES)
        for (int v = 0; v < 4; v++) acc[v] = V(fmadd)(V(load)(a + p + v * LANES), V(load)(b + p + v * LANES), acc[v]);
    T lanes[LANES], sum = 0;
    V(store)(lanes, V(add)(V(add)(acc[0], acc[1]), V(add)(acc[2], acc[3])));
    for (int l = 0; l < LANES; l++) sum += lanes[l];
    for (; p < k; p++) sum = S_FMADD(a[p], b[p], sum);
    return sum;
}

/* The direct path for small or skinny products, no packing: B rows
 * contiguous (B(p,j) = b[p*brs + j]) and
 *   C(i,j) = (accumulate ? C(i,j) : 0) + sum_{p<k} A(i,p) * B(p,j)
 * added by fmadd in the order p = 0, 1, ..., whichever lane holds j; the
 * columns of a narrow C are summed in registers over all p, BLOCK vectors
 * of one row at a time, then the last whole vectors for SMALL_ROWS rows at a
 * time (so that several sums run side by side instead of each waiting on
 * its last fmadd); those of a wide C row by row of B (streaming B, C's row
 * in L1): the same order. A matrix-vector product (n = 1, contiguous A rows
 * and b) uses dot. */
#define SMALL_BLOCK 4
#define SMALL_ROWS 4
#define SMALL_WIDE 256

/* C(i + r, j..n) for r < SMALL_ROWS, the whole vectors of columns from j on. */
static void FN(small_rows)(int64_t n, int64_t k, const T *a, int64_t ars, int64_t acs, const T *b,
                           int64_t brs, T *c, int64_t ldc, int accumulate, int64_t j) {
    for (; j + LANES <= n; j += LANES) {
        VEC acc[SMALL_ROWS];
        for (int r = 0; r < SMALL_ROWS; r++) acc[r] = accumulate ? V(load)(c + r * ldc + j) : V(zero)();
        for (int64_t p = 0; p < k; p++) {
            const VEC bv = V(load)(b + p * brs + j);
            for (int r = 0; r < SMALL_ROWS; r++) acc[r] = V(fmadd)(V(set1)(a[r * ars + p * acs]), bv, acc[r]);
        }
        for (int r = 0; r < SMALL_ROWS; r++) V(store)(c + r * ldc + j, acc[r]);
    }
}

static void FN(small)(int64_t m, int64_t n, int64_t k, const void *a_, int64_t ars, int64_t acs,
                      const void *b_, int64_t brs, void *c_, int64_t ldc, int accumulate) {
    const T *a = a_, *b = b_;
    T *c = c_;
    const int64_t grouped = n / (SMALL_BLOCK * LANES) * (SMALL_BLOCK * LANES);   /* columns in blocks */
    const int64_t vectors_end = n / LANES * LANES;
    const int64_t rows_in_groups = m / SMALL_ROWS * SMALL_ROWS;
    for (int64_t i = 0; i < m; i++) {
        const T *ai = a + i * ars;
        T *ci = c + i * ldc;
        if (n == 1 && acs == 1 && brs == 1) {
            ci[0] = (accumulate ? ci[0] : 0) + FN(dot)(k, ai, b);
            continue;
        }
        if (n >= SMALL_WIDE) {
            if (!accumulate)
                for (int64_t j = 0; j < n; j++) ci[j] = 0;
            for (int64_t p = 0; p < k; p++) {
                const VEC av = V(set1)(ai[p * acs]);
                const T *bp = b + p * brs;
                int64_t j = 0;
                for (; j + LANES <= n; j += LANES) V(store)(ci + j, V(fmadd)(av, V(load)(bp + j), V(load)(ci + j)));
                for (; j < n; j++) ci[j] = S_FMADD(ai[p * acs], bp[j], ci[j]);
            }
            continue;
        }
        int64_t j = 0;
        for (; j < grouped; j += SMALL_BLOCK * LANES) {
            VEC acc[SMALL_BLOCK];
            for (int v = 0; v < SMALL_BLOCK; v++) acc[v] = accumulate ? V(load)(ci + j + v * LANES) : V(zero)();
            for (int64_t p = 0; p < k; p++) {
                const VEC av = V(set1)(ai[p * acs]);
                const T *bj = b + p * brs + j;
                for (int v = 0; v < SMALL_BLOCK; v++) acc[v] = V(fmadd)(av, V(load)(bj + v * LANES), acc[v]);
            }
            for (int v = 0; v < SMALL_BLOCK; v++) V(store)(ci + j + v * LANES, acc[v]);
        }
        if (i < rows_in_groups) {   /* this row's last whole vectors: done with its group's first row */
            if (i % SMALL_ROWS == 0) FN(small_rows)(n, k, ai, ars, acs, b, brs, ci, ldc, accumulate, j);
            j = vectors_end;
        }
        for (; j + LANES <= n; j += LANES) {
            VEC acc = accumulate ? V(load)(ci + j) : V(zero)();
            for (int64_t p = 0; p < k; p++) acc = V(fmadd)(V(set1)(ai[p * acs]), V(load)(b + p * brs + j), acc);
            V(store)(ci + j, acc);
        }
        for (; j < n; j++) {
            T acc = accumulate ? ci[j] : 0;
            for (int64_t p = 0; p < k; p++) acc = S_FMADD(ai[p * acs], b[p * brs + j], acc);
            ci[j] = acc;
        }
    }
}

#undef SMALL_BLOCK
#undef SMALL_ROWS
#undef SMALL_WIDE
#undef NR
