/* The AVX-512 walk of one query by occupancy bits (sparse/neighbor_shells.h),
 * for CPUs with VBMI and VBMI2 (Ice Lake, Zen 4): where the gather kernel
 * (neighbor_shells_avx512.c) loads a row for every offset of the table, this
 * one first asks which offsets hold one. The 27 bricks' occupancy words
 * (lt_shell_bricks.occupied, 216 bytes) sit in four vectors; a byte permute
 * across them fetches each position's byte (the table's byte[cell]) and a
 * test its bit, 64 positions per step. The want-th hit is found by popcount
 * and pdep; the hits up to the end of its shell (the tie rule needs the whole
 * shell) are compressed onto one list of table entries (d^2 << 11 | brick << 6
 * | cell, by Morton cell), a block at a time. Where the bricks around are
 * ranked (their rows runs in Morton cell order), the brick field is
 * replaced by its rank, so that the 16-bit entries sort as the rows do, and
 * the first want's rows are computed by popcount, no row loaded. Where the
 * runs also follow the Morton order of the bricks (lt_shell_order: a
 * Morton-sorted map's do), each block's hits are listed in the order of
 * their rows (a bit shuffle, a byte compress) up to the want-th, nothing
 * is sorted and no rank is needed; where not, one vector of 32 is sorted by
 * a bitonic network. Elsewhere only the hits' rows are gathered, at most
 * two vectors of keys sorted by the network of sparse/neighbor_sort_avx512.h. The occupancy is that of
 * the rows, so every row found is one. */
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
 * shell (all of them where fewer): returns that end, *have = min(want,
 * hits) and *kept the hits up to the end, m[j] set for the blocks before
 * it. A shell lies inside one block, so the want-th's block is the last
 * one needed: the first two are read whole (the want-th is mostly in them:
 * no branch on where), the others only until it is found. */
static inline __attribute__((always_inline)) int64_t hits(const lt_shell_table *t, const __m512i w[4], int cell,
                                                          int64_t lim, int64_t want, uint64_t m[LT_SHELL_BLOCKS],
                                                          int64_t *have, int64_t *kept) {
  m[0] = occupied(t, w, cell, 0) & below(lim), m[1] = occupied(t, w, cell, 1) & below(lim - 64);
  int64_t n = _mm_popcnt_u64(m[0]) + _mm_popcnt_u64(m[1]), pos = n >= want ? nth_hit(m[0], m[1], want - 1) : -1;
  for (int j = 2; pos < 0 && j < LT_SHELL_BLOCKS && 64 * j < lim; j++) {
    m[j] = occupied(t, w, cell, j) & below(lim - 64 * j);
    int64_t c = _mm_popcnt_u64(m[j]);
    if (n + c >= want) pos = 64 * j + (int64_t)_tzcnt_u64(_pdep_u64(1ull << (want - 1 - n), m[j]));
    n += c;
  }
  *have = n < want ? n : want;
  int64_t end = pos < 0 ? lim : t->first[t->d2[pos] + 1];
  *kept = 0;
  /* counted as it is masked: a vector popcount of the words just stored would wait on the stores */
  for (int j = 0; 64 * j < end; j++) m[j] &= below(end - 64 * j), *kept += _mm_popcnt_u64(m[j]);
  return end;
}

/* The keys of the n (at most 16) entries e (rows r), UINT32_MAX past n. */
static __m512i keys(__m512i e, __m512i r, int64_t n) {
  __m512i d = _mm512_slli_epi32(_mm512_srli_epi32(e, 11), LT_SHELL_ROW_BITS);
  return _mm512_mask_or_epi32(_mm512_set1_epi32(-1), lanes(n), d, r);
}

/* The rows of the entries e by one gather: each entry's brick base by a
 * permute of the 27, its cell (lex, as the cells are) by a byte permute of
 * its Morton cell. */
static __m512i rows_gathered(const lt_shell_table *t, const lt_shell_bricks *near, __m512i e, int64_t n) {
  const __m512i lo = _mm512_loadu_si512(near->base), hi = _mm512_loadu_si512(near->base + 16);
  __m512i base = _mm512_permutex2var_epi32(lo, _mm512_srli_epi32(e, 6), hi); /* the permute reads 5 bits */
  __m512i cell = _mm512_and_si512(_mm512_permutexvar_epi8(e, _mm512_loadu_si512(t->lex)), _mm512_set1_epi32(63));
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), lanes(n), _mm512_add_epi32(base, cell), near->cells, 4);
}

