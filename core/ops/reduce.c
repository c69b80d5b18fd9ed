/* Reductions over a set of axes: sum, mean, max, min, var, logsumexp, their
 * backward rules, and lt__sum_to_shape (every broadcasting backward rule uses it).
 *
 * Every reduction is brought to one canonical layout by merging adjacent axes:
 *   x (K1, R, K2) contiguous -> out (K1, K2), reducing over R.
 * Row reductions ((N,C)->(N)) are K2 == 1; column reductions ((N,C)->(C), the
 * bias gradient) are K1 == 1. Axis sets that do not merge into that form (e.g.
 * axes {1,3} of a 4-d tensor) are permuted once, kept axes first, while x is
 * staged to the compute dtype, which turns them into row reductions.
 *
 * Floats compute in float32 and accumulate in double. A double accumulator
 * carries 2^-53 relative rounding per add, so a sum of up to ~2^29 float32 terms
 * is exact to well under the final float32 rounding: the result does not depend
 * on the summation order in practice (pairwise float32 summation, as NumPy does,
 * leaves O(log n) float32 ulps). Eight independent lanes keep the loops
 * throughput-bound instead of bound by the add latency. Splitting into chunks
 * depends on the shape only, never on the thread count, and chunks are combined
 * in a fixed order, so results are bitwise reproducible; no atomics anywhere.
 * float64 is the reference path: one task per output walks its R elements in
 * order in double (plain loops, not tuned). Integers compute in int64 (exact,
 * wrapping like NumPy): sum -> int64, max/min keep the dtype; mean/var/logsumexp
 * of integers compute in float32.
 * argmax/argmin (int64, 0-based, first occurrence, NaN wins) share the layout. */
#include <math.h>
#include <string.h>
#include "kernels/exp.h"
#include "ops/internal.h"

static const char *const names[LT_REDUCE_COUNT] = {"sum", "mean", "max", "min", "var", "logsumexp"};

const char *lt_reduce_name(lt_reduce_op op) { return (unsigned)op < LT_REDUCE_COUNT ? names[op] : "reduce"; }

#define LANES 8
#define CHUNK 16384 /* elements reduced by one task before partial results combine */
#define CB    2048  /* columns per block in column reductions (a stack accumulator) */

/* ---- layout ---- */

typedef struct layout {
  int64_t k1, r, k2;
  int permute; /* the axes do not merge: stage x with kept axes first, reduced last */
} layout;

static layout make_layout(int ndim, const int64_t *shape, unsigned mask) {
  int64_t g[LT_MAX_DIMS];
  int red[LT_MAX_DIMS], n = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == 1) continue; /* size-1 axes change no address */
    int ri = (mask >> i) & 1u;
    if (n && red[n - 1] == ri) {
      g[n - 1] *= shape[i];
    } else {
      g[n] = shape[i];
      red[n++] = ri;
    }
  }
  layout L = {1, 1, 1, 0};
  int k = 0;
  if (k < n && !red[k]) L.k1 = g[k++];
  if (k < n && red[k]) L.r = g[k++];
  if (k < n) L.k2 = g[k++];
  if (k < n) { /* more than K R K: permute into (kept, reduced) */
    L = (layout){1, 1, 1, 1};
    for (int i = 0; i < n; i++) *(red[i] ? &L.r : &L.k1) *= g[i];
  }
  return L;
}

/* x as a contiguous tensor of dtype cdt in the layout's order: a new reference. */
static lt_status stage(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, unsigned mask, const layout *L, lt_dtype cdt) {
  if (!L->permute) return lt__as_contig(ctx, out, x, cdt);
  int64_t shape[LT_MAX_DIMS], strides[LT_MAX_DIMS];
  int n = 0;
  for (unsigned pass = 0; pass < 2; pass++)
    for (int i = 0; i < x->ndim; i++)
      if (((mask >> i) & 1u) == pass) {
        shape[n] = x->shape[i];
        strides[n++] = x->strides[i];
      }
  lt_tensor *v;
  lt_status st = lt__view(ctx, &v, x, x->ndim, shape, strides, x->offset);
  if (st) return st;
  st = lt__as_contig(ctx, out, v, cdt);
  lt_tensor_release(v);
  return st;
}

/* ---- float kernels: one reduction kind per loop so each vectorises ---- */

typedef enum kmode { K_SUM, K_MAX, K_MIN, K_SQDEV, K_EXPSUM } kmode;

static double lanes_total(const double *a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

/* x (n) -> sum x */
static double row_sum(const float *x, int64_t n) {
  double a[LANES] = {0};
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++) a[j] += x[i + j];
  for (int j = 0; i < n; i++, j++) a[j] += x[i];
  return lanes_total(a);
}

/* x (n) -> sum (x - c)^2 */
static double row_sqdev(const float *x, int64_t n, double c) {
  double a[LANES] = {0};
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++) {
      double d = x[i + j] - c;
      a[j] += d * d;
    }
  for (int j = 0; i < n; i++, j++) a[j] += (x[i] - c) * (x[i] - c);
  return lanes_total(a);
}

