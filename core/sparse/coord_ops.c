/* Coordinate utilities (lattice/sparse_coords.h): set operations on maps,
 * lookups, unique rows, bounding boxes, and the index between a map and a
 * dense grid. Lookups probe the map's hash in parallel (reads only); the
 * loops that build something in first-seen order are sequential, their order
 * fixed by construction. */
#include <string.h>
#include "lattice/sparse_algebra.h"
#include "lattice/sparse_coords.h"
#include "runtime/parallel.h"
#include "sparse/internal.h"

static lt_status rows_of(lt_ctx *ctx, lt_tensor **out, const int32_t *src, const int32_t *pick, int64_t m) {
  lt_status st = lt_tensor_new(ctx, out, LT_INT32, 2, (int64_t[]){m, 4});
  int32_t *r = st ? NULL : lt_tensor_data(*out);
  for (int64_t i = 0; !st && i < m; i++) memcpy(r + i * 4, src + (int64_t)pick[i] * 4, 16);
  return st;
}

lt_status lt_coords_lookup(lt_ctx *ctx, lt_tensor **rows, const lt_coords *c, lt_tensor *query, const char *op) {
  *rows = NULL;
  lt_tensor *q = NULL;
  lt_status st = lt__coords_check_rows(ctx, query, op);
  if (!st) st = lt__as_contig(ctx, &q, query, LT_INT32);
  if (!st) st = lt_tensor_new(ctx, rows, LT_INT32, 1, q->shape);
  if (!st) st = lt__coords_hash(ctx, c, op);
  if (!st) {
    const int32_t *qr = lt_tensor_data(q), *cr = lt_tensor_data(c->rows);
    int32_t *out = lt_tensor_data(*rows);
    int64_t n = q->shape[0];
    LT_PARALLEL_FOR(n >= LT_GRAIN / 8 ? lt__ctx_threads(ctx) : 1, i, n,
                    { out[i] = (int32_t)lt__coord_hash_find(&c->hash, cr, qr + i * 4); });
  }
  lt_tensor_release(q);
  return st;
}

/* The rows of A kept by `kind` against B: union and intersection by the
 * outer and inner joins of sparse/align.c, difference by lookups. All three
 * take maps of one tensor stride (the joins check it too). */
lt_status lt_coords_setop(lt_ctx *ctx, lt_tensor **out, lt_coords *a, lt_coords *b, lt_coords_set kind,
                          const char *op) {
  *out = NULL;
  if ((unsigned)kind >= LT_COORDS_SETS) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown set operation", op);
  const int *sa = a->stride, *sb = b->stride;
  if (memcmp(sa, sb, sizeof a->stride))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the tensor strides differ, {%d,%d,%d} and {%d,%d,%d}", op, sa[0], sa[1],
                       sa[2], sb[0], sb[1], sb[2]);
  if (kind == LT_COORDS_DIFFERENCE) {
    lt_tensor *in_b = NULL;
    lt_status st = lt_coords_lookup(ctx, &in_b, b, a->rows, op);
    int64_t m = 0;
    int32_t *keep = st ? NULL : lt_tensor_data(in_b); /* reused: the rows of A absent from B */
    for (int64_t i = 0; !st && i < a->n; i++)
      if (keep[i] < 0) keep[m++] = (int32_t)i;
    if (!st) st = rows_of(ctx, out, lt_tensor_data(a->rows), keep, m);
    lt_tensor_release(in_b);
    return st;
  }
  lt_sparse_alignment al;
  lt_status st =
      lt_sparse_align(ctx, &al, a, b, kind == LT_COORDS_UNION ? LT_SPARSE_JOIN_OUTER : LT_SPARSE_JOIN_INNER, op);
  if (st) return st;
  st = lt__copy_as(ctx, out, al.out->rows, LT_INT32);
  lt_sparse_alignment_release(&al);
  return st;
}

