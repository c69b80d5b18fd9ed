/* The voxel cell kernel with AVX2: 8 points (24 floats, three vectors) a
 * step. Lane l of vector k holds axis (8k + l) mod 3, so the origin, size
 * and reciprocal come as three repeating patterns. */
#include <immintrin.h>
#include "kernels/voxel_cells.h"

typedef struct pattern {
  __m256 origin[3], size[3], inv[3], div[3]; /* div: all-ones lanes whose axis divides */
  int any_div;
} pattern;

static pattern make_pattern(const lt_cell_grid *g) {
  pattern t;
  t.any_div = 0;
  for (int k = 0; k < 3; k++) {
    float o[8], s[8], v[8], m[8];
    for (int l = 0; l < 8; l++) {
      int a = (8 * k + l) % 3;
      o[l] = g->origin[a], s[l] = g->size[a], v[l] = g->inv[a];
      m[l] = g->inv[a] == 0.0f ? -1.0f : 0.0f; /* the sign bit is what blendv reads */
      t.any_div |= g->inv[a] == 0.0f;
    }
    t.origin[k] = _mm256_loadu_ps(o), t.size[k] = _mm256_loadu_ps(s), t.inv[k] = _mm256_loadu_ps(v);
    t.div[k] = _mm256_loadu_ps(m);
  }
  return t;
}

/* floor(u) of vector k of a step; *ok: a bit per lane whose cell is in range. */
static inline __m256 cell_of(const pattern *t, int k, __m256 x, int *ok) {
  __m256 d = _mm256_sub_ps(x, t->origin[k]);
  __m256 u = _mm256_mul_ps(d, t->inv[k]);
  if (t->any_div) u = _mm256_blendv_ps(u, _mm256_div_ps(d, t->size[k]), t->div[k]);
  __m256 f = _mm256_floor_ps(u);
  __m256 in = _mm256_and_ps(_mm256_cmp_ps(f, _mm256_set1_ps(-2147483648.0f), _CMP_GE_OQ),
                            _mm256_cmp_ps(f, _mm256_set1_ps(2147483648.0f), _CMP_LT_OQ));
  *ok = _mm256_movemask_ps(in);
  return f;
}

int64_t lt__voxel_cells_avx2(int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g) {
  pattern t = make_pattern(g);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 f[3];
    int ok[3];
    for (int k = 0; k < 3; k++) f[k] = cell_of(&t, k, _mm256_loadu_ps(p + i * 3 + 8 * k), &ok[k]);
    if ((ok[0] & ok[1] & ok[2]) != 0xff) return i + lt__voxel_cells_ref(cell + i * 3, p + i * 3, n - i, g);
    for (int k = 0; k < 3; k++) _mm256_storeu_si256((__m256i *)(cell + i * 3 + 8 * k), _mm256_cvttps_epi32(f[k]));
  }
  return i + lt__voxel_cells_ref(cell + i * 3, p + i * 3, n - i, g);
}
