/* The AVX-512 walk of one query by occupancy bits (sparse/neighbor_shells.h),
 * for CPUs with VBMI and VBMI2 (Ice Lake, Zen 4): where the gather kernel
 * (neighbor_shells_avx512.c) loads a row for every offset of the table, this
 * one first asks which offsets hold one. The 27 bricks' occupancy words
 * (lt_shell_bricks.occupied, 216 bytes) sit in four vectors; a byte permute
 * across them fetches each position's byte (the table's byte[cell]) and a
 * test its bit, 64 positions per step. The want-th hit is found by popcount
 * and pdep; the hits up to the end of its shell (the tie rule needs the whole
 * shell) are compressed onto one list of table entries (d^2 << 11 | brick << 6
 * | cell), and only their rows are gathered, at most two vectors of keys
 * sorted by the network of sparse/neighbor_sort_avx512.h. The occupancy is
 * that of the rows, so every gathered row is one. */
#include "sparse/neighbor_sort_avx512.h"

/* The positions below n of a block (n clamped to 0..64). */
static uint64_t below(int64_t n) { return _bzhi_u64(~0ull, (unsigned)(n < 0 ? 0 : n > 64 ? 64 : n)); }

/* The occupancy of the table's positions 64 j .. 64 j + 63 of a query in
 * cell `cell` (w: the words of the 32 bricks, 256 bytes): each position's
 * byte of w by a two-register byte permute of each half, its bit by a test. */
static uint64_t occupied(const lt_shell_table *t, const __m512i w[4], int cell, int j) {
  __m512i at = _mm512_loadu_si512(t->byte[cell] + 64 * j);
  __m512i lo = _mm512_permutex2var_epi8(w[0], at, w[1]), hi = _mm512_permutex2var_epi8(w[2], at, w[3]);
  __m512i bytes = _mm512_mask_blend_epi8(_mm512_movepi8_mask(at), lo, hi);
  return _mm512_test_epi8_mask(bytes, _mm512_loadu_si512(t->bit[cell] + 64 * j));
}

/* The position of the r-th (from 0) set bit of m0 then m1, where there is one. */
static int64_t nth_hit(uint64_t m0, uint64_t m1, int64_t r) {
  int64_t c0 = _mm_popcnt_u64(m0), in0 = r < c0;
  uint64_t m = in0 ? m0 : m1;
  return (in0 ? 0 : 64) + (int64_t)_tzcnt_u64(_pdep_u64(1ull << (in0 ? r : r - c0), m));
}

/* The hits m[] of the positions before lim, up to the end of the want-th's
 * shell (all of them where fewer): returns that end, and *have =
 * min(want, hits). A shell spans at most 48 positions, so at most two
 * blocks; the first two are read whole (the want-th is mostly in them:
 * no branch on where), the others only where needed. */
static int64_t hits(const lt_shell_table *t, const __m512i w[4], int cell, int64_t lim, int64_t want,
                    uint64_t m[LT_SHELL_BLOCKS], int64_t *have) {
  m[0] = occupied(t, w, cell, 0) & below(lim), m[1] = occupied(t, w, cell, 1) & below(lim - 64);
  int64_t n = _mm_popcnt_u64(m[0]) + _mm_popcnt_u64(m[1]), pos = n >= want ? nth_hit(m[0], m[1], want - 1) : -1;
  for (int j = 2; j < LT_SHELL_BLOCKS; j++) {
    m[j] = 0;
    if (pos >= 0 && 64 * j >= t->first[t->d2[pos] + 1]) continue; /* past the want-th's shell */
    m[j] = occupied(t, w, cell, j) & below(lim - 64 * j);
    int64_t c = _mm_popcnt_u64(m[j]);
    if (pos < 0 && n + c >= want) pos = 64 * j + (int64_t)_tzcnt_u64(_pdep_u64(1ull << (want - 1 - n), m[j]));
    n += c;
  }
  *have = n < want ? n : want;
  int64_t end = pos < 0 ? lim : t->first[t->d2[pos] + 1];
  for (int j = 0; j < LT_SHELL_BLOCKS; j++) m[j] &= below(end - 64 * j);
  return end;
}

