/* Differentiable layout ops: reshape, transpose, expand_dims, squeeze, slice,
 * broadcast_to (views sharing storage), contiguous and astype (copies). */
#include <string.h>
#include "ops/internal.h"

/* ---- reshape ---- */

static lt_status reshape_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  return lt_reshape(ctx, &gin[0], g, n->in[0]->ndim, n->in[0]->shape);
}

/* Resolves one -1 in `shape` against x's size. */
static lt_status infer_shape(lt_ctx *ctx, const lt_tensor *x, int ndim, const int64_t *shape, int64_t *out) {
  int64_t known = 1, size = lt_tensor_size(x);
  int infer = -1, overflow = 0;
  for (int i = 0; i < ndim; i++) {
    out[i] = shape[i];
    if (shape[i] == -1 && infer < 0)
      infer = i;
    else if (shape[i] < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "reshape: invalid dimension %lld", (long long)shape[i]);
    else
      overflow |= __builtin_mul_overflow(known, shape[i], &known); /* such a shape fits no tensor */
  }
  if (infer >= 0 && !overflow) out[infer] = known ? size / known : 0;
  char a[LT_SHAPE_STR_MAX], b[LT_SHAPE_STR_MAX];
  if (overflow || (infer >= 0 && known && size % known) || lt__numel(ndim, out) != size)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "reshape: cannot reshape %s (%lld elements) into %s",
                       lt__shape_str(a, sizeof a, x->ndim, x->shape), (long long)size,
                       lt__shape_str(b, sizeof b, ndim, shape));
  return LT_OK;
}

lt_status lt_reshape(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int ndim, const int64_t *shape) {
  *out = NULL;
  if (ndim < 0 || ndim > LT_MAX_DIMS)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "reshape: %d dimensions (at most %d)", ndim, LT_MAX_DIMS);
  int64_t dims[LT_MAX_DIMS];
  lt_status st = infer_shape(ctx, x, ndim, shape, dims);
  if (st) return st;
  lt_tensor *src = NULL;
  st = lt_tensor_is_contiguous(x) ? (src = lt_tensor_retain(x), LT_OK) : lt__as_contig(ctx, &src, x, x->dtype);
  if (!st) st = lt__view(ctx, out, src, ndim, dims, NULL, src->offset);
  if (st == LT_ERR_ARG) { /* an empty tensor may take any shape whose strides still fit */
    char b[LT_SHAPE_STR_MAX];
    lt_ctx_fail(ctx, st, "reshape: shape %s is too large", lt__shape_str(b, sizeof b, ndim, dims));
  }
  lt_tensor_release(src);
  if (st) return st;
  return lt__record(ctx, NULL, LT_OP("reshape", reshape_backward, lt_no_attrs, 0), out, 1, &x);
}

/* ---- transpose ---- */

typedef struct transpose_attrs {
  int perm[LT_MAX_DIMS];
} transpose_attrs;

static lt_status transpose_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  int inv[LT_MAX_DIMS];
  const transpose_attrs *at = n->attrs;
  for (int i = 0; i < g->ndim; i++) inv[at->perm[i]] = i;
  return lt_transpose(ctx, &gin[0], g, inv);
}

lt_status lt_transpose(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const int *perm) {
  *out = NULL;
  int p[LT_MAX_DIMS], seen[LT_MAX_DIMS] = {0};
  int64_t shape[LT_MAX_DIMS], strides[LT_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) {
    p[i] = perm ? lt__axis(perm[i], x->ndim) : x->ndim - 1 - i;
    if (p[i] < 0 || seen[p[i]]++)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "transpose: axes must be a permutation of the %d dimensions", x->ndim);
    shape[i] = x->shape[p[i]];
    strides[i] = x->strides[p[i]];
  }
  lt_status st = lt__view(ctx, out, x, x->ndim, shape, strides, x->offset);
  if (st) return st;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP("transpose", transpose_backward, transpose_attrs, 0), out, 1, &x);
  if (node) memcpy(((transpose_attrs *)node->attrs)->perm, p, sizeof p);
  return st;
}

/* ---- expand_dims, squeeze: reshapes that name an axis ---- */

lt_status lt_expand_dims(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) {
  *out = NULL;
  int a = lt__axis(axis, x->ndim + 1);
  if (a < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "expand_dims: axis %d is out of range for %d dimensions", axis + (axis >= 0),
                       x->ndim + 1); /* as Lua counts */
  if (x->ndim == LT_MAX_DIMS) return lt_ctx_fail(ctx, LT_ERR_ARG, "expand_dims: at most %d dimensions", LT_MAX_DIMS);
  int64_t shape[LT_MAX_DIMS];
  for (int i = 0, j = 0; i <= x->ndim; i++) shape[i] = i == a ? 1 : x->shape[j++];
  return lt_reshape(ctx, out, x, x->ndim + 1, shape);
}

lt_status lt_squeeze(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) {
  *out = NULL;
  int a = -1;
  if (axis != LT_ALL_AXES) {
    a = lt__axis(axis, x->ndim);
    if (a < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "squeeze: axis %d is out of range for %d dimensions", axis + (axis >= 0),
                         x->ndim); /* as Lua counts */
    if (x->shape[a] != 1)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "squeeze: axis %d has size %lld, not 1", a + 1, /* as Lua counts */
                         (long long)x->shape[a]);
  }
  int64_t shape[LT_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++)
    if (!(i == a || (a < 0 && x->shape[i] == 1))) shape[nd++] = x->shape[i];
  return lt_reshape(ctx, out, x, nd, shape);
}

