/* linear with a quantized weight (MLX's quantized_matmul with transpose):
 *   x (..., in), W (out, in) quantized, bias (out) or NULL -> y (..., out)
 *   y = x @ W^T + bias
 * lt_quant_linear_int8 is the same with x rounded to int8 for two rows or
 * more (quant/int8.c), lt_quant_pack_int8 the pack its kernel reads.
 * Backward (both): dx = g @ W, computed a tile of W at a time (quant/matmul.c);
 * dbias = the column sums of g. W takes no gradient: a tracked part of it is
 * an error, so a model with an unfrozen quantized layer says so at once
 * instead of training nothing. */
#include "quant/internal.h"

typedef struct qlinear_attrs {
  int bits, group_size;
  lt_quant_mode mode;
} qlinear_attrs;

static lt_dtype compute_dtype(const lt_tensor *x, const lt_tensor *b) {
  return x->dtype == LT_FLOAT64 || (b && b->dtype == LT_FLOAT64) ? LT_FLOAT64 : LT_FLOAT32;
}

static int64_t rows_of(const lt_tensor *x, int64_t in) {
  return in ? lt_tensor_size(x) / in : lt__numel(x->ndim - 1, x->shape);
}

/* ---- argument checks ---- */

static lt_status check_weight(lt_ctx *ctx, const lt_qweight *qw) {
  lt_status st = lt_qweight_check(ctx, qw, "linear");
  if (st) return st;
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_qweight_shape(qw, shape);
  char s[LT_SHAPE_STR_MAX];
  if (nd != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: a quantized weight must be 2-D (output, input), got shape %s",
                       lt__shape_str(s, sizeof s, nd, shape));
  lt_tensor *parts[3] = {qw->w, qw->scales, qw->biases};
  if (lt__tape_wants(ctx, 3, parts))
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "linear: a quantized weight takes no gradient (its weight, scales and biases must be frozen)");
  return LT_OK;
}

static lt_status check_args(lt_ctx *ctx, const lt_tensor *x, const lt_qweight *qw, const lt_tensor *b) {
  char s[LT_SHAPE_STR_MAX];
  lt_status st = check_weight(ctx, qw);
  if (st) return st;
  int64_t shape[LT_MAX_DIMS];
  lt_qweight_shape(qw, shape);
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: x must be a float tensor, got %s", lt_dtype_info(x->dtype)->name);
  if (b && !lt_dtype_info(b->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: bias must be a float tensor, got %s", lt_dtype_info(b->dtype)->name);
  if (x->ndim == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: x must have at least 1 dimension, got a 0-d tensor");
  if (x->shape[x->ndim - 1] != shape[1])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: weight has %lld input features, x has %lld", (long long)shape[1],
                       (long long)x->shape[x->ndim - 1]);
  if (b && (b->ndim != 1 || b->shape[0] != shape[0]))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: bias has shape %s, expected {%lld}",
                       lt__shape_str(s, sizeof s, b->ndim, b->shape), (long long)shape[0]);
  return LT_OK;
}

/* ---- forward ---- */

/* y (rows, out) += bias, in dt. */
static lt_status add_bias(lt_ctx *ctx, lt_tensor *y, lt_tensor *bias, lt_dtype dt, int64_t rows, int64_t out) {
  lt_tensor *bs = NULL;
  lt_status st = lt__as_contig(ctx, &bs, bias, dt);
  if (st) return st;
  int threads = rows * out >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (dt == LT_FLOAT64) {
    double *yp = lt_tensor_data(y);
    const double *bp = lt_tensor_data(bs);
    LT_PARALLEL_FOR(threads, r, rows, {
      for (int64_t j = 0; j < out; j++) yp[r * out + j] += bp[j];
    });
  } else {
    float *yp = lt_tensor_data(y);
    const float *bp = lt_tensor_data(bs);
    LT_PARALLEL_FOR(threads, r, rows, {
      for (int64_t j = 0; j < out; j++) yp[r * out + j] += bp[j];
    });
  }
  lt_tensor_release(bs);
  return LT_OK;
}

/* y (rows, out) = x @ W^T in cdt: path 4 the int8 kernel (float32 and an
 * affine 4- or 8-bit W; the others as path 0), pack q's pack or NULL. */
static lt_status product(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, lt_dtype cdt, const void *x,
                         int64_t rows, void *y, int path, const uint8_t *pack) {
  if (path == 4 && cdt == LT_FLOAT32 && lt__qi8_fits(q)) return lt__qmatmul_int8(ctx, kt, q, pack, x, rows, y);
  return lt__qmatmul_forward(ctx, kt, q, cdt, x, rows, y, path == 4 ? 0 : path);
}

/* *out = x @ W^T + bias with the kernels of isa, for the contiguous qw. */
static lt_status compute(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias, lt_isa isa,
                         int path, const uint8_t *pack, lt_isa *used) {
  lt__qmat q = lt__qmat_of(qw);
  lt_dtype cdt = compute_dtype(x, bias);
  int64_t shape[LT_MAX_DIMS], rows = rows_of(x, q.in);
  memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
  shape[x->ndim - 1] = q.rows;
  lt_tensor *xs = NULL, *y = NULL;
  lt_status st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st) st = lt_tensor_new(ctx, &y, cdt, x->ndim, shape);
  if (!st) {
    const lt__qkernels *kt = lt__qkernels_for(isa, used);
    st = product(ctx, kt, &q, cdt, lt_tensor_data(xs), rows, lt_tensor_data(y), path, pack);
  }
  if (!st && bias) st = add_bias(ctx, y, bias, cdt, rows, q.rows);
  if (!st && cdt == LT_FLOAT32 && x->dtype == lt_qweight_dtype(qw)) st = lt__to_dtype(ctx, &y, x->dtype);
  lt_tensor_release(xs);
  if (st) {
    lt_tensor_release(y);
    return st;
  }
  *out = y;
  return LT_OK;
}

