/* The one-row case of the dense sgemm (kernels/sgemm.h), a row vector times
 * a matrix:
 *
 *   c (1, n) = alpha a (1, k) op(b) + beta c
 *
 * which is what a linear layer does for one token (a decode step: b is the
 * weight (n, k), given transposed). Packing b, as the blocked sgemm does,
 * would copy the whole weight to read it once; here each thread streams its
 * share of b's rows (or columns) straight from memory, every element once.
 *
 * The bits are the sgemm's: each c[j] is one fused multiply-add chain over
 * p ascending, fmaf(alpha a(p), b(p, j), acc) from acc = 0 (beta 0), c
 * (beta 1), beta c or bias[j]. The vector lanes hold LT_W outputs, never LT_W terms
 * of one sum:
 *   b given transposed (tb, a row per output): LT_W rows are read LT_W
 *     floats at a time and transposed in registers (vtranspose), so that
 *     vector q holds b(p + q, j .. j + LT_W) and the lanes' chains advance
 *     by one p per fused multiply-add;
 *   b as it is (a row per p): the LT_W outputs' b(p, j ..) are one load.
 * The threads take disjoint ranges of outputs, none splits a chain. */
#ifndef LATTICE_KERNELS_SGEMV_H
#define LATTICE_KERNELS_SGEMV_H

#include "kernels/sgemm.h"

/* What a kernel reads: x = alpha a(0, p) as k contiguous floats (already
 * scaled, so the product of the chain is fmaf(x[p], b(p, j), acc) as in the
 * sgemm), b with tb and ldb as sgemm's, c's n outputs contiguous, beta and
 * bias as sgemm's. */
typedef struct lt__sgemv_args {
  int tb;
  int64_t n, k;
  const float *x;
  const float *b;
  int64_t ldb;
  float beta;
  float *c;
  const float *bias;
} lt__sgemv_args;

/* c[j] for j in [j0, j1). */
typedef void (*lt__sgemv_fn)(const lt__sgemv_args *v, int64_t j0, int64_t j1);

/* g->m == 1 and g->k > 0: the product on `threads` threads with `isa`
 * (capped at the CPU's); a scratch copy of alpha a from ctx when alpha is
 * not 1 or a is strided. Same bits as lt__sgemm_ref. */
void lt__sgemv_with(lt_ctx *ctx, lt_isa isa, int threads, const lt__sgemm_args *g);

/* The plain reference: one fmaf loop per output. */
void lt__sgemv_ref(const lt__sgemv_args *v, int64_t j0, int64_t j1);
void lt__sgemv_avx2(const lt__sgemv_args *v, int64_t j0, int64_t j1);
void lt__sgemv_avx512(const lt__sgemv_args *v, int64_t j0, int64_t j1);

#endif
