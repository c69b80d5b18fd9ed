/* The sparse area's internals: the coordinate map and relation structs, the
 * coordinate hash, and the coordinate manager (core/sparse/). */
#ifndef LATTICE_SPARSE_INTERNAL_H
#define LATTICE_SPARSE_INTERNAL_H

#include <string.h>

#include "lattice/sparse.h"
#include "lattice/sparse_voxel.h"
#include "lattice/sparse_neighbors.h"
#include "runtime/context.h"
#include "tensor/internal.h"

#define LT_KERNEL_MAX 7 /* per axis */

/* Open addressing over rows: slots[s] is row + 1 (0: empty), probed linearly
 * from the hash of the row's four values; a hit compares the rows. */
typedef struct lt_coord_hash {
  uint32_t *slots;
  uint64_t mask;
  size_t bytes;
} lt_coord_hash;

struct lt_coords {
  int64_t refcount;
  lt_ctx *ctx;
  lt_tensor *rows; /* int32 (N, 4), contiguous */
  int64_t n;
  int stride[3];
  uint64_t id, digest; /* digest: of the rows and stride, for interning */
  int64_t cache_holds; /* references the manager holds (sparse/manager.c) */
  lt_coord_hash hash;
};

struct lt_relation {
  int64_t refcount;
  lt_relation_kind kind;
  lt_kernel_spec spec;
  lt_coords *in, *out; /* retained */
  int targeted;        /* built onto a target the caller gave */
  int volume;
  int offsets[LT_KERNEL_MAX * LT_KERNEL_MAX * LT_KERNEL_MAX][3];
  lt_tensor *idx, *idx_t; /* int32 (n_out, K), (n_in, K); idx_t NULL when mirrored */
  /* int32 permutations of the output and input rows in Morton order, for the
   * conv kernels' tiles, or NULL where the rows already lie in (nearly) that
   * order (sparse/morton.c); order_in is order_out when mirrored */
  lt_tensor *order_out, *order_in;
  int mirrored;    /* idxT[i, k] = idx[i, K-1-k] (o + d_k onto itself, odd kernel: relation.c) */
  int64_t *counts; /* K */
  int64_t edges;
  size_t bytes;
};

