/* The attention kernels of one ISA, written once over the primitives of the
 * simd_*.h header the including file chose (attention_avx2.c,
 * attention_avx512.c). That file defines LT_ATT_KERNELS (the table to
 * define), LT_ATT_ISA and LT_ATT_GEMM (its kernels/gemm_tile.h variant).
 * Every product is a call of that register-tiled tile product, whose
 * broadcast operand may be any strided view; so K and V are never packed in
 * the forward, and Q and dO never in the backward.
 *
 * forward, one task = nl <= MQ query rows of one head ("queries on lanes"):
 *   qt (D, nl)   = scale * q^T of the task's rows, packed once
 *   per tile of NK keys j0..:
 *     st (NK, nl)  = K[j0..] qt                 (K rows broadcast)
 *     st          += alibi, mask; -inf outside each query's keys
 *     online softmax per lane: m' = max(m, max_j st), p = exp(st - m'),
 *     l = l e^(m - m') + sum_j p, ot *= e^(m - m')
 *     ot (Dv, nl) += V[j0..]^T p               (V read by columns)
 *   o = ot^T / l, lse = m + log l
 * Each query is a lane: the max, the exps and the rescaling are vertical,
 * and a tile of scores is the only thing stored.
 *
 * backward, one task = one kv head with all its query heads ("keys on lanes",
 * FlashAttention-2): per tile of NKB keys, kt = scale k^T, vt = v^T and
 * kp = scale k (rows padded to Dp) are packed once, then for every tile of
 * MQB query rows that sees them:
 *   s  (MQB, NKB) = Q kt          p = exp(s + bias - lse), 0 outside the keys
 *   dp (MQB, NKB) = dO vt         ds = p (dp - delta), delta = dO . O per row
 *   dvt (Dv, NKB) += dO^T p       dkt (D, NKB) += Q^T ds      dq += ds kp
 * dq of the whole group accumulates in the task's scratch (rows padded to
 * Dp) and dk = scale dkt^T, dv = dvt^T are written once per key tile.
 *
 * decode: each key row is read once for all the G*T queries of its kv head:
 * its dot products with every query (vectors along D), then per query an
 * online softmax over blocks of NKD keys, then each value row added once to
 * every query's accumulator.
 *
 * exp: the probabilities use simd_math.h's v_exp on arguments clamped at
 * -87 and then set to 0 below it: e^-87 = 1.6e-38 is just above the least
 * normal float, so no exp is computed through subnormals (a microcode assist
 * per element on some CPUs; masked scores are -inf, half of every diagonal
 * tile), and a term below it is lost anyway in a sum that holds the row's
 * largest term, 1. */
#include <string.h>
#include "kernels/gemm_tile.h"
#include "kernels/simd_math.h"
#include "transformer/attention.h"

#define MQ     (4 * LT_W) /* the most query rows per forward task: four vectors of lanes */
#define NK     64         /* keys per forward tile */
#define NKB    (4 * LT_W) /* keys per backward tile: four vectors of lanes */
#define MQB    32         /* query rows per backward tile */
#define NKD    128        /* keys per decode block */
#define EXP_LO (-87.0f)

static inline int64_t round_up(int64_t n, int64_t w) { return (n + w - 1) / w * w; }

/* e^x, 0 below EXP_LO; NaN stays NaN (vmax returns its second argument). */
static inline vf exp_prob(vf x) {
  vf e = v_exp(vmax(vset(EXP_LO), x));
  return vsel(vlt(x, vset(EXP_LO)), vset(0.0f), e);
}

/* The largest lane, as a float (NaN lanes are skipped). */
static inline float vreduce_max(vf a) {
  float buf[LT_W], m = -INFINITY;
  vstore(buf, a);
  for (int i = 0; i < LT_W; i++) m = buf[i] > m ? buf[i] : m;
  return m;
}

/* dst[c*ldd + r] = src[r*lds + c] * (ds ? ds[c] : 1) for r < rows, c < cols:
 * whole LT_W x LT_W blocks in registers (att_transpose_block, from the ISA's
 * file), the edges element by element. */
static void transpose(const float *src, int64_t lds, int64_t rows, int64_t cols, float *dst, int64_t ldd,
                      const float *ds) {
  int64_t rf = rows / LT_W * LT_W, cf = cols / LT_W * LT_W;
  for (int64_t r = 0; r < rf; r += LT_W)
    for (int64_t c = 0; c < cf; c += LT_W)
      att_transpose_block(src + r * lds + c, lds, dst + c * ldd + r, ldd, ds ? ds + c : NULL);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = r < rf ? cf : 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c] * (ds ? ds[c] : 1.0f);
}

