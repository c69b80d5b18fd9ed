/* The parent/child relation of an octree level (lattice/sparse_order.h):
 * parents floor(p / 2) with an 8-bit occupancy of their children, children
 * from occupancy bits or child indices. Sequential loops over rows: first-seen
 * order and increasing child order are fixed by construction. */
#include <string.h>
#include "lattice/sparse_order.h"
#include "sparse/internal.h"

/* floor(v / 2) for any int32. */
static int32_t floor_half(int32_t v) { return (int32_t)(((int64_t)v - (v & 1)) / 2); }

/* A contiguous int64 copy of an integer (n) tensor; `what` names it. */
static lt_status integer_vector(lt_ctx *ctx, lt_tensor **out, lt_tensor *t, int64_t n, const char *what,
                                const char *op) {
  char s[LT_SHAPE_STR_MAX];
  *out = NULL;
  lt_dtype dt = lt_tensor_dtype(t);
  if (dt != LT_INT32 && dt != LT_INT64 && dt != LT_UINT8)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be an integer tensor, got %s", op, what, lt_dtype_info(dt)->name);
  if (t->ndim != 1 || t->shape[0] != n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s has shape %s, expected {%lld}", op, what,
                       lt__shape_str(s, sizeof s, t->ndim, t->shape), (long long)n);
  return lt__as_contig(ctx, out, t, LT_INT64);
}

/* Fails naming the first value of v (n) outside [lo, hi]. */
static lt_status check_range(lt_ctx *ctx, const int64_t *v, int64_t n, int64_t lo, int64_t hi, const char *what,
                             const char *op) {
  for (int64_t i = 0; i < n; i++)
    if (v[i] < lo || v[i] > hi)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s[%lld] is %lld, expected %lld..%lld", op, what, (long long)i + 1,
                         (long long)v[i], (long long)lo, (long long)hi);
  return LT_OK;
}

/* Every x, y, z of the rows doubles (plus one) inside int32. */
static lt_status check_doubling(lt_ctx *ctx, const int32_t *r, int64_t n, const char *op) {
  for (int64_t i = 0; i < n; i++)
    for (int a = 1; a < 4; a++)
      if (r[i * 4 + a] < INT32_MIN / 2 || r[i * 4 + a] > (INT32_MAX - 1) / 2)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row %lld's %c = %d has children outside int32", op, (long long)i + 1,
                           "xyz"[a - 1], r[i * 4 + a]);
  return LT_OK;
}

/* The child `i` of parent row p. */
static void child_of(int32_t *out, const int32_t *p, int i) {
  out[0] = p[0];
  for (int a = 0; a < 3; a++) out[a + 1] = 2 * p[a + 1] + (i >> a & 1);
}

static lt_status staged_coords(lt_ctx *ctx, lt_tensor **out, lt_tensor *coords, const char *op) {
  *out = NULL;
  lt_status st = lt__coords_check_rows(ctx, coords, op);
  return st ? st : lt__as_contig(ctx, out, coords, LT_INT32);
}

/* The first m rows of rows (n, 4), as a new tensor. */
static lt_status first_rows(lt_ctx *ctx, lt_tensor **out, const int32_t *rows, int64_t m) {
  lt_status st = lt_tensor_new(ctx, out, LT_INT32, 2, (int64_t[]){m, 4});
  if (!st && m) memcpy(lt_tensor_data(*out), rows, (size_t)m * 16);
  return st;
}

/* parents (n, 4) scratch holding the distinct parents, occ (n) their bits; returns their count. */
static int64_t downsample(int32_t *parents, int32_t *occ, lt_coord_hash *h, const int32_t *r, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++) {
    const int32_t *p = r + i * 4;
    int32_t key[4] = {p[0], floor_half(p[1]), floor_half(p[2]), floor_half(p[3])};
    int64_t before = m, j = lt__coord_hash_insert(h, parents, &m, key);
    if (m > before) occ[j] = 0;
    occ[j] |= 1 << lt_octree_child(p + 1);
  }
  return m;
}

