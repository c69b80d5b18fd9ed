/* The one exp of lattice's kernels: y[i] = exp(x[i] - shift) for n floats,
 * v_exp of kernels/simd_math.h (<= 1 ulp, SLEEF's polynomial) run with the
 * ISA's widest vectors. Softmax, logsumexp and cross-entropy call it on rows
 * or on stack blocks of a few hundred elements. y may equal x. */
#ifndef LATTICE_KERNELS_EXP_H
#define LATTICE_KERNELS_EXP_H

#include <stdint.h>
#include "lattice/cpu.h"

void lt__exp_shift(lt_isa isa, float *y, const float *x, float shift, int64_t n);

/* One variant per ISA (kernels/exp.c, exp_avx2.c, exp_avx512.c), for the specs. */
void lt__exp_shift_scalar(float *y, const float *x, float shift, int64_t n);
void lt__exp_shift_avx2(float *y, const float *x, float shift, int64_t n);
void lt__exp_shift_avx512(float *y, const float *x, float shift, int64_t n);

#endif
