/* Tensor headers and storage: creation, reference counting, accessors. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/context.h"
#include "tensor/internal.h"

static void storage_release(lt_storage *s) {
  if (--s->refcount > 0) return;
  lt_ctx *ctx = s->ctx;
  if (!s->wrapped)
    lt_ctx_free(ctx, s->data, s->nbytes);
  else if (s->release)
    s->release(s->release_ud);
  lt__ctx_obj_put(ctx, LT_OBJ_STORAGE, s);
  lt_ctx_release(ctx); /* last: it may free the context and its spares */
}

lt_tensor *lt_tensor_retain(lt_tensor *t) {
  if (t) t->refcount++;
  return t;
}

void lt_tensor_release(lt_tensor *t) {
  if (!t || --t->refcount > 0) return;
  lt_storage *s = t->storage;
  lt__ctx_obj_put(s->ctx, LT_OBJ_TENSOR, t);
  storage_release(s);
}

void lt__release_all(int n, lt_tensor **ts) {
  for (int i = 0; i < n; i++) {
    lt_tensor_release(ts[i]);
    ts[i] = NULL;
  }
}

static void contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
}

/* Every dimension is checked, zeros included: a zero-size tensor whose other
 * dimensions multiply past int64 would still overflow its strides. The bound
 * leaves room for the byte count of the widest dtype. */
static lt_status check_shape(lt_ctx *ctx, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > LT_MAX_DIMS)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor: %d dimensions (at most %d)", ndim, LT_MAX_DIMS);
  if (ndim > 0 && !shape) return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor: shape is NULL with ndim %d", ndim);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor: negative dimension %lld", (long long)shape[i]);
    int64_t d = shape[i] ? shape[i] : 1;
    if (n > INT64_MAX / 16 / d) return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor: shape too large");
    n *= d;
  }
  return LT_OK;
}

/* What every creation checks: the dtype (it indexes the traits table), then
 * the shape. */
static lt_status check_new(lt_ctx *ctx, lt_dtype dt, int ndim, const int64_t *shape) {
  if ((int)dt < 0 || (int)dt >= LT_DTYPE_COUNT)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor: dtype %d is not an lt_dtype (0 to %d)", (int)dt, LT_DTYPE_COUNT - 1);
  return check_shape(ctx, ndim, shape);
}