/* x (n) -> sum exp(x - c), the exps computed 256 at a time on the stack */
static double row_expsum(lt_isa isa, const float *x, int64_t n, double c) {
  float tmp[256];
  double s = 0;
  for (int64_t i = 0; i < n; i += 256) {
    int64_t len = n - i < 256 ? n - i : 256;
    lt__exp_shift(isa, tmp, x + i, (float)c, len);
    s += row_sum(tmp, len);
  }
  return s;
}

/* x (n) -> max x or min x; NaN wins, as in NumPy. */
static double row_extremum(const float *x, int64_t n, int is_max) {
  float a[LANES];
  int nan[LANES] = {0};
  for (int j = 0; j < LANES; j++) a[j] = is_max ? -INFINITY : INFINITY;
  int64_t i = 0;
  if (is_max) {
    for (; i + LANES <= n; i += LANES)
      for (int j = 0; j < LANES; j++) {
        float v = x[i + j];
        a[j] = v > a[j] ? v : a[j];
        nan[j] |= v != v;
      }
  } else {
    for (; i + LANES <= n; i += LANES)
      for (int j = 0; j < LANES; j++) {
        float v = x[i + j];
        a[j] = v < a[j] ? v : a[j];
        nan[j] |= v != v;
      }
  }
  float m = a[0];
  int any_nan = 0;
  for (; i < n; i++) any_nan |= x[i] != x[i], m = is_max ? fmaxf(m, x[i]) : fminf(m, x[i]);
  for (int j = 0; j < LANES; j++) any_nan |= nan[j], m = is_max ? fmaxf(m, a[j]) : fminf(m, a[j]);
  return any_nan ? NAN : m;
}

static double row_reduce(lt_isa isa, kmode m, const float *x, int64_t n, double c) {
  switch (m) {
  case K_SUM: return row_sum(x, n);
  case K_MAX: return row_extremum(x, n, 1);
  case K_MIN: return row_extremum(x, n, 0);
  case K_SQDEV: return row_sqdev(x, n, c);
  default: return row_expsum(isa, x, n, c);
  }
}

/* Two partial results of mode m combined (NaN wins for max/min). */
static double combine(kmode m, double a, double b) {
  if (m == K_MAX) return (b > a || b != b) ? b : a;
  if (m == K_MIN) return (b < a || b != b) ? b : a;
  return a + b;
}

/* Column kernels: x (rows, ld), its first w <= CB columns -> out (w), the
 * reduction over rows (overwrites out). */

/* Four rows per sweep halve the accumulator traffic; the adds stay in row order. */
static void col_sum(const float *x, int64_t rows, int64_t ld, int64_t w, double *out) {
  double acc[CB];
  for (int64_t j = 0; j < w; j++) acc[j] = 0;
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float *p0 = x + r * ld, *p1 = p0 + ld, *p2 = p1 + ld, *p3 = p2 + ld;
    for (int64_t j = 0; j < w; j++) acc[j] = (((acc[j] + p0[j]) + p1[j]) + p2[j]) + p3[j];
  }
  for (; r < rows; r++)
    for (int64_t j = 0; j < w; j++) acc[j] += x[r * ld + j];
  memcpy(out, acc, (size_t)w * sizeof *out);
}

/* max/min are exact in float32; NaN wins. */
static void col_extremum(const float *x, int64_t rows, int64_t ld, int64_t w, int is_max, double *out) {
  float acc[CB];
  for (int64_t j = 0; j < w; j++) acc[j] = is_max ? -INFINITY : INFINITY;
  for (int64_t r = 0; r < rows; r++) {
    const float *p = x + r * ld;
    if (is_max)
      for (int64_t j = 0; j < w; j++) acc[j] = (p[j] > acc[j] || p[j] != p[j]) ? p[j] : acc[j];
    else
      for (int64_t j = 0; j < w; j++) acc[j] = (p[j] < acc[j] || p[j] != p[j]) ? p[j] : acc[j];
  }
  for (int64_t j = 0; j < w; j++) out[j] = acc[j];
}

/* acc (w) += exp(p - c) for one row, through a stack block. */
static void col_expsum_row(lt_isa isa, double *acc, const float *p, const float *c, int64_t w) {
  float e[CB];
  for (int64_t j = 0; j < w; j++) e[j] = p[j] - c[j];
  lt__exp_shift(isa, e, e, 0.0f, w);
  for (int64_t j = 0; j < w; j++) acc[j] += e[j];
}

