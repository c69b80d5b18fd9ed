/* Neighbour search by shells of integer offsets (sparse/neighbor_shells.h):
 * the table, the scalar per-query walk (_ref) and the walk over the query
 * bricks. */
#include <stdlib.h>
#include "sparse/neighbor_shells.h"
#include "runtime/context.h"
#include "runtime/parallel.h"
#include "sparse/neighbor_window.h"

#define REACH 4
#define CHUNK 64 /* query bricks a task: one brick cache warmed over them */

static int dist2_of(int x, int y, int z) { return x * x + y * y + z * z; }

/* Where offset (x, y, z) of a query in cell c of its brick lands: the brick
 * around (0..26) and its cell, as in lt_shell_table. */
static uint16_t code_of(int c, int x, int y, int z) {
  int px = (c >> 4) + x + 4, py = (c >> 2 & 3) + y + 4, pz = (c & 3) + z + 4; /* 0..11: brick 0..2 around, cell */
  int brick = (px >> 2) * 9 + (py >> 2) * 3 + (pz >> 2);
  return (uint16_t)(brick << 6 | (px & 3) << 4 | (py & 3) << 2 | (pz & 3));
}

/* Table position p, for a query in each cell: offset (x, y, z), at d^2 = d. */
static void table_set(lt_shell_table *t, int p, int d, int x, int y, int z) {
  for (int c = 0; c < LT_BRICK_CELLS; c++) {
    uint16_t code = code_of(c, x, y, z), m = (uint16_t)((code & ~63) | lt__morton_cell(code & 63));
    t->code[c][p] = code, t->entry[c][p] = (uint16_t)(d << 11 | m);
    t->byte[c][p] = (uint8_t)(m >> 3), t->bit[c][p] = (uint8_t)(1 << (m & 7));
  }
  t->d2[p] = d, t->key[p] = (uint32_t)d << LT_SHELL_ROW_BITS;
}

/* A pad at position p, before the shell of d^2 = d (or past the last): in
 * brick 27, which is never present, so it holds no source for any kernel. */
static void pad_set(lt_shell_table *t, int p, int d) {
  for (int c = 0; c < LT_BRICK_CELLS; c++) {
    t->code[c][p] = 27 << 6, t->entry[c][p] = (uint16_t)(d << 11 | 27 << 6);
    t->byte[c][p] = 27 << 3, t->bit[c][p] = 1;
  }
  t->d2[p] = d, t->key[p] = (uint32_t)d << LT_SHELL_ROW_BITS;
}

/* A counting sort of the offsets by d^2 (each shell in x, y, z order: any
 * fixed order would do), each shell inside one block of 64 positions (the
 * bits kernel reorders a block's hits in one step, lt_shell_orders): one
 * that does not fit in the rest of its block starts the next, after pads. */
void lt__shell_table_build(lt_shell_table *t) {
  int32_t size[LT_SHELL_D2 + 1] = {0}, next[LT_SHELL_D2 + 1];
  for (int x = -REACH; x <= REACH; x++)
    for (int y = -REACH; y <= REACH; y++)
      for (int z = -REACH; z <= REACH; z++)
        if (dist2_of(x, y, z) <= LT_SHELL_D2) size[dist2_of(x, y, z)]++;
  int p = 0;
  for (int d = 0; d <= LT_SHELL_D2; d++) {
    int start = size[d] > 64 - p % 64 ? (p + 63) / 64 * 64 : p;
    for (; p < start; p++) pad_set(t, p, d);
    t->first[d] = p, p += size[d];
  }
  t->first[LT_SHELL_D2 + 1] = p;
  LT_ASSERT(p <= LT_SHELL_PADDED);
  for (; p < LT_SHELL_PADDED; p++) pad_set(t, p, LT_SHELL_D2 + 1);
  memcpy(next, t->first, sizeof next);
  for (int x = -REACH; x <= REACH; x++)
    for (int y = -REACH; y <= REACH; y++)
      for (int z = -REACH; z <= REACH; z++) {
        int d = dist2_of(x, y, z);
        if (d <= LT_SHELL_D2) table_set(t, next[d]++, d, x, y, z);
      }
  for (int c = 0; c < LT_BRICK_CELLS; c++) t->lex[lt__morton_cell(c)] = (uint8_t)c;
}