/* x[0 .. n) *= a. */
static void scale_by(float *x, int64_t n, float a) {
  int64_t i = 0;
  for (; i + LT_W <= n; i += LT_W) vstore(x + i, vmul(vload(x + i), vset(a)));
  for (; i < n; i++) x[i] *= a;
}

/* ================= forward: queries on lanes ================= */

typedef struct fwd_scratch {
  float *qt, *st, *ot;          /* (D, nl), (NK, nl), (Dv, nl) */
  float *lo, *hi, *pos, *m, *l; /* (nl) each: the lane's keys, position, max, sum */
  int64_t nl;                   /* lanes: the task's rows in whole vectors */
} fwd_scratch;

static size_t fwd_scratch_bytes(const lt__attn_job *j) {
  return (size_t)((j->d + NK + j->dv + 5) * MQ) * sizeof(float);
}

static fwd_scratch fwd_carve(void *p, const lt__attn_job *j, int64_t rows) {
  fwd_scratch s;
  s.nl = round_up(rows, LT_W);
  s.qt = p, s.st = s.qt + j->d * s.nl, s.ot = s.st + NK * s.nl, s.lo = s.ot + j->dv * s.nl;
  s.hi = s.lo + s.nl, s.pos = s.hi + s.nl, s.m = s.pos + s.nl, s.l = s.m + s.nl;
  return s;
}

/* Rows per task: four vectors of lanes, or two for causal attention over
 * short sequences, where the tiles across the diagonal (half masked) are a
 * large share of the work. */
static int64_t fwd_rows(const lt__attn_job *j) { return j->causal && j->t < 512 ? MQ / 2 : MQ; }

/* qt (D, nl) = scale * q^T of rows t0 .. t0 + rows - 1; lanes past rows are 0. */
static void fwd_pack_q(const lt__attn_job *j, const float *q, int64_t rows, fwd_scratch s) {
  if (rows < s.nl) memset(s.qt, 0, (size_t)(j->d * s.nl) * sizeof(float));
  transpose(q, j->qs[2], rows, j->d, s.qt, s.nl, NULL);
  scale_by(s.qt, j->d * s.nl, (float)j->scale);
}

/* Each lane's key range and position as floats (lanes past rows see every
 * key: their scores are never used and stay finite), the state reset, and
 * the union klo .. khi of the rows' ranges. */
static void fwd_lanes(const lt__attn_job *j, int64_t t0, int64_t rows, fwd_scratch s, int64_t *klo, int64_t *khi) {
  int64_t lo, hi;
  for (int64_t i = 0; i < s.nl; i++) {
    if (i < rows) lt__attn_range(j, t0 + i, &lo, &hi);
    s.lo[i] = i < rows ? (float)lo : -1.0f;
    s.hi[i] = i < rows ? (float)hi : 33554432.0f;
    s.pos[i] = (float)(j->q_offset + t0 + (i < rows ? i : 0));
    s.m[i] = -INFINITY, s.l[i] = 0;
  }
  lt__attn_range(j, t0, klo, &hi);
  lt__attn_range(j, t0 + rows - 1, &lo, khi);
}

/* st (nk, nl) += alibi and mask terms of keys j0 .. j0 + nk - 1; -inf where
 * a lane does not see the key (skipped when every lane sees every key). */
static void fwd_bias(const lt__attn_job *j, int64_t b, int64_t h, int64_t t0, int64_t rows, int64_t j0, int64_t nk,
                     int full, fwd_scratch s) {
  if (j->alibi) {
    vf ns = vset(-((const float *)j->alibi)[h]);
    for (int64_t jj = 0; jj < nk; jj++)
      for (int64_t v = 0; v < s.nl; v += LT_W) {
        float *p = s.st + jj * s.nl + v;
        vstore(p, vfma(vabs(vsub(vload(s.pos + v), vset((float)(j0 + jj)))), ns, vload(p)));
      }
  }
  if (j->mask) {
    const float *mk = j->mask;
    for (int64_t i = 0; i < rows; i++) {
      const float *mr = mk + lt__attn_mask_at(j, b, h, t0 + i, j0);
      for (int64_t jj = 0; jj < nk; jj++) s.st[jj * s.nl + i] += mr[jj * j->ms[3]];
    }
  }
  if (full) return;
  for (int64_t jj = 0; jj < nk; jj++) {
    vf jf = vset((float)(j0 + jj)), ninf = vset(-INFINITY);
    for (int64_t v = 0; v < s.nl; v += LT_W) {
      float *p = s.st + jj * s.nl + v;
      vf x = vsel(vlt(jf, vload(s.lo + v)), ninf, vload(p));
      vstore(p, vsel(vgt(jf, vload(s.hi + v)), ninf, x));
    }
  }
}