/* The rows of the ranked keys e (d^2 << 11 | rank << 6 | cell) of a ranked
 * near (w: its by_rank, r: its ranks, 4 vectors each): each key's half
 * word h = e >> 5 (6 bits) by a permute of the 64, its row that half's
 * rank plus the bits below. */
static __m512i rows_ranked(const __m512i w[4], const __m512i r[4], __m512i e, int few) {
  __m512i h = _mm512_srli_epi32(e, 5);
  __m512i above = _mm512_sllv_epi32(_mm512_set1_epi32(-1), _mm512_and_si512(e, _mm512_set1_epi32(31)));
  __m512i word = _mm512_permutex2var_epi32(w[0], h, w[1]), rank = _mm512_permutex2var_epi32(r[0], h, r[1]);
  if (!few) { /* ranks from 16 on: their halves in the last two vectors */
    __mmask16 up = _mm512_test_epi32_mask(h, _mm512_set1_epi32(32));
    word = _mm512_mask_blend_epi32(up, word, _mm512_permutex2var_epi32(w[2], h, w[3]));
    rank = _mm512_mask_blend_epi32(up, rank, _mm512_permutex2var_epi32(r[2], h, r[3]));
  }
  return _mm512_add_epi32(rank, _mm512_popcnt_epi32(_mm512_andnot_si512(above, word)));
}

/* Lanes l ^ j of 32 16-bit lanes, by immediate shuffles. */
static inline __m512i partner16(__m512i v, int j) {
  switch (j) {
  case 1: return _mm512_rol_epi32(v, 16);
  case 2: return _mm512_shuffle_epi32(v, _MM_PERM_CDAB);
  case 4: return _mm512_shuffle_epi32(v, _MM_PERM_BADC);
  case 8: return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1));
  default: return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2));
  }
}

/* The lanes l of 32 with l & j set (j a power of two; none for 32). */
static inline uint32_t lanes_with(int j) {
  switch (j) {
  case 1: return 0xaaaaaaaau;
  case 2: return 0xccccccccu;
  case 4: return 0xf0f0f0f0u;
  case 8: return 0xff00ff00u;
  case 16: return 0xffff0000u;
  default: return 0;
  }
}

/* Stage (k, j) of the network: lane l meets lane l ^ j; the larger stays
 * in the lanes with bit j set of a block ascending (bit k clear), in the
 * others of a block descending. */
static inline __m512i stage16(__m512i v, int k, int j) {
  __m512i p = partner16(v, j);
  return _mm512_mask_max_epu16(_mm512_min_epu16(v, p), lanes_with(j) ^ lanes_with(k), v, p);
}

/* The network's 15 stages (k, j): blocks of 2, 4, ..., 32, each merged by j = k / 2 .. 1. */
static const int stage_k[15] = {2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 32};
static const int stage_j[15] = {1, 2, 1, 4, 2, 1, 8, 4, 2, 1, 16, 8, 4, 2, 1};

/* 32 16-bit keys ascending, by the bitonic network, unrolled so that each
 * stage's shuffle and mask are immediates. */
static inline __m512i sort32_u16(__m512i v) {
#pragma GCC unroll 15
  for (int s = 0; s < 15; s++) v = stage16(v, stage_k[s], stage_j[s]);
  return v;
}

/* sort32_u16 of two vectors at once, stage by stage: their chains overlap. */
static inline void sort32_u16_two(__m512i *a, __m512i *b) {
#pragma GCC unroll 15
  for (int s = 0; s < 15; s++) *a = stage16(*a, stage_k[s], stage_j[s]), *b = stage16(*b, stage_k[s], stage_j[s]);
}

/* Lanes m of v into p: by a streaming store where they fill p's 64-byte
 * line (at k = 16 a query's edges are one line of each array), as the
 * walk's edge marks are; it fences them before its end. */
static void put_edges(void *p, __m512i v, __mmask16 m) {
  if (m == 0xffff && !((uintptr_t)p & 63))
    _mm512_stream_si512(p, v);
  else
    _mm512_mask_storeu_epi32(p, m, v);
}

/* The rows and d^2 of the first n (at most 16) ranked keys e16. Inlined:
 * called, its vectors pass through memory (1.15x slower a query). */