void lt__shell_occupancy(lt_brick_occupancy *occ, const lt_bricks *src, int64_t first, int64_t last) {
  uint8_t morton[LT_BRICK_CELLS];
  for (int c = 0; c < LT_BRICK_CELLS; c++) morton[c] = (uint8_t)lt__morton_cell(c);
  for (int64_t b = first; b < last; b++) {
    uint64_t m = 0;
    int ordered = src->order == NULL, prev = -1;
    for (int64_t p = src->first[b]; p < src->first[b + 1]; p++) {
      int cell = morton[lt__brick_cell(src->rows + 4 * lt__bricks_row(src, p))];
      m |= 1ull << cell;
      ordered &= cell > prev, prev = cell;
    }
    occ[b] = (lt_brick_occupancy){m, ordered ? src->first[b] : -1};
  }
}

/* What the walk keeps of the source bricks for the bits kernel (word NULL:
 * nothing, for the gathers'): their occupancy words and runs
 * (lt__shell_occupancy), and the orders of the patterns around them. */
typedef struct occupancy {
  const lt_brick_occupancy *word;
  const lt_shell_orders *orders;
} occupancy;

/* Source brick v as brick b of near (v < 0: none), its run into run[b].
 * No branch on v (a surface's bricks are there about half the time): for
 * none, brick 0's record is read and masked off (two threads, calls
 * alternating: 0.95 to 0.99 of the time). */
static void near_set(lt_shell_bricks *near, const lt_brick_occupancy *occ, int b, int64_t v, int32_t *run) {
  int64_t none = v >> 63; /* all ones where v < 0 */
  lt_brick_occupancy o = occ ? occ[v & ~none] : (lt_brick_occupancy){0, -1};
  near->base[b] = (int32_t)(v * LT_BRICK_CELLS | none);
  near->occupied[b] = o.word & ~(uint64_t)none;
  run[b] = o.run | (int32_t)none;
}

/* Where brick `key` lies inside the grid, the grid's cell of the first of
 * the 27 around it (the others fixed strides from it); else NULL. */
static const int32_t *grid_around(const lt_brick_grid *g, const int32_t *key) {
  int64_t c[4], inside = g->at != NULL;
  for (int a = 0; a < 4; a++) {
    c[a] = key[a] - g->lo[a];
    inside &= a == 0 ? c[a] >= 0 && c[a] < g->size[a] : c[a] >= 1 && c[a] < g->size[a] - 1;
  }
  return inside ? g->at + ((c[0] * g->size[1] + c[1] - 1) * g->size[2] + c[2] - 1) * g->size[3] + c[3] - 1 : NULL;
}

/* The 27 source bricks around brick `key`, with their occupancy words, ranks and order where the walk keeps them. */
static void near_find(lt_shell_bricks *near, const lt_bricks *src, const occupancy *o, lt_brick_cache *cache,
                      const int32_t *key) {
  const lt_brick_grid *g = &src->grid;
  const lt_brick_occupancy *occ = o->word;
  int32_t run[32];
  near->cells = src->cells;
  for (int b = 27; b < 32; b++) near->base[b] = -1, near->occupied[b] = 0, run[b] = -1;
  const int32_t *at = grid_around(g, key);
  if (at) {
    for (int x = 0, b = 0; x < 3; x++)
      for (int y = 0; y < 3; y++)
        for (int z = 0; z < 3; z++, b++) near_set(near, occ, b, at[(x * g->size[2] + y) * g->size[3] + z], run);
  } else {
    for (int x = 0, b = 0; x < 3; x++)
      for (int y = 0; y < 3; y++)
        for (int z = 0; z < 3; z++, b++) {
          int32_t k[4] = {key[0], key[1] + x - 1, key[2] + y - 1, key[3] + z - 1};
          near_set(near, occ, b, lt__bricks_brick(src, cache, k), run);
        }
  }
  near->ranked = 0, near->order = NULL;
  if (occ) lt__shell_bricks_rank(near, run, o->orders ? &o->orders->of[lt__shell_pattern(key)] : NULL);
}

