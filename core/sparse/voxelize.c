/* Point features reduced per voxel (lattice/sparse_voxel.h):
 *   feats (N, C), voxel(i) from sparse/quantize.c -> y (M, C)
 *   sum  y[v] = sum_{voxel(i) = v} feats[i]     mean  the sum / n_v
 *   max  y[v, c] = max feats[i, c], arg[v, c] the first point holding it (NaN wins)
 * The forward is quantize.c's: it carries the features through its parts and
 * reduces each voxel's in point order (in the compute dtype), the same for
 * any thread count; each point's voxel and max's points are kept only when
 * the tape records the op (they serve the backward only). Backward, one task
 * per point:
 *   sum  dx[i] = dy[v(i)]    mean  dy[v(i)] / n_v(i)    max  dx[i, c] = (arg[v(i), c] == i) dy[v(i), c] */
#include <string.h>
#include "autograd/tape.h"
#include "ops/internal.h"
#include "sparse/internal.h"

typedef struct vox_attrs {
  lt_voxel_reduction reduction;
} vox_attrs;

static inline double load(const void *x, int f64, int64_t e) {
  return f64 ? ((const double *)x)[e] : (double)((const float *)x)[e];
}

static inline void store(void *y, int f64, int64_t e, double v) {
  if (f64)
    ((double *)y)[e] = v;
  else
    ((float *)y)[e] = (float)v;
}

/* ---- backward ---- */

/* in = {feats}; saved = {inverse (N), counts (M), arg (M, C) for max}. */
static lt_status voxelize_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  const vox_attrs *a = n->attrs;
  lt_tensor *x = n->in[0], *g = NULL;
  const int32_t *inv = lt_tensor_data(lt__saved(n, 0)), *cnt = lt_tensor_data(lt__saved(n, 1));
  int64_t c = x->shape[1];
  /* max saved no arg for features of no channels (quantize carried none) */
  const int32_t *arg = a->reduction == LT_VOXEL_MAX && c ? lt_tensor_data(lt__saved(n, 2)) : NULL;
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_status st = lt__as_contig(ctx, &g, gouts[0], cdt);
  if (!st) st = lt_tensor_new(ctx, &gin[0], cdt, 2, x->shape);
  if (st) {
    lt_tensor_release(g);
    return st;
  }
  int f64 = cdt == LT_FLOAT64, threads = x->shape[0] * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  const void *gd = lt_tensor_data(g);
  void *dx = lt_tensor_data(gin[0]);
  int mean = a->reduction == LT_VOXEL_MEAN;
  LT_PARALLEL_FOR(threads, i, x->shape[0], {
    int64_t v = inv[i];
    for (int64_t ch = 0; ch < c; ch++) {
      double d = arg && arg[v * c + ch] != i ? 0.0 : load(gd, f64, v * c + ch);
      if (mean && cnt[v] > 1) d = f64 ? d / cnt[v] : (double)((float)d / (float)cnt[v]);
      store(dx, f64, i * c + ch, d);
    }
  });
  lt_tensor_release(g);
  return LT_OK;
}

/* ---- forward ---- */

static lt_status check_feats(lt_ctx *ctx, const lt_tensor *x, const lt_tensor *points, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: point_feats must be a float tensor, got %s", op,
                       lt_dtype_info(x->dtype)->name);
  int64_t n = points->ndim >= 1 ? points->shape[0] : -1;
  if (x->ndim != 2 || x->shape[0] != n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: point_feats must have shape {%lld,C} (one row per point), got %s", op,
                       (long long)n, lt__shape_str(s, sizeof s, x->ndim, x->shape));
  return LT_OK;
}

static lt_status record(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt__voxels *vx, lt_voxel_reduction red,
                        const char *op) {
  lt_node *node = NULL;
  lt_status st = lt__record(ctx, &node, LT_OP(op, voxelize_backward, vox_attrs, 3), out, 1, &x);
  if (node) {
    *(vox_attrs *)node->attrs = (vox_attrs){red};
    lt__node_save(node, 0, vx->inverse);
    lt__node_save(node, 1, vx->counts);
    if (vx->arg) lt__node_save(node, 2, vx->arg);
  }
  return st;
}

lt_status lt_sparse_voxelize(lt_ctx *ctx, lt_coords **coords, lt_tensor **out, lt_tensor *points, lt_tensor *feats,
                             lt_tensor *batch, const lt_voxel_grid *g, lt_voxel_reduction reduction, const char *op) {
  *coords = NULL, *out = NULL;
  if ((unsigned)reduction >= LT_VOXEL_REDUCTIONS) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown reduction", op);
  lt_status st = check_feats(ctx, feats, points, op);
  if (st) return st;
  lt_tensor *xs = NULL;
  st = lt__as_contig(ctx, &xs, feats, lt__compute_dtype(feats->dtype));
  lt__voxels vx = {0};
  /* each point's voxel and max's points only for the backward (as record decides) */
  int keep = lt__tape_wants(ctx, 1, &feats) ? LT__VOXELS_INVERSE | LT__VOXELS_ARG : 0;
  if (!st) st = lt__voxels_build(ctx, &vx, points, batch, g, xs, reduction, keep, op);
  lt_tensor_release(xs);
  if (st) return st;
  if (vx.feats) {
    *out = vx.feats, vx.feats = NULL;
  } else { /* no channels */
    st = lt_tensor_new(ctx, out, lt__compute_dtype(feats->dtype), 2, (int64_t[]){vx.m, 0});
  }
  if (!st) st = lt__to_dtype(ctx, out, feats->dtype);
  if (!st) st = record(ctx, out, feats, &vx, reduction, op);
  if (!st) st = lt__coords_intern_distinct(ctx, coords, vx.rows, (int[]){1, 1, 1}, op), vx.rows = NULL;
  lt__voxels_free(ctx, &vx);
  if (st && *out) lt_tensor_release(*out), *out = NULL;
  return st;
}
