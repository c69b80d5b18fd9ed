/* Sparse convolution with a quantized weight (lattice/sparse.h):
 *   x (n_in, C_in), qw (C_out, Kx, Ky, Kz, C_in) quantized along C_in,
 *   bias (C_out)? -> y (n_out, C_out)
 *   y = the float convolution (sparse/conv.c) with W = dequantize(qw)
 * Backward: dx = that convolution's input gradient with the same W,
 * dequantized again from the parts the node keeps; dbias = the column sums
 * of dy. The parts take no gradient: a tracked part is an error, so a network
 * with an unfrozen quantized layer says so instead of training nothing.
 *
 * Why dequantize whole: a convolution weight is small beside its activations
 * (C_out · K · C_in values; 64·27·64 is 442 KB in float32), and the float
 * path already makes a repacked float copy of it for every call. The packed
 * parts are what a model keeps between calls (4 bits with float32 scales and
 * biases: 6 bits a value in groups of 32, 5 in groups of 64, against 32). */
#include "autograd/tape.h"
#include "ops/internal.h"
#include "sparse/internal.h"

typedef struct qconv_attrs {
  int bits, group_size;
  lt_quant_mode mode;
} qconv_attrs;

static lt_dtype compute_dtype(const lt_tensor *x, const lt_tensor *b) {
  return x->dtype == LT_FLOAT64 || (b && b->dtype == LT_FLOAT64) ? LT_FLOAT64 : LT_FLOAT32;
}

/* ---- argument checks ---- */

static lt_status check_weight(lt_ctx *ctx, const lt_qweight *qw, const lt_kernel_spec *spec, int64_t c_in,
                              const char *op) {
  char s[LT_SHAPE_STR_MAX];
  lt_status st = lt_qweight_check(ctx, qw, op);
  if (st) return st;
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_qweight_shape(qw, shape);
  const int *k = spec->size;
  if (nd != 5 || shape[1] != k[0] || shape[2] != k[1] || shape[3] != k[2])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: quantized weight has shape %s, expected {C_out,%d,%d,%d,C_in}", op,
                       lt__shape_str(s, sizeof s, nd, shape), k[0], k[1], k[2]);
  if (shape[4] != c_in)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: weight has %lld input channels, input has %lld", op, (long long)shape[4],
                       (long long)c_in);
  lt_tensor *parts[3] = {qw->w, qw->scales, qw->biases};
  if (lt__tape_wants(ctx, 3, parts))
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "%s: a quantized weight takes no gradient (its weight, scales and biases must be frozen)", op);
  return LT_OK;
}

/* Before any relation is built, as lt__sparse_conv_check (sparse/conv.c). */
lt_status lt__sparse_conv_quantized_check(lt_ctx *ctx, const lt_tensor *x, const lt_qweight *qw, const lt_tensor *b,
                                          int64_t n_in, const lt_kernel_spec *spec, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features must be a float tensor, got %s", op,
                       lt_dtype_info(x->dtype)->name);
  if (b && !lt_dtype_info(b->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: bias must be a float tensor, got %s", op, lt_dtype_info(b->dtype)->name);
  if (x->ndim != 2 || x->shape[0] != n_in)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features have shape %s, the input has %lld rows", op,
                       lt__shape_str(s, sizeof s, x->ndim, x->shape), (long long)n_in);
  lt_status st = check_weight(ctx, qw, spec, x->shape[1], op);
  if (st) return st;
  int64_t c_out = qw->w->shape[0];
  if (b && (b->ndim != 1 || b->shape[0] != c_out))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: bias has shape %s, expected {%lld}", op,
                       lt__shape_str(s, sizeof s, b->ndim, b->shape), (long long)c_out);
  return LT_OK;
}

/* ---- backward ---- */

static lt_status qconv_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *x = n->in[0], *b = n->in[1];
  const qconv_attrs *a = n->attrs;
  lt_relation *r = n->saved[3].obj;
  lt_qweight qw = {lt__saved(n, 0), lt__saved(n, 1), lt__saved(n, 2), a->bits, a->group_size, a->mode};
  lt_dtype cdt = compute_dtype(x, b);
  lt_status st = LT_OK;
  if (lt__needs(n, 0)) {
    lt_tensor *w = NULL;
    st = lt_dequantize(ctx, &w, &qw);
    if (!st) st = lt__sparse_conv_grad_x(ctx, &gin[0], gouts[0], x, w, r, n->name);
    lt_tensor_release(w);
  }
  if (!st && b && lt__needs(n, 1)) {
    lt_tensor *g = NULL;
    int64_t c_out = b->shape[0];
    st = lt__as_contig(ctx, &g, gouts[0], cdt);
    if (!st) st = lt__sum_to_shape(ctx, &gin[1], g, 1, &c_out);
    if (!st) st = lt__to_dtype(ctx, &gin[1], b->dtype);
    lt_tensor_release(g);
  }
  return st;
}

/* ---- forward ---- */

static void release_relation(void *r) { lt_relation_release(r); }

/* *out (n_out, C_out) in cdt, or in x's dtype when x, the dequantized weight
 * and the bias share it (float16, bfloat16), as the float convolution gives. */
static lt_status compute(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias,
                         lt_relation *r, const char *op) {
  lt_dtype cdt = compute_dtype(x, bias);
  lt_tensor *w = NULL;
  lt_status st = lt_dequantize(ctx, &w, qw);
  if (!st) st = lt_tensor_new(ctx, out, cdt, 2, (int64_t[]){r->out->n, w->shape[0]});
  if (!st) st = lt__sparse_conv_compute(ctx, *out, x, w, bias, r, cdt, op);
  if (!st && cdt == LT_FLOAT32 && x->dtype == w->dtype && (!bias || bias->dtype == x->dtype))
    st = lt__to_dtype(ctx, out, x->dtype);
  lt_tensor_release(w);
  return st;
}

lt_status lt_sparse_conv_quantized(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias,
                                   lt_relation *r, const char *op) {
  *out = NULL;
  lt_status st = lt__sparse_conv_quantized_check(ctx, x, qw, bias, r->in->n, &r->spec, op);
  if (!st) st = compute(ctx, out, x, qw, bias, r, op);
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
    return st;
  }
  lt_node *n;
  lt_tensor *ins[2] = {x, bias};
  st = lt__record(ctx, &n, LT_OP(op, qconv_backward, qconv_attrs, 4), out, 2, ins);
  if (n) {
    *(qconv_attrs *)n->attrs = (qconv_attrs){qw->bits, qw->group_size, qw->mode};
    lt__node_save(n, 0, qw->w);
    lt__node_save(n, 1, qw->scales);
    if (qw->biases) lt__node_save(n, 2, qw->biases);
    lt__node_keep(n, 3, lt_relation_retain(r), release_relation);
  }
  return st;
}