/* sum (x - c)^2 (K_SQDEV) or sum exp(x - c) (K_EXPSUM), c (w) one centre per column. */
static void col_centred(lt_isa isa, kmode m, const float *x, int64_t rows, int64_t ld, int64_t w, const double *c,
                        double *out) {
  double acc[CB];
  float cf[CB];
  for (int64_t j = 0; j < w; j++) acc[j] = 0, cf[j] = (float)c[j];
  for (int64_t r = 0; r < rows; r++) {
    const float *p = x + r * ld;
    if (m == K_SQDEV)
      for (int64_t j = 0; j < w; j++) acc[j] += (p[j] - c[j]) * (p[j] - c[j]);
    else
      col_expsum_row(isa, acc, p, cf, w);
  }
  memcpy(out, acc, (size_t)w * sizeof *out);
}

static void col_block(lt_isa isa, kmode m, const float *x, int64_t rows, int64_t ld, int64_t w, const double *c,
                      double *out) {
  if (m == K_SUM)
    col_sum(x, rows, ld, w, out);
  else if (m == K_MAX || m == K_MIN)
    col_extremum(x, rows, ld, w, m == K_MAX, out);
  else
    col_centred(isa, m, x, rows, ld, w, c, out);
}

/* ---- drivers: parallel over outputs, long reductions split in fixed chunks ---- */

static double *scratch_get(lt_ctx *ctx, int64_t n) {
  return lt_ctx_alloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(double));
}
static void scratch_put(lt_ctx *ctx, double *p, int64_t n) {
  lt_ctx_free(ctx, p, (size_t)(n > 0 ? n : 1) * sizeof(double));
}

static int threads_for(const lt_ctx *ctx, int64_t work) { return work >= LT_GRAIN ? lt__ctx_threads(ctx) : 1; }

/* out[o] = part[o] combined with part[k*no + o] for k = 1..nparts-1, in order. */
static void combine_parts(const lt_ctx *ctx, kmode m, const double *part, int64_t nparts, int64_t no, double *out) {
  int threads = threads_for(ctx, no * nparts);
  LT_PARALLEL_FOR(threads, o, no, {
    double v = part[o];
    for (int64_t k = 1; k < nparts; k++) v = combine(m, v, part[k * no + o]);
    out[o] = v;
  });
}

/* x (k1, r) -> out (k1). */
static lt_status rows_f32(lt_ctx *ctx, kmode m, const float *x, int64_t k1, int64_t r, const double *c, double *out) {
  int threads = threads_for(ctx, k1 * r);
  lt_isa isa = lt__ctx_isa(ctx);
  int64_t nch = r > CHUNK ? (r + CHUNK - 1) / CHUNK : 1;
  if (nch == 1) {
    LT_PARALLEL_FOR(threads, i, k1, { out[i] = row_reduce(isa, m, x + i * r, r, c ? c[i] : 0); });
    return LT_OK;
  }
  double *part = scratch_get(ctx, nch * k1); /* part[ch * k1 + i] */
  if (!part) return lt_ctx_fail(ctx, LT_ERR_MEM, "reduce: out of memory");
  LT_PARALLEL_FOR(threads, it, k1 * nch, {
    int64_t i = it / nch, ch = it % nch, lo = ch * CHUNK, n = r - lo < CHUNK ? r - lo : CHUNK;
    part[ch * k1 + i] = row_reduce(isa, m, x + i * r + lo, n, c ? c[i] : 0);
  });
  combine_parts(ctx, m, part, nch, k1, out);
  scratch_put(ctx, part, nch * k1);
  return LT_OK;
}

/* x (k1, r, k2) -> out (k1, k2), k2 > 1: blocks of CB columns stream over the rows. */
static lt_status cols_f32(lt_ctx *ctx, kmode m, const float *x, int64_t k1, int64_t r, int64_t k2, const double *c,
                          double *out) {
  int64_t ncb = (k2 + CB - 1) / CB, w = k2 < CB ? k2 : CB, no = k1 * k2;
  int64_t rpc = r > 0 ? r : 1, nrc = 1;
  if (k1 * ncb < 16 && r * w >= 2 * CHUNK) { /* few blocks: split the rows into ~16 tasks too */
    nrc = (16 + k1 * ncb - 1) / (k1 * ncb);
    rpc = (r + nrc - 1) / nrc;
    nrc = (r + rpc - 1) / rpc;
  }
  double *part = nrc > 1 ? scratch_get(ctx, nrc * no) : out; /* part[rc * no + o] */
  if (!part) return lt_ctx_fail(ctx, LT_ERR_MEM, "reduce: out of memory");
  int threads = threads_for(ctx, k1 * r * k2);
  lt_isa isa = lt__ctx_isa(ctx);
  LT_PARALLEL_FOR(threads, it, nrc * k1 * ncb, {
    int64_t rc = it / (k1 * ncb), i = it % (k1 * ncb) / ncb, c0 = it % ncb * CB;
    int64_t cw = k2 - c0 < CB ? k2 - c0 : CB, r0 = rc * rpc, rn = r - r0 < rpc ? r - r0 : rpc;
    col_block(isa, m, x + (i * r + r0) * k2 + c0, rn, k2, cw, c ? c + i * k2 + c0 : NULL, part + rc * no + i * k2 + c0);
  });
  if (nrc > 1) {
    combine_parts(ctx, m, part, nrc, no, out);
    scratch_put(ctx, part, nrc * no);
  }
  return LT_OK;
}

