/* The digests of coordinate keys (sparse/quantize.c): for n keys of four
 * int32 (batch, x, y, z),
 *   a = (x | y << 32) * C1,  b = (z | batch << 32) * C2   (64-bit, wrapping)
 *   h = a + rotl(b, 31);  h ^= h >> 32;  h *= C3;  h ^= h >> 32
 * two independent products and a final one (quantize's parts take the high
 * bits, its per-part hashes the low ones). Integer arithmetic: every variant
 * gives the same bits. Quantize hashes every point twice, and the scalar mix
 * was a sixth of its instructions. */
#ifndef LATTICE_KERNELS_KEY_DIGEST_H
#define LATTICE_KERNELS_KEY_DIGEST_H

#include <stdint.h>
#include "lattice/cpu.h"

#define LT_DIGEST_C1 0x9e3779b97f4a7c15ull
#define LT_DIGEST_C2 0xc2b2ae3d27d4eb4full
#define LT_DIGEST_C3 0xd6e8feb86659fd93ull

static inline uint64_t lt__key_digest(const int32_t *key) {
  uint64_t a = ((uint64_t)(uint32_t)key[1] | (uint64_t)(uint32_t)key[2] << 32) * LT_DIGEST_C1;
  uint64_t b = ((uint64_t)(uint32_t)key[3] | (uint64_t)(uint32_t)key[0] << 32) * LT_DIGEST_C2;
  uint64_t h = a + (b << 31 | b >> 33);
  h ^= h >> 32;
  h *= LT_DIGEST_C3;
  return h ^ h >> 32;
}

/* out[i] = lt__key_digest(key + 4 i), i < n. */
void lt__key_digests(lt_isa isa, uint64_t *out, const int32_t *key, int64_t n);

/* One variant per ISA (kernels/key_digest.c, key_digest_avx2.c, key_digest_avx512.c), for the specs. */
void lt__key_digests_ref(uint64_t *out, const int32_t *key, int64_t n);
void lt__key_digests_avx2(uint64_t *out, const int32_t *key, int64_t n);
void lt__key_digests_avx512(uint64_t *out, const int32_t *key, int64_t n);

#endif
