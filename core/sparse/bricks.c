/* The brick index of a coordinate map (sparse/bricks.h): built in a
 * sequential numbering pass (bricks in first-seen order, so the index is the
 * same for any thread count) and two parallel fills. */
#include "sparse/bricks.h"
#include "runtime/parallel.h"

static void free_parts(lt_ctx *ctx, lt_bricks *b) {
  if (b->keys) lt_ctx_free(ctx, b->keys, b->keys_bytes);
  if (b->cells) lt_ctx_free(ctx, b->cells, b->cells_bytes);
  lt__coord_hash_free(ctx, &b->hash);
  *b = (lt_bricks){0};
}

/* Each row's brick, the bricks numbered in first-seen order: sequential, but
 * a row in the brick of the row before it (the common case in Morton order)
 * costs a compare. */
static void number_bricks(lt_bricks *b, const int32_t *rows, int64_t n, int32_t *brick_of) {
  int32_t key[4] = {0};
  int64_t last = -1;
  for (int64_t i = 0; i < n; i++) {
    if (last < 0 || !lt__brick_same(rows + i * 4, key)) {
      lt__brick_key(rows + i * 4, key);
      last = lt__coord_hash_insert(&b->hash, b->keys, &b->nb, key);
    }
    brick_of[i] = (int32_t)last;
  }
}

/* The runs of rows in one brick, at least the bricks (exactly, for rows in
 * Morton order: an aligned brick is one range of the order), so the hash and
 * keys sized by it stay small enough for the caches. */
static int64_t count_runs(const int32_t *rows, int64_t n) {
  int32_t key[4] = {0};
  int64_t runs = 0;
  for (int64_t i = 0; i < n; i++)
    if (!runs || !lt__brick_same(rows + i * 4, key)) runs++, lt__brick_key(rows + i * 4, key);
  return runs;
}

lt_status lt__bricks_build(lt_ctx *ctx, lt_bricks *b, const lt_coords *c, const char *op) {
  *b = (lt_bricks){0};
  int64_t n = c->n, runs = count_runs(lt_tensor_data(c->rows), n);
  size_t of_bytes = (size_t)(n > 0 ? n : 1) * sizeof(int32_t);
  b->keys_bytes = (size_t)(runs > 0 ? runs : 1) * 4 * sizeof(int32_t);
  lt_status st = lt__coord_hash_alloc(ctx, &b->hash, runs, op);
  if (st) return st;
  b->keys = lt_ctx_alloc(ctx, b->keys_bytes);
  int32_t *brick_of = lt_ctx_alloc(ctx, of_bytes);
  if (!b->keys || !brick_of) {
    if (brick_of) lt_ctx_free(ctx, brick_of, of_bytes);
    free_parts(ctx, b);
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the relation's brick index", op);
  }
  const int32_t *rows = lt_tensor_data(c->rows);
  number_bricks(b, rows, n, brick_of);
  b->cells_bytes = (size_t)(b->nb > 0 ? b->nb : 1) * LT_BRICK_CELLS * sizeof(int32_t);
  b->cells = lt_ctx_alloc(ctx, b->cells_bytes);
  if (!b->cells) {
    lt_ctx_free(ctx, brick_of, of_bytes);
    free_parts(ctx, b);
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the relation's brick index", op);
  }
  int32_t *cells = b->cells;
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, b->nb, { memset(cells + k * LT_BRICK_CELLS, 0xff, LT_BRICK_CELLS * sizeof *cells); });
  /* every row has its own cell (the rows are distinct): no two writes meet */
  LT_PARALLEL_FOR(threads, i, n,
                  { cells[(int64_t)brick_of[i] * LT_BRICK_CELLS + lt__brick_cell(rows + i * 4)] = (int32_t)i; });
  lt_ctx_free(ctx, brick_of, of_bytes);
  return LT_OK;
}

void lt__bricks_free(lt_ctx *ctx, lt_bricks *b) { free_parts(ctx, b); }
