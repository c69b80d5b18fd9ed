#ifndef LATTICE_KERNELS_SIMD_H
#define LATTICE_KERNELS_SIMD_H
/* The SIMD primitives every hand kernel is written over, for one ISA: AVX-512F/BW/VL/DQ + FMA,
 * 16 lanes. A
 * kernel file compiled with that ISA's flags includes exactly one of
 * kernels/simd_scalar.h, simd_avx2.h, simd_avx512.h, then writes its loops once
 * over these names:
 *   LT_W lanes; vf (float vector), vm (lane mask); vset, vload, vstore, vadd,
 *   vsub, vmul, vdiv, vfma(a,b,c) = a*b+c, vmin/vmax (the SECOND argument is
 *   returned when either is NaN, as minps/maxps do), vsqrt, vround (to
 *   nearest, for |a| < 2^22), vabs, vcopysign(mag, sign), vpow2i (2^n for
 *   integral n in [-126, 127]), vlt, vgt, vsel(m, if_true, if_false), vkeep
 *   (an optimisation barrier: the value as computed, not contracted),
 *   vreduce_add (the sum of the lanes), vtranspose (LT_W vectors as the rows
 *   of a square, transposed in registers).
 * kernels/simd_math.h holds the math written over them (exp, sigmoid, tanh,
 * the normal cdf). */
#include <immintrin.h>

#define LT_W 16
typedef __m512 vf;
typedef __mmask16 vm;

static inline vf vset(float a) { return _mm512_set1_ps(a); }
static inline vf vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstore(float *p, vf a) { _mm512_storeu_ps(p, a); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vsqrt(vf a) { return _mm512_sqrt_ps(a); }
static inline vf vround(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vabs(vf a) { return _mm512_abs_ps(a); }
static inline vf vcopysign(vf mag, vf sign) {
  vf m = _mm512_set1_ps(-0.0f);
  return _mm512_or_ps(_mm512_andnot_ps(m, mag), _mm512_and_ps(m, sign));
}
static inline vf vpow2i(vf n) {
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
static inline vm vlt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline vm vgt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
/* The value as computed: no contraction across it. */
static inline vf vkeep(vf a) {
  __asm__("" : "+v"(a));
  return a;
}
static inline vf vsel(vm m, vf t, vf f) { return _mm512_mask_blend_ps(m, f, t); }
static inline float vreduce_add(vf a) { return _mm512_reduce_add_ps(a); }
/* r[i] (row i, 16 lanes) becomes column i: r[i][j] = old r[j][i]. Four
 * rounds of 16 two-input shuffles: pairs of lanes, then of pairs, then of
 * 128-bit quarters, then of halves. */
static inline void vtranspose(vf r[16]) {
  vf t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xDD);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

#endif
