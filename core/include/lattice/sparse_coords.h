/* Coordinate utilities: set operations between maps, lookups, unique rows,
 * bounding boxes, and the index between a map and a dense grid. Rows are
 * (batch, x, y, z) int32; row indices are 0-based. */
#ifndef LATTICE_SPARSE_COORDS_H
#define LATTICE_SPARSE_COORDS_H

#include "lattice/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_coords_set {
  LT_COORDS_UNION,        /* A's rows, then B's rows that A lacks */
  LT_COORDS_INTERSECTION, /* A's rows that B has, in A's order */
  LT_COORDS_DIFFERENCE,   /* A's rows that B lacks, in A's order */
  LT_COORDS_SETS
} lt_coords_set;

/* out (M, 4) int32: the rows of the set operation (maps of one tensor stride). */
lt_status lt_coords_setop(lt_ctx *ctx, lt_tensor **out, lt_coords *a, lt_coords *b, lt_coords_set kind, const char *op);

/* rows (Q) int32: the row of c holding each query row (an int32 (Q, 4) tensor), or -1. */
lt_status lt_coords_lookup(lt_ctx *ctx, lt_tensor **rows, const lt_coords *c, lt_tensor *query, const char *op);

/* The distinct rows of coords (int32 (N, 4), duplicates allowed) first seen
 * first, each one's first row (M) and each row's distinct row (N). */
lt_status lt_coords_unique(lt_ctx *ctx, lt_tensor **rows, lt_tensor **index, lt_tensor **inverse, lt_tensor *coords,
                           const char *op);

/* lo, hi (B, 3) int32: per batch, the least and greatest x, y, z of its rows
 * (lo = INT32_MAX, hi = INT32_MIN for a batch with none). */
lt_status lt_coords_bounds(lt_ctx *ctx, lt_tensor **lo, lt_tensor **hi, const lt_coords *c, int64_t batches,
                           const char *op);

/* index (B X Y Z) int32: for each cell (b, min + (i, j, k)) of the grid
 * `shape` (X, Y, Z) the row of c there, or N (a zero row appended after the
 * features makes the dense tensor one take). Fails for a row outside the grid. */
lt_status lt_coords_dense_index(lt_ctx *ctx, lt_tensor **index, const lt_coords *c, int64_t batches, const int32_t *min,
                                const int64_t *shape, const char *op);

/* The cells of dense (B, X, Y, Z, C), any float dtype, with a nonzero
 * channel, in cell order: their flat indices (M) and coordinates
 * (b, min + (i, j, k)) (M, 4). */
lt_status lt_coords_from_dense(lt_ctx *ctx, lt_tensor **cells, lt_tensor **coords, lt_tensor *dense, const int32_t *min,
                               const char *op);

#ifdef __cplusplus
}
#endif

#endif
