/* Joining and splitting along an axis: concatenate, stack, split. */
#include <stdlib.h>
#include "ops/internal.h"

/* The common dtype of the pieces, promoted as binary ops promote. */
static lt_dtype join_dtype(int n, lt_tensor *const *xs) {
  lt_dtype dt = xs[0]->dtype;
  for (int i = 1; i < n; i++) dt = lt__promote(dt, xs[i]->dtype);
  return dt;
}

static lt_status check_pieces(lt_ctx *ctx, int n, lt_tensor *const *xs, int a) {
  for (int i = 1; i < n; i++) {
    int ok = xs[i]->ndim == xs[0]->ndim;
    for (int d = 0; ok && d < xs[0]->ndim; d++) ok = d == a || xs[i]->shape[d] == xs[0]->shape[d];
    if (!ok) {
      char s0[LT_SHAPE_STR_MAX], si[LT_SHAPE_STR_MAX];
      return lt_ctx_fail(ctx, LT_ERR_ARG, "concatenate: shapes %s and %s differ outside axis %d",
                         lt__shape_str(s0, sizeof s0, xs[0]->ndim, xs[0]->shape),
                         lt__shape_str(si, sizeof si, xs[i]->ndim, xs[i]->shape), a + 1); /* as Lua counts */
    }
  }
  return LT_OK;
}

typedef struct concat_attrs {
  int axis;
} concat_attrs;

/* Piece k's gradient is g's slice at the piece's place along the axis. */
static lt_status concat_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  int a = ((const concat_attrs *)n->attrs)->axis;
  lt_status st = LT_OK;
  int64_t lo = 0;
  for (int k = 0; k < n->nin && !st; lo += n->in[k]->shape[a], k++) {
    if (!lt__needs(n, k)) continue;
    lt_tensor *view = NULL;
    st = lt__slice_view(ctx, &view, g, a, lo, lo + n->in[k]->shape[a], 1);
    if (!st) st = lt__as_contig(ctx, &gin[k], view, view->dtype);
    lt_tensor_release(view);
  }
  return st;
}

/* Each piece copied into its place in one new tensor. */
static lt_status fill_pieces(lt_ctx *ctx, lt_tensor **out, int n, lt_tensor *const *xs, int a) {
  int64_t shape[LT_MAX_DIMS];
  for (int d = 0; d < xs[0]->ndim; d++) shape[d] = xs[0]->shape[d];
  shape[a] = 0;
  for (int i = 0; i < n; i++) shape[a] += xs[i]->shape[a];
  lt_status st = lt_tensor_new(ctx, out, join_dtype(n, xs), xs[0]->ndim, shape);
  for (int64_t i = 0, start = 0; i < n && !st; start += xs[i]->shape[a], i++) {
    lt_tensor *view = NULL;
    st = lt__slice_view(ctx, &view, *out, a, start, start + xs[i]->shape[a], 1);
    if (!st) lt__assign(view, xs[i]);
    lt_tensor_release(view);
  }
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
  }
  return st;
}

lt_status lt_concatenate(lt_ctx *ctx, lt_tensor **out, int n, lt_tensor *const *xs, int axis) {
  *out = NULL;
  if (n < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "concatenate: needs at least one tensor");
  int a = lt__axis(axis, xs[0]->ndim);
  if (a < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "concatenate: axis %d is out of range for %d dimensions", axis + (axis >= 0),
                       xs[0]->ndim); /* as Lua counts */
  lt_status st = check_pieces(ctx, n, xs, a);
  if (!st) st = fill_pieces(ctx, out, n, xs, a);
  if (st) return st;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP("concatenate", concat_backward, concat_attrs, 0), out, n, xs);
  if (node) ((concat_attrs *)node->attrs)->axis = a;
  return st;
}

lt_status lt_stack(lt_ctx *ctx, lt_tensor **out, int n, lt_tensor *const *xs, int axis) {
  *out = NULL;
  if (n < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "stack: needs at least one tensor");
  lt_tensor **expanded = calloc((size_t)n, sizeof *expanded);
  if (!expanded) return lt_ctx_fail(ctx, LT_ERR_MEM, "stack: out of memory");
  lt_status st = LT_OK;
  for (int i = 0; i < n && !st; i++) {
    if (xs[i]->ndim != xs[0]->ndim) st = lt_ctx_fail(ctx, LT_ERR_ARG, "stack: all tensors must have the same shape");
    for (int d = 0; !st && d < xs[0]->ndim; d++)
      if (xs[i]->shape[d] != xs[0]->shape[d])
        st = lt_ctx_fail(ctx, LT_ERR_ARG, "stack: all tensors must have the same shape");
    if (!st) {
      st = lt_expand_dims(ctx, &expanded[i], xs[i], axis);
      if (st)
        lt_ctx_fail(ctx, st, "stack: axis %d is out of range for %d dimensions", axis + (axis >= 0),
                    xs[0]->ndim + 1); /* as Lua counts */
    }
  }
  if (!st) st = lt_concatenate(ctx, out, n, expanded, axis);
  lt__release_all(n, expanded);
  free(expanded);
  return st;
}

lt_status lt_split(lt_ctx *ctx, lt_tensor **outs, lt_tensor *x, int n, const int64_t *at, int axis) {
  int a = lt__axis(axis, x->ndim);
  if (a < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "split: axis %d is out of range for %d dimensions", axis + (axis >= 0),
                       x->ndim); /* as Lua counts */
  for (int i = 0; i + 1 < n; i++)
    if (at[i] < 0 || at[i] > x->shape[a] || (i && at[i] < at[i - 1]))
      return lt_ctx_fail(ctx, LT_ERR_ARG, "split: indices must be sorted and within the axis size %lld",
                         (long long)x->shape[a]);
  for (int i = 0; i < n; i++) {
    int64_t lo = i ? at[i - 1] : 0, hi = i + 1 < n ? at[i] : x->shape[a];
    lt_status st = lt_slice(ctx, &outs[i], x, a, lo, hi, 1);
    if (st) {
      lt__release_all(i, outs);
      return st;
    }
  }
  return LT_OK;
}
