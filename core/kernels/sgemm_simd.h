/* The dense sgemm's macro-kernel (kernels/sgemm.h) written once over the
 * primitives of the simd_*.h header the including file chose. That file
 * defines:
 *   LT_SGEMM_MACRO, LT_SGEMM_SMALL,  the functions to define
 *   LT_SGEMM_PACK_A, LT_SGEMM_PACK_B
 *   LT_SG_MR, LT_SG_NV               the register tile: MR rows x NV vectors
 *   LT_SG_OWN_PACK (optional)        when it defines the packs itself
 * The tile is gemm_tile's microkernel (gemm_tile_micro.h) reading packed
 * panels: a panel's column p is MR floats (a_trans, lda = MR), b's row p
 * NR = NV * LT_W floats. Edge tiles run on a copy of c's corner, padded to
 * the full tile, so that the tile always reads and writes whole vectors. */
#include <string.h>
#include "kernels/gemm_tile_micro.h"
#include "kernels/sgemm_pack.h"
#include "kernels/sgemm_plain.h"

#define LT_SG_NR (LT_SG_NV * LT_W)

/* One tile of mr (<= MR, a constant here) rows; nr columns through a copy
 * when short. With a bias the tile's rows are set to it just before the
 * tile adds to them: in L1, by the thread that reads them back. */
static inline __attribute__((always_inline)) void sg_tile(const int mr, int64_t nr, int64_t kc, const float *ap,
                                                          const float *bp, float *c, int64_t ldc, int accumulate,
                                                          const float *bias) {
  if (nr == LT_SG_NR) {
    for (int r = 0; r < mr && bias; r++) memcpy(c + r * ldc, bias, LT_SG_NR * sizeof(float));
    gt_micro(mr, LT_SG_NV, 1, kc, ap, LT_SG_MR, bp, LT_SG_NR, c, ldc, accumulate || bias);
    return;
  }
  float t[LT_SG_MR * LT_SG_NR] __attribute__((aligned(64)));
  for (int r = 0; r < mr && (accumulate || bias); r++)
    memcpy(t + r * LT_SG_NR, bias ? bias : c + r * ldc, (size_t)nr * sizeof(float));
  gt_micro(mr, LT_SG_NV, 1, kc, ap, LT_SG_MR, bp, LT_SG_NR, t, LT_SG_NR, accumulate || bias);
  for (int r = 0; r < mr; r++) memcpy(c + r * ldc, t + r * LT_SG_NR, (size_t)nr * sizeof(float));
}

/* The last, short row panel: mr rows, each count its own instance of the tile. */
static void sg_tile_rows(int64_t mr, int64_t nr, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                         int accumulate, const float *bias) {
  switch (mr) {
#define SG_CASE(R) \
  case R: sg_tile(R, nr, kc, ap, bp, c, ldc, accumulate, bias); break;
    SG_CASE(1)
    SG_CASE(2)
    SG_CASE(3)
    SG_CASE(4) SG_CASE(5)
#if LT_SG_MR == 14
        SG_CASE(6) SG_CASE(7) SG_CASE(8) SG_CASE(9) SG_CASE(10) SG_CASE(11) SG_CASE(12) SG_CASE(13)
#elif LT_SG_MR != 6
#error "sgemm_simd.h: LT_SG_MR must be 6 or 14"
#endif
#undef SG_CASE
            default : break;
  }
}

/* The next tile's rows of c (up to `rows` of them) on their way to L1 while
 * this tile runs: its loads at the start would otherwise stall on L3. */
static inline void sg_prefetch_c(const float *c, int64_t ldc, int64_t rows) {
  for (int64_t r = 0; r < rows && r < LT_SG_MR; r++)
    for (int v = 0; v < LT_SG_NR; v += 16) __builtin_prefetch(c + r * ldc + v, 1, 3);
}

void LT_SGEMM_MACRO(int64_t mc, int64_t nc, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                    int accumulate, const float *bias) {
  for (int64_t j = 0; j < nc; j += LT_SG_NR) {
    int64_t nr = nc - j < LT_SG_NR ? nc - j : LT_SG_NR;
    const float *bj = bp + j * kc, *biasj = bias ? bias + j : NULL;
    int64_t i = 0;
    for (; i + LT_SG_MR <= mc; i += LT_SG_MR) {
      sg_prefetch_c(c + (i + LT_SG_MR) * ldc + j, ldc, mc - i - LT_SG_MR);
      sg_tile(LT_SG_MR, nr, kc, ap + i * kc, bj, c + i * ldc + j, ldc, accumulate, biasj);
    }
    if (i < mc) sg_tile_rows(mc - i, nr, kc, ap + i * kc, bj, c + i * ldc + j, ldc, accumulate, biasj);
  }
}

void LT_SGEMM_SMALL(const lt__sgemm_args *g) { sgemm_plain(g); }

#ifndef LT_SG_OWN_PACK /* else the including file has transposing packs of its own */
void LT_SGEMM_PACK_A(const lt__sgemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
  sg_pack_a(LT_SG_MR, g, i0, mc, p0, kc, dst);
}

void LT_SGEMM_PACK_B(const lt__sgemm_args *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *dst) {
  sg_pack_b(LT_SG_NR, g, p0, kc, j0, nc, dst);
}
#endif
