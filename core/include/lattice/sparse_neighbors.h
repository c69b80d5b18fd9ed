/* Neighbour relations between two coordinate maps of one tensor stride: for
 * each query row, source rows of the same batch by squared Euclidean
 * distance of their (x, y, z), nearest first, equal distances by source row
 * (a query row that is also a source row is its own nearest, at 0). Built on
 * a hash grid of the source rows, not by comparing every pair. */
#ifndef LATTICE_SPARSE_NEIGHBORS_H
#define LATTICE_SPARSE_NEIGHBORS_H

#include "lattice/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_neighbor_kind {
  LT_NEIGHBORS_KNN,    /* the k nearest (fewer when the batch has fewer sources) */
  LT_NEIGHBORS_RADIUS, /* those within the radius (d^2 <= r^2), all or the nearest max_neighbors */
} lt_neighbor_kind;

/* E edges, by query row then rank. */
typedef struct lt_neighbors {
  lt_tensor *query_row, *source_row, *neighbor_id; /* int32 (E); neighbor_id is the rank, 0 nearest */
  lt_tensor *distances;                            /* float32 (E), squared */
  lt_tensor *row_offsets;                          /* int64 (Q + 1): query i's edges are [offsets[i], offsets[i+1]) */
} lt_neighbors;

/* k: the k of knn, or max_neighbors of radius (0: all). Every field of *r is
 * a new reference (release with lt_neighbors_release). */
lt_status lt_neighbors_build(lt_ctx *ctx, lt_neighbors *r, const lt_coords *source, const lt_coords *query,
                             lt_neighbor_kind kind, int64_t k, double radius, const char *op);
void lt_neighbors_release(lt_neighbors *r);

#ifdef __cplusplus
}
#endif

#endif
