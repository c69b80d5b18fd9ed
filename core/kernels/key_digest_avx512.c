/* The key digest kernel with AVX-512: 8 keys (two vectors) a step, their
 * (x, y) and (z, batch) pairs as 64-bit lanes by two permutes, the products
 * by vpmullq. */
#include <immintrin.h>
#include "kernels/key_digest.h"

void lt__key_digests_avx512(uint64_t *out, const int32_t *key, int64_t n) {
  /* key i's int32 j at 4 i + j of the two vectors */
  const __m512i xy = _mm512_set_epi32(30, 29, 26, 25, 22, 21, 18, 17, 14, 13, 10, 9, 6, 5, 2, 1);
  const __m512i zb = _mm512_set_epi32(28, 31, 24, 27, 20, 23, 16, 19, 12, 15, 8, 11, 4, 7, 0, 3);
  const __m512i c1 = _mm512_set1_epi64((long long)LT_DIGEST_C1), c2 = _mm512_set1_epi64((long long)LT_DIGEST_C2),
                c3 = _mm512_set1_epi64((long long)LT_DIGEST_C3);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i k0 = _mm512_loadu_si512(key + 4 * i), k1 = _mm512_loadu_si512(key + 4 * i + 16);
    __m512i a = _mm512_mullo_epi64(_mm512_permutex2var_epi32(k0, xy, k1), c1);
    __m512i b = _mm512_mullo_epi64(_mm512_permutex2var_epi32(k0, zb, k1), c2);
    __m512i h = _mm512_add_epi64(a, _mm512_rol_epi64(b, 31));
    h = _mm512_mullo_epi64(_mm512_xor_si512(h, _mm512_srli_epi64(h, 32)), c3);
    _mm512_storeu_si512(out + i, _mm512_xor_si512(h, _mm512_srli_epi64(h, 32)));
  }
  lt__key_digests_ref(out + i, key + 4 * i, n - i);
}
