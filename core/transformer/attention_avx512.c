/* The attention kernels with AVX-512 (16 lanes): forward tiles of 32 queries,
 * backward tiles of 64 keys. */
#include "kernels/simd_avx512.h"

/* dst[c*ldd + r] = src[r*lds + c] * (ds ? ds[c] : 1) for a 16 x 16 block: the
 * classic transpose in registers (two rounds of unpacks within 128-bit lanes,
 * then the lanes themselves), 64 shuffles for 256 elements. */
static inline void att_transpose_block(const float *src, int64_t lds, float *dst, int64_t ldd, const float *ds) {
  __m512 r[16], u[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 16; i += 2) {
    u[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    u[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) { /* r[i + c], lane L: column 4L + c of rows i .. i + 3 */
    __m512d a = _mm512_castps_pd(u[i]), b = _mm512_castps_pd(u[i + 1]);
    __m512d c = _mm512_castps_pd(u[i + 2]), d = _mm512_castps_pd(u[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int c = 0; c < 4; c++) { /* the 4 x 4 transpose of 128-bit lanes */
    __m512 x0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), x1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
    __m512 x2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44), x3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
    u[c] = _mm512_shuffle_f32x4(x0, x2, 0x88), u[4 + c] = _mm512_shuffle_f32x4(x0, x2, 0xdd);
    u[8 + c] = _mm512_shuffle_f32x4(x1, x3, 0x88), u[12 + c] = _mm512_shuffle_f32x4(x1, x3, 0xdd);
  }
  for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, ds ? _mm512_mul_ps(u[i], _mm512_set1_ps(ds[i])) : u[i]);
}

/* out[i] = the sum of the 16 floats of row i of src (16 x 16, rows lds
 * apart): a tree of adds over shuffles, pairs of rows within 128-bit lanes
 * first, then across the lanes; 30 shuffles and 15 adds for 16 sums. */
static inline void att_row_sums(const float *src, int64_t lds, float *out) {
  __m512 r[16], s1[8], s2[4];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i++) /* lane L: (a0+a2, b0+b2, a1+a3, b1+b3) of rows 2i, 2i+1 */
    s1[i] = _mm512_add_ps(_mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]), _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]));
  for (int i = 0; i < 4; i++) { /* lane L: rows 4i .. 4i+3, each summed over lane L */
    __m512d a = _mm512_castps_pd(s1[2 * i]), b = _mm512_castps_pd(s1[2 * i + 1]);
    s2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  __m512 y01 = _mm512_add_ps(_mm512_shuffle_f32x4(s2[0], s2[1], 0x44), _mm512_shuffle_f32x4(s2[0], s2[1], 0xee));
  __m512 y23 = _mm512_add_ps(_mm512_shuffle_f32x4(s2[2], s2[3], 0x44), _mm512_shuffle_f32x4(s2[2], s2[3], 0xee));
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_shuffle_f32x4(y01, y23, 0x88), _mm512_shuffle_f32x4(y01, y23, 0xdd)));
}

#define LT_ATT_KERNELS lt__attn_avx512
#define LT_ATT_ISA     LT_ISA_AVX512
#define LT_ATT_GEMM    lt__gemm_tile_avx512
#include "transformer/attention_simd.h"
