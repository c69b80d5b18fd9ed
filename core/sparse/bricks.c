/* The brick index of a coordinate map (sparse/bricks.h): the runs of rows in
 * one brick found by a parallel scan, the bricks numbered over the runs (a
 * sequential pass, but over a run each, about 13 rows in Morton order, where
 * a pass over the rows held kNN's two threads to one for a millisecond),
 * then the cells filled in parallel. Bricks are numbered in first-seen order,
 * so the index is the same for any thread count. */
#include "sparse/bricks.h"
#include "runtime/parallel.h"

#define MOST_PARTS 64 /* ranges of rows the scan splits them into (at most) */

static void free_parts(lt_ctx *ctx, lt_bricks *b) {
  if (b->keys) lt_ctx_free(ctx, b->keys, b->keys_bytes);
  if (b->cells) lt_ctx_free(ctx, b->cells, b->cells_bytes);
  if (b->first) lt_ctx_free(ctx, b->first, b->first_bytes);
  if (b->order) lt_ctx_free(ctx, b->order, b->order_bytes);
  if (b->grid.at) lt_ctx_free(ctx, b->grid.at, b->grid.bytes);
  lt__coord_hash_free(ctx, &b->hash);
  *b = (lt_bricks){0};
}

/* The rows of [lo, hi) that start a run (their brick differs from the row
 * before them) into at; their number. A row in the brick of the row before it
 * (the common case in Morton order) costs a compare. */
static int64_t starts_in(const int32_t *rows, int64_t lo, int64_t hi, int32_t *at) {
  int32_t key[4] = {0};
  int64_t m = 0;
  if (lo > 0) lt__brick_key(rows + (lo - 1) * 4, key);
  for (int64_t i = lo; i < hi; i++)
    if (i == 0 || !lt__brick_same(rows + i * 4, key)) at[m++] = (int32_t)i, lt__brick_key(rows + i * 4, key);
  return m;
}

/* The first row of each run into at[0 .. runs), at[runs] = n; returns runs.
 * Each range writes its starts at its own first row (a range of r rows has at
 * most r), then they move down in range order: the list of a sequential scan. */
static int64_t run_starts(const int32_t *rows, int64_t n, int threads, int32_t *at) {
  int parts = threads < MOST_PARTS ? threads : MOST_PARTS;
  int64_t found[MOST_PARTS], runs = 0;
  LT_PARALLEL_FOR(threads, p, parts, {
    int64_t lo = n * p / parts;
    found[p] = starts_in(rows, lo, n * (p + 1) / parts, at + lo);
  });
  for (int p = 0; p < parts; p++) {
    memmove(at + runs, at + n * p / parts, (size_t)found[p] * sizeof *at);
    runs += found[p];
  }
  at[runs] = (int32_t)n;
  return runs;
}

/* The product of the sizes, saturated far below overflow. */
static int64_t volume_of(const int64_t size[4]) {
  int64_t volume = 1;
  for (int a = 0; a < 4; a++) volume = size[a] > (INT64_MAX >> 4) / volume ? INT64_MAX >> 4 : volume * size[a];
  return volume;
}

/* The grid's box over the runs' keys, and a margin of one brick on each
 * spatial side, so that the 27 bricks around any brick lie in it (a walk's
 * look at them is then fixed strides, sparse/neighbor_shells.c); whether
 * the box without the margin is small enough. */
static int grid_plan(lt_brick_grid *g, const int32_t *rows, const int32_t *at, int64_t runs) {
  int64_t hi[4];
  for (int a = 0; a < 4; a++) g->lo[a] = INT64_MAX, hi[a] = INT64_MIN;
  for (int64_t r = 0; r < runs; r++) {
    int32_t key[4];
    lt__brick_key(rows + (int64_t)at[r] * 4, key);
    for (int a = 0; a < 4; a++)
      g->lo[a] = key[a] < g->lo[a] ? key[a] : g->lo[a], hi[a] = key[a] > hi[a] ? key[a] : hi[a];
  }
  if (!runs) return 0;
  for (int a = 0; a < 4; a++) g->size[a] = hi[a] - g->lo[a] + 1;
  int small = volume_of(g->size) <= 8 * runs + 8192;
  for (int a = 1; a < 4; a++) g->lo[a]--, g->size[a] += 2;
  g->bytes = (size_t)volume_of(g->size) * sizeof *g->at;
  return small;
}

/* Each run's brick (brick_of[r]), the bricks numbered in first-seen order
 * through the grid or the hash: a run starts the brick it is in only if no
 * run before it was in that brick (in Morton order none was). */
static void number_bricks(lt_bricks *b, const int32_t *rows, const int32_t *at, int64_t runs, int32_t *brick_of) {
  const lt_brick_grid *g = &b->grid;
  for (int64_t r = 0; r < runs; r++) {
    int32_t key[4];
    lt__brick_key(rows + (int64_t)at[r] * 4, key);
    if (!g->at) {
      brick_of[r] = (int32_t)lt__coord_hash_insert(&b->hash, b->keys, &b->nb, key);
      continue;
    }
    int64_t i = 0;
    for (int a = 0; a < 4; a++) i = i * g->size[a] + key[a] - g->lo[a];
    if (g->at[i] < 0) memcpy(b->keys + b->nb * 4, key, sizeof key), g->at[i] = (int32_t)b->nb++;
    brick_of[r] = g->at[i];
  }
}

