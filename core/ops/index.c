/* Indexing by integer tensors: take (NumPy), take_along_axis (torch.gather)
 * and embedding lookup. Each op views x as (outer, n, inner) around the
 * indexed axis:
 *   take            x (outer,n,inner), idx (K)             -> out (outer,K,inner)
 *   take_along_axis x (outer,n,inner), idx (outer,K,inner) -> out (outer,K,inner)
 *   embedding       weight (V,D) = (1,V,D), ids (K)        -> out (K,D)
 * Indices are 0-based values inside tensors (int32, int64 or uint8), copied
 * once to int64 with negatives resolved. The forward copies bytes, so any
 * dtype works and nothing is converted. The backward scatter-adds the gradient
 * into zeros of x's shape without atomics: each task owns one outer index and
 * one slice of the inner axis and walks k in order, so results are bitwise
 * identical for any thread count. It adds in float32, or in double when x is
 * float64.
 *
 * Messages name axes as Lua counts them (first axis = 1), since Lua users
 * read them; index values are shown as stored (0-based). */
#include <string.h>
#include "ops/internal.h"

typedef struct geom {
  int64_t outer, n, k, inner;
} geom;

/* ---- indices ---- */

static int is_index_dtype(lt_dtype dt) { return dt == LT_INT32 || dt == LT_INT64 || dt == LT_UINT8; }

/* A new, writable, contiguous int64 copy of `ind`; `what` names it in messages. */
static lt_status int_indices(lt_ctx *ctx, lt_tensor **out, const char *op, const char *what, lt_tensor *ind) {
  *out = NULL;
  if (!ind) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s is NULL", op, what);
  if (!is_index_dtype(ind->dtype))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be integers, got %s", op, what, lt_dtype_info(ind->dtype)->name);
  lt_tensor *c = NULL;
  lt_status st = lt__as_contig(ctx, &c, ind, LT_INT64);
  if (st || c != ind) {
    *out = c;
    return st;
  }
  /* Already int64 and contiguous: copy, since negatives are rewritten in place. */
  lt_tensor *d = NULL;
  st = lt_tensor_new(ctx, &d, LT_INT64, c->ndim, c->shape);
  if (!st) memcpy(lt_tensor_data(d), lt_tensor_data(c), (size_t)lt_tensor_size(c) * sizeof(int64_t));
  lt_tensor_release(c);
  *out = d;
  return st;
}

/* Resolves negatives (when allowed) and checks v[0..count) against [0, n).
 * Returns 1 and the first bad value as stored, or 0. */
static int resolve(int64_t *v, int64_t count, int64_t n, int negative_ok, int64_t *bad) {
  for (int64_t i = 0; i < count; i++) {
    int64_t x = v[i] < 0 && negative_ok ? v[i] + n : v[i];
    if (x < 0 || x >= n) {
      *bad = v[i];
      return 1;
    }
    v[i] = x;
  }
  return 0;
}

static lt_status index_range_error(lt_ctx *ctx, const char *op, int64_t bad, int axis, int64_t n) {
  if (axis == LT_ALL_AXES)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: index %lld is out of range for size %lld", op, (long long)bad,
                       (long long)n);
  return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: index %lld is out of range for axis %d of size %lld", op, (long long)bad,
                     axis + 1, (long long)n);
}

/* ---- kernels ---- */

/* One element of es bytes; constant-size memcpy compiles to a move. */
static inline void copy_elem(char *d, const char *s, size_t es) {
  switch (es) {
  case 1: *d = *s; break;
  case 2: memcpy(d, s, 2); break;
  case 4: memcpy(d, s, 4); break;
  default: memcpy(d, s, 8); break;
  }
}

/* x (outer,n,inner), idx (K) -> out (outer,K,inner): whole rows, es bytes per element. */
static void take_rows(const lt_ctx *ctx, char *out, const char *x, const int64_t *idx, geom s, size_t es) {
  int64_t rows = s.outer * s.k, rb = s.inner * (int64_t)es;
  int threads = rows * s.inner >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, rows, {
    const char *src = x + ((r / s.k) * s.n + idx[r % s.k]) * rb;
    if (s.inner == 1)
      copy_elem(out + r * rb, src, es);
    else
      memcpy(out + r * rb, src, (size_t)rb);
  });
}

