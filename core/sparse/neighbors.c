/* Neighbour relations between coordinate maps (lattice/sparse_neighbors.h).
 *
 * kNN lays its edges out first (each query has min(k, its batch's sources)),
 * then the walk of sparse/neighbor_shells.h fills every query whose k-th
 * neighbour lies within d^2 <= 16 (by the candidate window of its brick,
 * sparse/neighbor_window.h, where that decides it, else by the shells), and
 * the grid search below the rest (and all of them for k beyond the shells'
 * offsets). Radius relations with
 * r^2 <= 16 are counted and filled by the shells alone; wider ones by the
 * grid search.
 *
 * The grid search: the source rows are bucketed into cubic cells of side h (lattice units)
 * through the coordinate hash (sparse/internal.h), keyed (batch, floor(p / h)),
 * their rows listed per cell by a counting sort (in row order). A query in
 * cell c visits the cells in rings of Chebyshev distance R = 0, 1, ... around
 * c: every source not yet visited after ring R lies farther than R h (its
 * cell differs by R + 1 on some axis, so its coordinate by at least R h + 1),
 * which bounds the search:
 *   knn     keep the k best (d^2, row) seen; stop once k are held and the
 *           k-th d^2 is below the squared distance from the query to the
 *           nearest unvisited cell, or the rings cover every source cell;
 *   radius  h = ceil(r): ring 1 covers the ball; every d^2 <= r^2 is kept,
 *           all of them (counted first) or the best max_neighbors.
 * kNN groups the queries by cell, so that the queries of one cell gather
 * the sources around it once (gather_knn). One task per query cell, each
 * writing only its queries' edges: deterministic. Edges
 * are listed by query row, nearest first, equal distances by source row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/parallel.h"
#include "sparse/internal.h"
#include "sparse/neighbor_shells.h"

typedef struct grid {
  int32_t h;
  int64_t ncell;
  lt_coord_hash hash;
  int32_t *cells;       /* (ncell, 4) the cell keys */
  int64_t *start;       /* (ncell + 1) */
  int32_t *rows;        /* (n) source rows by cell */
  int32_t *coords;      /* (n, 3) their x, y, z, by cell (read as a stream) */
  int64_t lo[3], hi[3]; /* the cells' extent */
  int64_t maxcell;      /* the most rows one cell holds */
  void *block;
  size_t bytes;
} grid;

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static void cell_of(int32_t *key, const int32_t *r, int32_t h) {
  key[0] = r[0];
  for (int a = 1; a < 4; a++) key[a] = (int32_t)floor_div(r[a], h);
}

static void grid_free(lt_ctx *ctx, grid *g) {
  lt__coord_hash_free(ctx, &g->hash);
  if (g->block) lt_ctx_free(ctx, g->block, g->bytes);
  g->block = NULL;
}

/* The cells of the n source rows and their row lists (sequential: the order is fixed). */
static lt_status grid_build(lt_ctx *ctx, grid *g, const int32_t *src, int64_t n, int32_t h, const char *op) {
  *g = (grid){.h = h};
  g->bytes = (size_t)(n + 1) * (16 + 8 + 4 + 12 + 4);
  g->block = lt_ctx_alloc(ctx, g->bytes);
  if (!g->block) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for a neighbour grid", op);
  lt_status st = lt__coord_hash_alloc(ctx, &g->hash, n, op);
  if (st) return st;
  g->cells = g->block;
  g->start = (int64_t *)(g->cells + 4 * (n + 1));
  g->rows = (int32_t *)(g->start + n + 1);
  g->coords = g->rows + n;
  int32_t *cell_of_row = g->coords + 3 * n;
  for (int a = 0; a < 3; a++) g->lo[a] = INT64_MAX, g->hi[a] = INT64_MIN;
  for (int64_t i = 0; i < n; i++) {
    int32_t key[4];
    cell_of(key, src + i * 4, h);
    cell_of_row[i] = (int32_t)lt__coord_hash_insert(&g->hash, g->cells, &g->ncell, key);
    for (int a = 0; a < 3; a++) {
      if (key[a + 1] < g->lo[a]) g->lo[a] = key[a + 1];
      if (key[a + 1] > g->hi[a]) g->hi[a] = key[a + 1];
    }
  }
  memset(g->start, 0, (size_t)(g->ncell + 1) * sizeof *g->start);
  for (int64_t i = 0; i < n; i++) g->start[cell_of_row[i] + 1]++;
  for (int64_t c = 0; c < g->ncell; c++) {
    if (g->start[c + 1] > g->maxcell) g->maxcell = g->start[c + 1];
    g->start[c + 1] += g->start[c];
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t at = g->start[cell_of_row[i]]++;
    g->rows[at] = (int32_t)i;
    memcpy(g->coords + at * 3, src + i * 4 + 1, 12);
  }
  for (int64_t c = g->ncell; c > 0; c--) g->start[c] = g->start[c - 1]; /* the fill moved each start to the next */
  g->start[0] = 0;
  return LT_OK;
}

