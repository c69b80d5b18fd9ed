/* The one-row sgemm's driver (kernels/sgemv.h): the scaled copy of a, the
 * split over threads, and the portable _ref. */
#include <math.h>
#include "kernels/sgemv.h"
#include "runtime/context.h"
#include "runtime/parallel.h"

/* Products from SV_THREADED multiply-adds (4 MB of b) split their outputs
 * over the threads, as the blocked sgemm's do (SG_THREADED): in a decode
 * step that is the head alone. Splitting the FFN's 1536 x 384 products too
 * (from 2^18) made the step slower on this shared machine: each fork and
 * join waits for the other thread to be scheduled. Shares are whole
 * SV_UNIT outputs (every ISA's row groups). */
#define SV_THREADED  (1 << 20)
#define SV_UNIT      32
#define SV_MAX_PARTS 64

void lt__sgemv_ref(const lt__sgemv_args *v, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j++) {
    float acc = v->bias ? v->bias[j] : v->beta == 0 ? 0.0f : v->beta == 1 ? v->c[j] : v->beta * v->c[j];
    for (int64_t p = 0; p < v->k; p++) acc = fmaf(v->x[p], v->tb ? v->b[j * v->ldb + p] : v->b[p * v->ldb + j], acc);
    v->c[j] = acc;
  }
}

static lt__sgemv_fn kernel_for(lt_isa isa) {
  if (isa >= LT_ISA_AVX512) return lt__sgemv_avx512;
  if (isa >= LT_ISA_AVX2) return lt__sgemv_avx2;
  return lt__sgemv_ref;
}

/* The outputs [0, n) in at most `threads` shares of whole units. */
static int split(const lt__sgemv_args *v, int threads, int64_t *bounds) {
  int t = v->n * v->k >= SV_THREADED ? threads : 1;
  int64_t units = (v->n + SV_UNIT - 1) / SV_UNIT;
  if (t > units) t = (int)units;
  if (t > SV_MAX_PARTS) t = SV_MAX_PARTS;
  if (t < 1) t = 1;
  for (int q = 0; q <= t; q++) {
    int64_t j = units * q / t * SV_UNIT;
    bounds[q] = j < v->n ? j : v->n;
  }
  return t;
}

void lt__sgemv_with(lt_ctx *ctx, lt_isa isa, int threads, const lt__sgemm_args *g) {
  if (isa > lt_cpu_isa()) isa = lt_cpu_isa();
  lt__sgemv_args v = {g->tb, g->n, g->k, g->a, g->b, g->ldb, g->beta, g->c, g->bias};
  int64_t inc = g->ta ? g->lda : 1; /* a(0, p) = a[p * inc] */
  float *xs = NULL;
  size_t bytes = (size_t)g->k * sizeof(float);
  if (g->alpha != 1 || inc != 1) { /* the chain's first factor, alpha a(0, p), as the sgemm rounds it */
    if (!(xs = lt_ctx_alloc(ctx, bytes))) {
      lt__sgemm_ref(g); /* no memory for the copy: the same bits, unscaled */
      return;
    }
    for (int64_t p = 0; p < g->k; p++) xs[p] = g->alpha * g->a[p * inc];
    v.x = xs;
  }
  lt__sgemv_fn fn = kernel_for(isa);
  int64_t bounds[SV_MAX_PARTS + 1];
  int t = split(&v, threads, bounds);
  LT_PARALLEL_FOR(t, q, t, { fn(&v, bounds[q], bounds[q + 1]); });
  if (xs) lt_ctx_free(ctx, xs, bytes);
}