/* x (outer,n,inner), idx (outer,K,inner) -> out (outer,K,inner): out[o,k,i] = x[o,idx[o,k,i],i]. */
static void take_along(const lt_ctx *ctx, char *out, const char *x, const int64_t *idx, geom s, size_t es) {
  int64_t rows = s.outer * s.k;
  int threads = rows * s.inner >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, rows, {
    const char *xo = x + (r / s.k) * s.n * s.inner * (int64_t)es;
    const int64_t *ir = idx + r * s.inner;
    char *o = out + r * s.inner * (int64_t)es;
    for (int64_t i = 0; i < s.inner; i++) copy_elem(o + i * (int64_t)es, xo + (ir[i] * s.inner + i) * (int64_t)es, es);
  });
}

/* row[lo..hi) += g[lo..hi) */
static inline void add_row_f32(float *row, const float *g, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; i++) row[i] += g[i];
}
static inline void add_row_f64(double *row, const double *g, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; i++) row[i] += g[i];
}

/* gx (outer,n,inner) zeroed by the caller; accumulates gx[o, idx[o*so+k*sk+i*si], i] += g[o,k,i]
 * for g (outer,K,inner), of float32 or (f64) double elements. si is 0 (one index
 * per row: take, embedding) or 1 (take_along_axis). Tasks are (o, slice of
 * inner) pairs, disjoint in gx, each walking k in order. Always inlined into
 * the two entries below with f64 a constant, so each loop has one element type. */
static inline __attribute__((always_inline)) void scatter_add_any(const lt_ctx *ctx, void *gx, const void *g,
                                                                  const int64_t *idx, geom s, int64_t so, int64_t sk,
                                                                  int64_t si, int f64) {
  if (s.outer * s.k * s.inner == 0) return; /* nothing to add (and no slice width to divide by) */
  int threads = s.outer * s.k * s.inner >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  int64_t slices = s.outer >= threads ? 1 : threads;
  int64_t width = (s.inner + slices - 1) / slices;
  width = (width + 15) / 16 * 16; /* whole cache lines of floats per task */
  slices = (s.inner + width - 1) / width;
  LT_PARALLEL_FOR(threads, t, s.outer * slices, {
    int64_t o = t / slices, b = t % slices;
    int64_t lo = b * width, hi = lo + width < s.inner ? lo + width : s.inner;
    for (int64_t k = 0; k < s.k; k++) {
      const int64_t *ik = idx + o * so + k * sk;
      int64_t gk = (o * s.k + k) * s.inner, go = o * s.n * s.inner;
      if (si == 0 && f64)
        add_row_f64((double *)gx + go + ik[0] * s.inner, (const double *)g + gk, lo, hi);
      else if (si == 0)
        add_row_f32((float *)gx + go + ik[0] * s.inner, (const float *)g + gk, lo, hi);
      else if (f64)
        for (int64_t i = lo; i < hi; i++) ((double *)gx)[go + ik[i] * s.inner + i] += ((const double *)g)[gk + i];
      else
        for (int64_t i = lo; i < hi; i++) ((float *)gx)[go + ik[i] * s.inner + i] += ((const float *)g)[gk + i];
    }
  });
}

static void scatter_add_f32(const lt_ctx *ctx, float *gx, const float *g, const int64_t *idx, geom s, int64_t so,
                            int64_t sk, int64_t si) {
  scatter_add_any(ctx, gx, g, idx, s, so, sk, si, 0);
}

static void scatter_add_f64(const lt_ctx *ctx, double *gx, const double *g, const int64_t *idx, geom s, int64_t so,
                            int64_t sk, int64_t si) {
  scatter_add_any(ctx, gx, g, idx, s, so, sk, si, 1);
}

/* ---- backward: one rule for all three ops ---- */

/* The scatter's geometry and the strides of its index tensor (see scatter_add). */
typedef struct scatter_attrs {
  geom s;
  int64_t so, sk, si;
} scatter_attrs;