/* ---- one query ---- */

typedef struct best {
  uint64_t d;
  int32_t row;
} best;

static int before(uint64_t d, int32_t row, const best *b) { return d < b->d || (d == b->d && row < b->row); }

/* Inserts (d, row) into the sorted list b (*m held, at most cap). */
static void keep(best *b, int64_t *m, int64_t cap, uint64_t d, int32_t row) {
  if (*m == cap && !before(d, row, &b[cap - 1])) return;
  int64_t j = *m < cap ? (*m)++ : cap - 1;
  while (j > 0 && before(d, row, &b[j - 1])) b[j] = b[j - 1], j--;
  b[j] = (best){d, row};
}

/* d^2, saturated at UINT64_MAX: int32 coordinates lie up to 2^32 - 1 apart
 * on an axis, whose square fits only unsigned (three of them do not: the
 * pairs that far apart on two axes or more tie, by row). */
static uint64_t dist2(const int32_t *p, const int32_t *q) {
  uint64_t s = 0;
  for (int a = 0; a < 3; a++) {
    int64_t d = (int64_t)p[a] - q[a];
    uint64_t u = (uint64_t)(d < 0 ? -d : d) * (uint64_t)(d < 0 ? -d : d);
    s = s + u < s ? UINT64_MAX : s + u;
  }
  return s;
}

/* d^2 of a distance d >= 0 along one axis, saturated as dist2's. */
static uint64_t square(int64_t d) { return d >> 32 ? UINT64_MAX : (uint64_t)d * (uint64_t)d; }

typedef struct search {
  const grid *g;
  int64_t cap;    /* most edges per query (INT64_MAX: all, counted) */
  uint64_t limit; /* d^2 bound (UINT64_MAX: none) */
  int32_t rings;  /* last ring (-1: until the k-th is final) */
  int whole;      /* cap is every source of the query's batch (fewer than k): done once cap are held */
} search;

/* Visits the sources of cell c + (dx, dy, dz) of query q (batch b): keeps or counts those within the limit. */
static void visit(const search *s, const int32_t *c, const int64_t *dd, const int32_t *q, best *b, int64_t *m) {
  int32_t key[4] = {c[0]};
  for (int a = 0; a < 3; a++) {
    int64_t v = (int64_t)c[a + 1] + dd[a];
    if (v < s->g->lo[a] || v > s->g->hi[a]) return;
    key[a + 1] = (int32_t)v;
  }
  int64_t cell = lt__coord_hash_find(&s->g->hash, s->g->cells, key);
  if (cell < 0) return;
  for (int64_t k = s->g->start[cell]; k < s->g->start[cell + 1]; k++) {
    uint64_t d = dist2(s->g->coords + k * 3, q + 1);
    if (d > s->limit) continue;
    if (b)
      keep(b, m, s->cap, d, s->g->rows[k]);
    else
      (*m)++;
  }
}

/* The ring R of query q: its shell cells only. */
static void ring(const search *s, const int32_t *c, int32_t r, const int32_t *q, best *b, int64_t *m) {
  for (int64_t x = -r; x <= r; x++)
    for (int64_t y = -r; y <= r; y++)
      for (int64_t z = -r; z <= r; z++) {
        if (llabs(x) != r && llabs(y) != r && llabs(z) != r) continue;
        visit(s, c, (int64_t[]){x, y, z}, q, b, m);
      }
}

/* The largest ring that can still reach a source cell from cell c. */
static int64_t last_ring(const grid *g, const int32_t *c) {
  int64_t r = 0;
  for (int a = 0; a < 3; a++) {
    int64_t d = c[a + 1] - g->lo[a] > g->hi[a] - c[a + 1] ? c[a + 1] - g->lo[a] : g->hi[a] - c[a + 1];
    if (d > r) r = d;
  }
  return r;
}

