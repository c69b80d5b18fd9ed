/* The plain reference of the tile product (kernels/gemm_tile.h) and the
 * choice between its ISA variants. */
#include <math.h>
#include "kernels/gemm_tile.h"

/* c (m, n) [+]= a (m, k) @ b (k, n): each c[i][j] one fmaf chain over p. */
void lt__gemm_tile_ref(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, int a_trans, const float *b,
                       int64_t ldb, float *c, int64_t ldc, int accumulate) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float acc = accumulate ? c[i * ldc + j] : 0.0f;
      for (int64_t p = 0; p < k; p++) acc = fmaf(a_trans ? a[p * lda + i] : a[i * lda + p], b[p * ldb + j], acc);
      c[i * ldc + j] = acc;
    }
}

lt__gemm_tile_fn lt__gemm_tile_for(lt_isa isa) {
  if (isa >= LT_ISA_AVX512) return lt__gemm_tile_avx512;
  if (isa >= LT_ISA_AVX2) return lt__gemm_tile_avx2;
  return lt__gemm_tile_ref;
}

int lt__gemm_tile_width(lt_isa isa) { return isa >= LT_ISA_AVX512 ? 16 : isa >= LT_ISA_AVX2 ? 8 : 1; }
