/* Coordinate maps: validated rows with their hash (lattice/sparse.h). */
#include <stdlib.h>
#include <string.h>
#include "sparse/internal.h"

/* ---- the hash ---- */

size_t lt__coord_hash_bytes(int64_t n) {
  uint64_t cap = 16;
  while (cap < 2 * (uint64_t)n) cap *= 2; /* load at most 1/2: short probes */
  return (size_t)cap * sizeof(uint32_t);
}

lt_status lt__coord_hash_alloc(lt_ctx *ctx, lt_coord_hash *h, int64_t n, const char *op) {
  *h = (lt_coord_hash){0};
  if (n >= (int64_t)UINT32_MAX / 2) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %lld rows are too many", op, (long long)n);
  h->bytes = lt__coord_hash_bytes(n);
  uint64_t cap = h->bytes / sizeof *h->slots;
  h->slots = lt_ctx_alloc(ctx, h->bytes);
  if (!h->slots)
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for a coordinate hash of %lld rows", op, (long long)n);
  memset(h->slots, 0, h->bytes);
  h->mask = cap - 1;
  return LT_OK;
}

lt_status lt__coord_hash_build(lt_ctx *ctx, lt_coord_hash *h, const int32_t *rows, int64_t n, int64_t *dup_a,
                               int64_t *dup_b, const char *op) {
  *dup_a = *dup_b = -1;
  lt_status st = lt__coord_hash_alloc(ctx, h, n, op);
  if (st) return st;
  /* In row order, so the first duplicate found is the pair a user reads first. */
  for (int64_t i = 0; i < n; i++) {
    const int32_t *key = rows + i * 4;
    uint64_t s = lt__coord_digest(key) & h->mask;
    for (;; s = (s + 1) & h->mask) {
      uint32_t v = h->slots[s];
      if (!v) {
        h->slots[s] = (uint32_t)(i + 1);
        break;
      }
      const int32_t *r = rows + (int64_t)(v - 1) * 4;
      if (lt__coord_equal(r, key)) {
        *dup_a = v - 1, *dup_b = i;
        return LT_ERR_ARG;
      }
    }
  }
  return LT_OK;
}

void lt__coord_hash_free(lt_ctx *ctx, lt_coord_hash *h) {
  if (h->slots) lt_ctx_free(ctx, h->slots, h->bytes);
  *h = (lt_coord_hash){0};
}

/* ---- maps ---- */

static uint64_t digest_of(const int32_t *rows, int64_t n, const int *stride) {
  uint64_t h = 1469598103934665603ull;
  for (int k = 0; k < 3; k++) h = (h ^ (uint32_t)stride[k]) * 1099511628211ull;
  for (int64_t i = 0; i < n; i++) h = (h ^ lt__coord_digest(rows + i * 4)) * 1099511628211ull;
  return h ^ (uint64_t)n;
}

static lt_status check_stride(lt_ctx *ctx, const int *stride, const char *op) {
  for (int k = 0; k < 3; k++)
    if (stride[k] < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: stride must be positive, got %d", op, stride[k]);
  return LT_OK;
}

/* Fails on duplicate rows, naming the first pair. */
static lt_status build_hash(lt_ctx *ctx, lt_coords *c, const char *op) {
  const int32_t *r = lt_tensor_data(c->rows);
  int64_t a, b;
  lt_status st = lt__coord_hash_build(ctx, &c->hash, r, c->n, &a, &b, op);
  if (st && a >= 0)
    lt_ctx_fail(ctx, st, "%s: rows %lld and %lld are the same coordinate (%d, %d, %d, %d)", op, (long long)a + 1,
                (long long)b + 1, r[a * 4], r[a * 4 + 1], r[a * 4 + 2], r[a * 4 + 3]);
  return st;
}

lt_status lt__coords_hash(lt_ctx *ctx, const lt_coords *c, const char *op) {
  if (c->hash.slots) return LT_OK;
  return build_hash(ctx, (lt_coords *)c, op); /* the hash is a cache of the rows: filling it changes no value */
}

/* A map of rows; their hash now (which checks them for duplicates) unless `distinct`. */
static lt_status make(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, int distinct, const char *op) {
  *out = NULL;
  lt_status st = check_stride(ctx, stride, op);
  lt_coords *c = st ? NULL : calloc(1, sizeof *c);
  if (!st && !c) st = lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  if (st) {
    lt_tensor_release(rows);
    return st;
  }
  *c = (lt_coords){.refcount = 1, .ctx = ctx, .rows = rows, .n = rows->shape[0]};
  memcpy(c->stride, stride, sizeof c->stride);
  if (!distinct) st = build_hash(ctx, c, op);
  if (st) {
    lt_coords_release(c);
    return st;
  }
  c->id = lt__manager_next_id(ctx);
  c->digest = digest_of(lt_tensor_data(rows), c->n, stride);
  *out = c;
  return LT_OK;
}

lt_status lt__coords_make(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, const char *op) {
  return make(ctx, out, rows, stride, 0, op);
}

lt_status lt__coords_check_rows(lt_ctx *ctx, const lt_tensor *t, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if (t->dtype != LT_INT32)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: coords must be int32, got %s", op, lt_dtype_info(t->dtype)->name);
  if (t->ndim != 2 || t->shape[1] != 4)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: coords must have shape {N,4} (batch, x, y, z), got %s", op,
                       lt__shape_str(s, sizeof s, t->ndim, t->shape));
  return LT_OK;
}

