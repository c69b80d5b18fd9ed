/* Sparse algebra aligned by coordinate value: two sparse tensors A and B at
 * the same tensor stride are matched row by row through their coordinates
 * (the row order is a detail, the coordinate is the key), joined, and combined
 * feature by feature. A row missing from one side reads as zeros. */
#ifndef LATTICE_SPARSE_ALGEBRA_H
#define LATTICE_SPARSE_ALGEBRA_H

#include "lattice/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The support of the result, and the order of its rows:
 *   inner  A ∩ B: A's rows that B has, in A's order
 *   left   A, in A's order             right  B, in B's order
 *   outer  A ∪ B: A's rows in A's order, then B's rows that A lacks, in B's order */
typedef enum lt_sparse_join {
  LT_SPARSE_JOIN_INNER,
  LT_SPARSE_JOIN_LEFT,
  LT_SPARSE_JOIN_RIGHT,
  LT_SPARSE_JOIN_OUTER,
  LT_SPARSE_JOINS
} lt_sparse_join;

/* The alignment of A onto B under a join: M output rows. */
typedef struct lt_sparse_alignment {
  lt_coords *out;             /* the output map: A's or B's own when it has exactly their rows in order */
  lt_tensor *a_rows, *b_rows; /* int32 (M): the row of A (of B) at each output row, -1 where it has none */
  lt_tensor *a_out, *b_out;   /* int32 (n_A), (n_B): the output row of each row of A (of B), -1 when dropped */
} lt_sparse_alignment;

/* Fills *al (every field a new reference; release with
 * lt_sparse_alignment_release). Fails when the tensor strides differ. */
lt_status lt_sparse_align(lt_ctx *ctx, lt_sparse_alignment *al, lt_coords *a, lt_coords *b, lt_sparse_join join,
                          const char *op);
void lt_sparse_alignment_release(lt_sparse_alignment *al);

typedef enum lt_sparse_binary_op {
  LT_SPARSE_ADD,
  LT_SPARSE_SUB,
  LT_SPARSE_MUL,
  LT_SPARSE_MAXIMUM, /* the gradient of a tie is split evenly, as lt_binary does */
  LT_SPARSE_MINIMUM,
  LT_SPARSE_CAT, /* the channels of A then those of B */
  LT_SPARSE_BINARY_OPS
} lt_sparse_binary_op;

/* out (M, C) = op(A's row or zeros, B's row or zeros) for each row of the
 * joined support, *out_coords its map (new references). xa (n_A, C_A) and xb
 * (n_B, C_B) are the features of maps a and b; C_A = C_B except for CAT. When
 * a and b are equal maps (lt_coords_equal) this is op on the features row by
 * row: no hash is built or probed. Differentiable in xa and xb; float16/bfloat16 compute in
 * float32, float64 in double; the result has the inputs' dtype when they
 * agree, else their promotion (as lt_binary). */
lt_status lt_sparse_binary(lt_ctx *ctx, lt_coords **out_coords, lt_tensor **out, lt_sparse_binary_op op, lt_coords *a,
                           lt_tensor *xa, lt_coords *b, lt_tensor *xb, lt_sparse_join join, const char *name);

#ifdef __cplusplus
}
#endif

#endif
