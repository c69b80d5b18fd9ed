/* The dense sgemm as plain loops (kernels/sgemm.h): each c[i][j] one fmaf
 * chain over p. sgemm.c compiles it as the portable _ref; the ISA files
 * compile it with FMA enabled (fmaf becomes one instruction) as the path
 * for products too small to pack. Same bits everywhere. */
#include <math.h>
#include "kernels/sgemm.h"

static inline void sgemm_plain(const lt__sgemm_args *g) {
  for (int64_t i = 0; i < g->m; i++) {
    float *ci = g->c + i * g->ldc;
    for (int64_t j = 0; j < g->n; j++) {
      float acc = g->bias ? g->bias[j] : g->beta == 0 ? 0.0f : g->beta == 1 ? ci[j] : g->beta * ci[j];
      for (int64_t p = 0; p < g->k; p++) {
        float a = g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
        float b = g->tb ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j];
        acc = fmaf(g->alpha * a, b, acc);
      }
      ci[j] = acc;
    }
  }
}
