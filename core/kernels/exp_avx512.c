#include "kernels/exp.h"
#include "kernels/simd_avx512.h"

#define LT_EXP_SHIFT lt__exp_shift_avx512
#include "kernels/exp_simd.h"