static lt_status check_batches(lt_ctx *ctx, const lt_tensor *rows, const char *op) {
  const int32_t *r = lt_tensor_data(rows);
  for (int64_t i = 0; i < rows->shape[0]; i++)
    if (r[i * 4] < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row %lld has batch index %d; batch indices start at 0", op,
                         (long long)i + 1, r[i * 4]);
  return LT_OK;
}

lt_status lt_coords_new(lt_ctx *ctx, lt_coords **out, lt_tensor *coords, const int *stride, const char *op) {
  *out = NULL;
  lt_status st = lt__coords_check_rows(ctx, coords, op);
  lt_tensor *rows = NULL;
  if (!st) st = lt__copy_as(ctx, &rows, coords, LT_INT32); /* a copy of its own: tensors are shared */
  if (!st) st = check_batches(ctx, rows, op);
  if (st) {
    lt_tensor_release(rows);
    return st;
  }
  return lt__coords_intern(ctx, out, rows, stride, op);
}

static lt_status intern(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, int distinct,
                        const char *op) {
  lt_coords *c;
  lt_status st = make(ctx, &c, rows, stride, distinct, op);
  if (st) return st;
  lt_coords *same = lt__manager_find_coords(ctx, c);
  if (same) {
    lt_coords_release(c);
    *out = lt_coords_retain(same);
    return LT_OK;
  }
  lt__manager_keep_coords(ctx, c);
  *out = c;
  return LT_OK;
}

lt_status lt__coords_intern(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, const char *op) {
  return intern(ctx, out, rows, stride, 0, op);
}

lt_status lt__coords_intern_distinct(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, const char *op) {
  return intern(ctx, out, rows, stride, 1, op);
}

lt_coords *lt_coords_retain(lt_coords *c) {
  if (c) c->refcount++;
  return c;
}

void lt_coords_release(lt_coords *c) {
  if (!c || --c->refcount > 0) return;
  lt__coord_hash_free(c->ctx, &c->hash);
  lt_tensor_release(c->rows);
  free(c);
}

lt_tensor *lt_coords_tensor(const lt_coords *c) { return c->rows; }
int64_t lt_coords_count(const lt_coords *c) { return c->n; }
const int *lt_coords_stride(const lt_coords *c) { return c->stride; }
uint64_t lt_coords_id(const lt_coords *c) { return c->id; }

int lt_coords_equal(const lt_coords *a, const lt_coords *b) {
  return a == b || (a->digest == b->digest && a->n == b->n && !memcmp(a->stride, b->stride, sizeof a->stride) &&
                    !memcmp(lt_tensor_data(a->rows), lt_tensor_data(b->rows), (size_t)a->n * 16));
}

int64_t lt_coords_find(const lt_coords *c, const int32_t *row) {
  if (lt__coords_hash(c->ctx, c, "coords_find")) return -1; /* out of memory, reported on the context */
  return lt__coord_hash_find(&c->hash, lt_tensor_data(c->rows), row);
}
