/* lt__gemm: the contiguous row-major GEMM the layers call (linear,
 * linear_act), through OpenBLAS under the state's thread count. */
#include <cblas.h>
#include <string.h>
#include "ops/internal.h"
#include "runtime/blas_call.h"

void lt__gemm(const lt_ctx *ctx, lt_dtype dt, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a,
              const void *b, double beta, void *c) {
  if (m == 0 || n == 0) return;
  if (k == 0) { /* BLAS leaves c untouched when k is 0: c = beta c, and beta is 0 or 1 here */
    if (beta == 0) memset(c, 0, (size_t)(m * n) * lt_dtype_info(dt)->size);
    return;
  }
  int lda = (int)(ta ? m : k), ldb = (int)(tb ? k : n);
  enum CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
  lt__blas_begin(ctx);
  if (dt == LT_FLOAT64)
    cblas_dgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)k, 1.0, a, lda, b, ldb, beta, c, (int)n);
  else
    cblas_sgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)k, 1.0f, a, lda, b, ldb, (float)beta, c, (int)n);
  lt__blas_end();
}
