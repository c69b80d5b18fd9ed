/* The AVX-512 shell kernels' sort of a query's candidate keys (d^2 << 27 |
 * row, so that unsigned order is the relation's order) and the store of its
 * head (sparse/neighbor_shells_avx512.c, neighbor_bits_avx512vbmi.c): at most
 * 32 keys, two vectors, by a bitonic network. Included by AVX-512 sources only. */
#ifndef LATTICE_SPARSE_NEIGHBOR_SORT_AVX512_H
#define LATTICE_SPARSE_NEIGHBOR_SORT_AVX512_H

#include <immintrin.h>
#include "sparse/neighbor_shells.h"

#define LT_SORT_MOST 32 /* keys the network sorts */

static const uint16_t sort_max[10] = {0x6666, 0x3c3c, 0x5a5a, 0x0ff0, 0x33cc, 0x55aa, 0xff00, 0xf0f0, 0xcccc, 0xaaaa};
static const uint16_t merge_max[4] = {0xff00, 0xf0f0, 0xcccc, 0xaaaa};

/* Lanes l ^ j of v: j = 1, 2 within 128-bit lanes, 4, 8 by 128-bit blocks,
 * immediate shuffles (latency 1 on Zen 4 within a lane) where a permute by a
 * vector of indices crosses the whole register on every stage. */
static inline __m512i partner(__m512i v, int j) {
  switch (j) {
  case 1: return _mm512_shuffle_epi32(v, _MM_PERM_CDAB);
  case 2: return _mm512_shuffle_epi32(v, _MM_PERM_BADC);
  case 4: return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1));
  default: return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2));
  }
}

/* Lane l meets lane l ^ j; the lanes of mask `hi` keep the larger. */
static inline __m512i exchange(__m512i v, int j, __mmask16 hi) {
  __m512i p = partner(v, j);
  return _mm512_mask_max_epu32(_mm512_min_epu32(v, p), hi, v, p);
}

/* 16 keys ascending: blocks of 2, 4, 8, 16, alternately up and down,
 * merged. The loops unrolled (GCC leaves them rolled otherwise), so that
 * each stage's shuffle and mask are immediates, not a branch and a load. */
static inline __m512i sort16(__m512i v) {
  int s = 0;
#pragma GCC unroll 4
  for (int k = 2; k <= 16; k <<= 1)
#pragma GCC unroll 4
    for (int j = k >> 1; j >= 1; j >>= 1) v = exchange(v, j, sort_max[s++]);
  return v;
}

/* A bitonic 16 ascending. */
static inline __m512i merge16(__m512i v) {
#pragma GCC unroll 4
  for (int j = 8, s = 0; j >= 1; j >>= 1, s++) v = exchange(v, j, merge_max[s]);
  return v;
}

/* The keys in two vectors (UINT32_MAX past the list) ascending; the
 * larger 16 only where `both` (else *b is left as it was). */
static inline void sort32(__m512i *a, __m512i *b, int both) {
  const __m512i reverse = _mm512_set_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i x = sort16(*a), y = _mm512_permutexvar_epi32(reverse, sort16(*b));
  *a = merge16(_mm512_min_epu32(x, y));
  if (both) *b = merge16(_mm512_max_epu32(x, y));
}

/* The 16 smallest of the sorted keys a and the first LT_SORT_FEW lanes of b
 * (each put at its place in turn, the largest pushed out), ascending:
 * where b holds few keys, cheaper than sorting it and merging. */
#define LT_SORT_FEW 8
static inline __m512i insert_few(__m512i a, __m512i b) {
#pragma GCC unroll 8
  for (int j = 0; j < LT_SORT_FEW; j++) {
    __m512i x = _mm512_permutexvar_epi32(_mm512_set1_epi32(j), b);
    /* lane i: max(a[i - 1], min(a[i], x)), a[-1] = 0 */
    __m512i up = _mm512_alignr_epi32(a, _mm512_setzero_si512(), 15);
    a = _mm512_max_epu32(up, _mm512_min_epu32(a, x));
  }
  return a;
}

/* The first n lanes (n clamped to 0..16, by conditional moves: n varies from query to query). */
static inline __mmask16 lanes(int64_t n) {
  uint32_t m = (uint32_t)(n < 0 ? 0 : n > 16 ? 16 : n);
  return (__mmask16)((1u << m) - 1);
}

/* The head of the sorted keys: rows and d^2. */
static inline void put(int32_t *row, float *dist, __m512i keys, int64_t n) {
  const __m512i rowmask = _mm512_set1_epi32((1 << LT_SHELL_ROW_BITS) - 1);
  __mmask16 m = lanes(n);
  _mm512_mask_storeu_epi32(row, m, _mm512_and_si512(keys, rowmask));
  _mm512_mask_storeu_ps(dist, m, _mm512_cvtepi32_ps(_mm512_srli_epi32(keys, LT_SHELL_ROW_BITS)));
}

/* The sorted head of the n keys (a, b), UINT32_MAX past n, into row and dist:
 * the first `want` (at most n). Where b holds at most LT_SORT_FEW keys and
 * want <= 16, a is sorted and those inserted one at a time. */
static inline void sort_put(__m512i a, __m512i b, int64_t n, int64_t want, int32_t *row, float *dist) {
  if (n <= 16)
    a = sort16(a);
  else if (n <= 16 + LT_SORT_FEW && want <= 16)
    a = insert_few(sort16(a), b);
  else
    sort32(&a, &b, want > 16);
  put(row, dist, a, want);
  if (want > 16) put(row + 16, dist + 16, b, want - 16);
}

#endif
