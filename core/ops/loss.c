/* Losses with PyTorch semantics.
 *   cross_entropy  logits (..., C), targets (...) integer class ids -> () or (...)
 *   mse_loss       pred (...), target (...) of the same shape       -> () or (...)
 * cross_entropy is fused: one pass per row computes a stable logsumexp, the
 * NLL and the label-smoothing term, and the backward writes
 * softmax - smoothed one-hot straight into the gradient, so a (B*T, vocab) loss
 * allocates nothing of logits' size beyond that gradient (and a float32 copy
 * when logits are float16/bfloat16). Reductions add per-row or per-block
 * partial sums in double in a fixed order, so results do not depend on the
 * thread count. float64 inputs compute in double with plain loops (the
 * reference path) and give float64. */
#include <math.h>
#include <string.h>
#include "ops/internal.h"
#include "kernels/exp.h"

static int is_index_dtype(lt_dtype dt) { return dt == LT_INT32 || dt == LT_INT64 || dt == LT_UINT8; }

/* ---- deterministic sums ---- */

/* Partial sums over a fixed number of blocks whose bounds depend only on n. */
#define SUM_BLOCKS 64

/* Sum of v[0..n) in double. */
static double sum_f32(const lt_ctx *ctx, const float *v, int64_t n) {
  double part[SUM_BLOCKS] = {0};
  int64_t bs = (n + SUM_BLOCKS - 1) / SUM_BLOCKS;
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, b, SUM_BLOCKS, {
    int64_t lo = b * bs, hi = lo + bs < n ? lo + bs : n;
    double s = 0;
    for (int64_t i = lo; i < hi; i++) s += v[i];
    part[b] = s;
  });
  double s = 0;
  for (int b = 0; b < SUM_BLOCKS; b++) s += part[b];
  return s;
}

/* ---- cross_entropy kernels ---- */

typedef struct ce_args {
  int64_t rows, classes, ignore;
  double eps;
} ce_args;

static inline float from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}
static inline uint32_t to_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}
/* Integer key of a float that orders like the float (for non-NaN values). */
static inline int32_t order_key(float x) {
  int32_t i = (int32_t)to_bits(x);
  return i ^ ((i >> 31) & 0x7fffffff);
}

#define LANES     16
#define EXP_BLOCK 256 /* exps computed at a time, on the stack */

/* max_c z_c, compared as order keys (integer compares vectorise; float ones do
 * not under -ftrapping-math). A NaN in the row reaches the loss through exp. */
static float row_max(const float *z, int64_t C) {
  int32_t m[LANES], r = order_key(-INFINITY);
  for (int j = 0; j < LANES; j++) m[j] = r;
  int64_t c = 0;
  for (; c + LANES <= C; c += LANES) {
    const float *zc = z + c;
    for (int j = 0; j < LANES; j++) {
      int32_t k = order_key(zc[j]);
      m[j] = k > m[j] ? k : m[j];
    }
  }
  for (int j = 0; j < LANES; j++) r = m[j] > r ? m[j] : r;
  for (; c < C; c++) r = order_key(z[c]) > r ? order_key(z[c]) : r;
  return from_bits((uint32_t)order_key(from_bits((uint32_t)r))); /* the key map is its own inverse */
}

/* The sum of v[0..n) in LANES float lanes (vectorised without reassociating
 * anything), added up in double; n is at most EXP_BLOCK, so each lane adds few
 * terms. */
static double lanes_sum(const float *v, int64_t n) {
  float acc[LANES] = {0};
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++) acc[j] += v[i + j];
  double s = 0;
  for (; i < n; i++) s += v[i];
  for (int j = 0; j < LANES; j++) s += acc[j];
  return s;
}

/* *se = sum_c exp(z_c - m), *sz = sum_c z_c; the exps a block at a time on
 * the stack. The order is fixed, so results do not depend on the thread count. */
