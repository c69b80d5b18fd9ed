/* Neighbour relations between coordinate maps (lattice/sparse_neighbors.h).
 *
 * The source rows are bucketed into cubic cells of side h (lattice units)
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
 * One task per query, each writing only its own edges: deterministic. Edges
 * are listed by query row, nearest first, equal distances by source row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/parallel.h"
#include "sparse/internal.h"

typedef struct grid {
  int32_t h;
  int64_t ncell;
  lt_coord_hash hash;
  int32_t *cells;       /* (ncell, 4) the cell keys */
  int64_t *start;       /* (ncell + 1) */
  int32_t *rows;        /* (n) source rows by cell */
  int32_t *coords;      /* (n, 3) their x, y, z, by cell (read as a stream) */
  int64_t lo[3], hi[3]; /* the cells' extent */
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
  for (int64_t c = 0; c < g->ncell; c++) g->start[c + 1] += g->start[c];
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
  int64_t d;
  int32_t row;
} best;

static int before(int64_t d, int32_t row, const best *b) { return d < b->d || (d == b->d && row < b->row); }

/* Inserts (d, row) into the sorted list b (*m held, at most cap). */
static void keep(best *b, int64_t *m, int64_t cap, int64_t d, int32_t row) {
  if (*m == cap && !before(d, row, &b[cap - 1])) return;
  int64_t j = *m < cap ? (*m)++ : cap - 1;
  while (j > 0 && before(d, row, &b[j - 1])) b[j] = b[j - 1], j--;
  b[j] = (best){d, row};
}

static int64_t dist2(const int32_t *p, const int32_t *q) {
  int64_t s = 0;
  for (int a = 0; a < 3; a++) {
    int64_t d = (int64_t)p[a] - q[a];
    s += d * d;
  }
  return s;
}

