/* Sparse convolution over a kernel relation (lattice/sparse.h):
 *   x (n_in, C_in), weight (C_out, K, C_in) (the seed's (C_out, Kx, Ky, Kz, C_in)
 *   flattened), bias (C_out)? -> y (n_out, C_out)
 *   y[o] = bias + sum_k x[idx[o, k]] @ W_k,   W_k[c, j] = weight[j, k, c]
 * Backward, with the relation's transpose idxT (n_in, K):
 *   dx[i] = sum_k dy[idxT[i, k]] @ W_k^T,  dW_k = sum_o x[idx[o, k]]^T dy[o],  dbias = sum_o dy[o]
 * float32 runs the fused gather-GEMM kernels (kernels/gather_gemm.h):
 * output-stationary tiles of rows for y and dx (the input gradient is the
 * same kernel over the transposed relation), one thread per offset for dW.
 * Every sum is one chain in a fixed order, so results are the same for any
 * thread count and ISA, and no write races another. float16/bfloat16 are
 * staged to float32; float64 computes in double, plainly, for references. */
#include <string.h>
#include "autograd/tape.h"
#include "kernels/gather_gemm.h"
#include "ops/internal.h"
#include "sparse/internal.h"

/* The problem's sizes, and the weight repacked per offset. */
typedef struct conv_dims {
  int64_t n_in, n_out, c_in, c_out, k;
} conv_dims;

/* ---- float32: the fused gather-GEMM kernels (kernels/gather_gemm.h) ---- */

/* y (n_out, C_out) = b + sum_k x[idx] @ W_k, each row one chain of FMAs from
 * the bias (or 0) in offset order. */
static const int32_t *order_of(const lt_tensor *t) { return t ? lt_tensor_data(t) : NULL; }

static lt_status forward_f32(lt_ctx *ctx, float *y, const float *x, const float *w, const float *b,
                             const lt_relation *r, conv_dims d, const char *op) {
  const int32_t *idx = lt_tensor_data(r->idx);
  lt_ggemm_weight pw;
  lt_status st = lt__ggemm_pack(ctx, &pw, w, d.c_in, 1, d.k * d.c_in, d.k, d.c_in, d.c_out, op);
  if (st) return st;
  st = lt__ggemm(ctx, y, d.c_out, x, d.c_in, idx, order_of(r->order_out), &pw, b, d.n_out, d.n_in, 0, op);
  lt__ggemm_weight_release(ctx, &pw);
  return st;
}

/* dx (n_in, C_in) = sum_k dy[idxT[i, k]] @ W_k^T: the forward over the
 * transposed relation with the weight packed transposed. A mirrored relation
 * has idxT[i, k] = idx[i, K-1-k], so it runs over idx itself with the offsets
 * of the packed weight reversed. */
static lt_status grad_x_f32(lt_ctx *ctx, float *dx, const float *dy, const float *w, const lt_relation *r, conv_dims d,
                            const char *op) {
  lt_ggemm_weight pw;
  const float *w0 = r->mirrored ? w + (d.k - 1) * d.c_in : w;
  int64_t sk = r->mirrored ? -d.c_in : d.c_in;
  lt_status st = lt__ggemm_pack(ctx, &pw, w0, sk, d.k * d.c_in, 1, d.k, d.c_out, d.c_in, op);
  if (st) return st;
  const int32_t *idx_t = lt_tensor_data(r->mirrored ? r->idx : r->idx_t);
  st = lt__ggemm(ctx, dx, d.c_in, dy, d.c_out, idx_t, order_of(r->order_in), &pw, NULL, d.n_in, d.n_out, 0, op);
  lt__ggemm_weight_release(ctx, &pw);
  return st;
}

/* dw (C_out, K, C_in) = sum_o dy[o]^T x[idx[o, k]]: each dW_k^T sums its
 * edges in ascending output order, one thread per offset. */
static lt_status grad_w_f32(lt_ctx *ctx, float *dw, const float *dy, const float *x, const int32_t *idx, conv_dims d,
                            const char *op) {
  return lt__ggemm_wgrad(ctx, dw, d.c_in, d.k * d.c_in, dy, d.c_out, x, d.c_in, idx, d.n_out, d.n_in, d.k, d.c_in,
                         d.c_out, 1, 0, op);
}

/* ---- float64 kernels: the same sums in double, for references ---- */

static void forward_f64(double *y, const double *x, const double *w, const double *b, const int32_t *idx, conv_dims d) {
  for (int64_t o = 0; o < d.n_out; o++)
    for (int64_t j = 0; j < d.c_out; j++) {
      double s = b ? b[j] : 0;
      for (int64_t k = 0; k < d.k; k++) {
        int64_t i = idx[o * d.k + k];
        for (int64_t c = 0; i >= 0 && c < d.c_in; c++) s += x[i * d.c_in + c] * w[(j * d.k + k) * d.c_in + c];
      }
      y[o * d.c_out + j] = s;
    }
}

/* The output row input i feeds at offset k: idxT[i, k], or for a mirrored
 * relation (no idxT) idx[i, K-1-k]. */
