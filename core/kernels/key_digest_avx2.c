/* The key digest kernel with AVX2: 4 keys (two vectors) a step, their
 * (x, y) and (z, batch) pairs as 64-bit lanes by unpacks, each 64-bit
 * product by a constant from three 32 x 32 -> 64 ones (AVX2 has no 64-bit
 * multiply). */
#include <immintrin.h>
#include "kernels/key_digest.h"

/* v * c mod 2^64, c = (chi, clo) as two 32-bit halves in every lane */
static inline __m256i mul64(__m256i v, __m256i clo, __m256i chi) {
  __m256i lo = _mm256_mul_epu32(v, clo);
  __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(v, 32), clo), _mm256_mul_epu32(v, chi));
  return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

void lt__key_digests_avx2(uint64_t *out, const int32_t *key, int64_t n) {
  const __m256i c1l = _mm256_set1_epi64x((long long)(LT_DIGEST_C1 & 0xffffffffu)),
                c1h = _mm256_set1_epi64x((long long)(LT_DIGEST_C1 >> 32)),
                c2l = _mm256_set1_epi64x((long long)(LT_DIGEST_C2 & 0xffffffffu)),
                c2h = _mm256_set1_epi64x((long long)(LT_DIGEST_C2 >> 32)),
                c3l = _mm256_set1_epi64x((long long)(LT_DIGEST_C3 & 0xffffffffu)),
                c3h = _mm256_set1_epi64x((long long)(LT_DIGEST_C3 >> 32));
  int64_t i = 0;
  /* within each key: (batch, x, y, z) -> (x, y, z, batch), so its low
   * 64 bits are (x, y) and its high ones (z, batch) */
  const __m256i order = _mm256_set_epi32(4, 7, 6, 5, 0, 3, 2, 1);
  for (; i + 4 <= n; i += 4) {
    __m256i k01 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(key + 4 * i)), order),
            k23 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(key + 4 * i + 8)), order);
    /* the unpacks give keys 0, 2, 1, 3 by 64-bit lane; the permute puts them in order */
    __m256i xy = _mm256_permute4x64_epi64(_mm256_unpacklo_epi64(k01, k23), _MM_SHUFFLE(3, 1, 2, 0));
    __m256i zb = _mm256_permute4x64_epi64(_mm256_unpackhi_epi64(k01, k23), _MM_SHUFFLE(3, 1, 2, 0));
    __m256i a = mul64(xy, c1l, c1h), b = mul64(zb, c2l, c2h);
    __m256i h = _mm256_add_epi64(a, _mm256_or_si256(_mm256_slli_epi64(b, 31), _mm256_srli_epi64(b, 33)));
    h = mul64(_mm256_xor_si256(h, _mm256_srli_epi64(h, 32)), c3l, c3h);
    _mm256_storeu_si256((__m256i *)(out + i), _mm256_xor_si256(h, _mm256_srli_epi64(h, 32)));
  }
  lt__key_digests_ref(out + i, key + 4 * i, n - i);
}
