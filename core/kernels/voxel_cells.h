/* The lattice cells of points (sparse/quantize.c): for n points (x, y, z),
 *   cell[3i + a] = floor((p[3i + a] - origin[a]) / size[a]) as int32,
 * each step a float32 operation; the quotient is a product by inv[a] where
 * inv[a] != 0 (size[a] a power of two, inv[a] = 1 / size[a] exactly: the same
 * value), else a division. Every variant gives the same bits (subtraction,
 * product, quotient and floor are IEEE operations). Returns the first point
 * whose cell is not finite or lies outside int32 (its cells and later ones
 * unwritten), or n. */
#ifndef LATTICE_KERNELS_VOXEL_CELLS_H
#define LATTICE_KERNELS_VOXEL_CELLS_H

#include <stdint.h>
#include "lattice/cpu.h"

typedef struct lt_cell_grid {
  float origin[3], size[3], inv[3];
} lt_cell_grid;

int64_t lt__voxel_cells(lt_isa isa, int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g);

/* One variant per ISA (kernels/voxel_cells.c, voxel_cells_avx2.c, voxel_cells_avx512.c), for the specs. */
int64_t lt__voxel_cells_ref(int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g);
int64_t lt__voxel_cells_avx2(int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g);
int64_t lt__voxel_cells_avx512(int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g);

#endif
