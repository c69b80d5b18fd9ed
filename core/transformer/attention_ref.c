/* The plain attention kernels: the float32 _ref every ISA variant is tested
 * against (and what LATTICE_ISA=scalar runs), and the float64 path of the
 * gradient checks, the same loops in double. They read like the math:
 *
 *   forward, one query row at a time: keys stream one by one through the
 *   online softmax (a running max m, the sum l of exp(score - m), and the
 *   output accumulated unnormalised and rescaled whenever m grows), so no
 *   row of scores is ever stored;
 *   backward, one kv head at a time (so that dk, dv of the group are summed
 *   in one fixed order without atomics), recomputing each probability from
 *   the saved log-sum-exp: p = exp(score - lse), dp = do . v,
 *   ds = p (dp - do . o), dq += scale ds k, dk += scale ds q, dv += p do. */
#include <string.h>
#include "transformer/attention.h"

/* ---- float32 ---- */

static float dot_f32(const float *a, const float *b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* alibi and mask terms of the score of query t (head h) and key s. */
static float bias_f32(const lt__attn_job *j, int64_t b, int64_t h, int64_t t, int64_t s) {
  float x = 0;
  if (j->alibi) x -= ((const float *)j->alibi)[h] * (float)llabs(j->q_offset + t - s);
  if (j->mask) x += ((const float *)j->mask)[lt__attn_mask_at(j, b, h, t, s)];
  return x;
}

/* o (Dv), lse of query row t of head h; acc: Dv floats of scratch. */
static void row_forward_f32(const lt__attn_job *j, int64_t b, int64_t h, int64_t t, float *acc) {
  const float *q = (const float *)j->q + lt__attn_at(j->qs, b, h, t);
  const float *k = (const float *)j->k + lt__attn_at(j->ks, b, h / j->group, 0);
  const float *v = (const float *)j->v + lt__attn_at(j->vs, b, h / j->group, 0);
  float *o = (float *)j->o + lt__attn_at(j->os, b, h, t), m = -INFINITY, l = 0;
  int64_t lo, hi;
  lt__attn_range(j, t, &lo, &hi);
  memset(acc, 0, (size_t)j->dv * sizeof *acc);
  for (int64_t s = lo; s <= hi; s++) {
    float x = dot_f32(q, k + s * j->ks[2], j->d) * (float)j->scale + bias_f32(j, b, h, t, s);
    if (x == -INFINITY) continue; /* masked out; exp(x - m) would be NaN while m is -inf */
    if (x > m) {
      float a = expf(m - x);
      for (int64_t e = 0; e < j->dv; e++) acc[e] *= a;
      l *= a, m = x;
    }
    float p = expf(x - m);
    for (int64_t e = 0; e < j->dv; e++) acc[e] += p * v[s * j->vs[2] + e];
    l += p;
  }
  for (int64_t e = 0; e < j->dv; e++) o[e] = l > 0 ? acc[e] / l : 0.0f;
  ((float *)j->lse)[(b * j->hq + h) * j->t + t] = l > 0 ? m + logf(l) : INFINITY;
}

static size_t fwd_scratch_f32(const lt__attn_job *j) { return (size_t)j->dv * sizeof(float); }

static void forward_f32(const lt__attn_job *j, int64_t b, int64_t h, int64_t t0, int64_t rows, void *scratch) {
  for (int64_t t = t0; t < t0 + rows; t++) row_forward_f32(j, b, h, t, scratch);
}

/* Query row t of head h: its share of dq (overwritten), dk and dv (added). */
static void row_backward_f32(const lt__attn_job *j, int64_t b, int64_t h, int64_t t, float *dk, float *dv) {
  const float *q = (const float *)j->q + lt__attn_at(j->qs, b, h, t);
  const float *k = (const float *)j->k + lt__attn_at(j->ks, b, h / j->group, 0);
  const float *v = (const float *)j->v + lt__attn_at(j->vs, b, h / j->group, 0);
  const float *g = (const float *)j->gout + lt__attn_at(j->gs, b, h, t);
  const float *o = (const float *)j->o + lt__attn_at(j->os, b, h, t);
  float *dq = (float *)j->gq + ((b * j->hq + h) * j->t + t) * j->d, sc = (float)j->scale;
  float lse = ((const float *)j->lse)[(b * j->hq + h) * j->t + t], delta = dot_f32(g, o, j->dv);
  int64_t lo, hi;
  lt__attn_range(j, t, &lo, &hi);
  memset(dq, 0, (size_t)j->d * sizeof *dq);
  for (int64_t s = lo; s <= hi; s++) {
    const float *ks = k + s * j->ks[2], *vs = v + s * j->vs[2];
    float p = expf(dot_f32(q, ks, j->d) * sc + bias_f32(j, b, h, t, s) - lse);
    if (p == 0) continue; /* nothing flows through this key */
    float ds = p * (dot_f32(g, vs, j->dv) - delta) * sc;
    for (int64_t e = 0; e < j->dv; e++) dv[s * j->dv + e] += p * g[e];
    for (int64_t c = 0; c < j->d; c++) dq[c] += ds * ks[c], dk[s * j->d + c] += ds * q[c];
  }
}

/* The plain kernels take any rows; tiles of 16 keep tasks few. */
static int64_t rows_16(const lt__attn_job *j) {
  (void)j;
  return 16;
}

static size_t bwd_scratch_none(const lt__attn_job *j) {
  (void)j;
  return 0;
}

static void backward_f32(const lt__attn_job *j, int64_t b, int64_t hkv, void *scratch) {
  (void)scratch;
  float *dk = (float *)j->gk + (b * j->hkv + hkv) * j->s * j->d;
  float *dv = (float *)j->gv + (b * j->hkv + hkv) * j->s * j->dv;
  memset(dk, 0, (size_t)(j->s * j->d) * sizeof *dk);
  memset(dv, 0, (size_t)(j->s * j->dv) * sizeof *dv);
  for (int64_t h = hkv * j->group; h < (hkv + 1) * j->group; h++)
    for (int64_t t = 0; t < j->t; t++) row_backward_f32(j, b, h, t, dk, dv);
}

const lt__attn_kernels lt__attn_ref = {.isa = LT_ISA_SCALAR,
                                       .fwd_rows = rows_16,
                                       .fwd_scratch = fwd_scratch_f32,
                                       .forward = forward_f32,
                                       .bwd_scratch = bwd_scratch_none,
                                       .backward = backward_f32};

/* ---- float64: the same loops in double ---- */

static double dot_f64(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static double bias_f64(const lt__attn_job *j, int64_t b, int64_t h, int64_t t, int64_t s) {
  double x = 0;
  if (j->alibi) x -= ((const double *)j->alibi)[h] * (double)llabs(j->q_offset + t - s);
  if (j->mask) x += ((const double *)j->mask)[lt__attn_mask_at(j, b, h, t, s)];
  return x;
}

static void row_forward_f64(const lt__attn_job *j, int64_t b, int64_t h, int64_t t, double *acc) {
  const double *q = (const double *)j->q + lt__attn_at(j->qs, b, h, t);
  const double *k = (const double *)j->k + lt__attn_at(j->ks, b, h / j->group, 0);
  const double *v = (const double *)j->v + lt__attn_at(j->vs, b, h / j->group, 0);
  double *o = (double *)j->o + lt__attn_at(j->os, b, h, t), m = -INFINITY, l = 0;
  int64_t lo, hi;
  lt__attn_range(j, t, &lo, &hi);
  memset(acc, 0, (size_t)j->dv * sizeof *acc);
  for (int64_t s = lo; s <= hi; s++) {
    double x = dot_f64(q, k + s * j->ks[2], j->d) * j->scale + bias_f64(j, b, h, t, s);
    if (x == -INFINITY) continue;
    if (x > m) {
      double a = exp(m - x);
      for (int64_t e = 0; e < j->dv; e++) acc[e] *= a;
      l *= a, m = x;
    }
    double p = exp(x - m);
    for (int64_t e = 0; e < j->dv; e++) acc[e] += p * v[s * j->vs[2] + e];
    l += p;
  }
  for (int64_t e = 0; e < j->dv; e++) o[e] = l > 0 ? acc[e] / l : 0.0;
  ((double *)j->lse)[(b * j->hq + h) * j->t + t] = l > 0 ? m + log(l) : INFINITY;
}

static size_t fwd_scratch_f64(const lt__attn_job *j) { return (size_t)j->dv * sizeof(double); }

static void forward_f64(const lt__attn_job *j, int64_t b, int64_t h, int64_t t0, int64_t rows, void *scratch) {
  for (int64_t t = t0; t < t0 + rows; t++) row_forward_f64(j, b, h, t, scratch);
}

static void row_backward_f64(const lt__attn_job *j, int64_t b, int64_t h, int64_t t, double *dk, double *dv) {
  const double *q = (const double *)j->q + lt__attn_at(j->qs, b, h, t);
  const double *k = (const double *)j->k + lt__attn_at(j->ks, b, h / j->group, 0);
  const double *v = (const double *)j->v + lt__attn_at(j->vs, b, h / j->group, 0);
  const double *g = (const double *)j->gout + lt__attn_at(j->gs, b, h, t);
  const double *o = (const double *)j->o + lt__attn_at(j->os, b, h, t);
  double *dq = (double *)j->gq + ((b * j->hq + h) * j->t + t) * j->d, sc = j->scale;
  double lse = ((const double *)j->lse)[(b * j->hq + h) * j->t + t], delta = dot_f64(g, o, j->dv);
  int64_t lo, hi;
  lt__attn_range(j, t, &lo, &hi);
  memset(dq, 0, (size_t)j->d * sizeof *dq);
  for (int64_t s = lo; s <= hi; s++) {
    const double *ks = k + s * j->ks[2], *vs = v + s * j->vs[2];
    double p = exp(dot_f64(q, ks, j->d) * sc + bias_f64(j, b, h, t, s) - lse);
    if (p == 0) continue;
    double ds = p * (dot_f64(g, vs, j->dv) - delta) * sc;
    for (int64_t e = 0; e < j->dv; e++) dv[s * j->dv + e] += p * g[e];
    for (int64_t c = 0; c < j->d; c++) dq[c] += ds * ks[c], dk[s * j->d + c] += ds * q[c];
  }
}

static void backward_f64(const lt__attn_job *j, int64_t b, int64_t hkv, void *scratch) {
  (void)scratch;
  double *dk = (double *)j->gk + (b * j->hkv + hkv) * j->s * j->d;
  double *dv = (double *)j->gv + (b * j->hkv + hkv) * j->s * j->dv;
  memset(dk, 0, (size_t)(j->s * j->d) * sizeof *dk);
  memset(dv, 0, (size_t)(j->s * j->dv) * sizeof *dv);
  for (int64_t h = hkv * j->group; h < (hkv + 1) * j->group; h++)
    for (int64_t t = 0; t < j->t; t++) row_backward_f64(j, b, h, t, dk, dv);
}

const lt__attn_kernels lt__attn_f64 = {.isa = LT_ISA_SCALAR,
                                       .fwd_rows = rows_16,
                                       .fwd_scratch = fwd_scratch_f64,
                                       .forward = forward_f64,
                                       .bwd_scratch = bwd_scratch_none,
                                       .backward = backward_f64};
