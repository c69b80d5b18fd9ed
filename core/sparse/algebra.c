/* Feature-wise combination of two aligned sparse tensors
 * (lattice/sparse_algebra.h):
 *   xa (n_A, C_A), xb (n_B, C_B), an alignment of M rows -> y (M, C)
 *   y[j] = f(a_j, b_j),  a_j = xa[a_rows[j]] (zeros when -1), b_j likewise
 * f: add, sub, mul, maximum, minimum (C = C_A = C_B) or cat (C = C_A + C_B).
 * Backward, one task per input row through the rows' output row
 * j = a_out[i] (b_out[k]); a dropped row gets zeros:
 *   add  da = g        db = g              sub  da = g   db = -g
 *   mul  da = g b_j    db = g a_j          cat  da, db = the two halves of g[j]
 *   max  da = g w      db = g (1 - w),  w = [a_j > b_j] + [a_j == b_j] / 2  (min: <)
 * Every row of an input has at most one output row, so each task writes only
 * its own row: no races, no atomics, the same result for any thread count.
 * Two tensors of the same coordinates (equal maps: the same rows in the same
 * order) skip the alignment and combine their features row by row with the
 * dense ops (lt_binary, lt_concatenate). */
#include <string.h>
#include "autograd/tape.h"
#include "lattice/ops.h"
#include "lattice/sparse_algebra.h"
#include "ops/internal.h"
#include "sparse/internal.h"

typedef struct combine_dims {
  int64_t m, na, nb, ca, cb;
} combine_dims;

typedef struct combine_attrs {
  lt_sparse_binary_op op;
} combine_attrs;

static int threads_for(const lt_ctx *ctx, int64_t work) { return work >= LT_GRAIN ? lt__ctx_threads(ctx) : 1; }

/* ---- float32 ---- */

/* y = f(a, b) over n channels. */
static void apply_f32(lt_sparse_binary_op op, float *y, const float *a, const float *b, int64_t n) {
  switch (op) {
  case LT_SPARSE_ADD:
    for (int64_t c = 0; c < n; c++) y[c] = a[c] + b[c];
    break;
  case LT_SPARSE_SUB:
    for (int64_t c = 0; c < n; c++) y[c] = a[c] - b[c];
    break;
  case LT_SPARSE_MUL:
    for (int64_t c = 0; c < n; c++) y[c] = a[c] * b[c];
    break;
  case LT_SPARSE_MAXIMUM: /* NaN propagates, as lt_binary */
    for (int64_t c = 0; c < n; c++) y[c] = (a[c] > b[c] || a[c] != a[c]) ? a[c] : b[c];
    break;
  default:
    for (int64_t c = 0; c < n; c++) y[c] = (a[c] < b[c] || a[c] != a[c]) ? a[c] : b[c];
    break;
  }
}

/* zero: a row of max(C_A, C_B) zeros standing in for a missing row. */
static void forward_f32(const lt_ctx *ctx, float *y, const float *xa, const float *xb, const int32_t *ar,
                        const int32_t *br, const float *zero, lt_sparse_binary_op op, combine_dims d) {
  int64_t cy = op == LT_SPARSE_CAT ? d.ca + d.cb : d.ca;
  LT_PARALLEL_FOR(threads_for(ctx, d.m * cy), j, d.m, {
    const float *a = ar[j] >= 0 ? xa + ar[j] * d.ca : zero, *b = br[j] >= 0 ? xb + br[j] * d.cb : zero;
    float *yj = y + j * cy;
    if (op == LT_SPARSE_CAT) {
      memcpy(yj, a, (size_t)d.ca * sizeof *yj);
      memcpy(yj + d.ca, b, (size_t)d.cb * sizeof *yj);
    } else {
      apply_f32(op, yj, a, b, d.ca);
    }
  });
}

/* The weight of the first operand in the gradient of max (min): 1, 1/2 on a tie, else 0. */
static inline float extremum_weight(lt_sparse_binary_op op, float a, float b) {
  int wins = op == LT_SPARSE_MAXIMUM ? a > b : a < b;
  return wins ? 1.0f : a == b ? 0.5f : 0.0f;
}

/* d (n, C_self) for one operand ("self"), the other being "other": g is the
 * output gradient, j = out[i]; the other operand's row of j is other_rows[j]. */
