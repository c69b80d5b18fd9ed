/* Batch normalisation over the channel-last axis, forward and backward fused.
 *   x (R, C) (every leading axis is a row), weight (C)?, bias (C)?
 *   training:  mean, var = the biased statistics of x's rows per channel;
 *              y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var + eps)
 *   eval:      the same with the given running mean and variance.
 * In training the batch statistics are returned too (C each, in the compute
 * dtype), for the caller's running averages, and the gradient flows through them:
 *   dx = rstd * (u - mean_rows(u) - xhat * mean_rows(u * xhat)),  u = g * weight
 * In eval they are constants: dx = g * weight * rstd. Both: dweight = sum_rows(g
 * * xhat), dbias = sum_rows(g). Sums over rows run in double, in CHUNKS
 * fixed row chunks combined in order (independent of the thread count).
 * float16/bfloat16 are staged to float32 and the result takes x's dtype; when
 * x, weight or bias is float64 everything computes in double (plain loops, the
 * reference path gradchecks run on) and the result is float64. */
#include <math.h>
#include <string.h>
#include "ops/internal.h"

#define CHUNKS 32

typedef struct bn_attrs {
  int training;
} bn_attrs;

/* part (CHUNKS, 2, C) doubles, per chunk of rows: sum_rows(a) and, when b is
 * given, sum_rows(a * (b - bshift) * bscale). The forward sums x (b NULL); the
 * backward sums g and g * xhat (b = x, bshift = mean, bscale = rstd). */
static void chunk_sums(const lt_ctx *ctx, double *part, const float *a, const float *b, const float *bshift,
                       const float *bscale, int64_t rows, int64_t c) {
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, CHUNKS, {
    double *s0 = part + k * 2 * c, *s1 = s0 + c;
    memset(s0, 0, (size_t)(2 * c) * sizeof *s0);
    for (int64_t r = rows * k / CHUNKS; r < rows * (k + 1) / CHUNKS; r++) {
      const float *ar = a + r * c, *br = b ? b + r * c : NULL;
      for (int64_t j = 0; j < c; j++) {
        s0[j] += ar[j];
        if (br) s1[j] += (double)ar[j] * ((br[j] - bshift[j]) * bscale[j]);
      }
    }
  });
}

/* out0 (C), out1 (C) = the chunk sums combined in order (out1 may be NULL). */
static void combine(double *out0, double *out1, const double *part, int64_t c) {
  for (int64_t j = 0; j < c; j++) {
    double s0 = 0, s1 = 0;
    for (int k = 0; k < CHUNKS; k++) s0 += part[k * 2 * c + j], s1 += part[k * 2 * c + c + j];
    out0[j] = s0;
    if (out1) out1[j] = s1;
  }
}

/* mean (C), var (C) of x's rows: two passes (mean, then squared deviations). */
static void batch_stats(const lt_ctx *ctx, float *mean, float *var, double *part, double *tmp, const float *x,
                        int64_t rows, int64_t c) {
  chunk_sums(ctx, part, x, NULL, NULL, NULL, rows, c);
  combine(tmp, NULL, part, c);
  for (int64_t j = 0; j < c; j++) mean[j] = (float)(tmp[j] / (double)rows);
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, CHUNKS, {
    double *s = part + k * 2 * c;
    memset(s, 0, (size_t)c * sizeof *s);
    for (int64_t r = rows * k / CHUNKS; r < rows * (k + 1) / CHUNKS; r++)
      for (int64_t j = 0; j < c; j++) {
        double d = (double)x[r * c + j] - mean[j];
        s[j] += d * d;
      }
  });
  combine(tmp, NULL, part, c);
  for (int64_t j = 0; j < c; j++) var[j] = (float)(tmp[j] / (double)rows);
}

/* y = (x - mean) * rstd * w + b per row. */
static void normalise(const lt_ctx *ctx, float *y, const float *x, const float *mean, const float *rstd, const float *w,
                      const float *b, int64_t rows, int64_t c) {
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, rows, {
    const float *xr = x + r * c;
    float *yr = y + r * c;
    for (int64_t j = 0; j < c; j++) {
      float v = (xr[j] - mean[j]) * rstd[j];
      yr[j] = (w ? v * w[j] : v) + (b ? b[j] : 0.0f);
    }
  });
}

