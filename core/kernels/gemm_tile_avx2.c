/* The tile product with AVX2: 16 registers hold up to 6 x 2 (or 12 x 1)
 * accumulators beside the b vectors and one broadcast. */
#include "kernels/simd_avx2.h"

#define LT_GEMM_TILE lt__gemm_tile_avx2
#define LT_GT_NV_MAX 2
#define LT_GT_MR1    12
#define LT_GT_MR2    6
#include "kernels/gemm_tile_simd.h"
