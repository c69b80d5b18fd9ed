/* Strided copies with dtype conversion: read-back, assignment into views, and
 * the float32 staging every op uses for float16/bfloat16 and strided inputs. */
#include <string.h>
#include "runtime/context.h"
#include "runtime/parallel.h"
#include "tensor/internal.h"

/* Copies `src` (any strides) row-major into the contiguous buffer `dst` of dtype dd. */
static void copy_strided(const lt_ctx *ctx, void *dst, lt_dtype dd, const lt_tensor *src) {
  int64_t n = lt_tensor_size(src);
  if (n == 0) return;
  const char *base = lt_tensor_data(src);
  size_t ss = lt_dtype_info(src->dtype)->size, ds = lt_dtype_info(dd)->size;
  if (lt_tensor_is_contiguous(src)) {
    lt_dtype_convert(dst, dd, base, src->dtype, n);
    return;
  }
  int nd = src->ndim;
  int64_t inner = src->shape[nd - 1], istride = src->strides[nd - 1];
  int64_t rows = n / inner;
  int threads = ctx && rows * inner >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, r, rows, {
    int64_t off = 0, rem = r;
    for (int i = nd - 2; i >= 0; i--) {
      off += (rem % src->shape[i]) * src->strides[i];
      rem /= src->shape[i];
    }
    char *d = (char *)dst + r * inner * (int64_t)ds;
    const char *s = base + off * (int64_t)ss;
    if (istride == 1) {
      lt_dtype_convert(d, dd, s, src->dtype, inner);
    } else if (dd == LT_FLOAT32 && src->dtype == LT_FLOAT32) {
      const float *sf = (const float *)s;
      float *df = (float *)d;
      for (int64_t j = 0; j < inner; j++) df[j] = sf[j * istride];
    } else {
      for (int64_t j = 0; j < inner; j++)
        lt_dtype_convert(d + j * (int64_t)ds, dd, s + j * istride * (int64_t)ss, src->dtype, 1);
    }
  });
}

void lt_tensor_read(const lt_tensor *t, void *dst, lt_dtype dt) { copy_strided(NULL, dst, dt, t); }

lt_status lt__copy_as(lt_ctx *ctx, lt_tensor **out, const lt_tensor *x, lt_dtype dt) {
  lt_status st = lt_tensor_new(ctx, out, dt, x->ndim, x->shape);
  if (st == LT_OK) copy_strided(ctx, lt_tensor_data(*out), dt, x);
  return st;
}

lt_status lt__as_contig(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype dt) {
  if (x->dtype == dt && lt_tensor_is_contiguous(x)) {
    *out = lt_tensor_retain(x);
    return LT_OK;
  }
  return lt__copy_as(ctx, out, x, dt);
}

lt_status lt__to_dtype(lt_ctx *ctx, lt_tensor **t, lt_dtype dt) {
  if ((*t)->dtype == dt) return LT_OK;
  lt_tensor *conv;
  lt_status st = lt__copy_as(ctx, &conv, *t, dt);
  lt_tensor_release(*t);
  *t = st ? NULL : conv;
  return st;
}

/* Writes src (same shape, any layout and dtype) into the view dst, a row at a time. */
void lt__assign(lt_tensor *dst, const lt_tensor *src) {
  int64_t n = lt_tensor_size(dst);
  if (n == 0) return;
  int nd = dst->ndim;
  int64_t inner = nd ? dst->shape[nd - 1] : 1, rows = n / inner;
  int64_t sd = nd ? dst->strides[nd - 1] : 1, ss = nd ? src->strides[nd - 1] : 1;
  size_t ed = lt_dtype_info(dst->dtype)->size, es = lt_dtype_info(src->dtype)->size;
  for (int64_t r = 0; r < rows; r++) {
    int64_t od = 0, os = 0, rem = r;
    for (int d = nd - 2; d >= 0; d--) {
      int64_t k = rem % dst->shape[d];
      rem /= dst->shape[d];
      od += k * dst->strides[d];
      os += k * src->strides[d];
    }
    char *pd = (char *)lt_tensor_data(dst) + od * (int64_t)ed;
    const char *ps = (const char *)lt_tensor_data(src) + os * (int64_t)es;
    if (sd == 1 && ss == 1) {
      lt_dtype_convert(pd, dst->dtype, ps, src->dtype, inner);
    } else {
      for (int64_t j = 0; j < inner; j++)
        lt_dtype_convert(pd + j * sd * (int64_t)ed, dst->dtype, ps + j * ss * (int64_t)es, src->dtype, 1);
    }
  }
}
