/* Adafactor (Shazeer and Stern, 2018) with MLX's formulas. For a parameter of
 * two or more axes the second moment is factored over its last two (R, C):
 * row statistics (..., R) and column statistics (..., C) instead of a full
 * (..., R, C) tensor; vectors keep the full second moment.
 *   rms(x) = sqrt(mean(x^2)),  u0 = g^2 + eps1,  beta2 = 1 - t^decay_rate
 *   lr = (relative_step ? min(warmup_init ? 1e-6 t : 1e-2, 1/sqrt(t)) : learning_rate)
 *        * (scale_parameter ? max(eps2, rms(p)) : 1)
 *   factored: row = beta2 row + (1 - beta2) mean_C(u0);  col = beta2 col + (1 - beta2) mean_R(u0)
 *             u = g / sqrt(row / mean_R(row)) / sqrt(col)
 *   else:     v = beta2 v + (1 - beta2) u0;  u = g / sqrt(v)
 *   u = lr u / max(1, rms(u) / clip_threshold);  first moment: m = b1 m + (1 - b1) u, u = m
 *   p = p (1 - weight_decay lr) - u
 * It takes a few passes over the parameter (the norms must be known before
 * the update); sums run in double over fixed chunks combined in order. */
#include <math.h>
#include <string.h>
#include "optim/internal.h"
#include "runtime/parallel.h"

#define CHUNKS 64

/* The geometry: `batch` matrices of rows x cols (a vector is 1 x n, unfactored). */
typedef struct afac {
  int64_t batch, rows, cols, n;
  int factored;
} afac;

/* sum over i of f(i)^2 for the n elements, deterministic. */
static double sum_sq(const lt_ctx *ctx, const float *x, int64_t n) {
  double part[CHUNKS];
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, CHUNKS, {
    double s = 0;
    for (int64_t i = n * k / CHUNKS; i < n * (k + 1) / CHUNKS; i++) s += (double)x[i] * x[i];
    part[k] = s;
  });
  double s = 0;
  for (int k = 0; k < CHUNKS; k++) s += part[k];
  return s;
}

/* row (B, R) and col (B, C) moving averages of u0 = g^2 + eps1. */
static void factored_moments(const lt_ctx *ctx, float *row, float *col, const float *g, const afac *a, double eps1,
                             double beta2) {
  int64_t R = a->rows, C = a->cols;
  int threads = a->n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, br, a->batch * R, {
    const float *gr = g + br * C;
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += (double)gr[c] * gr[c] + eps1;
    row[br] = (float)(beta2 * row[br] + (1 - beta2) * (s / (double)C));
  });
  LT_PARALLEL_FOR(threads, bc, a->batch * C, {
    int64_t b = bc / C, c = bc % C;
    const float *gb = g + b * R * C + c;
    double s = 0;
    for (int64_t r = 0; r < R; r++) s += (double)gb[r * C] * gb[r * C] + eps1;
    col[bc] = (float)(beta2 * col[bc] + (1 - beta2) * (s / (double)R));
  });
}

/* rf (B, R) = 1/sqrt(row / mean_R(row)), cf (B, C) = 1/sqrt(col). */
static void factors(float *rf, float *cf, const float *row, const float *col, const afac *a) {
  for (int64_t b = 0; b < a->batch; b++) {
    double mean = 0;
    for (int64_t r = 0; r < a->rows; r++) mean += row[b * a->rows + r];
    mean /= (double)a->rows;
    for (int64_t r = 0; r < a->rows; r++) rf[b * a->rows + r] = (float)(1.0 / sqrt(row[b * a->rows + r] / mean));
  }
  for (int64_t i = 0; i < a->batch * a->cols; i++) cf[i] = 1.0f / sqrtf(col[i]);
}

/* Element i of the unscaled update. */
static inline float unscaled(int64_t i, const float *g, const float *v, const float *rf, const float *cf,
                             const afac *a) {
  if (!a->factored) return g[i] / sqrtf(v[i]);
  int64_t c = i % a->cols, br = i / a->cols, b = br / a->rows;
  return g[i] * rf[br] * cf[b * a->cols + c];
}