/* ---- slice ---- */

typedef struct slice_attrs {
  int axis;
  int64_t start, stop, step;
} slice_attrs;

static lt_status slice_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  const lt_tensor *x = n->in[0];
  lt_tensor *z = NULL, *view = NULL;
  lt_status st = lt_tensor_zeros(ctx, &z, g->dtype, x->ndim, x->shape);
  const slice_attrs *at = n->attrs;
  if (!st) st = lt__slice_view(ctx, &view, z, at->axis, at->start, at->stop, at->step);
  if (!st) lt__assign(view, g);
  lt_tensor_release(view);
  if (st)
    lt_tensor_release(z);
  else
    gin[0] = z;
  return st;
}

/* Python's slice.indices on an axis of n elements: negative bounds count from
 * the end, then clamp to [0, n] for a positive step and to [-1, n - 1] for a
 * negative one, where a stop of -1 means before the first element (so
 * x[3:-(n+1):-1] reaches element 0, as in Python). */
static void resolve_bounds(int64_t n, int64_t step, int64_t *start, int64_t *stop) {
  int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? n : n - 1;
  int64_t *b[2] = {start, stop};
  for (int k = 0; k < 2; k++) {
    if (*b[k] < 0) *b[k] += n;
    *b[k] = *b[k] < lo ? lo : *b[k] > hi ? hi : *b[k];
  }
  if (step > 0 ? *stop < *start : *stop > *start) *stop = *start; /* empty */
}

lt_status lt_slice(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int64_t start, int64_t stop, int64_t step) {
  *out = NULL;
  int a = lt__axis(axis, x->ndim);
  if (a < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "slice: axis %d is out of range for %d dimensions", axis + (axis >= 0),
                       x->ndim); /* as Lua counts */
  if (step == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "slice: step must be non-zero, got 0");
  resolve_bounds(x->shape[a], step, &start, &stop);
  lt_status st = lt__slice_view(ctx, out, x, a, start, stop, step);
  if (st) return st;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP("slice", slice_backward, slice_attrs, 0), out, 1, &x);
  if (node) *(slice_attrs *)node->attrs = (slice_attrs){a, start, stop, step};
  return st;
}

/* ---- broadcast_to ---- */

static lt_status broadcast_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  return lt__sum_to_shape(ctx, &gin[0], gouts[0], n->in[0]->ndim, n->in[0]->shape);
}

lt_status lt_broadcast_to(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int ndim, const int64_t *shape) {
  *out = NULL;
  int64_t strides[LT_MAX_DIMS];
  char a[LT_SHAPE_STR_MAX], b[LT_SHAPE_STR_MAX];
  if (ndim < x->ndim || ndim > LT_MAX_DIMS) goto bad;
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) /* negative or overflowing sizes fit no tensor */
    if (shape[i] < 0 || __builtin_mul_overflow(numel, shape[i], &numel)) goto bad;
  for (int i = 0; i < ndim; i++) {
    int j = i - (ndim - x->ndim);
    int64_t d = j >= 0 ? x->shape[j] : 1;
    if (d != shape[i] && d != 1) goto bad;
    strides[i] = (j < 0 || d != shape[i]) ? 0 : x->strides[j];
  }
  lt_status st = lt__view(ctx, out, x, ndim, shape, strides, x->offset);
  if (st) return st;
  return lt__record(ctx, NULL, LT_OP("broadcast_to", broadcast_backward, lt_no_attrs, 0), out, 1, &x);
bad:
  return lt_ctx_fail(ctx, LT_ERR_ARG, "broadcast_to: cannot broadcast %s to %s",
                     lt__shape_str(a, sizeof a, x->ndim, x->shape), lt__shape_str(b, sizeof b, ndim, shape));
}

/* ---- contiguous, astype ---- */

static lt_status contiguous_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  (void)ctx, (void)node;
  gin[0] = lt_tensor_retain(gouts[0]);
  return LT_OK;
}

lt_status lt_contiguous(lt_ctx *ctx, lt_tensor **out, lt_tensor *x) {
  lt_status st = lt__copy_as(ctx, out, x, x->dtype);
  if (st) return st;
  return lt__record(ctx, NULL, LT_OP("contiguous", contiguous_backward, lt_no_attrs, 0), out, 1, &x);
}

static lt_status astype_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  return lt_astype(ctx, &gin[0], gouts[0], node->in[0]->dtype);
}

lt_status lt_astype(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype dt) {
  *out = NULL;
  if ((unsigned)dt >= LT_DTYPE_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "astype: unknown dtype %d", (int)dt);
  lt_status st = lt__copy_as(ctx, out, x, dt);
  if (st) return st;
  /* Only float-to-float casts carry a gradient. */
  if (!lt_dtype_info(dt)->is_float || !lt_dtype_info(x->dtype)->is_float) return LT_OK;
  return lt__record(ctx, NULL, LT_OP("astype", astype_backward, lt_no_attrs, 0), out, 1, &x);
}
