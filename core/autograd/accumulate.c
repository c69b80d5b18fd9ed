/* Gradient accumulation: a tensor reached along several paths (a weight
 * shared by 27 kernel offsets, a residual stream) sums the gradients of all of
 * them into its slot. The first gradient is taken as it is; later ones are
 * added into it in place when nobody else can see it, so the sum allocates
 * nothing after the first term. float32 sums in float32; other float dtypes
 * are summed in double and rounded once to the accumulator's dtype. */
#include "autograd/tape.h"
#include "runtime/context.h"
#include "runtime/parallel.h"

static int in_place_ok(const lt_tensor *acc, const lt_tensor *g) {
  return lt__uniquely_owned(acc) && lt_tensor_is_contiguous(acc) && acc->dtype == lt__promote(acc->dtype, g->dtype);
}

/* acc (n) += g (n), both contiguous, any float dtypes. */
static void add_into(const lt_ctx *ctx, lt_tensor *acc, const lt_tensor *g) {
  int64_t n = lt_tensor_size(acc);
  char *pa = lt_tensor_data(acc);
  const char *pg = lt_tensor_data(g);
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (acc->dtype == LT_FLOAT32 && g->dtype == LT_FLOAT32) {
    float *a = (float *)pa;
    const float *b = (const float *)pg;
    LT_PARALLEL_FOR(threads, i, n, { a[i] += b[i]; });
    return;
  }
  /* other float dtypes: blocks through double on the stack (exact for every
   * float dtype, and one rounding per sum) */
  enum { B = 256 };
  size_t ea = lt_dtype_info(acc->dtype)->size, eg = lt_dtype_info(g->dtype)->size;
  LT_PARALLEL_FOR(threads, blk, (n + B - 1) / B, {
    double x[B], y[B];
    int64_t lo = blk * B, m = n - lo < B ? n - lo : B;
    lt_dtype_convert(x, LT_FLOAT64, pa + lo * (int64_t)ea, acc->dtype, m);
    lt_dtype_convert(y, LT_FLOAT64, pg + lo * (int64_t)eg, g->dtype, m);
    for (int64_t i = 0; i < m; i++) x[i] += y[i];
    lt_dtype_convert(pa + lo * (int64_t)ea, acc->dtype, x, LT_FLOAT64, m);
  });
}

lt_status lt__grad_accumulate(lt_ctx *ctx, lt_tensor **acc, lt_tensor *g) {
  if (!*acc) {
    *acc = g;
    return LT_OK;
  }
  lt_tensor *gc = NULL;
  lt_status st = lt__as_contig(ctx, &gc, g, g->dtype);
  lt_tensor_release(g);
  if (st) return st;
  if (!in_place_ok(*acc, gc)) { /* a fresh copy in the promoted dtype becomes the accumulator */
    lt_tensor *sum = NULL;
    st = lt__copy_as(ctx, &sum, *acc, lt__promote((*acc)->dtype, gc->dtype));
    if (st) {
      lt_tensor_release(gc);
      return st;
    }
    lt_tensor_release(*acc);
    *acc = sum;
  }
  add_into(ctx, *acc, gc);
  lt_tensor_release(gc);
  return LT_OK;
}
