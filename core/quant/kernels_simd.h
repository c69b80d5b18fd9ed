/* The quantized kernels written once over the float primitives of the
 * kernels/simd_*.h header and the integer ones the including file defines:
 *   vi; vi vbytes(const uint8_t *p): LT_W bytes zero-extended to 32-bit lanes;
 *   vi vshr(vi a, int n) (n constant); vf vtofloat(vi);
 *   vt (a 16-entry float table); vt vtable_affine(vf s, vf b, const float
 *   *c16): the entries fl(fl(s * c16[i]) + b);
 *   vf vlookup(vt t, vi idx): t[idx & 15] per lane.
 * Scales and biases are read by scale_at with the dtype a constant of each
 * kernel's instantiation (no call, no branch in the loops: a call would
 * make the compiler keep every accumulator in memory).
 * LT_QKERNELS names the table to define, LT_QMR the rows of x a register
 * tile holds (8 with AVX-512's 32 registers, 4 with AVX2's 16), LT_QINT8 its
 * int8-activation kernel (int8_avx2.c, int8_avx512.c) and LT_QINT8_QUANTIZE
 * its quantizer of x. What each kernel computes is in
 * quant/internal.h; the panel order there is what lets a 16-byte run of
 * codes unpack by shifts alone. */
#include "kernels/simd_math.h"

/* ---- dequantizing a panel ---- */

/* The codes 0..15 (c16) and, for 2-bit tables, 0..3 repeated: a 2-bit
 * table is indexed with the neighbouring code in bits 2-3, which it ignores. */
static const float codes16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const float codes4[16] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};