/* The least distance from q (in cell c) to a source outside the cells of
 * rings 0..r: to the nearest face of their block, one past it. */
static int64_t outside(const int32_t *q, const int32_t *c, int64_t r, int64_t h) {
  int64_t least = INT64_MAX;
  for (int a = 1; a < 4; a++) {
    int64_t below = q[a] - ((c[a] - r) * h - 1), above = (c[a] + r + 1) * h - q[a];
    if (below < least) least = below;
    if (above < least) least = above;
  }
  return least;
}

/* kNN of query q over every source of its batch, cell by cell of the grid:
 * the same list as the rings' (keep's is the cap smallest (d^2, row) in any
 * order of visits). */
static int64_t scan(const search *s, const int32_t *q, best *b) {
  const grid *g = s->g;
  int64_t m = 0;
  for (int64_t c = 0; c < g->ncell; c++) {
    if (g->cells[c * 4] != q[0]) continue;
    for (int64_t k = g->start[c]; k < g->start[c + 1]; k++)
      keep(b, &m, s->cap, dist2(g->coords + k * 3, q + 1), g->rows[k]);
  }
  return m;
}

/* Query q's edges into b (sorted; NULL: only counted); returns their number.
 * A kNN whose rings would cover more cells than there are source rows scans
 * them instead (at most about the work of the rings so far): ring R probes
 * ~24 R^2 cells, mostly empty ones around a query far from its neighbours
 * (an outlier, a batch of few sources beside a wide one), where the rings
 * grew as the cube of the distance. */
static int64_t query(const search *s, const int32_t *q, best *b) {
  int32_t c[4];
  cell_of(c, q, s->g->h);
  int64_t m = 0, stop = s->rings >= 0 ? s->rings : last_ring(s->g, c);
  for (int64_t r = 0; r <= stop && s->g->ncell; r++) {
    if (s->rings < 0 && (2 * r + 1) * (2 * r + 1) * (2 * r + 1) > s->g->start[s->g->ncell]) return scan(s, q, b);
    ring(s, c, (int32_t)r, q, b, &m);
    if (s->rings >= 0 || m < s->cap) continue;
    if (s->whole) break;
    /* strictly: an outside source at d^2 with a lower row would come first */
    if (b[m - 1].d < square(outside(q, c, r, s->g->h))) break;
  }
  return m;
}

/* ---- the relation ---- */

/* All the edges within the limit, per query: counted, laid out by prefix sum, filled in order. */
static lt_status gather_all(lt_ctx *ctx, best **out, int64_t *start, const search *s, const int32_t *qr, int64_t nq,
                            int threads, size_t *bytes, const char *op) {
  LT_PARALLEL_FOR(threads, i, nq, {
    int64_t m = 0;
    int32_t c[4];
    cell_of(c, qr + i * 4, s->g->h);
    ring(s, c, 0, qr + i * 4, NULL, &m);
    ring(s, c, 1, qr + i * 4, NULL, &m);
    start[i + 1] = m;
  });
  start[0] = 0;
  for (int64_t i = 0; i < nq; i++) start[i + 1] += start[i];
  *bytes = (size_t)(start[nq] + 1) * sizeof(best);
  best *b = lt_ctx_alloc(ctx, *bytes);
  if (!b) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for %lld neighbour edges", op, (long long)start[nq]);
  LT_PARALLEL_FOR(threads, i, nq, {
    int64_t m = 0;
    int32_t c[4];
    cell_of(c, qr + i * 4, s->g->h);
    search fill = *s;
    fill.cap = start[i + 1] - start[i];
    if (fill.cap > 0) {
      ring(&fill, c, 0, qr + i * 4, b + start[i], &m);
      ring(&fill, c, 1, qr + i * 4, b + start[i], &m);
    }
  });
  *out = b;
  return LT_OK;
}

/* Query i's m = start[i + 1] edges, at b + i cap, laid out by prefix sum in place. */
static void compact(best *b, int64_t *start, int64_t nq, int64_t cap) {
  start[0] = 0;
  for (int64_t i = 0; i < nq; i++) { /* query i's edges move down, never over unread ones */
    int64_t m = start[i + 1];
    memmove(b + start[i], b + i * cap, (size_t)m * sizeof *b);
    start[i + 1] = start[i] + m;
  }
}

