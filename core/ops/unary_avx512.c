/* AVX-512 unary kernels: the primitives of unary_simd.h on 16-lane vectors.
 * Compiled with -mavx512f/bw/vl/dq -mfma; called only when the context's ISA allows. */
#include <immintrin.h>
#include "ops/unary_kernels.h"

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

#define LT_SIMD_FWD lt__unary_fwd_avx512
#define LT_SIMD_BWD lt__unary_bwd_avx512
#include "ops/unary_simd.h"
