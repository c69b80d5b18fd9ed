/* The alignment of two coordinate maps under a join (lattice/sparse_algebra.h).
 * One probe per row of B into A's hash (in parallel: reads only) gives
 * a_of_b; b_of_a follows by a scatter whose targets are distinct (coordinates
 * are unique in a map), so it is race-free too. Each join then lays out its
 * output rows by count and prefix sum, in the order the header states, so
 * the same inputs give the same alignment on every run. */
#include <string.h>
#include "lattice/sparse_algebra.h"
#include "runtime/parallel.h"
#include "sparse/internal.h"

/* a_of_b (n_B): the row of A with each B row's coordinate, or -1;
 * b_of_a (n_A): the converse. */
static void match_rows(const lt_ctx *ctx, int32_t *a_of_b, int32_t *b_of_a, const lt_coords *a, const lt_coords *b) {
  const int32_t *ra = lt_tensor_data(a->rows), *rb = lt_tensor_data(b->rows);
  int threads = b->n >= LT_GRAIN / 8 ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, b->n, { a_of_b[k] = (int32_t)lt__coord_hash_find(&a->hash, ra, rb + k * 4); });
  for (int64_t i = 0; i < a->n; i++) b_of_a[i] = -1;
  LT_PARALLEL_FOR(threads, k, b->n, {
    if (a_of_b[k] >= 0) b_of_a[a_of_b[k]] = (int32_t)k;
  });
}

static void iota(int32_t *v, int64_t n) {
  for (int64_t i = 0; i < n; i++) v[i] = (int32_t)i;
}

static int is_iota(const int32_t *v, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (v[i] != i) return 0;
  return 1;
}

static int64_t count_matched(const int32_t *v, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++) m += v[i] >= 0;
  return m;
}

static int32_t *data(lt_tensor *t) { return lt_tensor_data(t); }

/* The four index tensors of an M-row result. */
static lt_status alloc_rows(lt_ctx *ctx, lt_sparse_alignment *al, int64_t m, int64_t na, int64_t nb) {
  lt_status st = lt_tensor_new(ctx, &al->a_rows, LT_INT32, 1, &m);
  if (!st) st = lt_tensor_new(ctx, &al->b_rows, LT_INT32, 1, &m);
  if (!st) st = lt_tensor_new(ctx, &al->a_out, LT_INT32, 1, &na);
  if (!st) st = lt_tensor_new(ctx, &al->b_out, LT_INT32, 1, &nb);
  return st;
}

/* Fills the rows of each join from the matches. */
static void lay_out(lt_sparse_alignment *al, lt_sparse_join join, const int32_t *a_of_b, const int32_t *b_of_a,
                    int64_t na, int64_t nb) {
  int32_t *ar = data(al->a_rows), *br = data(al->b_rows), *ao = data(al->a_out), *bo = data(al->b_out);
  if (join == LT_SPARSE_JOIN_LEFT) {
    iota(ar, na), iota(ao, na);
    memcpy(br, b_of_a, (size_t)na * sizeof *br), memcpy(bo, a_of_b, (size_t)nb * sizeof *bo);
  } else if (join == LT_SPARSE_JOIN_RIGHT) {
    iota(br, nb), iota(bo, nb);
    memcpy(ar, a_of_b, (size_t)nb * sizeof *ar), memcpy(ao, b_of_a, (size_t)na * sizeof *ao);
  } else if (join == LT_SPARSE_JOIN_INNER) {
    int64_t m = 0;
    for (int64_t i = 0; i < na; i++) {
      ao[i] = b_of_a[i] >= 0 ? (int32_t)m : -1;
      if (b_of_a[i] >= 0) ar[m] = (int32_t)i, br[m++] = b_of_a[i];
    }
    for (int64_t k = 0; k < nb; k++) bo[k] = a_of_b[k] >= 0 ? ao[a_of_b[k]] : -1;
  } else {
    iota(ar, na), iota(ao, na);
    memcpy(br, b_of_a, (size_t)na * sizeof *br);
    int64_t m = na;
    for (int64_t k = 0; k < nb; k++) {
      bo[k] = a_of_b[k] >= 0 ? a_of_b[k] : (int32_t)m;
      if (a_of_b[k] < 0) ar[m] = -1, br[m++] = (int32_t)k;
    }
  }
}