static inline __attribute__((always_inline)) void put_ranked(const __m512i w[4], const __m512i r[4], int few,
                                                             __m256i e16, int64_t n, int32_t *row, float *dist) {
  __m512i e = _mm512_cvtepu16_epi32(e16);
  put_edges(row, rows_ranked(w, r, e, few), lanes(n));
  put_edges(dist, _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_srli_epi32(e, 11))), lanes(n));
}

/* A query's hits: their entries (d^2 << 11 | brick << 6 | cell) in the
 * first n lanes of list, those up to the end of the want-th's shell in
 * table order (list_hits) or the first want in row order (list_ordered);
 * have = min(want, hits). */
typedef struct hit_list {
  __m512i list;
  int64_t n, have;
} hit_list;

/* Block j's hits m (at most 32) as entries in lanes 0.. of a vector, in
 * table order, or in perm's where given (the order of the query's cell,
 * lt_shell_order; m then taken in it): their positions in the block by a
 * byte compress of 0..63 or of perm, their entries by a word permute of
 * the block's. */
static __m512i block_hits(const lt_shell_table *t, const uint8_t *perm, int cell, int64_t j, uint64_t m) {
  const __m512i iota = _mm512_set_epi64(0x3f3e3d3c3b3a3938, 0x3736353433323130, 0x2f2e2d2c2b2a2928, 0x2726252423222120,
                                        0x1f1e1d1c1b1a1918, 0x1716151413121110, 0x0f0e0d0c0b0a0908, 0x0706050403020100);
  __m512i from = perm ? _mm512_loadu_si512(perm + 64 * j) : iota;
  __m512i at = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(_mm512_maskz_compress_epi8(m, from)));
  const uint16_t *block = t->entry[cell] + 64 * j;
  return _mm512_permutex2var_epi16(_mm512_loadu_si512(block), at, _mm512_loadu_si512(block + 32));
}

/* The hits of the query in cell `cell` up to the end of the want-th's
 * shell, in table order; 0 where they are more than LT_SORT_MOST (left to
 * _ref). Inlined, as hits and put_sorted: called, the two queries of
 * lt__shell_query_bits2 overlap less (1.02 to 1.04x slower each). */
static inline __attribute__((always_inline)) int list_hits(const lt_shell_table *t, const lt_shell_bricks *near,
                                                           int cell, int64_t limit, int64_t want, hit_list *h) {
  const uint8_t *wb = (const uint8_t *)near->occupied;
  const __m512i w[4] = {_mm512_loadu_si512(wb), _mm512_loadu_si512(wb + 64), _mm512_loadu_si512(wb + 128),
                        _mm512_loadu_si512(wb + 192)};
  uint64_t m[LT_SHELL_BLOCKS];
  int64_t end = hits(t, w, cell, t->first[limit + 1], want, m, &h->have, &h->n);
  if (h->n > LT_SORT_MOST) return 0;
  /* block by block, each expanded into lanes at .. at + its count - 1 (no block waits on the one before) */
  h->list = _mm512_setzero_si512();
  for (int64_t j = 0, at = 0; 64 * j < end; j++) {
    int64_t c = _mm_popcnt_u64(m[j]);
    __m512i part = block_hits(t, NULL, cell, j, m[j]);
    h->list = _mm512_or_si512(h->list, _mm512_maskz_expand_epi16(_bzhi_u32(~0u, (unsigned)c) << at, part));
    at += c;
  }
  return 1;
}

/* The hits of block j (positions before lim) of a query in cell `cell`, in
 * the order perm of its cell: each position's bit taken from its source's
 * by a bit shuffle. */
static uint64_t in_order(const lt_shell_table *t, const __m512i w[4], const uint8_t *perm, int cell, int j,
                         int64_t lim) {
  uint64_t m = occupied(t, w, cell, j) & below(lim - 64 * j);
  return _mm512_bitshuffle_epi64_mask(_mm512_set1_epi64((long long)m), _mm512_loadu_si512(perm + 64 * j));
}

/* The first `want` hits (all where fewer) of the query in cell `cell` of a
 * near in its pattern's order, in row order: each block's hits reordered by
 * a bit shuffle (lt_shell_order), the want-th's block cut after it. No
 * shell's end is sought: the hits past the want-th in its shell would only
 * come after it. The first two blocks are read whole (no branch on where
 * the want-th is), the others only until it is found. */
