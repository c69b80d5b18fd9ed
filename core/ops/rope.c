/* Rotary position embedding, MLX's mx.fast.rope (nn.RoPE).
 *   x (..., T, ..., D) -> y, the same shape. Positions run along seq_axis
 *   (not the last): (B, H, T, D) as MLX and lmxlab lay out q and k has
 *   seq_axis -2, (B, T, H, D) (before the heads are moved forward) has -3.
 *   The axes before seq_axis are batch; those between it and the last (P
 *   elements per position) share the position.
 * For a row at position p (offset + t, or positions[t]) and pair i < dims/2:
 *   theta_i = p * scale * base^(-2i / dims)
 *   rotate-half (traditional = 0): the pair (x[i], x[i + dims/2])
 *   traditional:                   the pair (x[2i], x[2i + 1])
 *   (a, b) -> (a cos - b sin, a sin + b cos); features past dims pass as they are.
 * Backward (g -> gx, overwriting gx): the rotation by -theta,
 *   (g_a, g_b) -> (g_a cos + g_b sin, -g_a sin + g_b cos).
 * The angles and their cos/sin are computed in double once per call (a T x
 * dims/2 table) and rounded to the compute dtype; float16 and bfloat16 are
 * staged to float32; float64 computes in double throughout. */
#include <math.h>
#include <string.h>
#include "ops/internal.h"

typedef struct rope_attrs {
  lt_rope_opts opts; /* opts.positions is not kept here: it is saved value 0 */
} rope_attrs;

/* ---- the kernels: one row of D features, forward or backward ---- */

/* y = x rotated by (c, s) pair by pair; sign -1 rotates by -theta (backward). */
static void row_f32(float *y, const float *x, const float *c, const float *s, float sign, int64_t half, int64_t d,
                    int traditional) {
  int64_t step = traditional ? 2 : 1, other = traditional ? 1 : half;
  for (int64_t i = 0; i < half; i++) {
    float a = x[i * step], b = x[i * step + other], sn = sign * s[i];
    y[i * step] = a * c[i] - b * sn;
    y[i * step + other] = a * sn + b * c[i];
  }
  for (int64_t j = 2 * half; j < d; j++) y[j] = x[j];
}

static void row_f64(double *y, const double *x, const double *c, const double *s, double sign, int64_t half, int64_t d,
                    int traditional) {
  int64_t step = traditional ? 2 : 1, other = traditional ? 1 : half;
  for (int64_t i = 0; i < half; i++) {
    double a = x[i * step], b = x[i * step + other], sn = sign * s[i];
    y[i * step] = a * c[i] - b * sn;
    y[i * step + other] = a * sn + b * c[i];
  }
  for (int64_t j = 2 * half; j < d; j++) y[j] = x[j];
}

/* ---- geometry and the cos/sin table ---- */

typedef struct geometry {
  int64_t rows, t, p, d, half; /* rows of D features; row r sits at position (r / p) % t */
} geometry;

static geometry geometry_of(const lt_tensor *x, const lt_rope_opts *o) {
  geometry g = {.t = x->shape[o->seq_axis], .p = 1, .d = x->shape[x->ndim - 1], .half = o->dims / 2};
  for (int k = o->seq_axis + 1; k < x->ndim - 1; k++) g.p *= x->shape[k];
  g.rows = g.d ? lt_tensor_size(x) / g.d : 0;
  return g;
}

/* cos and sin of theta for every (position, pair): 2 * t * half values of
 * element size es from the context's allocator, cos first; positions in
 * parallel (the table costs a cos and a sin per entry). */
static lt_status make_table(lt_ctx *ctx, void **table, size_t *bytes, const geometry *g, const lt_rope_opts *o,
                            const int64_t *pos, size_t es) {
  *bytes = (size_t)(2 * g->t * g->half) * es;
  *table = lt_ctx_alloc(ctx, *bytes ? *bytes : 1);
  if (!*table) return lt_ctx_fail(ctx, LT_ERR_MEM, "rope: out of memory for the angle table");
  int64_t th = g->t * g->half;
  int threads = th >= 4096 ? lt__ctx_threads(ctx) : 1;
  double *c64 = *table, *s64 = c64 + th;
  float *c32 = *table, *s32 = c32 + th;
  LT_PARALLEL_FOR(threads, t, g->t, {
    double p = (double)(pos ? pos[t] : o->offset + t) * o->scale;
    for (int64_t i = 0; i < g->half; i++) {
      double theta = p * pow(o->base, -(double)(2 * i) / (double)o->dims), c = cos(theta), s = sin(theta);
      if (es == sizeof(double))
        c64[t * g->half + i] = c, s64[t * g->half + i] = s;
      else
        c32[t * g->half + i] = (float)c, s32[t * g->half + i] = (float)s;
    }
  });
  return LT_OK;
}