/* The best `cap` edges per query, into a (nq, cap) buffer, then laid out by prefix sum. */
static lt_status gather_best(lt_ctx *ctx, best **out, int64_t *start, const search *s, const int32_t *qr, int64_t nq,
                             int threads, size_t *bytes, const char *op) {
  *bytes = (size_t)(nq * s->cap + 1) * sizeof(best);
  best *b = lt_ctx_alloc(ctx, *bytes);
  if (!b)
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for %lld neighbour edges", op, (long long)(nq * s->cap));
  LT_PARALLEL_FOR(threads, i, nq, { start[i + 1] = query(s, qr + i * 4, b + i * s->cap); });
  compact(b, start, nq, s->cap);
  *out = b;
  return LT_OK;
}

/* A source row near a cell of queries, with its coordinates. */
typedef struct cand {
  int32_t xyz[3], row;
} cand;

/* The sources of the 27 cells around cell `key` into buf; returns their number. */
static int64_t around(const grid *g, const int32_t *key, cand *buf) {
  int64_t n = 0;
  for (int64_t x = -1; x <= 1; x++)
    for (int64_t y = -1; y <= 1; y++)
      for (int64_t z = -1; z <= 1; z++) {
        int64_t dd[3] = {x, y, z}, cell = -1;
        int32_t k[4] = {key[0]};
        int ok = 1;
        for (int a = 0; a < 3; a++) {
          int64_t v = (int64_t)key[a + 1] + dd[a];
          ok &= v >= g->lo[a] && v <= g->hi[a];
          k[a + 1] = (int32_t)v;
        }
        if (ok) cell = lt__coord_hash_find(&g->hash, g->cells, k);
        for (int64_t j = cell < 0 ? 0 : g->start[cell]; cell >= 0 && j < g->start[cell + 1]; j++) {
          memcpy(buf[n].xyz, g->coords + j * 3, 12);
          buf[n++].row = g->rows[j];
        }
      }
  return n;
}

/* kNN with the queries grouped by cell (qg: their grid, of the same side):
 * the queries of one cell share the sources of the 27 cells around it, one
 * gather for all of them; a query whose k-th is not final within them (too
 * few, or one could lie beyond) searches ring by ring on its own. Either way
 * its list is the k smallest (d^2, row): the same as query() alone. Query
 * j's edges go to b + j cap; found[j] holds the edges it is owed
 * (min(k, its batch's sources)) and gets the number found. */
static lt_status gather_knn(lt_ctx *ctx, best *b, int64_t *found, const search *s, const grid *qg, const int32_t *qr,
                            int threads, const char *op) {
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, threads, (size_t)(27 * s->g->maxcell + 1) * sizeof(cand), op)) return LT_ERR_MEM;
  int64_t h = s->g->h;
  LT_PARALLEL_FOR(threads, c, qg->ncell, {
    cand *buf = lt__workspace_mine(&ws);
    const int32_t *key = qg->cells + c * 4;
    int64_t nc = around(s->g, key, buf);
    for (int64_t j = qg->start[c]; j < qg->start[c + 1]; j++) {
      int32_t i = qg->rows[j];
      const int32_t *q = qr + (int64_t)i * 4;
      best *bi = b + (int64_t)i * s->cap;
      search si = *s;
      si.cap = found[i], si.whole = found[i] < s->cap;
      int64_t m = 0;
      for (int64_t t = 0; t < nc; t++) keep(bi, &m, si.cap, dist2(buf[t].xyz, q + 1), buf[t].row);
      if (m < si.cap || (!si.whole && bi[m - 1].d >= square(outside(q, key, 1, h)))) m = query(&si, q, bi);
      found[i] = m;
    }
  });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

/* ---- the relation's tensors ---- */

/* The relation's tensors for n edges of nq queries, their arrays into *e;
 * the offsets (nq + 1) are left for the caller to write. */
static lt_status edges_alloc(lt_ctx *ctx, lt_neighbors *r, lt_edges *e, int64_t n, int64_t nq) {
  lt_status st = lt_tensor_new(ctx, &r->query_row, LT_INT32, 1, &n);
  if (!st) st = lt_tensor_new(ctx, &r->source_row, LT_INT32, 1, &n);
  if (!st) st = lt_tensor_new(ctx, &r->neighbor_id, LT_INT32, 1, &n);
  if (!st) st = lt_tensor_new(ctx, &r->distances, LT_FLOAT32, 1, &n);
  if (!st) st = lt_tensor_new(ctx, &r->row_offsets, LT_INT64, 1, (int64_t[]){nq + 1});
  if (st) return st;
  *e = (lt_edges){lt_tensor_data(r->query_row), lt_tensor_data(r->source_row), lt_tensor_data(r->neighbor_id),
                  lt_tensor_data(r->distances)};
  return LT_OK;
}

