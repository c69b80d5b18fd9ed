/* Elementwise selection: where(cond, a, b) and clip(x, lo, hi), each with its
 * backward rule. */
#include <math.h>
#include <string.h>
#include "ops/internal.h"
#include "ops/pool.h"

/* ---- where ---- */

/* The three inputs read in the output's shape. */
typedef struct where_plan {
  int nd;
  int64_t shape[LT_MAX_DIMS];
  int64_t s[3][LT_MAX_DIMS]; /* cond, a, b */
} where_plan;

/* o[i] = c[i*sc] ? a[i*sa] : b[i*sb] for i < n, elements of `es` bytes. */
static void select_run(void *o, const uint8_t *c, int64_t sc, const void *a, int64_t sa, const void *b, int64_t sb,
                       int64_t n, size_t es) {
#define SELECT_LOOP(T)                                                                                       \
  for (int64_t i = 0; i < n; i++) ((T *)o)[i] = c[i * sc] ? ((const T *)a)[i * sa] : ((const T *)b)[i * sb]; \
  break
  switch (es) {
  case 1: SELECT_LOOP(uint8_t);
  case 2: SELECT_LOOP(uint16_t);
  case 4: SELECT_LOOP(uint32_t);
  default: SELECT_LOOP(uint64_t);
  }
#undef SELECT_LOOP
}

/* Output elements [lo, hi) of the plan, one row run at a time. */
static void where_chunk(const where_plan *p, int64_t lo, int64_t hi, void *out, const uint8_t *c, const char *a,
                        const char *b, size_t es) {
  int nd = p->nd;
  int64_t inner = nd ? p->shape[nd - 1] : 1;
  int64_t sc = nd ? p->s[0][nd - 1] : 0, sa = nd ? p->s[1][nd - 1] : 0, sb = nd ? p->s[2][nd - 1] : 0;
  for (int64_t i = lo; i < hi;) {
    int64_t j = i % inner, rem = i / inner, oc = j * sc, oa = j * sa, ob = j * sb;
    for (int d = nd - 2; d >= 0; d--) {
      int64_t idx = rem % p->shape[d];
      rem /= p->shape[d];
      oc += idx * p->s[0][d];
      oa += idx * p->s[1][d];
      ob += idx * p->s[2][d];
    }
    int64_t m = inner - j < hi - i ? inner - j : hi - i;
    select_run((char *)out + i * (int64_t)es, c + oc, sc, a + oa * (int64_t)es, sa, b + ob * (int64_t)es, sb, m, es);
    i += m;
  }
}

static void where_run(const lt_ctx *ctx, const where_plan *p, lt_tensor *o, const lt_tensor *c, const lt_tensor *a,
                      const lt_tensor *b) {
  int64_t n = lt_tensor_size(o);
  size_t es = lt_dtype_info(o->dtype)->size;
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  int64_t nchunks = (n + LT_GRAIN - 1) / LT_GRAIN;
  LT_PARALLEL_FOR(threads, k, nchunks, {
    int64_t lo = k * LT_GRAIN, hi = lo + LT_GRAIN < n ? lo + LT_GRAIN : n;
    where_chunk(p, lo, hi, lt_tensor_data(o), lt_tensor_data(c), lt_tensor_data(a), lt_tensor_data(b), es);
  });
}

/* where(cond, a, b) into the pool (NULL when an input is). */
static lt_tensor *pwhere(lt_pool *p, lt_tensor *cond, lt_tensor *a, lt_tensor *b) {
  if (!a || !b) return NULL;
  lt_tensor *t = NULL;
  lt_status st = lt_where(p->ctx, &t, cond, a, b);
  return lt__padd(p, st, t);
}

