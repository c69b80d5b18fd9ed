/* Local sparse pooling over a kernel relation (lattice/sparse_pool.h):
 *   x (n_in, C) -> y (n_out, C); output row o pools I(o) = {idx[o, k] >= 0}
 *   sum  y[o] = sum_{i in I(o)} x[i]          avg  the sum / |I(o)|
 *   max  y[o, c] = max_{i in I(o)} x[i, c], argmax[o, c] the row that holds it
 *   (an output with no input is a zero row; its argmax is -1)
 * Backward, one task per input row through the transpose idxT (n_in, K):
 *   sum  dx[i] = sum_k dy[o_k]                avg  sum_k dy[o_k] / |I(o_k)|
 *   max  dx[i, c] = sum_k (argmax[o_k, c] == i) dy[o_k, c],  o_k = idxT[i, k] >= 0
 * Among equal maxima the lowest input row wins (whatever the offset order), a
 * NaN wins over any number and propagates: so the gradient goes to one row per
 * output and channel, the same row on every run. Output-stationary forward and
 * input-stationary backward: each row is one task that reads its neighbours
 * and writes only its own row, so no write races another and the sums run in
 * offset order for any thread count. float16/bfloat16 are staged to float32;
 * float64 computes in double (plain loops: the reference path). */
#include <math.h>
#include <string.h>
#include "autograd/tape.h"
#include "lattice/sparse_pool.h"
#include "ops/internal.h"
#include "sparse/internal.h"

typedef struct pool_dims {
  int64_t n_in, n_out, c, k;
} pool_dims;

typedef struct pool_attrs {
  lt_sparse_pool_mode mode;
} pool_attrs;

/* Does candidate (v, row i) beat the current (best, row bi)? */
static inline int wins_f32(float v, int32_t i, float best, int32_t bi) {
  if (best != best) return v != v && i < bi;
  return v != v || v > best || (v == best && i < bi);
}
static inline int wins_f64(double v, int32_t i, double best, int32_t bi) {
  if (best != best) return v != v && i < bi;
  return v != v || v > best || (v == best && i < bi);
}

/* The output row input i feeds at offset k (see conv.c): idxT[i, k], or for a
 * mirrored relation idx[i, K-1-k]. */
static inline int64_t out_of(const int32_t *t, int mirrored, int64_t i, int64_t k, int64_t K) {
  return mirrored ? t[i * K + K - 1 - k] : t[i * K + k];
}

/* |I(o)| for every output row. */
static void input_counts(int32_t *count, const int32_t *idx, pool_dims d) {
  for (int64_t o = 0; o < d.n_out; o++) {
    int32_t n = 0;
    for (int64_t k = 0; k < d.k; k++) n += idx[o * d.k + k] >= 0;
    count[o] = n;
  }
}

static int threads_for(const lt_ctx *ctx, int64_t work) { return work >= LT_GRAIN ? lt__ctx_threads(ctx) : 1; }

/* ---- float32 ---- */

static void sum_forward_f32(const lt_ctx *ctx, float *y, const float *x, const int32_t *idx, pool_dims d, int avg) {
  LT_PARALLEL_FOR(threads_for(ctx, d.n_out * d.k * d.c), o, d.n_out, {
    float *yo = y + o * d.c;
    int64_t n = 0;
    memset(yo, 0, (size_t)d.c * sizeof *yo);
    for (int64_t k = 0; k < d.k; k++) {
      int64_t i = idx[o * d.k + k];
      if (i < 0) continue;
      const float *xi = x + i * d.c;
      for (int64_t c = 0; c < d.c; c++) yo[c] += xi[c];
      n++;
    }
    for (int64_t c = 0; avg && n > 1 && c < d.c; c++) yo[c] /= (float)n;
  });
}

static void max_forward_f32(const lt_ctx *ctx, float *y, int32_t *arg, const float *x, const int32_t *idx,
                            pool_dims d) {
  LT_PARALLEL_FOR(threads_for(ctx, d.n_out * d.k * d.c), o, d.n_out, {
    float *yo = y + o * d.c;
    int32_t *ao = arg + o * d.c;
    int first = 1;
    for (int64_t k = 0; k < d.k; k++) {
      int32_t i = idx[o * d.k + k];
      if (i < 0) continue;
      const float *xi = x + (int64_t)i * d.c;
      for (int64_t c = 0; c < d.c; c++)
        if (first || wins_f32(xi[c], i, yo[c], ao[c])) yo[c] = xi[c], ao[c] = i;
      first = 0;
    }
    for (int64_t c = 0; first && c < d.c; c++) yo[c] = 0.0f, ao[c] = -1;
  });
}