/* The same for the edge offsets start (nq + 1). */
static lt_status edges_new(lt_ctx *ctx, lt_neighbors *r, lt_edges *e, const int64_t *start, int64_t nq) {
  lt_status st = edges_alloc(ctx, r, e, start[nq], nq);
  if (!st) memcpy(lt_tensor_data(r->row_offsets), start, (size_t)(nq + 1) * sizeof *start);
  return st;
}

/* Query i's m edges from its sorted list b, at edge s. */
static void edges_put(const lt_edges *e, int64_t i, int64_t s, const best *b, int64_t m) {
  for (int64_t j = 0; j < m; j++) {
    e->query_row[s + j] = (int32_t)i, e->source_row[s + j] = b[j].row, e->neighbor_id[s + j] = (int32_t)j;
    e->distances[s + j] = (float)b[j].d;
  }
}

static lt_status emit(lt_ctx *ctx, lt_neighbors *r, const best *b, const int64_t *start, int64_t nq) {
  lt_edges e;
  lt_status st = edges_new(ctx, r, &e, start, nq);
  for (int64_t i = 0; !st && i < nq; i++) edges_put(&e, i, start[i], b + start[i], start[i + 1] - start[i]);
  return st;
}

/* The brick indexes of the two maps (*qb the source's when they are one). */
static lt_status bricks_of(lt_ctx *ctx, lt_bricks *sb, lt_bricks *qb, const lt_bricks **qbp, const lt_coords *source,
                           const lt_coords *query, const char *op) {
  *sb = *qb = (lt_bricks){0};
  lt_status st = lt__bricks_index(ctx, sb, source, op); /* the walk builds the cells it reads */
  if (!st && query != source) st = lt__bricks_index(ctx, qb, query, op);
  *qbp = query != source ? qb : sb;
  return st;
}

/* ---- kNN ---- */

/* Whether every row of the n has batch b (rows or brick keys: both hold
 * the batch first of four). */
static int all_in(const int32_t *rows, int64_t n, int32_t b) {
  int64_t other = 0;
  for (int64_t i = 0; i < n; i++) other += rows[i * 4] != b;
  return other == 0;
}

/* The edges of every query when all rows of both maps lie in one batch:
 * min(k, the sources); else -1. Read off the brick keys where the indexes
 * are built (sb, qb: a few percent of the rows), else off the rows. */
static int64_t one_batch_cap(const lt_coords *source, const lt_coords *query, const lt_bricks *sb, const lt_bricks *qb,
                             int64_t k) {
  const int32_t *sr = lt_tensor_data(source->rows), *qr = lt_tensor_data(query->rows);
  if (!source->n) return 0;
  int one = sb ? all_in(sb->keys, sb->nb, sr[0]) && all_in(qb->keys, qb->nb, sr[0])
               : all_in(sr, source->n, sr[0]) && all_in(qr, query->n, sr[0]);
  return one ? (source->n < k ? source->n : k) : -1;
}

/* start[i + 1] = min(k, the source rows of query i's batch): the batches
 * counted through a hash of their values, one insert per run of equal ones. */
