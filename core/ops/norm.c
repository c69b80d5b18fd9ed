/* Normalisation over the last axis, forward and backward fused per row.
 * x (R, C) (all leading axes are rows), weight (C), bias (C) -> y (R, C):
 *   layer_norm: y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var + eps)
 *   rms_norm:   y = x * rstd * weight,                  rstd = 1 / sqrt(mean(x^2) + eps)
 * Row statistics are kept (R each, in the compute dtype) for backward.
 * float16/bfloat16 are staged to float32 and the result takes x's dtype; when
 * x, weight or bias is float64 everything computes in double (plain loops, the
 * reference path) and the result is float64. Integer x is rejected. */
#include <math.h>
#include <string.h>
#include "ops/internal.h"

/* Weight and bias gradients sum over rows in this many fixed row chunks, each
 * with its own partial sums combined in chunk order: the result does not depend
 * on the thread count and no two threads write the same memory. */
#define NORM_CHUNKS 32

/* ---- kernels ---- */

/* One row: mean (0 when !center) and rstd. Two passes over a row that sits in
 * cache cost little and avoid the cancellation of a one-pass E[x^2] - E[x]^2. */
static void row_stats(const float *x, int64_t c, double eps, int center, float *mean, float *rstd) {
  double s = 0, v = 0;
  if (center) {
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < c; j++) s += x[j];
    s /= (double)c;
  }
#pragma omp simd reduction(+ : v)
  for (int64_t j = 0; j < c; j++) v += ((double)x[j] - s) * ((double)x[j] - s);
  *mean = (float)s;
  *rstd = (float)(1.0 / sqrt(v / (double)c + eps));
}

/* y, mean (R, may be NULL when !center), rstd (R) <- x (R, C), w (C)?, b (C)?. */
static void norm_forward(const lt_ctx *ctx, float *y, float *mean, float *rstd, const float *x, const float *w,
                         const float *b, int64_t rows, int64_t c, double eps, int center) {
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, rows, {
    const float *xr = x + r * c;
    float *yr = y + r * c, mu, rs;
    row_stats(xr, c, eps, center, &mu, &rs);
    if (mean) mean[r] = mu;
    rstd[r] = rs;
    for (int64_t j = 0; j < c; j++) {
      float v = (xr[j] - mu) * rs;
      if (w) v *= w[j];
      if (b) v += b[j];
      yr[j] = v;
    }
  });
}

/* One row of dx (overwritten; may be NULL) and the row's share of dw, db
 * (accumulated into pw, pb; may be NULL):
 *   xhat = (x - mean) * rstd,  u = g * w
 *   dx = rstd * (u - [center] mean(u) - xhat * mean(u * xhat)),  dw += g * xhat,  db += g */
static void row_backward(float *dx, double *pw, double *pb, const float *g, const float *x, float mu, float rs,
                         const float *w, int64_t c, int center) {
  if (dx) {
    double su = 0, sux = 0;
#pragma omp simd reduction(+ : su, sux)
    for (int64_t j = 0; j < c; j++) {
      double u = (double)g[j] * (w ? w[j] : 1.0f), xh = ((double)x[j] - mu) * rs;
      su += u;
      sux += u * xh;
    }
    float mu_u = center ? (float)(su / (double)c) : 0.0f, mu_ux = (float)(sux / (double)c);
    for (int64_t j = 0; j < c; j++) {
      float u = g[j] * (w ? w[j] : 1.0f), xh = (x[j] - mu) * rs;
      dx[j] = rs * (u - mu_u - xh * mu_ux);
    }
  }
  if (pw)
    for (int64_t j = 0; j < c; j++) pw[j] += (double)g[j] * ((x[j] - mu) * rs);
  if (pb)
    for (int64_t j = 0; j < c; j++) pb[j] += g[j];
}

/* dx (R, C) overwritten (may be NULL); part (NORM_CHUNKS, 2, C) doubles overwritten
 * with per-chunk sums for dw and db (may be NULL). mean NULL when !center. */
