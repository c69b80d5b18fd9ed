/* The plain voxel cell kernel and the dispatch between the ISA variants. */
#include <math.h>
#include "kernels/voxel_cells.h"

int64_t lt__voxel_cells_ref(int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g) {
  for (int64_t i = 0; i < n; i++) {
    for (int a = 0; a < 3; a++) {
      float d = p[i * 3 + a] - g->origin[a];
      float f = floorf(g->inv[a] != 0.0f ? d * g->inv[a] : d / g->size[a]);
      if (!(f >= -2147483648.0f && f < 2147483648.0f)) return i; /* NaN fails too */
    }
    for (int a = 0; a < 3; a++) {
      float d = p[i * 3 + a] - g->origin[a];
      cell[i * 3 + a] = (int32_t)floorf(g->inv[a] != 0.0f ? d * g->inv[a] : d / g->size[a]);
    }
  }
  return n;
}

int64_t lt__voxel_cells(lt_isa isa, int32_t *cell, const float *p, int64_t n, const lt_cell_grid *g) {
  if (isa >= LT_ISA_AVX512) return lt__voxel_cells_avx512(cell, p, n, g);
  if (isa >= LT_ISA_AVX2) return lt__voxel_cells_avx2(cell, p, n, g);
  return lt__voxel_cells_ref(cell, p, n, g);
}