/* The keys of the n (at most 16) entries e, UINT32_MAX past n: each
 * entry's brick base by a permute of the 27, its row by one gather. */
static __m512i keys_of(const lt_shell_bricks *near, __m256i e16, int64_t n) {
  const __m512i lo = _mm512_loadu_si512(near->base), hi = _mm512_loadu_si512(near->base + 16);
  __m512i e = _mm512_cvtepu16_epi32(e16);
  __m512i base = _mm512_permutex2var_epi32(lo, _mm512_and_si512(_mm512_srli_epi32(e, 6), _mm512_set1_epi32(31)), hi);
  __m512i at = _mm512_add_epi32(base, _mm512_and_si512(e, _mm512_set1_epi32(63)));
  __mmask16 m = lanes(n);
  __m512i r = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, at, near->cells, 4);
  __m512i d = _mm512_slli_epi32(_mm512_srli_epi32(e, 11), LT_SHELL_ROW_BITS);
  return _mm512_mask_or_epi32(_mm512_set1_epi32(-1), m, d, r);
}

int64_t lt__shell_query_bits(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit,
                             int64_t want, int32_t *row, float *dist) {
  if (want > LT_SORT_MOST) return -1;
  if (want == 0) return 0;
  const uint8_t *wb = (const uint8_t *)near->occupied;
  const __m512i w[4] = {_mm512_loadu_si512(wb), _mm512_loadu_si512(wb + 64), _mm512_loadu_si512(wb + 128),
                        _mm512_loadu_si512(wb + 192)};
  uint64_t m[LT_SHELL_BLOCKS];
  int64_t have, n = 0, end = hits(t, w, cell, t->first[limit + 1], want, m, &have);
  for (int j = 0; j < LT_SHELL_BLOCKS; j++) n += _mm_popcnt_u64(m[j]);
  if (n > LT_SORT_MOST) return -1;
  /* the hits' entries, 32 positions at a time, each part expanded into the list's lanes from `at` on */
  __m512i list = _mm512_setzero_si512();
  for (int64_t q = 0, at = 0; q < (end + 31) / 32; q++) {
    __mmask32 mq = (__mmask32)(m[q >> 1] >> (32 * (q & 1)));
    __m512i part = _mm512_maskz_compress_epi16(mq, _mm512_loadu_si512(t->entry[cell] + 32 * q));
    list = _mm512_mask_expand_epi16(list, ~_bzhi_u32(~0u, (unsigned)at), part);
    at += _mm_popcnt_u32(mq);
  }
  __m512i a = keys_of(near, _mm512_castsi512_si256(list), n);
  __m512i b = keys_of(near, _mm512_extracti64x4_epi64(list, 1), n - 16);
  sort_put(a, b, n, have, row, dist);
  return have;
}

int64_t lt__shell_count_bits(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit,
                             int64_t cap) {
  const uint8_t *wb = (const uint8_t *)near->occupied;
  const __m512i w[4] = {_mm512_loadu_si512(wb), _mm512_loadu_si512(wb + 64), _mm512_loadu_si512(wb + 128),
                        _mm512_loadu_si512(wb + 192)};
  int64_t lim = t->first[limit + 1], n = 0;
  for (int j = 0; 64 * j < lim; j++) n += _mm_popcnt_u64(occupied(t, w, cell, j) & below(lim - 64 * j));
  return n < cap ? n : cap;
}

void lt__shell_occupancy_bits(uint64_t *occ, const int32_t *cells, int64_t first, int64_t last) {
  const __m512i none = _mm512_setzero_si512();
  for (int64_t b = first; b < last; b++) {
    const int32_t *c = cells + b * LT_BRICK_CELLS;
    uint64_t m = 0;
    for (int q = 0; q < 4; q++)
      m |= (uint64_t)_mm512_cmpge_epi32_mask(_mm512_loadu_si512(c + 16 * q), none) << (16 * q);
    occ[b] = m;
  }
}
