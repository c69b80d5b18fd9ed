/* The fused FFN path, lt_linear_act (lattice/transformer.h): a linear layer
 * and its activation in one op.
 *   x (..., K), weight (N, K), bias (N) or NULL -> y (..., M)
 *   h = x @ weight^T + bias                  the pre-activation (rows, N)
 *   relu, gelu, silu:  y = act(h)            M = N
 *   glu:     y = a * sigmoid(b)              M = N/2, [a, b] = h split at N/2
 *   swiglu:  y = silu(a) * b                 M = N/2
 * What is fused: the rows go through the GEMM in blocks of a few hundred,
 * and each block's activation (or gate product) is applied right after its
 * GEMM, while its pre-activation is still in cache, writing the block's rows
 * of y. So the pre-activation never makes a pass through memory of its own,
 * and a gated y is written N/2 wide without an N-wide intermediate tensor.
 * Without a gradient being taken the pre-activation lives only in one
 * block-sized scratch buffer; while one is, the blocks are written into the
 * saved pre-activation, which the backward needs.
 * Backward (g (rows, M) -> dh (rows, N), a new tensor; then as lt_linear):
 *   plain:  dh = g * act'(h)
 *   glu:    da = g sigmoid(b),  db = g a sigmoid(b) (1 - sigmoid(b))
 *   swiglu: da = g b silu'(a),  db = g silu(a)
 *   dx = dh @ weight,  dweight = dh^T @ x,  dbias = the column sums of dh.
 * float32, float16 and bfloat16 compute in float32 through sgemm and the
 * vector activation kernels of the unary ops (the result keeps x's dtype
 * when x and weight share it); float64 computes through dgemm and plain
 * loops in double. */
#include <limits.h>
#include <string.h>
#include "lattice/transformer.h"
#include "ops/internal.h"
#include "ops/unary_kernels.h"

/* A block's pre-activation stays within BLOCK_BYTES (it is read again from
 * cache, L3 at worst), but has at least MIN_ROWS rows: each block's GEMM
 * packs the whole weight again, which fewer rows would not repay. */
#define BLOCK_BYTES (4 << 20)
#define MIN_ROWS    128

static const char *const names[LT_LINEAR_ACT_COUNT] = {"relu", "gelu", "silu", "glu", "swiglu"};

const char *lt_linear_act_name(lt_linear_act_op op) { return (unsigned)op < LT_LINEAR_ACT_COUNT ? names[op] : "?"; }

static int gated(lt_linear_act_op op) { return op == LT_LINEAR_ACT_GLU || op == LT_LINEAR_ACT_SWIGLU; }

/* The unary op behind a plain activation. */
static lt_unary_op unary_of(lt_linear_act_op op) {
  return op == LT_LINEAR_ACT_RELU ? LT_UNARY_RELU : op == LT_LINEAR_ACT_GELU ? LT_UNARY_GELU : LT_UNARY_SILU;
}

/* ---- the epilogues: a block of m rows of h (m, n) -> its rows of y ---- */

/* float32: y (m, n) = act(h), or y (m, n/2) = the gate product. */
static void act_f32(const lt_ctx *ctx, lt_linear_act_op op, float *y, const float *h, int64_t m, int64_t n) {
  lt_isa isa = lt__ctx_isa(ctx);
  int threads = m * n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (!gated(op)) {
    lt__unary_fwd f = lt__unary_pick_fwd(unary_of(op), isa);
    LT_PARALLEL_FOR(threads, r, m, { f(y + r * n, h + r * n, n, 0.0f); });
    return;
  }
  int64_t half = n / 2;
  int swiglu = op == LT_LINEAR_ACT_SWIGLU;
  lt__unary_fwd f = lt__unary_pick_fwd(swiglu ? LT_UNARY_SILU : LT_UNARY_SIGMOID, isa);
  LT_PARALLEL_FOR(threads, r, m, {
    const float *a = h + r * n, *b = a + half;
    float *yr = y + r * half;
    f(yr, swiglu ? a : b, half, 0.0f); /* silu(a) or sigmoid(b) */
    const float *other = swiglu ? b : a;
    for (int64_t j = 0; j < half; j++) yr[j] *= other[j];
  });
}

