/* The portable exp kernel (one lane, vectorised by the compiler) and the
 * dispatch between the ISA variants. */
#include "kernels/exp.h"
#include "kernels/simd_scalar.h"

#define LT_EXP_SHIFT lt__exp_shift_scalar
#include "kernels/exp_simd.h"

void lt__exp_shift(lt_isa isa, float *y, const float *x, float shift, int64_t n) {
  if (isa >= LT_ISA_AVX512)
    lt__exp_shift_avx512(y, x, shift, n);
  else if (isa >= LT_ISA_AVX2)
    lt__exp_shift_avx2(y, x, shift, n);
  else
    lt__exp_shift_scalar(y, x, shift, n);
}
