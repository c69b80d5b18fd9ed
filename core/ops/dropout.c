/* Dropout: x (...) -> y (...), y = x * keep / (1 - p), keep ~ Bernoulli(1 - p)
 * per element. The mask comes from the context's counter-based generator:
 * element i uses counter base + i, so a seed reproduces it for any thread
 * count, and backward regenerates it from (key, base) instead of storing it:
 * dx = g * keep / (1 - p). p = 0 is the identity; p = 1 gives zeros. */
#include <math.h>
#include "ops/internal.h"

typedef struct dropout_attrs {
  uint64_t key, base;
  double p;
} dropout_attrs;

/* splitmix64's finaliser, as lattice.random uses. */
static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Element i is kept when its uniform 53-bit draw is >= p. */
static int kept(const dropout_attrs *a, int64_t i) {
  uint64_t bits = mix(mix(a->key + 0x9e3779b97f4a7c15ull) ^ ((a->base + (uint64_t)i) * 0xd1342543de82ef95ull + 1));
  return (double)(bits >> 11) * 0x1.0p-53 >= a->p;
}

/* y (n) = x (n) * keep / (1 - p), float32 or float64 (es bytes). */
static void apply_mask(const lt_ctx *ctx, void *y, const void *x, int64_t n, const dropout_attrs *a, lt_dtype dt) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  double scale = a->p < 1 ? 1.0 / (1.0 - a->p) : 0.0;
  if (dt == LT_FLOAT64) {
    const double *xd = x;
    double *yd = y;
    LT_PARALLEL_FOR(threads, i, n, { yd[i] = kept(a, i) ? xd[i] * scale : 0.0; });
  } else {
    const float *xf = x;
    float *yf = y, s = (float)scale;
    LT_PARALLEL_FOR(threads, i, n, { yf[i] = kept(a, i) ? xf[i] * s : 0.0f; });
  }
}

/* A new tensor: t with the mask applied, in t's dtype. */
static lt_status masked(lt_ctx *ctx, lt_tensor **out, lt_tensor *t, const dropout_attrs *a) {
  lt_dtype cdt = t->dtype == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
  lt_tensor *tc = NULL;
  lt_status st = lt__as_contig(ctx, &tc, t, cdt);
  if (!st) st = lt_tensor_new(ctx, out, cdt, t->ndim, t->shape);
  if (!st) apply_mask(ctx, lt_tensor_data(*out), lt_tensor_data(tc), lt_tensor_size(t), a, cdt);
  lt_tensor_release(tc);
  if (!st) st = lt__to_dtype(ctx, out, t->dtype);
  return st;
}

static lt_status dropout_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  return masked(ctx, &gin[0], gouts[0], n->attrs);
}

lt_status lt_dropout(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, double p) {
  *out = NULL;
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "dropout: x must be a float tensor, got %s", lt_dtype_info(x->dtype)->name);
  if (!(p >= 0 && p <= 1)) return lt_ctx_fail(ctx, LT_ERR_ARG, "dropout: p must be in [0, 1], got %g", p);
  dropout_attrs a = {.p = p};
  a.base = lt__ctx_rng_take(ctx, (uint64_t)lt_tensor_size(x), &a.key);
  lt_status st = masked(ctx, out, x, &a);
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
    return st;
  }
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP("dropout", dropout_backward, dropout_attrs, 0), out, 1, &x);
  if (node) *(dropout_attrs *)node->attrs = a;
  return st;
}