static lt_status batch_caps(lt_ctx *ctx, int64_t *start, const lt_coords *source, const lt_coords *query, int64_t k,
                            const char *op) {
  const int32_t *sr = lt_tensor_data(source->rows), *qr = lt_tensor_data(query->rows);
  int64_t runs = 0, nb = 0, id = -1;
  for (int64_t i = 0; i < source->n; i++) runs += !i || sr[i * 4] != sr[(i - 1) * 4];
  size_t bytes = (size_t)(runs + 1) * (4 * sizeof(int32_t) + sizeof(int64_t));
  int32_t *keys = lt_ctx_alloc(ctx, bytes);
  if (!keys) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  int64_t *count = (int64_t *)(keys + 4 * (runs + 1));
  memset(count, 0, (size_t)(runs + 1) * sizeof *count);
  lt_coord_hash hash = {0};
  lt_status st = lt__coord_hash_alloc(ctx, &hash, runs, op);
  for (int64_t i = 0; !st && i < source->n; i++) {
    if (!i || sr[i * 4] != sr[(i - 1) * 4])
      id = lt__coord_hash_insert(&hash, keys, &nb, (int32_t[]){sr[i * 4], 0, 0, 0});
    count[id]++;
  }
  int64_t cap = 0;
  for (int64_t i = 0; !st && i < query->n; i++) {
    if (!i || qr[i * 4] != qr[(i - 1) * 4]) {
      id = lt__coord_hash_find(&hash, keys, (int32_t[]){qr[i * 4], 0, 0, 0});
      cap = id < 0 ? 0 : count[id] < k ? count[id] : k;
    }
    start[i + 1] = cap;
  }
  lt__coord_hash_free(ctx, &hash);
  lt_ctx_free(ctx, keys, bytes);
  return st;
}

/* The np queries pend that the shells left short (too few sources near, or
 * k beyond their table), by the grid search: into their edges of e. */
static lt_status knn_wide(lt_ctx *ctx, const lt_edges *e, const int64_t *start, const int64_t *pend, int64_t np,
                          const lt_coords *source, const lt_coords *query, int64_t k, const char *op) {
  int32_t h = (int32_t)fmax(1.0, ceil(cbrt((double)k) * 0.75));
  size_t rbytes = (size_t)(np + 1) * (4 * sizeof(int32_t) + sizeof(int64_t)),
         bbytes = (size_t)(np * k + 1) * sizeof(best);
  int32_t *rows = lt_ctx_alloc(ctx, rbytes);
  best *b = lt_ctx_alloc(ctx, bbytes);
  grid g = {0}, qg = {0};
  lt_status st =
      rows && b ? LT_OK
                : lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for %lld neighbour edges", op, (long long)(np * k));
  int64_t *found = rows ? (int64_t *)(rows + 4 * (np + 1)) : NULL;
  const int32_t *qr = lt_tensor_data(query->rows);
  for (int64_t j = 0; !st && j < np; j++) {
    memcpy(rows + j * 4, qr + pend[j] * 4, 4 * sizeof *rows);
    found[j] = start[pend[j] + 1] - start[pend[j]];
  }
  if (!st) st = grid_build(ctx, &g, lt_tensor_data(source->rows), source->n, h, op);
  if (!st) st = grid_build(ctx, &qg, rows, np, h, op);
  int threads = np >= 1024 ? lt__ctx_threads(ctx) : 1;
  search s = {&g, k, UINT64_MAX, -1, 0};
  if (!st) st = gather_knn(ctx, b, found, &s, &qg, rows, threads, op);
  if (!st)
    LT_PARALLEL_FOR(threads, j, np, {
      int64_t i = pend[j], m = start[i + 1] - start[i];
      LT_ASSERT(found[j] == m); /* the batch's sources, all found when fewer than k */
      edges_put(e, i, start[i], b + j * k, m);
    });
  grid_free(ctx, &qg);
  grid_free(ctx, &g);
  if (b) lt_ctx_free(ctx, b, bbytes);
  if (rows) lt_ctx_free(ctx, rows, rbytes);
  return st;
}

/* The queries with fewer edges than they are owed (short_of) into pend; their number. */
static int64_t pending(int64_t *pend, const uint8_t *short_of, const int64_t *start, int64_t nq) {
  int64_t np = 0;
  for (int64_t i = 0; i < nq; i++)
    if (short_of[i] && start[i + 1] > start[i]) pend[np++] = i;
  return np;
}

/* The edge offsets of kNN into the relation's tensors, allocated with
 * them (*start: the offsets): i cap where every query has the same cap
 * (one batch), else by the batch counts and a prefix sum (in scratch, of
 * nq + 1). */