static inline __attribute__((always_inline)) void list_ordered(const lt_shell_table *t, const lt_shell_bricks *near,
                                                               int cell, int64_t limit, int64_t want, hit_list *h) {
  const uint8_t *wb = (const uint8_t *)near->occupied, *perm = near->order->perm[cell];
  const __m512i w[4] = {_mm512_loadu_si512(wb), _mm512_loadu_si512(wb + 64), _mm512_loadu_si512(wb + 128),
                        _mm512_loadu_si512(wb + 192)};
  int64_t lim = t->first[limit + 1], n = 0;
  uint64_t m[2] = {in_order(t, w, perm, cell, 0, lim), in_order(t, w, perm, cell, 1, lim)};
  h->list = _mm512_setzero_si512();
  for (int j = 0; j < LT_SHELL_BLOCKS && n < want && 64 * j < lim; j++) {
    uint64_t mj = j < 2 ? m[j] : in_order(t, w, perm, cell, j, lim);
    int64_t c = _mm_popcnt_u64(mj);
    if (n + c > want) mj = _bzhi_u64(mj, (unsigned)_tzcnt_u64(_pdep_u64(1ull << (want - n - 1), mj)) + 1), c = want - n;
    h->list = _mm512_or_si512(
        h->list, _mm512_maskz_expand_epi16(_bzhi_u32(~0u, (unsigned)c) << n, block_hits(t, perm, cell, j, mj)));
    n += c;
  }
  h->n = h->have = n;
}

/* A ranked near's keys of the hits h: the brick field replaced by its rank, UINT16_MAX past n. */
static __m512i ranked_keys(const lt_shell_bricks *near, const hit_list *h) {
  const __m512i rank_of = _mm512_load_si512(near->rank_of), brick = _mm512_set1_epi16((int16_t)(31 << 6));
  __m512i rank = _mm512_permutexvar_epi16(_mm512_srli_epi16(h->list, 6), rank_of);
  __m512i key = _mm512_ternarylogic_epi32(h->list, brick, rank, 0xb8); /* brick ? rank : list, bit by bit */
  return _mm512_mask_mov_epi16(_mm512_set1_epi16(-1), _bzhi_u32(~0u, (unsigned)h->n), key);
}

/* The first `have` of a ranked near's keys in row order: their rows and
 * d^2, by brick (its occupancy words) where near has an order, else by
 * rank. */
static inline __attribute__((always_inline)) void put_sorted(const lt_shell_bricks *near, __m512i key, int64_t have,
                                                             int32_t *row, float *dist) {
  const uint64_t *words = near->order ? near->occupied : near->by_rank;
  const __m512i w[4] = {_mm512_load_si512(words), _mm512_load_si512(words + 8), _mm512_load_si512(words + 16),
                        _mm512_load_si512(words + 24)};
  const __m512i r[4] = {_mm512_load_si512(near->ranks), _mm512_load_si512(near->ranks + 16),
                        _mm512_load_si512(near->ranks + 32), _mm512_load_si512(near->ranks + 48)};
  put_ranked(w, r, near->few, _mm512_castsi512_si256(key), have, row, dist);
  if (have > 16) put_ranked(w, r, near->few, _mm512_extracti64x4_epi64(key, 1), have - 16, row + 16, dist + 16);
}

int64_t lt__shell_query_bits(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit,
                             int64_t want, int32_t *row, float *dist) {
  hit_list h;
  if (want > LT_SORT_MOST) return -1;
  if (want == 0) return 0;
  if (near->order) {
    list_ordered(t, near, cell, limit, want, &h);
    put_sorted(near, h.list, h.have, row, dist);
    return h.have;
  }
  if (!list_hits(t, near, cell, limit, want, &h)) return -1;
  if (near->ranked) {
    put_sorted(near, sort32_u16(ranked_keys(near, &h)), h.have, row, dist);
    return h.have;
  }
  __m512i ea = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(h.list));
  __m512i eb = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h.list, 1));
  __m512i a = keys(ea, rows_gathered(t, near, ea, h.n), h.n);
  __m512i b = keys(eb, rows_gathered(t, near, eb, h.n - 16), h.n - 16);
  sort_put(a, b, h.n, h.have, row, dist);
  return h.have;
}

