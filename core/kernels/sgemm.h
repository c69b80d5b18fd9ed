/* lattice's own dense float32 GEMM, row-major, BLAS semantics:
 *
 *   c (m, n) = alpha op(a) op(b) + beta c
 *
 * op(a) (m, k) is a(i, p) = a[i*lda + p], or a[p*lda + i] with ta; op(b)
 * (k, n) is b[p*ldb + j], or b[j*ldb + p] with tb; c's rows are ldc apart.
 * beta 0 ignores what c held (NaN included), as BLAS does.
 *
 * BLIS-style (sgemm.c): b is packed into kc x NR column panels (an L3
 * block of NC columns), a into MR x kc row panels (an L2 block of MC rows,
 * scaled by alpha on the way), and an MR x NR register tile (gemm_tile's
 * microkernel, gemm_tile_micro.h) runs over each pair of panels. Two
 * threads take disjoint row (or column) ranges of c; no thread ever splits
 * the reduction.
 *
 * With a bias (n floats; beta must then be 0) every row of c starts as it:
 *
 *   c (m, n) = alpha op(a) op(b) + bias     (bias added to each row)
 *
 * which is a linear layer's forward without a pass of its own over c.
 *
 * Every c[i][j] is one fused multiply-add chain over p ascending,
 * fmaf(alpha * a(i, p), b(p, j), acc), from acc = 0 (beta 0), c (beta 1),
 * beta * c or bias[j]: the bits do not depend on the ISA, the thread count
 * or the blocking, and equal lt__sgemm_ref's (a bias gives the bits of c
 * filled with it and beta 1). */
#ifndef LATTICE_KERNELS_SGEMM_H
#define LATTICE_KERNELS_SGEMM_H

#include <stdint.h>
#include "lattice/cpu.h"
#include "lattice/ctx.h"

typedef struct lt__sgemm_args {
  int ta, tb;
  int64_t m, n, k;
  float alpha;
  const float *a;
  int64_t lda;
  const float *b;
  int64_t ldb;
  float beta;
  float *c;
  int64_t ldc;
  const float *bias; /* NULL, or n floats (with beta 0) */
} lt__sgemm_args;

/* With ctx's ISA and thread count; scratch from ctx's allocator (when it
 * cannot be had, the product runs unpacked as lt__sgemm_ref: same bits). */
void lt__sgemm(lt_ctx *ctx, const lt__sgemm_args *g);
/* count products of one shape (m, n, k, ta, tb alike; the pointers and
 * scalars may differ), spread over ctx's threads one whole product each:
 * one fork and join for a batch of small products. Same bits as lt__sgemm. */
void lt__sgemm_batch(lt_ctx *ctx, const lt__sgemm_args *gs, int64_t count);
/* With a given ISA (capped at the CPU's) and thread count: the spec hook. */
void lt__sgemm_with(lt_ctx *ctx, lt_isa isa, int threads, const lt__sgemm_args *g);
/* The plain reference: triple loop of fmaf. */
void lt__sgemm_ref(const lt__sgemm_args *g);

/* ---- between the driver (sgemm.c) and the ISA variants ---- */

/* c (mc, nc) [+]= the packed blocks ap (mc rows in MR-row panels of kc) @
 * bp (nc columns in NR-column panels of kc): accumulate 0 overwriting, 1
 * adding; with bias (nc floats, or NULL) each row of c starts as it. */
typedef void (*lt__sgemm_macro_fn)(int64_t mc, int64_t nc, int64_t kc, const float *ap, const float *bp, float *c,
                                   int64_t ldc, int accumulate, const float *bias);
/* The whole product unpacked, for tiny sizes (fmaf loops; beta applied). */
typedef void (*lt__sgemm_small_fn)(const lt__sgemm_args *g);

/* Rows [i0, i0 + mc) x columns [p0, p0 + kc) of alpha op(a) into MR-row
 * panels; rows [p0, p0 + kc) x columns [j0, j0 + nc) of op(b) into NR-column
 * panels (sgemm_pack.h has the layouts). */
typedef void (*lt__sgemm_pack_a_fn)(const lt__sgemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                                    float *dst);
typedef void (*lt__sgemm_pack_b_fn)(const lt__sgemm_args *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                                    float *dst);

typedef struct lt__sgemm_kernel {
  int mr, nr;
  lt__sgemm_macro_fn macro;
  lt__sgemm_small_fn small;
  lt__sgemm_pack_a_fn pack_a;
  lt__sgemm_pack_b_fn pack_b;
} lt__sgemm_kernel;

void lt__sgemm_macro_avx2(int64_t mc, int64_t nc, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                          int accumulate, const float *bias);
void lt__sgemm_macro_avx512(int64_t mc, int64_t nc, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                            int accumulate, const float *bias);
void lt__sgemm_small_avx2(const lt__sgemm_args *g);
void lt__sgemm_small_avx512(const lt__sgemm_args *g);
void lt__sgemm_pack_a_avx2(const lt__sgemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst);
void lt__sgemm_pack_a_avx512(const lt__sgemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst);
void lt__sgemm_pack_b_avx2(const lt__sgemm_args *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *dst);
void lt__sgemm_pack_b_avx512(const lt__sgemm_args *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *dst);

#endif