/* ---- float64: the same in double, plain loops (the reference path) ---- */

/* mean (C), var (C) of x's rows: two passes, rows in order. */
static void batch_stats_f64(double *mean, double *var, const double *x, int64_t rows, int64_t c) {
  for (int64_t j = 0; j < c; j++) mean[j] = 0, var[j] = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < c; j++) mean[j] += x[r * c + j];
  for (int64_t j = 0; j < c; j++) mean[j] /= (double)rows;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < c; j++) var[j] += (x[r * c + j] - mean[j]) * (x[r * c + j] - mean[j]);
  for (int64_t j = 0; j < c; j++) var[j] /= (double)rows;
}

static void normalise_f64(double *y, const double *x, const double *mean, const double *rstd, const double *w,
                          const double *b, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < c; j++)
      y[r * c + j] = (x[r * c + j] - mean[j]) * rstd[j] * (w ? w[j] : 1.0) + (b ? b[j] : 0.0);
}

/* dx (R, C), dw (C), db (C) overwritten (each may be NULL), one column at a
 * time: its two row sums, then its dx as bn_dx writes it. */
static void bn_backward_f64(double *dx, double *dw, double *db, const double *g, const double *x, const double *mean,
                            const double *rstd, const double *w, int64_t rows, int64_t c, int training) {
  for (int64_t j = 0; j < c; j++) {
    double sg = 0, sgx = 0;
    for (int64_t r = 0; r < rows; r++) {
      sg += g[r * c + j];
      sgx += g[r * c + j] * (x[r * c + j] - mean[j]) * rstd[j];
    }
    if (dw) dw[j] = sgx;
    if (db) db[j] = sg;
    double scale = (w ? w[j] : 1.0) * rstd[j];
    for (int64_t r = 0; dx && r < rows; r++) {
      double gj = g[r * c + j], xh = (x[r * c + j] - mean[j]) * rstd[j];
      dx[r * c + j] = training ? scale * (gj - sg / (double)rows - xh * sgx / (double)rows) : scale * gj;
    }
  }
}

/* ---- backward ---- */

/* Float32 staging of the backward's tensors. */
typedef struct bn_staged {
  lt_tensor *g, *x, *w, *mean, *rstd;
  double *part, *sg, *sgx;
  size_t part_bytes;
} bn_staged;

static lt_status bn_stage(lt_ctx *ctx, bn_staged *s, lt_tensor *g, const lt_node *n, int64_t c) {
  lt_tensor *w = n->in[1];
  s->part_bytes = (size_t)(CHUNKS * 2 * c + 2 * c) * sizeof(double);
  lt_status st = lt__as_f32(ctx, &s->g, g);
  if (!st) st = lt__as_f32(ctx, &s->x, n->in[0]);
  if (!st && w) st = lt__as_f32(ctx, &s->w, w);
  if (!st) st = lt__as_f32(ctx, &s->mean, lt__saved(n, 0));
  if (!st) st = lt__as_f32(ctx, &s->rstd, lt__saved(n, 1));
  if (!st && !(s->part = lt_ctx_alloc(ctx, s->part_bytes ? s->part_bytes : 1)))
    st = lt_ctx_fail(ctx, LT_ERR_MEM, "batch_norm: out of memory");
  if (!st) s->sg = s->part + CHUNKS * 2 * c, s->sgx = s->sg + c;
  return st;
}

static void bn_unstage(lt_ctx *ctx, bn_staged *s) {
  lt_tensor *t[5] = {s->g, s->x, s->w, s->mean, s->rstd};
  lt__release_all(5, t);
  if (s->part) lt_ctx_free(ctx, s->part, s->part_bytes ? s->part_bytes : 1);
}

