/* Ordering and occupancy of coordinates, the pieces octree coders and
 * completion decoders are built from: Morton (Z-order) codes and sorting,
 * and the 2x2x2 parent/child relation of an octree level. Coordinates here
 * are int32 (N, 4) tensors of rows (batch, x, y, z), not necessarily a map's
 * (duplicates allowed where noted). */
#ifndef LATTICE_SPARSE_ORDER_H
#define LATTICE_SPARSE_ORDER_H

#include "lattice/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Morton codes cover x, y, z in [LT_MORTON_MIN, LT_MORTON_MAX]: each is offset
 * by 2^20 to 21 bits, and bit b of x, y, z becomes bit 3b, 3b + 1, 3b + 2 of
 * the 63-bit code. Sorting by code is the Z-order: an octree's depth-first
 * order, the lowest 3 bits being the child index lt_octree_child gives (the
 * offset is even, so it keeps every coordinate's parity). */
#define LT_MORTON_MIN (-(1 << 20))
#define LT_MORTON_MAX ((1 << 20) - 1)

/* The code of (x, y, z), each in range (not checked: lt_morton_codes checks). */
uint64_t lt_morton_encode(int32_t x, int32_t y, int32_t z);

/* codes (N) int64: the Morton code of each row's x, y, z (the batch is not in
 * the code). Fails, naming the row, for a coordinate out of range. */
lt_status lt_morton_codes(lt_ctx *ctx, lt_tensor **codes, lt_tensor *coords, const char *op);
/* order (N) int32: the rows sorted by (batch, Morton code), equal keys by
 * row (a stable radix sort; duplicates allowed). */
lt_status lt_morton_order(lt_ctx *ctx, lt_tensor **order, lt_tensor *coords, const char *op);

typedef enum lt_coord_order {
  LT_ORDER_LEX,     /* (batch, x, y, z) */
  LT_ORDER_MORTON,  /* (batch, Morton code) */
  LT_ORDER_HILBERT, /* (batch, Hilbert index): consecutive cells of a full aligned cube are face neighbours */
  LT_ORDERS
} lt_coord_order;

/* The Hilbert index of (x, y, z), each in the Morton range (not checked). */
uint64_t lt_hilbert_encode(int32_t x, int32_t y, int32_t z);
/* order (N) int32: the rows sorted by `kind`, equal keys by row (stable;
 * duplicates allowed); x, y, z must lie in the Morton range for Morton and
 * Hilbert, lex takes any int32. */
lt_status lt_coords_order(lt_ctx *ctx, lt_tensor **order, lt_tensor *coords, lt_coord_order kind, const char *op);

/* The child index of (x, y, z) under its parent: (x & 1) | (y & 1) << 1 | (z & 1) << 2. */
static inline int lt_octree_child(const int32_t *xyz) { return (xyz[0] & 1) | (xyz[1] & 1) << 1 | (xyz[2] & 1) << 2; }

/* parents (M, 4) int32: the distinct (b, floor(x/2), floor(y/2), floor(z/2))
 * of the rows, in the order first seen; occupancy (M) int32: per parent, bit
 * lt_octree_child(row) set for each of its rows. Duplicate rows are allowed. */
lt_status lt_occupancy_downsample(lt_ctx *ctx, lt_tensor **parents, lt_tensor **occupancy, lt_tensor *coords,
                                  const char *op);
/* The children that occupancy (N) (integers in [0, 255]) marks under each
 * parent row, parents in order and children by increasing index: children
 * (M, 4) int32 at (b, 2x + (i & 1), 2y + (i >> 1 & 1), 2z + (i >> 2 & 1)),
 * parent_rows (M) and child_index (M) int32. */
lt_status lt_occupancy_expand(lt_ctx *ctx, lt_tensor **children, lt_tensor **parent_rows, lt_tensor **child_index,
                              lt_tensor *coords, lt_tensor *occupancy, const char *op);
/* children (N, 4) int32: the child of each parent row with the given index
 * (an integer (N) tensor, each in [0, 7]). */
lt_status lt_octree_children(lt_ctx *ctx, lt_tensor **children, lt_tensor *parents, lt_tensor *child_index,
                             const char *op);

#ifdef __cplusplus
}
#endif

#endif