/* node: in[0] = x, saved[0] = resolved int64 indices. */
static lt_status scatter_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  const lt_tensor *x = node->in[0];
  const scatter_attrs *at = node->attrs;
  lt_tensor *cg = NULL, *gx = NULL;
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  const int64_t *idx = lt_tensor_data(lt__saved(node, 0));
  lt_status st = lt__as_contig(ctx, &cg, g, cdt);
  if (!st) st = lt_tensor_zeros(ctx, &gx, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    scatter_add_f64(ctx, lt__f64(gx), lt__f64(cg), idx, at->s, at->so, at->sk, at->si);
  else if (!st)
    scatter_add_f32(ctx, lt__f32(gx), lt__f32(cg), idx, at->s, at->so, at->sk, at->si);
  if (!st) st = lt__to_dtype(ctx, &gx, x->dtype);
  lt_tensor_release(cg);
  if (st) {
    lt_tensor_release(gx);
    return st;
  }
  gin[0] = gx;
  return LT_OK;
}

/* Fills the new tensor *out (dtype of x, shape nd/shape) from x and the resolved
 * indices, and records the backward rule when x is a float being differentiated. */
static lt_status gather(lt_ctx *ctx, lt_tensor **out, const char *name, lt_tensor *x, lt_tensor *idx, geom s, int along,
                        int nd, const int64_t *shape) {
  lt_tensor *cx = NULL;
  lt_status st = lt_tensor_new(ctx, out, x->dtype, nd, shape);
  if (!st) st = lt__as_contig(ctx, &cx, x, x->dtype);
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
    return st;
  }
  size_t es = lt_dtype_info(x->dtype)->size;
  if (along)
    take_along(ctx, lt_tensor_data(*out), lt_tensor_data(cx), lt_tensor_data(idx), s, es);
  else
    take_rows(ctx, lt_tensor_data(*out), lt_tensor_data(cx), lt_tensor_data(idx), s, es);
  lt_tensor_release(cx);
  if (!lt_dtype_info(x->dtype)->is_float) return LT_OK;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP(name, scatter_backward, scatter_attrs, 1), out, 1, &x);
  if (node) {
    lt__node_save(node, 0, idx);
    *(scatter_attrs *)node->attrs = (scatter_attrs){s, along ? s.k * s.inner : 0, along ? s.inner : 1, along};
  }
  return st;
}

/* ---- take ---- */

lt_status lt_take(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *indices, int axis) {
  *out = NULL;
  if (!x) return lt_ctx_fail(ctx, LT_ERR_ARG, "take: x is NULL");
  int flat = axis == LT_ALL_AXES, a = flat ? 0 : lt__axis(axis, x->ndim);
  if (a < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "take: axis %d is out of range for %d dimensions", axis + (axis >= 0),
                       x->ndim); /* as Lua counts */
  lt_tensor *idx;
  lt_status st = int_indices(ctx, &idx, "take", "indices", indices);
  if (st) return st;
  int64_t k = lt_tensor_size(idx), bad;
  geom s = {1, lt_tensor_size(x), k, 1};
  if (!flat) s = (geom){lt__numel(a, x->shape), x->shape[a], k, lt__numel(x->ndim - a - 1, x->shape + a + 1)};
  int nd = flat ? idx->ndim : x->ndim - 1 + idx->ndim;
  int64_t shape[LT_MAX_DIMS];
  if (nd > LT_MAX_DIMS) {
    st = lt_ctx_fail(ctx, LT_ERR_ARG, "take: the result would have %d dimensions (at most %d)", nd, LT_MAX_DIMS);
  } else if (resolve(lt_tensor_data(idx), k, s.n, 1, &bad)) {
    st = index_range_error(ctx, "take", bad, flat ? LT_ALL_AXES : a, s.n);
  } else {
    int lead = flat ? 0 : a;
    memcpy(shape, x->shape, (size_t)lead * sizeof *shape);
    memcpy(shape + lead, idx->shape, (size_t)idx->ndim * sizeof *shape);
    if (!flat) memcpy(shape + lead + idx->ndim, x->shape + a + 1, (size_t)(x->ndim - a - 1) * sizeof *shape);
    st = gather(ctx, out, "take", x, idx, s, 0, nd, shape);
  }
  lt_tensor_release(idx);
  return st;
}