/* max(m0, the column of nk scores at st, ld apart), over four independent
 * chains: one chain of vmax would wait on its latency at every key. */
static inline vf fwd_colmax(const float *st, int64_t ld, int64_t nk, vf m0) {
  vf a = m0, b = m0, c = m0, d = m0;
  int64_t jj = 0;
  for (; jj + 4 <= nk; jj += 4) {
    a = vmax(a, vload(st + jj * ld)), b = vmax(b, vload(st + (jj + 1) * ld));
    c = vmax(c, vload(st + (jj + 2) * ld)), d = vmax(d, vload(st + (jj + 3) * ld));
  }
  for (; jj < nk; jj++) a = vmax(a, vload(st + jj * ld));
  return vmax(vmax(a, b), vmax(c, d));
}

/* The online softmax over nk keys: st becomes p, m, l and ot are updated. */
static void fwd_softmax(const lt__attn_job *j, int64_t nk, fwd_scratch s) {
  for (int64_t v = 0; v < s.nl; v += LT_W) {
    vf m0 = vload(s.m + v), mx = fwd_colmax(s.st + v, s.nl, nk, m0), sum = vset(0.0f);
    vf ms = vsel(vgt(mx, vset(-INFINITY)), mx, vset(0.0f)); /* a lane without keys so far subtracts 0 */
    vf alpha = exp_prob(vsub(m0, ms));
    for (int64_t jj = 0; jj < nk; jj++) {
      vf p = exp_prob(vsub(vload(s.st + jj * s.nl + v), ms));
      vstore(s.st + jj * s.nl + v, p);
      sum = vadd(sum, p);
    }
    vstore(s.l + v, vfma(vload(s.l + v), alpha, sum));
    vstore(s.m + v, mx);
    for (int64_t e = 0; e < j->dv; e++) vstore(s.ot + e * s.nl + v, vmul(vload(s.ot + e * s.nl + v), alpha));
  }
}

/* o rows t0 .. = ot^T / l and their log-sum-exp. */
static void fwd_finish(const lt__attn_job *j, int64_t b, int64_t h, int64_t t0, int64_t rows, fwd_scratch s) {
  float inv[MQ];
  for (int64_t i = 0; i < rows; i++) {
    float l = s.l[i];
    inv[i] = l > 0 ? 1.0f / l : 0.0f;
    ((float *)j->lse)[(b * j->hq + h) * j->t + t0 + i] = l > 0 ? s.m[i] + logf(l) : INFINITY;
  }
  transpose(s.ot, s.nl, j->dv, rows, (float *)j->o + lt__attn_at(j->os, b, h, t0), j->os[2], inv);
}

static void fwd_tile(const lt__attn_job *j, int64_t b, int64_t h, int64_t t0, int64_t rows, void *scratch) {
  fwd_scratch s = fwd_carve(scratch, j, rows);
  const float *q = (const float *)j->q + lt__attn_at(j->qs, b, h, t0);
  const float *k = (const float *)j->k + lt__attn_at(j->ks, b, h / j->group, 0);
  const float *v = (const float *)j->v + lt__attn_at(j->vs, b, h / j->group, 0);
  int64_t klo, khi, lo_last, hi_first, unused;
  fwd_pack_q(j, q, rows, s);
  fwd_lanes(j, t0, rows, s, &klo, &khi);
  lt__attn_range(j, t0 + rows - 1, &lo_last, &unused);
  lt__attn_range(j, t0, &unused, &hi_first);
  memset(s.ot, 0, (size_t)(j->dv * s.nl) * sizeof *s.ot);
  for (int64_t j0 = klo; j0 <= khi; j0 += NK) {
    int64_t nk = khi + 1 - j0 < NK ? khi + 1 - j0 : NK;
    LT_ATT_GEMM(nk, s.nl, j->d, k + j0 * j->ks[2], j->ks[2], 0, s.qt, s.nl, s.st, s.nl, 0);
    fwd_bias(j, b, h, t0, rows, j0, nk, lo_last <= j0 && hi_first >= j0 + nk - 1, s);
    fwd_softmax(j, nk, s);
    LT_ATT_GEMM(j->dv, s.nl, nk, v + j0 * j->vs[2], j->vs[2], 1, s.st, s.nl, s.ot, s.nl, 1);
  }
  fwd_finish(j, b, h, t0, rows, s);
}

