/* The tile product of kernels/gemm_tile.h written once over the primitives
 * of the simd_*.h header the including file chose. That file defines:
 *   LT_GEMM_TILE                      the function to define
 *   LT_GT_NV_MAX                      vectors of c per column block (2 or 4)
 *   LT_GT_MR1 .. LT_GT_MR<NV_MAX>     rows per register tile for a block of
 *                                     1 .. NV_MAX vectors
 * A register tile is MR rows x NV vectors of accumulators. Each step of the
 * reduction loads NV vectors of b's row p once and broadcasts one element of
 * a per row against them; the accumulators live in registers for the whole
 * reduction, so c is read and written once per tile. */
#include "kernels/gemm_tile.h"
#include "kernels/gemm_tile_micro.h"

/* All m rows of one column block of nv vectors: tiles of mr rows, then the
 * remainder as tiles of 8, 4, 2 and 1. */
static inline __attribute__((always_inline)) void gt_block_nv(const int nv, const int mr, const int a_trans, int64_t m,
                                                              int64_t k, const float *a, int64_t lda, const float *b,
                                                              int64_t ldb, float *c, int64_t ldc, int accumulate) {
#define GT_A(i) (a_trans ? a + (i) : a + (i)*lda)
  int64_t i = 0;
  for (; i + mr <= m; i += mr) gt_micro(mr, nv, a_trans, k, GT_A(i), lda, b, ldb, c + i * ldc, ldc, accumulate);
  if (mr > 8 && i + 8 <= m) gt_micro(8, nv, a_trans, k, GT_A(i), lda, b, ldb, c + i * ldc, ldc, accumulate), i += 8;
  if (mr > 4 && i + 4 <= m) gt_micro(4, nv, a_trans, k, GT_A(i), lda, b, ldb, c + i * ldc, ldc, accumulate), i += 4;
  if (i + 2 <= m) gt_micro(2, nv, a_trans, k, GT_A(i), lda, b, ldb, c + i * ldc, ldc, accumulate), i += 2;
  if (i < m) gt_micro(1, nv, a_trans, k, GT_A(i), lda, b, ldb, c + i * ldc, ldc, accumulate);
#undef GT_A
}

static inline __attribute__((always_inline)) void gt_block(const int a_trans, int nv, int64_t m, int64_t k,
                                                           const float *a, int64_t lda, const float *b, int64_t ldb,
                                                           float *c, int64_t ldc, int accumulate) {
  if (nv == 1) gt_block_nv(1, LT_GT_MR1, a_trans, m, k, a, lda, b, ldb, c, ldc, accumulate);
  if (nv == 2) gt_block_nv(2, LT_GT_MR2, a_trans, m, k, a, lda, b, ldb, c, ldc, accumulate);
#if LT_GT_NV_MAX >= 4
  if (nv == 3) gt_block_nv(3, LT_GT_MR3, a_trans, m, k, a, lda, b, ldb, c, ldc, accumulate);
  if (nv == 4) gt_block_nv(4, LT_GT_MR4, a_trans, m, k, a, lda, b, ldb, c, ldc, accumulate);
#endif
}

void LT_GEMM_TILE(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, int a_trans, const float *b,
                  int64_t ldb, float *c, int64_t ldc, int accumulate) {
  for (int64_t col = 0; col < n; col += LT_GT_NV_MAX * LT_W) {
    int64_t nv = (n - col) / LT_W;
    if (nv > LT_GT_NV_MAX) nv = LT_GT_NV_MAX;
    if (a_trans)
      gt_block(1, (int)nv, m, k, a, lda, b + col, ldb, c + col, ldc, accumulate);
    else
      gt_block(0, (int)nv, m, k, a, lda, b + col, ldb, c + col, ldc, accumulate);
  }
}
