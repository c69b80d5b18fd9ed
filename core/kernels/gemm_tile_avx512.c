/* The tile product with AVX-512: 32 registers hold up to 6 x 4 (or 12 x 2)
 * accumulators beside the b vectors and one broadcast. */
#include "kernels/simd_avx512.h"

#define LT_GEMM_TILE lt__gemm_tile_avx512
#define LT_GT_NV_MAX 4
#define LT_GT_MR1    14
#define LT_GT_MR2    12
#define LT_GT_MR3    8
#define LT_GT_MR4    6
#include "kernels/gemm_tile_simd.h"