/* ================= backward: keys on lanes ================= */

typedef struct bwd_scratch {
  float *delta, *dq;    /* (G*T), (G*T, Dp): the whole group's rows */
  float *kt, *vt, *kp;  /* (D, NKB), (Dv, NKB), (NKB, Dp) */
  float *dkt, *dvt;     /* (D, NKB), (Dv, NKB) */
  float *s, *dp, *jpos; /* (MQB, NKB) twice, (NKB) */
  int64_t dp_cols;      /* Dp */
} bwd_scratch;

static size_t bwd_scratch_bytes(const lt__attn_job *j) {
  int64_t dp = round_up(j->d, LT_W), rows = j->group * j->t;
  int64_t n = rows * (1 + dp) + NKB * (2 * j->d + 2 * j->dv + dp) + 2 * MQB * NKB + NKB;
  return (size_t)n * sizeof(float);
}

static bwd_scratch bwd_carve(void *p, const lt__attn_job *j) {
  bwd_scratch s;
  s.dp_cols = round_up(j->d, LT_W);
  int64_t rows = j->group * j->t;
  s.delta = p, s.dq = s.delta + rows, s.kt = s.dq + rows * s.dp_cols, s.vt = s.kt + j->d * NKB;
  s.kp = s.vt + j->dv * NKB, s.dkt = s.kp + NKB * s.dp_cols, s.dvt = s.dkt + j->d * NKB;
  s.s = s.dvt + j->dv * NKB, s.dp = s.s + MQB * NKB, s.jpos = s.dp + MQB * NKB;
  return s;
}

static float dot(const float *a, const float *b, int64_t n) {
  vf acc = vset(0.0f);
  int64_t i = 0;
  for (; i + LT_W <= n; i += LT_W) acc = vfma(vload(a + i), vload(b + i), acc);
  float r = vreduce_add(acc);
  for (; i < n; i++) r += a[i] * b[i];
  return r;
}

/* delta (G*T) = dO . O for every query row of kv head hk. */
static void bwd_delta(const lt__attn_job *j, int64_t b, int64_t hk, float *delta) {
  for (int64_t g = 0; g < j->group; g++)
    for (int64_t t = 0; t < j->t; t++) {
      int64_t h = hk * j->group + g;
      const float *go = (const float *)j->gout + lt__attn_at(j->gs, b, h, t);
      delta[g * j->t + t] = dot(go, (const float *)j->o + lt__attn_at(j->os, b, h, t), j->dv);
    }
}

/* kt, vt, kp of keys j0 .. j0 + nk - 1, zero past nk (and past D in kp). */
static void bwd_pack_kv(const lt__attn_job *j, const float *k, const float *v, int64_t j0, int64_t nk, bwd_scratch s) {
  float sc = (float)j->scale;
  memset(s.kt, 0, (size_t)(j->d * NKB) * sizeof(float));
  memset(s.vt, 0, (size_t)(j->dv * NKB) * sizeof(float));
  memset(s.kp, 0, (size_t)(NKB * s.dp_cols) * sizeof(float));
  transpose(k + j0 * j->ks[2], j->ks[2], nk, j->d, s.kt, NKB, NULL);
  scale_by(s.kt, j->d * NKB, sc);
  transpose(v + j0 * j->vs[2], j->vs[2], nk, j->dv, s.vt, NKB, NULL);
  for (int64_t jj = 0; jj < nk; jj++) {
    const float *kr = k + (j0 + jj) * j->ks[2];
    for (int64_t c = 0; c < j->d; c++) s.kp[jj * s.dp_cols + c] = sc * kr[c];
  }
  for (int64_t jj = 0; jj < NKB; jj++) s.jpos[jj] = (float)(j0 + jj);
}

/* s (mq, NKB) of rows t0 .. of head h becomes p = exp(s + bias - lse): 0 for
 * keys a row does not see, and for keys past nk. */