static inline int64_t out_of(const int32_t *t, int mirrored, int64_t i, int64_t k, int64_t K) {
  return mirrored ? t[i * K + K - 1 - k] : t[i * K + k];
}

static void grad_x_f64(double *dx, const double *dy, const double *w, const int32_t *idx_t, int mirrored, conv_dims d) {
  for (int64_t i = 0; i < d.n_in; i++)
    for (int64_t c = 0; c < d.c_in; c++) {
      double s = 0;
      for (int64_t k = 0; k < d.k; k++) {
        int64_t o = out_of(idx_t, mirrored, i, k, d.k);
        for (int64_t j = 0; o >= 0 && j < d.c_out; j++) s += dy[o * d.c_out + j] * w[(j * d.k + k) * d.c_in + c];
      }
      dx[i * d.c_in + c] = s;
    }
}

static void grad_w_f64(double *dw, const double *dy, const double *x, const int32_t *idx, conv_dims d) {
  memset(dw, 0, (size_t)(d.c_out * d.k * d.c_in) * sizeof *dw);
  for (int64_t o = 0; o < d.n_out; o++)
    for (int64_t k = 0; k < d.k; k++) {
      int64_t i = idx[o * d.k + k];
      for (int64_t j = 0; i >= 0 && j < d.c_out; j++)
        for (int64_t c = 0; c < d.c_in; c++) dw[(j * d.k + k) * d.c_in + c] += dy[o * d.c_out + j] * x[i * d.c_in + c];
    }
}

/* ---- argument checks ---- */

/* Before any relation is built (the binding calls it first): a call refused
 * for its weight leaves the coordinate manager's cache as it was. */
lt_status lt__sparse_conv_check(lt_ctx *ctx, const lt_tensor *x, const lt_tensor *w, const lt_tensor *b, int64_t n_in,
                                const lt_kernel_spec *spec, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  const lt_tensor *ts[3] = {x, w, b};
  const char *what[3] = {"features", "weight", "bias"};
  for (int t = 0; t < 3; t++)
    if (ts[t] && !lt_dtype_info(ts[t]->dtype)->is_float)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be a float tensor, got %s", op, what[t],
                         lt_dtype_info(ts[t]->dtype)->name);
  if (x->ndim != 2 || x->shape[0] != n_in)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features have shape %s, the input has %lld rows", op,
                       lt__shape_str(s, sizeof s, x->ndim, x->shape), (long long)n_in);
  const int *k = spec->size;
  if (w->ndim != 5 || w->shape[1] != k[0] || w->shape[2] != k[1] || w->shape[3] != k[2])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: weight has shape %s, expected {C_out,%d,%d,%d,C_in}", op,
                       lt__shape_str(s, sizeof s, w->ndim, w->shape), k[0], k[1], k[2]);
  if (w->shape[4] != x->shape[1])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: weight has %lld input channels, input has %lld", op,
                       (long long)w->shape[4], (long long)x->shape[1]);
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: bias has shape %s, expected {%lld}", op,
                       lt__shape_str(s, sizeof s, b->ndim, b->shape), (long long)w->shape[0]);
  return LT_OK;
}

static conv_dims dims_of(const lt_tensor *w, const lt_relation *r) {
  return (conv_dims){r->in->n, r->out->n, w->shape[4], w->shape[0], r->volume};
}

static lt_dtype compute_dtype(const lt_tensor *x, const lt_tensor *w, const lt_tensor *b) {
  return x->dtype == LT_FLOAT64 || w->dtype == LT_FLOAT64 || (b && b->dtype == LT_FLOAT64) ? LT_FLOAT64 : LT_FLOAT32;
}

/* ---- backward ---- */

/* Contiguous copies in the compute dtype of dy, x and the weight. */
typedef struct staged {
  lt_tensor *g, *x, *w;
} staged;

static lt_status stage_backward(lt_ctx *ctx, staged *s, lt_tensor *g, const lt_node *n, lt_dtype cdt) {
  lt_status st = lt__as_contig(ctx, &s->g, g, cdt);
  if (!st && lt__needs(n, 1)) st = lt__as_contig(ctx, &s->x, n->in[0], cdt);
  if (!st && lt__needs(n, 0)) st = lt__as_contig(ctx, &s->w, n->in[1], cdt);
  return st;
}

static const int32_t *transposed(const lt_relation *r) { return lt_tensor_data(r->mirrored ? r->idx : r->idx_t); }

