/* The one-row sgemm (kernels/sgemv.h) with AVX-512: 16 outputs per vector,
 * two groups of 16 rows interleaved when b is transposed. */
#include "kernels/simd_avx512.h"

#define LT_SGEMV lt__sgemv_avx512
#include "kernels/sgemv_simd.h"