typedef struct search {
  const grid *g;
  int64_t cap;   /* most edges per query (INT64_MAX: all, counted) */
  int64_t limit; /* d^2 bound (INT64_MAX: none) */
  int32_t rings; /* last ring (-1: until the k-th is final) */
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
    int64_t d = dist2(s->g->coords + k * 3, q + 1);
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

/* Query q's edges into b (sorted; NULL: only counted); returns their number. */
static int64_t query(const search *s, const int32_t *q, best *b) {
  int32_t c[4];
  cell_of(c, q, s->g->h);
  int64_t m = 0, stop = s->rings >= 0 ? s->rings : last_ring(s->g, c);
  for (int64_t r = 0; r <= stop && s->g->ncell; r++) {
    ring(s, c, (int32_t)r, q, b, &m);
    if (s->rings >= 0 || m < s->cap) continue;
    int64_t d = outside(q, c, r, s->g->h);
    if (b[m - 1].d < d * d) break; /* strictly: an outside source at d^2 with a lower row would come first */
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

/* The best `cap` edges per query, into a (nq, cap) buffer, then laid out by prefix sum. */
static lt_status gather_best(lt_ctx *ctx, best **out, int64_t *start, const search *s, const int32_t *qr, int64_t nq,
                             int threads, size_t *bytes, const char *op) {
  *bytes = (size_t)(nq * s->cap + 1) * sizeof(best);
  best *b = lt_ctx_alloc(ctx, *bytes);
  if (!b)
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for %lld neighbour edges", op, (long long)(nq * s->cap));
  LT_PARALLEL_FOR(threads, i, nq, { start[i + 1] = query(s, qr + i * 4, b + i * s->cap); });
  start[0] = 0;
  for (int64_t i = 0; i < nq; i++) { /* compact in place: query i's edges move down, never over unread ones */
    int64_t m = start[i + 1];
    memmove(b + start[i], b + i * s->cap, (size_t)m * sizeof *b);
    start[i + 1] = start[i] + m;
  }
  *out = b;
  return LT_OK;
}

static lt_status emit(lt_ctx *ctx, lt_neighbors *r, const best *b, const int64_t *start, int64_t nq, const char *op) {
  int64_t e = start[nq];
  lt_status st = lt_tensor_new(ctx, &r->query_row, LT_INT32, 1, &e);
  if (!st) st = lt_tensor_new(ctx, &r->source_row, LT_INT32, 1, &e);
  if (!st) st = lt_tensor_new(ctx, &r->neighbor_id, LT_INT32, 1, &e);
  if (!st) st = lt_tensor_new(ctx, &r->distances, LT_FLOAT32, 1, &e);
  if (!st) st = lt_tensor_new(ctx, &r->row_offsets, LT_INT64, 1, (int64_t[]){nq + 1});
  if (st) return st;
  int32_t *qrow = lt_tensor_data(r->query_row), *srow = lt_tensor_data(r->source_row);
  int32_t *nid = lt_tensor_data(r->neighbor_id);
  float *dist = lt_tensor_data(r->distances);
  memcpy(lt_tensor_data(r->row_offsets), start, (size_t)(nq + 1) * sizeof *start);
  for (int64_t i = 0; i < nq; i++)
    for (int64_t k = start[i]; k < start[i + 1]; k++)
      qrow[k] = (int32_t)i, srow[k] = b[k].row, nid[k] = (int32_t)(k - start[i]), dist[k] = (float)b[k].d;
  (void)op;
  return LT_OK;
}

void lt_neighbors_release(lt_neighbors *r) {
  lt_tensor_release(r->query_row), lt_tensor_release(r->source_row), lt_tensor_release(r->neighbor_id);
  lt_tensor_release(r->distances), lt_tensor_release(r->row_offsets);
  *r = (lt_neighbors){0};
}

lt_status lt_neighbors_build(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query,
                             lt_neighbor_kind kind, int64_t k, double radius, const char *op) {
  *r = (lt_neighbors){0};
  if (memcmp(source->stride, query->stride, sizeof source->stride))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: source and query have different tensor strides", op);
  if (kind == LT_NEIGHBORS_KNN && k < 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: k must be positive, got %lld", op, (long long)k);
  if (kind == LT_NEIGHBORS_RADIUS && !(radius >= 0 && radius < 1e9))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: radius must be a non-negative number below 1e9, got %g", op, radius);
  if (kind == LT_NEIGHBORS_RADIUS && k < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: max_neighbors must be positive, got %lld", op, (long long)k);
  int32_t h = kind == LT_NEIGHBORS_RADIUS ? (radius < 1 ? 1 : (int32_t)ceil(radius))
                                          : (int32_t)fmax(1.0, ceil(cbrt((double)k)));
  grid g;
  lt_status st = grid_build(ctx, &g, lt_tensor_data(source->rows), source->n, h, op);
  int64_t nq = query->n;
  size_t sbytes = (size_t)(nq + 1) * sizeof(int64_t), bbytes = 0;
  int64_t *start = st ? NULL : lt_ctx_alloc(ctx, sbytes);
  if (!st && !start) st = lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  best *b = NULL;
  const int32_t *qr = lt_tensor_data(query->rows);
  int threads = nq >= 1024 ? lt__ctx_threads(ctx) : 1;
  int64_t r2 = (int64_t)floor(radius * radius);
  if (!st && kind == LT_NEIGHBORS_KNN) {
    search s = {&g, k, INT64_MAX, -1};
    st = gather_best(ctx, &b, start, &s, qr, nq, threads, &bbytes, op);
  } else if (!st && k > 0) {
    search s = {&g, k, r2, 1};
    st = gather_best(ctx, &b, start, &s, qr, nq, threads, &bbytes, op);
  } else if (!st) {
    search s = {&g, INT64_MAX, r2, 1};
    st = gather_all(ctx, &b, start, &s, qr, nq, threads, &bbytes, op);
  }
  if (!st) st = emit(ctx, r, b, start, nq, op);
  if (b) lt_ctx_free(ctx, b, bbytes);
  if (start) lt_ctx_free(ctx, start, sbytes);
  grid_free(ctx, &g);
  if (st) lt_neighbors_release(r);
  return st;
}