/* The maxima alone, when no gradient needs their rows: NaN still wins. */
static void max_values_f32(const lt_ctx *ctx, float *y, const float *x, const int32_t *idx, pool_dims d) {
  LT_PARALLEL_FOR(threads_for(ctx, d.n_out * d.k * d.c), o, d.n_out, {
    float *yo = y + o * d.c;
    int first = 1;
    for (int64_t k = 0; k < d.k; k++) {
      int64_t i = idx[o * d.k + k];
      if (i < 0) continue;
      const float *xi = x + i * d.c;
      if (first)
        memcpy(yo, xi, (size_t)d.c * sizeof *yo);
      else
        for (int64_t c = 0; c < d.c; c++) yo[c] = (xi[c] > yo[c] || xi[c] != xi[c]) ? xi[c] : yo[c];
      first = 0;
    }
    if (first) memset(yo, 0, (size_t)d.c * sizeof *yo);
  });
}

/* dx (n_in, C), overwritten; count (n_out) for avg, else NULL. */
static void sum_backward_f32(const lt_ctx *ctx, float *dx, const float *dy, const int32_t *t, int mirrored,
                             const int32_t *count, pool_dims d) {
  LT_PARALLEL_FOR(threads_for(ctx, d.n_in * d.k * d.c), i, d.n_in, {
    float *dxi = dx + i * d.c;
    memset(dxi, 0, (size_t)d.c * sizeof *dxi);
    for (int64_t k = 0; k < d.k; k++) {
      int64_t o = out_of(t, mirrored, i, k, d.k);
      if (o < 0) continue;
      const float *g = dy + o * d.c;
      if (count && count[o] > 1)
        for (int64_t c = 0; c < d.c; c++) dxi[c] += g[c] / (float)count[o];
      else
        for (int64_t c = 0; c < d.c; c++) dxi[c] += g[c];
    }
  });
}

static void max_backward_f32(const lt_ctx *ctx, float *dx, const float *dy, const int32_t *arg, const int32_t *t,
                             int mirrored, pool_dims d) {
  LT_PARALLEL_FOR(threads_for(ctx, d.n_in * d.k * d.c), i, d.n_in, {
    float *dxi = dx + i * d.c;
    memset(dxi, 0, (size_t)d.c * sizeof *dxi);
    for (int64_t k = 0; k < d.k; k++) {
      int64_t o = out_of(t, mirrored, i, k, d.k);
      if (o < 0) continue;
      const float *g = dy + o * d.c;
      const int32_t *ao = arg + o * d.c;
      for (int64_t c = 0; c < d.c; c++) dxi[c] += ao[c] == i ? g[c] : 0.0f;
    }
  });
}

/* ---- float64: the same in double ---- */

static void sum_forward_f64(double *y, const double *x, const int32_t *idx, pool_dims d, int avg) {
  for (int64_t o = 0; o < d.n_out; o++) {
    int64_t n = 0;
    for (int64_t c = 0; c < d.c; c++) y[o * d.c + c] = 0;
    for (int64_t k = 0; k < d.k; k++) {
      int64_t i = idx[o * d.k + k];
      for (int64_t c = 0; i >= 0 && c < d.c; c++) y[o * d.c + c] += x[i * d.c + c];
      n += i >= 0;
    }
    for (int64_t c = 0; avg && n > 1 && c < d.c; c++) y[o * d.c + c] /= (double)n;
  }
}

static void max_forward_f64(double *y, int32_t *arg, const double *x, const int32_t *idx, pool_dims d) {
  for (int64_t o = 0; o < d.n_out; o++)
    for (int64_t c = 0; c < d.c; c++) {
      double best = 0;
      int32_t bi = -1;
      for (int64_t k = 0; k < d.k; k++) {
        int32_t i = idx[o * d.k + k];
        if (i >= 0 && (bi < 0 || wins_f64(x[(int64_t)i * d.c + c], i, best, bi)))
          best = x[(int64_t)i * d.c + c], bi = i;
      }
      y[o * d.c + c] = best, arg[o * d.c + c] = bi;
    }
}

static void backward_f64(double *dx, const double *dy, const int32_t *arg, const int32_t *t, int mirrored,
                         const int32_t *count, pool_dims d) {
  for (int64_t i = 0; i < d.n_in; i++)
    for (int64_t c = 0; c < d.c; c++) {
      double s = 0;
      for (int64_t k = 0; k < d.k; k++) {
        int64_t o = out_of(t, mirrored, i, k, d.k);
        if (o < 0 || (arg && arg[o * d.c + c] != i)) continue;
        s += count && count[o] > 1 ? dy[o * d.c + c] / count[o] : dy[o * d.c + c];
      }
      dx[i * d.c + c] = s;
    }
}

/* ---- backward ---- */

static pool_dims dims_of(const lt_relation *r, int64_t c) { return (pool_dims){r->in->n, r->out->n, c, r->volume}; }

static const int32_t *transposed(const lt_relation *r) { return lt_tensor_data(r->mirrored ? r->idx : r->idx_t); }

