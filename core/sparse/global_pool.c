/* Global sparse pooling (lattice/sparse_pool.h):
 *   x (N, C), b(i) the batch of row i -> y (B, C)
 *   sum  y[b] = sum_{b(i) = b} x[i]    avg  the sum / n_b (0 when n_b = 0)
 *   max  y[b, c] = max_{b(i) = b} x[i, c], argmax[b, c] the lowest row holding it
 * Backward, one task per row:
 *   sum  dx[i] = dy[b(i)]    avg  dy[b(i)] / n_b(i)    max  dx[i, c] = (argmax[b(i), c] == i) dy[b(i), c]
 * The rows need not be grouped by batch. They are cut into a number of chunks
 * that depends on N, B and C only; one task reduces a chunk (sums in double),
 * and the chunks are combined in row order, so the result is the same for any
 * thread count. Ties and NaNs as in local max pooling (pool.c). */
#include <math.h>
#include <string.h>
#include "autograd/tape.h"
#include "kernels/colsum.h"
#include "lattice/sparse_pool.h"
#include "ops/internal.h"
#include "sparse/internal.h"

#define MAX_CHUNKS    32
#define CHUNK_ROWS    4096
#define PARTIAL_BYTES ((size_t)64 << 20) /* bound on the chunks' partial results */

typedef struct gp_dims {
  int64_t n, c, b;
  int chunks;
} gp_dims;

typedef struct gp_attrs {
  lt_sparse_pool_mode mode;
  int64_t batches;
} gp_attrs;

static int chunk_count(int64_t n, int64_t c, int64_t b) {
  int64_t k = n / CHUNK_ROWS;
  k = k < 1 ? 1 : k > MAX_CHUNKS ? MAX_CHUNKS : k;
  while (k > 1 && (size_t)(k * b * c) * (sizeof(double) + sizeof(int32_t)) > PARTIAL_BYTES) k /= 2;
  return (int)k;
}

/* x[e] as a double, x float32 or float64. */
static inline double load(const void *x, int f64, int64_t e) {
  return f64 ? ((const double *)x)[e] : (double)((const float *)x)[e];
}

static inline int wins(double v, int32_t i, double best, int32_t bi) {
  if (best != best) return v != v && i < bi;
  return v != v || v > best || (v == best && i < bi);
}

/* The rows of chunk k: [lo, hi). */
static void chunk_rows(gp_dims d, int k, int64_t *lo, int64_t *hi) {
  *lo = d.n * k / d.chunks;
  *hi = d.n * (k + 1) / d.chunks;
}

/* part (chunks, B, C): the sums of each chunk's rows per batch. float32 rows
 * go to the column-sum kernel a run of rows of one batch at a time (the
 * same additions in the same order as the plain loop, so the same bits). */
static void chunk_sums(const lt_ctx *ctx, double *part, const void *x, int f64, const int32_t *rows, gp_dims d) {
  int threads = d.n * d.c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  lt_isa isa = lt__ctx_isa(ctx);
  LT_PARALLEL_FOR(threads, k, d.chunks, {
    double *pk = part + k * d.b * d.c;
    int64_t lo, hi;
    chunk_rows(d, (int)k, &lo, &hi);
    memset(pk, 0, (size_t)(d.b * d.c) * sizeof *pk);
    for (int64_t i = lo, j; i < hi; i = j) {
      int32_t b = rows[i * 4];
      for (j = i + 1; j < hi && rows[j * 4] == b; j++) continue;
      double *s = pk + b * d.c;
      if (!f64)
        lt__colsum_f64(isa, s, (const float *)x + i * d.c, j - i, d.c);
      else
        for (int64_t r = i; r < j; r++)
          for (int64_t c = 0; c < d.c; c++) s[c] += ((const double *)x)[r * d.c + c];
    }
  });
}

/* part (chunks, B, C) and parg: each chunk's maxima per batch and their rows (-1: no row). */
static void chunk_maxima(const lt_ctx *ctx, double *part, int32_t *parg, const void *x, int f64, const int32_t *rows,
                         gp_dims d) {
  int threads = d.n * d.c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, k, d.chunks, {
    double *pk = part + k * d.b * d.c;
    int32_t *ak = parg + k * d.b * d.c;
    int64_t lo, hi;
    chunk_rows(d, (int)k, &lo, &hi);
    for (int64_t e = 0; e < d.b * d.c; e++) pk[e] = 0, ak[e] = -1;
    for (int64_t i = lo; i < hi; i++) {
      int64_t base = rows[i * 4] * d.c;
      for (int64_t c = 0; c < d.c; c++) {
        double v = load(x, f64, i * d.c + c);
        if (ak[base + c] < 0 || wins(v, (int32_t)i, pk[base + c], ak[base + c]))
          pk[base + c] = v, ak[base + c] = (int32_t)i;
      }
    }
  });
}