typedef struct side_f32 {
  const float *self, *other, *zero;
  const int32_t *out, *other_rows;
  int64_t n, c_self, c_other, offset; /* offset: where self's channels start in g (cat) */
  int second;                         /* self is B */
} side_f32;

static void side_backward_f32(const lt_ctx *ctx, float *dx, const float *g, side_f32 s, lt_sparse_binary_op op,
                              int64_t cy) {
  LT_PARALLEL_FOR(threads_for(ctx, s.n * s.c_self), i, s.n, {
    float *di = dx + i * s.c_self;
    int64_t j = s.out[i];
    if (j < 0) {
      memset(di, 0, (size_t)s.c_self * sizeof *di);
    } else {
      const float *gj = g + j * cy + s.offset, *xi = s.self + i * s.c_self;
      const float *o = s.other_rows[j] >= 0 ? s.other + s.other_rows[j] * s.c_other : s.zero;
      for (int64_t c = 0; c < s.c_self; c++) {
        float w = 1.0f;
        if (op == LT_SPARSE_SUB && s.second) w = -1.0f;
        if (op == LT_SPARSE_MUL) w = o[c];
        if (op == LT_SPARSE_MAXIMUM || op == LT_SPARSE_MINIMUM)
          w = s.second ? 1.0f - extremum_weight(op, o[c], xi[c]) : extremum_weight(op, xi[c], o[c]);
        di[c] = gj[c] * w;
      }
    }
  });
}

/* ---- float64: the same in double (plain loops, the reference path) ---- */

static double apply_f64(lt_sparse_binary_op op, double a, double b) {
  switch (op) {
  case LT_SPARSE_ADD: return a + b;
  case LT_SPARSE_SUB: return a - b;
  case LT_SPARSE_MUL: return a * b;
  case LT_SPARSE_MAXIMUM: return (a > b || a != a) ? a : b;
  default: return (a < b || a != a) ? a : b;
  }
}

static void forward_f64(double *y, const double *xa, const double *xb, const int32_t *ar, const int32_t *br,
                        lt_sparse_binary_op op, combine_dims d) {
  int64_t cy = op == LT_SPARSE_CAT ? d.ca + d.cb : d.ca;
  for (int64_t j = 0; j < d.m; j++)
    for (int64_t c = 0; c < cy; c++) {
      double a = ar[j] >= 0 && c < d.ca ? xa[ar[j] * d.ca + c] : 0;
      if (op == LT_SPARSE_CAT)
        y[j * cy + c] = c < d.ca ? a : br[j] >= 0 ? xb[br[j] * d.cb + c - d.ca] : 0;
      else
        y[j * cy + c] = apply_f64(op, a, br[j] >= 0 ? xb[br[j] * d.cb + c] : 0);
    }
}

static void side_backward_f64(double *dx, const double *g, const double *self, const double *other, const int32_t *out,
                              const int32_t *other_rows, int64_t n, int64_t cs, int64_t co, int64_t offset, int second,
                              lt_sparse_binary_op op, int64_t cy) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < cs; c++) {
      int64_t j = out[i];
      double w = 1, o = j >= 0 && other_rows[j] >= 0 && op != LT_SPARSE_CAT ? other[other_rows[j] * co + c] : 0;
      double a = second ? o : self[i * cs + c], b = second ? self[i * cs + c] : o;
      int wins = op == LT_SPARSE_MAXIMUM ? a > b : a < b;
      double wa = wins ? 1 : a == b ? 0.5 : 0;
      if (op == LT_SPARSE_SUB && second) w = -1;
      if (op == LT_SPARSE_MUL) w = o;
      if (op == LT_SPARSE_MAXIMUM || op == LT_SPARSE_MINIMUM) w = second ? 1 - wa : wa;
      dx[i * cs + c] = j >= 0 ? g[j * cy + offset + c] * w : 0;
    }
}

/* ---- backward ---- */

static combine_dims dims_of(const lt_tensor *xa, const lt_tensor *xb, const lt_tensor *a_rows) {
  return (combine_dims){a_rows->shape[0], xa->shape[0], xb->shape[0], xa->shape[1], xb->shape[1]};
}

/* Contiguous copies in the compute dtype, and a zero row for the float32 path. */
typedef struct staged {
  lt_tensor *g, *xa, *xb;
  float *zero;
  size_t zero_bytes;
} staged;