/* The grid where the box is small, else the hash. */
static lt_status index_alloc(lt_ctx *ctx, lt_bricks *b, const int32_t *rows, const int32_t *at, int64_t runs,
                             const char *op) {
  if (!grid_plan(&b->grid, rows, at, runs)) {
    b->grid = (lt_brick_grid){0};
    return lt__coord_hash_alloc(ctx, &b->hash, runs, op);
  }
  b->grid.at = lt_ctx_alloc(ctx, b->grid.bytes);
  if (!b->grid.at) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the relation's brick index", op);
  memset(b->grid.at, 0xff, b->grid.bytes);
  return LT_OK;
}

/* The bricks' row lists (lt_bricks.first, order) from the runs: the runs
 * themselves where each brick is one, else a counting sort of the runs by
 * brick (stable: each list ascending). */
static int lists_build(lt_ctx *ctx, lt_bricks *b, const int32_t *at, int64_t runs, const int32_t *brick_of) {
  b->first_bytes = (size_t)(b->nb + 1) * sizeof *b->first;
  b->first = lt_ctx_alloc(ctx, b->first_bytes);
  if (!b->first) return 0;
  if (b->nb == runs) {
    memcpy(b->first, at, b->first_bytes);
    return 1;
  }
  int64_t n = at[runs];
  b->order_bytes = (size_t)(n > 0 ? n : 1) * sizeof *b->order;
  b->order = lt_ctx_alloc(ctx, b->order_bytes);
  if (!b->order) return 0;
  int32_t *next = b->first;
  memset(next, 0, b->first_bytes);
  for (int64_t r = 0; r < runs; r++) next[brick_of[r] + 1] += at[r + 1] - at[r];
  for (int64_t k = 0; k < b->nb; k++) next[k + 1] += next[k];
  for (int64_t r = 0; r < runs; r++) /* next[brick] moves to the brick's end: first[k] is then brick k + 1's start */
    for (int32_t i = at[r]; i < at[r + 1]; i++) b->order[next[brick_of[r]]++] = i;
  memmove(b->first + 1, b->first, (size_t)b->nb * sizeof *b->first);
  b->first[0] = 0;
  return 1;
}

static lt_status out_of_memory(lt_ctx *ctx, lt_bricks *b, const char *op) {
  free_parts(ctx, b);
  return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the relation's brick index", op);
}

lt_status lt__bricks_index(lt_ctx *ctx, lt_bricks *b, const lt_coords *c, const char *op) {
  *b = (lt_bricks){0};
  int64_t n = c->n;
  const int32_t *rows = b->rows = lt_tensor_data(c->rows);
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  /* at: the runs' first rows (n + 1 at most), brick_of: their bricks */
  size_t scratch_bytes = (size_t)(2 * n + 2) * sizeof(int32_t);
  int32_t *at = lt_ctx_alloc(ctx, scratch_bytes);
  if (!at) return out_of_memory(ctx, b, op);
  int32_t *brick_of = at + n + 1;
  int64_t runs = run_starts(rows, n, threads, at);
  b->keys_bytes = (size_t)(runs > 0 ? runs : 1) * 4 * sizeof(int32_t);
  lt_status st = index_alloc(ctx, b, rows, at, runs, op);
  if (st) {
    lt_ctx_free(ctx, at, scratch_bytes);
    return st;
  }
  int ok = (b->keys = lt_ctx_alloc(ctx, b->keys_bytes)) != NULL;
  if (ok) number_bricks(b, rows, at, runs, brick_of);
  ok = ok && lists_build(ctx, b, at, runs, brick_of);
  lt_ctx_free(ctx, at, scratch_bytes);
  return ok ? LT_OK : out_of_memory(ctx, b, op);
}

/* A brick's cells from its row list: cleared and placed in one pass, while
 * they are in cache. Every row has its own cell (the rows are distinct): no
 * two writes meet. */
lt_status lt__bricks_cells(lt_ctx *ctx, lt_bricks *b, const char *op) {
  if (b->cells) return LT_OK;
  b->cells_bytes = (size_t)(b->nb > 0 ? b->nb : 1) * LT_BRICK_CELLS * sizeof(int32_t);
  if (!(b->cells = lt_ctx_alloc(ctx, b->cells_bytes))) return out_of_memory(ctx, b, op);
  int32_t *cells = b->cells;
  const lt_bricks *src = b;
  int threads = b->first[b->nb] >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, src->nb, {
    int32_t *mine = cells + k * LT_BRICK_CELLS;
    memset(mine, 0xff, LT_BRICK_CELLS * sizeof *cells);
    for (int64_t p = src->first[k]; p < src->first[k + 1]; p++) {
      int64_t i = lt__bricks_row(src, p);
      mine[lt__brick_cell(src->rows + i * 4)] = (int32_t)i;
    }
  });
  return LT_OK;
}

lt_status lt__bricks_build(lt_ctx *ctx, lt_bricks *b, const lt_coords *c, const char *op) {
  lt_status st = lt__bricks_index(ctx, b, c, op);
  return st ? st : lt__bricks_cells(ctx, b, op);
}

void lt__bricks_free(lt_ctx *ctx, lt_bricks *b) { free_parts(ctx, b); }
