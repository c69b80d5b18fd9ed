/* The AVX-512 walk of one query (sparse/neighbor_shells.h): the table's
 * offsets 16 at a time, each vector one gather from the brick index; the hits'
 * keys (d^2 << 27 | row, so that unsigned order is the relation's order)
 * compressed onto a list of two vectors, which grows in d^2 order. Once the list holds
 * `want` keys below the first d^2 not yet walked, a bitonic network sorts it
 * (at most 32 keys, two vectors; where the second holds at most FEW, the
 * first is sorted and those inserted one at a time) and its head is the
 * answer: the same as
 * lt__shell_query_ref, without a branch on the data inside a shell. */
#include <immintrin.h>
#include "sparse/neighbor_shells.h"

#define MOST 32 /* keys the network sorts */

static const uint16_t sort_max[10] = {0x6666, 0x3c3c, 0x5a5a, 0x0ff0, 0x33cc, 0x55aa, 0xff00, 0xf0f0, 0xcccc, 0xaaaa};
static const uint16_t merge_max[4] = {0xff00, 0xf0f0, 0xcccc, 0xaaaa};

/* Lanes l ^ j of v: j = 1, 2 within 128-bit lanes, 4, 8 by 128-bit blocks,
 * immediate shuffles (latency 1 on Zen 4 within a lane) where a permute by a
 * vector of indices crosses the whole register on every stage. */
static __m512i partner(__m512i v, int j) {
  switch (j) {
  case 1: return _mm512_shuffle_epi32(v, _MM_PERM_CDAB);
  case 2: return _mm512_shuffle_epi32(v, _MM_PERM_BADC);
  case 4: return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1));
  default: return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2));
  }
}

/* Lane l meets lane l ^ j; the lanes of mask `hi` keep the larger. */
static __m512i exchange(__m512i v, int j, __mmask16 hi) {
  __m512i p = partner(v, j);
  return _mm512_mask_max_epu32(_mm512_min_epu32(v, p), hi, v, p);
}

/* 16 keys ascending: blocks of 2, 4, 8, 16, alternately up and down, merged. */
static __m512i sort16(__m512i v) {
  int s = 0;
  for (int k = 2; k <= 16; k <<= 1)
    for (int j = k >> 1; j >= 1; j >>= 1) v = exchange(v, j, sort_max[s++]);
  return v;
}

/* A bitonic 16 ascending. */
static __m512i merge16(__m512i v) {
  for (int j = 8, s = 0; j >= 1; j >>= 1, s++) v = exchange(v, j, merge_max[s]);
  return v;
}

/* The keys in two vectors (UINT32_MAX past the list) ascending; the
 * larger 16 only where `both` (else *b is left as it was). */
static void sort32(__m512i *a, __m512i *b, int both) {
  const __m512i reverse = _mm512_set_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i x = sort16(*a), y = _mm512_permutexvar_epi32(reverse, sort16(*b));
  *a = merge16(_mm512_min_epu32(x, y));
  if (both) *b = merge16(_mm512_max_epu32(x, y));
}

/* The 16 smallest of the sorted keys a and the first FEW lanes of b
 * (each put at its place in turn, the largest pushed out), ascending:
 * where b holds few keys, cheaper than sorting it and merging. */
#define FEW 8
static __m512i insert_few(__m512i a, __m512i b) {
  for (int j = 0; j < FEW; j++) {
    __m512i x = _mm512_permutexvar_epi32(_mm512_set1_epi32(j), b);
    /* lane i: max(a[i - 1], min(a[i], x)), a[-1] = 0 */
    __m512i up = _mm512_alignr_epi32(a, _mm512_setzero_si512(), 15);
    a = _mm512_max_epu32(up, _mm512_min_epu32(a, x));
  }
  return a;
}

/* The first n lanes (n clamped to 0..16, by conditional moves: n varies from query to query). */
static __mmask16 lanes(int64_t n) {
  uint32_t m = (uint32_t)(n < 0 ? 0 : n > 16 ? 16 : n);
  return (__mmask16)((1u << m) - 1);
}

