#ifndef LATTICE_KERNELS_SIMD_H
#define LATTICE_KERNELS_SIMD_H
/* The SIMD primitives every hand kernel is written over, for one ISA: AVX2 + FMA, 8 lanes (compile
 * with -mavx2 -mfma). A
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

#define LT_W 8
typedef __m256 vf;
typedef __m256 vm; /* all-ones lanes where true */

static inline vf vset(float a) { return _mm256_set1_ps(a); }
static inline vf vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstore(float *p, vf a) { _mm256_storeu_ps(p, a); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vsqrt(vf a) { return _mm256_sqrt_ps(a); }
static inline vf vround(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vabs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline vf vcopysign(vf mag, vf sign) {
  vf m = _mm256_set1_ps(-0.0f);
  return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, sign));
}
static inline vf vpow2i(vf n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
static inline vm vlt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline vm vgt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
/* The value as computed: no contraction across it. */
static inline vf vkeep(vf a) {
  __asm__("" : "+x"(a));
  return a;
}
static inline vf vsel(vm m, vf t, vf f) { return _mm256_blendv_ps(f, t, m); }
static inline float vreduce_add(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
/* r[i] (row i, 8 lanes) becomes column i: r[i][j] = old r[j][i]. Pairs of
 * lanes, then of pairs (within 128-bit halves), then the halves. */
static inline void vtranspose(vf r[8]) {
  vf t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
  }
  for (int i = 0; i < 8; i++) r[i] = t[i];
}

#endif