static lt_status pass_f32(lt_ctx *ctx, kmode m, const float *x, const layout *L, const double *c, double *out) {
  if (L->k2 == 1) return rows_f32(ctx, m, x, L->k1, L->r, c, out);
  return cols_f32(ctx, m, x, L->k1, L->r, L->k2, c, out);
}

/* x (K1, R, K2) float32 -> y (K1, K2) float32. var and logsumexp take two passes:
 * the mean (resp. the max) first, then the centred sum. */
static lt_status reduce_f32(lt_ctx *ctx, lt_reduce_op op, const float *x, const layout *L, int ddof, float *y) {
  int64_t no = L->k1 * L->k2, r = L->r;
  double *acc = scratch_get(ctx, 2 * no);
  if (!acc) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", names[op]);
  double *c = acc + no;
  kmode first = op == LT_REDUCE_MAX || op == LT_REDUCE_LOGSUMEXP ? K_MAX : op == LT_REDUCE_MIN ? K_MIN : K_SUM;
  lt_status st = pass_f32(ctx, first, x, L, NULL, acc);
  if (!st && op == LT_REDUCE_VAR) {
    for (int64_t o = 0; o < no; o++) c[o] = acc[o] / (double)r;
    st = pass_f32(ctx, K_SQDEV, x, L, c, acc);
  } else if (!st && op == LT_REDUCE_LOGSUMEXP) {
    for (int64_t o = 0; o < no; o++) c[o] = isfinite(acc[o]) ? acc[o] : 0.0; /* all -inf rows give log(0) */
    st = pass_f32(ctx, K_EXPSUM, x, L, c, acc);
  }
  double denom = op == LT_REDUCE_MEAN ? (double)r : op == LT_REDUCE_VAR ? (double)(r - ddof > 0 ? r - ddof : 0) : 1.0;
  for (int64_t o = 0; !st && o < no; o++) {
    double v = op == LT_REDUCE_LOGSUMEXP ? c[o] + log(acc[o]) : acc[o];
    y[o] = (float)(op == LT_REDUCE_MEAN || op == LT_REDUCE_VAR ? v / denom : v);
  }
  scratch_put(ctx, acc, 2 * no);
  return st;
}

/* ---- float64: one task per output, its R elements at stride K2 ---- */

/* max (min) of p[0], p[s], ..., p[(r-1)s], r >= 1; NaN wins. */
static double strided_extremum_f64(const double *p, int64_t r, int64_t s, int is_max) {
  double m = p[0];
  for (int64_t j = 1; j < r && m == m; j++) {
    double v = p[j * s];
    if (v != v || (is_max ? v > m : v < m)) m = v;
  }
  return m;
}

/* The sum over j < r of p[js] (K_SUM), (p[js] - c)^2 (K_SQDEV) or exp(p[js] - c) (K_EXPSUM). */
static double strided_sum_f64(kmode m, const double *p, int64_t r, int64_t s, double c) {
  double acc = 0;
  for (int64_t j = 0; j < r; j++) {
    double v = p[j * s];
    acc += m == K_SQDEV ? (v - c) * (v - c) : m == K_EXPSUM ? exp(v - c) : v;
  }
  return acc;
}

static double strided_reduce_f64(lt_reduce_op op, const double *p, int64_t r, int64_t s, int ddof) {
  if (op == LT_REDUCE_MAX || op == LT_REDUCE_MIN) return strided_extremum_f64(p, r, s, op == LT_REDUCE_MAX);
  if (op == LT_REDUCE_LOGSUMEXP) {
    double m = r ? strided_extremum_f64(p, r, s, 1) : -INFINITY, c = isfinite(m) ? m : 0.0;
    return c + log(strided_sum_f64(K_EXPSUM, p, r, s, c));
  }
  double sum = strided_sum_f64(K_SUM, p, r, s, 0);
  if (op == LT_REDUCE_SUM) return sum;
  if (op == LT_REDUCE_MEAN) return sum / (double)r;
  double sq = strided_sum_f64(K_SQDEV, p, r, s, sum / (double)r); /* var: two passes, no cancellation */
  return sq / (double)(r - ddof > 0 ? r - ddof : 0);
}

/* x (K1, R, K2) float64 -> y (K1, K2) float64. */
static void reduce_f64(const lt_ctx *ctx, lt_reduce_op op, const double *x, const layout *L, int ddof, double *y) {
  int64_t r = L->r, k2 = L->k2;
  int threads = threads_for(ctx, L->k1 * r * k2);
  LT_PARALLEL_FOR(threads, o, L->k1 * k2,
                  { y[o] = strided_reduce_f64(op, x + (o / k2) * r * k2 + o % k2, r, k2, ddof); });
}

