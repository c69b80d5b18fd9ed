/* The column sum with AVX2: blocks of 32 columns held in 8 double
 * accumulators while a tile of rows streams through them, then blocks of 4,
 * then single columns; float32 widened to double exactly (vcvtps2pd). */
#include <immintrin.h>
#include "kernels/colsum.h"

/* Columns [c0, c0 + 4 * V) over rows [r0, r1). */
#define BLOCK(V)                                                                                          \
  do {                                                                                                    \
    __m256d a[V];                                                                                         \
    for (int v = 0; v < V; v++) a[v] = _mm256_loadu_pd(acc + c0 + 4 * v);                                 \
    for (int64_t r = r0; r < r1; r++) {                                                                   \
      const float *row = x + r * cols + c0;                                                               \
      for (int v = 0; v < V; v++) a[v] = _mm256_add_pd(a[v], _mm256_cvtps_pd(_mm_loadu_ps(row + 4 * v))); \
    }                                                                                                     \
    for (int v = 0; v < V; v++) _mm256_storeu_pd(acc + c0 + 4 * v, a[v]);                                 \
  } while (0)

void lt__colsum_f64_avx2(double *acc, const float *x, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  int64_t tile = LT_COLSUM_TILE_BYTES / (cols * 4);
  if (tile < 1) tile = 1;
  for (int64_t r0 = 0; r0 < rows; r0 += tile) {
    int64_t r1 = r0 + tile < rows ? r0 + tile : rows, c0 = 0;
    for (; c0 + 32 <= cols; c0 += 32) BLOCK(8);
    for (; c0 + 4 <= cols; c0 += 4) BLOCK(1);
    for (int64_t r = r0; r < r1 && c0 < cols; r++)
      for (int64_t c = c0; c < cols; c++) acc[c] += (double)x[r * cols + c];
  }
}