/* in = {x}; saved = {relation, argmax (max only)}. */
static lt_status pool_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  const lt_relation *r = n->saved[0].obj;
  lt_sparse_pool_mode mode = ((const pool_attrs *)n->attrs)->mode;
  lt_tensor *x = n->in[0], *g = NULL;
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  pool_dims d = dims_of(r, x->shape[1]);
  const int32_t *arg = mode == LT_SPARSE_POOL_MAX ? lt_tensor_data(lt__saved(n, 1)) : NULL;
  size_t cbytes = (size_t)(d.n_out ? d.n_out : 1) * sizeof(int32_t);
  int32_t *count = mode == LT_SPARSE_POOL_AVG ? lt_ctx_alloc(ctx, cbytes) : NULL;
  lt_status st =
      mode == LT_SPARSE_POOL_AVG && !count ? lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", n->name) : LT_OK;
  if (count) input_counts(count, lt_tensor_data(r->idx), d);
  if (!st) st = lt__as_contig(ctx, &g, gouts[0], cdt);
  if (!st) st = lt_tensor_new(ctx, &gin[0], cdt, 2, x->shape);
  if (!st && cdt == LT_FLOAT64)
    backward_f64(lt__f64(gin[0]), lt__f64(g), arg, transposed(r), r->mirrored, count, d);
  else if (!st && arg)
    max_backward_f32(ctx, lt__f32(gin[0]), lt__f32(g), arg, transposed(r), r->mirrored, d);
  else if (!st)
    sum_backward_f32(ctx, lt__f32(gin[0]), lt__f32(g), transposed(r), r->mirrored, count, d);
  if (count) lt_ctx_free(ctx, count, cbytes);
  lt_tensor_release(g);
  return st;
}

/* ---- forward ---- */

static lt_status check_args(lt_ctx *ctx, lt_sparse_pool_mode mode, const lt_tensor *x, const lt_relation *r,
                            const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if ((unsigned)mode >= LT_SPARSE_POOL_MODES) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown pooling mode", op);
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features must be a float tensor, got %s", op,
                       lt_dtype_info(x->dtype)->name);
  if (x->ndim != 2 || x->shape[0] != r->in->n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features have shape %s, the input has %lld rows", op,
                       lt__shape_str(s, sizeof s, x->ndim, x->shape), (long long)r->in->n);
  return LT_OK;
}

static void release_relation(void *r) { lt_relation_release(r); }

/* y (and argmax, when wanted, for max) in the compute dtype of xs. */
static void compute(const lt_ctx *ctx, lt_tensor *y, lt_tensor *arg, const lt_tensor *xs, lt_sparse_pool_mode mode,
                    const lt_relation *r) {
  pool_dims d = dims_of(r, xs->shape[1]);
  const int32_t *idx = lt_tensor_data(r->idx);
  int avg = mode == LT_SPARSE_POOL_AVG;
  if (xs->dtype == LT_FLOAT32 && mode == LT_SPARSE_POOL_MAX && !arg)
    max_values_f32(ctx, lt__f32(y), lt__f32(xs), idx, d);
  else if (xs->dtype == LT_FLOAT64 && arg)
    max_forward_f64(lt__f64(y), lt_tensor_data(arg), lt__f64(xs), idx, d);
  else if (xs->dtype == LT_FLOAT64)
    sum_forward_f64(lt__f64(y), lt__f64(xs), idx, d, avg);
  else if (arg)
    max_forward_f32(ctx, lt__f32(y), lt_tensor_data(arg), lt__f32(xs), idx, d);
  else
    sum_forward_f32(ctx, lt__f32(y), lt__f32(xs), idx, d, avg);
}

lt_status lt_sparse_pool(lt_ctx *ctx, lt_tensor **out, lt_sparse_pool_mode mode, lt_tensor *x, lt_relation *r,
                         const char *op) {
  *out = NULL;
  lt_status st = check_args(ctx, mode, x, r, op);
  if (st) return st;
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  int64_t shape[2] = {r->out->n, x->shape[1]};
  lt_tensor *xs = NULL, *arg = NULL;
  st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st) st = lt_tensor_new(ctx, out, cdt, 2, shape);
  /* the argmax rows only for a gradient (float64 keeps them: its path is the plain one) */
  int need_arg = mode == LT_SPARSE_POOL_MAX && (cdt == LT_FLOAT64 || lt__tape_wants(ctx, 1, &x));
  if (!st && need_arg) st = lt_tensor_new(ctx, &arg, LT_INT32, 2, shape);
  if (!st) compute(ctx, *out, arg, xs, mode, r);
  lt_tensor_release(xs);
  if (!st) st = lt__to_dtype(ctx, out, x->dtype);
  lt_node *node = NULL;
  if (!st) st = lt__record(ctx, &node, LT_OP(op, pool_backward, pool_attrs, 2), out, 1, &x);
  if (node) {
    ((pool_attrs *)node->attrs)->mode = mode;
    lt__node_keep(node, 0, lt_relation_retain(r), release_relation);
    if (arg) lt__node_save(node, 1, arg);
  }
  lt_tensor_release(arg);
  if (st && *out) lt_tensor_release(*out), *out = NULL;
  return st;
}