/* The occupancy records of the bricks around brick `key` asked of the
 * memory (inside the grid), two bricks before near_find reads them: they
 * lie far apart in the array (0.97 to 0.99 of the time, two threads). */
static void near_ahead(const lt_bricks *src, const occupancy *o, const int32_t *key) {
  const int32_t *at = grid_around(&src->grid, key);
  for (int x = 0; at && o->word && x < 3; x++)
    for (int y = 0; y < 3; y++)
      for (int z = 0; z < 3; z++) {
        int32_t v = at[(x * src->grid.size[2] + y) * src->grid.size[3] + z];
        __builtin_prefetch(o->word + (v < 0 ? 0 : v));
      }
}

/* near_find, and the bricks' cells asked of the memory ahead of their use
 * (none where near is ranked: the bits kernel then reads no cell). */
static void near_prefetch(lt_shell_bricks *near, const lt_bricks *src, const occupancy *o, lt_brick_cache *cache,
                          const int32_t *key) {
  near_find(near, src, o, cache, key);
  for (int b = 0; b < 27 && !near->ranked; b++)
    for (int line = 0; line < LT_BRICK_CELLS && near->base[b] >= 0; line += 16)
      if (!o->word || near->occupied[b]) __builtin_prefetch(near->cells + near->base[b] + line);
}

/* The source row at `code` of a ranked near whose cells were not built
 * (lt_shell_bricks): its brick's run's first plus the rows below its cell. */
static int32_t ranked_row(const lt_shell_bricks *near, int code) {
  int b = code >> 6, m = lt__morton_cell(code & 63);
  uint64_t word = near->occupied[b];
  if (near->base[b] < 0 || !(word >> m & 1)) return -1;
  int32_t run = near->ranks[2 * (near->order ? b : near->rank_of[b] >> 6)];
  return run + __builtin_popcountll(word & ((1ull << m) - 1));
}

/* The source row at table position p of a query in cell c, or -1: a load
 * from brick 0 where there is no brick, its row dropped, so no branch. */
static int32_t row_at(const lt_shell_table *t, const lt_shell_bricks *near, int c, int p) {
  int code = t->code[c][p], base = near->base[code >> 6];
  if (!near->cells) return ranked_row(near, code);
  int32_t r = near->cells[(base < 0 ? 0 : base) + (code & 63)];
  return base < 0 ? -1 : r;
}

/* The n distinct rows r ascending into out, each placed by its rank (the
 * rows below it): compares without branches, where an insertion sort of a
 * shell's rows in no particular order mispredicts about once a row. */
static void sort_rows(int32_t *out, const int32_t *r, int n) {
  for (int i = 0; i < n; i++) {
    int rank = 0;
    for (int j = 0; j < n; j++) rank += r[j] < r[i];
    out[rank] = r[i];
  }
}

/* Shell by shell: the shell's rows, sorted, then as many as are still wanted. */
int64_t lt__shell_query_ref(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit, int64_t want,
                            int32_t *row, float *dist) {
  int64_t n = 0;
  for (int d = 0; d <= limit && n < want; d++) {
    int32_t hit[LT_SHELL_OFFSETS], sorted[LT_SHELL_OFFSETS];
    int h = 0;
    for (int j = t->first[d]; j < t->first[d + 1]; j++) { /* branch-free: about half the lookups hit */
      int32_t r = row_at(t, near, cell, j);
      hit[h] = r;
      h += r >= 0;
    }
    sort_rows(sorted, hit, h);
    for (int j = 0; j < h && n < want; j++, n++) row[n] = sorted[j], dist[n] = (float)d;
  }
  return n;
}