/* ga = where(cond, g, 0), gb = where(cond, 0, g), each summed to its input's shape. */
static lt_status where_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  lt_tensor *zero = lt__pscalar(&p, 0, g->dtype), *cond = n->in[2];
  if (lt__needs(n, 0)) gin[0] = lt__pkeep(&p, lt__psum_to(&p, pwhere(&p, cond, g, zero), n->in[0]));
  if (lt__needs(n, 1)) gin[1] = lt__pkeep(&p, lt__psum_to(&p, pwhere(&p, cond, zero, g), n->in[1]));
  return lt__pool_drain(&p);
}

static lt_status where_compute(lt_ctx *ctx, lt_tensor **out, lt_tensor *cond, lt_tensor *a, lt_tensor *b,
                               const where_plan *p, lt_dtype dt) {
  lt_tensor *cc = NULL, *ac = NULL, *bc = NULL, *o = NULL;
  lt_status st = lt__as_contig(ctx, &cc, cond, LT_BOOL);
  if (!st) st = lt__as_contig(ctx, &ac, a, dt);
  if (!st) st = lt__as_contig(ctx, &bc, b, dt);
  if (!st) st = lt_tensor_new(ctx, &o, dt, p->nd, p->shape);
  if (!st) {
    where_plan q = *p;
    lt__broadcast_strides(p->nd, p->shape, cc, q.s[0]);
    lt__broadcast_strides(p->nd, p->shape, ac, q.s[1]);
    lt__broadcast_strides(p->nd, p->shape, bc, q.s[2]);
    where_run(ctx, &q, o, cc, ac, bc);
  }
  lt_tensor *tmp[3] = {cc, ac, bc};
  lt__release_all(3, tmp);
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  return LT_OK;
}

lt_status lt_where(lt_ctx *ctx, lt_tensor **out, lt_tensor *cond, lt_tensor *a, lt_tensor *b) {
  *out = NULL;
  where_plan p;
  lt_tensor ab = {0}; /* only its shape: the broadcast of a and b */
  if (!lt__broadcast_shape(ctx, "where", &ab.ndim, ab.shape, a, b)) return LT_ERR_ARG;
  if (!lt__broadcast_shape(ctx, "where", &p.nd, p.shape, cond, &ab)) return LT_ERR_ARG;
  lt_dtype dt = lt__promote(a->dtype, b->dtype);
  lt_status st = where_compute(ctx, out, cond, a, b, &p, dt);
  if (st || !lt_dtype_info(dt)->is_float) return st;
  lt_tensor *ins[3] = {a, b, cond};
  return lt__record(ctx, NULL, LT_OP("where", where_backward, lt_no_attrs, 0), out, 3, ins);
}

/* ---- clip ---- */

/* x (n) -> y (n): y = min(max(x, lo), hi); a NaN bound is no bound, a NaN x stays NaN. */
static void clip_f32(const lt_ctx *ctx, float *y, const float *x, int64_t n, float lo, float hi) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    float v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  });
}

/* g (n), x (n) -> gx (n): g where lo <= x <= hi (bounds inclusive, as PyTorch's clamp), else 0. */
static void clip_backward_f32(const lt_ctx *ctx, float *gx, const float *g, const float *x, int64_t n, float lo,
                              float hi) {
  int has_lo = !isnan(lo), has_hi = !isnan(hi);
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    int in = (!has_lo || x[i] >= lo) && (!has_hi || x[i] <= hi);
    gx[i] = in ? g[i] : 0.0f;
  });
}

/* clip_f32 and clip_backward_f32 in double (float64 x): y = clip(x), or with g, gx = g where in bounds. */
static void clip_f64(const lt_ctx *ctx, double *y, const double *x, int64_t n, double lo, double hi) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    double v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  });
}

static void clip_backward_f64(const lt_ctx *ctx, double *gx, const double *g, const double *x, int64_t n, double lo,
                              double hi) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, { gx[i] = (isnan(lo) || x[i] >= lo) && (isnan(hi) || x[i] <= hi) ? g[i] : 0.0; });
}

typedef struct clip_attrs {
  double lo, hi; /* NAN: no bound */
} clip_attrs;

