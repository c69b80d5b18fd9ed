/* AVX2 + FMA unary kernels. Compiled with -mavx2 -mfma; called only when the
 * context's ISA allows. */
#include "kernels/simd_avx2.h"
#include "ops/unary_kernels.h"

#define LT_SIMD_FWD lt__unary_fwd_avx2
#define LT_SIMD_BWD lt__unary_bwd_avx2
#include "ops/unary_simd.h"
