/* The int8-activation product (quant/internal.h) with AVX512-VNNI: vpdpbusd
 * multiplies the 64 unsigned codes of a pack vector (16 outputs x 4 values)
 * by one broadcast quad of a row's int8 values and adds each lane's four
 * products into its int32 sum, so a vector of codes read once serves every
 * row of x in the register tile. At the end of each group the sums go
 * through the float epilogue that the _ref kernel computes element by
 * element, in the same order, so the results are the same bits.
 * Without VNNI (AVX-512 before Cascade Lake) the AVX2 kernel runs. */
#include <math.h>
#include "quant/internal.h"
#include <immintrin.h>

#define VNNI __attribute__((target("avx512vnni")))

/* The int32 lane of row i's values [k, k + 4) broadcast to 16 lanes. */
static inline VNNI __m512i quad(const int8_t *x) {
  int32_t v;
  memcpy(&v, x, 4);
  return _mm512_set1_epi32(v);
}

/* mr (<= 8, constant) rows of x from row i0 (a multiple of 8) against the
 * 16 outputs of one tile of the pack; bits and gs constants too. The loops
 * unroll whole, so that the sums stay in registers without copies. y gets
 * the first `valid` outputs. */
static inline __attribute__((always_inline)) VNNI void tile_rows(int bits, int64_t gs, int mr, const uint8_t *p,
                                                                 const lt__qi8x *x, int64_t i0, float *y, int64_t ldy,
                                                                 int valid) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const int64_t groups = x->groups;
  const int8_t *xq = x->q + i0 * x->in; /* quads of 8 rows, 32 bytes apart */
  const float *d = x->d + i0 * groups, *xs = x->xs + i0 * groups;
  __m512 acc[8];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; g++) {
    /* two sums a row (low and high nibbles, or even and odd quads): 16
     * independent chains hide vpdpbusd's latency at two a cycle */
    __m512i sum[8], sum2[8];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) sum[i] = sum2[i] = _mm512_setzero_si512();
    const int8_t *xg = xq + g * gs * LT_QI8_ROWS;
    if (bits == 4) {
#pragma GCC unroll 16
      for (int64_t j = 0; j < gs / 8; j++) {
        __m512i v = _mm512_load_si512(p + 64 * j);
        __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
          sum[i] = _mm512_dpbusd_epi32(sum[i], lo, quad(xg + 64 * j + 4 * i));
          sum2[i] = _mm512_dpbusd_epi32(sum2[i], hi, quad(xg + 64 * j + 32 + 4 * i));
        }
      }
    } else {
#pragma GCC unroll 32
      for (int64_t j = 0; j < gs / 4; j += 2) {
        __m512i v = _mm512_load_si512(p + 64 * j), v2 = _mm512_load_si512(p + 64 * j + 64);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
          sum[i] = _mm512_dpbusd_epi32(sum[i], v, quad(xg + 32 * j + 4 * i));
          sum2[i] = _mm512_dpbusd_epi32(sum2[i], v2, quad(xg + 32 * j + 32 + 4 * i));
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) sum[i] = _mm512_add_epi32(sum[i], sum2[i]);
    p += 16 * gs * bits / 8;
    __m512 s = _mm512_load_ps((const float *)p), b = _mm512_load_ps((const float *)p + LT_QI8_TILE);
    p += 2 * LT_QI8_TILE * 4;
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
      __m512 sd = _mm512_mul_ps(s, _mm512_set1_ps(d[i * groups + g]));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[i]), sd, acc[i]);
      acc[i] = _mm512_fmadd_ps(b, _mm512_set1_ps(xs[i * groups + g]), acc[i]);
    }
  }
  __mmask16 keep = (__mmask16)((1u << valid) - 1);
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++) _mm512_mask_storeu_ps(y + i * ldy, keep, acc[i]);
}