/* float64: the same in double (the reference path: plain loops). */
static void act_f64(const lt_ctx *ctx, lt_linear_act_op op, double *y, const double *h, int64_t m, int64_t n) {
  if (!gated(op)) {
    lt__unary_fwd_f64(ctx, unary_of(op), y, h, m * n, 0.0);
    return;
  }
  int64_t half = n / 2;
  int swiglu = op == LT_LINEAR_ACT_SWIGLU;
  for (int64_t r = 0; r < m; r++) {
    const double *a = h + r * n, *b = a + half;
    double *yr = y + r * half;
    lt__unary_fwd_f64(ctx, swiglu ? LT_UNARY_SILU : LT_UNARY_SIGMOID, yr, swiglu ? a : b, half, 0.0);
    const double *other = swiglu ? b : a;
    for (int64_t j = 0; j < half; j++) yr[j] *= other[j];
  }
}

/* ---- forward ---- */

typedef struct dims {
  int64_t rows, k, n, m; /* m: y's width */
} dims;

/* y = act(x w^T + b) block by block; h is the saved pre-activation (rows, n)
 * or NULL, scratch one block of it. */
static void forward_blocks(lt_ctx *ctx, lt_linear_act_op op, lt_dtype dt, const dims *d, const void *x, const void *w,
                           const void *b, void *h, void *scratch, int64_t br, void *y) {
  size_t es = lt_dtype_info(dt)->size;
  for (int64_t r0 = 0; r0 < d->rows; r0 += br) {
    int64_t m = d->rows - r0 < br ? d->rows - r0 : br;
    char *blk = h ? (char *)h + r0 * d->n * (int64_t)es : scratch;
    lt__gemm_bias(ctx, dt, m, d->n, d->k, (const char *)x + r0 * d->k * (int64_t)es, w, b, blk);
    char *yb = (char *)y + r0 * d->m * (int64_t)es;
    if (dt == LT_FLOAT64)
      act_f64(ctx, op, (double *)yb, (const double *)blk, m, d->n);
    else
      act_f32(ctx, op, (float *)yb, (const float *)blk, m, d->n);
  }
}

static int64_t block_rows(const dims *d, size_t es) {
  int64_t br = (int64_t)(BLOCK_BYTES / ((size_t)(d->n ? d->n : 1) * es));
  br = br < MIN_ROWS ? MIN_ROWS : br;
  return br < d->rows ? br : (d->rows ? d->rows : 1);
}

/* The staged (contiguous, compute dtype) inputs; y and, when saving, h are
 * filled by the blocks. */
static lt_status compute(lt_ctx *ctx, lt_linear_act_op op, lt_dtype cdt, const dims *d, lt_tensor *x, lt_tensor *w,
                         lt_tensor *b, lt_tensor *y, lt_tensor *h) {
  lt_tensor *xs = NULL, *ws = NULL, *bs = NULL;
  size_t es = lt_dtype_info(cdt)->size;
  int64_t br = block_rows(d, es);
  void *scratch = NULL;
  size_t sbytes = (size_t)(br * d->n) * es;
  lt_status st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st) st = lt__as_contig(ctx, &ws, w, cdt);
  if (!st && b) st = lt__as_contig(ctx, &bs, b, cdt);
  if (!st && !h && !(scratch = lt_ctx_alloc(ctx, sbytes ? sbytes : 1)))
    st = lt_ctx_fail(ctx, LT_ERR_MEM, "linear_act: out of memory");
  if (!st)
    forward_blocks(ctx, op, cdt, d, lt_tensor_data(xs), lt_tensor_data(ws), bs ? lt_tensor_data(bs) : NULL,
                   h ? lt_tensor_data(h) : NULL, scratch, br, lt_tensor_data(y));
  if (scratch) lt_ctx_free(ctx, scratch, sbytes ? sbytes : 1);
  lt_tensor_release(xs), lt_tensor_release(ws), lt_tensor_release(bs);
  return st;
}

/* ---- backward ---- */

