/* The plain column sum and the dispatch between the ISA variants. */
#include "kernels/colsum.h"

void lt__colsum_f64_ref(double *acc, const float *x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) acc[c] += (double)x[r * cols + c];
}

void lt__colsum_f64(lt_isa isa, double *acc, const float *x, int64_t rows, int64_t cols) {
  if (isa >= LT_ISA_AVX512)
    lt__colsum_f64_avx512(acc, x, rows, cols);
  else if (isa >= LT_ISA_AVX2)
    lt__colsum_f64_avx2(acc, x, rows, cols);
  else
    lt__colsum_f64_ref(acc, x, rows, cols);
}
