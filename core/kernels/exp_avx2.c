#include "kernels/exp.h"
#include "kernels/simd_avx2.h"

#define LT_EXP_SHIFT lt__exp_shift_avx2
#include "kernels/exp_simd.h"