/* check_new, and data for the elements (NULL only where there are none). */
static lt_status check_data(lt_ctx *ctx, lt_dtype dt, int ndim, const int64_t *shape, const void *data) {
  if (check_new(ctx, dt, ndim, shape)) return LT_ERR_ARG;
  int64_t n = lt__numel(ndim, shape);
  if (!data && n > 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor: data is NULL for %lld elements", (long long)n);
  return LT_OK;
}

static lt_tensor *header(lt_ctx *ctx, lt_storage *s, lt_dtype dt, int ndim, const int64_t *shape,
                         const int64_t *strides, int64_t offset) {
  lt_tensor *t = lt__ctx_obj_get(ctx, LT_OBJ_TENSOR);
  if (!t) return NULL;
  t->refcount = 1;
  t->storage = s;
  t->offset = offset;
  t->ndim = ndim;
  t->dtype = dt;
  if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  if (strides) {
    if (ndim) memcpy(t->strides, strides, (size_t)ndim * sizeof *strides);
  } else {
    contiguous_strides(ndim, shape, t->strides);
  }
  t->slot = -1;
  return t;
}

lt_status lt_tensor_new(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape) {
  *out = NULL;
  if (check_new(ctx, dt, ndim, shape)) return LT_ERR_ARG;
  size_t nbytes = (size_t)lt__numel(ndim, shape) * lt_dtype_info(dt)->size;
  lt_storage *s = lt__ctx_obj_get(ctx, LT_OBJ_STORAGE);
  void *data = s ? lt_ctx_alloc(ctx, nbytes) : NULL;
  lt_tensor *t = data ? header(ctx, s, dt, ndim, shape, NULL, 0) : NULL;
  if (!t) {
    if (data) lt_ctx_free(ctx, data, nbytes);
    if (s) lt__ctx_obj_put(ctx, LT_OBJ_STORAGE, s);
    return lt_ctx_fail(ctx, LT_ERR_MEM, "tensor: out of memory allocating %zu bytes", nbytes);
  }
  *s = (lt_storage){.refcount = 1, .data = data, .nbytes = nbytes, .ctx = lt_ctx_retain(ctx)};
  *out = t;
  return LT_OK;
}

lt_status lt_tensor_wrap(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, void *data,
                         void (*release)(void *ud), void *ud) {
  *out = NULL;
  if (check_data(ctx, dt, ndim, shape, data)) return LT_ERR_ARG;
  size_t elem = lt_dtype_info(dt)->size;
  if ((uintptr_t)data % elem) /* ops read it through typed pointers */
    return lt_ctx_fail(ctx, LT_ERR_ARG, "tensor: data is not aligned to %zu bytes, as %s needs", elem,
                       lt_dtype_info(dt)->name);
  lt_storage *s = lt__ctx_obj_get(ctx, LT_OBJ_STORAGE);
  lt_tensor *t = s ? header(ctx, s, dt, ndim, shape, NULL, 0) : NULL;
  if (!t) {
    if (s) lt__ctx_obj_put(ctx, LT_OBJ_STORAGE, s);
    return lt_ctx_fail(ctx, LT_ERR_MEM, "tensor: out of memory");
  }
  size_t nbytes = (size_t)lt__numel(ndim, shape) * elem;
  *s = (lt_storage){.refcount = 1,
                    .data = data,
                    .nbytes = nbytes,
                    .ctx = lt_ctx_retain(ctx),
                    .wrapped = 1,
                    .release = release,
                    .release_ud = ud};
  *out = t;
  return LT_OK;
}

lt_status lt__view(lt_ctx *ctx, lt_tensor **out, const lt_tensor *base, int ndim, const int64_t *shape,
                   const int64_t *strides, int64_t offset) {
  *out = NULL;
  /* contiguous strides are products of the dimensions: the shape must fit (a
   * reshape of an empty tensor may ask for {0, 2^53, 2^53}) */
  if (!strides && check_shape(ctx, ndim, shape)) return LT_ERR_ARG;
  lt_tensor *t = header(ctx, base->storage, base->dtype, ndim, shape, strides, offset);
  if (!t) return lt_ctx_fail(ctx, LT_ERR_MEM, "tensor: out of memory");
  base->storage->refcount++;
  *out = t;
  return LT_OK;
}

/* Resolved bounds: start is an element (for a non-empty view), stop the first
 * one not taken, below start for a negative step (-1: before the first). */
lt_status lt__slice_view(lt_ctx *ctx, lt_tensor **out, const lt_tensor *x, int a, int64_t start, int64_t stop,
                         int64_t step) {
  int64_t shape[LT_MAX_DIMS], strides[LT_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  memcpy(strides, x->strides, sizeof strides);
  if (step > 0) /* no overflow for huge steps; unsigned, so that -INT64_MIN is a step too */
    shape[a] = stop > start ? (int64_t)((uint64_t)(stop - start - 1) / (uint64_t)step) + 1 : 0;
  else
    shape[a] = start > stop ? (int64_t)((uint64_t)(start - stop - 1) / (0 - (uint64_t)step)) + 1 : 0;
  /* a stride matters only past one element, where it cannot overflow */
  strides[a] = shape[a] > 1 ? x->strides[a] * step : x->strides[a];
  int64_t offset = shape[a] > 0 ? x->offset + start * x->strides[a] : x->offset;
  return lt__view(ctx, out, x, x->ndim, shape, strides, offset);
}

lt_status lt_tensor_zeros(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape) {
  lt_status st = lt_tensor_new(ctx, out, dt, ndim, shape);
  if (st == LT_OK) memset(lt_tensor_data(*out), 0, (*out)->storage->nbytes);
  return st;
}

lt_status lt_tensor_full(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double value) {
  lt_status st = lt_tensor_new(ctx, out, dt, ndim, shape);
  if (st) return st;
  int64_t n = lt__numel(ndim, shape);
  const lt_dtype_traits *tr = lt_dtype_info(dt);
  char one[8];
  tr->store(one, value);
  char *p = lt_tensor_data(*out);
  if (dt == LT_FLOAT32) {
    float v = (float)value, *f = (float *)p;
    for (int64_t i = 0; i < n; i++) f[i] = v;
  } else {
    for (int64_t i = 0; i < n; i++) memcpy(p + i * (int64_t)tr->size, one, tr->size);
  }
  return LT_OK;
}

lt_status lt_tensor_from_data(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape,
                              const void *data) {
  *out = NULL;
  if (check_data(ctx, dt, ndim, shape, data)) return LT_ERR_ARG;
  lt_status st = lt_tensor_new(ctx, out, dt, ndim, shape);
  if (st == LT_OK && data) memcpy(lt_tensor_data(*out), data, (*out)->storage->nbytes);
  return st;
}

lt_status lt_tensor_arange(lt_ctx *ctx, lt_tensor **out, double start, double stop, double step, lt_dtype dt) {
  *out = NULL;
  if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "arange: step must be finite and non-zero");
  double len = ceil((stop - start) / step);
  if (len >= 9.2e18) return lt_ctx_fail(ctx, LT_ERR_ARG, "arange: too many elements (%g)", len);
  int64_t n = len > 0 ? (int64_t)len : 0;
  lt_status st = lt_tensor_new(ctx, out, dt, 1, &n);
  if (st) return st;
  const lt_dtype_traits *tr = lt_dtype_info(dt);
  char *p = lt_tensor_data(*out);
  for (int64_t i = 0; i < n; i++) tr->store(p + i * (int64_t)tr->size, start + (double)i * step);
  return LT_OK;
}

lt_status lt_tensor_eye(lt_ctx *ctx, lt_tensor **out, int64_t n, int64_t m, int64_t k, lt_dtype dt) {
  int64_t shape[2] = {n, m};
  lt_status st = lt_tensor_zeros(ctx, out, dt, 2, shape);
  if (st) return st;
  const lt_dtype_traits *tr = lt_dtype_info(dt);
  char *p = lt_tensor_data(*out);
  for (int64_t i = 0; i < n; i++)
    if (k >= -i && k < m - i) tr->store(p + (i * m + i + k) * (int64_t)tr->size, 1.0); /* i + k may overflow */
  return LT_OK;
}

int lt_tensor_ndim(const lt_tensor *t) { return t->ndim; }
const int64_t *lt_tensor_shape(const lt_tensor *t) { return t->shape; }
const int64_t *lt_tensor_strides(const lt_tensor *t) { return t->strides; }
lt_dtype lt_tensor_dtype(const lt_tensor *t) { return t->dtype; }
int64_t lt_tensor_size(const lt_tensor *t) { return lt__numel(t->ndim, t->shape); }
void *lt_tensor_data(const lt_tensor *t) {
  return (char *)t->storage->data + t->offset * (int64_t)lt_dtype_info(t->dtype)->size;
}
int lt_tensor_shares_storage(const lt_tensor *a, const lt_tensor *b) { return a->storage == b->storage; }

int lt__uniquely_owned(const lt_tensor *t) {
  return t->refcount == 1 && t->storage->refcount == 1 && !t->storage->wrapped;
}

int lt_tensor_is_contiguous(const lt_tensor *t) {
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != s) return 0;
    s *= t->shape[i];
  }
  return 1;
}

/* Element offset (from the data pointer) of a flat row-major index. */
static int64_t flat_offset(const lt_tensor *t, int64_t flat) {
  int64_t off = 0;
  for (int i = t->ndim - 1; i >= 0; i--) {
    off += (flat % t->shape[i]) * t->strides[i];
    flat /= t->shape[i];
  }
  return off;
}

double lt_tensor_get(const lt_tensor *t, int64_t flat) {
  const lt_dtype_traits *tr = lt_dtype_info(t->dtype);
  return tr->load((const char *)lt_tensor_data(t) + flat_offset(t, flat) * (int64_t)tr->size);
}
