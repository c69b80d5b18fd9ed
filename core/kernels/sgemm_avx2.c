/* The dense sgemm's macro-kernel with AVX2: a 6 x 16 register tile,
 * 12 accumulators beside 2 b vectors and one broadcast in 16 registers. */
#include "kernels/simd_avx2.h"

#define LT_SGEMM_MACRO  lt__sgemm_macro_avx2
#define LT_SGEMM_SMALL  lt__sgemm_small_avx2
#define LT_SGEMM_PACK_A lt__sgemm_pack_a_avx2
#define LT_SGEMM_PACK_B lt__sgemm_pack_b_avx2
#define LT_SG_MR        6
#define LT_SG_NV        2
#include "kernels/sgemm_simd.h"