/* dx (R, C): training through the batch statistics, else the affine map only. */
static void bn_dx(const lt_ctx *ctx, float *dx, const bn_staged *s, int64_t rows, int64_t c, int training) {
  const float *g = lt__f32(s->g), *x = lt__f32(s->x), *mu = lt__f32(s->mean), *rs = lt__f32(s->rstd);
  const float *w = s->w ? lt__f32(s->w) : NULL;
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, rows, {
    for (int64_t j = 0; j < c; j++) {
      float scale = (w ? w[j] : 1.0f) * rs[j], gj = g[r * c + j];
      if (training) {
        float xh = (x[r * c + j] - mu[j]) * rs[j];
        dx[r * c + j] = scale * (gj - (float)(s->sg[j] / (double)rows) - xh * (float)(s->sgx[j] / (double)rows));
      } else {
        dx[r * c + j] = scale * gj;
      }
    }
  });
}

/* The float64 backward: gin[k] new float64 tensors for the inputs that need them. */
static lt_status backward_f64(lt_ctx *ctx, const lt_node *n, lt_tensor *g, lt_tensor **gin, int64_t rows, int64_t c,
                              int training) {
  lt_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *gs = NULL, *xs = NULL, *ws = NULL;
  lt_status st = lt__as_contig(ctx, &gs, g, LT_FLOAT64);
  if (!st) st = lt__as_contig(ctx, &xs, x, LT_FLOAT64);
  if (!st && w) st = lt__as_contig(ctx, &ws, w, LT_FLOAT64);
  if (!st && lt__needs(n, 0)) st = lt_tensor_new(ctx, &gin[0], LT_FLOAT64, x->ndim, x->shape);
  if (!st && w && lt__needs(n, 1)) st = lt_tensor_new(ctx, &gin[1], LT_FLOAT64, 1, &c);
  if (!st && b && lt__needs(n, 2)) st = lt_tensor_new(ctx, &gin[2], LT_FLOAT64, 1, &c);
  if (!st)
    bn_backward_f64(gin[0] ? lt__f64(gin[0]) : NULL, gin[1] ? lt__f64(gin[1]) : NULL, gin[2] ? lt__f64(gin[2]) : NULL,
                    lt__f64(gs), lt__f64(xs), lt__f64(lt__saved(n, 0)), lt__f64(lt__saved(n, 1)),
                    ws ? lt__f64(ws) : NULL, rows, c, training);
  lt_tensor_release(gs), lt_tensor_release(xs), lt_tensor_release(ws);
  return st;
}

/* The float32 backward, from per-chunk row sums combined in order. */
static lt_status backward_f32(lt_ctx *ctx, const lt_node *n, lt_tensor *g, lt_tensor **gin, int64_t rows, int64_t c,
                              int training) {
  lt_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
  bn_staged s = {0};
  lt_status st = bn_stage(ctx, &s, g, n, c);
  if (!st) { /* sum_rows(g), sum_rows(g * xhat) */
    chunk_sums(ctx, s.part, lt__f32(s.g), lt__f32(s.x), lt__f32(s.mean), lt__f32(s.rstd), rows, c);
    combine(s.sg, s.sgx, s.part, c);
  }
  if (!st && lt__needs(n, 0)) st = lt_tensor_new(ctx, &gin[0], LT_FLOAT32, x->ndim, x->shape);
  if (!st && lt__needs(n, 0)) bn_dx(ctx, lt__f32(gin[0]), &s, rows, c, training);
  if (!st && w && lt__needs(n, 1)) st = lt_tensor_new(ctx, &gin[1], LT_FLOAT32, 1, &c);
  if (!st && w && lt__needs(n, 1))
    for (int64_t j = 0; j < c; j++) lt__f32(gin[1])[j] = (float)s.sgx[j];
  if (!st && b && lt__needs(n, 2)) st = lt_tensor_new(ctx, &gin[2], LT_FLOAT32, 1, &c);
  if (!st && b && lt__needs(n, 2))
    for (int64_t j = 0; j < c; j++) lt__f32(gin[2])[j] = (float)s.sg[j];
  bn_unstage(ctx, &s);
  return st;
}

