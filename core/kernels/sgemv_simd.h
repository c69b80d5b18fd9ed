/* The one-row sgemm (kernels/sgemv.h) written once over the primitives of
 * the simd_*.h header the including file chose; that file defines LT_SGEMV,
 * the function to define. Every c[j] is one chain of vfma over p ascending,
 * the lanes of a vector being LT_W different outputs. */
#include <math.h>
#include <string.h>
#include "kernels/sgemv.h"

/* Vectors of outputs per pass over k (b as it is). */
#define SV_NV 8

/* The start of LT_W chains, from their start values s (the bias's or c's):
 * the bias, 0, c or beta c. */
static inline vf sv_init(const lt__sgemv_args *v, const float *s) {
  if (v->bias) return vload(s);
  if (v->beta == 0) return vset(0.0f);
  if (v->beta == 1) return vload(s);
  return vmul(vset(v->beta), vload(s));
}

/* b transposed: rows < LT_W of the group are zero (their lanes unused). */
static inline __attribute__((always_inline)) void sv_load_rows(vf r[LT_W], const float *w, int64_t ldb, int rows,
                                                               int64_t p) {
  for (int i = 0; i < LT_W; i++) r[i] = i < rows ? vload(w + i * ldb + p) : vset(0.0f);
  vtranspose(r);
}

/* The start values of outputs j ..: the bias's, or c's. */
static inline const float *sv_start(const lt__sgemv_args *v, int64_t j) { return (v->bias ? v->bias : v->c) + j; }

/* b transposed, the group of `rows` (<= LT_W) rows from row j: the chains
 * start from s (sv_start, or a padded copy) and end in out (c, or a padded
 * copy). One group at a time: its transposes keep the shuffle
 * port busy (64 shuffles per 16 x 16 block, the bound measured here: ~46
 * GB/s from L2 on one core); a second group interleaved to hide the chain's
 * latency only spilled registers. The group reads its LT_W rows side by
 * side, a pattern the hardware prefetcher follows poorly (~10 GB/s from
 * L3, against ~23 with this): so while it runs, the `ahead` rows after it
 * are prefetched into L2 in address order, a share per step of k. */
static void sv_rows(const lt__sgemv_args *v, int64_t j, int rows, const float *s, float *out, int64_t ahead) {
  const float *w = v->b + j * v->ldb, *x = v->x;
  int64_t ldb = v->ldb, p = 0, steps = v->k / LT_W;
  const char *next = (const char *)(w + LT_W * ldb);
  int64_t lines = ahead > 0 ? (((ahead - 1) * ldb + v->k) * (int64_t)sizeof(float) + 63) / 64 : 0;
  int64_t per_step = steps ? (lines + steps - 1) / steps : 0, line = 0;
  vf acc = sv_init(v, s);
  for (; p + LT_W <= v->k; p += LT_W) {
    for (int64_t e = line + per_step < lines ? line + per_step : lines; line < e; line++)
      __builtin_prefetch(next + line * 64, 0, 2);
    vf r[LT_W];
    sv_load_rows(r, w, ldb, rows, p);
    for (int q = 0; q < LT_W; q++) acc = vfma(vset(x[p + q]), r[q], acc);
  }
  for (; p < v->k; p++) { /* the last k % LT_W terms: one column at a time */
    float col[LT_W];
    for (int i = 0; i < LT_W; i++) col[i] = i < rows ? w[i * ldb + p] : 0.0f;
    acc = vfma(vset(x[p]), vload(col), acc);
  }
  vstore(out, acc);
}

static void sv_transposed(const lt__sgemv_args *v, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + LT_W <= j1; j += LT_W) {
    int64_t ahead = j1 - j - LT_W;
    sv_rows(v, j, LT_W, sv_start(v, j), v->c + j, ahead < LT_W ? ahead : LT_W);
  }
  if (j == j1) return;
  int rows = (int)(j1 - j); /* a short last group through a padded copy */
  float t[LT_W];
  memset(t, 0, sizeof t);
  memcpy(t, sv_start(v, j), (size_t)rows * sizeof(float));
  sv_rows(v, j, rows, t, t, 0);
  memcpy(v->c + j, t, (size_t)rows * sizeof(float));
}

/* b as it is, nv vectors of outputs from column j. */
static inline __attribute__((always_inline)) void sv_cols(const int nv, const lt__sgemv_args *v, int64_t j) {
  vf acc[SV_NV];
  const float *b = v->b + j;
  for (int u = 0; u < nv; u++) acc[u] = sv_init(v, sv_start(v, j + u * LT_W));
  for (int64_t p = 0; p < v->k; p++) {
    vf xp = vset(v->x[p]);
    for (int u = 0; u < nv; u++) acc[u] = vfma(xp, vload(b + p * v->ldb + u * LT_W), acc[u]);
  }
  for (int u = 0; u < nv; u++) vstore(v->c + j + u * LT_W, acc[u]);
}

static void sv_plain(const lt__sgemv_args *v, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + SV_NV * LT_W <= j1; j += SV_NV * LT_W) sv_cols(SV_NV, v, j);
  for (; j + LT_W <= j1; j += LT_W) sv_cols(1, v, j);
  if (j == j1) return;
  float acc[LT_W]; /* fewer than LT_W outputs left: their chains side by side */
  int rest = (int)(j1 - j);
  for (int r = 0; r < rest; r++) {
    float c = v->c[j + r];
    acc[r] = v->bias ? v->bias[j + r] : v->beta == 0 ? 0.0f : v->beta == 1 ? c : v->beta * c;
  }
  for (int64_t p = 0; p < v->k; p++)
    for (int r = 0; r < rest; r++) acc[r] = fmaf(v->x[p], v->b[p * v->ldb + j + r], acc[r]);
  memcpy(v->c + j, acc, (size_t)rest * sizeof(float));
}

void LT_SGEMV(const lt__sgemv_args *v, int64_t j0, int64_t j1) {
  if (v->tb)
    sv_transposed(v, j0, j1);
  else
    sv_plain(v, j0, j1);
}
