/* The plain key digest kernel and the dispatch between the ISA variants. */
#include "kernels/key_digest.h"

void lt__key_digests_ref(uint64_t *out, const int32_t *key, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = lt__key_digest(key + 4 * i);
}

void lt__key_digests(lt_isa isa, uint64_t *out, const int32_t *key, int64_t n) {
  if (isa >= LT_ISA_AVX512)
    lt__key_digests_avx512(out, key, n);
  else if (isa >= LT_ISA_AVX2)
    lt__key_digests_avx2(out, key, n);
  else
    lt__key_digests_ref(out, key, n);
}