static void norm_backward(const lt_ctx *ctx, float *dx, double *part, const float *g, const float *x, const float *mean,
                          const float *rstd, const float *w, int64_t rows, int64_t c, int center, int want_w,
                          int want_b) {
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, NORM_CHUNKS, {
    double *pw = part && want_w ? part + (int64_t)k * 2 * c : NULL;
    double *pb = part && want_b ? part + (int64_t)k * 2 * c + c : NULL;
    if (part) memset(part + (int64_t)k * 2 * c, 0, (size_t)(2 * c) * sizeof *part);
    for (int64_t r = rows * k / NORM_CHUNKS; r < rows * (k + 1) / NORM_CHUNKS; r++)
      row_backward(dx ? dx + r * c : NULL, pw, pb, g + r * c, x + r * c, mean ? mean[r] : 0.0f, rstd[r], w, c, center);
  });
}

/* out (C) = sum of the chunks' partials at `which` (0: dw, 1: db), in chunk order. */
static void combine(float *out, const double *part, int64_t c, int which) {
  for (int64_t j = 0; j < c; j++) {
    double s = 0;
    for (int k = 0; k < NORM_CHUNKS; k++) s += part[((int64_t)k * 2 + which) * c + j];
    out[j] = (float)s;
  }
}

/* ---- float64: the same rows in double, plain loops ---- */

/* y, mean (R, NULL when !center), rstd (R) <- x (R, C), w (C)?, b (C)?. */
static void norm_forward_f64(const lt_ctx *ctx, double *y, double *mean, double *rstd, const double *x, const double *w,
                             const double *b, int64_t rows, int64_t c, double eps, int center) {
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, rows, {
    const double *xr = x + r * c;
    double mu = 0, v = 0;
    for (int64_t j = 0; center && j < c; j++) mu += xr[j];
    mu = center ? mu / (double)c : 0.0;
    for (int64_t j = 0; j < c; j++) v += (xr[j] - mu) * (xr[j] - mu);
    double rs = 1.0 / sqrt(v / (double)c + eps);
    if (mean) mean[r] = mu;
    rstd[r] = rs;
    for (int64_t j = 0; j < c; j++) y[r * c + j] = (xr[j] - mu) * rs * (w ? w[j] : 1.0) + (b ? b[j] : 0.0);
  });
}

/* dx (R, C), dw (C), db (C) overwritten (each may be NULL), as row_backward
 * writes them; dw and db sum over the rows in order, one task per column. */
static void norm_backward_f64(const lt_ctx *ctx, double *dx, double *dw, double *db, const double *g, const double *x,
                              const double *mean, const double *rstd, const double *w, int64_t rows, int64_t c) {
  int threads = rows * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (dx)
    LT_PARALLEL_FOR(threads, r, rows, {
      const double *gr = g + r * c, *xr = x + r * c;
      double mu = mean ? mean[r] : 0.0, rs = rstd[r], su = 0, sux = 0;
      for (int64_t j = 0; j < c; j++) {
        double u = gr[j] * (w ? w[j] : 1.0);
        su += u;
        sux += u * (xr[j] - mu) * rs;
      }
      double mu_u = mean ? su / (double)c : 0.0, mu_ux = sux / (double)c;
      for (int64_t j = 0; j < c; j++)
        dx[r * c + j] = rs * (gr[j] * (w ? w[j] : 1.0) - mu_u - (xr[j] - mu) * rs * mu_ux);
    });
  if (dw || db)
    LT_PARALLEL_FOR(threads, j, c, {
      double sw = 0, sb = 0;
      for (int64_t r = 0; r < rows; r++) {
        sw += g[r * c + j] * (x[r * c + j] - (mean ? mean[r] : 0.0)) * rstd[r];
        sb += g[r * c + j];
      }
      if (dw) dw[j] = sw;
      if (db) db[j] = sb;
    });
}

/* ---- argument checks ---- */

static lt_status check_input(lt_ctx *ctx, const char *op, const lt_tensor *x) {
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: integer inputs are not supported, got %s", op,
                       lt_dtype_info(x->dtype)->name);
  if (x->ndim == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: x must have at least 1 dimension, got a 0-d array", op);
  return LT_OK;
}