static void row_sums(lt_isa isa, const float *z, int64_t C, float m, double *se, double *sz) {
  float e[EXP_BLOCK];
  double de = 0, dz = 0;
  for (int64_t c0 = 0; c0 < C; c0 += EXP_BLOCK) {
    int64_t len = C - c0 < EXP_BLOCK ? C - c0 : EXP_BLOCK;
    lt__exp_shift(isa, e, z + c0, m, len);
    de += lanes_sum(e, len);
    dz += lanes_sum(z + c0, len);
  }
  *se = de;
  *sz = dz;
}

/* z (N,C), t (N) -> loss (N), lse (N). Ignored rows give loss 0.
 * loss = (1-eps)*(lse - z[t]) + eps*(lse - mean_c z_c), i.e. PyTorch's
 * (1-eps)*nll + eps*mean_c(-log p_c). */
static void ce_forward(const lt_ctx *ctx, float *loss, float *lse, const float *z, const int64_t *t, ce_args a) {
  int64_t C = a.classes;
  int threads = a.rows * C >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  lt_isa isa = lt__ctx_isa(ctx);
  LT_PARALLEL_FOR(threads, r, a.rows, {
    const float *zr = z + r * C;
    if (t[r] == a.ignore) {
      loss[r] = lse[r] = 0;
      continue;
    }
    float m = row_max(zr, C);
    if (isinf(m)) m = 0; /* all -inf (or a +inf): let the sum give -inf/inf/nan as math says */
    double se, sz;
    row_sums(isa, zr, C, m, &se, &sz);
    double l = m + log(se);
    loss[r] = (float)((1 - a.eps) * (l - zr[t[r]]) + a.eps * (l - sz / (double)C));
    lse[r] = (float)l;
  });
}

/* dz (N,C) (overwritten) = w_r * (exp(z - lse_r) - (1-eps)*[c == t_r] - eps/C), 0 on ignored
 * rows; w_r = g[r] when g is given (reduction none), else gs. */
static void ce_backward_kernel(const lt_ctx *ctx, float *dz, const float *z, const float *lse, const int64_t *t,
                               const float *g, float gs, ce_args a) {
  int64_t C = a.classes;
  float off = (float)(a.eps / (double)C), hit = (float)(1 - a.eps);
  int threads = a.rows * C >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  lt_isa isa = lt__ctx_isa(ctx);
  LT_PARALLEL_FOR(threads, r, a.rows, {
    float *dr = dz + r * C;
    const float *zr = z + r * C;
    if (t[r] == a.ignore) {
      memset(dr, 0, (size_t)C * sizeof *dr);
      continue;
    }
    float w = g ? g[r] : gs, l = lse[r];
    lt__exp_shift(isa, dr, zr, l, C);
    for (int64_t c = 0; c < C; c++) dr[c] = w * (dr[c] - off);
    dr[t[r]] -= w * hit;
  });
}

/* ---- cross_entropy in double (float64 logits): the same math, plain loops ---- */

static void ce_forward_f64(const lt_ctx *ctx, double *loss, double *lse, const double *z, const int64_t *t, ce_args a) {
  int64_t C = a.classes;
  int threads = a.rows * C >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, a.rows, {
    const double *zr = z + r * C;
    if (t[r] == a.ignore) {
      loss[r] = lse[r] = 0;
      continue;
    }
    double m = -INFINITY, se = 0, sz = 0;
    for (int64_t c = 0; c < C; c++) m = zr[c] > m ? zr[c] : m;
    if (isinf(m)) m = 0; /* as ce_forward */
    for (int64_t c = 0; c < C; c++) se += exp(zr[c] - m), sz += zr[c];
    double l = m + log(se);
    loss[r] = (1 - a.eps) * (l - zr[t[r]]) + a.eps * (l - sz / (double)C);
    lse[r] = l;
  });
}

