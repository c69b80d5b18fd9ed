/* The fused affine map behind nn.Linear, in the MLX/PyTorch weight layout.
 *   x (..., in), weight (out, in), bias (out) or NULL -> y (..., out)
 *   y = x @ weight^T + bias
 * The leading axes of x are rows of one GEMM; the bias is where the GEMM's
 * sums start (lt__gemm_bias), so no pass over y of its own. Backward:
 *   dx = g @ weight,  dweight = g^T @ x (one GEMM summing over all rows),
 *   dbias = the column sums of g.
 * float32, float16 and bfloat16 compute through sgemm (16-bit inputs staged to
 * float32; the result keeps their dtype when x and weight share it); float64
 * computes through dgemm. */
#include <limits.h>
#include <string.h>
#include "ops/internal.h"

/* The dtype the GEMM runs in and the result's dtype. */
static lt_dtype compute_dtype(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b) {
  int f64 = x->dtype == LT_FLOAT64 || w->dtype == LT_FLOAT64 || (b && b->dtype == LT_FLOAT64);
  return f64 ? LT_FLOAT64 : LT_FLOAT32;
}

static lt_dtype result_dtype(const lt_tensor *x, const lt_tensor *w, lt_dtype cdt) {
  return cdt == LT_FLOAT32 && x->dtype == w->dtype ? x->dtype : cdt;
}

/* ---- argument checks ---- */

static lt_status check_float(lt_ctx *ctx, const lt_tensor *t, const char *what) {
  if (lt_dtype_info(t->dtype)->is_float) return LT_OK;
  return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: %s must be a float tensor, got %s", what, lt_dtype_info(t->dtype)->name);
}

static lt_status check_args(lt_ctx *ctx, const lt_tensor *x, const lt_tensor *w, const lt_tensor *b) {
  char s[LT_SHAPE_STR_MAX];
  lt_status st = check_float(ctx, x, "x");
  if (!st) st = check_float(ctx, w, "weight");
  if (!st && b) st = check_float(ctx, b, "bias");
  if (st) return st;
  if (w->ndim != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: weight must be 2-D (output, input), got shape %s",
                       lt__shape_str(s, sizeof s, w->ndim, w->shape));
  if (x->ndim == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: x must have at least 1 dimension, got a 0-d tensor");
  if (x->shape[x->ndim - 1] != w->shape[1])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: weight has %lld input features, x has %lld", (long long)w->shape[1],
                       (long long)x->shape[x->ndim - 1]);
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: bias has shape %s, expected {%lld}",
                       lt__shape_str(s, sizeof s, b->ndim, b->shape), (long long)w->shape[0]);
  if (w->shape[0] > INT_MAX || w->shape[1] > INT_MAX || lt_tensor_size(x) / (w->shape[1] ? w->shape[1] : 1) > INT_MAX)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: a dimension is too large for BLAS");
  return LT_OK;
}

/* ---- backward ---- */

/* Contiguous copies of g, x and weight in the compute dtype, and the sizes. */
typedef struct staged {
  lt_tensor *g, *x, *w;
  int64_t rows, in, out;
} staged;

static void unstage(staged *s) { lt_tensor_release(s->g), lt_tensor_release(s->x), lt_tensor_release(s->w); }

static lt_status stage(lt_ctx *ctx, staged *s, lt_tensor *g, const lt_node *n, lt_dtype cdt) {
  lt_tensor *x = n->in[0], *w = n->in[1];
  s->in = w->shape[1];
  s->out = w->shape[0];
  s->rows = s->in ? lt_tensor_size(x) / s->in : lt__numel(x->ndim - 1, x->shape);
  lt_status st = lt__as_contig(ctx, &s->g, g, cdt);
  if (!st && (lt__needs(n, 1))) st = lt__as_contig(ctx, &s->x, x, cdt);
  if (!st && lt__needs(n, 0)) st = lt__as_contig(ctx, &s->w, w, cdt);
  return st;
}

/* dbias (out) = the sum of g's rows. */
static lt_status bias_grad(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, const staged *s) {
  lt_tensor *g2 = NULL;
  int64_t shape[2] = {s->rows, s->out};
  lt_status st = lt__view(ctx, &g2, g, 2, shape, NULL, g->offset);
  if (!st) st = lt__sum_to_shape(ctx, out, g2, 1, &s->out);
  lt_tensor_release(g2);
  return st;
}

static lt_status linear_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
  lt_dtype cdt = compute_dtype(x, w, b);
  staged s = {0};
  lt_status st = stage(ctx, &s, gouts[0], n, cdt);
  if (!st && lt__needs(n, 0)) { /* dx (rows, in) = g (rows, out) @ w (out, in) */
    st = lt_tensor_new(ctx, &gin[0], cdt, x->ndim, x->shape);
    if (!st)
      lt__gemm(ctx, cdt, 0, 0, s.rows, s.in, s.out, lt_tensor_data(s.g), lt_tensor_data(s.w), 0,
               lt_tensor_data(gin[0]));
  }
  if (!st && lt__needs(n, 1)) { /* dw (out, in) = g^T (out, rows) @ x (rows, in) */
    st = lt_tensor_new(ctx, &gin[1], cdt, 2, w->shape);
    if (!st)
      lt__gemm(ctx, cdt, 1, 0, s.out, s.in, s.rows, lt_tensor_data(s.g), lt_tensor_data(s.x), 0,
               lt_tensor_data(gin[1]));
  }
  if (!st && b && lt__needs(n, 2)) st = bias_grad(ctx, &gin[2], s.g, &s);
  unstage(&s);
  for (int k = 0; k < n->nin && !st; k++)
    if (gin[k]) st = lt__to_dtype(ctx, &gin[k], n->in[k]->dtype);
  return st;
}

/* ---- forward ---- */

/* y (rows, out) = x @ w^T (+ b), in the compute dtype. */
static lt_status compute(lt_ctx *ctx, lt_tensor *y, lt_tensor *x, lt_tensor *w, lt_tensor *b, lt_dtype cdt) {
  int64_t in = w->shape[1], out = w->shape[0], rows = lt_tensor_size(y) / (out ? out : 1);
  lt_tensor *xs = NULL, *ws = NULL, *bs = NULL;
  lt_status st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st) st = lt__as_contig(ctx, &ws, w, cdt);
  if (!st && b) st = lt__as_contig(ctx, &bs, b, cdt);
  if (!st)
    lt__gemm_bias(ctx, cdt, rows, out, in, lt_tensor_data(xs), lt_tensor_data(ws), bs ? lt_tensor_data(bs) : NULL,
                  lt_tensor_data(y));
  lt_tensor_release(xs), lt_tensor_release(ws), lt_tensor_release(bs);
  return st;
}

lt_status lt_linear(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias) {
  *out = NULL;
  lt_status st = check_args(ctx, x, weight, bias);
  if (st) return st;
  lt_dtype cdt = compute_dtype(x, weight, bias);
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
  shape[x->ndim - 1] = weight->shape[0];
  st = lt_tensor_new(ctx, out, cdt, x->ndim, shape);
  if (!st) st = compute(ctx, *out, x, weight, bias, cdt);
  if (!st) st = lt__to_dtype(ctx, out, result_dtype(x, weight, cdt));
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
    return st;
  }
  lt_tensor *ins[3] = {x, weight, bias};
  return lt__record(ctx, NULL, LT_OP("linear", linear_backward, lt_no_attrs, 0), out, bias ? 3 : 2, ins);
}