static lt_status clip_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  const clip_attrs *at = node->attrs;
  lt_tensor *x = node->in[0], *gc = NULL, *xc = NULL, *o = NULL;
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_status st = lt__as_contig(ctx, &gc, g, cdt);
  if (!st) st = lt__as_contig(ctx, &xc, x, cdt);
  if (!st) st = lt_tensor_new(ctx, &o, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    clip_backward_f64(ctx, lt__f64(o), lt__f64(gc), lt__f64(xc), lt_tensor_size(o), at->lo, at->hi);
  else if (!st)
    clip_backward_f32(ctx, lt__f32(o), lt__f32(gc), lt__f32(xc), lt_tensor_size(o), (float)at->lo, (float)at->hi);
  lt_tensor_release(gc);
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, &o, x->dtype);
  if (st)
    lt_tensor_release(o);
  else
    gin[0] = o;
  return st;
}

/* The bound v (NAN: no bound, read as `none`) as an integer inside dt's range, so
 * that a bound past the range clips to the range's end instead of wrapping. */
static int64_t int_bound(double v, lt_dtype dt, int64_t none) {
  int64_t b = isnan(v) ? none : lt__double_to_i64(v);
  int64_t min = dt == LT_INT32 ? INT32_MIN : dt == LT_INT64 ? INT64_MIN : 0;
  int64_t max = dt == LT_INT32    ? INT32_MAX
                : dt == LT_INT64  ? INT64_MAX
                : dt == LT_UINT32 ? UINT32_MAX
                : dt == LT_UINT8  ? UINT8_MAX
                                  : 1;
  return b < min ? min : b > max ? max : b;
}

/* Integers with integral bounds stay integers: clipped in int64, narrowed back. */
static lt_status clip_int(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, double lo, double hi) {
  lt_tensor *xc = NULL, *o = NULL;
  lt_status st = lt__as_contig(ctx, &xc, x, LT_INT64);
  if (!st) st = lt_tensor_new(ctx, &o, LT_INT64, x->ndim, x->shape);
  if (!st) {
    int64_t ilo = int_bound(lo, x->dtype, INT64_MIN), ihi = int_bound(hi, x->dtype, INT64_MAX);
    const int64_t *xi = lt_tensor_data(xc);
    int64_t *yi = lt_tensor_data(o), n = lt_tensor_size(o);
    for (int64_t i = 0; i < n; i++) {
      int64_t v = xi[i] < ilo ? ilo : xi[i];
      yi[i] = v > ihi ? ihi : v;
    }
  }
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, &o, x->dtype);
  if (!st)
    *out = o;
  else
    lt_tensor_release(o);
  return st;
}

static int integral(double v) { return isnan(v) || v == floor(v); }

lt_status lt_clip(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, double lo, double hi) {
  *out = NULL;
  if (isnan(lo) && isnan(hi)) return lt_ctx_fail(ctx, LT_ERR_ARG, "clip: at least one of lo and hi must be given");
  int is_float = lt_dtype_info(x->dtype)->is_float;
  if (!is_float && integral(lo) && integral(hi)) return clip_int(ctx, out, x, lo, hi);
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_tensor *xc = NULL, *o = NULL;
  lt_status st = lt__as_contig(ctx, &xc, x, cdt);
  if (!st) st = lt_tensor_new(ctx, &o, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    clip_f64(ctx, lt__f64(o), lt__f64(xc), lt_tensor_size(o), lo, hi);
  else if (!st)
    clip_f32(ctx, lt__f32(o), lt__f32(xc), lt_tensor_size(o), (float)lo, (float)hi);
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, &o, lt__float_result(x->dtype));
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  if (!is_float) return LT_OK;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP("clip", clip_backward, clip_attrs, 0), out, 1, &x);
  if (node) *(clip_attrs *)node->attrs = (clip_attrs){lo, hi};
  return st;
}
