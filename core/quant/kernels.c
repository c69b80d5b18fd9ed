/* The plain kernels every ISA variant is checked against (the _ref table),
 * the natural-order dequantization that defines a weight's values, the panel
 * order's permutation of x, and the choice of table. Scalar code compiled
 * without FMA: fl(fl(scale * q) + bias) is two roundings, kept so by vkeep
 * even in a -march=native build. */
#include <math.h>
#include "quant/internal.h"
#include "kernels/simd_scalar.h"

/* Value c of the mode's value format (mxfp8: E4M3, nvfp4: E2M1). */
static float fp_value(lt_quant_mode mode, uint32_t c) {
  return mode == LT_QUANT_NVFP4 ? lt__e2m1_to_float((uint8_t)c) : lt__e4m3_to_float((uint8_t)c);
}

/* The values of group g of row r, for [from, to) inside the group: the
 * codes of each word unpacked low bits first. */
static void dequant_group(const lt__qmat *q, int64_t r, int64_t g, int64_t from, int64_t to, float *dst) {
  float s = lt__qscale(q, r, g), b = lt__qbias(q, r, g);
  int log_per_word = q->bits == 2 ? 4 : q->bits == 4 ? 3 : 2; /* 32 / bits values a word */
  uint32_t mask = (1u << q->bits) - 1;
  const uint32_t *words = q->w + r * q->words;
  for (int64_t k = from; k < to; k++) {
    uint32_t c = (words[k >> log_per_word] >> ((k & ((1 << log_per_word) - 1)) * q->bits)) & mask;
    dst[k - from] = q->mode == LT_QUANT_AFFINE ? vkeep(s * (float)c) + b : s * fp_value(q->mode, c);
  }
}

void lt__qdequant_row(const lt__qmat *q, int64_t r, int64_t k0, int64_t n, float *dst) {
  int64_t gs = q->group_size;
  for (int64_t k = k0; k < k0 + n;) {
    int64_t g = k / gs, end = (g + 1) * gs < k0 + n ? (g + 1) * gs : k0 + n;
    dequant_group(q, r, g, k, end, dst + (k - k0));
    k = end;
  }
}

/* xp[c + s * nb + j] = x[c + j * per + s] over the chunks, lt__qpos's order
 * written out (no division per element: x is permuted for every token). */
static void permute(int bits, float *xp, const float *x, int64_t n, int forward) {
  int per = 8 / bits;
  int64_t chunk = 16 * per;
  for (int64_t c = 0; c < n; c += chunk) {
    int64_t nb = (n - c) / per < 16 ? (n - c) / per : 16;
    for (int64_t j = 0; j < nb; j++)
      for (int s = 0; s < per; s++) {
        if (forward)
          xp[c + s * nb + j] = x[c + j * per + s];
        else
          xp[c + j * per + s] = x[c + s * nb + j];
      }
  }
}

void lt__qpermute(int bits, float *xp, const float *x, int64_t n) { permute(bits, xp, x, n, 1); }
void lt__qunpermute(int bits, float *x, const float *xp, int64_t n) { permute(bits, x, xp, n, 0); }

/* ---- the _ref kernels ---- */

static void dequant_panel_ref(const lt__qmat *q, int64_t r0, int64_t nr, int64_t k0, int64_t kn, float *dst,
                              int64_t ld) {
  float row[LT_QPANEL_COLS];
  for (int64_t i = 0; i < nr; i++) {
    lt__qdequant_row(q, r0 + i, k0, kn, row);
    for (int64_t e = 0; e < kn; e++) dst[i * ld + lt__qpos(q->bits, kn, e)] = row[e];
  }
}

/* One lane: acc (m, lda) += xp . p^T. */
static void dot_ref(float *acc, int64_t lda, const float *xp, int64_t ldx, const float *p, int64_t ldp, int64_t m,
                    int64_t n, int64_t kn) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float s = 0;
      for (int64_t k = 0; k < kn; k++) s += xp[i * ldx + k] * p[j * ldp + k];
      acc[i * lda + j] += s;
    }
}

static void dot_t_ref(float *d, int64_t ldd, const float *g, int64_t ldg, const float *p, int64_t ldp, int64_t m,
                      int64_t n, int64_t kn) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t k = 0; k < kn; k++) {
      float s = 0;
      for (int64_t j = 0; j < n; j++) s += g[i * ldg + j] * p[j * ldp + k];
      d[i * ldd + k] += s;
    }
}

/* Any mode: the value at natural index k of x sits at xp[pos(k)]. */
static void matvec_ref(const lt__qmat *q, const float *xp, float *y, int64_t r0, int64_t r1) {
  float row[LT_QPANEL_COLS];
  for (int64_t r = r0; r < r1; r++) {
    float s = 0;
    for (int64_t k0 = 0; k0 < q->in; k0 += LT_QPANEL_COLS) {
      int64_t kn = q->in - k0 < LT_QPANEL_COLS ? q->in - k0 : LT_QPANEL_COLS;
      lt__qdequant_row(q, r, k0, kn, row);
      for (int64_t k = 0; k < kn; k++) s += row[k] * xp[lt__qpos(q->bits, q->in, k0 + k)];
    }
    y[r] = s;
  }
}

/* Code k of row r (affine 4 or 8 bits). */
static int32_t code_at(const lt__qmat *q, int64_t r, int64_t k) {
  int per = 32 / q->bits;
  return (int32_t)((q->w[r * q->words + k / per] >> (k % per * q->bits)) & ((1u << q->bits) - 1));
}

/* The int8 product of internal.h, output by output: per group the exact
 * integer sum of q * xi, then the two fused multiply-adds of the epilogue. */
static void int8_tiles_ref(const lt__qmat *q, const uint8_t *pack, const lt__qi8x *x, float *y, int64_t t0,
                           int64_t t1) {
  (void)pack;
  int64_t o1 = t1 * LT_QI8_TILE < q->rows ? t1 * LT_QI8_TILE : q->rows, gs = q->group_size;
  for (int64_t o = t0 * LT_QI8_TILE; o < o1; o++)
    for (int64_t i = 0; i < x->m; i++) {
      float acc = 0;
      for (int64_t g = 0; g < q->groups; g++) {
        int32_t isum = 0;
        for (int64_t k = g * gs; k < (g + 1) * gs; k++) isum += code_at(q, o, k) * lt__qi8x_at(x, i, k);
        float d = x->d[i * x->groups + g], xs = x->xs[i * x->groups + g];
        acc = fmaf((float)isum, lt__qscale(q, o, g) * d, acc);
        acc = fmaf(lt__qbias(q, o, g), xs, acc);
      }
      y[i * q->rows + o] = acc;
    }
}

const lt__qkernels lt__qkernels_ref = {1,         dequant_panel_ref, dot_ref,        NULL,
                                       dot_t_ref, matvec_ref,        int8_tiles_ref, NULL};

const lt__qkernels *lt__qkernels_for(lt_isa isa, lt_isa *used) {
  lt_isa best = lt_cpu_isa();
  if (isa > best) isa = best;
  if (used) *used = isa;
  return isa == LT_ISA_AVX512 ? &lt__qkernels_avx512 : isa == LT_ISA_AVX2 ? &lt__qkernels_avx2 : &lt__qkernels_ref;
}
