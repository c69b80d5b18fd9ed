/* Sparse pooling: local pools over a kernel relation (the output support and
 * offsets of a convolution with the same kernel spec) and global pools over
 * the rows of each batch. Every float dtype: float16/bfloat16 accumulate in
 * float32, float64 in double. Differentiable in the features; results do not
 * depend on the thread count. */
#ifndef LATTICE_SPARSE_POOL_H
#define LATTICE_SPARSE_POOL_H

#include "lattice/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_sparse_pool_mode {
  LT_SPARSE_POOL_SUM,
  LT_SPARSE_POOL_AVG, /* the sum divided by the number of contributing rows */
  LT_SPARSE_POOL_MAX, /* per channel; the gradient goes to one row, the lowest among equal maxima */
  LT_SPARSE_POOL_MODES
} lt_sparse_pool_mode;

/* y (n_out, C) from x (n_in, C) over relation r: output row o pools the input
 * rows idx[o, k] >= 0 of its kernel offsets (none: a zero row). `op` names
 * the caller in messages. */
lt_status lt_sparse_pool(lt_ctx *ctx, lt_tensor **out, lt_sparse_pool_mode mode, lt_tensor *x, lt_relation *r,
                         const char *op);

/* y (batches, C) from x (N, C), the rows of map c (whose batch column gives
 * each row's batch, all below `batches`): the pool of each batch's rows. An
 * empty batch sums to 0 and averages to 0; max fails on it. */
lt_status lt_sparse_global_pool(lt_ctx *ctx, lt_tensor **out, lt_sparse_pool_mode mode, lt_tensor *x, lt_coords *c,
                                int64_t batches, const char *op);

#ifdef __cplusplus
}
#endif

#endif
