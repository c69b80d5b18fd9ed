/* softmax and log_softmax along one axis, with fused backward kernels.
 *   x (K1, R, K2) -> y (K1, R, K2), normalised over R (the axis).
 * The last axis (K2 == 1) is one contiguous row per task; any other axis streams
 * blocks of CB columns over the R rows, so both read memory in order. Stable:
 * each row's max is subtracted before exp, and the sum of exps accumulates in
 * double. float16/bfloat16 are staged to float32; integer inputs give float32.
 * float64 computes in double, one task per (K1, K2) column of R elements: the
 * reference path, plain loops.
 * Backward (g, y -> gx, same shapes; overwrites gx):
 *   softmax:      gx = y * (g - sum_R(g * y))
 *   log_softmax:  gx = g - exp(y) * sum_R(g) */
#include <math.h>
#include <string.h>
#include "ops/internal.h"
#include "kernels/exp.h"

#define CB  64  /* columns per block for non-last axes */
#define TMP 256 /* stack scratch for exps that are only summed */

static double sum_f64(const float *x, int64_t n) {
  double a[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) a[j] += x[i + j];
  for (int j = 0; i < n; i++, j++) a[j] += x[i];
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* ---- last axis: x (n) -> y (n) ---- */

static float row_max(const float *x, int64_t n) {
  float a[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) a[j] = x[i + j] > a[j] ? x[i + j] : a[j];
  float m = -INFINITY;
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  for (int j = 0; j < 8; j++) m = a[j] > m ? a[j] : m;
  return m; /* a NaN in x is skipped here but makes the row's sum NaN */
}

static void row_forward(lt_isa isa, int is_log, const float *x, float *y, int64_t n) {
  float m = row_max(x, n);
  if (is_log) {
    float tmp[TMP];
    double s = 0;
    for (int64_t i = 0; i < n; i += TMP) {
      int64_t len = n - i < TMP ? n - i : TMP;
      lt__exp_shift(isa, tmp, x + i, m, len);
      s += sum_f64(tmp, len);
    }
    float ls = (float)log(s);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) - ls;
  } else {
    lt__exp_shift(isa, y, x, m, n);
    float inv = (float)(1.0 / sum_f64(y, n));
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
  }
}

static void row_backward(lt_isa isa, int is_log, const float *g, const float *y, float *gx, int64_t n) {
  if (is_log) {
    float s = (float)sum_f64(g, n);
    lt__exp_shift(isa, gx, y, 0.0f, n);
    for (int64_t i = 0; i < n; i++) gx[i] = g[i] - gx[i] * s;
  } else {
    double a[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) a[j] += (double)g[i + j] * y[i + j];
    for (int j = 0; i < n; i++, j++) a[j] += (double)g[i] * y[i];
    float s = (float)(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));
    for (i = 0; i < n; i++) gx[i] = y[i] * (g[i] - s);
  }
}

/* ---- other axes: x (r, ld), w <= CB columns -> y (r, ld) ---- */

static void col_forward(lt_isa isa, int is_log, const float *x, float *y, int64_t r, int64_t ld, int64_t w) {
  float m[CB], f[CB], d[CB], e[CB];
  double s[CB];
  for (int64_t j = 0; j < w; j++) m[j] = -INFINITY, s[j] = 0;
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < w; j++) m[j] = x[i * ld + j] > m[j] ? x[i * ld + j] : m[j];
  for (int64_t i = 0; i < r; i++) {
    for (int64_t j = 0; j < w; j++) d[j] = x[i * ld + j] - m[j];
    float *out = is_log ? e : y + i * ld; /* log_softmax only sums the exps */
    lt__exp_shift(isa, out, d, 0.0f, w);
    for (int64_t j = 0; j < w; j++) s[j] += out[j];
  }
  for (int64_t j = 0; j < w; j++) f[j] = is_log ? (float)log(s[j]) : (float)(1.0 / s[j]);
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < w; j++) y[i * ld + j] = is_log ? (x[i * ld + j] - m[j]) - f[j] : y[i * ld + j] * f[j];
}