/* ---- take_along_axis ---- */

/* indices must have x's rank and x's shape except along the axis (no broadcasting,
 * like torch.gather with a full-size index); with no axis both are flattened and
 * indices must be 1-D. */
static lt_status along_check(lt_ctx *ctx, const lt_tensor *x, const lt_tensor *ind, int a) {
  char sx[LT_SHAPE_STR_MAX], si[LT_SHAPE_STR_MAX];
  if (a == LT_ALL_AXES) {
    if (ind->ndim == 1) return LT_OK;
    return lt_ctx_fail(ctx, LT_ERR_ARG, "take_along_axis: with no axis, indices must be 1-D, got shape %s",
                       lt__shape_str(si, sizeof si, ind->ndim, ind->shape));
  }
  int ok = ind->ndim == x->ndim;
  for (int d = 0; ok && d < x->ndim; d++) ok = d == a || ind->shape[d] == x->shape[d];
  if (ok) return LT_OK;
  return lt_ctx_fail(ctx, LT_ERR_ARG,
                     "take_along_axis: indices have shape %s, x has shape %s; they must match "
                     "except along axis %d",
                     lt__shape_str(si, sizeof si, ind->ndim, ind->shape),
                     lt__shape_str(sx, sizeof sx, x->ndim, x->shape), a + 1);
}

lt_status lt_take_along_axis(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *indices, int axis) {
  *out = NULL;
  if (!x) return lt_ctx_fail(ctx, LT_ERR_ARG, "take_along_axis: x is NULL");
  int flat = axis == LT_ALL_AXES, a = flat ? LT_ALL_AXES : lt__axis(axis, x->ndim);
  if (a == -1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "take_along_axis: axis %d is out of range for %d dimensions",
                       axis + (axis >= 0), x->ndim); /* as Lua counts */
  lt_tensor *idx;
  lt_status st = int_indices(ctx, &idx, "take_along_axis", "indices", indices);
  if (st) return st;
  st = along_check(ctx, x, idx, a);
  int64_t bad;
  geom s = {1, lt_tensor_size(x), lt_tensor_size(idx), 1};
  if (!flat && !st)
    s = (geom){lt__numel(a, x->shape), x->shape[a], idx->shape[a], lt__numel(x->ndim - a - 1, x->shape + a + 1)};
  if (!st && resolve(lt_tensor_data(idx), lt_tensor_size(idx), s.n, 1, &bad))
    st = index_range_error(ctx, "take_along_axis", bad, a, s.n);
  if (!st) st = gather(ctx, out, "take_along_axis", x, idx, s, 1, idx->ndim, idx->shape);
  lt_tensor_release(idx);
  return st;
}

/* ---- embedding ---- */

lt_status lt_embedding(lt_ctx *ctx, lt_tensor **out, lt_tensor *weight, lt_tensor *ids) {
  *out = NULL;
  if (!weight) return lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: weight is NULL");
  char sw[LT_SHAPE_STR_MAX];
  if (weight->ndim != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: weight must be 2-D (V,D), got shape %s",
                       lt__shape_str(sw, sizeof sw, weight->ndim, weight->shape));
  lt_tensor *idx;
  lt_status st = int_indices(ctx, &idx, "embedding", "ids", ids);
  if (st) return st;
  int64_t k = lt_tensor_size(idx), bad, shape[LT_MAX_DIMS];
  geom s = {1, weight->shape[0], k, weight->shape[1]};
  if (idx->ndim + 1 > LT_MAX_DIMS) {
    st = lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: ids have %d dimensions (at most %d)", idx->ndim, LT_MAX_DIMS - 1);
  } else if (resolve(lt_tensor_data(idx), k, s.n, 0, &bad)) {
    st = lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: id %lld is out of range for %lld embeddings", (long long)bad,
                     (long long)s.n);
  } else {
    memcpy(shape, idx->shape, (size_t)idx->ndim * sizeof *shape);
    shape[idx->ndim] = s.inner;
    st = gather(ctx, out, "embedding", weight, idx, s, 0, idx->ndim + 1, shape);
  }
  lt_tensor_release(idx);
  return st;
}