/* dh (rows, n) from g (rows, m) and h, float32. */
static void dh_f32(const lt_ctx *ctx, lt_linear_act_op op, float *dh, const float *g, const float *h, const dims *d) {
  lt_isa isa = lt__ctx_isa(ctx);
  int64_t n = d->n, half = n / 2;
  int threads = d->rows * n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (!gated(op)) {
    lt__unary_bwd f = lt__unary_pick_bwd(unary_of(op), isa); /* relu, gelu, silu read x only */
    LT_PARALLEL_FOR(threads, r, d->rows, { f(dh + r * n, g + r * n, h + r * n, NULL, n, 0.0f); });
    return;
  }
  if (op == LT_LINEAR_ACT_SWIGLU) {
    lt__unary_fwd silu = lt__unary_pick_fwd(LT_UNARY_SILU, isa);
    lt__unary_bwd dsilu = lt__unary_pick_bwd(LT_UNARY_SILU, isa);
    LT_PARALLEL_FOR(threads, r, d->rows, {
      const float *a = h + r * n, *b = a + half, *gr = g + r * half;
      float *da = dh + r * n, *db = da + half;
      silu(db, a, half, 0.0f);
      for (int64_t j = 0; j < half; j++) db[j] *= gr[j], da[j] = gr[j] * b[j];
      dsilu(da, da, a, NULL, half, 0.0f); /* elementwise, so in place */
    });
    return;
  }
  lt__unary_fwd sigmoid = lt__unary_pick_fwd(LT_UNARY_SIGMOID, isa);
  LT_PARALLEL_FOR(threads, r, d->rows, {
    const float *a = h + r * n, *b = a + half, *gr = g + r * half;
    float *da = dh + r * n, *db = da + half;
    sigmoid(db, b, half, 0.0f);
    for (int64_t j = 0; j < half; j++) {
      float s = db[j];
      da[j] = gr[j] * s;
      db[j] = gr[j] * a[j] * s * (1.0f - s);
    }
  });
}

/* The same in double. */
static void dh_f64(const lt_ctx *ctx, lt_linear_act_op op, double *dh, const double *g, const double *h,
                   const dims *d) {
  int64_t n = d->n, half = n / 2;
  if (!gated(op)) {
    lt__unary_bwd_f64(ctx, unary_of(op), dh, g, h, NULL, d->rows * n, 0.0);
    return;
  }
  int swiglu = op == LT_LINEAR_ACT_SWIGLU;
  for (int64_t r = 0; r < d->rows; r++) {
    const double *a = h + r * n, *b = a + half, *gr = g + r * half;
    double *da = dh + r * n, *db = da + half;
    lt__unary_fwd_f64(ctx, swiglu ? LT_UNARY_SILU : LT_UNARY_SIGMOID, db, swiglu ? a : b, half, 0.0);
    for (int64_t j = 0; j < half; j++) {
      double s = db[j];
      da[j] = swiglu ? gr[j] * b[j] : gr[j] * s;
      db[j] = swiglu ? gr[j] * s : gr[j] * a[j] * s * (1.0 - s);
    }
    if (swiglu) lt__unary_bwd_f64(ctx, LT_UNARY_SILU, da, da, a, NULL, half, 0.0);
  }
}

typedef struct act_attrs {
  lt_linear_act_op op;
  dims d;
} act_attrs;

/* dx, dweight and dbias from dh, as lt_linear's backward. */
static lt_status input_grads(lt_ctx *ctx, const lt_node *node, lt_tensor *dh, lt_dtype cdt, lt_tensor **gin) {
  const dims *d = &((const act_attrs *)node->attrs)->d;
  lt_tensor *x = node->in[0], *w = node->in[1], *xs = NULL, *ws = NULL;
  lt_status st = LT_OK;
  if (lt__needs(node, 0)) { /* dx (rows, k) = dh (rows, n) @ w (n, k) */
    st = lt__as_contig(ctx, &ws, w, cdt);
    if (!st) st = lt_tensor_new(ctx, &gin[0], cdt, x->ndim, x->shape);
    if (!st)
      lt__gemm(ctx, cdt, 0, 0, d->rows, d->k, d->n, lt_tensor_data(dh), lt_tensor_data(ws), 0, lt_tensor_data(gin[0]));
  }
  if (!st && lt__needs(node, 1)) { /* dw (n, k) = dh^T (n, rows) @ x (rows, k) */
    st = lt__as_contig(ctx, &xs, x, cdt);
    if (!st) st = lt_tensor_new(ctx, &gin[1], cdt, 2, w->shape);
    if (!st)
      lt__gemm(ctx, cdt, 1, 0, d->n, d->k, d->rows, lt_tensor_data(dh), lt_tensor_data(xs), 0, lt_tensor_data(gin[1]));
  }
  if (!st && node->nin > 2 && lt__needs(node, 2)) st = lt__sum_to_shape(ctx, &gin[2], dh, 1, &d->n);
  lt_tensor_release(xs), lt_tensor_release(ws);
  for (int k = 0; k < node->nin && !st; k++)
    if (gin[k]) st = lt__to_dtype(ctx, &gin[k], node->in[k]->dtype);
  return st;
}