/* y = rope(x) (sign 1) or its backward (sign -1), x and y contiguous in dtype dt. */
static void run(const lt_ctx *ctx, void *y, const void *x, const void *table, const geometry *g, int traditional,
                double sign, lt_dtype dt) {
  int threads = g->rows * g->d >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  int64_t th = g->t * g->half;
  if (dt == LT_FLOAT64) {
    const double *c = table, *s = c + th;
    LT_PARALLEL_FOR(threads, r, g->rows, {
      int64_t t = (r / g->p) % g->t;
      row_f64((double *)y + r * g->d, (const double *)x + r * g->d, c + t * g->half, s + t * g->half, sign, g->half,
              g->d, traditional);
    });
  } else {
    const float *c = table, *s = c + th;
    LT_PARALLEL_FOR(threads, r, g->rows, {
      int64_t t = (r / g->p) % g->t;
      row_f32((float *)y + r * g->d, (const float *)x + r * g->d, c + t * g->half, s + t * g->half, (float)sign,
              g->half, g->d, traditional);
    });
  }
}

static size_t positions_bytes(const lt_tensor *positions) {
  int64_t n = lt_tensor_size(positions);
  return (size_t)(n ? n : 1) * sizeof(int64_t);
}

/* The positions tensor's values as int64 in a buffer from the allocator (NULL when none). */
static lt_status read_positions(lt_ctx *ctx, int64_t **pos, const lt_tensor *positions) {
  *pos = NULL;
  if (!positions) return LT_OK;
  *pos = lt_ctx_alloc(ctx, positions_bytes(positions));
  if (!*pos) return lt_ctx_fail(ctx, LT_ERR_MEM, "rope: out of memory");
  lt_tensor_read(positions, *pos, LT_INT64);
  return LT_OK;
}

/* out = rope(x) or its backward, a new tensor with x's float dtype. */
static lt_status apply(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_rope_opts *o, double sign) {
  *out = NULL;
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  geometry g = geometry_of(x, o);
  lt_tensor *xc = NULL;
  int64_t *pos = NULL;
  void *table = NULL;
  size_t tbytes = 0;
  lt_status st = read_positions(ctx, &pos, o->positions);
  if (!st) st = make_table(ctx, &table, &tbytes, &g, o, pos, lt_dtype_info(cdt)->size);
  if (!st) st = lt__as_contig(ctx, &xc, x, cdt);
  if (!st) st = lt_tensor_new(ctx, out, cdt, x->ndim, x->shape);
  if (!st) run(ctx, lt_tensor_data(*out), lt_tensor_data(xc), table, &g, o->traditional, sign, cdt);
  if (pos) lt_ctx_free(ctx, pos, positions_bytes(o->positions));
  if (table) lt_ctx_free(ctx, table, tbytes ? tbytes : 1);
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, out, lt__float_result(x->dtype));
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
  }
  return st;
}

/* ---- argument checks ---- */

static lt_status check_positions(lt_ctx *ctx, const lt_tensor *pos, int64_t t) {
  if (!pos) return LT_OK;
  if (pos->dtype != LT_INT32 && pos->dtype != LT_INT64)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: positions must be an int32 or int64 tensor, got %s",
                       lt_dtype_info(pos->dtype)->name);
  if (pos->ndim != 1 || pos->shape[0] != t) {
    char s[LT_SHAPE_STR_MAX];
    return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: positions has shape %s, expected {%lld} (one per position of x)",
                       lt__shape_str(s, sizeof s, pos->ndim, pos->shape), (long long)t);
  }
  return LT_OK;
}

/* Checks x and the options; *o gets them with seq_axis made non-negative. */
static lt_status check_args(lt_ctx *ctx, const lt_tensor *x, const lt_rope_opts *in, lt_rope_opts *o) {
  *o = *in;
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: x must be a float tensor, got %s", lt_dtype_info(x->dtype)->name);
  if (x->ndim < 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: x must have at least 2 dimensions (positions and features), got %d",
                       x->ndim);
  o->seq_axis = lt__axis(in->seq_axis, x->ndim);
  if (o->seq_axis < 0 || o->seq_axis == x->ndim - 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: seq_axis %d is not an axis of x other than the last (x has %d)",
                       in->seq_axis, x->ndim);
  int64_t d = x->shape[x->ndim - 1];
  if (in->dims <= 0 || in->dims % 2 != 0 || in->dims > d)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: dims must be even and in [2, %lld] (x's last axis), got %lld",
                       (long long)d, (long long)in->dims);
  if (!(in->base > 0) || !isfinite(in->base))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: base must be a positive number, got %g", in->base);
  if (!isfinite(in->scale)) return lt_ctx_fail(ctx, LT_ERR_ARG, "rope: scale must be finite, got %g", in->scale);
  return check_positions(ctx, in->positions, x->shape[o->seq_axis]);
}

/* ---- autograd ---- */

static lt_status rope_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_rope_opts o = ((const rope_attrs *)node->attrs)->opts;
  o.positions = lt__saved(node, 0);
  return apply(ctx, &gin[0], gouts[0], &o, -1.0);
}

lt_status lt_rope(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_rope_opts *opts) {
  *out = NULL;
  lt_rope_opts o;
  lt_status st = check_args(ctx, x, opts, &o);
  if (!st) st = apply(ctx, out, x, &o, 1.0);
  if (st) return st;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP("rope", rope_backward, rope_attrs, 1), out, 1, &x);
  if (node) {
    ((rope_attrs *)node->attrs)->opts = o;
    ((rope_attrs *)node->attrs)->opts.positions = NULL;
    if (o.positions) lt__node_save(node, 0, o.positions);
  }
  return st;
}