/* The sources within d^2 <= limit of the query in cell `cell`, at most cap. */
static int64_t count_one(const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t limit, int64_t cap) {
  int64_t n = 0;
  for (int j = 0; j < t->first[limit + 1]; j++) n += row_at(t, near, cell, j) >= 0;
  return n < cap ? n : cap;
}

void lt__edges_mark_ref(int32_t *query_row, int32_t *neighbor_id, int32_t i, int64_t n) {
  for (int32_t j = 0; j < (int32_t)n; j++) query_row[j] = i, neighbor_id[j] = j; /* int32 lanes: vectorized */
}

/* The kernels a fill runs: the window's (where there is one) first, the
 * shells' for the queries it leaves; then the edge marks'. */
typedef struct kernels {
  const lt_window *window;
  occupancy occ; /* the source bricks' occupancy, for the bits kernel (occ.word NULL: the gathers') */
  int window_avx2, shells_avx512, marks_avx512;
} kernels;

/* Query i's edges past its kernel's n: the marks, and whether it fell short.
 * Inlined, as fill_two: called, they cost the bench's kNN ~6%. */
static inline __attribute__((always_inline)) void fill_end(const lt_shell_walk *w, const kernels *k, int64_t i,
                                                           int64_t n) {
  const lt_edges *e = w->edges;
  int64_t s = w->start[i], want = w->start[i + 1] - s;
  if (k->marks_avx512)
    lt__edges_mark_avx512(e->query_row + s, e->neighbor_id + s, (int32_t)i, want);
  else
    lt__edges_mark_ref(e->query_row + s, e->neighbor_id + s, (int32_t)i, want);
  w->short_of[i] = n < want;
}

static void fill_one(const lt_shell_walk *w, const lt_shell_table *t, const lt_shell_bricks *near, int cell, int64_t i,
                     const kernels *k) {
  const lt_edges *e = w->edges;
  int64_t s = w->start[i], want = w->start[i + 1] - s, n = -1;
  int32_t *row = e->source_row + s;
  float *dist = e->distances + s;
  if (k->window)
    n = k->window_avx2 ? lt__window_query_avx2(k->window, cell, want, row, dist)
                       : lt__window_query_ref(k->window, cell, want, row, dist);
  if (n < 0 && k->occ.word)
    n = lt__shell_query_bits(t, near, cell, w->limit, want, row, dist);
  else if (n < 0 && k->shells_avx512)
    n = lt__shell_query_avx512(t, near, cell, w->limit, want, row, dist);
  if (n < 0) n = lt__shell_query_ref(t, near, cell, w->limit, want, row, dist);
  fill_end(w, k, i, n);
}

/* Two queries of a ranked near by the bits kernel, at once. */
static inline __attribute__((always_inline)) void fill_two(const lt_shell_walk *w, const lt_shell_table *t,
                                                           const lt_shell_bricks *near, const int cell[2],
                                                           const int64_t i[2], const kernels *k) {
  const lt_edges *e = w->edges;
  int64_t want[2], n[2];
  int32_t *row[2];
  float *dist[2];
  for (int q = 0; q < 2; q++) {
    int64_t s = w->start[i[q]];
    want[q] = w->start[i[q] + 1] - s, row[q] = e->source_row + s, dist[q] = e->distances + s;
  }
  lt__shell_query_bits2(t, near, cell, w->limit, want, row, dist, n);
  for (int q = 0; q < 2; q++) {
    if (n[q] < 0) n[q] = lt__shell_query_ref(t, near, cell[q], w->limit, want[q], row[q], dist[q]);
    fill_end(w, k, i[q], n[q]);
  }
}

/* Four queries of a near in its pattern's order by the bits kernel, at
 * once, their marks with them (from the kernel's stores, not a call a
 * query: 0.97 to 0.98 of the time with one thread, ~0.95 with two). */
