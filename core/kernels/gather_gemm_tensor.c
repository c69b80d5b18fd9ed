/* The gather-GEMM kernels on tensors, with one ISA forced: the entries behind
 * lattice.core.ggemm_with_isa and ggemm_wgrad_with_isa, for the specs and
 * the benchmark. They check every argument (shapes, dtypes, each index in
 * range) before touching memory; the kernels themselves trust their callers.
 * Nothing is recorded on the tape. */
#include "kernels/gather_gemm_tensor.h"
#include <stdlib.h>
#include <string.h>
#include "kernels/gather_gemm.h"
#include "tensor/internal.h"

static lt_status check_f32(lt_ctx *ctx, const lt_tensor *t, int ndim, const char *what, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if (t->dtype != LT_FLOAT32)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be float32, got %s", op, what, lt_dtype_info(t->dtype)->name);
  if (t->ndim != ndim)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be %d-D, got shape %s", op, what, ndim,
                       lt__shape_str(s, sizeof s, t->ndim, t->shape));
  return LT_OK;
}

/* The message for entry e of idx (K per row), value v: its position as Lua
 * indexes the tensor (1-based), its value as stored. */
static lt_status bad_entry(lt_ctx *ctx, int64_t e, int64_t K, int64_t v, int64_t n_in, const char *op) {
  long long r = (long long)(e / K + 1), k = (long long)(e % K + 1);
  if (n_in == 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: idx[%lld][%lld] is %lld; x has no rows, so every entry must be -1", op, r,
                       k, (long long)v);
  return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: idx[%lld][%lld] is %lld; an input row is 0 to %lld (0-based) or -1", op, r,
                     k, (long long)v, (long long)n_in - 1);
}

/* idx: int32 or int64 (n_out, K), every entry in [-1, n_in); *out is a
 * contiguous int32 version (a new reference), what the kernels read. */
static lt_status check_index(lt_ctx *ctx, lt_tensor **out, lt_tensor *idx, int64_t n_in, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  *out = NULL;
  if (idx->dtype != LT_INT32 && idx->dtype != LT_INT64)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: idx must be int32 or int64, got %s", op, lt_dtype_info(idx->dtype)->name);
  if (idx->ndim != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: idx must be 2-D (n_out, K), got shape %s", op,
                       lt__shape_str(s, sizeof s, idx->ndim, idx->shape));
  lt_status st = lt__as_contig(ctx, out, idx, LT_INT64);
  if (st) return st;
  const int64_t *p = lt_tensor_data(*out);
  int64_t n = idx->shape[0] * idx->shape[1];
  for (int64_t e = 0; e < n && !st; e++)
    if (p[e] < -1 || p[e] >= n_in || p[e] > INT32_MAX) st = bad_entry(ctx, e, idx->shape[1], p[e], n_in, op);
  lt_tensor *wide = *out;
  *out = NULL;
  if (!st) st = lt__as_contig(ctx, out, wide, LT_INT32);
  lt_tensor_release(wide);
  return st;
}

/* A float32 matrix whose rows may be strided: x itself when its columns are
 * contiguous (a new reference), else a contiguous copy. */
static lt_status rows_of(lt_ctx *ctx, lt_tensor **out, lt_tensor *x) {
  if (x->strides[1] == 1 || x->shape[1] <= 1) {
    *out = lt_tensor_retain(x);
    return LT_OK;
  }
  return lt__copy_as(ctx, out, x, LT_FLOAT32);
}

/* The distance between rows (any sign, 0 for broadcast rows). */
static int64_t ld_of(const lt_tensor *t) { return t->strides[0]; }

/* A new contiguous float32 result with shape (ndim, shape): a copy of init when given. */
static lt_status new_result(lt_ctx *ctx, lt_tensor **out, lt_tensor *init, int ndim, const int64_t *shape,
                            const char *what, const char *op) {
  char s[LT_SHAPE_STR_MAX], e[LT_SHAPE_STR_MAX];
  if (!init) return lt_tensor_new(ctx, out, LT_FLOAT32, ndim, shape);
  lt_status st = check_f32(ctx, init, ndim, what, op);
  if (st) return st;
  if (memcmp(init->shape, shape, (size_t)ndim * sizeof *shape))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s has shape %s, expected %s", op, what,
                       lt__shape_str(s, sizeof s, init->ndim, init->shape), lt__shape_str(e, sizeof e, ndim, shape));
  return lt__copy_as(ctx, out, init, LT_FLOAT32);
}

