/* The dense sgemm's macro-kernel with AVX-512: a 14 x 32 register tile,
 * 28 accumulators beside 2 b vectors and one broadcast in 32 registers.
 * The packs that transpose (a row-major, b given transposed: a linear
 * layer's forward) go through 16 x 16 register transposes (vtranspose,
 * simd_avx512.h); the others are sgemm_pack.h's copies. */
#include "kernels/simd_avx512.h"

#define LT_SGEMM_MACRO  lt__sgemm_macro_avx512
#define LT_SGEMM_SMALL  lt__sgemm_small_avx512
#define LT_SGEMM_PACK_A lt__sgemm_pack_a_avx512
#define LT_SGEMM_PACK_B lt__sgemm_pack_b_avx512
#define LT_SG_MR        14
#define LT_SG_NV        2
#define LT_SG_OWN_PACK
#include "kernels/sgemm_simd.h"

/* 16 columns p .. p+15 of `rows` (<= 16) rows s + r*ld, times scale, as 16
 * vectors (one per column; lanes past `rows` zero). */
static inline void load_columns(__m512 r[16], const float *s, int64_t ld, int64_t rows, float scale) {
  __m512 k = _mm512_set1_ps(scale);
  for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_mul_ps(k, _mm512_loadu_ps(s + i * ld)) : _mm512_setzero_ps();
  vtranspose(r);
}

void LT_SGEMM_PACK_A(const lt__sgemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
  if (g->ta) {
    sg_pack_a(LT_SG_MR, g, i0, mc, p0, kc, dst);
    return;
  }
  for (int64_t ip = 0; ip < mc; ip += LT_SG_MR) {
    int64_t rows = sg_min(LT_SG_MR, mc - ip), p = 0;
    const float *s = g->a + (i0 + ip) * g->lda + p0;
    float *d = dst + ip * kc;
    for (; p + 16 <= kc; p += 16) {
      __m512 r[16];
      load_columns(r, s + p, g->lda, rows, g->alpha);
      for (int q = 0; q < 16; q++) _mm512_mask_storeu_ps(d + (p + q) * LT_SG_MR, (__mmask16)0x3FFF, r[q]);
    }
    for (; p < kc; p++)
      for (int64_t r = 0; r < rows; r++) d[p * LT_SG_MR + r] = g->alpha * s[r * g->lda + p];
  }
}

void LT_SGEMM_PACK_B(const lt__sgemm_args *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *dst) {
  if (!g->tb) {
    sg_pack_b(LT_SG_NR, g, p0, kc, j0, nc, dst);
    return;
  }
  for (int64_t jp = 0; jp < nc; jp += LT_SG_NR) {
    int64_t cols = sg_min(LT_SG_NR, nc - jp), p = 0;
    float *d = dst + jp * kc;
    if (cols < LT_SG_NR) {
      sg_pack_b(LT_SG_NR, g, p0, kc, j0 + jp, cols, d);
      continue;
    }
    const float *s = g->b + (j0 + jp) * g->ldb + p0;
    for (; p + 16 <= kc; p += 16)
      for (int h = 0; h < LT_SG_NR; h += 16) {
        __m512 r[16];
        load_columns(r, s + h * g->ldb + p, g->ldb, 16, 1.0f);
        for (int q = 0; q < 16; q++) _mm512_storeu_ps(d + (p + q) * LT_SG_NR + h, r[q]);
      }
    for (; p < kc; p++)
      for (int64_t j = 0; j < LT_SG_NR; j++) d[p * LT_SG_NR + j] = s[j * g->ldb + p];
  }
}