static inline __attribute__((always_inline)) void fill_four(const lt_shell_walk *w, const lt_shell_table *t,
                                                            const lt_shell_bricks *near, const int cell[4],
                                                            const int64_t i[4]) {
  const lt_edges *e = w->edges;
  int64_t n[4];
  lt__shell_query_bits4(t, near, cell, w->limit, e, w->start, i, n);
  for (int q = 0; q < 4; q++) {
    int64_t s = w->start[i[q]], want = w->start[i[q] + 1] - s;
    if (n[q] < 0) n[q] = lt__shell_query_ref(t, near, cell[q], w->limit, want, e->source_row + s, e->distances + s);
    w->short_of[i[q]] = n[q] < want;
  }
}

/* The walk over the query bricks, one task per CHUNK of them (rows: the
 * source bricks' lists for the window, NULL where none is built). */
static void walk(const lt_shell_walk *w, const lt_shell_table *t, const lt_brick_rows *rows, const kernels *k0,
                 int threads) {
  lt_window_cells in;
  lt__window_cells(&in);
  int64_t nb = w->query->nb, chunks = (nb + CHUNK - 1) / CHUNK;
  LT_PARALLEL_FOR_DYNAMIC(threads, ch, chunks, {
    lt_shell_bricks near[2] = {0}; /* their vectors past the bricks present are read, never used */
    lt_brick_cache cache;
    lt_window win;
    kernels k = *k0;
    k.window = rows ? &win : NULL;
    lt__window_init(&win);
    lt__brick_cache_init(&cache);
    int64_t first = ch * CHUNK, last = first + CHUNK < nb ? first + CHUNK : nb;
    near_find(&near[first & 1], w->source, &k.occ, &cache, w->query->keys + first * 4);
    for (int64_t b = first; b < last; b++) {
      /* the next brick's sources fetched while this one's queries run: they are mostly far apart in the index */
      if (b + 1 < last) {
        if (b + 2 < last) near_ahead(w->source, &k.occ, w->query->keys + (b + 2) * 4);
        near_prefetch(&near[(b + 1) & 1], w->source, &k.occ, &cache, w->query->keys + (b + 1) * 4);
        if (rows) lt__window_prefetch(rows, &near[(b + 1) & 1]);
      }
      if (rows) lt__window_build(&win, &in, rows, &near[b & 1]);
      /* the brick's queries by row (a brick's rows are mostly one run): their edges in order; by twos or
       * fours where the bits kernel takes them so */
      const lt_shell_bricks *here = &near[b & 1];
      int most = w->counts || !k.occ.word || rows || !here->ranked ? 1 : here->order ? 4 : 2;
      for (int64_t p = w->query->first[b], end = w->query->first[b + 1]; p < end;) {
        int g = end - p >= 4 && most == 4 ? 4 : end - p >= 2 && most >= 2 ? 2 : 1, c[4];
        int64_t i[4];
        for (int q = 0; q < g; q++)
          i[q] = lt__bricks_row(w->query, p + q), c[q] = lt__brick_cell(w->query->rows + i[q] * 4);
        if (w->counts)
          w->counts[i[0]] = k.occ.word ? lt__shell_count_bits(t, here, c[0], w->limit, w->cap)
                                       : count_one(t, here, c[0], w->limit, w->cap);
        else if (g == 4)
          fill_four(w, t, here, c, i);
        else if (g == 2)
          fill_two(w, t, here, c, i, &k);
        else
          fill_one(w, t, here, c[0], i[0], &k);
        p += g;
      }
    }
    if (k.marks_avx512 && w->edges) lt__edges_fence_avx512(); /* the task's streamed edges, before its end */
  });
}

/* Every source brick's occupancy word and run, for the bits kernel. */
static size_t occupancy_bytes(const lt_bricks *src) {
  return (size_t)(src->nb > 0 ? src->nb : 1) * sizeof(lt_brick_occupancy);
}