/* Two rows (four int32) equal, as two 64-bit words. */
static inline int lt__coord_equal(const int32_t *a, const int32_t *b) {
  uint64_t x[2], y[2];
  memcpy(x, a, 16), memcpy(y, b, 16);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

/* The row's slot hash. */
static inline uint64_t lt__coord_digest(const int32_t *r) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (int k = 0; k < 4; k++) {
    h ^= (uint32_t)r[k];
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  return h;
}

/* The bytes of the table for n rows (its slots, load at most 1/2). */
size_t lt__coord_hash_bytes(int64_t n);
/* An empty table sized for n rows. */
lt_status lt__coord_hash_alloc(lt_ctx *ctx, lt_coord_hash *h, int64_t n, const char *op);
/* Builds the hash of the n rows; the first duplicate pair is reported in
 * *dup_a < *dup_b (else -1). */
lt_status lt__coord_hash_build(lt_ctx *ctx, lt_coord_hash *h, const int32_t *rows, int64_t n, int64_t *dup_a,
                               int64_t *dup_b, const char *op);
void lt__coord_hash_free(lt_ctx *ctx, lt_coord_hash *h);
static inline int64_t lt__coord_hash_find(const lt_coord_hash *h, const int32_t *rows, const int32_t *key) {
  if (!h->slots) return -1;
  for (uint64_t s = lt__coord_digest(key) & h->mask;; s = (s + 1) & h->mask) {
    uint32_t v = h->slots[s];
    if (!v) return -1;
    const int32_t *r = rows + (int64_t)(v - 1) * 4;
    if (lt__coord_equal(r, key)) return v - 1;
  }
}

/* The row of `rows` (m so far) holding key, appending it (as row m, m
 * incremented) when the hash does not have it yet. The hash and rows must
 * have room for every key inserted: nothing grows. */
static inline int64_t lt__coord_hash_insert_at(lt_coord_hash *h, int32_t *rows, int64_t *m, const int32_t *key,
                                               uint64_t digest);
static inline int64_t lt__coord_hash_insert(lt_coord_hash *h, int32_t *rows, int64_t *m, const int32_t *key) {
  return lt__coord_hash_insert_at(h, rows, m, key, lt__coord_digest(key));
}
/* The same, the key's digest (its bits under the mask at least) given. */
static inline int64_t lt__coord_hash_insert_at(lt_coord_hash *h, int32_t *rows, int64_t *m, const int32_t *key,
                                               uint64_t digest) {
  for (uint64_t s = digest & h->mask;; s = (s + 1) & h->mask) {
    uint32_t v = h->slots[s];
    if (!v) {
      memcpy(rows + *m * 4, key, 16);
      h->slots[s] = (uint32_t)(++*m);
      return *m - 1;
    }
    const int32_t *r = rows + (int64_t)(v - 1) * 4;
    if (lt__coord_equal(r, key)) return v - 1;
  }
}

/* Fails with "<op>: coords must be int32 ..." unless t is an int32 (N, 4) tensor. */
lt_status lt__coords_check_rows(lt_ctx *ctx, const lt_tensor *t, const char *op);
/* A map of the rows tensor (taken over: the map owns it), not interned. */
lt_status lt__coords_make(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, const char *op);
/* The same, interned: an equal map the manager holds replaces it. */
lt_status lt__coords_intern(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, const char *op);
/* The same for rows distinct by construction (not checked): the map's hash
 * is built on its first lookup (lt__coords_hash), as most maps (a voxelized
 * input feeding convolutions) are never looked up. */
lt_status lt__coords_intern_distinct(lt_ctx *ctx, lt_coords **out, lt_tensor *rows, const int *stride, const char *op);
/* Builds c's hash unless it has one (a cache: the map's rows do not change).
 * Call it before a parallel loop reads c->hash. */
lt_status lt__coords_hash(lt_ctx *ctx, const lt_coords *c, const char *op);

/* The manager (sparse/manager.c). */
uint64_t lt__manager_next_id(lt_ctx *ctx);
/* An interned map equal to c (same rows, order and stride), or NULL. */
lt_coords *lt__manager_find_coords(lt_ctx *ctx, const lt_coords *c);
void lt__manager_keep_coords(lt_ctx *ctx, lt_coords *c);
lt_relation *lt__manager_find_relation(lt_ctx *ctx, lt_relation_kind kind, const lt_coords *in, const lt_coords *target,
                                       const lt_kernel_spec *spec);
void lt__manager_keep_relation(lt_ctx *ctx, lt_relation *r);

/* The Morton order (int32, N) of map c's rows when they lie scattered, else
 * NULL: also for rows outside the Morton range (sparse/morton.c). */
lt_status lt__morton_order_if_scattered(lt_ctx *ctx, lt_tensor **order, const lt_coords *c, const char *op);

/* Relations (sparse/relation.c). */
lt_status lt__relation_build(lt_ctx *ctx, lt_relation **out, lt_relation_kind kind, lt_coords *in, lt_coords *target,
                             const lt_kernel_spec *spec, const char *op);

/* Points on a voxel lattice (sparse/quantize.c): the voxels first seen
 * first, each one's first point and point count, and with
 * LT__VOXELS_INVERSE in `keep` each point's voxel; given feats (contiguous
 * float32 or float64 (n, C)), also their reduction per voxel in that dtype
 * (point order) and, for max with LT__VOXELS_ARG, each maximum's point. What
 * is not kept is NULL (voxelize keeps both only for its backward). */
#define LT__VOXELS_INVERSE 1
#define LT__VOXELS_ARG     2
typedef struct lt__voxels {
  int64_t n, m;
  lt_tensor *rows, *index, *inverse, *counts; /* int32 (m, 4), (m), (n) or NULL, (m) */
  lt_tensor *feats, *arg;                     /* (m, C), int32 (m, C) for max or NULL; NULL without feats */
  void *scratch;
  size_t bytes;
} lt__voxels;
lt_status lt__voxels_build(lt_ctx *ctx, lt__voxels *v, lt_tensor *points, lt_tensor *batch, const lt_voxel_grid *g,
                           const lt_tensor *feats, lt_voxel_reduction red, int keep, const char *op);
void lt__voxels_free(lt_ctx *ctx, lt__voxels *v);
/* Checks the grid, points (N, 3) and batch (NULL, or integer (N) in 0..INT32_MAX);
 * *pts a contiguous float32 copy, *bat an int64 one (NULL without batch). */
lt_status lt__points_stage(lt_ctx *ctx, lt_tensor **pts, lt_tensor **bat, lt_tensor *points, lt_tensor *batch,
                           const lt_voxel_grid *g, const char *op);
/* The error for coordinate a of point i (0-based) whose float32 copy is not
 * finite: the value the caller gave (points), non-finite or beyond float32. */
lt_status lt__point_not_finite(lt_ctx *ctx, const lt_tensor *points, int64_t i, int a, const char *op);
/* For the specs: the lattice cells of points (N, 3) (kernels/voxel_cells.h)
 * in *cells (N, 3) int32 (0 from the first point without one on, *good the
 * points before it) with the kernels of `isa` lowered to what the CPU has
 * (*used). */
lt_status lt__voxel_cells_isa(lt_ctx *ctx, lt_tensor **cells, int64_t *good, lt_tensor *points, const lt_voxel_grid *g,
                              lt_isa isa, lt_isa *used);

/* For the specs: the digests (kernels/key_digest.h) of keys, an int32 (N, 4)
 * tensor, in *out (N) int64 (the uint64 digests' bits), with the kernel of
 * `isa` lowered to what the CPU has (*used). */
lt_status lt__key_digests_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *keys, lt_isa isa, lt_isa *used);