lt_status lt_occupancy_downsample(lt_ctx *ctx, lt_tensor **parents, lt_tensor **occupancy, lt_tensor *coords,
                                  const char *op) {
  *parents = *occupancy = NULL;
  lt_tensor *c;
  lt_status st = staged_coords(ctx, &c, coords, op);
  if (st) return st;
  int64_t n = c->shape[0];
  size_t bytes = (size_t)(n + 1) * 20;
  int32_t *scratch = lt_ctx_alloc(ctx, bytes); /* (n, 4) parents, then (n) bits */
  lt_coord_hash h = {0};
  st = scratch ? lt__coord_hash_alloc(ctx, &h, n, op) : lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  if (!st) {
    int64_t m = downsample(scratch, scratch + 4 * n, &h, lt_tensor_data(c), n);
    st = first_rows(ctx, parents, scratch, m);
    if (!st) st = lt_tensor_from_data(ctx, occupancy, LT_INT32, 1, &m, scratch + 4 * n);
  }
  lt__coord_hash_free(ctx, &h);
  if (scratch) lt_ctx_free(ctx, scratch, bytes);
  lt_tensor_release(c);
  if (st) lt_tensor_release(*parents), lt_tensor_release(*occupancy), *parents = *occupancy = NULL;
  return st;
}

/* children, parent_rows, child_index filled for the bits of occ. */
static void expand(int32_t *ch, int32_t *pr, int32_t *ci, const int32_t *r, const int64_t *occ, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++)
    for (int k = 0; k < 8; k++)
      if (occ[i] >> k & 1) {
        child_of(ch + m * 4, r + i * 4, k);
        pr[m] = (int32_t)i, ci[m++] = k;
      }
}

lt_status lt_occupancy_expand(lt_ctx *ctx, lt_tensor **children, lt_tensor **parent_rows, lt_tensor **child_index,
                              lt_tensor *coords, lt_tensor *occupancy, const char *op) {
  *children = *parent_rows = *child_index = NULL;
  lt_tensor *c, *occ = NULL;
  lt_status st = staged_coords(ctx, &c, coords, op);
  if (st) return st;
  int64_t n = c->shape[0], m = 0;
  st = integer_vector(ctx, &occ, occupancy, n, "occupancy", op);
  const int64_t *bits = st ? NULL : lt_tensor_data(occ);
  if (!st) st = check_range(ctx, bits, n, 0, 255, "occupancy", op);
  if (!st) st = check_doubling(ctx, lt_tensor_data(c), n, op);
  for (int64_t i = 0; !st && i < n; i++) m += __builtin_popcountll((unsigned long long)bits[i]);
  if (!st) st = lt_tensor_new(ctx, children, LT_INT32, 2, (int64_t[]){m, 4});
  if (!st) st = lt_tensor_new(ctx, parent_rows, LT_INT32, 1, &m);
  if (!st) st = lt_tensor_new(ctx, child_index, LT_INT32, 1, &m);
  if (!st)
    expand(lt_tensor_data(*children), lt_tensor_data(*parent_rows), lt_tensor_data(*child_index), lt_tensor_data(c),
           bits, n);
  lt_tensor_release(c), lt_tensor_release(occ);
  if (st) {
    lt_tensor_release(*children), lt_tensor_release(*parent_rows), lt_tensor_release(*child_index);
    *children = *parent_rows = *child_index = NULL;
  }
  return st;
}

lt_status lt_octree_children(lt_ctx *ctx, lt_tensor **children, lt_tensor *parents, lt_tensor *child_index,
                             const char *op) {
  *children = NULL;
  lt_tensor *c, *idx = NULL;
  lt_status st = staged_coords(ctx, &c, parents, op);
  if (st) return st;
  int64_t n = c->shape[0];
  st = integer_vector(ctx, &idx, child_index, n, "child_indices", op);
  if (!st) st = check_range(ctx, lt_tensor_data(idx), n, 0, 7, "child_indices", op);
  if (!st) st = check_doubling(ctx, lt_tensor_data(c), n, op);
  if (!st) st = lt_tensor_new(ctx, children, LT_INT32, 2, (int64_t[]){n, 4});
  const int32_t *r = lt_tensor_data(c);
  for (int64_t i = 0; !st && i < n; i++)
    child_of((int32_t *)lt_tensor_data(*children) + i * 4, r + i * 4, (int)((int64_t *)lt_tensor_data(idx))[i]);
  lt_tensor_release(c), lt_tensor_release(idx);
  return st;
}
