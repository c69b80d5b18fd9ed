/* Row subsets of a coordinate map (lattice/sparse_rows.h): selection by
 * index, mask, box and per-batch top-k. Each builds its list of rows by one
 * ordered pass (count, then fill), so the order is the one the header states
 * on every run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lattice/sparse_rows.h"
#include "runtime/scan.h"
#include "sparse/internal.h"

/* ---- selection by index ---- */

/* Fails on an index outside [0, n) or listed twice; seen (n) is scratch. */
static lt_status check_indices(lt_ctx *ctx, const int64_t *v, int64_t m, int64_t n, int64_t *seen, const char *op) {
  for (int64_t i = 0; i < n; i++) seen[i] = -1;
  for (int64_t j = 0; j < m; j++) {
    if (v[j] < 0 || v[j] >= n)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row index %lld (entry %lld) is out of range for %lld rows", op,
                         (long long)v[j], (long long)j + 1, (long long)n);
    if (seen[v[j]] >= 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row index %lld is selected twice (entries %lld and %lld)", op,
                         (long long)v[j], (long long)seen[v[j]] + 1, (long long)j + 1);
    seen[v[j]] = j;
  }
  return LT_OK;
}

static lt_status index_vector(lt_ctx *ctx, lt_tensor **out, lt_tensor *rows, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  *out = NULL;
  lt_dtype dt = lt_tensor_dtype(rows);
  if (dt != LT_INT32 && dt != LT_INT64 && dt != LT_UINT8)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: rows must be an integer tensor, got %s", op, lt_dtype_info(dt)->name);
  if (rows->ndim != 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: rows must have shape {M}, got %s", op,
                       lt__shape_str(s, sizeof s, rows->ndim, rows->shape));
  return lt__as_contig(ctx, out, rows, LT_INT64);
}

lt_status lt_sparse_select(lt_ctx *ctx, lt_coords **out, lt_coords *c, lt_tensor *rows, const char *op) {
  *out = NULL;
  lt_tensor *v, *picked = NULL;
  lt_status st = index_vector(ctx, &v, rows, op);
  if (st) return st;
  int64_t m = v->shape[0];
  size_t bytes = (size_t)(c->n + 1) * sizeof(int64_t);
  int64_t *seen = lt_ctx_alloc(ctx, bytes);
  st = seen ? check_indices(ctx, lt_tensor_data(v), m, c->n, seen, op)
            : lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  if (seen) lt_ctx_free(ctx, seen, bytes);
  if (!st) st = lt_tensor_new(ctx, &picked, LT_INT32, 2, (int64_t[]){m, 4});
  if (!st) {
    const int64_t *iv = lt_tensor_data(v);
    const int32_t *src = lt_tensor_data(c->rows);
    int32_t *dst = lt_tensor_data(picked);
    for (int64_t j = 0; j < m; j++) memcpy(dst + j * 4, src + iv[j] * 4, 16);
    st = lt__coords_intern(ctx, out, picked, c->stride, op);
  }
  lt_tensor_release(v);
  return st;
}

/* ---- masks and boxes ---- */

/* rows (count of keep) int32: the positions i < n where keep[i]. */
static lt_status positions(lt_ctx *ctx, lt_tensor **rows, const uint8_t *keep, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++) m += keep[i] != 0;
  lt_status st = lt_tensor_new(ctx, rows, LT_INT32, 1, &m);
  if (st) return st;
  int32_t *r = lt_tensor_data(*rows);
  for (int64_t i = 0, j = 0; i < n; i++)
    if (keep[i]) r[j++] = (int32_t)i;
  return LT_OK;
}

lt_status lt_sparse_mask_rows(lt_ctx *ctx, lt_tensor **rows, lt_tensor *mask, int64_t n, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  *rows = NULL;
  if (mask->dtype != LT_BOOL)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: mask must be a bool tensor, got %s", op, lt_dtype_info(mask->dtype)->name);
  if (mask->ndim != 1 || mask->shape[0] != n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: mask has shape %s, x has %lld rows", op,
                       lt__shape_str(s, sizeof s, mask->ndim, mask->shape), (long long)n);
  lt_tensor *m;
  lt_status st = lt__as_contig(ctx, &m, mask, LT_BOOL);
  if (!st) st = positions(ctx, rows, lt_tensor_data(m), n);
  lt_tensor_release(m);
  return st;
}

lt_status lt_sparse_crop_rows(lt_ctx *ctx, lt_tensor **rows, lt_coords *c, const int32_t *lo, const int32_t *hi,
                              const char *op) {
  *rows = NULL;
  for (int a = 0; a < 3; a++)
    if (lo[a] > hi[a])
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: min_coord %c = %d is above max_coord %c = %d", op, "xyz"[a], lo[a],
                         "xyz"[a], hi[a]);
  size_t bytes = (size_t)(c->n + 1);
  uint8_t *keep = lt_ctx_alloc(ctx, bytes);
  if (!keep) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  const int32_t *r = lt_tensor_data(c->rows);
  for (int64_t i = 0; i < c->n; i++) {
    const int32_t *p = r + i * 4 + 1;
    keep[i] = p[0] >= lo[0] && p[0] <= hi[0] && p[1] >= lo[1] && p[1] <= hi[1] && p[2] >= lo[2] && p[2] <= hi[2];
  }
  lt_status st = positions(ctx, rows, keep, c->n);
  lt_ctx_free(ctx, keep, bytes);
  return st;
}