static void bwd_probs(const lt__attn_job *j, int64_t b, int64_t h, int64_t t0, int64_t mq, int64_t j0, int64_t nk,
                      int64_t nw, int full, bwd_scratch s) {
  const float *lse = (const float *)j->lse + (b * j->hq + h) * j->t;
  float ns = j->alibi ? -((const float *)j->alibi)[h] : 0.0f;
  for (int64_t i = 0; i < mq; i++) {
    float *row = s.s + i * NKB;
    int64_t lo, hi;
    lt__attn_range(j, t0 + i, &lo, &hi);
    if (j->mask) {
      const float *mr = (const float *)j->mask + lt__attn_mask_at(j, b, h, t0 + i, j0);
      for (int64_t jj = 0; jj < nk; jj++) row[jj] += mr[jj * j->ms[3]];
    }
    vf l = vset(lse[t0 + i]), pos = vset((float)(j->q_offset + t0 + i)), flo = vset((float)lo), fhi = vset((float)hi);
    for (int v = 0; v < nw; v += LT_W) {
      vf x = vload(row + v), jp = vload(s.jpos + v);
      if (j->alibi) x = vfma(vabs(vsub(pos, jp)), vset(ns), x);
      vf p = exp_prob(vsub(x, l));
      if (!full) p = vsel(vlt(jp, flo), vset(0.0f), vsel(vgt(jp, fhi), vset(0.0f), p));
      vstore(row + v, p);
    }
  }
}

/* dp becomes ds = p (dp - delta) for rows t0 .. (delta of the group's row g*T + t0 ..). */
static void bwd_dscore(int64_t mq, int64_t nw, const float *delta, bwd_scratch s) {
  for (int64_t i = 0; i < mq; i++) {
    vf d = vset(delta[i]);
    for (int v = 0; v < nw; v += LT_W) {
      float *dp = s.dp + i * NKB + v;
      vstore(dp, vmul(vload(s.s + i * NKB + v), vsub(vload(dp), d)));
    }
  }
}

/* The five products of one (query tile, key tile) pair, over the first nw
 * key lanes (the tile's keys that any of the rows sees, in whole vectors). */
static void bwd_pair(const lt__attn_job *j, int64_t b, int64_t h, int64_t g, int64_t t0, int64_t mq, int64_t j0,
                     int64_t nk, int64_t nw, int full, bwd_scratch s) {
  const float *q = (const float *)j->q + lt__attn_at(j->qs, b, h, t0);
  const float *go = (const float *)j->gout + lt__attn_at(j->gs, b, h, t0);
  LT_ATT_GEMM(mq, nw, j->d, q, j->qs[2], 0, s.kt, NKB, s.s, NKB, 0);
  bwd_probs(j, b, h, t0, mq, j0, nk, nw, full, s);
  LT_ATT_GEMM(mq, nw, j->dv, go, j->gs[2], 0, s.vt, NKB, s.dp, NKB, 0);
  bwd_dscore(mq, nw, s.delta + g * j->t + t0, s);
  LT_ATT_GEMM(j->dv, nw, mq, go, j->gs[2], 1, s.s, NKB, s.dvt, NKB, 1);
  LT_ATT_GEMM(j->d, nw, mq, q, j->qs[2], 1, s.dp, NKB, s.dkt, NKB, 1);
  LT_ATT_GEMM(mq, s.dp_cols, nw < nk ? nw : nk, s.dp, NKB, 0, s.kp, s.dp_cols, s.dq + (g * j->t + t0) * s.dp_cols,
              s.dp_cols, 1);
}

/* dk = scale dkt^T and dv = dvt^T for keys j0 .. j0 + nk - 1 of kv head hk. */
static void bwd_store_kv(const lt__attn_job *j, int64_t b, int64_t hk, int64_t j0, int64_t nk, bwd_scratch s) {
  float sc = (float)j->scale;
  float *dk = (float *)j->gk + ((b * j->hkv + hk) * j->s + j0) * j->d;
  float *dv = (float *)j->gv + ((b * j->hkv + hk) * j->s + j0) * j->dv;
  float scv[NKB];
  for (int64_t jj = 0; jj < NKB; jj++) scv[jj] = sc;
  transpose(s.dkt, NKB, j->d, nk, dk, j->d, scv);
  transpose(s.dvt, NKB, j->dv, nk, dv, j->dv, NULL);
}

/* Narrows the query rows *t0 .. *t1 - 1 to those that see any of the keys
 * j0 .. j0 + nk - 1 (a run, as the ranges only grow with t); 0 if none. */
static int bwd_rows(const lt__attn_job *j, int64_t j0, int64_t nk, int64_t *t0, int64_t *t1) {
  int64_t lo, hi;
  for (; *t0 < *t1; ++*t0) {
    lt__attn_range(j, *t0, &lo, &hi);
    if (hi >= j0 && lo <= j0 + nk - 1) break;
    if (lo > j0 + nk - 1) return 0; /* so do all later rows */
  }
  for (; *t1 > *t0; --*t1) {
    lt__attn_range(j, *t1 - 1, &lo, &hi);
    if (hi >= j0 && lo <= j0 + nk - 1) break;
  }
  return *t0 < *t1;
}