static lt_status knn_layout(lt_ctx *ctx, lt_neighbors *r, lt_edges *e, int64_t **start, int64_t *scratch, int64_t cap,
                            const lt_coords *source, const lt_coords *query, int64_t k, const char *op) {
  int64_t nq = query->n;
  if (cap >= 0) {
    lt_status st = edges_alloc(ctx, r, e, nq * cap, nq);
    if (st) return st;
    int64_t *s = *start = lt_tensor_data(r->row_offsets);
    enum { PART = 16384 }; /* offsets a task: 128 KB */
    LT_PARALLEL_FOR(nq >= LT_GRAIN ? lt__ctx_threads(ctx) : 1, j, nq / PART + 1, {
      for (int64_t i = j * PART; i < (j + 1) * PART && i <= nq; i++) s[i] = i * cap;
    });
    return LT_OK;
  }
  lt_status st = batch_caps(ctx, scratch, source, query, k, op);
  scratch[0] = 0;
  for (int64_t i = 0; !st && i < nq; i++) scratch[i + 1] += scratch[i];
  if (!st) st = edges_new(ctx, r, e, scratch, nq);
  *start = scratch;
  return st;
}

/* Every query's min(k, batch) nearest: laid out first (the batch sizes give
 * each query's count), filled by the shells where they reach, by the grid
 * search for the rest. */
static lt_status knn(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query, int64_t k,
                     lt_isa isa, lt_isa *used, const char *op) {
  int64_t nq = query->n;
  if (k > source->n) k = source->n > 0 ? source->n : 1; /* no query has more: k sized the grid search's lists */
  size_t bytes = (size_t)(nq + 1) * (2 * sizeof(int64_t) + 1);
  int64_t *scratch = lt_ctx_alloc(ctx, bytes), *start = NULL;
  if (!scratch) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  int64_t *pend = scratch + nq + 1;
  uint8_t *short_of = (uint8_t *)(pend + nq + 1);
  int shells = k <= LT_SHELL_OFFSETS && nq && source->n;
  lt_bricks sb = {0}, qb = {0};
  const lt_bricks *qbp = NULL;
  lt_status st = shells ? bricks_of(ctx, &sb, &qb, &qbp, source, query, op) : LT_OK;
  if (!st && shells && sb.nb > LT_SHELL_MOST_BRICKS) { /* past the walk's int32 cell bases: all by the grid */
    lt__bricks_free(ctx, &qb), lt__bricks_free(ctx, &sb);
    shells = 0;
  }
  lt_edges e;
  if (!st)
    st = knn_layout(ctx, r, &e, &start, scratch, one_batch_cap(source, query, shells ? &sb : NULL, qbp, k), source,
                    query, k, op);
  shells &= !st && start[nq] > 0;
  if (shells) { /* the walk sets every query's short_of */
    lt_shell_walk w = {&sb, qbp, LT_SHELL_D2, k, NULL, start, &e, short_of};
    st = lt__shell_walk(ctx, &w, isa, used, nq >= 1024 ? lt__ctx_threads(ctx) : 1, op);
  } else
    memset(short_of, 1, (size_t)nq);
  lt__bricks_free(ctx, &qb);
  lt__bricks_free(ctx, &sb);
  int64_t np = st ? 0 : pending(pend, short_of, start, nq);
  if (np) st = knn_wide(ctx, &e, start, pend, np, source, query, k, op);
  lt_ctx_free(ctx, scratch, bytes);
  return st;
}

/* ---- radius ---- */

static lt_status radius_wide(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query, int64_t cap,
                             double radius, int64_t r2, const char *op);

/* Within r2 <= LT_SHELL_D2: counted by the shells, laid out, filled by them
 * (by the grid where the source has more bricks than a walk takes). */
static lt_status radius_near(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query, int64_t cap,
                             double radius, int64_t r2, lt_isa isa, lt_isa *used, const char *op) {
  int64_t nq = query->n;
  size_t bytes = (size_t)(nq + 1) * (sizeof(int64_t) + 1);
  int64_t *start = lt_ctx_alloc(ctx, bytes);
  if (!start) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  uint8_t *short_of = (uint8_t *)(start + nq + 1);
  memset(start, 0, (size_t)(nq + 1) * sizeof *start);
  lt_bricks sb = {0}, qb = {0};
  const lt_bricks *qbp = NULL;
  lt_status st = nq && source->n ? bricks_of(ctx, &sb, &qb, &qbp, source, query, op) : LT_OK;
  if (!st && qbp && sb.nb > LT_SHELL_MOST_BRICKS) {
    lt__bricks_free(ctx, &qb), lt__bricks_free(ctx, &sb);
    lt_ctx_free(ctx, start, bytes);
    return radius_wide(ctx, r, source, query, cap, radius, r2, op);
  }
  int threads = nq >= 1024 ? lt__ctx_threads(ctx) : 1;
  lt_shell_walk w = {&sb, qbp, r2, cap ? cap : INT64_MAX, start + 1, start, NULL, short_of};
  if (!st && qbp) st = lt__shell_walk(ctx, &w, isa, NULL, threads, op);
  for (int64_t i = 0; i < nq; i++) start[i + 1] += start[i];
  lt_edges e;
  if (!st) st = edges_new(ctx, r, &e, start, nq);
  w.counts = NULL, w.edges = &e;
  if (!st && qbp) st = lt__shell_walk(ctx, &w, isa, used, threads, op);
  for (int64_t i = 0; !st && qbp && i < nq; i++) LT_ASSERT(!short_of[i]); /* the shells hold every d^2 <= r2 */
  lt__bricks_free(ctx, &qb);
  lt__bricks_free(ctx, &sb);
  lt_ctx_free(ctx, start, bytes);
  return st;
}