static lt_status occupancy_build(lt_ctx *ctx, lt_brick_occupancy **occ, size_t bytes, const lt_bricks *src, int threads,
                                 const char *op) {
  enum { PART = 1024 }; /* bricks a task: a dozen tasks on the bench's support */
  int64_t nb = src->nb;
  if (!(*occ = lt_ctx_alloc(ctx, bytes))) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  lt_brick_occupancy *o = *occ;
  LT_PARALLEL_FOR(threads, j, (nb + PART - 1) / PART,
                  { lt__shell_occupancy(o, src, j * PART, (j + 1) * PART < nb ? (j + 1) * PART : nb); });
  return LT_OK;
}

/* The context's table, built on its first walk (a tenth of a millisecond: 2% of the bench's kNN) and kept. */
static const lt_shell_table *table_of(lt_ctx *ctx) {
  lt_shell_table *t = lt__ctx_slot(ctx, LT_SLOT_SHELLS);
  if (t || !(t = malloc(sizeof *t))) return t;
  lt__shell_table_build(t);
  lt__ctx_set_slot(ctx, LT_SLOT_SHELLS, t, free);
  return t;
}

/* The context's orders, built on the first walk of the bits kernel (~1 MB, in ~1.7 ms) and kept; NULL where
 * out of memory (the kernel then sorts every query's hits). */
static const lt_shell_orders *orders_of(lt_ctx *ctx, const lt_shell_table *t) {
  lt_shell_orders *o = lt__ctx_slot(ctx, LT_SLOT_SHELL_ORDERS);
  if (o || !(o = malloc(sizeof *o))) return o;
  lt__shell_orders_build(t, o);
  lt__ctx_set_slot(ctx, LT_SLOT_SHELL_ORDERS, o, free);
  return o;
}

lt_status lt__shell_walk(lt_ctx *ctx, const lt_shell_walk *w, lt_isa isa, lt_isa *used, int threads, const char *op) {
  LT_ASSERT(w->limit >= 0 && w->limit <= LT_SHELL_D2);
  const lt_shell_table *t = table_of(ctx);
  if (!t) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  lt_brick_rows rows = {0};
  /* the vector kernel's keys hold a row in LT_SHELL_ROW_BITS */
  int vector = isa >= LT_ISA_AVX512 && w->source->nb * LT_BRICK_CELLS <= ((int64_t)1 << LT_SHELL_ROW_BITS);
  /* without it, a fill lists each query brick's candidates once, for the
   * window's kernel (on an AVX-512 Xeon the AVX-512 shells alone take 16 to
   * 19 ms for the bench's kNN, the window with its AVX2 query 27 to 33) */
  int window = w->edges != NULL && !vector;
  if (used) *used = vector ? LT_ISA_AVX512 : window && isa >= LT_ISA_AVX2 ? LT_ISA_AVX2 : LT_ISA_SCALAR;
  /* the AVX-512 kernels: by occupancy bits where the CPU has VBMI2 (a count's too), by gathers where not */
  lt_brick_occupancy *occ = NULL;
  size_t occ_bytes = occupancy_bytes(w->source); /* before a failed cells build frees the index */
  lt_status st =
      vector && lt_cpu_avx512_vbmi2() ? occupancy_build(ctx, &occ, occ_bytes, w->source, threads, op) : LT_OK;
  /* the cells, unless every source brick is ranked: the bits kernel and _ref then find rows by rank */
  int ranked = occ != NULL;
  for (int64_t v = 0; ranked && v < w->source->nb; v++) ranked = occ[v].run >= 0;
  if (!st && !ranked) st = lt__bricks_cells(ctx, w->source, op);
  if (!st && window) st = lt__brick_rows_build(ctx, &rows, w->source, threads, op);
  kernels k = {NULL, {occ, occ ? orders_of(ctx, t) : NULL}, isa >= LT_ISA_AVX2, vector, isa >= LT_ISA_AVX512};
  if (!st) walk(w, t, window ? &rows : NULL, &k, threads);
  if (occ) lt_ctx_free(ctx, occ, occ_bytes);
  lt__brick_rows_free(ctx, &rows);
  return st;
}