static void ce_backward_f64(const lt_ctx *ctx, double *dz, const double *z, const double *lse, const int64_t *t,
                            const double *g, double gs, ce_args a) {
  int64_t C = a.classes;
  int threads = a.rows * C >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, a.rows, {
    double *dr = dz + r * C, w = g ? g[r] : gs;
    if (t[r] == a.ignore) {
      memset(dr, 0, (size_t)C * sizeof *dr);
      continue;
    }
    for (int64_t c = 0; c < C; c++) dr[c] = w * (exp(z[r * C + c] - lse[r]) - a.eps / (double)C);
    dr[t[r]] -= w * (1 - a.eps);
  });
}

/* ---- cross_entropy ---- */

static lt_status ce_check(lt_ctx *ctx, const lt_tensor *z, const lt_tensor *t, double eps, lt_reduction red) {
  if (!z || !t) return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: %s is NULL", z ? "targets" : "logits");
  if (!lt_dtype_info(z->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: logits must be floating point, got %s",
                       lt_dtype_info(z->dtype)->name);
  if (!is_index_dtype(t->dtype))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: targets must be integer class ids, got %s",
                       lt_dtype_info(t->dtype)->name);
  if (z->ndim == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: logits must have a class axis, got shape {}");
  int ok = t->ndim == z->ndim - 1;
  for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == z->shape[d];
  char sz[LT_SHAPE_STR_MAX], se[LT_SHAPE_STR_MAX], st[LT_SHAPE_STR_MAX];
  if (!ok)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: logits have shape %s, so targets must have shape %s, got %s",
                       lt__shape_str(sz, sizeof sz, z->ndim, z->shape),
                       lt__shape_str(se, sizeof se, z->ndim - 1, z->shape),
                       lt__shape_str(st, sizeof st, t->ndim, t->shape));
  if (z->shape[z->ndim - 1] == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: logits have 0 classes");
  if (!(eps >= 0 && eps <= 1))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: label_smoothing must be in [0, 1], got %g", eps);
  if ((unsigned)red > LT_REDUCTION_SUM)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: unknown reduction %d", (int)red);
  return LT_OK;
}

/* Targets as contiguous int64, each in [0, C) or equal to ignore; *count = rows not ignored. */
static lt_status ce_targets(lt_ctx *ctx, lt_tensor **out, lt_tensor *t, ce_args a, int64_t *count) {
  lt_status st = lt__as_contig(ctx, out, t, LT_INT64);
  if (st) return st;
  const int64_t *v = lt_tensor_data(*out);
  int64_t n = 0;
  for (int64_t r = 0; r < a.rows; r++) {
    if (v[r] == a.ignore) continue;
    if (v[r] < 0 || v[r] >= a.classes) {
      lt_tensor_release(*out);
      *out = NULL;
      return lt_ctx_fail(ctx, LT_ERR_ARG, "cross_entropy: target %lld is out of range for %lld classes",
                         (long long)v[r], (long long)a.classes);
    }
    n++;
  }
  *count = n;
  return LT_OK;
}

typedef struct ce_attrs {
  double eps;
  double count; /* rows not ignored */
  lt_reduction reduction;
  int64_t ignore_index;
} ce_attrs;

/* node: in[0] = logits, saved[0] = lse (N) in the compute dtype, saved[1] = int64 targets. */
static lt_status ce_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_tensor *logits = node->in[0], *z = NULL, *cg = NULL, *dz = NULL;
  int64_t C = logits->shape[logits->ndim - 1];
  const ce_attrs *at = node->attrs;
  ce_args a = {lt_tensor_size(logits) / C, C, at->ignore_index, at->eps};
  lt_reduction red = at->reduction;
  lt_dtype cdt = lt__compute_dtype(logits->dtype);
  const lt_tensor *lse = lt__saved(node, 0);
  const int64_t *t = lt_tensor_data(lt__saved(node, 1));
  double gs = 0;
  lt_status st = lt__as_contig(ctx, &z, logits, cdt);
  if (!st && red == LT_REDUCTION_NONE)
    st = lt__as_contig(ctx, &cg, g, cdt);
  else if (!st)
    gs = lt_tensor_get(g, 0) / (red == LT_REDUCTION_MEAN ? at->count : 1.0);
  if (!st) st = lt_tensor_new(ctx, &dz, cdt, logits->ndim, logits->shape);
  if (!st && cdt == LT_FLOAT64)
    ce_backward_f64(ctx, lt__f64(dz), lt__f64(z), lt__f64(lse), t, cg ? lt__f64(cg) : NULL, gs, a);
  else if (!st)
    ce_backward_kernel(ctx, lt__f32(dz), lt__f32(z), lt__f32(lse), t, cg ? lt__f32(cg) : NULL, (float)gs, a);
  if (!st) st = lt__to_dtype(ctx, &dz, logits->dtype);
  lt_tensor_release(z);
  lt_tensor_release(cg);
  if (st) {
    lt_tensor_release(dz);
    return st;
  }
  gin[0] = dz;
  return LT_OK;
}