/* ---- backward ---- */

static lt_qweight saved_weight(const lt_node *n) {
  const qlinear_attrs *a = n->attrs;
  return (lt_qweight){lt__saved(n, 0), lt__saved(n, 1), lt__saved(n, 2) /* NULL when not saved */,
                      a->bits,         a->group_size,   a->mode};
}

/* dx (..., in) = g (..., out) @ W in dt. */
static lt_status input_grad(lt_ctx *ctx, lt_tensor **dx, lt_tensor *g, const lt_qweight *qw, lt_dtype dt, lt_isa isa,
                            int path, lt_isa *used) {
  lt__qmat q = lt__qmat_of(qw);
  int64_t shape[LT_MAX_DIMS], rows = rows_of(g, q.rows);
  memcpy(shape, g->shape, (size_t)g->ndim * sizeof *shape);
  shape[g->ndim - 1] = q.in;
  lt_tensor *gs = NULL;
  lt_status st = lt__as_contig(ctx, &gs, g, dt);
  if (!st) st = lt_tensor_new(ctx, dx, dt, g->ndim, shape);
  if (!st) {
    const lt__qkernels *kt = lt__qkernels_for(isa, used);
    st = lt__qmatmul_grad(ctx, kt, &q, dt, lt_tensor_data(gs), rows, lt_tensor_data(*dx), path);
  }
  lt_tensor_release(gs);
  return st;
}

/* dbias (out) = the sum of g's rows. */
static lt_status bias_grad(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, int64_t nout) {
  lt_tensor *gc = NULL, *g2 = NULL;
  int64_t shape[2] = {rows_of(g, nout), nout};
  lt_status st = lt__as_contig(ctx, &gc, g, lt__compute_dtype(g->dtype));
  if (!st) st = lt__view(ctx, &g2, gc, 2, shape, NULL, gc->offset);
  if (!st) st = lt__sum_to_shape(ctx, out, g2, 1, &nout);
  lt_tensor_release(g2), lt_tensor_release(gc);
  return st;
}

static lt_status qlinear_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *x = n->in[0], *b = n->nin > 1 ? n->in[1] : NULL;
  lt_qweight qw = saved_weight(n);
  lt_status st = LT_OK;
  if (lt__needs(n, 0)) {
    st = input_grad(ctx, &gin[0], gouts[0], &qw, compute_dtype(x, b), lt__ctx_isa(ctx), 0, NULL);
    if (!st) st = lt__to_dtype(ctx, &gin[0], x->dtype);
  }
  if (!st && b && lt__needs(n, 1)) {
    st = bias_grad(ctx, &gin[1], gouts[0], b->shape[0]);
    if (!st) st = lt__to_dtype(ctx, &gin[1], b->dtype);
  }
  return st;
}

/* ---- entry points ---- */

static lt_status linear_with(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias,
                             lt_isa isa, int path, const uint8_t *pack, lt_isa *used, lt_qweight *kept) {
  *out = NULL;
  lt_status st = check_args(ctx, x, qw, bias);
  if (st) return st;
  st = lt__qweight_contig(ctx, kept, qw);
  if (!st) st = compute(ctx, out, x, kept, bias, isa, path, pack, used);
  return st;
}

lt_status lt__quant_linear_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias,
                               lt_isa isa, int path, lt_isa *used) {
  lt_qweight c = {0};
  lt_status st = linear_with(ctx, out, x, qw, bias, isa, path, NULL, used, &c);
  lt_qweight_release(&c);
  return st;
}

