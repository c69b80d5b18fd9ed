/* The brick index of a coordinate map (sparse/bricks.c): its rows grouped
 * into bricks of 4x4x4 cells, each brick a dense table of the rows in its
 * cells, for the relation builder's neighbour queries. A kernel's window
 * around one row touches a few neighbouring bricks, which a small cache of
 * the querying thread keeps, so most queries are one load from a dense table
 * instead of a probe of the map's hash plus a compare against its rows (two
 * cache misses each on a large support). Rows in Morton order make the
 * bricks of consecutive rows the same ones. Memory: 20 + 256 bytes a brick
 * (the 256 of cells only where built), at most one brick a row, and the
 * grid's at most 32 bytes a run of rows (plus 32 KB) before its margin
 * (which adds ~35% to a surface's box, and at most 27x to a box one brick
 * wide) or the hash; 4 bytes a row where the rows are not in brick order.
 * It lives while one relation is built. */
#ifndef LATTICE_SPARSE_BRICKS_H
#define LATTICE_SPARSE_BRICKS_H

#include <string.h>
#include "sparse/internal.h"

#define LT_BRICK_BITS  2 /* a brick is 4 cells a side */
#define LT_BRICK_CELLS 64
#define LT_BRICK_CACHE 64 /* slots: 2 low bits of each axis of a brick's key */

/* The bricks by key on a dense grid over their keys' box (batch, x, y, z)
 * and a margin of one brick on each side of x, y and z, where the box
 * without the margin holds at most 8 cells a brick (plus 8192: a surface's
 * bricks fill a few percent of their box): a lookup is one load, no hash
 * probe. at[((b * size[1] + x) * size[2] + y) * size[3] + z] for the key
 * lo + (b, x, y, z), -1 where no brick is. */
typedef struct lt_brick_grid {
  int32_t *at;
  int64_t lo[4], size[4];
  size_t bytes;
} lt_brick_grid;

typedef struct lt_bricks {
  int32_t *keys;      /* (nb, 4): (batch, floor(x/4), floor(y/4), floor(z/4)), first-seen order */
  int32_t *cells;     /* (nb, 64): the row in each cell, -1 where none (NULL until built) */
  lt_brick_grid grid; /* over keys, where their box is small (grid.at NULL elsewhere) */
  lt_coord_hash hash; /* over keys, where there is no grid */
  /* brick b's rows, ascending: order[first[b] .. first[b + 1]), order NULL
   * where it is 0 .. n - 1 (each brick one run of rows, as in Morton order),
   * so a walk over the bricks meets the rows in order */
  int32_t *first, *order;
  const int32_t *rows; /* the map's (n, 4) */
  int64_t nb;
  size_t keys_bytes, cells_bytes, first_bytes, order_bytes;
} lt_bricks;

/* A thread's recently used bricks (brick -2: an empty slot). */
typedef struct lt_brick_cache {
  int32_t key[LT_BRICK_CACHE][4];
  int32_t brick[LT_BRICK_CACHE];
} lt_brick_cache;

/* The index of map c. Fails with "<op>: out of memory ..." on the context
 * (b then freed). _index leaves cells NULL, for a walk that may not need
 * them (sparse/neighbor_shells.h); _cells builds them (once) from the row
 * lists. */
lt_status lt__bricks_build(lt_ctx *ctx, lt_bricks *b, const lt_coords *c, const char *op);
lt_status lt__bricks_index(lt_ctx *ctx, lt_bricks *b, const lt_coords *c, const char *op);
lt_status lt__bricks_cells(lt_ctx *ctx, lt_bricks *b, const char *op);
void lt__bricks_free(lt_ctx *ctx, lt_bricks *b);

/* The row at position p of the bricks' row lists (lt_bricks.order). */
static inline int64_t lt__bricks_row(const lt_bricks *b, int64_t p) { return b->order ? b->order[p] : p; }

static inline void lt__brick_cache_init(lt_brick_cache *cache) {
  for (int s = 0; s < LT_BRICK_CACHE; s++) cache->brick[s] = -2;
}

/* floor(v / 4) without shifting a negative value. */
static inline int32_t lt__brick_of(int32_t v) { return v < 0 ? ~(~v >> LT_BRICK_BITS) : v >> LT_BRICK_BITS; }

static inline void lt__brick_key(const int32_t *c, int32_t *key) {
  key[0] = c[0];
  for (int a = 1; a < 4; a++) key[a] = lt__brick_of(c[a]);
}

/* Whether row c lies in the brick of key: compared a field at a time, as
 * the key was stored, where a memcmp's wide loads of a key just stored a
 * field at a time wait for the stores to retire (a store-forwarding stall
 * on every row of a loop). */
static inline int lt__brick_same(const int32_t *c, const int32_t *key) {
  return c[0] == key[0] && lt__brick_of(c[1]) == key[1] && lt__brick_of(c[2]) == key[2] && lt__brick_of(c[3]) == key[3];
}

/* Two keys equal, a field at a time (as lt__brick_same). */
static inline int lt__key_equal(const int32_t *a, const int32_t *b) {
  return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static inline int lt__brick_cell(const int32_t *c) {
  const int32_t m = (1 << LT_BRICK_BITS) - 1;
  return (c[1] & m) << (2 * LT_BRICK_BITS) | (c[2] & m) << LT_BRICK_BITS | (c[3] & m);
}

/* The brick with key k, or -1: on the grid, or through the thread's cache
 * of recent ones (neighbouring lookups mostly meet the same bricks) and
 * the hash. */
static inline int64_t lt__bricks_brick(const lt_bricks *b, lt_brick_cache *cache, const int32_t *k) {
  const lt_brick_grid *g = &b->grid;
  if (g->at) {
    int64_t i = 0;
    for (int a = 0; a < 4; a++) {
      int64_t v = k[a] - g->lo[a];
      if (v < 0 || v >= g->size[a]) return -1;
      i = i * g->size[a] + v;
    }
    return g->at[i];
  }
  /* neighbouring bricks differ in the low bits of their keys: they take different slots */
  int s = (k[1] & 3) << 4 | (k[2] & 3) << 2 | (k[3] & 3);
  if (cache->brick[s] == -2 || !lt__key_equal(cache->key[s], k)) {
    cache->brick[s] = (int32_t)lt__coord_hash_find(&b->hash, b->keys, k);
    memcpy(cache->key[s], k, 4 * sizeof *k);
  }
  return cache->brick[s];
}

/* The row with coordinates c (batch, x, y, z), or -1. */
static inline int64_t lt__bricks_find(const lt_bricks *b, lt_brick_cache *cache, const int32_t *c) {
  int32_t key[4];
  lt__brick_key(c, key);
  int64_t br = lt__bricks_brick(b, cache, key);
  return br < 0 ? -1 : b->cells[br * LT_BRICK_CELLS + lt__brick_cell(c)];
}

#endif
