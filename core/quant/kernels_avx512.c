/* The quantized kernels for AVX-512: 16 lanes; a group's 16 values are one
 * register that vpermps indexes with the codes' low 4 bits. */
#include "quant/internal.h"
#include "kernels/simd_avx512.h"

typedef __m512i vi;
typedef __m512 vt;

static inline vi vbytes(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline vi vshr(vi a, int n) { return _mm512_srl_epi32(a, _mm_cvtsi32_si128(n)); }
static inline vf vtofloat(vi a) { return _mm512_cvtepi32_ps(a); }
static inline vt vtable_affine(vf s, vf b, const float *c16) { return vadd(vkeep(vmul(vload(c16), s)), b); }
static inline vf vlookup(vt t, vi idx) { return _mm512_permutexvar_ps(idx, t); }

#define LT_QKERNELS       lt__qkernels_avx512
#define LT_QMR            8
#define LT_QINT8          lt__qi8_tiles_avx512
#define LT_QINT8_QUANTIZE lt__qi8_quantize_row_avx512
#include "quant/kernels_simd.h"
