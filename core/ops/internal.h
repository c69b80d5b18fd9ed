/* What the dense ops share: the tape, the parallel loop, the context, and the
 * helpers several op families call. */
#ifndef LATTICE_OPS_INTERNAL_H
#define LATTICE_OPS_INTERNAL_H

#include "autograd/tape.h"
#include "runtime/context.h"
#include "runtime/parallel.h"

/* Gradient reduced from a broadcast shape back to `ndim/shape` by summing (reduce.c). */
lt_status lt__sum_to_shape(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, int ndim, const int64_t *shape);

/* c (m, n) = op(a) @ op(b) + beta c (beta 0 or 1), all contiguous row-major in
 * dt (float32 or float64), op transposing when ta / tb; sizes fit in int
 * (callers check for float64). float32 through lattice's sgemm
 * (kernels/sgemm.h), float64 through OpenBLAS dgemm, under ctx's ISA and
 * thread count (gemm.c). */
void lt__gemm(lt_ctx *ctx, lt_dtype dt, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a, const void *b,
              double beta, void *c);
/* A linear layer's product: c (m, n) = x (m, k) @ w (n, k)^T + bias (n,
 * added to every row; NULL for none), as lt__gemm. float32: the bias is
 * where sgemm's chains start (no pass of its own over c); float64: c's rows
 * are set to it, then dgemm adds. */
void lt__gemm_bias(lt_ctx *ctx, lt_dtype dt, int64_t m, int64_t n, int64_t k, const void *x, const void *w,
                   const void *bias, void *c);

#endif