/* weight or bias (what) must be a float vector of the last axis' size. */
static lt_status check_param(lt_ctx *ctx, const char *op, const lt_tensor *p, const char *what, int64_t c) {
  if (!p) return LT_OK;
  if (!lt_dtype_info(p->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be a float tensor, got %s", op, what,
                       lt_dtype_info(p->dtype)->name);
  if (p->ndim != 1 || p->shape[0] != c) {
    char s[LT_SHAPE_STR_MAX];
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s has shape %s, expected {%lld}", op, what,
                       lt__shape_str(s, sizeof s, p->ndim, p->shape), (long long)c);
  }
  return LT_OK;
}

/* ---- backward ---- */

typedef struct norm_attrs {
  int center; /* layer_norm (1) or rms_norm (0) */
} norm_attrs;

/* The dtype of the result: float64 when any of x, weight, bias is (as binary
 * ops promote), else x's. */
static lt_dtype result_dtype(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b) {
  int f64 = x->dtype == LT_FLOAT64 || (w && w->dtype == LT_FLOAT64) || (b && b->dtype == LT_FLOAT64);
  return f64 ? LT_FLOAT64 : x->dtype;
}

/* Staging of the backward's inputs in the compute dtype: g, x, weight (NULL when absent). */
typedef struct staged {
  lt_tensor *g, *x, *w;
} staged;

static lt_status stage(lt_ctx *ctx, staged *s, lt_tensor *g, lt_tensor *x, lt_tensor *w, lt_dtype cdt) {
  lt_status st = lt__as_contig(ctx, &s->g, g, cdt);
  if (!st) st = lt__as_contig(ctx, &s->x, x, cdt);
  if (!st && w) st = lt__as_contig(ctx, &s->w, w, cdt);
  return st;
}

/* A new tensor of the compute dtype shaped like `like`, converted to like's dtype by the caller. */
static lt_status new_like(lt_ctx *ctx, lt_tensor **out, const lt_tensor *like, lt_dtype cdt) {
  return lt_tensor_new(ctx, out, cdt, like->ndim, like->shape);
}

/* The float32 backward: dx and per-chunk partial sums of dw and db combined in order. */
static lt_status backward_f32(lt_ctx *ctx, const lt_node *n, const staged *s, lt_tensor **gin, int64_t rows,
                              int64_t c) {
  int center = ((const norm_attrs *)n->attrs)->center, want_w = gin[1] != NULL, want_b = n->nin > 2 && gin[2];
  double *part = NULL;
  size_t part_bytes = (size_t)(NORM_CHUNKS * 2 * c) * sizeof(double);
  if ((want_w || want_b) && c > 0 && !(part = lt_ctx_alloc(ctx, part_bytes)))
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", n->name);
  norm_backward(ctx, gin[0] ? lt__f32(gin[0]) : NULL, part, lt__f32(s->g), lt__f32(s->x),
                center ? lt__f32(lt__saved(n, 1)) : NULL, lt__f32(lt__saved(n, 0)), s->w ? lt__f32(s->w) : NULL, rows,
                c, center, want_w, want_b);
  if (want_w) combine(lt__f32(gin[1]), part, c, 0);
  if (want_b) combine(lt__f32(gin[2]), part, c, 1);
  if (part) lt_ctx_free(ctx, part, part_bytes);
  return LT_OK;
}