/* x (K1, R, K2) int64 -> y (K1, K2) int64 for sum (wrapping), max, min (R >= 1). */
static void reduce_i64(const lt_ctx *ctx, lt_reduce_op op, const int64_t *x, const layout *L, int64_t *y) {
  int64_t k1 = L->k1, r = L->r, k2 = L->k2;
  int threads = threads_for(ctx, k1 * r * k2);
  LT_PARALLEL_FOR(threads, i, k1, {
    const int64_t *xi = x + i * r * k2;
    int64_t *yi = y + i * k2;
    for (int64_t c = 0; c < k2; c++) yi[c] = op == LT_REDUCE_SUM ? 0 : xi[c];
    for (int64_t j = op == LT_REDUCE_SUM ? 0 : 1; j < r; j++) {
      const int64_t *p = xi + j * k2;
      if (op == LT_REDUCE_SUM)
        for (int64_t c = 0; c < k2; c++) yi[c] = (int64_t)((uint64_t)yi[c] + (uint64_t)p[c]);
      else if (op == LT_REDUCE_MAX)
        for (int64_t c = 0; c < k2; c++) yi[c] = p[c] > yi[c] ? p[c] : yi[c];
      else
        for (int64_t c = 0; c < k2; c++) yi[c] = p[c] < yi[c] ? p[c] : yi[c];
    }
  });
}

/* ---- the reduction itself, for any output shape holding the kept elements ---- */

static int64_t reduced_count(const lt_tensor *x, unsigned mask) {
  int64_t n = 1;
  for (int i = 0; i < x->ndim; i++)
    if ((mask >> i) & 1u) n *= x->shape[i];
  return n;
}

static lt_dtype result_dtype(lt_reduce_op op, lt_dtype dt) {
  if (lt_dtype_info(dt)->is_float) return dt;
  if (op == LT_REDUCE_SUM) return LT_INT64;
  return op == LT_REDUCE_MAX || op == LT_REDUCE_MIN ? dt : LT_FLOAT32;
}

static lt_status reduce_impl(lt_ctx *ctx, lt_tensor **out, lt_reduce_op op, lt_tensor *x, unsigned mask, int ond,
                             const int64_t *oshape, int ddof) {
  *out = NULL;
  if ((op == LT_REDUCE_MAX || op == LT_REDUCE_MIN) && reduced_count(x, mask) == 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: zero-size reduction", names[op]);
  int int_path =
      !lt_dtype_info(x->dtype)->is_float && (op == LT_REDUCE_SUM || op == LT_REDUCE_MAX || op == LT_REDUCE_MIN);
  lt_dtype cdt = int_path ? LT_INT64 : lt__compute_dtype(x->dtype), odt = result_dtype(op, x->dtype);
  layout L = make_layout(x->ndim, x->shape, mask);
  lt_tensor *xc = NULL, *o = NULL;
  lt_status st = stage(ctx, &xc, x, mask, &L, cdt);
  if (!st) st = lt_tensor_new(ctx, &o, cdt, ond, oshape);
  if (!st && int_path)
    reduce_i64(ctx, op, lt_tensor_data(xc), &L, lt_tensor_data(o));
  else if (!st && cdt == LT_FLOAT64)
    reduce_f64(ctx, op, lt_tensor_data(xc), &L, ddof, lt_tensor_data(o));
  else if (!st)
    st = reduce_f32(ctx, op, lt_tensor_data(xc), &L, ddof, lt_tensor_data(o));
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, &o, odt);
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  return LT_OK;
}

/* x's shape with the reduced axes set to 1. */
static void kept_shape(const lt_tensor *x, unsigned mask, int64_t *shape) {
  for (int i = 0; i < x->ndim; i++) shape[i] = (mask >> i) & 1u ? 1 : x->shape[i];
}

/* ---- backward rules ---- */

typedef struct reduce_attrs {
  unsigned mask; /* the reduced axes */
  lt_reduce_op op;
  int ddof;
} reduce_attrs;

/* t (holding x's kept elements in order, any shape) read as x's shape, i.e.
 * repeated along the reduced axes: a contiguous tensor of dtype cdt (new reference). */
static lt_status expand_back(lt_ctx *ctx, lt_tensor **out, lt_tensor *t, const lt_tensor *x, unsigned mask,
                             lt_dtype cdt) {
  lt_tensor *tc = NULL, *v = NULL;
  lt_status st = lt__as_contig(ctx, &tc, t, cdt);
  if (st) return st;
  int64_t strides[LT_MAX_DIMS], s = 1;
  for (int i = x->ndim - 1; i >= 0; i--) {
    strides[i] = (mask >> i) & 1u ? 0 : s;
    s *= (mask >> i) & 1u ? 1 : x->shape[i];
  }
  st = lt__view(ctx, &v, tc, x->ndim, x->shape, strides, tc->offset);
  if (!st) st = lt__as_contig(ctx, out, v, cdt);
  lt_tensor_release(v);
  lt_tensor_release(tc);
  return st;
}