/* Every query tile of the group against keys j0 .. j0 + nk - 1. */
static void bwd_key_tile(const lt__attn_job *j, int64_t b, int64_t hk, int64_t j0, int64_t nk, bwd_scratch s) {
  memset(s.dkt, 0, (size_t)(j->d * NKB) * sizeof(float));
  memset(s.dvt, 0, (size_t)(j->dv * NKB) * sizeof(float));
  for (int64_t ts = 0; ts < j->t; ts += MQB) {
    int64_t t0 = ts, t1 = j->t - ts < MQB ? j->t : ts + MQB, lo_first, hi_first, lo_last, hi_last;
    if (!bwd_rows(j, j0, nk, &t0, &t1)) continue;
    lt__attn_range(j, t0, &lo_first, &hi_first);
    lt__attn_range(j, t1 - 1, &lo_last, &hi_last);
    int64_t seen = hi_last - j0 + 1 < nk ? hi_last - j0 + 1 : nk, nw = round_up(seen, LT_W);
    int full = nk == NKB && lo_last <= j0 && hi_first >= j0 + nk - 1;
    for (int64_t g = 0; g < j->group; g++) bwd_pair(j, b, hk * j->group + g, g, t0, t1 - t0, j0, nk, nw, full, s);
  }
  bwd_store_kv(j, b, hk, j0, nk, s);
}

/* The next key tile's rows of k and v on their way to L2 while this one is
 * computed: the pack is their first read, and a miss there would stall it. */
static void bwd_prefetch(const lt__attn_job *j, const float *k, const float *v, int64_t j0) {
  for (int64_t jj = j0; jj < j0 + NKB && jj < j->s; jj++) {
    for (int64_t c = 0; c < j->d; c += 16) __builtin_prefetch(k + jj * j->ks[2] + c, 0, 2);
    for (int64_t e = 0; e < j->dv; e += 16) __builtin_prefetch(v + jj * j->vs[2] + e, 0, 2);
  }
}

static void bwd_group(const lt__attn_job *j, int64_t b, int64_t hk, void *scratch) {
  bwd_scratch s = bwd_carve(scratch, j);
  const float *k = (const float *)j->k + lt__attn_at(j->ks, b, hk, 0);
  const float *v = (const float *)j->v + lt__attn_at(j->vs, b, hk, 0);
  bwd_delta(j, b, hk, s.delta);
  memset(s.dq, 0, (size_t)(j->group * j->t * s.dp_cols) * sizeof(float));
  for (int64_t j0 = 0; j0 < j->s; j0 += NKB) {
    int64_t nk = j->s - j0 < NKB ? j->s - j0 : NKB;
    bwd_prefetch(j, k, v, j0 + NKB);
    bwd_pack_kv(j, k, v, j0, nk, s);
    bwd_key_tile(j, b, hk, j0, nk, s);
  }
  for (int64_t g = 0; g < j->group; g++)
    for (int64_t t = 0; t < j->t; t++) {
      float *dq = (float *)j->gq + ((b * j->hq + hk * j->group + g) * j->t + t) * j->d;
      memcpy(dq, s.dq + (g * j->t + t) * s.dp_cols, (size_t)j->d * sizeof(float));
    }
}

/* ================= decode: each key read once for the whole group ================= */

typedef struct dec_scratch {
  float *q, *sc, *acc; /* (R, Dp) scale * q, (R, NKD) scores, (R, Dv) */
  float *m, *l, *part; /* (R), (R), (LT_W, LT_W): the partial dot products of LT_W keys */
  int64_t *lo, *hi;    /* (R) */
  int64_t dp_cols;
} dec_scratch;

static size_t dec_scratch_bytes(const lt__attn_job *j) {
  int64_t r = j->group * j->t, dp = round_up(j->d, LT_W);
  return (size_t)(r * (dp + NKD + j->dv + 2) + LT_W * LT_W) * sizeof(float) + (size_t)(2 * r) * sizeof(int64_t);
}

static dec_scratch dec_carve(void *p, const lt__attn_job *j) {
  dec_scratch s;
  int64_t r = j->group * j->t;
  s.dp_cols = round_up(j->d, LT_W);
  s.lo = p, s.hi = s.lo + r;
  s.q = (float *)(s.hi + r), s.sc = s.q + r * s.dp_cols, s.acc = s.sc + r * NKD, s.m = s.acc + r * j->dv;
  s.l = s.m + r, s.part = s.l + r;
  return s;
}