/* gin[0] = dx, gin[1] = dweight, gin[2] = dbias; in = {x, weight, bias}, saved = {rstd, mean}. */
static lt_status norm_backward_rule(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_tensor *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
  int center = ((const norm_attrs *)n->attrs)->center, want_w = lt__needs(n, 1), want_b = n->nin > 2 && lt__needs(n, 2);
  int64_t c = x->shape[x->ndim - 1], rows = c ? lt_tensor_size(x) / c : 0;
  lt_dtype cdt = lt__compute_dtype(result_dtype(x, w, b));
  staged s = {0};
  lt_status st = stage(ctx, &s, g, x, w, cdt);
  if (!st && lt__needs(n, 0)) st = new_like(ctx, &gin[0], x, cdt);
  if (!st && want_w) st = new_like(ctx, &gin[1], w, cdt);
  if (!st && want_b) st = new_like(ctx, &gin[2], b, cdt);
  if (!st && cdt == LT_FLOAT64)
    norm_backward_f64(ctx, gin[0] ? lt__f64(gin[0]) : NULL, want_w ? lt__f64(gin[1]) : NULL,
                      want_b ? lt__f64(gin[2]) : NULL, lt__f64(s.g), lt__f64(s.x),
                      center ? lt__f64(lt__saved(n, 1)) : NULL, lt__f64(lt__saved(n, 0)), s.w ? lt__f64(s.w) : NULL,
                      rows, c);
  else if (!st)
    st = backward_f32(ctx, n, &s, gin, rows, c);
  lt_tensor_release(s.g), lt_tensor_release(s.x), lt_tensor_release(s.w);
  for (int k = 0; k < n->nin && !st; k++)
    if (gin[k]) st = lt__to_dtype(ctx, &gin[k], n->in[k]->dtype);
  if (st)
    for (int k = 0; k < n->nin; k++) lt_tensor_release(gin[k]), gin[k] = NULL;
  return st;
}

/* ---- forward ---- */

static lt_status norm(lt_ctx *ctx, lt_tensor **out, const char *op, lt_tensor *x, lt_tensor *w, lt_tensor *b,
                      double eps, int center) {
  *out = NULL;
  lt_status st = check_input(ctx, op, x);
  if (st) return st;
  int64_t c = x->shape[x->ndim - 1], rows = c ? lt_tensor_size(x) / c : 0;
  if ((st = check_param(ctx, op, w, "weight", c)) || (st = check_param(ctx, op, b, "bias", c))) return st;
  if (!(eps >= 0)) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: eps must be non-negative, got %g", op, eps);
  lt_dtype odt = result_dtype(x, w, b), cdt = lt__compute_dtype(odt);
  lt_tensor *xs = NULL, *ws = NULL, *bs = NULL, *mean = NULL, *rstd = NULL;
  st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st && w) st = lt__as_contig(ctx, &ws, w, cdt);
  if (!st && b) st = lt__as_contig(ctx, &bs, b, cdt);
  if (!st) st = lt_tensor_new(ctx, out, cdt, x->ndim, x->shape);
  if (!st) st = lt_tensor_new(ctx, &rstd, cdt, 1, &rows);
  if (!st && center) st = lt_tensor_new(ctx, &mean, cdt, 1, &rows);
  if (!st && c > 0 && cdt == LT_FLOAT64)
    norm_forward_f64(ctx, lt__f64(*out), mean ? lt__f64(mean) : NULL, lt__f64(rstd), lt__f64(xs),
                     ws ? lt__f64(ws) : NULL, bs ? lt__f64(bs) : NULL, rows, c, eps, center);
  else if (!st && c > 0)
    norm_forward(ctx, lt__f32(*out), mean ? lt__f32(mean) : NULL, lt__f32(rstd), lt__f32(xs), ws ? lt__f32(ws) : NULL,
                 bs ? lt__f32(bs) : NULL, rows, c, eps, center);
  lt_tensor_release(xs), lt_tensor_release(ws), lt_tensor_release(bs);
  if (!st) st = lt__to_dtype(ctx, out, odt);
  lt_node *node = NULL;
  lt_tensor *ins[3] = {x, w, b};
  if (!st) st = lt__record(ctx, &node, LT_OP(op, norm_backward_rule, norm_attrs, 2), out, center ? 3 : 2, ins);
  if (node) {
    ((norm_attrs *)node->attrs)->center = center;
    lt__node_save(node, 0, rstd);
    if (mean) lt__node_save(node, 1, mean);
  }
  if (st && *out) lt_tensor_release(*out), *out = NULL;
  lt_tensor_release(mean), lt_tensor_release(rstd);
  return st;
}

lt_status lt_layer_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias, double eps) {
  return norm(ctx, out, "layer_norm", x, weight, bias, eps, 1);
}

lt_status lt_rms_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, double eps) {
  return norm(ctx, out, "rms_norm", x, weight, NULL, eps, 0);
}