/* The forward's checked operands: x's rows, the int64 map, the sizes. */
typedef struct fwd_args {
  lt_tensor *xr, *ix;
  int64_t n_out, c_in, c_out;
} fwd_args;

static void fwd_release(fwd_args *a) {
  lt_tensor_release(a->xr), lt_tensor_release(a->ix);
  *a = (fwd_args){0};
}

static lt_status fwd_prepare(lt_ctx *ctx, fwd_args *a, lt_tensor *x, lt_tensor *w, lt_tensor *idx, const char *op) {
  *a = (fwd_args){0};
  lt_status st = check_f32(ctx, x, 2, "x", op);
  if (!st) st = check_f32(ctx, w, 3, "w", op);
  if (st) return st;
  if (w->shape[1] != x->shape[1])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: w has %lld input channels, x has %lld columns", op, (long long)w->shape[1],
                       (long long)x->shape[1]);
  st = check_index(ctx, &a->ix, idx, x->shape[0], op);
  if (!st && idx->shape[1] != w->shape[0])
    st = lt_ctx_fail(ctx, LT_ERR_ARG, "%s: idx has %lld offsets, w has %lld", op, (long long)idx->shape[1],
                     (long long)w->shape[0]);
  if (!st) st = rows_of(ctx, &a->xr, x);
  a->n_out = idx->shape[0], a->c_in = w->shape[1], a->c_out = w->shape[2];
  if (st) fwd_release(a);
  return st;
}

/* Packs w for `isa` and runs the forward into y (n_out, c_out), contiguous: one call's work. */
static lt_status fwd_run(lt_ctx *ctx, float *y, const fwd_args *a, lt_tensor *w, lt_isa isa, int accumulate,
                         lt_isa *used, const char *op) {
  lt_ggemm_weight pw;
  lt_status st = lt__ggemm_pack_isa(ctx, &pw, isa, lt__f32(w), w->strides[0], w->strides[1], w->strides[2], w->shape[0],
                                    a->c_in, a->c_out, op);
  if (st) return st;
  st = lt__ggemm(ctx, y, a->c_out, lt__f32(a->xr), ld_of(a->xr), lt_tensor_data(a->ix), NULL, &pw, NULL, a->n_out,
                 a->xr->shape[0], accumulate, op);
  *used = pw.isa;
  lt__ggemm_weight_release(ctx, &pw);
  return st;
}