/* y (B, C) in the compute dtype from the partials, chunks in row order. */
static void combine(lt_tensor *y, int32_t *arg, const double *part, const int32_t *parg, const int64_t *count,
                    lt_sparse_pool_mode mode, gp_dims d) {
  for (int64_t e = 0; e < d.b * d.c; e++) {
    double v = 0;
    int32_t bi = -1;
    for (int k = 0; k < d.chunks; k++) {
      int64_t p = k * d.b * d.c + e;
      if (!arg)
        v += part[p];
      else if (parg[p] >= 0 && (bi < 0 || wins(part[p], parg[p], v, bi)))
        v = part[p], bi = parg[p];
    }
    if (mode == LT_SPARSE_POOL_AVG && count[e / d.c] > 0) v /= (double)count[e / d.c];
    if (arg) arg[e] = bi;
    if (y->dtype == LT_FLOAT64)
      lt__f64(y)[e] = v;
    else
      lt__f32(y)[e] = (float)v;
  }
}

/* ---- backward ---- */

/* dx (N, C) in the compute dtype; count (B) for avg, arg (B, C) for max. */
static void backward_rows(const lt_ctx *ctx, lt_tensor *dx, const lt_tensor *g, const int32_t *rows,
                          const int64_t *count, const int32_t *arg, gp_dims d) {
  int f64 = dx->dtype == LT_FLOAT64, threads = d.n * d.c >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  const void *gd = lt_tensor_data(g);
  void *out = lt_tensor_data(dx);
  LT_PARALLEL_FOR(threads, i, d.n, {
    int64_t b = rows[i * 4];
    for (int64_t c = 0; c < d.c; c++) {
      double v = arg && arg[b * d.c + c] != i ? 0.0 : load(gd, f64, b * d.c + c);
      if (count && count[b] > 1) v = f64 ? v / (double)count[b] : (double)((float)v / (float)count[b]);
      if (f64)
        ((double *)out)[i * d.c + c] = v;
      else
        ((float *)out)[i * d.c + c] = (float)v;
    }
  });
}

/* Rows per batch. */
static void batch_counts(int64_t *count, const int32_t *rows, int64_t n, int64_t batches) {
  for (int64_t b = 0; b < batches; b++) count[b] = 0;
  for (int64_t i = 0; i < n; i++) count[rows[i * 4]]++;
}

static void release_coords(void *c) { lt_coords_release(c); }

/* in = {x}; saved = {coords, argmax (max only)}. */
static lt_status global_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  const gp_attrs *a = n->attrs;
  const lt_coords *c = n->saved[0].obj;
  lt_tensor *x = n->in[0], *g = NULL;
  gp_dims d = {x->shape[0], x->shape[1], a->batches, 1};
  const int32_t *rows = lt_tensor_data(c->rows), *arg = NULL;
  size_t cbytes = (size_t)(d.b ? d.b : 1) * sizeof(int64_t);
  int64_t *count = a->mode == LT_SPARSE_POOL_AVG ? lt_ctx_alloc(ctx, cbytes) : NULL;
  if (a->mode == LT_SPARSE_POOL_AVG && !count) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", n->name);
  if (count) batch_counts(count, rows, d.n, d.b);
  if (a->mode == LT_SPARSE_POOL_MAX) arg = lt_tensor_data(lt__saved(n, 1));
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_status st = lt__as_contig(ctx, &g, gouts[0], cdt);
  if (!st) st = lt_tensor_new(ctx, &gin[0], cdt, 2, x->shape);
  if (!st) backward_rows(ctx, gin[0], g, rows, count, arg, d);
  lt_tensor_release(g);
  if (count) lt_ctx_free(ctx, count, cbytes);
  return st;
}

/* ---- forward ---- */

static lt_status check_args(lt_ctx *ctx, lt_sparse_pool_mode mode, const lt_tensor *x, const lt_coords *c,
                            int64_t batches, const int64_t *count, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features must be a float tensor, got %s", op,
                       lt_dtype_info(x->dtype)->name);
  if (x->ndim != 2 || x->shape[0] != c->n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: features have shape %s, the input has %lld rows", op,
                       lt__shape_str(s, sizeof s, x->ndim, x->shape), (long long)c->n);
  for (int64_t b = 0; mode == LT_SPARSE_POOL_MAX && b < batches; b++)
    if (count[b] == 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: batch %lld has no rows; the maximum of none is undefined", op,
                         (long long)b);
  return LT_OK;
}

/* The batch column against `batches` (our callers pass checked batch
 * counts), counting each batch's rows in the same pass. */