/* gx (n) = g * exp(x - o), the exps in place in gx. */
static void exp_times(lt_isa isa, float *gx, const float *g, const float *x, const float *o, int64_t n) {
  for (int64_t i = 0; i < n; i++) gx[i] = x[i] - o[i];
  lt__exp_shift(isa, gx, gx, 0.0f, n);
  for (int64_t i = 0; i < n; i++) gx[i] *= g[i];
}

/* All arrays (n) in x's shape. gx = g * d out / d x, where
 *   sum, mean: d = scale;             var: d = scale * (x - mean)   (ob = mean)
 *   logsumexp: d = exp(x - out);      max, min: d = [x == out] / ties (cb = ties) */
static void grad_kernel(const lt_ctx *ctx, lt_reduce_op op, float *gx, const float *g, const float *x, const float *ob,
                        const float *cb, float scale, int64_t n) {
  int threads = threads_for(ctx, n);
  lt_isa isa = lt__ctx_isa(ctx);
  LT_PARALLEL_FOR(threads, blk, (n + 4095) / 4096, {
    int64_t b = blk * 4096, e = n - b < 4096 ? n : b + 4096;
    if (op == LT_REDUCE_SUM || op == LT_REDUCE_MEAN)
      for (int64_t i = b; i < e; i++) gx[i] = g[i] * scale;
    else if (op == LT_REDUCE_VAR)
      for (int64_t i = b; i < e; i++) gx[i] = g[i] * scale * (x[i] - ob[i]);
    else if (op == LT_REDUCE_LOGSUMEXP)
      exp_times(isa, gx + b, g + b, x + b, ob + b, e - b);
    else
      for (int64_t i = b; i < e; i++) gx[i] = x[i] == ob[i] ? g[i] / cb[i] : 0.0f;
  });
}

/* grad_kernel in double (the float64 path). */
static void grad_kernel_f64(const lt_ctx *ctx, lt_reduce_op op, double *gx, const double *g, const double *x,
                            const double *ob, const double *cb, double scale, int64_t n) {
  int threads = threads_for(ctx, n);
  LT_PARALLEL_FOR(threads, i, n, {
    if (op == LT_REDUCE_SUM || op == LT_REDUCE_MEAN)
      gx[i] = g[i] * scale;
    else if (op == LT_REDUCE_VAR)
      gx[i] = g[i] * scale * (x[i] - ob[i]);
    else if (op == LT_REDUCE_LOGSUMEXP)
      gx[i] = g[i] * exp(x[i] - ob[i]);
    else
      gx[i] = x[i] == ob[i] ? g[i] / cb[i] : 0.0;
  });
}

/* eq (n) = [x == o], all contiguous of one compute dtype. */
static void mark_ties(lt_tensor *eq, const lt_tensor *xc, const lt_tensor *ob) {
  int64_t n = lt_tensor_size(eq);
  if (eq->dtype == LT_FLOAT64)
    for (int64_t i = 0; i < n; i++) lt__f64(eq)[i] = lt__f64(xc)[i] == lt__f64(ob)[i];
  else
    for (int64_t i = 0; i < n; i++) lt__f32(eq)[i] = lt__f32(xc)[i] == lt__f32(ob)[i];
}

/* The tensors grad_kernel reads besides g: x in the compute dtype, `ob` and `cb` expanded to x's shape. */
static lt_status grad_operands(lt_ctx *ctx, const lt_node *n, lt_tensor **xc, lt_tensor **ob, lt_tensor **cb) {
  lt_tensor *x = n->in[0], *t = NULL, *eq = NULL;
  const reduce_attrs *at = n->attrs;
  unsigned mask = at->mask;
  lt_reduce_op op = at->op;
  int64_t ks[LT_MAX_DIMS];
  kept_shape(x, mask, ks);
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_status st = lt__as_contig(ctx, xc, x, cdt);
  if (st || op == LT_REDUCE_SUM || op == LT_REDUCE_MEAN) return st;
  if (op == LT_REDUCE_VAR ||
      (op == LT_REDUCE_LOGSUMEXP && x->dtype != cdt)) /* recomputed: a 16-bit output is too coarse */
    st = reduce_impl(ctx, &t, op == LT_REDUCE_VAR ? LT_REDUCE_MEAN : op, *xc, mask, x->ndim, ks, 0);
  else
    t = lt_tensor_retain(lt__saved(n, 0));
  if (!st) st = expand_back(ctx, ob, t, x, mask, cdt);
  lt_tensor_release(t);
  if (st || op == LT_REDUCE_VAR || op == LT_REDUCE_LOGSUMEXP) return st;
  /* max/min: count the ties of each output, so they share its gradient evenly */
  st = lt_tensor_new(ctx, &eq, cdt, x->ndim, x->shape);
  if (!st) mark_ties(eq, *xc, *ob);
  t = NULL;
  if (!st) st = reduce_impl(ctx, &t, LT_REDUCE_SUM, eq, mask, x->ndim, ks, 0);
  if (!st) st = expand_back(ctx, cb, t, x, mask, cdt);
  lt_tensor_release(t);
  lt_tensor_release(eq);
  return st;
}

