/* The one-row sgemm (kernels/sgemv.h) with AVX2: 8 outputs per vector, two
 * groups of 8 rows interleaved when b is transposed. */
#include "kernels/simd_avx2.h"

#define LT_SGEMV lt__sgemv_avx2
#include "kernels/sgemv_simd.h"