static lt_status stage(lt_ctx *ctx, staged *s, lt_tensor *g, lt_tensor *xa, lt_tensor *xb, lt_dtype cdt,
                       const char *op) {
  int64_t c = xa->shape[1] > xb->shape[1] ? xa->shape[1] : xb->shape[1];
  lt_status st = g ? lt__as_contig(ctx, &s->g, g, cdt) : LT_OK;
  if (!st) st = lt__as_contig(ctx, &s->xa, xa, cdt);
  if (!st) st = lt__as_contig(ctx, &s->xb, xb, cdt);
  s->zero_bytes = (size_t)(c + 1) * sizeof(float);
  if (!st && cdt == LT_FLOAT32 && !(s->zero = lt_ctx_alloc(ctx, s->zero_bytes)))
    st = lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  if (s->zero) memset(s->zero, 0, s->zero_bytes);
  return st;
}

static void unstage(lt_ctx *ctx, staged *s) {
  lt_tensor_release(s->g), lt_tensor_release(s->xa), lt_tensor_release(s->xb);
  if (s->zero) lt_ctx_free(ctx, s->zero, s->zero_bytes);
}

static lt_dtype compute_dtype(const lt_tensor *xa, const lt_tensor *xb) {
  return xa->dtype == LT_FLOAT64 || xb->dtype == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
}

/* The gradient of one side: A (second = 0) or B. saved = {a_rows, b_rows, a_out, b_out}. */
static void side_backward(const lt_ctx *ctx, lt_tensor *dx, const staged *s, const lt_node *n, int second,
                          lt_sparse_binary_op op, combine_dims d) {
  const int32_t *out = lt_tensor_data(lt__saved(n, second ? 3 : 2));
  const int32_t *other_rows = lt_tensor_data(lt__saved(n, second ? 0 : 1));
  const lt_tensor *self = second ? s->xb : s->xa, *other = second ? s->xa : s->xb;
  int64_t cy = op == LT_SPARSE_CAT ? d.ca + d.cb : d.ca, offset = op == LT_SPARSE_CAT && second ? d.ca : 0;
  int64_t cs = second ? d.cb : d.ca, co = second ? d.ca : d.cb, rows = second ? d.nb : d.na;
  if (dx->dtype == LT_FLOAT64) {
    side_backward_f64(lt__f64(dx), lt__f64(s->g), lt__f64(self), lt__f64(other), out, other_rows, rows, cs, co, offset,
                      second, op, cy);
    return;
  }
  side_f32 sd = {lt__f32(self), lt__f32(other), s->zero, out, other_rows, rows, cs, co, offset, second};
  side_backward_f32(ctx, lt__f32(dx), lt__f32(s->g), sd, op == LT_SPARSE_CAT ? LT_SPARSE_ADD : op, cy);
}

static lt_status combine_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_sparse_binary_op op = ((const combine_attrs *)n->attrs)->op;
  lt_tensor *xa = n->in[0], *xb = n->in[1];
  combine_dims d = dims_of(xa, xb, lt__saved(n, 0));
  lt_dtype cdt = compute_dtype(xa, xb);
  staged s = {0};
  lt_status st = stage(ctx, &s, gouts[0], xa, xb, cdt, n->name);
  for (int side = 0; side < 2 && !st; side++) {
    if (!lt__needs(n, side)) continue;
    st = lt_tensor_new(ctx, &gin[side], cdt, 2, n->in[side]->shape);
    if (!st) side_backward(ctx, gin[side], &s, n, side, op, d);
  }
  unstage(ctx, &s);
  return st;
}

/* ---- forward ---- */

static lt_status check_features(lt_ctx *ctx, const lt_tensor *x, const lt_coords *c, const char *which,
                                const char *name) {
  char s[LT_SHAPE_STR_MAX];
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s's features must be a float tensor, got %s", name, which,
                       lt_dtype_info(x->dtype)->name);
  if (x->ndim != 2 || x->shape[0] != c->n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s's features have shape %s, its coordinates have %lld rows", name, which,
                       lt__shape_str(s, sizeof s, x->ndim, x->shape), (long long)c->n);
  return LT_OK;
}