static lt_status reduce_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_tensor *x = n->in[0], *gb = NULL, *xc = NULL, *ob = NULL, *cb = NULL, *gx = NULL;
  const reduce_attrs *at = n->attrs;
  unsigned mask = at->mask;
  lt_reduce_op op = at->op;
  int64_t count = reduced_count(x, mask), ddof = at->ddof;
  double scale = op == LT_REDUCE_MEAN  ? 1.0 / (double)count
                 : op == LT_REDUCE_VAR ? 2.0 / (double)(count - ddof > 0 ? count - ddof : 0)
                                       : 1.0;
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_status st = expand_back(ctx, &gb, g, x, mask, cdt);
  if (!st) st = grad_operands(ctx, n, &xc, &ob, &cb);
  if (!st) st = lt_tensor_new(ctx, &gx, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    grad_kernel_f64(ctx, op, lt__f64(gx), lt__f64(gb), lt__f64(xc), ob ? lt__f64(ob) : NULL, cb ? lt__f64(cb) : NULL,
                    scale, lt_tensor_size(x));
  else if (!st)
    grad_kernel(ctx, op, lt__f32(gx), lt__f32(gb), lt__f32(xc), ob ? lt__f32(ob) : NULL, cb ? lt__f32(cb) : NULL,
                (float)scale, lt_tensor_size(x));
  if (!st) st = lt__to_dtype(ctx, &gx, x->dtype);
  lt_tensor *tmp[4] = {gb, xc, ob, cb};
  lt__release_all(4, tmp);
  if (st) {
    lt_tensor_release(gx);
    return st;
  }
  gin[0] = gx;
  return LT_OK;
}

/* ---- entries ---- */

static lt_status check_axes(lt_ctx *ctx, const char *name, int ndim, int naxes, const int *axes, unsigned *mask) {
  if (naxes < 0 || naxes > LT_MAX_DIMS) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %d axes given", name, naxes);
  *mask = naxes == 0 ? (1u << ndim) - 1u : 0;
  for (int k = 0; k < naxes; k++) {
    int a = lt__axis(axes[k], ndim);
    if (a < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: axis %d is out of range for %d dimensions", name,
                         axes[k] + (axes[k] >= 0), ndim); /* as Lua counts */
    if ((*mask >> a) & 1u)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: axis %d is repeated", name, a + 1); /* as Lua counts */
    *mask |= 1u << a;
  }
  return LT_OK;
}

lt_status lt_reduce(lt_ctx *ctx, lt_tensor **out, lt_reduce_op op, lt_tensor *x, int naxes, const int *axes,
                    int keepdims, int ddof) {
  *out = NULL;
  if ((unsigned)op >= LT_REDUCE_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "reduce: unknown op %d", (int)op);
  unsigned mask = 0;
  if (check_axes(ctx, names[op], x->ndim, naxes, axes, &mask)) return LT_ERR_ARG;
  int64_t oshape[LT_MAX_DIMS];
  int ond = 0;
  for (int i = 0; i < x->ndim; i++)
    if (keepdims || !((mask >> i) & 1u)) oshape[ond++] = (mask >> i) & 1u ? 1 : x->shape[i];
  lt_status st = reduce_impl(ctx, out, op, x, mask, ond, oshape, ddof);
  if (st || !lt_dtype_info(x->dtype)->is_float) return st;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP(names[op], reduce_backward, reduce_attrs, 1), out, 1, &x);
  if (node) {
    *(reduce_attrs *)node->attrs = (reduce_attrs){mask, op, ddof};
    if (op == LT_REDUCE_MAX || op == LT_REDUCE_MIN || op == LT_REDUCE_LOGSUMEXP) lt__node_save(node, 0, *out);
  }
  return st;
}

lt_status lt__sum_to_shape(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, int ndim, const int64_t *shape) {
  *out = NULL;
  int lead = g->ndim - ndim;
  unsigned mask = 0;
  for (int i = 0; i < g->ndim && lead >= 0; i++) {
    int64_t d = i < lead ? 1 : shape[i - lead];
    if (i < lead || (d == 1 && g->shape[i] != 1))
      mask |= 1u << i;
    else if (d != g->shape[i])
      lead = -1;
  }
  if (lead < 0) {
    char a[LT_SHAPE_STR_MAX], b[LT_SHAPE_STR_MAX];
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sum: cannot reduce a gradient of shape %s to %s",
                       lt__shape_str(a, sizeof a, g->ndim, g->shape), lt__shape_str(b, sizeof b, ndim, shape));
  }
  if (!mask) {
    *out = lt_tensor_retain(g);
    return LT_OK;
  }
  return reduce_impl(ctx, out, LT_REDUCE_SUM, g, mask, ndim, shape, 0);
}

/* ---- argmax / argmin ---- */

