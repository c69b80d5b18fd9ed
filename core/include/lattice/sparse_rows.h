/* Row operations on sparse tensors: the subsets of a coordinate map that
 * pruning, cropping and top-k selection keep. Rows are 0-based indices into
 * the map; selections keep the order stated for each. */
#ifndef LATTICE_SPARSE_ROWS_H
#define LATTICE_SPARSE_ROWS_H

#include "lattice/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The map of c's rows listed in `rows` (an integer (M) tensor, each in
 * [0, N), none twice), in that order, at c's tensor stride; interned. */
lt_status lt_sparse_select(lt_ctx *ctx, lt_coords **out, lt_coords *c, lt_tensor *rows, const char *op);

/* rows (M) int32: the positions where `mask` (a bool (n) tensor) is true, in
 * increasing order. */
lt_status lt_sparse_mask_rows(lt_ctx *ctx, lt_tensor **rows, lt_tensor *mask, int64_t n, const char *op);

/* rows (M) int32: the rows of c whose x, y, z lie in [lo[a], hi[a]] on every
 * axis (lattice indices, the batch is not filtered), in increasing order. */
lt_status lt_sparse_crop_rows(lt_ctx *ctx, lt_tensor **rows, lt_coords *c, const int32_t *lo, const int32_t *hi,
                              const char *op);

/* rows (M) int32: for each batch b < batches in turn, its min(keep[b], n_b)
 * rows with the largest score, the score of a row being its first feature
 * (feats (N, C >= 1), any float dtype): largest first, equal scores by lower
 * row, NaN below every number. */
lt_status lt_sparse_topk_rows(lt_ctx *ctx, lt_tensor **rows, lt_coords *c, lt_tensor *feats, const int64_t *keep,
                              int64_t batches, const char *op);

#ifdef __cplusplus
}
#endif

#endif
