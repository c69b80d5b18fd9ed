/* Voxel features sampled at points (lattice/sparse_voxel.h):
 *   points (N, 3), voxels (M, 4) with features vf (M, C) -> y (N, C)
 *   y[i] = sum_k w[i, k] vf[idx[i, k]]  over the K present corners of point i
 * with u = (p - origin) / voxel_size (float32): nearest K = 1, the voxel
 * floor(u + 0.5), w = 1; trilinear K = 8, the voxels floor(u) + bits(k)
 * (bit a of k on axis a), w = prod_a (bit ? f_a : 1 - f_a), f = u - floor(u);
 * renormalize divides the present weights by their sum. A corner outside
 * int32 or not in the map is absent (idx -1, w 0).
 * Backward: dvf[v] = sum over corners (i, k) with idx = v of w[i, k] dy[i],
 * one task per voxel over its corners in point order (a counting sort of the
 * corners by voxel first): no scatter, the same for any thread count. */
#include <math.h>
#include <string.h>
#include "autograd/tape.h"
#include "ops/internal.h"
#include "sparse/internal.h"

typedef struct devox_attrs {
  int k;
} devox_attrs;

static inline double load(const void *x, int f64, int64_t e) {
  return f64 ? ((const double *)x)[e] : (double)((const float *)x)[e];
}

static inline void store(void *y, int f64, int64_t e, double v) {
  if (f64)
    ((double *)y)[e] = v;
  else
    ((float *)y)[e] = (float)v;
}

/* The row of (b, x, y, z) in the map, -1 when a coordinate leaves int32 or the map has none. */
static int32_t find(const lt_coords *c, int32_t b, const float *f, const int *add) {
  int32_t key[4] = {b};
  for (int a = 0; a < 3; a++) {
    float v = f[a] + (float)add[a]; /* integers below 2^24 stay exact; larger ones are whole floats anyway */
    if (!(v >= -2147483648.0f && v < 2147483648.0f)) return -1;
    key[a + 1] = (int32_t)v;
  }
  return (int32_t)lt__coord_hash_find(&c->hash, lt_tensor_data(c->rows), key); /* built before the loop */
}

/* Point i's corners and weights. */
static void corners(int32_t *idx, float *w, const float *p, int32_t b, const lt_coords *c, const lt_voxel_grid *g,
                    lt_devoxel_mode mode, int renormalize) {
  float u[3], base[3], f[3];
  for (int a = 0; a < 3; a++) {
    u[a] = (p[a] - g->origin[a]) / g->size[a];
    base[a] = floorf(mode == LT_DEVOXEL_NEAREST ? u[a] + 0.5f : u[a]);
    f[a] = u[a] - base[a];
  }
  if (mode == LT_DEVOXEL_NEAREST) {
    idx[0] = find(c, b, base, (int[]){0, 0, 0});
    w[0] = idx[0] >= 0 ? 1.0f : 0.0f;
    return;
  }
  float total = 0;
  for (int k = 0; k < 8; k++) {
    int bit[3] = {k & 1, k >> 1 & 1, k >> 2 & 1};
    idx[k] = find(c, b, base, bit);
    w[k] = 1.0f;
    for (int a = 0; a < 3; a++) w[k] *= bit[a] ? f[a] : 1.0f - f[a];
    if (idx[k] < 0) w[k] = 0;
    total += w[k];
  }
  for (int k = 0; renormalize && k < 8; k++) w[k] = total > 0 ? w[k] / total : 0.0f;
}

typedef struct sample {
  const float *p;
  const int64_t *batch;
  const lt_coords *voxels;
  const lt_voxel_grid *g;
  lt_devoxel_mode mode;
  int renormalize, k;
} sample;

static void sample_all(const lt_ctx *ctx, lt_tensor *y, int32_t *idx, float *w, const lt_tensor *vf, const sample *s,
                       int64_t n) {
  int64_t c = vf->shape[1];
  int f64 = vf->dtype == LT_FLOAT64, threads = n * (c + s->k) >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  const void *x = lt_tensor_data(vf);
  void *yd = lt_tensor_data(y);
  LT_PARALLEL_FOR(threads, i, n, {
    int32_t *ik = idx + i * s->k;
    float *wk = w + i * s->k;
    corners(ik, wk, s->p + i * 3, s->batch ? (int32_t)s->batch[i] : 0, s->voxels, s->g, s->mode, s->renormalize);
    for (int64_t ch = 0; ch < c; ch++) {
      double acc = 0;
      for (int k = 0; k < s->k; k++)
        if (ik[k] >= 0) acc += (double)wk[k] * load(x, f64, (int64_t)ik[k] * c + ch);
      store(yd, f64, i * c + ch, acc);
    }
  });
}

/* ---- backward ---- */

/* start (m + 1) and the corners e = i K + k of each voxel in order (a counting sort). */
static void corners_by_voxel(int64_t *start, int64_t *list, const int32_t *idx, int64_t edges, int64_t m) {
  memset(start, 0, (size_t)(m + 1) * sizeof *start);
  for (int64_t e = 0; e < edges; e++)
    if (idx[e] >= 0) start[idx[e] + 1]++;
  for (int64_t v = 0; v < m; v++) start[v + 1] += start[v];
  for (int64_t e = 0; e < edges; e++)
    if (idx[e] >= 0) list[start[idx[e]]++] = e;
  for (int64_t v = m; v > 0; v--) start[v] = start[v - 1]; /* the fill moved every start to the next one's */
  start[0] = 0;
}