lt_status lt_coords_unique(lt_ctx *ctx, lt_tensor **rows, lt_tensor **index, lt_tensor **inverse, lt_tensor *coords,
                           const char *op) {
  *rows = *index = *inverse = NULL;
  lt_tensor *c = NULL;
  lt_status st = lt__coords_check_rows(ctx, coords, op);
  if (!st) st = lt__as_contig(ctx, &c, coords, LT_INT32);
  if (st) return st;
  int64_t n = c->shape[0], m = 0;
  size_t bytes = (size_t)(n + 1) * 20;
  int32_t *scratch = lt_ctx_alloc(ctx, bytes); /* (n, 4) distinct rows, then (n) first rows */
  lt_coord_hash h = {0};
  st = scratch ? lt__coord_hash_alloc(ctx, &h, n, op) : lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  if (!st) st = lt_tensor_new(ctx, inverse, LT_INT32, 1, &n);
  if (!st) {
    const int32_t *r = lt_tensor_data(c);
    int32_t *inv = lt_tensor_data(*inverse), *first = scratch + 4 * n;
    for (int64_t i = 0; i < n; i++) {
      int64_t before = m, j = lt__coord_hash_insert(&h, scratch, &m, r + i * 4);
      if (m > before) first[j] = (int32_t)i;
      inv[i] = (int32_t)j;
    }
    st = lt_tensor_new(ctx, rows, LT_INT32, 2, (int64_t[]){m, 4});
    if (!st && m) memcpy(lt_tensor_data(*rows), scratch, (size_t)m * 16);
    if (!st) st = lt_tensor_from_data(ctx, index, LT_INT32, 1, &m, first);
  }
  lt__coord_hash_free(ctx, &h);
  if (scratch) lt_ctx_free(ctx, scratch, bytes);
  lt_tensor_release(c);
  if (st) {
    lt_tensor_release(*rows), lt_tensor_release(*index), lt_tensor_release(*inverse);
    *rows = *index = *inverse = NULL;
  }
  return st;
}

lt_status lt_coords_bounds(lt_ctx *ctx, lt_tensor **lo, lt_tensor **hi, const lt_coords *c, int64_t batches,
                           const char *op) {
  *lo = *hi = NULL;
  const int32_t *r = lt_tensor_data(c->rows);
  for (int64_t i = 0; i < c->n; i++)
    if (r[i * 4] >= batches)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row %lld has batch %d, beyond the %lld batches", op, (long long)i + 1,
                         r[i * 4], (long long)batches);
  lt_status st = lt_tensor_new(ctx, lo, LT_INT32, 2, (int64_t[]){batches, 3});
  if (!st) st = lt_tensor_new(ctx, hi, LT_INT32, 2, (int64_t[]){batches, 3});
  if (st) {
    lt_tensor_release(*lo), *lo = NULL;
    return st;
  }
  int32_t *l = lt_tensor_data(*lo), *h = lt_tensor_data(*hi);
  for (int64_t e = 0; e < batches * 3; e++) l[e] = INT32_MAX, h[e] = INT32_MIN; /* an empty batch: lo > hi */
  for (int64_t i = 0; i < c->n; i++)
    for (int a = 0; a < 3; a++) {
      int64_t e = (int64_t)r[i * 4] * 3 + a;
      int32_t v = r[i * 4 + 1 + a];
      if (v < l[e]) l[e] = v;
      if (v > h[e]) h[e] = v;
    }
  return LT_OK;
}

/* ---- dense grids ---- */

