/* Shape helpers: element counts, axes, printing, broadcasting. */
#include <stdio.h>
#include "tensor/internal.h"

int64_t lt__numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

int lt__axis(int axis, int ndim) {
  if (axis < 0) axis += ndim;
  return (axis < 0 || axis >= ndim) ? -1 : axis;
}

const char *lt__shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
  size_t len = (size_t)snprintf(buf, n, "{");
  for (int i = 0; i < ndim && len < n; i++)
    len += (size_t)snprintf(buf + len, n - len, i ? ",%lld" : "%lld", (long long)shape[i]);
  if (len < n) snprintf(buf + len, n - len, "}");
  return buf;
}

int lt__broadcast_shape(lt_ctx *ctx, const char *op, int *ndim, int64_t *shape, const lt_tensor *a,
                        const lt_tensor *b) {
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
    int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      char sa[LT_SHAPE_STR_MAX], sb[LT_SHAPE_STR_MAX];
      lt_ctx_fail(ctx, LT_ERR_ARG, "%s: shapes %s and %s cannot be broadcast together", op,
                  lt__shape_str(sa, sizeof sa, a->ndim, a->shape), lt__shape_str(sb, sizeof sb, b->ndim, b->shape));
      return 0;
    }
    shape[i] = da == 1 ? db : da;
  }
  *ndim = nd;
  return 1;
}

void lt__broadcast_strides(int nd, const int64_t *shape, const lt_tensor *t, int64_t *strides) {
  int64_t s = 1;
  for (int i = nd - 1; i >= 0; i--) {
    int it = i - (nd - t->ndim);
    int64_t d = it >= 0 ? t->shape[it] : 1;
    strides[i] = (d == 1 && shape[i] != 1) ? 0 : s;
    s *= d;
  }
}