/* in = {vf}; saved = {idx (N, K), w (N, K)}. */
static lt_status devoxelize_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  const devox_attrs *a = n->attrs;
  lt_tensor *vf = n->in[0], *g = NULL;
  const int32_t *idx = lt_tensor_data(lt__saved(n, 0));
  const float *w = lt_tensor_data(lt__saved(n, 1));
  int64_t m = vf->shape[0], c = vf->shape[1], edges = lt__saved(n, 0)->shape[0] * a->k;
  lt_dtype cdt = lt__compute_dtype(vf->dtype);
  size_t bytes = (size_t)(m + 1 + edges) * sizeof(int64_t);
  int64_t *start = lt_ctx_alloc(ctx, bytes);
  if (!start) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", n->name);
  lt_status st = lt__as_contig(ctx, &g, gouts[0], cdt);
  if (!st) st = lt_tensor_new(ctx, &gin[0], cdt, 2, vf->shape);
  if (!st) {
    int64_t *list = start + m + 1;
    corners_by_voxel(start, list, idx, edges, m);
    int f64 = cdt == LT_FLOAT64, threads = edges * c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
    const void *gd = lt_tensor_data(g);
    void *dv = lt_tensor_data(gin[0]);
    LT_PARALLEL_FOR(threads, v, m, {
      for (int64_t ch = 0; ch < c; ch++) {
        double acc = 0;
        for (int64_t j = start[v]; j < start[v + 1]; j++)
          acc += (double)w[list[j]] * load(gd, f64, list[j] / a->k * c + ch);
        store(dv, f64, v * c + ch, acc);
      }
    });
  }
  lt_tensor_release(g);
  lt_ctx_free(ctx, start, bytes);
  return st;
}

/* ---- forward ---- */

static lt_status check_args(lt_ctx *ctx, const lt_tensor *vf, const lt_coords *voxels, lt_devoxel_mode mode,
                            const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if ((unsigned)mode >= LT_DEVOXEL_MODES) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown mode", op);
  if (!lt_dtype_info(vf->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: voxel features must be a float tensor, got %s", op,
                       lt_dtype_info(vf->dtype)->name);
  if (vf->ndim != 2 || vf->shape[0] != lt_coords_count(voxels))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: voxel features have shape %s, the voxels have %lld rows", op,
                       lt__shape_str(s, sizeof s, vf->ndim, vf->shape), (long long)lt_coords_count(voxels));
  return LT_OK;
}

/* The first point whose float32 copy p of points has a non-finite coordinate, as an error. */
static lt_status bad_points(lt_ctx *ctx, const float *p, const lt_tensor *points, int64_t n, const char *op) {
  for (int64_t i = 0; i < n * 3; i++)
    if (!isfinite(p[i])) return lt__point_not_finite(ctx, points, i / 3, (int)(i % 3), op);
  return LT_OK;
}

static lt_status record(lt_ctx *ctx, lt_tensor **out, lt_tensor *vf, lt_tensor *idx, lt_tensor *w, int k,
                        const char *op) {
  lt_node *node = NULL;
  lt_status st = lt__record(ctx, &node, LT_OP(op, devoxelize_backward, devox_attrs, 2), out, 1, &vf);
  if (node) {
    *(devox_attrs *)node->attrs = (devox_attrs){k};
    lt__node_save(node, 0, idx);
    lt__node_save(node, 1, w);
  }
  return st;
}

lt_status lt_sparse_devoxelize(lt_ctx *ctx, lt_tensor **out, lt_tensor *points, lt_tensor *batch, lt_coords *voxels,
                               lt_tensor *vfeats, const lt_voxel_grid *g, lt_devoxel_mode mode, int renormalize,
                               const char *op) {
  *out = NULL;
  lt_status st = check_args(ctx, vfeats, voxels, mode, op);
  lt_tensor *pts = NULL, *bat = NULL, *vs = NULL, *idx = NULL, *w = NULL;
  if (!st) st = lt__points_stage(ctx, &pts, &bat, points, batch, g, op);
  int64_t n = pts ? pts->shape[0] : 0;
  int k = mode == LT_DEVOXEL_NEAREST ? 1 : 8;
  if (!st) st = bad_points(ctx, lt_tensor_data(pts), points, n, op);
  lt_dtype cdt = lt__compute_dtype(vfeats->dtype);
  if (!st) st = lt__as_contig(ctx, &vs, vfeats, cdt);
  if (!st) st = lt_tensor_new(ctx, out, cdt, 2, (int64_t[]){n, vfeats->shape[1]});
  if (!st) st = lt_tensor_new(ctx, &idx, LT_INT32, 2, (int64_t[]){n, k});
  if (!st) st = lt_tensor_new(ctx, &w, LT_FLOAT32, 2, (int64_t[]){n, k});
  if (!st) st = lt__coords_hash(ctx, voxels, op);
  if (!st) {
    sample s = {lt_tensor_data(pts), bat ? lt_tensor_data(bat) : NULL, voxels, g, mode, renormalize, k};
    sample_all(ctx, *out, lt_tensor_data(idx), lt_tensor_data(w), vs, &s, n);
    st = lt__to_dtype(ctx, out, vfeats->dtype);
  }
  if (!st) st = record(ctx, out, vfeats, idx, w, k, op);
  lt_tensor_release(pts), lt_tensor_release(bat), lt_tensor_release(vs), lt_tensor_release(idx), lt_tensor_release(w);
  if (st && *out) lt_tensor_release(*out), *out = NULL;
  return st;
}