lt_status lt_coords_dense_index(lt_ctx *ctx, lt_tensor **index, const lt_coords *c, int64_t batches, const int32_t *min,
                                const int64_t *shape, const char *op) {
  *index = NULL;
  int64_t cells = batches;
  for (int a = 0; a < 3; a++) {
    if (shape[a] < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: shape must be non-negative, got %lld", op, (long long)shape[a]);
    cells = shape[a] && cells > INT32_MAX / shape[a] ? INT32_MAX : cells * shape[a];
  }
  if (cells >= INT32_MAX) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the dense grid has too many cells", op);
  const int32_t *r = lt_tensor_data(c->rows);
  for (int64_t i = 0; i < c->n; i++) {
    int inside = r[i * 4] < batches;
    for (int a = 0; a < 3; a++)
      inside &= (int64_t)r[i * 4 + 1 + a] - min[a] >= 0 && (int64_t)r[i * 4 + 1 + a] - min[a] < shape[a];
    if (!inside)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row %lld (%d, %d, %d, %d) lies outside the dense grid", op,
                         (long long)i + 1, r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3]);
  }
  lt_status st = lt_tensor_new(ctx, index, LT_INT32, 1, &cells);
  if (st) return st;
  int32_t *idx = lt_tensor_data(*index);
  for (int64_t e = 0; e < cells; e++) idx[e] = (int32_t)c->n; /* the zero row the caller appends */
  for (int64_t i = 0; i < c->n; i++) {
    int64_t e = r[i * 4];
    for (int a = 0; a < 3; a++) e = e * shape[a] + (r[i * 4 + 1 + a] - min[a]);
    idx[e] = (int32_t)i;
  }
  return LT_OK;
}

lt_status lt_coords_from_dense(lt_ctx *ctx, lt_tensor **cells, lt_tensor **coords, lt_tensor *dense, const int32_t *min,
                               const char *op) {
  char s[LT_SHAPE_STR_MAX];
  *cells = *coords = NULL;
  if (dense->ndim != 5)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: dense must have shape {B,X,Y,Z,C}, got %s", op,
                       lt__shape_str(s, sizeof s, dense->ndim, dense->shape));
  if (!lt_dtype_info(dense->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: dense must be a float tensor, got %s", op,
                       lt_dtype_info(dense->dtype)->name);
  for (int a = 0; a < 3; a++)
    if ((int64_t)min[a] + dense->shape[a + 1] - 1 > INT32_MAX)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the grid's coordinates leave int32", op);
  lt_tensor *d = NULL;
  lt_status st = lt__as_contig(ctx, &d, dense, lt__compute_dtype(dense->dtype));
  if (st) return st;
  const int64_t *sh = dense->shape;
  int64_t n = sh[0] * sh[1] * sh[2] * sh[3], c = sh[4], m = 0;
  if (n >= INT32_MAX) {
    lt_tensor_release(d);
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the dense grid has too many cells", op);
  }
  int f64 = d->dtype == LT_FLOAT64;
  const char *base = lt_tensor_data(d);
  size_t row = (size_t)c * (f64 ? 8 : 4);
  for (int64_t e = 0; e < n; e++)
    for (int64_t ch = 0; ch < c; ch++)
      if (f64 ? ((const double *)(base + e * row))[ch] != 0 : ((const float *)(base + e * row))[ch] != 0) {
        m++;
        break;
      }
  st = lt_tensor_new(ctx, cells, LT_INT32, 1, &m);
  if (!st) st = lt_tensor_new(ctx, coords, LT_INT32, 2, (int64_t[]){m, 4});
  for (int64_t e = 0, k = 0; !st && e < n; e++) {
    int nonzero = 0;
    for (int64_t ch = 0; ch < c && !nonzero; ch++)
      nonzero = f64 ? ((const double *)(base + e * row))[ch] != 0 : ((const float *)(base + e * row))[ch] != 0;
    if (!nonzero) continue;
    int32_t *r = (int32_t *)lt_tensor_data(*coords) + k * 4;
    r[0] = (int32_t)(e / (sh[1] * sh[2] * sh[3]));
    r[1] = (int32_t)(e / (sh[2] * sh[3]) % sh[1]) + min[0];
    r[2] = (int32_t)(e / sh[3] % sh[2]) + min[1];
    r[3] = (int32_t)(e % sh[3]) + min[2];
    ((int32_t *)lt_tensor_data(*cells))[k++] = (int32_t)e;
  }
  lt_tensor_release(d);
  if (st) lt_tensor_release(*cells), lt_tensor_release(*coords), *cells = *coords = NULL;
  return st;
}