/* Element i of scales or biases stored as dt (float32, float16, bfloat16). */
static inline float scale_at(const void *p, lt_dtype dt, int64_t i) {
  if (dt == LT_FLOAT16) return _cvtsh_ss(((const uint16_t *)p)[i]);
  if (dt == LT_BFLOAT16) {
    uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  return ((const float *)p)[i];
}

/* One 16-byte chunk of row codes `src` (one group) into dst in panel order. */
static inline void dequant_chunk(int bits, const uint8_t *src, vt t, vf s, vf b, float *dst) {
  for (int h = 0; h < 16; h += LT_W) {
    vi v = vbytes(src + h);
    if (bits == 8) {
      vstore(dst + h, vadd(vkeep(vmul(vtofloat(v), s)), b));
    } else if (bits == 4) {
      vstore(dst + h, vlookup(t, v));
      vstore(dst + 16 + h, vlookup(t, vshr(v, 4)));
    } else {
      vstore(dst + h, vlookup(t, v));
      vstore(dst + 16 + h, vlookup(t, vshr(v, 2)));
      vstore(dst + 32 + h, vlookup(t, vshr(v, 4)));
      vstore(dst + 48 + h, vlookup(t, vshr(v, 6)));
    }
  }
}

/* bits and sdt are constants of each instantiation. */
static inline __attribute__((always_inline)) void dequant_rows(int bits, lt_dtype sdt, const lt__qmat *q, int64_t r0,
                                                               int64_t nr, int64_t k0, int64_t kn, float *dst,
                                                               int64_t ld) {
  /* q's fields in locals: the stores into dst could alias them otherwise,
   * and the compiler would reload them for every group */
  const int64_t chunk = 128 / bits, gs = q->group_size, words = q->words, groups = q->groups;
  const uint32_t *w = q->w;
  const void *scales = q->scales, *biases = q->biases;
  const float *codes = bits == 2 ? codes4 : codes16;
  for (int64_t i = 0; i < nr; i++) {
    int64_t r = r0 + i;
    const uint8_t *src = (const uint8_t *)(w + r * words) + k0 * bits / 8;
    float *out = dst + i * ld;
    int64_t g = r * groups + k0 / gs; /* k0 and kn are whole groups */
    for (int64_t k = 0; k < kn; k += gs, g++) {
      vf s = vset(scale_at(scales, sdt, g)), b = vset(scale_at(biases, sdt, g));
      vt t = vtable_affine(s, b, codes);
      for (int64_t e = 0; e < gs; e += chunk, src += 16, out += chunk) dequant_chunk(bits, src, t, s, b, out);
    }
  }
}

static inline __attribute__((always_inline)) void dequant_typed(int bits, const lt__qmat *q, int64_t r0, int64_t nr,
                                                                int64_t k0, int64_t kn, float *dst, int64_t ld) {
  if (q->sdt == LT_FLOAT16)
    dequant_rows(bits, LT_FLOAT16, q, r0, nr, k0, kn, dst, ld);
  else if (q->sdt == LT_BFLOAT16)
    dequant_rows(bits, LT_BFLOAT16, q, r0, nr, k0, kn, dst, ld);
  else
    dequant_rows(bits, LT_FLOAT32, q, r0, nr, k0, kn, dst, ld);
}

/* Affine weights whose groups hold whole chunks take the vector path; the
 * rest (2 bits in groups of 32, mxfp8, nvfp4) the _ref kernel. */
static void dequant_panel(const lt__qmat *q, int64_t r0, int64_t nr, int64_t k0, int64_t kn, float *dst, int64_t ld) {
  if (q->mode != LT_QUANT_AFFINE || q->group_size % (128 / q->bits))
    lt__qkernels_ref.dequant_panel(q, r0, nr, k0, kn, dst, ld);
  else if (q->bits == 4)
    dequant_typed(4, q, r0, nr, k0, kn, dst, ld);
  else if (q->bits == 8)
    dequant_typed(8, q, r0, nr, k0, kn, dst, ld);
  else
    dequant_typed(2, q, r0, nr, k0, kn, dst, ld);
}

/* ---- acc += xp . p^T lane by lane: register tiles of mr rows of x by nr rows of p ---- */

/* Inlined with constant mr <= 8 and nr <= 3, the loops unroll and the 24
 * accumulators stay in registers; each k step loads nr + mr vectors for
 * mr * nr multiply-adds. The accumulators are added into acc as vectors:
 * their lanes are summed once, after the last tile of k (a horizontal sum
 * per tile would cost a fifth of the multiply-adds). */
static inline __attribute__((always_inline)) void dot_tile(int mr, int nr, float *acc, int64_t lda, const float *xp,
                                                           int64_t ldx, const float *p, int64_t ldp, int64_t kn) {
  vf a[8][3];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) a[i][j] = vset(0);
  for (int64_t k = 0; k < kn; k += LT_W) {
    vf pv[3];
    for (int j = 0; j < nr; j++) pv[j] = vload(p + j * ldp + k);
    for (int i = 0; i < mr; i++) {
      vf xv = vkeep(vload(xp + i * ldx + k)); /* in a register: loaded once for nr multiply-adds */
      for (int j = 0; j < nr; j++) a[i][j] = vfma(xv, pv[j], a[i][j]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) {
      float *at = acc + (i * lda + j) * LT_W;
      vstore(at, vadd(vload(at), a[i][j]));
    }
}

/* All n rows of p against mr rows of x. */
static inline __attribute__((always_inline)) void dot_rows(int mr, float *acc, int64_t lda, const float *xp,
                                                           int64_t ldx, const float *p, int64_t ldp, int64_t n,
                                                           int64_t kn) {
  int64_t j = 0;
  for (; j + 3 <= n; j += 3) dot_tile(mr, 3, acc + j * LT_W, lda, xp, ldx, p + j * ldp, ldp, kn);
  if (n - j == 2) dot_tile(mr, 2, acc + j * LT_W, lda, xp, ldx, p + j * ldp, ldp, kn);
  if (n - j == 1) dot_tile(mr, 1, acc + j * LT_W, lda, xp, ldx, p + j * ldp, ldp, kn);
}

static void dot(float *acc, int64_t lda, const float *xp, int64_t ldx, const float *p, int64_t ldp, int64_t m,
                int64_t n, int64_t kn) {
  int64_t i = 0, row = lda * LT_W;
  for (; i + LT_QMR <= m; i += LT_QMR) dot_rows(LT_QMR, acc + i * row, lda, xp + i * ldx, ldx, p, ldp, n, kn);
  if (LT_QMR > 4 && m - i >= 4) dot_rows(4, acc + i * row, lda, xp + i * ldx, ldx, p, ldp, n, kn), i += 4;
  if (m - i >= 2) dot_rows(2, acc + i * row, lda, xp + i * ldx, ldx, p, ldp, n, kn), i += 2;
  if (m - i >= 1) dot_rows(1, acc + i * row, lda, xp + i * ldx, ldx, p, ldp, n, kn);
}

/* ---- acc += xp . W^T with W dequantized in registers (few rows of x) ---- */

/* With few rows of x a panel would cost as much to write and read as the
 * multiply-adds it feeds: here each dequantized vector of nr rows of W goes
 * straight into mr * nr multiply-adds (affine 4 and 8 bits; bits and sdt are
 * constants of each instantiation, mr <= 8 and nr <= 3 too). */
static inline __attribute__((always_inline)) void dotq_tile(int bits, lt_dtype sdt, int mr, int nr, const lt__qmat *q,
                                                            int64_t r, int64_t k0, int64_t kn, float *acc, int64_t lda,
                                                            const float *xp, int64_t ldx) {
  const int64_t gs = q->group_size, groups = q->groups, words = q->words;
  const void *scales = q->scales, *biases = q->biases;
  const uint8_t *codes[3];
  vf a[8][3];
  for (int j = 0; j < nr; j++) codes[j] = (const uint8_t *)(q->w + (r + j) * words) + k0 * bits / 8;
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) a[i][j] = vset(0);
  int64_t g = k0 / gs;
  for (int64_t k = 0; k < kn; k += gs, g++) {
    vt t[3];
    vf s[3], b[3];
    for (int j = 0; j < nr; j++) {
      int64_t at = (r + j) * groups + g;
      s[j] = vset(scale_at(scales, sdt, at)), b[j] = vset(scale_at(biases, sdt, at));
      if (bits == 4) t[j] = vtable_affine(s[j], b[j], codes16);
    }
    for (int64_t e = k; e < k + gs; e += bits == 4 ? 32 : 16)
      for (int h = 0; h < 16; h += LT_W) {
        for (int half = 0; half < (bits == 4 ? 2 : 1); half++) { /* 4 bits: low codes, then high */
          vf w[3];
          for (int j = 0; j < nr; j++) {
            vi v = vbytes(codes[j] + e * bits / 8 + h);
            if (bits == 4)
              w[j] = vlookup(t[j], half ? vshr(v, 4) : v);
            else
              w[j] = vadd(vkeep(vmul(vtofloat(v), s[j])), b[j]);
          }
          for (int i = 0; i < mr; i++) {
            vf xv = vkeep(vload(xp + i * ldx + e + 16 * half + h));
            for (int j = 0; j < nr; j++) a[i][j] = vfma(xv, w[j], a[i][j]);
          }
        }
      }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) {
      float *at = acc + (i * lda + j) * LT_W;
      vstore(at, vadd(vload(at), a[i][j]));
    }
}

static inline __attribute__((always_inline)) void dotq_rows(int bits, lt_dtype sdt, int mr, const lt__qmat *q,
                                                            int64_t r0, int64_t nr, int64_t k0, int64_t kn, float *acc,
                                                            int64_t lda, const float *xp, int64_t ldx) {
  int64_t j = 0; /* pairs of W's rows: 16 accumulators, 2 tables and 2 rows of values fit the registers */
  for (; j + 2 <= nr; j += 2) dotq_tile(bits, sdt, mr, 2, q, r0 + j, k0, kn, acc + j * LT_W, lda, xp, ldx);
  if (nr - j == 1) dotq_tile(bits, sdt, mr, 1, q, r0 + j, k0, kn, acc + j * LT_W, lda, xp, ldx);
}

static inline __attribute__((always_inline)) void dotq_typed(int bits, lt_dtype sdt, const lt__qmat *q, int64_t r0,
                                                             int64_t nr, int64_t k0, int64_t kn, float *acc,
                                                             int64_t lda, const float *xp, int64_t ldx, int64_t m) {
  int64_t i = 0, row = lda * LT_W;
  for (; i + LT_QMR <= m; i += LT_QMR)
    dotq_rows(bits, sdt, LT_QMR, q, r0, nr, k0, kn, acc + i * row, lda, xp + i * ldx, ldx);
  if (LT_QMR > 4 && m - i >= 4)
    dotq_rows(bits, sdt, 4, q, r0, nr, k0, kn, acc + i * row, lda, xp + i * ldx, ldx), i += 4;
  if (m - i >= 2) dotq_rows(bits, sdt, 2, q, r0, nr, k0, kn, acc + i * row, lda, xp + i * ldx, ldx), i += 2;
  if (m - i >= 1) dotq_rows(bits, sdt, 1, q, r0, nr, k0, kn, acc + i * row, lda, xp + i * ldx, ldx);
}

static void dot_codes(const lt__qmat *q, int64_t r0, int64_t nr, int64_t k0, int64_t kn, float *acc, int64_t lda,
                      const float *xp, int64_t ldx, int64_t m) {
  if (q->bits == 4 && q->sdt == LT_FLOAT32)
    dotq_typed(4, LT_FLOAT32, q, r0, nr, k0, kn, acc, lda, xp, ldx, m);
  else if (q->bits == 4 && q->sdt == LT_FLOAT16)
    dotq_typed(4, LT_FLOAT16, q, r0, nr, k0, kn, acc, lda, xp, ldx, m);
  else if (q->bits == 4)
    dotq_typed(4, LT_BFLOAT16, q, r0, nr, k0, kn, acc, lda, xp, ldx, m);
  else if (q->sdt == LT_FLOAT32)
    dotq_typed(8, LT_FLOAT32, q, r0, nr, k0, kn, acc, lda, xp, ldx, m);
  else if (q->sdt == LT_FLOAT16)
    dotq_typed(8, LT_FLOAT16, q, r0, nr, k0, kn, acc, lda, xp, ldx, m);
  else
    dotq_typed(8, LT_BFLOAT16, q, r0, nr, k0, kn, acc, lda, xp, ldx, m);
}

/* ---- d += g @ p: register tiles of mr rows of g by nv vectors of p's columns ---- */

static inline __attribute__((always_inline)) void dot_t_tile(int mr, int nv, float *d, int64_t ldd, const float *g,
                                                             int64_t ldg, const float *p, int64_t ldp, int64_t n) {
  vf acc[8][3];
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < nv; v++) acc[i][v] = vset(0);
  for (int64_t j = 0; j < n; j++) {
    vf pv[3];
    for (int v = 0; v < nv; v++) pv[v] = vload(p + j * ldp + v * LT_W);
    for (int i = 0; i < mr; i++) {
      vf gv = vset(g[i * ldg + j]);
      for (int v = 0; v < nv; v++) acc[i][v] = vfma(gv, pv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < nv; v++) vstore(d + i * ldd + v * LT_W, vadd(vload(d + i * ldd + v * LT_W), acc[i][v]));
}

static inline __attribute__((always_inline)) void dot_t_rows(int mr, float *d, int64_t ldd, const float *g, int64_t ldg,
                                                             const float *p, int64_t ldp, int64_t n, int64_t kn) {
  int64_t k = 0;
  for (; k + 3 * LT_W <= kn; k += 3 * LT_W) dot_t_tile(mr, 3, d + k, ldd, g, ldg, p + k, ldp, n);
  if (kn - k == 2 * LT_W) dot_t_tile(mr, 2, d + k, ldd, g, ldg, p + k, ldp, n);
  if (kn - k == LT_W) dot_t_tile(mr, 1, d + k, ldd, g, ldg, p + k, ldp, n);
}

static void dot_t(float *d, int64_t ldd, const float *g, int64_t ldg, const float *p, int64_t ldp, int64_t m, int64_t n,
                  int64_t kn) {
  int64_t i = 0;
  for (; i + LT_QMR <= m; i += LT_QMR) dot_t_rows(LT_QMR, d + i * ldd, ldd, g + i * ldg, ldg, p, ldp, n, kn);
  if (LT_QMR > 4 && m - i >= 4) dot_t_rows(4, d + i * ldd, ldd, g + i * ldg, ldg, p, ldp, n, kn), i += 4;
  if (m - i >= 2) dot_t_rows(2, d + i * ldd, ldd, g + i * ldg, ldg, p, ldp, n, kn), i += 2;
  if (m - i >= 1) dot_t_rows(1, d + i * ldd, ldd, g + i * ldg, ldg, p, ldp, n, kn);
}

/* ---- the matrix-vector kernel: W read once, straight from its codes ---- */

/* nr (<= 4, constant) rows from r, 4-bit codes: per group a table of its 16
 * values; per 32 values one 16-byte run of codes per row, two lookups and two
 * multiply-adds into two accumulators per row, the x vectors shared. */
static inline __attribute__((always_inline)) void matvec4_rows(int nr, lt_dtype sdt, const lt__qmat *q, const float *xp,
                                                               float *y, int64_t r) {
  vf acc0[4], acc1[4];
  const uint8_t *codes[4];
#pragma GCC unroll 4
  for (int i = 0; i < nr; i++) {
    acc0[i] = acc1[i] = vset(0);
    codes[i] = (const uint8_t *)(q->w + (r + i) * q->words);
  }
  for (int64_t g = 0; g < q->groups; g++) {
    vt t[4];
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) {
      int64_t at = (r + i) * q->groups + g;
      t[i] = vtable_affine(vset(scale_at(q->scales, sdt, at)), vset(scale_at(q->biases, sdt, at)), codes16);
    }
    for (int64_t k = g * q->group_size; k < (g + 1) * q->group_size; k += 32)
#pragma GCC unroll 2
      for (int h = 0; h < 16; h += LT_W) {
        vf xe = vload(xp + k + h), xo = vload(xp + k + 16 + h);
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
          vi v = vbytes(codes[i] + k / 2 + h);
          acc0[i] = vfma(vlookup(t[i], v), xe, acc0[i]);
          acc1[i] = vfma(vlookup(t[i], vshr(v, 4)), xo, acc1[i]);
        }
      }
  }
#pragma GCC unroll 4
  for (int i = 0; i < nr; i++) y[r + i] = vreduce_add(vadd(acc0[i], acc1[i]));
}