static lt_status check_batches(lt_ctx *ctx, int64_t *count, const lt_coords *c, int64_t batches, const char *op) {
  const int32_t *rows = lt_tensor_data(c->rows);
  for (int64_t b = 0; b < batches; b++) count[b] = 0;
  for (int64_t i = 0; i < c->n; i++) {
    if (rows[i * 4] >= batches)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row %lld has batch %d, beyond the %lld batches", op, (long long)i + 1,
                         rows[i * 4], (long long)batches);
    count[rows[i * 4]]++;
  }
  return LT_OK;
}

/* y (and arg for max) from the staged xs. */
static lt_status reduce(lt_ctx *ctx, lt_tensor *y, int32_t *arg, const lt_tensor *xs, const lt_coords *c,
                        const int64_t *count, lt_sparse_pool_mode mode, gp_dims d, const char *op) {
  size_t vb = (size_t)(d.chunks * d.b * d.c) * sizeof(double), ab = arg ? vb / 2 : 0;
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, 1, vb + ab + 1, op)) return LT_ERR_MEM;
  double *part = lt__workspace_slice(&ws, 0);
  int32_t *parg = arg ? (int32_t *)(part + d.chunks * d.b * d.c) : NULL;
  const int32_t *rows = lt_tensor_data(c->rows);
  int f64 = xs->dtype == LT_FLOAT64;
  if (arg)
    chunk_maxima(ctx, part, parg, lt_tensor_data(xs), f64, rows, d);
  else
    chunk_sums(ctx, part, lt_tensor_data(xs), f64, rows, d);
  combine(y, arg, part, parg, count, mode, d);
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

static lt_status run(lt_ctx *ctx, lt_tensor **out, lt_tensor **arg, lt_sparse_pool_mode mode, lt_tensor *x,
                     lt_coords *c, int64_t batches, const int64_t *count, const char *op) {
  lt_status st = check_args(ctx, mode, x, c, batches, count, op);
  if (st) return st;
  gp_dims d = {x->shape[0], x->shape[1], batches, chunk_count(x->shape[0], x->shape[1], batches)};
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_tensor *xs = NULL;
  st = lt__as_contig(ctx, &xs, x, cdt);
  if (!st) st = lt_tensor_new(ctx, out, cdt, 2, (int64_t[]){batches, d.c});
  if (!st && mode == LT_SPARSE_POOL_MAX) st = lt_tensor_new(ctx, arg, LT_INT32, 2, (int64_t[]){batches, d.c});
  if (!st) st = reduce(ctx, *out, *arg ? lt_tensor_data(*arg) : NULL, xs, c, count, mode, d, op);
  lt_tensor_release(xs);
  return st;
}

lt_status lt_sparse_global_pool(lt_ctx *ctx, lt_tensor **out, lt_sparse_pool_mode mode, lt_tensor *x, lt_coords *c,
                                int64_t batches, const char *op) {
  *out = NULL;
  if ((unsigned)mode >= LT_SPARSE_POOL_MODES) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown pooling mode", op);
  if (batches < 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: batches must be non-negative", op);
  size_t cbytes = (size_t)(batches ? batches : 1) * sizeof(int64_t);
  int64_t *count = lt_ctx_alloc(ctx, cbytes);
  if (!count) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  lt_tensor *arg = NULL;
  lt_status st = check_batches(ctx, count, c, batches, op);
  if (!st) st = run(ctx, out, &arg, mode, x, c, batches, count, op);
  lt_ctx_free(ctx, count, cbytes);
  if (!st) st = lt__to_dtype(ctx, out, x->dtype);
  lt_node *node = NULL;
  if (!st) st = lt__record(ctx, &node, LT_OP(op, global_backward, gp_attrs, 2), out, 1, &x);
  if (node) {
    *(gp_attrs *)node->attrs = (gp_attrs){mode, batches};
    lt__node_keep(node, 0, lt_coords_retain(c), release_coords);
    if (arg) lt__node_save(node, 1, arg);
  }
  lt_tensor_release(arg);
  if (st && *out) lt_tensor_release(*out), *out = NULL;
  return st;
}

lt_status lt__colsum_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_isa isa, lt_isa *used) {
  char s[LT_SHAPE_STR_MAX];
  lt_isa best = lt_cpu_isa();
  *out = NULL, *used = isa < best ? isa : best;
  if (x->ndim != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "colsum_with_isa: x must be 2-D, got %s",
                       lt__shape_str(s, sizeof s, x->ndim, x->shape));
  lt_tensor *xs = NULL;
  lt_status st = lt__as_contig(ctx, &xs, x, LT_FLOAT32);
  if (!st) st = lt_tensor_new(ctx, out, LT_FLOAT64, 1, &x->shape[1]);
  if (!st) {
    memset(lt_tensor_data(*out), 0, (size_t)x->shape[1] * sizeof(double));
    lt__colsum_f64(*used, lt_tensor_data(*out), lt_tensor_data(xs), x->shape[0], x->shape[1]);
  }
  lt_tensor_release(xs);
  return st;
}