static void col_backward(lt_isa isa, int is_log, const float *g, const float *y, float *gx, int64_t r, int64_t ld,
                         int64_t w) {
  double s[CB];
  float sf[CB];
  for (int64_t j = 0; j < w; j++) s[j] = 0;
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < w; j++) s[j] += is_log ? (double)g[i * ld + j] : (double)g[i * ld + j] * y[i * ld + j];
  for (int64_t j = 0; j < w; j++) sf[j] = (float)s[j];
  for (int64_t i = 0; i < r; i++) {
    const float *gi = g + i * ld, *yi = y + i * ld;
    float *o = gx + i * ld;
    if (is_log) {
      lt__exp_shift(isa, o, yi, 0.0f, w);
      for (int64_t j = 0; j < w; j++) o[j] = gi[j] - o[j] * sf[j];
    } else {
      for (int64_t j = 0; j < w; j++) o[j] = yi[j] * (gi[j] - sf[j]);
    }
  }
}

/* ---- drivers: one task per row (last axis) or per (K1, column block) ---- */

typedef struct span {
  int64_t k1, r, k2;
} span;

static span make_span(const lt_tensor *x, int axis) {
  span s = {1, x->shape[axis], 1};
  for (int i = 0; i < axis; i++) s.k1 *= x->shape[i];
  for (int i = axis + 1; i < x->ndim; i++) s.k2 *= x->shape[i];
  return s;
}

static int threads_for(const lt_ctx *ctx, const span *s) {
  return s->k1 * s->r * s->k2 >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
}

/* x, y (K1, R, K2). */
static void forward(const lt_ctx *ctx, int is_log, const float *x, float *y, const span *s) {
  int64_t ncb = (s->k2 + CB - 1) / CB, rk = s->r * s->k2;
  int threads = threads_for(ctx, s);
  lt_isa isa = lt__ctx_isa(ctx);
  if (s->k2 == 1) {
    LT_PARALLEL_FOR(threads, i, s->k1, { row_forward(isa, is_log, x + i * rk, y + i * rk, s->r); });
    return;
  }
  LT_PARALLEL_FOR(threads, it, s->k1 * ncb, {
    int64_t i = it / ncb, c0 = it % ncb * CB, w = s->k2 - c0 < CB ? s->k2 - c0 : CB;
    col_forward(isa, is_log, x + i * rk + c0, y + i * rk + c0, s->r, s->k2, w);
  });
}

/* g, y, gx (K1, R, K2). */
static void backward(const lt_ctx *ctx, int is_log, const float *g, const float *y, float *gx, const span *s) {
  int64_t ncb = (s->k2 + CB - 1) / CB, rk = s->r * s->k2;
  int threads = threads_for(ctx, s);
  lt_isa isa = lt__ctx_isa(ctx);
  if (s->k2 == 1) {
    LT_PARALLEL_FOR(threads, i, s->k1, { row_backward(isa, is_log, g + i * rk, y + i * rk, gx + i * rk, s->r); });
    return;
  }
  LT_PARALLEL_FOR(threads, it, s->k1 * ncb, {
    int64_t i = it / ncb, c0 = it % ncb * CB, w = s->k2 - c0 < CB ? s->k2 - c0 : CB, o = i * rk + c0;
    col_backward(isa, is_log, g + o, y + o, gx + o, s->r, s->k2, w);
  });
}

/* ---- float64: x, y (K1, R, K2), one column of R elements at stride K2 per task ---- */

static void column_forward_f64(int is_log, const double *x, double *y, int64_t r, int64_t st) {
  double m = -INFINITY, sum = 0;
  for (int64_t j = 0; j < r; j++) m = x[j * st] > m ? x[j * st] : m; /* a NaN is skipped, then spreads */
  for (int64_t j = 0; j < r; j++) sum += exp(x[j * st] - m);
  double ls = log(sum);
  for (int64_t j = 0; j < r; j++) y[j * st] = is_log ? (x[j * st] - m) - ls : exp(x[j * st] - m) / sum;
}