/* The output map: A's or B's own when the rows are exactly theirs, else a new
 * map of the rows taken from A where it has them and from B otherwise. */
static lt_status output_map(lt_ctx *ctx, lt_sparse_alignment *al, lt_coords *a, lt_coords *b, const char *op) {
  int64_t m = al->a_rows->shape[0];
  if (m == a->n && is_iota(data(al->a_rows), m)) return (al->out = lt_coords_retain(a)), LT_OK;
  if (m == b->n && is_iota(data(al->b_rows), m)) return (al->out = lt_coords_retain(b)), LT_OK;
  lt_tensor *rows;
  lt_status st = lt_tensor_new(ctx, &rows, LT_INT32, 2, (int64_t[]){m, 4});
  if (st) return st;
  const int32_t *ra = lt_tensor_data(a->rows), *rb = lt_tensor_data(b->rows), *ar = data(al->a_rows),
                *br = data(al->b_rows);
  int32_t *r = lt_tensor_data(rows);
  for (int64_t j = 0; j < m; j++) memcpy(r + j * 4, ar[j] >= 0 ? ra + (int64_t)ar[j] * 4 : rb + (int64_t)br[j] * 4, 16);
  return lt__coords_intern(ctx, &al->out, rows, a->stride, op);
}

static int64_t joined_rows(lt_sparse_join join, const int32_t *a_of_b, const int32_t *b_of_a, int64_t na, int64_t nb) {
  switch (join) {
  case LT_SPARSE_JOIN_LEFT: return na;
  case LT_SPARSE_JOIN_RIGHT: return nb;
  case LT_SPARSE_JOIN_INNER: return count_matched(b_of_a, na);
  default: return na + nb - count_matched(a_of_b, nb);
  }
}

static lt_status check_args(lt_ctx *ctx, const lt_coords *a, const lt_coords *b, lt_sparse_join join, const char *op) {
  if ((unsigned)join >= LT_SPARSE_JOINS) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown join", op);
  const int *sa = a->stride, *sb = b->stride;
  if (memcmp(sa, sb, sizeof a->stride))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the tensor strides differ, {%d,%d,%d} and {%d,%d,%d}", op, sa[0], sa[1],
                       sa[2], sb[0], sb[1], sb[2]);
  return LT_OK;
}

lt_status lt_sparse_align(lt_ctx *ctx, lt_sparse_alignment *al, lt_coords *a, lt_coords *b, lt_sparse_join join,
                          const char *op) {
  *al = (lt_sparse_alignment){0};
  lt_status st = check_args(ctx, a, b, join, op);
  if (st) return st;
  size_t bytes = (size_t)(a->n + b->n + 1) * sizeof(int32_t);
  int32_t *a_of_b = lt_ctx_alloc(ctx, bytes);
  if (!a_of_b) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  int32_t *b_of_a = a_of_b + b->n;
  st = lt__coords_hash(ctx, a, op);
  if (!st) match_rows(ctx, a_of_b, b_of_a, a, b);
  if (!st) st = alloc_rows(ctx, al, joined_rows(join, a_of_b, b_of_a, a->n, b->n), a->n, b->n);
  if (!st) lay_out(al, join, a_of_b, b_of_a, a->n, b->n);
  lt_ctx_free(ctx, a_of_b, bytes);
  if (!st) st = output_map(ctx, al, a, b, op);
  if (st) lt_sparse_alignment_release(al);
  return st;
}

void lt_sparse_alignment_release(lt_sparse_alignment *al) {
  lt_coords_release(al->out);
  lt_tensor_release(al->a_rows), lt_tensor_release(al->b_rows);
  lt_tensor_release(al->a_out), lt_tensor_release(al->b_out);
  *al = (lt_sparse_alignment){0};
}