/* Sum of v[0..n) in order (the float64 path). */
static double sum_f64(const double *v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += v[i];
  return s;
}

/* The reduced 0-d result (mean over rows not ignored: NaN when all are, as in PyTorch). */
static lt_status ce_reduce(lt_ctx *ctx, lt_tensor **loss, lt_reduction red, int64_t count) {
  lt_dtype dt = (*loss)->dtype;
  int64_t n = lt_tensor_size(*loss);
  double s = dt == LT_FLOAT64 ? sum_f64(lt__f64(*loss), n) : sum_f32(ctx, lt__f32(*loss), n);
  if (red == LT_REDUCTION_MEAN) s /= (double)count;
  lt_tensor_release(*loss);
  return lt_tensor_full(ctx, loss, dt, 0, NULL, s);
}

lt_status lt_cross_entropy(lt_ctx *ctx, lt_tensor **out, lt_tensor *logits, lt_tensor *targets, int64_t ignore_index,
                           double label_smoothing, lt_reduction reduction) {
  *out = NULL;
  lt_status st = ce_check(ctx, logits, targets, label_smoothing, reduction);
  if (st) return st;
  int64_t C = logits->shape[logits->ndim - 1], count = 0;
  ce_args a = {lt_tensor_size(targets), C, ignore_index, label_smoothing};
  lt_tensor *t = NULL, *z = NULL, *lse = NULL, *loss = NULL;
  lt_dtype cdt = lt__compute_dtype(logits->dtype);
  st = ce_targets(ctx, &t, targets, a, &count);
  if (!st) st = lt__as_contig(ctx, &z, logits, cdt);
  if (!st) st = lt_tensor_new(ctx, &lse, cdt, 1, &a.rows);
  if (!st) st = lt_tensor_new(ctx, &loss, cdt, targets->ndim, targets->shape);
  if (!st && cdt == LT_FLOAT64)
    ce_forward_f64(ctx, lt__f64(loss), lt__f64(lse), lt__f64(z), lt_tensor_data(t), a);
  else if (!st)
    ce_forward(ctx, lt__f32(loss), lt__f32(lse), lt__f32(z), lt_tensor_data(t), a);
  if (!st && reduction != LT_REDUCTION_NONE) st = ce_reduce(ctx, &loss, reduction, count);
  if (!st) st = lt__to_dtype(ctx, &loss, logits->dtype);
  lt_tensor_release(z);
  lt_node *node = NULL;
  if (!st) {
    *out = loss;
    loss = NULL;
    st = lt__record(ctx, &node, LT_OP("cross_entropy", ce_backward, ce_attrs, 2), out, 1, &logits);
  }
  if (node) {
    lt__node_save(node, 0, lse);
    lt__node_save(node, 1, t);
    *(ce_attrs *)node->attrs = (ce_attrs){label_smoothing, (double)count, reduction, ignore_index};
  }
  lt_tensor_release(loss);
  lt_tensor_release(lse);
  lt_tensor_release(t);
  return st;
}

/* ---- mse_loss ---- */

