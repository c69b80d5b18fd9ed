/* Strided copies with dtype conversion: contiguous, astype, read-back, and the
 * float32 staging every op uses for float16/bfloat16 and strided inputs. */
#include <string.h>
#include "internal.h"

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

static lt_status copy_as(lt_ctx *ctx, lt_tensor **out, const lt_tensor *x, lt_dtype dt) {
  lt_status st = lt_tensor_new(ctx, out, dt, x->ndim, x->shape);
  if (st == LT_OK) copy_strided(ctx, lt_tensor_data(*out), dt, x);
  return st;
}

lt_status lt__as_contig(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype dt) {
  if (x->dtype == dt && lt_tensor_is_contiguous(x)) {
    *out = lt_tensor_retain(x);
    return LT_OK;
  }
  return copy_as(ctx, out, x, dt);
}

lt_status lt__to_dtype(lt_ctx *ctx, lt_tensor **t, lt_dtype dt) {
  if ((*t)->dtype == dt) return LT_OK;
  lt_tensor *conv;
  lt_status st = copy_as(ctx, &conv, *t, dt);
  lt_tensor_release(*t);
  *t = st ? NULL : conv;
  return st;
}

static lt_status contiguous_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *gout, lt_tensor **gin) {
  (void)ctx, (void)node;
  gin[0] = lt_tensor_retain(gout);
  return LT_OK;
}

lt_status lt_contiguous(lt_ctx *ctx, lt_tensor **out, lt_tensor *x) {
  lt_status st = copy_as(ctx, out, x, x->dtype);
  if (st) return st;
  return lt__record(ctx, NULL, "contiguous", contiguous_backward, out, 1, &x);
}

static lt_status astype_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *gout, lt_tensor **gin) {
  return lt_astype(ctx, &gin[0], gout, node->in[0]->dtype);
}

lt_status lt_astype(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype dt) {
  *out = NULL;
  if ((unsigned)dt >= LT_DTYPE_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "astype: unknown dtype %d", (int)dt);
  lt_status st = copy_as(ctx, out, x, dt);
  if (st) return st;
  /* Only float-to-float casts carry a gradient. */
  if (!lt_dtype_info(dt)->is_float || !lt_dtype_info(x->dtype)->is_float) return LT_OK;
  return lt__record(ctx, NULL, "astype", astype_backward, out, 1, &x);
}
