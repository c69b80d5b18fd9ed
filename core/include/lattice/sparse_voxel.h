/* Points and voxels: quantizing points onto a voxel lattice, reducing their
 * features per voxel (voxelize) and sampling voxel features back at points
 * (devoxelize).
 *
 * A point p (float, 3 values) of batch b lies in voxel (b, floor(u)), with
 * u = (p - origin) / voxel_size computed in float32 per axis. Voxels are
 * listed in the order first seen: voxel v is the v-th distinct voxel met
 * walking the points in row order. Everything here is the same for any
 * thread count. */
#ifndef LATTICE_SPARSE_VOXEL_H
#define LATTICE_SPARSE_VOXEL_H

#include "lattice/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* voxel_size (each > 0, finite) and origin (finite), per axis x, y, z. */
typedef struct lt_voxel_grid {
  float size[3], origin[3];
} lt_voxel_grid;

/* The voxels of points (N, 3) (any float dtype) with batches `batch` (an
 * integer (N) tensor of values >= 0, or NULL: all batch 0):
 *   coords  (M, 4) int32, the distinct voxels (batch, x, y, z), first seen first;
 *   index   (M) int32, the first point of each voxel (NULL: not wanted);
 *   inverse (N) int32, each point's voxel (NULL: not wanted).
 * Fails, naming the point, on a non-finite u or one outside int32. */
lt_status lt_sparse_quantize(lt_ctx *ctx, lt_tensor **coords, lt_tensor **index, lt_tensor **inverse, lt_tensor *points,
                             lt_tensor *batch, const lt_voxel_grid *g, const char *op);

typedef enum lt_voxel_reduction {
  LT_VOXEL_MEAN,
  LT_VOXEL_SUM,
  LT_VOXEL_MAX, /* per channel; NaN wins, the gradient goes to the first point holding the maximum */
  LT_VOXEL_REDUCTIONS
} lt_voxel_reduction;

/* The voxel map of the points (interned, stride 1) in *coords and the features
 * (M, C) reduced from feats (N, C) per voxel in *out, in feats' dtype (float32
 * accumulation; float64 in double). Differentiable in feats. */
lt_status lt_sparse_voxelize(lt_ctx *ctx, lt_coords **coords, lt_tensor **out, lt_tensor *points, lt_tensor *feats,
                             lt_tensor *batch, const lt_voxel_grid *g, lt_voxel_reduction reduction, const char *op);

typedef enum lt_devoxel_mode {
  LT_DEVOXEL_NEAREST,   /* the voxel at floor(u + 0.5) */
  LT_DEVOXEL_TRILINEAR, /* the 8 voxels floor(u) + {0,1}^3, weighted by prod(f or 1 - f), f = u - floor(u) */
  LT_DEVOXEL_MODES
} lt_devoxel_mode;

/* out (N, C): features of the voxels (map `voxels`, features vfeats (M, C))
 * sampled at points (N, 3) of batches `batch` (as above). Absent voxels count
 * as zeros; with `renormalize`, trilinear weights are divided by the sum of
 * the present ones (a point with none present gets zeros). Differentiable in
 * vfeats; out in vfeats' dtype. */
lt_status lt_sparse_devoxelize(lt_ctx *ctx, lt_tensor **out, lt_tensor *points, lt_tensor *batch, lt_coords *voxels,
                               lt_tensor *vfeats, const lt_voxel_grid *g, lt_devoxel_mode mode, int renormalize,
                               const char *op);

#ifdef __cplusplus
}
#endif

#endif
