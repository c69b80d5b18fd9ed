/* The quantized kernels for AVX2: 8 lanes; a group's 16 values are two
 * registers, vpermps picks from each with the codes' low 3 bits and bit 3
 * chooses between them. */
#include "quant/internal.h"
#include "kernels/simd_avx2.h"

typedef __m256i vi;
typedef struct vt {
  __m256 lo, hi;
} vt;

static inline vi vbytes(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline vi vshr(vi a, int n) { return _mm256_srl_epi32(a, _mm_cvtsi32_si128(n)); }
static inline vf vtofloat(vi a) { return _mm256_cvtepi32_ps(a); }
static inline vt vtable_affine(vf s, vf b, const float *c16) {
  return (vt){vadd(vkeep(vmul(vload(c16), s)), b), vadd(vkeep(vmul(vload(c16 + 8), s)), b)};
}
static inline vf vlookup(vt t, vi idx) {
  __m256 high = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)); /* bit 3 into the sign bit */
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.lo, idx), _mm256_permutevar8x32_ps(t.hi, idx), high);
}

#define LT_QKERNELS       lt__qkernels_avx2
#define LT_QMR            4
#define LT_QINT8          lt__qi8_tiles_avx2
#define LT_QINT8_QUANTIZE lt__qi8_quantize_row_avx2
#include "quant/kernels_simd.h"
