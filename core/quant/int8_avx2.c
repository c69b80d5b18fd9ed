/* The int8-activation product (quant/internal.h) with AVX2, for CPUs without
 * VNNI: vpmaddubsw multiplies unsigned codes by int8 values and adds pairs
 * into int16, which is exact only while a pair stays below 2^15, so codes go
 * in as 4-bit halves (2 * 15 * 127 = 3810; two such pairs added still fit);
 * vpmaddwd then adds int16 pairs into the int32 sums (an 8-bit code's high
 * half weighted by 16 there). The sums are the _ref kernel's integers, and
 * the float epilogue is its steps in its order: the same bits.
 * A pack vector of 16 outputs is two halves of 8 here, done one after the
 * other so that 4 rows of x fit AVX2's 16 registers. */
#include <math.h>
#include "quant/internal.h"
#include <immintrin.h>

static inline __m256i quad(const int8_t *x) {
  int32_t v;
  memcpy(&v, x, 4);
  return _mm256_set1_epi32(v);
}

/* mr (<= 4, constant) rows from i0 against outputs [8h, 8h + 8) of a tile. */
static inline __attribute__((always_inline)) void half_rows(int bits, int64_t gs, int mr, const uint8_t *p, int h,
                                                            const lt__qi8x *x, int64_t i0, float *y, int64_t ldy,
                                                            int valid) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
  const int64_t groups = x->groups;
  const int8_t *xq = x->q + i0 / LT_QI8_ROWS * LT_QI8_ROWS * x->in + i0 % LT_QI8_ROWS * 4;
  const float *d = x->d + i0 * groups, *xs = x->xs + i0 * groups;
  __m256 acc[4];
#pragma GCC unroll 4
  for (int i = 0; i < mr; i++) acc[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; g++) {
    __m256i sum[4];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) sum[i] = _mm256_setzero_si256();
    const int8_t *xg = xq + g * gs * LT_QI8_ROWS;
    if (bits == 4) {
      for (int64_t j = 0; j < gs / 8; j++) {
        __m256i v = _mm256_load_si256((const __m256i *)(p + 64 * j + 32 * h));
        __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
          __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, quad(xg + 64 * j + 4 * i)),
                                       _mm256_maddubs_epi16(hi, quad(xg + 64 * j + 32 + 4 * i)));
          sum[i] = _mm256_add_epi32(sum[i], _mm256_madd_epi16(t, ones));
        }
      }
    } else {
      for (int64_t j = 0; j < gs / 4; j++) {
        __m256i v = _mm256_load_si256((const __m256i *)(p + 64 * j + 32 * h));
        __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
          __m256i xv = quad(xg + 32 * j + 4 * i);
          __m256i t = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, xv), ones),
                                       _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xv), sixteen));
          sum[i] = _mm256_add_epi32(sum[i], t);
        }
      }
    }
    const float *sb = (const float *)(p + 16 * gs * bits / 8);
    __m256 s = _mm256_load_ps(sb + 8 * h), b = _mm256_load_ps(sb + LT_QI8_TILE + 8 * h);
    p += lt__qi8_block(bits, (int)gs);
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
      __m256 sd = _mm256_mul_ps(s, _mm256_set1_ps(d[i * groups + g]));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[i]), sd, acc[i]);
      acc[i] = _mm256_fmadd_ps(b, _mm256_set1_ps(xs[i * groups + g]), acc[i]);
    }
  }
  __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid - 8 * h), lane);
#pragma GCC unroll 4
  for (int i = 0; i < mr; i++) _mm256_maskstore_ps(y + i * ldy + 8 * h, keep, acc[i]);
}

/* Every row of x against one tile: each half, 4 rows at a time. */
static inline __attribute__((always_inline)) void tile(int bits, int64_t gs, const uint8_t *p, const lt__qi8x *x,
                                                       float *y, int64_t ldy, int valid) {
  for (int h = 0; h < 2 && 8 * h < valid; h++) {
    int64_t i = 0;
    for (; i + 4 <= x->m; i += 4) half_rows(bits, gs, 4, p, h, x, i, y + i * ldy, ldy, valid);
    if (x->m - i == 3) half_rows(bits, gs, 3, p, h, x, i, y + i * ldy, ldy, valid);
    if (x->m - i == 2) half_rows(bits, gs, 2, p, h, x, i, y + i * ldy, ldy, valid);
    if (x->m - i == 1) half_rows(bits, gs, 1, p, h, x, i, y + i * ldy, ldy, valid);
  }
}

static inline __attribute__((always_inline)) void tiles_typed(int bits, int64_t gs, const lt__qmat *q,
                                                              const uint8_t *pack, const lt__qi8x *x, float *y,
                                                              int64_t t0, int64_t t1) {
  int64_t block = q->groups * lt__qi8_block(bits, (int)gs);
  for (int64_t t = t0; t < t1; t++) {
    int64_t o = t * LT_QI8_TILE, left = q->rows - o;
    tile(bits, gs, pack + t * block, x, y + o, q->rows, left < LT_QI8_TILE ? (int)left : LT_QI8_TILE);
  }
}

void lt__qi8_tiles_avx2(const lt__qmat *q, const uint8_t *pack, const lt__qi8x *x, float *y, int64_t t0, int64_t t1) {
  switch (q->bits * 1000 + q->group_size) {
  case 4032: tiles_typed(4, 32, q, pack, x, y, t0, t1); break;
  case 4064: tiles_typed(4, 64, q, pack, x, y, t0, t1); break;
  case 4128: tiles_typed(4, 128, q, pack, x, y, t0, t1); break;
  case 8032: tiles_typed(8, 32, q, pack, x, y, t0, t1); break;
  case 8064: tiles_typed(8, 64, q, pack, x, y, t0, t1); break;
  default: tiles_typed(8, 128, q, pack, x, y, t0, t1); break;
  }
}

/* lt__qi8_quantize_row 8 values at a time, as int8_avx512.c's quantizer: the
 * same operations, so the same codes, steps and sums. */
void lt__qi8_quantize_row_avx2(const float *x, int64_t in, int gs, int64_t i, int8_t *q, float *d, float *xs) {
  const __m256 inf = _mm256_set1_ps(INFINITY), sign = _mm256_set1_ps(-0.0f);
  int8_t *row = q + lt__qi8x_index(in, i, 0);
  for (int64_t g = 0; g < in / gs; g++) {
    const float *xg = x + g * gs;
    __m256 amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int k = 0; k < gs; k += 8) {
      __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(xg + k));
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ)); /* an infinity or NaN */
      amax = _mm256_max_ps(amax, a);
    }
    float lanes[8], m = 0;
    _mm256_storeu_ps(lanes, amax);
    for (int l = 0; l < 8; l++) m = lanes[l] > m ? lanes[l] : m;
    int finite = _mm256_movemask_ps(bad) == 0;
    __m256 inv = _mm256_set1_ps(m > 0 && finite ? 127.0f / m : 0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    int32_t sum = 0;
    for (int k = 0; k < gs; k += 8) {
      __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + k), inv));
      int32_t c[8];
      _mm256_storeu_si256((__m256i *)c, _mm256_min_epi32(_mm256_max_epi32(v, lo), hi));
      for (int l = 0; l < 8; l++) {
        int64_t kk = g * gs + k + l;
        row[kk / 4 * 4 * LT_QI8_ROWS + kk % 4] = (int8_t)c[l];
        sum += c[l];
      }
    }
    d[g] = finite ? m / 127.0f : NAN;
    xs[g] = d[g] * (float)sum;
  }
}
