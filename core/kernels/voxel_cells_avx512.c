/* The voxel cell kernel with AVX-512: 16 points (48 floats, three vectors)
 * a step. Lane l of vector k holds axis (16k + l) mod 3, so the origin, size
 * and reciprocal come as three repeating patterns. */
#include <immintrin.h>
#include "kernels/voxel_cells.h"

typedef struct pattern {
  __m512 origin[3], size[3], inv[3];
  __mmask16 div[3]; /* lanes whose axis divides */
} pattern;

static pattern make_pattern(const lt_cell_grid *g) {
  pattern t;
  for (int k = 0; k < 3; k++) {
    float o[16], s[16], v[16];
    unsigned div = 0;
    for (int l = 0; l < 16; l++) {
      int a = (16 * k + l) % 3;
      o[l] = g->origin[a], s[l] = g->size[a], v[l] = g->inv[a];
      if (g->inv[a] == 0.0f) div |= 1u << l;
    }
    t.origin[k] = _mm512_loadu_ps(o), t.size[k] = _mm512_loadu_ps(s), t.inv[k] = _mm512_loadu_ps(v);
    t.div[k] = (__mmask16)div;
  }
  return t;
}

/* floor(u) of vector k of a step; *ok: the lanes whose cell is in range. */
static inline __m512 cell_of(const pattern *t, int k, __m512 x, __mmask16 *ok) {
  __m512 d = _mm512_sub_ps(x, t->origin[k]);
  __m512 u = _mm512_mul_ps(d, t->inv[k]);
  if (t->div[k]) u = _mm512_mask_div_ps(u, t->div[k], d, t->size[k]);
  __m512 f = _mm512_roundscale_ps(u, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  *ok = _mm512_cmp_ps_mask(f, _mm512_set1_ps(-2147483648.0f), _CMP_GE_OQ) &
        _mm512_cmp_ps_mask(f, _mm512_set1_ps(2147483648.0f), _CMP_LT_OQ);
  return f;
}

int64_t lt__voxel_cells_avx512(int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g) {
  pattern t = make_pattern(g);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 f[3];
    __mmask16 ok[3];
    for (int k = 0; k < 3; k++) f[k] = cell_of(&t, k, _mm512_loadu_ps(p + i * 3 + 16 * k), &ok[k]);
    if ((ok[0] & ok[1] & ok[2]) != 0xffff) return i + lt__voxel_cells_ref(cell + i * 3, p + i * 3, n - i, g);
    for (int k = 0; k < 3; k++) _mm512_storeu_si512(cell + i * 3 + 16 * k, _mm512_cvttps_epi32(f[k]));
  }
  return i + lt__voxel_cells_ref(cell + i * 3, p + i * 3, n - i, g);
}
