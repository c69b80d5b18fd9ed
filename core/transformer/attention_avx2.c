/* The attention kernels with AVX2 (8 lanes): forward tiles of 16 queries,
 * backward tiles of 32 keys. */
#include "kernels/simd_avx2.h"

/* dst[c*ldd + r] = src[r*lds + c] * (ds ? ds[c] : 1) for an 8 x 8 block:
 * unpacks within 128-bit lanes, then the lanes swapped; 24 shuffles. */
static inline void att_transpose_block(const float *src, int64_t lds, float *dst, int64_t ldd, const float *ds) {
  __m256 r[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) { /* r[i + c], lane L: column 4L + c of rows i .. i + 3 */
    __m256d a = _mm256_castps_pd(u[i]), b = _mm256_castps_pd(u[i + 1]);
    __m256d c = _mm256_castps_pd(u[i + 2]), d = _mm256_castps_pd(u[i + 3]);
    r[i] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));
    r[i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));
    r[i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));
    r[i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));
  }
  for (int c = 0; c < 4; c++) {
    u[c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x20);
    u[4 + c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x31);
  }
  for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + i * ldd, ds ? _mm256_mul_ps(u[i], _mm256_set1_ps(ds[i])) : u[i]);
}

/* out[i] = the sum of the 8 floats of row i of src (8 x 8, rows lds apart):
 * a tree of adds over shuffles; 14 shuffles and 7 adds for 8 sums. */
static inline void att_row_sums(const float *src, int64_t lds, float *out) {
  __m256 r[8], s1[4], s2[2];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 4; i++)
    s1[i] = _mm256_add_ps(_mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]), _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]));
  for (int i = 0; i < 2; i++) {
    __m256d a = _mm256_castps_pd(s1[2 * i]), b = _mm256_castps_pd(s1[2 * i + 1]);
    s2[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)), _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
  }
  _mm256_storeu_ps(
      out, _mm256_add_ps(_mm256_permute2f128_ps(s2[0], s2[1], 0x20), _mm256_permute2f128_ps(s2[0], s2[1], 0x31)));
}

#define LT_ATT_KERNELS lt__attn_avx2
#define LT_ATT_ISA     LT_ISA_AVX2
#define LT_ATT_GEMM    lt__gemm_tile_avx2
#include "transformer/attention_simd.h"