static lt_status linear_act_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  const act_attrs *at = node->attrs;
  lt_tensor *h = lt__saved(node, 0), *gs = NULL, *dh = NULL;
  lt_dtype cdt = h->dtype;
  int64_t shape[2] = {at->d.rows, at->d.n};
  lt_status st = lt__as_contig(ctx, &gs, gouts[0], cdt);
  if (!st) st = lt_tensor_new(ctx, &dh, cdt, 2, shape);
  if (!st && cdt == LT_FLOAT64)
    dh_f64(ctx, at->op, lt__f64(dh), lt__f64(gs), lt__f64(h), &at->d);
  else if (!st)
    dh_f32(ctx, at->op, lt__f32(dh), lt__f32(gs), lt__f32(h), &at->d);
  lt_tensor_release(gs);
  if (!st) st = input_grads(ctx, node, dh, cdt, gin);
  lt_tensor_release(dh);
  return st;
}

/* ---- entry ---- */

static lt_status check_args(lt_ctx *ctx, const lt_tensor *x, const lt_tensor *w, const lt_tensor *b,
                            lt_linear_act_op op) {
  char s[LT_SHAPE_STR_MAX];
  if ((unsigned)op >= LT_LINEAR_ACT_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: unknown activation %d", op);
  const lt_tensor *ts[3] = {x, w, b};
  const char *what[3] = {"x", "weight", "bias"};
  for (int i = 0; i < 3; i++)
    if (ts[i] && !lt_dtype_info(ts[i]->dtype)->is_float)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: %s must be a float tensor, got %s", what[i],
                         lt_dtype_info(ts[i]->dtype)->name);
  if (w->ndim != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: weight must be 2-D (output, input), got shape %s",
                       lt__shape_str(s, sizeof s, w->ndim, w->shape));
  if (x->ndim == 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: x must have at least 1 dimension, got a 0-d tensor");
  if (x->shape[x->ndim - 1] != w->shape[1])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: weight has %lld input features, x has %lld",
                       (long long)w->shape[1], (long long)x->shape[x->ndim - 1]);
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: bias has shape %s, expected {%lld}",
                       lt__shape_str(s, sizeof s, b->ndim, b->shape), (long long)w->shape[0]);
  if (gated(op) && w->shape[0] % 2 != 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: %s splits the output in halves, but weight has %lld outputs",
                       names[op], (long long)w->shape[0]);
  if (w->shape[0] > INT_MAX || w->shape[1] > INT_MAX || lt_tensor_size(x) / (w->shape[1] ? w->shape[1] : 1) > INT_MAX)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "linear_act: a dimension is too large for BLAS");
  return LT_OK;
}

static dims dims_of(const lt_tensor *x, const lt_tensor *w, lt_linear_act_op op) {
  dims d = {.k = w->shape[1], .n = w->shape[0]};
  d.m = gated(op) ? d.n / 2 : d.n;
  d.rows = lt__numel(x->ndim - 1, x->shape);
  return d;
}

lt_status lt_linear_act(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias,
                        lt_linear_act_op op) {
  *out = NULL;
  lt_status st = check_args(ctx, x, weight, bias, op);
  if (st) return st;
  int f64 = x->dtype == LT_FLOAT64 || weight->dtype == LT_FLOAT64 || (bias && bias->dtype == LT_FLOAT64);
  lt_dtype cdt = f64 ? LT_FLOAT64 : LT_FLOAT32;
  dims d = dims_of(x, weight, op);
  int64_t shape[LT_MAX_DIMS], hshape[2] = {d.rows, d.n};
  memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
  shape[x->ndim - 1] = d.m;
  lt_tensor *ins[3] = {x, weight, bias}, *h = NULL;
  int nin = bias ? 3 : 2, save = lt__tape_wants(ctx, nin, ins);
  st = lt_tensor_new(ctx, out, cdt, x->ndim, shape);
  if (!st && save) st = lt_tensor_new(ctx, &h, cdt, 2, hshape);
  if (!st) st = compute(ctx, op, cdt, &d, x, weight, bias, *out, h);
  if (!st) st = lt__to_dtype(ctx, out, cdt == LT_FLOAT32 && x->dtype == weight->dtype ? x->dtype : cdt);
  lt_node *node = NULL;
  if (!st) st = lt__record(ctx, &node, LT_OP("linear_act", linear_act_backward, act_attrs, 1), out, nin, ins);
  if (node) {
    *(act_attrs *)node->attrs = (act_attrs){op, d};
    lt__node_save(node, 0, h);
  }
  lt_tensor_release(h);
  if (st && *out) {
    lt_tensor_release(*out);
    *out = NULL;
  }
  return st;
}
