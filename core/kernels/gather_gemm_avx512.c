/* The gather-GEMM kernels for AVX-512: column blocks of up to 4 zmm (64
 * floats); register tiles of 6 rows x 4 vectors (24 accumulators, 4 weight
 * vectors, broadcasts folded into the FMAs' memory operands: 28 of 32
 * registers), 8 x 3, 12 x 2 and 12 x 1. */
#include "kernels/simd_avx512.h"

#define LT_GGEMM_ROWS lt__ggemm_rows_avx512
#define LT_GGEMM_WGRAD_OFFSET lt__ggemm_wgrad_offset_avx512
#define LT_GGEMM_NV_MAX 4
#define LT_GGEMM_MR1 12
#define LT_GGEMM_MR2 12
#define LT_GGEMM_MR3 8
#define LT_GGEMM_MR4 6
#include "kernels/gather_gemm_simd.h"
