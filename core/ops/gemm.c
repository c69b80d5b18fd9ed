/* lt__gemm: the contiguous row-major GEMM the layers call (linear,
 * linear_act, quantized matmul), and lt__gemm_bias, a linear layer's with
 * its bias. float32 runs lattice's own sgemm (kernels/sgemm.h) with the
 * state's ISA and thread count; float64 goes to OpenBLAS dgemm under the
 * state's thread count (docs/runtime.md). */
#include <cblas.h>
#include <string.h>
#include "kernels/sgemm.h"
#include "ops/internal.h"
#include "runtime/blas_call.h"

void lt__gemm(lt_ctx *ctx, lt_dtype dt, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a, const void *b,
              double beta, void *c) {
  if (m == 0 || n == 0) return;
  int64_t lda = ta ? m : k, ldb = tb ? k : n;
  if (dt != LT_FLOAT64) {
    lt__sgemm_args g = {ta, tb, m, n, k, 1.0f, a, lda, b, ldb, (float)beta, c, n, NULL};
    lt__sgemm(ctx, &g);
    return;
  }
  if (k == 0) { /* BLAS leaves c untouched when k is 0: c = beta c, and beta is 0 or 1 here */
    if (beta == 0) memset(c, 0, (size_t)(m * n) * sizeof(double));
    return;
  }
  lt__blas_begin(ctx);
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              1.0, a, (int)lda, b, (int)ldb, beta, c, (int)n);
  lt__blas_end();
}

void lt__gemm_bias(lt_ctx *ctx, lt_dtype dt, int64_t m, int64_t n, int64_t k, const void *x, const void *w,
                   const void *bias, void *c) {
  if (m == 0 || n == 0) return;
  if (dt != LT_FLOAT64) {
    lt__sgemm_args g = {0, 1, m, n, k, 1.0f, x, k, w, k, 0.0f, c, n, bias};
    lt__sgemm(ctx, &g);
    return;
  }
  for (int64_t r = 0; bias && r < m; r++) memcpy((double *)c + r * n, bias, (size_t)n * sizeof(double));
  lt__gemm(ctx, dt, 0, 1, m, n, k, x, w, bias ? 1.0 : 0.0, c);
}