/* x (K1, R, K2) -> idx (K1, K2): the first position along R of the max (min); the
 * first NaN wins, as in NumPy. Blocks of CB columns stream over the rows. */
static void arg_f32(const lt_ctx *ctx, int is_max, const float *x, const layout *L, int64_t *idx) {
  int64_t k1 = L->k1, r = L->r, k2 = L->k2, ncb = (k2 + CB - 1) / CB;
  int threads = threads_for(ctx, k1 * r * k2);
  LT_PARALLEL_FOR(threads, it, k1 * ncb, {
    int64_t i = it / ncb, c0 = it % ncb * CB, w = k2 - c0 < CB ? k2 - c0 : CB;
    const float *xi = x + i * r * k2 + c0;
    float best[CB];
    int64_t *bi = idx + i * k2 + c0;
    for (int64_t j = 0; j < w; j++) best[j] = xi[j], bi[j] = 0;
    for (int64_t rr = 1; rr < r; rr++)
      for (int64_t j = 0; j < w; j++) {
        float v = xi[rr * k2 + j], b = best[j];
        int wins = is_max ? v > b : v < b;
        if (wins || (v != v && b == b)) best[j] = v, bi[j] = rr;
      }
  });
}

static void arg_f64(const lt_ctx *ctx, int is_max, const double *x, const layout *L, int64_t *idx) {
  int64_t r = L->r, k2 = L->k2;
  int threads = threads_for(ctx, L->k1 * r * k2);
  LT_PARALLEL_FOR(threads, o, L->k1 * k2, {
    const double *p = x + (o / k2) * r * k2 + o % k2;
    double best = p[0];
    int64_t bi = 0;
    for (int64_t j = 1; j < r; j++) {
      double v = p[j * k2];
      if ((is_max ? v > best : v < best) || (v != v && best == best)) best = v, bi = j;
    }
    idx[o] = bi;
  });
}

static void arg_i64(const lt_ctx *ctx, int is_max, const int64_t *x, const layout *L, int64_t *idx) {
  int64_t k1 = L->k1, r = L->r, k2 = L->k2, ncb = (k2 + CB - 1) / CB;
  int threads = threads_for(ctx, k1 * r * k2);
  LT_PARALLEL_FOR(threads, it, k1 * ncb, {
    int64_t i = it / ncb, c0 = it % ncb * CB, w = k2 - c0 < CB ? k2 - c0 : CB;
    const int64_t *xi = x + i * r * k2 + c0;
    int64_t best[CB], *bi = idx + i * k2 + c0;
    for (int64_t j = 0; j < w; j++) best[j] = xi[j], bi[j] = 0;
    for (int64_t rr = 1; rr < r; rr++)
      for (int64_t j = 0; j < w; j++) {
        int64_t v = xi[rr * k2 + j];
        if (is_max ? v > best[j] : v < best[j]) best[j] = v, bi[j] = rr;
      }
  });
}

static lt_status arg_reduce(lt_ctx *ctx, lt_tensor **out, int is_max, lt_tensor *x, int axis, int keepdims) {
  const char *name = is_max ? "argmax" : "argmin";
  *out = NULL;
  unsigned mask = (1u << x->ndim) - 1u;
  if (axis != LT_ALL_AXES) {
    int a = lt__axis(axis, x->ndim);
    if (a < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: axis %d is out of range for %d dimensions", name, axis + (axis >= 0),
                         x->ndim); /* as Lua counts */
    mask = 1u << a;
  }
  if (reduced_count(x, mask) == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: zero-size reduction", name);
  int64_t oshape[LT_MAX_DIMS];
  int ond = 0;
  for (int i = 0; i < x->ndim; i++)
    if (keepdims || !((mask >> i) & 1u)) oshape[ond++] = (mask >> i) & 1u ? 1 : x->shape[i];
  lt_dtype cdt = lt_dtype_info(x->dtype)->is_float ? lt__compute_dtype(x->dtype) : LT_INT64;
  layout L = make_layout(x->ndim, x->shape, mask);
  lt_tensor *xc = NULL;
  lt_status st = stage(ctx, &xc, x, mask, &L, cdt);
  if (!st) st = lt_tensor_new(ctx, out, LT_INT64, ond, oshape);
  if (!st && cdt == LT_FLOAT32)
    arg_f32(ctx, is_max, lt_tensor_data(xc), &L, lt_tensor_data(*out));
  else if (!st && cdt == LT_FLOAT64)
    arg_f64(ctx, is_max, lt_tensor_data(xc), &L, lt_tensor_data(*out));
  else if (!st)
    arg_i64(ctx, is_max, lt_tensor_data(xc), &L, lt_tensor_data(*out));
  lt_tensor_release(xc);
  return st;
}

lt_status lt_argmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int keepdims) {
  return arg_reduce(ctx, out, 1, x, axis, keepdims);
}

lt_status lt_argmin(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int keepdims) {
  return arg_reduce(ctx, out, 0, x, axis, keepdims);
}
