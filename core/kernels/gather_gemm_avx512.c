/* The gather-GEMM kernels for AVX-512: column blocks of up to 4 zmm (64
 * floats); register tiles of 6 rows x 4 vectors (24 accumulators, 4 weight
 * vectors, a broadcast: 29 of 32 registers), 8 x 3, 10 x 2 and 10 x 1 (10
 * rows, not 12: a row pointer each, and 12 of them leave the loop short of
 * general registers, spilling in its body); and the tile's presence masks
 * and row lists built with vector compares, bit tests and compresses. */
#include "kernels/simd_avx512.h"
#include "kernels/gather_gemm_kernels.h"

/* Bits of up to 32 offsets [k0, k0 + n) of one row of idx: entries >= 0. */
static inline uint32_t row_bits(const int32_t *row, int64_t n) {
  uint32_t bits = 0;
  for (int64_t q = 0; q * 16 < n; q++) {
    __mmask16 live = n - q * 16 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - q * 16)) - 1);
    __m512i v = _mm512_maskz_loadu_epi32(live, row + q * 16);
    bits |= (uint32_t)_mm512_mask_cmpge_epi32_mask(live, v, _mm512_setzero_si512()) << (q * 16);
  }
  return bits;
}

/* lt__ggemm_present, 32 offsets at a time: each row's entries compared 16 at
 * a time into a word of bits per row, then those words turned into a word
 * of rows per offset, 16 rows per vptestmd. */
static inline void present_avx512(uint64_t *present, const int32_t *idx, int64_t K, int64_t rows) {
  uint32_t words[LT_GGEMM_TILE_ROWS] = {0};
  for (int64_t k0 = 0; k0 < K; k0 += 32) {
    int64_t n = K - k0 < 32 ? K - k0 : 32;
    for (int64_t r = 0; r < rows; r++) words[r] = row_bits(idx + r * K + k0, n);
    for (int64_t kk = 0; kk < n; kk++) {
      __m512i bit = _mm512_set1_epi32((int)(1u << kk));
      uint64_t m = 0;
      for (int q = 0; q < LT_GGEMM_TILE_ROWS / 16; q++)
        m |= (uint64_t)_mm512_test_epi32_mask(_mm512_loadu_si512(words + 16 * q), bit) << (16 * q);
      present[k0 + kk] = m;
    }
  }
}

/* lt__ggemm_list, 16 rows per compress (a full store each; the scratch has
 * room past the last slot). */
static inline int64_t list_avx512(uint64_t present, int32_t *tr) {
  int64_t n = 0;
  for (int q = 0; q < LT_GGEMM_TILE_ROWS / 16; q++) {
    __mmask16 m = (__mmask16)(present >> (16 * q));
    __m512i rows = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                    _mm512_set1_epi32(16 * q));
    _mm512_storeu_si512(tr + n, _mm512_maskz_compress_epi32(m, rows));
    n += __builtin_popcount(m);
  }
  return n;
}

#define LT_GGEMM_ROWS          lt__ggemm_rows_avx512
#define LT_GGEMM_WGRAD_OFFSETS lt__ggemm_wgrad_offsets_avx512
#define LT_GGEMM_PRESENT       present_avx512
#define LT_GGEMM_LIST          list_avx512
#define LT_GGEMM_NV_MAX        4
#define LT_GGEMM_MR1           10
#define LT_GGEMM_MR2           10
#define LT_GGEMM_MR3           8
#define LT_GGEMM_MR4           6
#include "kernels/gather_gemm_simd.h"
