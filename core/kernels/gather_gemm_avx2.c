/* The gather-GEMM kernels for AVX2 + FMA: column blocks of up to 2 ymm (16
 * floats); register tiles of 6 rows x 2 vectors (12 accumulators, 2 weight
 * vectors and a broadcast: 15 of 16 registers) and 10 x 1 (a row pointer per
 * row: 10 keep the loop within the general registers). */
#include "kernels/simd_avx2.h"

#define LT_GGEMM_ROWS          lt__ggemm_rows_avx2
#define LT_GGEMM_WGRAD_OFFSETS lt__ggemm_wgrad_offsets_avx2
#define LT_GGEMM_PRESENT       lt__ggemm_present
#define LT_GGEMM_LIST          lt__ggemm_list
#define LT_GGEMM_NV_MAX        2
#define LT_GGEMM_MR1           10
#define LT_GGEMM_MR2           6
#include "kernels/gather_gemm_simd.h"