/* Sum of (p - t)^2 over [0, n) in double, in fixed blocks. */
static double sq_diff_sum(const lt_ctx *ctx, const float *p, const float *t, int64_t n) {
  double part[SUM_BLOCKS] = {0};
  int64_t bs = (n + SUM_BLOCKS - 1) / SUM_BLOCKS;
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, b, SUM_BLOCKS, {
    int64_t lo = b * bs, hi = lo + bs < n ? lo + bs : n;
    double s = 0;
    for (int64_t i = lo; i < hi; i++) {
      float d = p[i] - t[i];
      s += (double)(d * d);
    }
    part[b] = s;
  });
  double s = 0;
  for (int b = 0; b < SUM_BLOCKS; b++) s += part[b];
  return s;
}

/* out (n) = (p - t)^2 */
static void sq_diff(const lt_ctx *ctx, float *out, const float *p, const float *t, int64_t n) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    float d = p[i] - t[i];
    out[i] = d * d;
  });
}

/* gp (n) = 2 (p - t) w_i, gt = -gp (either may be NULL); w_i = g[i] when g is given, else gs. */
static void mse_grad(const lt_ctx *ctx, float *gp, float *gt, const float *p, const float *t, const float *g, float gs,
                     int64_t n) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    float v = 2 * (p[i] - t[i]) * (g ? g[i] : gs);
    if (gp) gp[i] = v;
    if (gt) gt[i] = -v;
  });
}

/* The mse kernels in double (the float64 path): out = (p - t)^2, its sum, and
 * gp = 2 (p - t) w, gt = -gp as mse_grad. */
static void sq_diff_f64(const lt_ctx *ctx, double *out, const double *p, const double *t, int64_t n) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, { out[i] = (p[i] - t[i]) * (p[i] - t[i]); });
}

static double sq_diff_sum_f64(const double *p, const double *t, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (p[i] - t[i]) * (p[i] - t[i]);
  return s;
}

static void mse_grad_f64(const lt_ctx *ctx, double *gp, double *gt, const double *p, const double *t, const double *g,
                         double gs, int64_t n) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    double v = 2 * (p[i] - t[i]) * (g ? g[i] : gs);
    if (gp) gp[i] = v;
    if (gt) gt[i] = -v;
  });
}

typedef struct mse_attrs {
  lt_reduction reduction;
} mse_attrs;

/* node: in[0] = pred, in[1] = target. */
static lt_status mse_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_tensor *p = NULL, *t = NULL, *cg = NULL, *gp = NULL, *gt = NULL;
  const lt_tensor *pred = node->in[0];
  int64_t n = lt_tensor_size(pred);
  lt_reduction red = ((const mse_attrs *)node->attrs)->reduction;
  lt_dtype cdt = lt__compute_dtype(lt__promote(node->in[0]->dtype, node->in[1]->dtype));
  double gs = 0;
  lt_status st = lt__as_contig(ctx, &p, node->in[0], cdt);
  if (!st) st = lt__as_contig(ctx, &t, node->in[1], cdt);
  if (!st && red == LT_REDUCTION_NONE)
    st = lt__as_contig(ctx, &cg, g, cdt);
  else if (!st)
    gs = lt_tensor_get(g, 0) / (red == LT_REDUCTION_MEAN ? (double)n : 1.0);
  if (!st && lt__needs(node, 0)) st = lt_tensor_new(ctx, &gp, cdt, pred->ndim, pred->shape);
  if (!st && lt__needs(node, 1)) st = lt_tensor_new(ctx, &gt, cdt, pred->ndim, pred->shape);
  if (!st && cdt == LT_FLOAT64)
    mse_grad_f64(ctx, gp ? lt__f64(gp) : NULL, gt ? lt__f64(gt) : NULL, lt__f64(p), lt__f64(t), cg ? lt__f64(cg) : NULL,
                 gs, n);
  else if (!st)
    mse_grad(ctx, gp ? lt__f32(gp) : NULL, gt ? lt__f32(gt) : NULL, lt__f32(p), lt__f32(t), cg ? lt__f32(cg) : NULL,
             (float)gs, n);
  if (!st) {
    if (gp) st = lt__to_dtype(ctx, &gp, node->in[0]->dtype);
    if (!st && gt) st = lt__to_dtype(ctx, &gt, node->in[1]->dtype);
  }
  lt_tensor *tmp[3] = {p, t, cg};
  lt__release_all(3, tmp);
  if (st) {
    lt_tensor_release(gp);
    lt_tensor_release(gt);
    return st;
  }
  gin[0] = gp;
  gin[1] = gt;
  return LT_OK;
}