/* Every row of x against one tile, 8 rows at a time. */
static inline __attribute__((always_inline)) VNNI void tile(int bits, int64_t gs, const uint8_t *p, const lt__qi8x *x,
                                                            float *y, int64_t ldy, int valid) {
  int64_t i = 0;
  for (; i + 8 <= x->m; i += 8) tile_rows(bits, gs, 8, p, x, i, y + i * ldy, ldy, valid);
  switch (x->m - i) {
  case 7: tile_rows(bits, gs, 7, p, x, i, y + i * ldy, ldy, valid); break;
  case 6: tile_rows(bits, gs, 6, p, x, i, y + i * ldy, ldy, valid); break;
  case 5: tile_rows(bits, gs, 5, p, x, i, y + i * ldy, ldy, valid); break;
  case 4: tile_rows(bits, gs, 4, p, x, i, y + i * ldy, ldy, valid); break;
  case 3: tile_rows(bits, gs, 3, p, x, i, y + i * ldy, ldy, valid); break;
  case 2: tile_rows(bits, gs, 2, p, x, i, y + i * ldy, ldy, valid); break;
  case 1: tile_rows(bits, gs, 1, p, x, i, y + i * ldy, ldy, valid); break;
  default: break;
  }
}

static inline __attribute__((always_inline)) VNNI void tiles_typed(int bits, int64_t gs, const lt__qmat *q,
                                                                   const uint8_t *pack, const lt__qi8x *x, float *y,
                                                                   int64_t t0, int64_t t1) {
  int64_t block = q->groups * lt__qi8_block(bits, (int)gs);
  for (int64_t t = t0; t < t1; t++) {
    int64_t o = t * LT_QI8_TILE, left = q->rows - o;
    tile(bits, gs, pack + t * block, x, y + o, q->rows, left < LT_QI8_TILE ? (int)left : LT_QI8_TILE);
  }
}

static VNNI void tiles_vnni(const lt__qmat *q, const uint8_t *pack, const lt__qi8x *x, float *y, int64_t t0,
                            int64_t t1) {
  switch (q->bits * 1000 + q->group_size) {
  case 4032: tiles_typed(4, 32, q, pack, x, y, t0, t1); break;
  case 4064: tiles_typed(4, 64, q, pack, x, y, t0, t1); break;
  case 4128: tiles_typed(4, 128, q, pack, x, y, t0, t1); break;
  case 8032: tiles_typed(8, 32, q, pack, x, y, t0, t1); break;
  case 8064: tiles_typed(8, 64, q, pack, x, y, t0, t1); break;
  default: tiles_typed(8, 128, q, pack, x, y, t0, t1); break;
  }
}

void lt__qi8_tiles_avx512(const lt__qmat *q, const uint8_t *pack, const lt__qi8x *x, float *y, int64_t t0, int64_t t1) {
  if (__builtin_cpu_supports("avx512vnni")) /* a read of what cpuid gave at load time */
    tiles_vnni(q, pack, x, y, t0, t1);
  else
    lt__qi8_tiles_avx2(q, pack, x, y, t0, t1); /* every AVX-512 CPU has AVX2 */
}

/* lt__qi8_quantize_row 16 values at a time: the same operations (max of
 * |x|, one division, x * inv rounded to nearest even by vcvtps2dq, the clamp,
 * the integer sum), so the same codes, steps and sums. */
void lt__qi8_quantize_row_avx512(const float *x, int64_t in, int gs, int64_t i, int8_t *q, float *d, float *xs) {
  const __m512 inf = _mm512_set1_ps(INFINITY);
  int8_t *row = q + lt__qi8x_index(in, i, 0);
  for (int64_t g = 0; g < in / gs; g++) {
    const float *xg = x + g * gs;
    __m512 amax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (int k = 0; k < gs; k += 16) {
      __m512 a = _mm512_abs_ps(_mm512_loadu_ps(xg + k));
      bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ); /* an infinity or NaN */
      amax = _mm512_max_ps(amax, a);
    }
    float m = _mm512_reduce_max_ps(amax);
    int finite = bad == 0;
    __m512 inv = _mm512_set1_ps(m > 0 && finite ? 127.0f / m : 0.0f);
    __m512i sum = _mm512_setzero_si512(), lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (int k = 0; k < gs; k += 16) {
      __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xg + k), inv));
      v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
      sum = _mm512_add_epi32(sum, v);
      int8_t codes[16];
      _mm_storeu_si128((__m128i *)codes, _mm512_cvtepi32_epi8(v));
      for (int c = 0; c < 4; c++)
        memcpy(row + (g * gs + k) / 4 * 4 * LT_QI8_ROWS + c * 4 * LT_QI8_ROWS, codes + 4 * c, 4);
    }
    d[g] = finite ? m / 127.0f : NAN;
    xs[g] = d[g] * (float)_mm512_reduce_add_epi32(sum);
  }
}
