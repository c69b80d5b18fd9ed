/* The packing of the dense sgemm (kernels/sgemm.h), as plain loops that
 * each ISA's file compiles with its own MR and NR as constants (so that the
 * compiler vectorises the copies). */
#ifndef LATTICE_KERNELS_SGEMM_PACK_H
#define LATTICE_KERNELS_SGEMM_PACK_H

#include <string.h>
#include "kernels/sgemm.h"

static inline int64_t sg_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* Rows [i0, i0 + mc) x columns [p0, p0 + kc) of alpha op(a) into MR-row
 * panels: panel q's column p is dst[q*MR*kc + p*MR ..+ MR). A short last
 * panel's missing rows are never read. */
static inline __attribute__((always_inline)) void sg_pack_a(const int mr, const lt__sgemm_args *g, int64_t i0,
                                                            int64_t mc, int64_t p0, int64_t kc, float *dst) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    int64_t rows = sg_min(mr, mc - ip);
    float *d = dst + ip * kc;
    if (g->ta) {
      for (int64_t p = 0; p < kc; p++) {
        const float *s = g->a + (p0 + p) * g->lda + i0 + ip;
        for (int64_t r = 0; r < rows; r++) d[p * mr + r] = g->alpha * s[r];
      }
    } else {
      for (int64_t r = 0; r < rows; r++) {
        const float *s = g->a + (i0 + ip + r) * g->lda + p0;
        for (int64_t p = 0; p < kc; p++) d[p * mr + r] = g->alpha * s[p];
      }
    }
  }
}

/* Rows [p0, p0 + kc) x columns [j0, j0 + nc) of op(b) into NR-column panels:
 * panel q's row p is dst[q*NR*kc + p*NR ..+ NR), a short panel zero-padded
 * (the tile reads whole vectors). */
static inline __attribute__((always_inline)) void sg_pack_b(const int nr, const lt__sgemm_args *g, int64_t p0,
                                                            int64_t kc, int64_t j0, int64_t nc, float *dst) {
  for (int64_t jp = 0; jp < nc; jp += nr) {
    int64_t cols = sg_min(nr, nc - jp);
    float *d = dst + jp * kc;
    if (cols < nr) memset(d, 0, (size_t)(kc * nr) * sizeof(float));
    if (g->tb) {
      for (int64_t j = 0; j < cols; j++) {
        const float *s = g->b + (j0 + jp + j) * g->ldb + p0;
        for (int64_t p = 0; p < kc; p++) d[p * nr + j] = s[p];
      }
    } else {
      for (int64_t p = 0; p < kc; p++)
        memcpy(d + p * nr, g->b + (p0 + p) * g->ldb + j0 + jp, (size_t)cols * sizeof(float));
    }
  }
}

#endif