/* sum of the unscaled update's squares, deterministic. */
static double update_sq(const lt_ctx *ctx, const float *g, const float *v, const float *rf, const float *cf,
                        const afac *a) {
  double part[CHUNKS];
  int64_t n = a->n;
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, CHUNKS, {
    double s = 0;
    for (int64_t i = n * k / CHUNKS; i < n * (k + 1) / CHUNKS; i++) {
      double u = unscaled(i, g, v, rf, cf, a);
      s += u * u;
    }
    part[k] = s;
  });
  double s = 0;
  for (int k = 0; k < CHUNKS; k++) s += part[k];
  return s;
}

static double learning_rate(const lt_optim_hyper *h, double param_rms) {
  double t = (double)h->step, rel = h->learning_rate;
  if (h->relative_step) {
    double min_step = h->warmup_init ? 1e-6 * t : 1e-2;
    rel = fmin(min_step, 1.0 / sqrt(t));
  }
  return rel * (h->scale_parameter ? fmax(h->eps2, param_rms) : 1.0);
}

/* The scratch and staged copies of one update. */
typedef struct afac_work {
  lt_tensor *p, *g; /* float32 contiguous: the parameter itself when it is one */
  float *rf, *cf;
  size_t bytes;
} afac_work;

static lt_status work_begin(lt_ctx *ctx, afac_work *w, lt_tensor *param, lt_tensor *grad, const afac *a) {
  lt_status st = lt__as_f32(ctx, &w->p, param);
  if (!st) st = lt__as_f32(ctx, &w->g, grad);
  w->bytes = a->factored ? (size_t)(a->batch * (a->rows + a->cols)) * sizeof(float) : 0;
  if (!st && w->bytes && !(w->rf = lt_ctx_alloc(ctx, w->bytes)))
    st = lt_ctx_fail(ctx, LT_ERR_MEM, "Adafactor: out of memory");
  if (w->rf) w->cf = w->rf + a->batch * a->rows;
  return st;
}

static void work_end(lt_ctx *ctx, afac_work *w) {
  lt_tensor_release(w->p), lt_tensor_release(w->g);
  if (w->rf) lt_ctx_free(ctx, w->rf, w->bytes);
}

static afac geometry(const lt_tensor *p) {
  int nd = p->ndim;
  afac a = {.n = lt_tensor_size(p), .factored = nd >= 2};
  a.rows = a.factored ? p->shape[nd - 2] : 1;
  a.cols = nd >= 1 ? p->shape[nd - 1] : 1;
  a.batch = (a.rows * a.cols) != 0 ? a.n / (a.rows * a.cols) : 0;
  return a;
}

lt_status lt__optim_adafactor(lt_ctx *ctx, const lt_optim_hyper *h, lt_tensor *param, lt_tensor *grad, int nstate,
                              lt_tensor *const *state) {
  afac a = geometry(param);
  afac_work w = {0};
  lt_status st = work_begin(ctx, &w, param, grad, &a);
  if (st || a.n == 0) {
    work_end(ctx, &w);
    return st;
  }
  float *p = lt__f32(w.p), *g = lt__f32(w.g), *v = a.factored ? NULL : lt__f32(state[0]);
  float *m = h->first_moment ? lt__f32(state[nstate - 1]) : NULL;
  double lr = learning_rate(h, sqrt(sum_sq(ctx, p, a.n) / (double)a.n));
  double beta2 = 1.0 - pow((double)h->step, h->decay_rate);
  int threads = a.n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (a.factored) {
    factored_moments(ctx, lt__f32(state[0]), lt__f32(state[1]), g, &a, h->eps, beta2);
    factors(w.rf, w.cf, lt__f32(state[0]), lt__f32(state[1]), &a);
  } else {
    LT_PARALLEL_FOR(threads, i, a.n, { v[i] = (float)(beta2 * v[i] + (1 - beta2) * ((double)g[i] * g[i] + h->eps)); });
  }
  double rms = sqrt(update_sq(ctx, g, v, w.rf, w.cf, &a) / (double)a.n);
  float scale = (float)(lr / fmax(1.0, rms / h->clip_threshold)), decay = (float)(1.0 - h->weight_decay * lr);
  float b1 = (float)h->beta1, b1c = (float)(1.0 - h->beta1); /* the complement in double, as in update.c */
  LT_PARALLEL_FOR(threads, i, a.n, {
    float u = scale * unscaled(i, g, v, w.rf, w.cf, &a);
    if (m) u = m[i] = b1 * m[i] + b1c * u;
    p[i] = p[i] * decay - u;
  });
  if (w.p != param) lt__assign(param, w.p); /* a 16-bit parameter: rounded back */
  work_end(ctx, &w);
  return LT_OK;
}