/* For the specs: x (R, C)'s column sums in double (*out (C) float64) by the
 * kernel of kernels/colsum.h that global pooling runs, with the kernels of
 * `isa` lowered to what the CPU has (*used). */
lt_status lt__colsum_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_isa isa, lt_isa *used);

/* The argument checks of lt_sparse_conv and lt_sparse_conv_quantized against
 * an input of n_in rows and the kernel spec, which the binding runs before it
 * builds the relation (a refused call caches nothing); the ops run them again. */
lt_status lt__sparse_conv_check(lt_ctx *ctx, const lt_tensor *x, const lt_tensor *w, const lt_tensor *b, int64_t n_in,
                                const lt_kernel_spec *spec, const char *op);
lt_status lt__sparse_conv_quantized_check(lt_ctx *ctx, const lt_tensor *x, const lt_qweight *qw, const lt_tensor *b,
                                          int64_t n_in, const lt_kernel_spec *spec, const char *op);

/* What sparse/conv_quant.c borrows from the float convolution (sparse/conv.c),
 * with a dense weight w (C_out, Kx, Ky, Kz, C_in) of any float dtype:
 *   lt__sparse_conv_compute: y (n_out, C_out), already allocated in cdt
 *     (float32 or float64), = b + sum_k x[idx] @ W_k;
 *   lt__sparse_conv_grad_x: *dx (n_in, C_in), new in x's dtype, the float
 *     convolution's input gradient for the output gradient g. */
lt_status lt__sparse_conv_compute(lt_ctx *ctx, lt_tensor *y, lt_tensor *x, lt_tensor *w, lt_tensor *b,
                                  const lt_relation *r, lt_dtype cdt, const char *op);
lt_status lt__sparse_conv_grad_x(lt_ctx *ctx, lt_tensor **dx, lt_tensor *g, lt_tensor *x, lt_tensor *w, lt_relation *r,
                                 const char *op);

#endif
