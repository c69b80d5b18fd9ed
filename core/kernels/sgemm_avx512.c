/* The dense sgemm's macro-kernel with AVX-512: a 14 x 32 register tile,
 * 28 accumulators beside 2 b vectors and one broadcast in 32 registers. */
#include "kernels/simd_avx512.h"

#define LT_SGEMM_MACRO  lt__sgemm_macro_avx512
#define LT_SGEMM_SMALL  lt__sgemm_small_avx512
#define LT_SGEMM_PACK_A lt__sgemm_pack_a_avx512
#define LT_SGEMM_PACK_B lt__sgemm_pack_b_avx512
#define LT_SG_MR        14
#define LT_SG_NV        2
#include "kernels/sgemm_simd.h"