static void column_backward_f64(int is_log, const double *g, const double *y, double *gx, int64_t r, int64_t st) {
  double sum = 0;
  for (int64_t j = 0; j < r; j++) sum += is_log ? g[j * st] : g[j * st] * y[j * st];
  for (int64_t j = 0; j < r; j++)
    gx[j * st] = is_log ? g[j * st] - exp(y[j * st]) * sum : y[j * st] * (g[j * st] - sum);
}

static void forward_f64(const lt_ctx *ctx, int is_log, const double *x, double *y, const span *s) {
  int64_t rk = s->r * s->k2;
  LT_PARALLEL_FOR(threads_for(ctx, s), o, s->k1 * s->k2, {
    int64_t off = o / s->k2 * rk + o % s->k2;
    column_forward_f64(is_log, x + off, y + off, s->r, s->k2);
  });
}

static void backward_f64(const lt_ctx *ctx, int is_log, const double *g, const double *y, double *gx, const span *s) {
  int64_t rk = s->r * s->k2;
  LT_PARALLEL_FOR(threads_for(ctx, s), o, s->k1 * s->k2, {
    int64_t off = o / s->k2 * rk + o % s->k2;
    column_backward_f64(is_log, g + off, y + off, gx + off, s->r, s->k2);
  });
}

/* ---- entries ---- */

typedef struct softmax_attrs {
  int axis, is_log;
} softmax_attrs;

static lt_status softmax_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_tensor *x = n->in[0], *gc = NULL, *yc = NULL, *gx = NULL;
  const softmax_attrs *at = n->attrs;
  span s = make_span(x, at->axis);
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_status st = lt__as_contig(ctx, &gc, g, cdt);
  if (!st) st = lt__as_contig(ctx, &yc, lt__saved(n, 0), cdt);
  if (!st) st = lt_tensor_new(ctx, &gx, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    backward_f64(ctx, at->is_log, lt__f64(gc), lt__f64(yc), lt__f64(gx), &s);
  else if (!st)
    backward(ctx, at->is_log, lt__f32(gc), lt__f32(yc), lt__f32(gx), &s);
  if (!st) st = lt__to_dtype(ctx, &gx, x->dtype);
  lt_tensor_release(gc);
  lt_tensor_release(yc);
  if (st) {
    lt_tensor_release(gx);
    return st;
  }
  gin[0] = gx;
  return LT_OK;
}

static lt_status softmax_op(lt_ctx *ctx, lt_tensor **out, int is_log, lt_tensor *x, int axis) {
  const char *name = is_log ? "log_softmax" : "softmax";
  *out = NULL;
  int a = lt__axis(axis, x->ndim);
  if (a < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: axis %d is out of range for %d dimensions", name, axis + (axis >= 0),
                       x->ndim); /* as Lua counts */
  span s = make_span(x, a);
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_tensor *xc = NULL, *y = NULL;
  lt_status st = lt__as_contig(ctx, &xc, x, cdt);
  if (!st) st = lt_tensor_new(ctx, &y, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    forward_f64(ctx, is_log, lt__f64(xc), lt__f64(y), &s);
  else if (!st)
    forward(ctx, is_log, lt__f32(xc), lt__f32(y), &s);
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, &y, lt__float_result(x->dtype));
  if (st) {
    lt_tensor_release(y);
    return st;
  }
  *out = y;
  if (!lt_dtype_info(x->dtype)->is_float) return LT_OK;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP(name, softmax_backward, softmax_attrs, 1), out, 1, &x);
  if (node) {
    *(softmax_attrs *)node->attrs = (softmax_attrs){a, is_log};
    lt__node_save(node, 0, *out);
  }
  return st;
}

lt_status lt_softmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) { return softmax_op(ctx, out, 0, x, axis); }

lt_status lt_log_softmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) {
  return softmax_op(ctx, out, 1, x, axis);
}
