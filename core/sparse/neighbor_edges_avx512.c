/* A kNN query's edge marks with AVX-512 (sparse/neighbor_shells.h): each
 * 64-byte line of query_row and neighbor_id that a query fills whole is
 * written by a streaming store, the rest by masked ones. The walk writes
 * these lines once and reads none of them, so an ordinary store's fetch of
 * the line it overwrites is traffic spent for nothing: two of kNN's four edge
 * arrays, half of the relation's bytes, at k = 16. */
#include <immintrin.h>
#include "sparse/neighbor_shells.h"

void lt__edges_mark_avx512(int32_t *query_row, int32_t *neighbor_id, int32_t i, int64_t n) {
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  __m512i q = _mm512_set1_epi32(i);
  for (int64_t j = 0; j < n; j += 16) {
    __m512i rank = _mm512_add_epi32(iota, _mm512_set1_epi32((int32_t)j));
    int whole = n - j >= 16 && !((uintptr_t)(query_row + j) & 63) && !((uintptr_t)(neighbor_id + j) & 63);
    if (whole) {
      _mm512_stream_si512((__m512i *)(query_row + j), q);
      _mm512_stream_si512((__m512i *)(neighbor_id + j), rank);
    } else {
      __mmask16 m = (__mmask16)(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1);
      _mm512_mask_storeu_epi32(query_row + j, m, q);
      _mm512_mask_storeu_epi32(neighbor_id + j, m, rank);
    }
  }
}

void lt__edges_fence_avx512(void) { _mm_sfence(); }