static lt_status conv_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
  const lt_relation *r = n->saved[0].obj;
  conv_dims d = dims_of(w, r);
  lt_dtype cdt = compute_dtype(x, w, b);
  staged s = {0};
  lt_status st = stage_backward(ctx, &s, gouts[0], n, cdt);
  if (!st && lt__needs(n, 0)) st = lt_tensor_new(ctx, &gin[0], cdt, 2, x->shape);
  if (!st && lt__needs(n, 1)) st = lt_tensor_new(ctx, &gin[1], cdt, 5, w->shape);
  if (!st && cdt == LT_FLOAT32) {
    if (gin[0]) st = grad_x_f32(ctx, lt__f32(gin[0]), lt__f32(s.g), lt__f32(s.w), r, d, n->name);
    if (!st && gin[1])
      st = grad_w_f32(ctx, lt__f32(gin[1]), lt__f32(s.g), lt__f32(s.x), lt_tensor_data(r->idx), d, n->name);
  } else if (!st) {
    if (gin[0])
      grad_x_f64(lt_tensor_data(gin[0]), lt_tensor_data(s.g), lt_tensor_data(s.w), transposed(r), r->mirrored, d);
    if (gin[1]) grad_w_f64(lt_tensor_data(gin[1]), lt_tensor_data(s.g), lt_tensor_data(s.x), lt_tensor_data(r->idx), d);
  }
  if (!st && b && lt__needs(n, 2)) st = lt__sum_to_shape(ctx, &gin[2], s.g, 1, &d.c_out);
  lt_tensor_release(s.g), lt_tensor_release(s.x), lt_tensor_release(s.w);
  for (int k = 0; k < 3 && !st; k++)
    if (gin[k]) st = lt__to_dtype(ctx, &gin[k], n->in[k]->dtype);
  return st;
}

/* ---- forward ---- */

static lt_status compute(lt_ctx *ctx, lt_tensor *y, lt_tensor *x, lt_tensor *w, lt_tensor *b, const lt_relation *r,
                         lt_dtype cdt, const char *op) {
  conv_dims d = dims_of(w, r);
  lt_tensor *xs = NULL, *ws = NULL, *bs = NULL;
  lt_status st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st) st = lt__as_contig(ctx, &ws, w, cdt);
  if (!st && b) st = lt__as_contig(ctx, &bs, b, cdt);
  if (!st && cdt == LT_FLOAT64) {
    forward_f64(lt_tensor_data(y), lt_tensor_data(xs), lt_tensor_data(ws), bs ? lt_tensor_data(bs) : NULL,
                lt_tensor_data(r->idx), d);
  } else if (!st) {
    st = forward_f32(ctx, lt__f32(y), lt__f32(xs), lt__f32(ws), bs ? lt__f32(bs) : NULL, r, d, op);
  }
  lt_tensor_release(xs), lt_tensor_release(ws), lt_tensor_release(bs);
  return st;
}

static void release_relation(void *r) { lt_relation_release(r); }

lt_status lt_sparse_conv(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias, lt_relation *r,
                         const char *op) {
  *out = NULL;
  lt_status st = lt__sparse_conv_check(ctx, x, weight, bias, r->in->n, &r->spec, op);
  if (st) return st;
  lt_dtype cdt = compute_dtype(x, weight, bias);
  st = lt_tensor_new(ctx, out, cdt, 2, (int64_t[]){r->out->n, weight->shape[0]});
  if (!st) st = compute(ctx, *out, x, weight, bias, r, cdt, op);
  /* the inputs' dtype when they all share it (float16, bfloat16), as lattice.add would give for the bias */
  if (!st && cdt == LT_FLOAT32 && x->dtype == weight->dtype && (!bias || bias->dtype == x->dtype))
    st = lt__to_dtype(ctx, out, x->dtype);
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
    return st;
  }
  lt_node *node;
  lt_tensor *ins[3] = {x, weight, bias};
  st = lt__record(ctx, &node, LT_OP(op, conv_backward, lt_no_attrs, 1), out, 3, ins);
  if (node) lt__node_keep(node, 0, lt_relation_retain(r), release_relation);
  return st;
}

/* ---- for the quantized convolution (sparse/conv_quant.c) ---- */

lt_status lt__sparse_conv_compute(lt_ctx *ctx, lt_tensor *y, lt_tensor *x, lt_tensor *w, lt_tensor *b,
                                  const lt_relation *r, lt_dtype cdt, const char *op) {
  return compute(ctx, y, x, w, b, r, cdt, op);
}

/* The float rule itself, run on a node that asks for the input's gradient
 * only: whatever kernels conv_backward uses, the quantized convolution's
 * gradient is the float one's with the dequantized weight. */
lt_status lt__sparse_conv_grad_x(lt_ctx *ctx, lt_tensor **dx, lt_tensor *g, lt_tensor *x, lt_tensor *w, lt_relation *r,
                                 const char *op) {
  lt_tensor *in[3] = {x, w, NULL}, *gin[3] = {NULL, NULL, NULL};
  int64_t in_slot[3] = {0, -1, -1}, out_slot[1] = {0};
  lt_saved saved[1] = {{r, NULL}};
  lt_node n = {.name = op,
               .backward = conv_backward,
               .nin = 3,
               .nout = 1,
               .nsaved = 1,
               .in = in,
               .in_slot = in_slot,
               .out_slot = out_slot,
               .saved = saved};
  lt_status st = conv_backward(ctx, &n, &g, gin);
  *dx = st ? NULL : gin[0];
  if (st) lt_tensor_release(gin[0]);
  lt_tensor_release(gin[1]), lt_tensor_release(gin[2]);
  return st;
}