/* The product at path (0 or 4) recorded for the backward, which is g @ W
 * whichever path the forward took. */
static lt_status linear_recorded(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias,
                                 int path, const uint8_t *pack) {
  lt_qweight c = {0};
  lt_status st = linear_with(ctx, out, x, qw, bias, lt__ctx_isa(ctx), path, pack, NULL, &c);
  if (!st) {
    lt_tensor *ins[2] = {x, bias};
    lt_node *n;
    st = lt__record(ctx, &n, LT_OP("quantized_linear", qlinear_backward, qlinear_attrs, 3), out, bias ? 2 : 1, ins);
    if (n) {
      *(qlinear_attrs *)n->attrs = (qlinear_attrs){c.bits, c.group_size, c.mode};
      lt__node_save(n, 0, c.w);
      lt__node_save(n, 1, c.scales);
      if (c.biases) lt__node_save(n, 2, c.biases);
    }
  }
  lt_qweight_release(&c);
  return st;
}

lt_status lt_quant_linear(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias) {
  return linear_recorded(ctx, out, x, qw, bias, 0, NULL);
}

/* ---- int8 activations ---- */

static lt_status check_int8_weight(lt_ctx *ctx, const lt_qweight *qw, const char *fname) {
  lt_status st = check_weight(ctx, qw);
  if (st) return st;
  if (qw->mode != LT_QUANT_AFFINE || (qw->bits != 4 && qw->bits != 8))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: int8 activations need an affine 4- or 8-bit weight, got %s with %d bits",
                       fname, lt_quant_mode_name(qw->mode), qw->bits);
  return LT_OK;
}

lt_status lt_quant_pack_int8(lt_ctx *ctx, lt_tensor **out, const lt_qweight *qw) {
  *out = NULL;
  lt_status st = check_int8_weight(ctx, qw, "pack_int8");
  if (st) return st;
  lt_qweight c;
  st = lt__qweight_contig(ctx, &c, qw);
  if (st) return st;
  lt__qmat q = lt__qmat_of(&c);
  int64_t bytes = lt__qi8_pack_bytes(&q), tiles = lt__qi8_tiles(q.rows);
  st = lt_tensor_new(ctx, out, LT_UINT8, 1, &bytes);
  if (!st) {
    uint8_t *p = lt_tensor_data(*out);
    LT_PARALLEL_FOR(q.rows * q.in >= LT_GRAIN ? lt__ctx_threads(ctx) : 1, t, tiles, { lt__qi8_pack(&q, p, t, t + 1); });
  }
  lt_qweight_release(&c);
  return st;
}

lt_status lt_quant_linear_int8(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *pack,
                               lt_tensor *bias) {
  *out = NULL;
  lt_status st = check_int8_weight(ctx, qw, "linear");
  if (st) return st;
  int64_t shape[LT_MAX_DIMS];
  lt_qweight_shape(qw, shape);
  lt__qmat q = {.bits = qw->bits,
                .group_size = qw->group_size,
                .rows = shape[0],
                .in = shape[1],
                .groups = shape[1] / qw->group_size};
  if (pack && (pack->dtype != LT_UINT8 || pack->ndim != 1 || pack->shape[0] != lt__qi8_pack_bytes(&q) ||
               pack->strides[0] != 1 || (uintptr_t)lt_tensor_data(pack) % 64))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear: the int8 pack does not fit the weight (make it with pack_int8)");
  int64_t last = x->ndim ? x->shape[x->ndim - 1] : 0, rows = last ? lt_tensor_size(x) / last : 0;
  /* one row: the matrix-vector kernel, which reads W once either way */
  return linear_recorded(ctx, out, x, qw, bias, rows >= 2 ? 4 : 0, pack ? lt_tensor_data(pack) : NULL);
}

lt_status lt__quant_linear_grad_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, const lt_qweight *qw, lt_isa isa,
                                    int path, lt_isa *used) {
  *out = NULL;
  lt_status st = check_weight(ctx, qw);
  if (st) return st;
  int64_t shape[LT_MAX_DIMS];
  lt_qweight_shape(qw, shape);
  if (!lt_dtype_info(g->dtype)->is_float || g->ndim == 0 || g->shape[g->ndim - 1] != shape[0])
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "linear_grad: g must be a float tensor whose last axis is the weight's %lld outputs",
                       (long long)shape[0]);
  lt_qweight c;
  st = lt__qweight_contig(ctx, &c, qw);
  if (!st) st = input_grad(ctx, out, g, &c, lt__compute_dtype(g->dtype), isa, path, used);
  lt_qweight_release(&c);
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
  }
  return st;
}
