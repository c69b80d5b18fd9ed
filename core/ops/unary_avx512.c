/* AVX-512 unary kernels. Compiled with -mavx512f/bw/vl/dq -mfma; called only
 * when the context's ISA allows. */
#include "kernels/simd_avx512.h"
#include "ops/unary_kernels.h"

#define LT_SIMD_FWD lt__unary_fwd_avx512
#define LT_SIMD_BWD lt__unary_bwd_avx512
#include "ops/unary_simd.h"