/* Rows r = g*T + t: q scaled, key ranges clipped to s0 .. s1 - 1, state reset;
 * the union of the ranges in *klo .. *khi. */
static void dec_rows(const lt__attn_job *j, int64_t b, int64_t hk, int64_t s0, int64_t s1, dec_scratch s, int64_t *klo,
                     int64_t *khi) {
  int64_t rows = j->group * j->t;
  *klo = s1, *khi = s0 - 1;
  memset(s.acc, 0, (size_t)(rows * j->dv) * sizeof(float));
  for (int64_t r = 0; r < rows; r++) {
    const float *q = (const float *)j->q + lt__attn_at(j->qs, b, hk * j->group + r / j->t, r % j->t);
    float *qr = s.q + r * s.dp_cols;
    for (int64_t c = 0; c < s.dp_cols; c++) qr[c] = c < j->d ? (float)j->scale * q[c] : 0.0f;
    lt__attn_range(j, r % j->t, &s.lo[r], &s.hi[r]);
    s.lo[r] = s.lo[r] > s0 ? s.lo[r] : s0;
    s.hi[r] = s.hi[r] < s1 - 1 ? s.hi[r] : s1 - 1;
    if (s.lo[r] <= s.hi[r]) *klo = s.lo[r] < *klo ? s.lo[r] : *klo, *khi = s.hi[r] > *khi ? s.hi[r] : *khi;
    s.m[r] = -INFINITY, s.l[r] = 0;
  }
}

/* sc (R, nk): every row's scores against keys j0 .. j0 + nk - 1. Each run of
 * LT_W keys leaves one vector of partial sums per key, which att_row_sums
 * (from the ISA's file) reduces to their LT_W scores at once; the key rows
 * come from memory for the first row and from L1 for the others. */
static void dec_scores(const lt__attn_job *j, const float *k, int64_t j0, int64_t nk, dec_scratch s) {
  int64_t rows = j->group * j->t, dfull = j->d / LT_W * LT_W;
  for (int64_t r = 0; r < rows; r++) {
    const float *qr = s.q + r * s.dp_cols;
    float *out = s.sc + r * NKD;
    for (int64_t jb = 0; jb < nk; jb += LT_W) {
      int64_t nb = nk - jb < LT_W ? nk - jb : LT_W;
      for (int64_t i = 0; i < LT_W; i += 4) { /* four keys' chains side by side */
        const float *k0 = k + (j0 + jb + (i < nb ? i : 0)) * j->ks[2];
        const float *k1 = k + (j0 + jb + (i + 1 < nb ? i + 1 : 0)) * j->ks[2];
        const float *k2 = k + (j0 + jb + (i + 2 < nb ? i + 2 : 0)) * j->ks[2];
        const float *k3 = k + (j0 + jb + (i + 3 < nb ? i + 3 : 0)) * j->ks[2];
        vf a0 = vset(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t c = 0; c < dfull; c += LT_W) {
          vf qv = vload(qr + c);
          a0 = vfma(qv, vload(k0 + c), a0), a1 = vfma(qv, vload(k1 + c), a1);
          a2 = vfma(qv, vload(k2 + c), a2), a3 = vfma(qv, vload(k3 + c), a3);
        }
        vstore(s.part + i * LT_W, a0), vstore(s.part + (i + 1) * LT_W, a1);
        vstore(s.part + (i + 2) * LT_W, a2), vstore(s.part + (i + 3) * LT_W, a3);
      }
      att_row_sums(s.part, LT_W, out + jb);
      for (int64_t i = 0; i < nb && dfull < j->d; i++) {
        const float *kr = k + (j0 + jb + i) * j->ks[2];
        for (int64_t c = dfull; c < j->d; c++) out[jb + i] += qr[c] * kr[c];
      }
    }
  }
}

/* Row r's scores of keys j0 .. j0 + nk - 1: bias and range applied (whole
 * vectors; the lanes past nk are masked), then the online softmax: the
 * scores become probabilities and acc is rescaled. */
