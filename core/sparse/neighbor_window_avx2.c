/* The AVX2 query of a candidate window (sparse/neighbor_window.h): 32
 * candidates a vector of bytes, their d^2 from a table of squares, the
 * counts of d^2 <= t by compare, movemask and popcount, then the counting
 * sort over the bits of the candidates at d^2 <= T, in list order. The same as
 * lt__window_query_ref. */
#include <immintrin.h>
#include "sparse/neighbor_window.h"

_Static_assert(3 + LT_WINDOW_MARGIN < 7 && LT_WINDOW_FAR < 16, "the squares' table covers every |difference|");

/* d^2 of candidates i .. i + 31 from the query (qx, qy, qz): each |d| looked
 * up in a table of squares whose entries past 6 (only the padding's) are 40,
 * so that the padding's d^2 (120) stays a positive byte past every bound. */
static __m256i dist2(const lt_window *w, int64_t i, __m256i qx, __m256i qy, __m256i qz) {
  const __m256i sq = _mm256_setr_epi8(0, 1, 4, 9, 16, 25, 36, 40, 40, 40, 40, 40, 40, 40, 40, 40, 0, 1, 4, 9, 16, 25,
                                      36, 40, 40, 40, 40, 40, 40, 40, 40, 40);
  __m256i x = _mm256_loadu_si256((const __m256i *)(w->x + w->first + i)),
          y = _mm256_loadu_si256((const __m256i *)(w->y + w->first + i)),
          z = _mm256_loadu_si256((const __m256i *)(w->z + w->first + i));
  __m256i dx = _mm256_shuffle_epi8(sq, _mm256_abs_epi8(_mm256_sub_epi8(x, qx)));
  __m256i dy = _mm256_shuffle_epi8(sq, _mm256_abs_epi8(_mm256_sub_epi8(y, qy)));
  __m256i dz = _mm256_shuffle_epi8(sq, _mm256_abs_epi8(_mm256_sub_epi8(z, qz)));
  return _mm256_add_epi8(_mm256_add_epi8(dx, dy), dz);
}

/* The bits of the 64 candidates of d at d^2 < t. */
static uint64_t below_bits(const uint8_t *d, int t) {
  __m256i lo = _mm256_load_si256((const __m256i *)d), hi = _mm256_load_si256((const __m256i *)(d + 32));
  __m256i tv = _mm256_set1_epi8((char)t);
  return (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(tv, lo)) |
         (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(tv, hi)) << 32;
}

/* The candidates at d^2 < t, of the nv blocks of 64. */
static int64_t count_below(const uint8_t *d2, int64_t nv, int t) {
  int64_t n = 0;
  for (int64_t v = 0; v < nv; v++) n += __builtin_popcountll(below_bits(d2 + 64 * v, t));
  return n;
}

/* The counting sort of the candidates at d^2 <= t into row and dist, lane
 * s of `last` the last position of shell s (the candidates at d^2 <= s,
 * less one): in list order (descending row), each placed at its shell's
 * last free position (the counters count down in the byte lanes of a
 * register, where counters in memory would chain through store
 * forwarding). Positions past want go to want - 1: the candidate that
 * belongs there has the lowest row of them, comes after them, and rewrites
 * what they left. */
static void place(const lt_window *w, const uint8_t *d2, int64_t nv, int t, __m128i last, int64_t want, int32_t *row,
                  float *dist) {
  const __m128i iota = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t v = 0; v < nv; v++)
    for (uint64_t m = below_bits(d2 + 64 * v, t + 1); m; m &= m - 1) {
      int64_t i = 64 * v + __builtin_ctzll(m);
      __m128i d = _mm_set1_epi8((char)d2[i]);
      int64_t p = (uint8_t)_mm_cvtsi128_si32(_mm_shuffle_epi8(last, d)), over = p - (want - 1);
      last = _mm_add_epi8(last, _mm_cmpeq_epi8(iota, d));
      p -= over & ~(over >> 63); /* min(p, want - 1) without a branch */
      row[p] = w->row[w->first + i], dist[p] = (float)d2[i];
    }
}

int64_t lt__window_query_avx2(const lt_window *w, int cell, int64_t want, int32_t *row, float *dist) {
  if (want == 0) return 0;
  if (w->n < want) return -1;
  /* the counters of place() are 16 bytes: a k-th at d^2 >= 16 (interior cells, rare) is the shells' */
  int bound = lt__window_bound(cell) < 16 ? lt__window_bound(cell) : 16;
  int64_t nv = (w->n + LT_WINDOW_LANES - 1) / LT_WINDOW_LANES;
  _Alignas(32) uint8_t d2[LT_WINDOW_MOST + LT_WINDOW_LANES];
  __m256i qx = _mm256_set1_epi8((char)(cell >> 4)), qy = _mm256_set1_epi8((char)(cell >> 2 & 3)),
          qz = _mm256_set1_epi8((char)(cell & 3));
  for (int64_t v = 0; v < 2 * nv; v++) _mm256_store_si256((__m256i *)(d2 + 32 * v), dist2(w, 32 * v, qx, qy, qz));
  /* lane s: the candidates at d^2 <= min(s, t), less one (a position: below 256), in registers */
  const __m128i iota = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m128i last = _mm_set1_epi8(-1);
  int t = 0;
  for (;; t++) {
    if (t == bound) return -1; /* the want-th lies at d^2 >= bound: not decided here */
    int64_t seen = count_below(d2, nv, t + 1);
    __m128i from_t = _mm_cmpgt_epi8(iota, _mm_set1_epi8((char)(t - 1)));
    last = _mm_blendv_epi8(last, _mm_set1_epi8((char)(seen - 1)), from_t);
    if (seen >= want) break;
  }
  place(w, d2, nv, t, last, want, row, dist);
  return want;
}