/* in = {x, weight, bias}, saved = {mean, rstd} in the compute dtype. */
static lt_status bn_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *x = n->in[0];
  int training = ((const bn_attrs *)n->attrs)->training;
  int64_t c = x->shape[x->ndim - 1], rows = c ? lt_tensor_size(x) / c : 0;
  lt_status st = lt__saved(n, 0)->dtype == LT_FLOAT64 ? backward_f64(ctx, n, gouts[0], gin, rows, c, training)
                                                      : backward_f32(ctx, n, gouts[0], gin, rows, c, training);
  for (int k = 0; k < 3 && !st; k++)
    if (gin[k]) st = lt__to_dtype(ctx, &gin[k], n->in[k]->dtype);
  if (st)
    for (int k = 0; k < 3; k++) lt_tensor_release(gin[k]), gin[k] = NULL;
  return st;
}

/* ---- forward ---- */

static lt_status check_vec(lt_ctx *ctx, const lt_tensor *t, const char *what, int64_t c) {
  if (!t) return LT_OK;
  char s[LT_SHAPE_STR_MAX];
  if (!lt_dtype_info(t->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "batch_norm: %s must be a float tensor, got %s", what,
                       lt_dtype_info(t->dtype)->name);
  if (t->ndim != 1 || t->shape[0] != c)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "batch_norm: %s has shape %s, expected {%lld}", what,
                       lt__shape_str(s, sizeof s, t->ndim, t->shape), (long long)c);
  return LT_OK;
}

static lt_status check_args(lt_ctx *ctx, const lt_tensor *x, lt_tensor *const *vecs, int training, double eps) {
  static const char *const what[4] = {"weight", "bias", "running_mean", "running_var"};
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "batch_norm: x must be a float tensor, got %s", lt_dtype_info(x->dtype)->name);
  if (x->ndim < 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "batch_norm: x must have a row axis and a channel axis, got %d dimension%s",
                       x->ndim, x->ndim == 1 ? "" : "s");
  int64_t c = x->shape[x->ndim - 1], rows = c ? lt_tensor_size(x) / c : 0;
  for (int k = 0; k < 4; k++) {
    lt_status st = check_vec(ctx, vecs[k], what[k], c);
    if (st) return st;
  }
  if (training && rows < 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "batch_norm: training needs more than one row per channel, got %lld",
                       (long long)rows);
  if (!training && (!vecs[2] || !vecs[3]))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "batch_norm: evaluation needs the running mean and variance");
  if (!(eps >= 0)) return lt_ctx_fail(ctx, LT_ERR_ARG, "batch_norm: eps must be non-negative, got %g", eps);
  return LT_OK;
}

/* The compute dtype: float64 when x, weight or bias is (as binary ops promote),
 * else float32. */
static lt_dtype compute_dtype(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b) {
  int f64 = x->dtype == LT_FLOAT64 || (w && w->dtype == LT_FLOAT64) || (b && b->dtype == LT_FLOAT64);
  return f64 ? LT_FLOAT64 : LT_FLOAT32;
}

/* mean, var (training only) of xs's rows per channel, in float32. */
static lt_status batch_stats_f32(lt_ctx *ctx, lt_tensor *mean, lt_tensor *var, const lt_tensor *xs, int64_t rows,
                                 int64_t c) {
  size_t bytes = (size_t)(CHUNKS * 2 * c + c) * sizeof(double);
  double *part = lt_ctx_alloc(ctx, bytes ? bytes : 1);
  if (!part) return lt_ctx_fail(ctx, LT_ERR_MEM, "batch_norm: out of memory");
  batch_stats(ctx, lt__f32(mean), lt__f32(var), part, part + CHUNKS * 2 * c, lt__f32(xs), rows, c);
  lt_ctx_free(ctx, part, bytes ? bytes : 1);
  return LT_OK;
}

/* mean, var and rstd (C each, in xs's dtype, the compute dtype) of this call:
 * the batch's or the running ones. */