lt_status lt__ggemm_tensor(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *w, lt_tensor *idx, lt_tensor *y0,
                           lt_isa isa, lt_isa *used, const char *op) {
  *out = NULL;
  fwd_args a;
  lt_tensor *y = NULL;
  lt_status st = fwd_prepare(ctx, &a, x, w, idx, op);
  if (st) return st;
  st = new_result(ctx, &y, y0, 2, (int64_t[]){a.n_out, a.c_out}, "y", op);
  if (!st) st = fwd_run(ctx, lt__f32(y), &a, w, isa, !!y0, used, op);
  fwd_release(&a);
  if (st) return lt_tensor_release(y), st;
  *out = y;
  return LT_OK;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of reps timings (sorts them). */
static double median_of(double *t, int reps) {
  qsort(t, (size_t)reps, sizeof *t, cmp_double);
  return t[(reps - 1) / 2];
}

lt_status lt__ggemm_bench(lt_ctx *ctx, double *seconds, lt_tensor *x, lt_tensor *w, lt_tensor *idx, lt_isa isa,
                          int reps, lt_isa *used, const char *op) {
  fwd_args a;
  lt_tensor *y = NULL;
  double t[LT_GGEMM_BENCH_REPS_MAX];
  if (reps < 1 || reps > LT_GGEMM_BENCH_REPS_MAX)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: reps must be in [1, %d], got %d", op, LT_GGEMM_BENCH_REPS_MAX, reps);
  lt_status st = fwd_prepare(ctx, &a, x, w, idx, op);
  if (st) return st;
  st = lt_tensor_new(ctx, &y, LT_FLOAT32, 2, (int64_t[]){a.n_out, a.c_out});
  for (int r = -1; r < reps && !st; r++) { /* run -1 warms up: pages touched, threads started */
    double t0 = lt_now();
    st = fwd_run(ctx, lt__f32(y), &a, w, isa, 0, used, op);
    if (r >= 0) t[r] = lt_now() - t0;
  }
  if (!st) *seconds = median_of(t, reps);
  fwd_release(&a);
  lt_tensor_release(y);
  return st;
}

/* The weight gradient's checked operands. */
typedef struct wgrad_args {
  lt_tensor *xr, *gr, *ix;
  int64_t n_out, k, c_in, c_out, shape[3];
} wgrad_args;

static void wgrad_release(wgrad_args *a) {
  lt_tensor_release(a->xr), lt_tensor_release(a->gr), lt_tensor_release(a->ix);
  *a = (wgrad_args){0};
}

static lt_status wgrad_prepare(lt_ctx *ctx, wgrad_args *a, lt_tensor *x, lt_tensor *dy, lt_tensor *idx, int transposed,
                               const char *op) {
  *a = (wgrad_args){0};
  lt_status st = check_f32(ctx, x, 2, "x", op);
  if (!st) st = check_f32(ctx, dy, 2, "dy", op);
  if (st) return st;
  st = check_index(ctx, &a->ix, idx, x->shape[0], op);
  if (!st && idx->shape[0] != dy->shape[0])
    st = lt_ctx_fail(ctx, LT_ERR_ARG, "%s: idx has %lld rows, dy has %lld", op, (long long)idx->shape[0],
                     (long long)dy->shape[0]);
  if (!st) st = rows_of(ctx, &a->xr, x);
  if (!st) st = rows_of(ctx, &a->gr, dy);
  a->n_out = dy->shape[0], a->k = idx->shape[1], a->c_in = x->shape[1], a->c_out = dy->shape[1];
  a->shape[0] = a->k, a->shape[1] = transposed ? a->c_out : a->c_in, a->shape[2] = transposed ? a->c_in : a->c_out;
  if (st) wgrad_release(a);
  return st;
}

static lt_status wgrad_run(lt_ctx *ctx, float *dw, const wgrad_args *a, lt_isa isa, int transposed, int accumulate,
                           lt_isa *used, const char *op) {
  lt_isa best = lt_cpu_isa();
  *used = isa < best ? isa : best;
  return lt__ggemm_wgrad_isa(ctx, isa, dw, a->shape[1] * a->shape[2], a->shape[2], lt__f32(a->gr), ld_of(a->gr),
                             lt__f32(a->xr), ld_of(a->xr), lt_tensor_data(a->ix), a->n_out, a->xr->shape[0], a->k,
                             a->c_in, a->c_out, transposed, accumulate, op);
}

lt_status lt__ggemm_wgrad_tensor(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *dy, lt_tensor *idx,
                                 lt_tensor *dw0, int transposed, lt_isa isa, lt_isa *used, const char *op) {
  *out = NULL;
  wgrad_args a;
  lt_tensor *dw = NULL;
  lt_status st = wgrad_prepare(ctx, &a, x, dy, idx, transposed, op);
  if (st) return st;
  st = new_result(ctx, &dw, dw0, 3, a.shape, "dw", op);
  if (!st) st = wgrad_run(ctx, lt__f32(dw), &a, isa, transposed, !!dw0, used, op);
  wgrad_release(&a);
  if (st) return lt_tensor_release(dw), st;
  *out = dw;
  return LT_OK;
}

lt_status lt__ggemm_wgrad_bench(lt_ctx *ctx, double *seconds, lt_tensor *x, lt_tensor *dy, lt_tensor *idx, lt_isa isa,
                                int reps, lt_isa *used, const char *op) {
  wgrad_args a;
  lt_tensor *dw = NULL;
  double t[LT_GGEMM_BENCH_REPS_MAX];
  if (reps < 1 || reps > LT_GGEMM_BENCH_REPS_MAX)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: reps must be in [1, %d], got %d", op, LT_GGEMM_BENCH_REPS_MAX, reps);
  lt_status st = wgrad_prepare(ctx, &a, x, dy, idx, 0, op);
  if (st) return st;
  st = lt_tensor_new(ctx, &dw, LT_FLOAT32, 3, a.shape);
  for (int r = -1; r < reps && !st; r++) {
    double t0 = lt_now();
    st = wgrad_run(ctx, lt__f32(dw), &a, isa, 0, 0, used, op);
    if (r >= 0) t[r] = lt_now() - t0;
  }
  if (!st) *seconds = median_of(t, reps);
  wgrad_release(&a);
  lt_tensor_release(dw);
  return st;
}
