/* The register tile of the tile product (gemm_tile_simd.h) and of the
 * dense sgemm's macro-kernel (sgemm_simd.h), written once over the
 * primitives of the simd_*.h header the including file chose:
 *
 *   c (mr rows, nv vectors, ldc apart) [+]= sum_{p < k} a(r, p) * b(p, :)
 *
 * a(r, p) is a[r*lda + p], or a[p*lda + r] with a_trans (a packed panel of
 * the sgemm is a_trans with lda = MR); b's row p is nv whole vectors at
 * b + p*ldb. Each element of c is one fused multiply-add chain over p
 * ascending from c (accumulate) or zero: the bits of a plain fmaf loop. */
#ifndef LATTICE_KERNELS_GEMM_TILE_MICRO_H
#define LATTICE_KERNELS_GEMM_TILE_MICRO_H

#include <stdint.h>

#define LT_GT_MR_MAX 14
#define LT_GT_NV_ARR 4

/* acc (mr rows of c, nv vectors) [+]= sum_{p < k} a(r, p) * b[p*ldb .. + nv*LT_W).
 * mr, nv and a_trans are constants at every call (always_inline), so the
 * accumulators are registers and each a(r, p) is one broadcast load. */
static inline __attribute__((always_inline)) void gt_micro(const int mr, const int nv, const int a_trans, int64_t k,
                                                           const float *a, int64_t lda, const float *b, int64_t ldb,
                                                           float *c, int64_t ldc, int accumulate) {
  vf acc[LT_GT_MR_MAX][LT_GT_NV_ARR];
  for (int r = 0; r < mr; r++)
    for (int v = 0; v < nv; v++) acc[r][v] = accumulate ? vload(c + r * ldc + v * LT_W) : vset(0.0f);
  for (int64_t p = 0; p < k; p++) {
    vf bv[LT_GT_NV_ARR];
    for (int v = 0; v < nv; v++) bv[v] = vload(b + p * ldb + v * LT_W);
    const float *ap = a_trans ? a + p * lda : a + p; /* a(r, p) at ap[r] or ap[r * lda] */
    for (int r = 0; r < mr; r++) {
      vf av = vset(a_trans ? ap[r] : ap[r * lda]);
      for (int v = 0; v < nv; v++) acc[r][v] = vfma(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < mr; r++)
    for (int v = 0; v < nv; v++) vstore(c + r * ldc + v * LT_W, acc[r][v]);
}

#endif