static void dec_softmax_row(const lt__attn_job *j, int64_t b, int64_t hk, int64_t r, int64_t j0, int64_t nk,
                            dec_scratch s) {
  int64_t h = hk * j->group + r / j->t, t = r % j->t, hi = s.hi[r] < j0 + nk - 1 ? s.hi[r] : j0 + nk - 1;
  float *x = s.sc + r * NKD, ns = j->alibi ? -((const float *)j->alibi)[h] : 0.0f, lanes[LT_W];
  if (j->mask) {
    const float *mr = (const float *)j->mask + lt__attn_mask_at(j, b, h, t, j0);
    for (int64_t jj = 0; jj < nk; jj++) x[jj] += mr[jj * j->ms[3]];
  }
  for (int i = 0; i < LT_W; i++) lanes[i] = (float)(j0 + i);
  vf pos = vset((float)(j->q_offset + t)), flo = vset((float)s.lo[r]), fhi = vset((float)hi), ninf = vset(-INFINITY);
  vf mx = vset(s.m[r]), vsum = vset(0.0f), jp = vload(lanes);
  for (int64_t v = 0; v < nk; v += LT_W, jp = vadd(jp, vset((float)LT_W))) {
    vf xv = vload(x + v);
    if (j->alibi) xv = vfma(vabs(vsub(pos, jp)), vset(ns), xv);
    xv = vsel(vlt(jp, flo), ninf, vsel(vgt(jp, fhi), ninf, xv));
    vstore(x + v, xv);
    mx = vmax(mx, xv);
  }
  float m = vreduce_max(mx), ms = m == -INFINITY ? 0.0f : m;
  vstore(lanes, exp_prob(vset(s.m[r] - ms))); /* the same exp as the probabilities */
  for (int64_t v = 0; v < nk; v += LT_W) {
    vf p = exp_prob(vsub(vload(x + v), vset(ms)));
    vstore(x + v, p);
    vsum = vadd(vsum, p);
  }
  s.l[r] = s.l[r] * lanes[0] + vreduce_add(vsum), s.m[r] = m;
  scale_by(s.acc + r * j->dv, j->dv, lanes[0]);
}

/* acc (R, Dv) += p v for keys j0 .. j0 + nk - 1, each value row read once: the
 * tile product (its accumulators in registers over the keys) when value rows
 * are whole vectors, else a plain loop. */
static void dec_values(const lt__attn_job *j, const float *v, int64_t j0, int64_t nk, dec_scratch s) {
  int64_t rows = j->group * j->t;
  if (j->dv % LT_W == 0) {
    LT_ATT_GEMM(rows, j->dv, nk, s.sc, NKD, 0, v + j0 * j->vs[2], j->vs[2], s.acc, j->dv, 1);
    return;
  }
  for (int64_t jj = 0; jj < nk; jj++) {
    const float *vr = v + (j0 + jj) * j->vs[2];
    for (int64_t r = 0; r < rows; r++) {
      float p = s.sc[r * NKD + jj], *acc = s.acc + r * j->dv;
      for (int64_t e = 0; e < j->dv; e++) acc[e] += p * vr[e];
    }
  }
}

static void dec_split(const lt__attn_job *j, int64_t b, int64_t hk, int64_t s0, int64_t s1, float *part,
                      void *scratch) {
  dec_scratch s = dec_carve(scratch, j);
  const float *k = (const float *)j->k + lt__attn_at(j->ks, b, hk, 0);
  const float *v = (const float *)j->v + lt__attn_at(j->vs, b, hk, 0);
  int64_t klo, khi, rows = j->group * j->t;
  dec_rows(j, b, hk, s0, s1, s, &klo, &khi);
  for (int64_t j0 = klo; j0 <= khi; j0 += NKD) {
    int64_t nk = khi + 1 - j0 < NKD ? khi + 1 - j0 : NKD;
    dec_scores(j, k, j0, nk, s);
    for (int64_t r = 0; r < rows; r++) dec_softmax_row(j, b, hk, r, j0, nk, s);
    dec_values(j, v, j0, nk, s);
  }
  for (int64_t r = 0; r < rows; r++) {
    float *p = part + r * (2 + j->dv);
    p[0] = s.m[r], p[1] = s.l[r];
    memcpy(p + 2, s.acc + r * j->dv, (size_t)j->dv * sizeof(float));
  }
}

const lt__attn_kernels LT_ATT_KERNELS = {.isa = LT_ATT_ISA,
                                         .fwd_rows = fwd_rows,
                                         .fwd_scratch = fwd_scratch_bytes,
                                         .forward = fwd_tile,
                                         .bwd_scratch = bwd_scratch_bytes,
                                         .backward = bwd_group,
                                         .dec_scratch = dec_scratch_bytes,
                                         .decode = dec_split};