void lt__shell_query_bits2(const lt_shell_table *t, const lt_shell_bricks *near, const int cell[2], int64_t limit,
                           const int64_t want[2], int32_t *const row[2], float *const dist[2], int64_t found[2]) {
  /* written out, not a loop over q: the two lists then stay in registers (1.15x faster) */
  hit_list h[2];
  int listed = near->ranked && want[0] > 0 && want[0] <= LT_SORT_MOST && want[1] > 0 && want[1] <= LT_SORT_MOST;
  if (listed && near->order)
    list_ordered(t, near, cell[0], limit, want[0], &h[0]), list_ordered(t, near, cell[1], limit, want[1], &h[1]);
  else
    listed = listed && list_hits(t, near, cell[0], limit, want[0], &h[0]) &&
             list_hits(t, near, cell[1], limit, want[1], &h[1]);
  if (!listed) {
    for (int q = 0; q < 2; q++) found[q] = lt__shell_query_bits(t, near, cell[q], limit, want[q], row[q], dist[q]);
    return;
  }
  __m512i a = h[0].list, b = h[1].list; /* in row order where near has an order */
  if (!near->order) {
    a = ranked_keys(near, &h[0]), b = ranked_keys(near, &h[1]);
    sort32_u16_two(&a, &b);
  }
  put_sorted(near, a, h[0].have, row[0], dist[0]);
  put_sorted(near, b, h[1].have, row[1], dist[1]);
  found[0] = h[0].have, found[1] = h[1].have;
}

/* Query i's n edge marks (query_row = i, neighbor_id = 0 ..), by put_edges. */
static void put_marks(int32_t *query_row, int32_t *neighbor_id, int32_t i, int64_t n) {
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t j = 0; j < n; j += 16) {
    put_edges(query_row + j, _mm512_set1_epi32(i), lanes(n - j));
    put_edges(neighbor_id + j, _mm512_add_epi32(iota, _mm512_set1_epi32((int32_t)j)), lanes(n - j));
  }
}

void lt__shell_query_bits4(const lt_shell_table *t, const lt_shell_bricks *near, const int cell[4], int64_t limit,
                           const lt_edges *e, const int64_t *start, const int64_t query[4], int64_t found[4]) {
  int64_t want[4];
  int32_t *row[4];
  float *dist[4];
  int ordered = near->order != NULL;
  for (int q = 0; q < 4; q++) {
    int64_t s = start[query[q]];
    want[q] = start[query[q] + 1] - s, row[q] = e->source_row + s, dist[q] = e->distances + s;
    put_marks(e->query_row + s, e->neighbor_id + s, (int32_t)query[q], want[q]);
    ordered &= want[q] > 0 && want[q] <= LT_SORT_MOST;
  }
  if (!ordered) {
    lt__shell_query_bits2(t, near, cell, limit, want, row, dist, found);
    lt__shell_query_bits2(t, near, cell + 2, limit, want + 2, row + 2, dist + 2, found + 2);
    return;
  }
  hit_list h[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) list_ordered(t, near, cell[q], limit, want[q], &h[q]);
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) put_sorted(near, h[q].list, h[q].have, row[q], dist[q]), found[q] = h[q].have;
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

/* Each brick's word and rows at its rank (rank[b]; the bricks absent all at
 * the first rank past those present, which no key names). */
static void place_by_rank(lt_shell_bricks *near, const int32_t run[32], const __m512i r[2]) {
  _Alignas(64) int32_t rank[32];
  _mm256_store_si256((__m256i *)near->rank_of, _mm512_cvtepi32_epi16(_mm512_slli_epi32(r[0], 6)));
  _mm256_store_si256((__m256i *)(near->rank_of + 16), _mm512_cvtepi32_epi16(_mm512_slli_epi32(r[1], 6)));
  _mm512_store_si512(rank, r[0]), _mm512_store_si512(rank + 16, r[1]);
  for (int b = 0; b < 27; b++) {
    int32_t q = rank[b];
    near->by_rank[q] = near->occupied[b];
    near->ranks[2 * q] = run[b];
    near->ranks[2 * q + 1] = run[b] + _mm_popcnt_u32((uint32_t)near->occupied[b]);
  }
}

/* Whether the runs of the bricks present ascend in the pattern's order
 * (placed: their places): the bricks by place (brick_at) that are present,
 * compressed, their runs fetched by a permute. If so, near's ranks by brick
 * (the rows then are found by brick: lt_shell_bricks). */