static lt_status mse_check(lt_ctx *ctx, const lt_tensor *p, const lt_tensor *t, lt_reduction red) {
  if (!p || !t) return lt_ctx_fail(ctx, LT_ERR_ARG, "mse_loss: %s is NULL", p ? "target" : "pred");
  for (int k = 0; k < 2; k++) {
    const lt_tensor *x = k ? t : p;
    if (!lt_dtype_info(x->dtype)->is_float)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "mse_loss: %s must be floating point, got %s", k ? "target" : "pred",
                         lt_dtype_info(x->dtype)->name);
  }
  char sp[LT_SHAPE_STR_MAX], stt[LT_SHAPE_STR_MAX];
  if (p->ndim != t->ndim || memcmp(p->shape, t->shape, (size_t)p->ndim * sizeof *p->shape) != 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "mse_loss: pred has shape %s, target has shape %s",
                       lt__shape_str(sp, sizeof sp, p->ndim, p->shape),
                       lt__shape_str(stt, sizeof stt, t->ndim, t->shape));
  if ((unsigned)red > LT_REDUCTION_SUM) return lt_ctx_fail(ctx, LT_ERR_ARG, "mse_loss: unknown reduction %d", (int)red);
  return LT_OK;
}

/* Shapes must be equal (PyTorch only warns when they broadcast, which usually hides a bug).
 * The result has pred's dtype when both dtypes agree, float64 when either is,
 * else float32 (lt__promote's rule for floats). */
lt_status lt_mse_loss(lt_ctx *ctx, lt_tensor **out, lt_tensor *pred, lt_tensor *target, lt_reduction reduction) {
  *out = NULL;
  lt_status st = mse_check(ctx, pred, target, reduction);
  if (st) return st;
  int64_t n = lt_tensor_size(pred);
  lt_dtype dt = lt__promote(pred->dtype, target->dtype), cdt = lt__compute_dtype(dt);
  int f64 = cdt == LT_FLOAT64;
  lt_tensor *p = NULL, *t = NULL, *o = NULL;
  st = lt__as_contig(ctx, &p, pred, cdt);
  if (!st) st = lt__as_contig(ctx, &t, target, cdt);
  if (!st && reduction == LT_REDUCTION_NONE) {
    st = lt_tensor_new(ctx, &o, cdt, pred->ndim, pred->shape);
    if (!st && f64) sq_diff_f64(ctx, lt__f64(o), lt__f64(p), lt__f64(t), n);
    if (!st && !f64) sq_diff(ctx, lt__f32(o), lt__f32(p), lt__f32(t), n);
  } else if (!st) {
    double s = f64 ? sq_diff_sum_f64(lt__f64(p), lt__f64(t), n) : sq_diff_sum(ctx, lt__f32(p), lt__f32(t), n);
    st = lt_tensor_full(ctx, &o, cdt, 0, NULL, reduction == LT_REDUCTION_MEAN ? s / (double)n : s);
  }
  if (!st) st = lt__to_dtype(ctx, &o, dt);
  lt_tensor_release(p);
  lt_tensor_release(t);
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  lt_tensor *ins[2] = {pred, target};
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP("mse_loss", mse_backward, mse_attrs, 0), out, 2, ins);
  if (node) ((mse_attrs *)node->attrs)->reduction = reduction;
  return st;
}
