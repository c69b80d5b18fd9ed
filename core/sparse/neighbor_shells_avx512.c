/* The AVX-512 walk of one query (sparse/neighbor_shells.h): the table's
 * offsets 16 at a time, each vector one gather from the brick index; the hits'
 * keys (d^2 << 27 | row, so that unsigned order is the relation's order)
 * compressed onto a list of two vectors, which grows in d^2 order. Once the list holds
 * `want` keys below the first d^2 not yet walked, the network of
 * sparse/neighbor_sort_avx512.h sorts it and its head is the answer: the
 * same as lt__shell_query_ref, without a branch on the data inside a shell.
 * The kernel of AVX-512 CPUs without VBMI2 (sparse/neighbor_bits_avx512vbmi.c
 * is the one of those with it). */
#include "sparse/neighbor_sort_avx512.h"

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
  if (want > LT_SORT_MOST) return -1;
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
    if (n > LT_SORT_MOST) return -1;
    /* final once `want` keys lie below the next d^2 not walked */
    int32_t next = p + 16 < end ? t->d2[p + 16] : (int32_t)limit + 1;
    __m512i bound = _mm512_set1_epi32((int32_t)((uint32_t)next << LT_SHELL_ROW_BITS));
    int64_t final =
        _mm_popcnt_u32(_mm512_cmplt_epu32_mask(a, bound)) + _mm_popcnt_u32(_mm512_cmplt_epu32_mask(b, bound));
    if (final < want) continue;
    sort_put(a, b, n, want, row, dist);
    return want;
  }
  sort_put(a, b, n, n, row, dist); /* fewer than wanted within the limit (n < want <= 32): short */
  return n;
}