/* Beyond: the grid with cells of side ceil(r) (at least 1), ring 1 covering the ball. */
static lt_status radius_wide(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query, int64_t cap,
                             double radius, int64_t r2, const char *op) {
  int64_t nq = query->n;
  grid g;
  lt_status st = grid_build(ctx, &g, lt_tensor_data(source->rows), source->n, (int32_t)fmax(1.0, ceil(radius)), op);
  size_t sbytes = (size_t)(nq + 1) * sizeof(int64_t), bbytes = 0;
  int64_t *start = st ? NULL : lt_ctx_alloc(ctx, sbytes);
  if (!st && !start) st = lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  best *b = NULL;
  const int32_t *qr = lt_tensor_data(query->rows);
  int threads = nq >= 1024 ? lt__ctx_threads(ctx) : 1;
  search s = {&g, cap ? cap : INT64_MAX, (uint64_t)r2, 1, 0};
  if (!st && cap) st = gather_best(ctx, &b, start, &s, qr, nq, threads, &bbytes, op);
  if (!st && !cap) st = gather_all(ctx, &b, start, &s, qr, nq, threads, &bbytes, op);
  if (!st) st = emit(ctx, r, b, start, nq);
  if (b) lt_ctx_free(ctx, b, bbytes);
  if (start) lt_ctx_free(ctx, start, sbytes);
  grid_free(ctx, &g);
  return st;
}

void lt_neighbors_release(lt_neighbors *r) {
  lt_tensor_release(r->query_row), lt_tensor_release(r->source_row), lt_tensor_release(r->neighbor_id);
  lt_tensor_release(r->distances), lt_tensor_release(r->row_offsets);
  *r = (lt_neighbors){0};
}

lt_status lt__neighbors_build_isa(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query,
                                  lt_neighbor_kind kind, int64_t k, double radius, lt_isa isa, lt_isa *used,
                                  const char *op) {
  *r = (lt_neighbors){0};
  *used = LT_ISA_SCALAR;
  if (memcmp(source->stride, query->stride, sizeof source->stride))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: source and query have different tensor strides", op);
  if (kind == LT_NEIGHBORS_KNN && k < 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: k must be positive, got %lld", op, (long long)k);
  if (kind == LT_NEIGHBORS_RADIUS && !(radius >= 0 && radius < 1e9))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: radius must be a non-negative number below 1e9, got %g", op, radius);
  if (kind == LT_NEIGHBORS_RADIUS && k < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: max_neighbors must be positive, got %lld", op, (long long)k);
  if (isa > lt__ctx_isa(ctx)) isa = lt__ctx_isa(ctx);
  if (kind == LT_NEIGHBORS_RADIUS && k > source->n) k = source->n; /* no more: max_neighbors sizes a list per query */
  int64_t r2 = (int64_t)floor(radius * radius);
  lt_status st = kind == LT_NEIGHBORS_KNN ? knn(ctx, r, source, query, k, isa, used, op)
                 : r2 <= LT_SHELL_D2      ? radius_near(ctx, r, source, query, k, radius, r2, isa, used, op)
                                          : radius_wide(ctx, r, source, query, k, radius, r2, op);
  if (st) lt_neighbors_release(r);
  return st;
}

lt_status lt_neighbors_build(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query,
                             lt_neighbor_kind kind, int64_t k, double radius, const char *op) {
  lt_isa used;
  return lt__neighbors_build_isa(ctx, r, source, query, kind, k, radius, lt__ctx_isa(ctx), &used, op);
}