static int in_pattern_order(lt_shell_bricks *near, const int32_t run[32], const lt_shell_order *order, uint32_t placed,
                            int bricks) {
  const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0),
                pairs = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0),
                pairs_hi = _mm512_add_epi32(pairs, _mm512_set1_epi32(8));
  __m512i by8 =
      _mm512_maskz_compress_epi8(placed, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)order->brick_at)));
  __m512i brick[2] = {_mm512_cvtepu8_epi32(_mm512_castsi512_si128(by8)),
                      _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(by8, 1))};
  __m512i runs[2] = {_mm512_loadu_si512(run), _mm512_loadu_si512(run + 16)}, by_run[2];
  for (int h = 0; h < 2; h++) by_run[h] = _mm512_permutex2var_epi32(runs[0], brick[h], runs[1]);
  /* each but the last present's run below the next one's */
  __mmask32 next_above = (uint32_t)_mm512_cmpgt_epi32_mask(_mm512_alignr_epi32(by_run[1], by_run[0], 1), by_run[0]) |
                         (uint32_t)_mm512_cmpgt_epi32_mask(_mm512_alignr_epi32(by_run[0], by_run[1], 1), by_run[1])
                             << 16;
  uint32_t needed = bricks > 1 ? (uint32_t)_bzhi_u32(~0u, (unsigned)(bricks - 1)) : 0;
  if ((next_above & needed) != needed) return 0;
  const uint32_t *half = (const uint32_t *)near->occupied;
  for (int h = 0; h < 2; h++) { /* brick b's halves' first rows: its run, and past its low half's rows */
    __m512i low = _mm512_popcnt_epi32(
        _mm512_permutex2var_epi32(_mm512_loadu_si512(half + 32 * h), evens, _mm512_loadu_si512(half + 32 * h + 16)));
    __m512i second = _mm512_add_epi32(runs[h], low);
    _mm512_store_si512(near->ranks + 32 * h, _mm512_permutex2var_epi32(runs[h], pairs, second));
    _mm512_store_si512(near->ranks + 32 * h + 16, _mm512_permutex2var_epi32(runs[h], pairs_hi, second));
  }
  return 1;
}

void lt__shell_bricks_rank(lt_shell_bricks *near, const int32_t run[32], const lt_shell_order *order) {
  /* unique keys run << 5 | b (rows are below 2^27), UINT32_MAX where no brick is */
  _Alignas(64) uint32_t key[32];
  const __m512i lanes_0_15 = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  __m512i k[2], r[2];
  __mmask16 present[2];
  int bricks = 0;
  uint32_t placed = 0; /* the places of the bricks present */
  near->ranked = 1, near->order = NULL;
  for (int h = 0; h < 2; h++) {
    __m512i at = _mm512_loadu_si512(run + 16 * h);
    present[h] = _mm512_cmpge_epi32_mask(_mm512_loadu_si512(near->base + 16 * h), _mm512_setzero_si512());
    near->ranked &= _mm512_mask_cmplt_epi32_mask(present[h], at, _mm512_setzero_si512()) == 0;
    bricks += _mm_popcnt_u32(present[h]);
    if (order) {
      __m512i place = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(order->place + 16 * h)));
      placed |= (uint32_t)_mm512_mask_reduce_or_epi32(present[h], _mm512_sllv_epi32(_mm512_set1_epi32(1), place));
    }
  }
  near->few = near->ranked && bricks <= 16;
  if (!near->ranked) return;
  if (order && in_pattern_order(near, run, order, placed, bricks)) {
    near->order = order, near->few = 0;
    return;
  }
  for (int h = 0; h < 2; h++) {
    __m512i b = _mm512_add_epi32(_mm512_set1_epi32(16 * h), lanes_0_15);
    k[h] = _mm512_mask_or_epi32(_mm512_set1_epi32(-1), present[h],
                                _mm512_slli_epi32(_mm512_loadu_si512(run + 16 * h), 5), b);
    _mm512_store_si512(key + 16 * h, k[h]);
    r[h] = _mm512_setzero_si512();
  }
  /* brick b's rank: the keys below its own, counted for all b at once */
  for (int j = 0; j < 27; j++) {
    __m512i kj = _mm512_set1_epi32((int)key[j]);
    for (int h = 0; h < 2; h++)
      r[h] = _mm512_mask_sub_epi32(r[h], _mm512_cmplt_epu32_mask(kj, k[h]), r[h], _mm512_set1_epi32(-1));
  }
  place_by_rank(near, run, r);
}