/* The head of the sorted keys: rows and d^2. */
static void put(int32_t *row, float *dist, __m512i keys, int64_t n) {
  const __m512i rowmask = _mm512_set1_epi32((1 << LT_SHELL_ROW_BITS) - 1);
  __mmask16 m = lanes(n);
  _mm512_mask_storeu_epi32(row, m, _mm512_and_si512(keys, rowmask));
  _mm512_mask_storeu_ps(dist, m, _mm512_cvtepi32_ps(_mm512_srli_epi32(keys, LT_SHELL_ROW_BITS)));
}

/* The list (a, b) of n keys with the h keys of c appended (c's lanes past h
 * are UINT32_MAX, as the list's past n): kept in registers, where a list in
 * memory would load what the compress has just stored across two stores. */
static void append(__m512i *a, __m512i *b, int64_t n, __m512i c) {
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  *a = _mm512_mask_permutexvar_epi32(*a, (__mmask16)~lanes(n), _mm512_sub_epi32(iota, _mm512_set1_epi32((int)n)), c);
  *b = _mm512_mask_permutexvar_epi32(*b, (__mmask16)(lanes(n) & ~lanes(n - 16)),
                                     _mm512_add_epi32(iota, _mm512_set1_epi32((int)(16 - n))), c);
}

/* The source rows at table positions p .. p + 15 of a query in cell `cell`
 * (-1 where none, or past `valid`): each position's brick around and cell,
 * the brick's base by a permute of the 27, one gather. */
static __m512i rows_at(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t p, __mmask16 valid) {
  const __m512i lo = _mm512_loadu_si512(near->base), hi = _mm512_loadu_si512(near->base + 16);
  __m512i code = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(t->code[cell] + p)));
  __m512i base = _mm512_permutex2var_epi32(lo, _mm512_srli_epi32(code, 6), hi);
  valid = _mm512_mask_cmpge_epi32_mask(valid, base, _mm512_setzero_si512());
  __m512i at = _mm512_add_epi32(base, _mm512_and_si512(code, _mm512_set1_epi32(63)));
  return _mm512_mask_i32gather_epi32(_mm512_set1_epi32(-1), valid, at, near->cells, 4);
}

int64_t lt__shell_query_avx512(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit,
                               int64_t want, int32_t *row, float *dist) {
  if (want > MOST) return -1;
  if (want == 0) return 0;
  int64_t n = 0, end = t->first[limit + 1];
  const __m512i none = _mm512_set1_epi32(-1);
  __m512i a = none, b = none;
  for (int64_t p = 0; p < end; p += 16) {
    __m512i r = rows_at(t, near, cell, p, lanes(end - p));
    __mmask16 hit = _mm512_cmpge_epi32_mask(r, _mm512_setzero_si512());
    __m512i key = _mm512_or_si512(r, _mm512_loadu_si512(t->key + p));
    append(&a, &b, n, _mm512_mask_compress_epi32(none, hit, key));
    n += _mm_popcnt_u32(hit);
    if (n < want) continue;
    if (n > MOST) return -1;
    /* final once `want` keys lie below the next d^2 not walked */
    int32_t next = p + 16 < end ? t->d2[p + 16] : (int32_t)limit + 1;
    __m512i bound = _mm512_set1_epi32((int32_t)((uint32_t)next << LT_SHELL_ROW_BITS));
    int64_t final =
        _mm_popcnt_u32(_mm512_cmplt_epu32_mask(a, bound)) + _mm_popcnt_u32(_mm512_cmplt_epu32_mask(b, bound));
    if (final < want) continue;
    if (n <= 16)
      a = sort16(a);
    else if (n <= 16 + FEW && want <= 16)
      a = insert_few(sort16(a), b);
    else
      sort32(&a, &b, want > 16);
    put(row, dist, a, want);
    if (want > 16) put(row + 16, dist + 16, b, want - 16);
    return want;
  }
  return n < want ? n : want; /* fewer than wanted within the limit: short */
}