/* ---- top-k per batch ---- */

typedef struct scored {
  double score;
  int64_t row;
} scored;

/* Larger scores first, NaN last, equal scores by lower row. */
static int by_score(const void *pa, const void *pb) {
  const scored *a = pa, *b = pb;
  int na = a->score != a->score, nb = b->score != b->score;
  if (na != nb) return na - nb;
  if (!na && a->score != b->score) return a->score > b->score ? -1 : 1;
  return (a->row > b->row) - (a->row < b->row);
}

/* The first channel of feats (N, C) as doubles (N). */
static lt_status first_channel(lt_ctx *ctx, lt_tensor **out, lt_tensor *feats, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  *out = NULL;
  if (!lt_dtype_info(feats->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features must be a float tensor, got %s", op,
                       lt_dtype_info(feats->dtype)->name);
  if (feats->ndim != 2 || feats->shape[1] < 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features have shape %s; the first channel scores the rows", op,
                       lt__shape_str(s, sizeof s, feats->ndim, feats->shape));
  lt_tensor *col;
  lt_status st = lt__slice_view(ctx, &col, feats, 1, 0, 1, 1);
  if (!st) st = lt__as_contig(ctx, out, col, LT_FLOAT64);
  lt_tensor_release(col);
  return st;
}

/* Writes the chosen rows of each batch, in turn, into out; returns their count. */
static int64_t choose(int32_t *out, scored *tmp, const double *score, const int64_t *order, const int64_t *offsets,
                      const int64_t *keep, int64_t batches) {
  int64_t m = 0;
  for (int64_t b = 0; b < batches; b++) {
    int64_t lo = offsets[b], n = offsets[b + 1] - lo, k = keep[b] < n ? keep[b] : n;
    for (int64_t j = 0; j < n; j++) tmp[j] = (scored){score[order[lo + j]], order[lo + j]};
    qsort(tmp, (size_t)n, sizeof *tmp, by_score);
    for (int64_t j = 0; j < k; j++) out[m++] = (int32_t)tmp[j].row;
  }
  return m;
}

static lt_status check_keep(lt_ctx *ctx, const lt_coords *c, const lt_tensor *feats, const int64_t *keep,
                            int64_t batches, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if (feats->ndim >= 1 && feats->shape[0] != c->n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features have shape %s, the coordinates have %lld rows", op,
                       lt__shape_str(s, sizeof s, feats->ndim, feats->shape), (long long)c->n);
  for (int64_t b = 0; b < batches; b++)
    if (keep[b] < 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: counts[%lld] is negative", op, (long long)b + 1);
  const int32_t *r = lt_tensor_data(c->rows);
  for (int64_t i = 0; i < c->n; i++)
    if (r[i * 4] >= batches)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row %lld has batch %d, beyond the %lld batches", op, (long long)i + 1,
                         r[i * 4], (long long)batches);
  return LT_OK;
}

lt_status lt_sparse_topk_rows(lt_ctx *ctx, lt_tensor **rows, lt_coords *c, lt_tensor *feats, const int64_t *keep,
                              int64_t batches, const char *op) {
  *rows = NULL;
  lt_status st = check_keep(ctx, c, feats, keep, batches, op);
  lt_tensor *score = NULL;
  if (!st) st = first_channel(ctx, &score, feats, op);
  if (st) return st;
  int64_t n = c->n;
  /* key (n), order (n), offsets (batches + 1), picked rows (n), scratch (n scored) */
  size_t bytes = (size_t)(3 * n + batches + 2) * sizeof(int64_t) + (size_t)n * sizeof(scored);
  int64_t *key = lt_ctx_alloc(ctx, bytes), *order = key + n, *offsets = order + n;
  int32_t *picked = NULL;
  if (!key) st = lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  const int32_t *r = lt_tensor_data(c->rows);
  for (int64_t i = 0; !st && i < n; i++) key[i] = r[i * 4];
  if (!st && batches > 0) st = lt__bucket_sort(ctx, key, n, batches, offsets, order, op);
  if (!st) {
    picked = (int32_t *)(offsets + batches + 1); /* n int32 in room for n int64, then the scored scratch */
    int64_t m =
        choose(picked, (scored *)(offsets + batches + 1 + n), lt_tensor_data(score), order, offsets, keep, batches);
    st = lt_tensor_from_data(ctx, rows, LT_INT32, 1, &m, picked);
  }
  if (key) lt_ctx_free(ctx, key, bytes);
  lt_tensor_release(score);
  return st;
}