/* 8-bit codes, factored per group: s * (sum of c * x) + b * (sum of x), so a
 * value costs a widening load, a conversion and one multiply-add; the sum of
 * x is shared by the rows. */
static inline __attribute__((always_inline)) void matvec8_rows(int nr, lt_dtype sdt, const lt__qmat *q, const float *xp,
                                                               float *y, int64_t r) {
  vf acc[4];
  const uint8_t *codes[4];
#pragma GCC unroll 4
  for (int i = 0; i < nr; i++) {
    acc[i] = vset(0);
    codes[i] = (const uint8_t *)(q->w + (r + i) * q->words);
  }
  for (int64_t g = 0; g < q->groups; g++) {
    vf part[4], xsum = vset(0);
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) part[i] = vset(0);
    for (int64_t k = g * q->group_size; k < (g + 1) * q->group_size; k += LT_W) {
      vf x = vload(xp + k);
      xsum = vadd(xsum, x);
#pragma GCC unroll 4
      for (int i = 0; i < nr; i++) part[i] = vfma(vtofloat(vbytes(codes[i] + k)), x, part[i]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) {
      int64_t at = (r + i) * q->groups + g;
      acc[i] = vfma(vset(scale_at(q->scales, sdt, at)), part[i], acc[i]);
      acc[i] = vfma(vset(scale_at(q->biases, sdt, at)), xsum, acc[i]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < nr; i++) y[r + i] = vreduce_add(acc[i]);
}

static inline __attribute__((always_inline)) void matvec_typed(lt_dtype sdt, const lt__qmat *q, const float *xp,
                                                               float *y, int64_t r0, int64_t r1) {
  int64_t r = r0;
  if (q->bits == 4) {
    for (; r + 4 <= r1; r += 4) matvec4_rows(4, sdt, q, xp, y, r);
    for (; r < r1; r++) matvec4_rows(1, sdt, q, xp, y, r);
  } else {
    for (; r + 4 <= r1; r += 4) matvec8_rows(4, sdt, q, xp, y, r);
    for (; r < r1; r++) matvec8_rows(1, sdt, q, xp, y, r);
  }
}

static void matvec(const lt__qmat *q, const float *xp, float *y, int64_t r0, int64_t r1) {
  if (q->sdt == LT_FLOAT16)
    matvec_typed(LT_FLOAT16, q, xp, y, r0, r1);
  else if (q->sdt == LT_BFLOAT16)
    matvec_typed(LT_BFLOAT16, q, xp, y, r0, r1);
  else
    matvec_typed(LT_FLOAT32, q, xp, y, r0, r1);
}

const lt__qkernels LT_QKERNELS = {LT_W, dequant_panel, dot, dot_codes, dot_t, matvec, LT_QINT8, LT_QINT8_QUANTIZE};
