/* Column sums in double of float32 rows (sparse/global_pool.c):
 *   acc[c] += x[r * cols + c] for r = 0 .. rows-1, c = 0 .. cols-1,
 * each column one chain of double additions in row order, so every variant
 * gives the same bits as the plain loop (the vectors run across columns). */
#ifndef LATTICE_KERNELS_COLSUM_H
#define LATTICE_KERNELS_COLSUM_H

#include <stdint.h>
#include "lattice/cpu.h"

void lt__colsum_f64(lt_isa isa, double *acc, const float *x, int64_t rows, int64_t cols);

/* One variant per ISA (kernels/colsum.c, colsum_avx2.c, colsum_avx512.c), for the specs. */
void lt__colsum_f64_ref(double *acc, const float *x, int64_t rows, int64_t cols);
void lt__colsum_f64_avx2(double *acc, const float *x, int64_t rows, int64_t cols);
void lt__colsum_f64_avx512(double *acc, const float *x, int64_t rows, int64_t cols);

/* The row tile the vector variants sweep per block of columns: a tile of a
 * few hundred rows stays in L2 while each block of columns reads it. */
#define LT_COLSUM_TILE_BYTES ((int64_t)128 << 10)

#endif