static lt_status stats(lt_ctx *ctx, lt_tensor **mean, lt_tensor **var, lt_tensor **rstd, const lt_tensor *xs,
                       lt_tensor *rm, lt_tensor *rv, int training, double eps) {
  lt_dtype cdt = xs->dtype;
  int64_t c = xs->shape[xs->ndim - 1], rows = c ? lt_tensor_size(xs) / c : 0;
  lt_status st = lt_tensor_new(ctx, rstd, cdt, 1, &c);
  if (!st && training) {
    st = lt_tensor_new(ctx, mean, cdt, 1, &c);
    if (!st) st = lt_tensor_new(ctx, var, cdt, 1, &c);
    if (!st && cdt == LT_FLOAT64) batch_stats_f64(lt__f64(*mean), lt__f64(*var), lt__f64(xs), rows, c);
    if (!st && cdt == LT_FLOAT32) st = batch_stats_f32(ctx, *mean, *var, xs, rows, c);
  } else if (!st) {
    st = lt__as_contig(ctx, mean, rm, cdt);
    if (!st) st = lt__as_contig(ctx, var, rv, cdt);
  }
  for (int64_t j = 0; !st && j < c; j++) {
    if (cdt == LT_FLOAT64)
      lt__f64(*rstd)[j] = 1.0 / sqrt(lt__f64(*var)[j] + eps);
    else
      lt__f32(*rstd)[j] = (float)(1.0 / sqrt((double)lt__f32(*var)[j] + eps));
  }
  return st;
}

/* y = the normalised xs in the compute dtype (the tensors' own). */
static void normalise_any(const lt_ctx *ctx, lt_tensor *y, const lt_tensor *xs, const lt_tensor *mean,
                          const lt_tensor *rstd, const lt_tensor *ws, const lt_tensor *bs, int64_t rows, int64_t c) {
  if (y->dtype == LT_FLOAT64)
    normalise_f64(lt__f64(y), lt__f64(xs), lt__f64(mean), lt__f64(rstd), ws ? lt__f64(ws) : NULL,
                  bs ? lt__f64(bs) : NULL, rows, c);
  else
    normalise(ctx, lt__f32(y), lt__f32(xs), lt__f32(mean), lt__f32(rstd), ws ? lt__f32(ws) : NULL,
              bs ? lt__f32(bs) : NULL, rows, c);
}

lt_status lt_batch_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor **batch_mean, lt_tensor **batch_var, lt_tensor *x,
                        lt_tensor *weight, lt_tensor *bias, lt_tensor *running_mean, lt_tensor *running_var,
                        int training, double eps) {
  *out = NULL;
  if (batch_mean) *batch_mean = NULL;
  if (batch_var) *batch_var = NULL;
  lt_tensor *vecs[4] = {weight, bias, running_mean, running_var};
  lt_status st = check_args(ctx, x, vecs, training, eps);
  if (st) return st;
  int64_t c = x->shape[x->ndim - 1], rows = c ? lt_tensor_size(x) / c : 0;
  lt_tensor *xs = NULL, *ws = NULL, *bs = NULL, *mean = NULL, *var = NULL, *rstd = NULL;
  lt_dtype cdt = compute_dtype(x, weight, bias);
  st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st && weight) st = lt__as_contig(ctx, &ws, weight, cdt);
  if (!st && bias) st = lt__as_contig(ctx, &bs, bias, cdt);
  if (!st) st = stats(ctx, &mean, &var, &rstd, xs, running_mean, running_var, training, eps);
  if (!st) st = lt_tensor_new(ctx, out, cdt, x->ndim, x->shape);
  if (!st) normalise_any(ctx, *out, xs, mean, rstd, ws, bs, rows, c);
  lt_tensor_release(xs), lt_tensor_release(ws), lt_tensor_release(bs);
  if (!st) st = lt__to_dtype(ctx, out, cdt == LT_FLOAT64 ? LT_FLOAT64 : lt__float_result(x->dtype));
  lt_node *node = NULL;
  lt_tensor *ins[3] = {x, weight, bias};
  if (!st) st = lt__record(ctx, &node, LT_OP("batch_norm", bn_backward, bn_attrs, 2), out, 3, ins);
  if (node) {
    ((bn_attrs *)node->attrs)->training = training;
    lt__node_save(node, 0, mean);
    lt__node_save(node, 1, rstd);
  }
  if (!st && training && batch_mean) *batch_mean = lt_tensor_retain(mean);
  if (!st && training && batch_var) *batch_var = lt_tensor_retain(var);
  lt_tensor_release(mean), lt_tensor_release(var), lt_tensor_release(rstd);
  if (st && *out) lt_tensor_release(*out), *out = NULL;
  return st;
}