static lt_status check_args(lt_ctx *ctx, lt_sparse_binary_op op, const lt_coords *a, const lt_tensor *xa,
                            const lt_coords *b, const lt_tensor *xb, const char *name) {
  if ((unsigned)op >= LT_SPARSE_BINARY_OPS) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown operation", name);
  lt_status st = check_features(ctx, xa, a, "a", name);
  if (!st) st = check_features(ctx, xb, b, "b", name);
  if (!st && op != LT_SPARSE_CAT && xa->shape[1] != xb->shape[1])
    st = lt_ctx_fail(ctx, LT_ERR_ARG, "%s: a has %lld channels, b has %lld", name, (long long)xa->shape[1],
                     (long long)xb->shape[1]);
  if (!st && memcmp(a->stride, b->stride, sizeof a->stride))
    st = lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the tensor strides differ, {%d,%d,%d} and {%d,%d,%d}", name, a->stride[0],
                     a->stride[1], a->stride[2], b->stride[0], b->stride[1], b->stride[2]);
  return st;
}

/* The same map: the dense op on the features, row by row. */
static lt_status same_map(lt_ctx *ctx, lt_tensor **out, lt_sparse_binary_op op, lt_tensor *xa, lt_tensor *xb) {
  static const lt_binary_op dense[] = {LT_BINARY_ADD, LT_BINARY_SUB, LT_BINARY_MUL, LT_BINARY_MAXIMUM,
                                       LT_BINARY_MINIMUM};
  if (op == LT_SPARSE_CAT) return lt_concatenate(ctx, out, 2, (lt_tensor *[]){xa, xb}, 1);
  return lt_binary(ctx, out, dense[op], xa, xb);
}

static lt_status combine(lt_ctx *ctx, lt_tensor **out, lt_sparse_binary_op op, lt_tensor *xa, lt_tensor *xb,
                         const lt_sparse_alignment *al, const char *name) {
  combine_dims d = dims_of(xa, xb, al->a_rows);
  lt_dtype cdt = compute_dtype(xa, xb);
  staged s = {0};
  lt_status st = stage(ctx, &s, NULL, xa, xb, cdt, name);
  if (!st) st = lt_tensor_new(ctx, out, cdt, 2, (int64_t[]){d.m, op == LT_SPARSE_CAT ? d.ca + d.cb : d.ca});
  const int32_t *ar = lt_tensor_data(al->a_rows), *br = lt_tensor_data(al->b_rows);
  if (!st && cdt == LT_FLOAT64)
    forward_f64(lt__f64(*out), lt__f64(s.xa), lt__f64(s.xb), ar, br, op, d);
  else if (!st)
    forward_f32(ctx, lt__f32(*out), lt__f32(s.xa), lt__f32(s.xb), ar, br, s.zero, op, d);
  unstage(ctx, &s);
  lt_dtype dt = xa->dtype == xb->dtype ? xa->dtype : lt__promote(xa->dtype, xb->dtype);
  if (!st) st = lt__to_dtype(ctx, out, dt);
  lt_node *node = NULL;
  if (!st)
    st = lt__record(ctx, &node, LT_OP(name, combine_backward, combine_attrs, 4), out, 2, (lt_tensor *[]){xa, xb});
  if (node) {
    ((combine_attrs *)node->attrs)->op = op;
    lt__node_save(node, 0, al->a_rows), lt__node_save(node, 1, al->b_rows);
    lt__node_save(node, 2, al->a_out), lt__node_save(node, 3, al->b_out);
  }
  if (st && *out) lt_tensor_release(*out), *out = NULL;
  return st;
}

lt_status lt_sparse_binary(lt_ctx *ctx, lt_coords **out_coords, lt_tensor **out, lt_sparse_binary_op op, lt_coords *a,
                           lt_tensor *xa, lt_coords *b, lt_tensor *xb, lt_sparse_join join, const char *name) {
  *out_coords = NULL, *out = NULL;
  lt_status st = check_args(ctx, op, a, xa, b, xb, name);
  if (!st && (unsigned)join >= LT_SPARSE_JOINS) st = lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown join", name);
  if (st) return st;
  if (lt_coords_equal(a, b)) {
    st = same_map(ctx, out, op, xa, xb);
    if (!st) *out_coords = lt_coords_retain(a);
    return st;
  }
  lt_sparse_alignment al;
  st = lt_sparse_align(ctx, &al, a, b, join, name);
  if (!st) st = combine(ctx, out, op, xa, xb, &al, name);
  if (!st) *out_coords = lt_coords_retain(al.out);
  lt_sparse_alignment_release(&al);
  return st;
}
