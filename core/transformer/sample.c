/* Choosing tokens from logits: lt_sample (the next-token draw of lmxlab's
 * models/generate.py) and lt_topk_indices (beam search's candidates).
 *
 * logits (R, V) -> tokens (R). Each row is staged in double and goes through
 * the seed's steps in its order: repetition penalty, temperature, then top-k
 * (k > 0) or top-p (< 1), then one categorical draw; greedy (temperature <= 0)
 * is the argmax of the penalised logits. Top-k selects with a heap of k; the
 * nucleus sorts only the tokens of the weight buckets it can reach (see
 * draw_nucleus). Candidates are ordered by logit,
 * ties to the lower token id, a total order: the result never depends on the
 * sort, the thread count or the platform's qsort. The draw is u * (sum of the
 * candidates' exp(l - max)) walked down that order, u one uniform per row from
 * the context's generator, so a seed reproduces every token.
 *
 * Where the seed's code differs from what it documents, this follows the
 * documentation: its top-k pairs mx.topk's values with argpartition's indices
 * in another order (a token is drawn with another token's probability); its
 * top-p gives every token outside the nucleus a probability of 1e-10 instead
 * of 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lattice/generate.h"
#include "runtime/context.h"
#include "runtime/parallel.h"
#include "tensor/internal.h"

/* One token and its (penalised, scaled) logit. */
typedef struct cand {
  double v;
  int64_t id;
} cand;

/* a comes before b: a larger logit, or the same logit and a lower id. */
static int before(const cand *a, const cand *b) { return a->v > b->v || (a->v == b->v && a->id < b->id); }

static int cmp_cand(const void *pa, const void *pb) {
  const cand *a = pa, *b = pb;
  return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/* The heap keeps the k best seen so far with the worst at its root. */
static void sift_down(cand *h, int64_t n, int64_t i) {
  for (;;) {
    int64_t w = i, l = 2 * i + 1, r = l + 1;
    if (l < n && before(&h[w], &h[l])) w = l;
    if (r < n && before(&h[w], &h[r])) w = r;
    if (w == i) return;
    cand t = h[i];
    h[i] = h[w], h[w] = t;
    i = w;
  }
}

/* c[0..k) = the k best of row[0..n), best first: a heap of k, O(n log k). */
static void select_top(const double *row, int64_t n, int64_t k, cand *c) {
  for (int64_t j = 0; j < k; j++) c[j] = (cand){row[j], j};
  for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
  for (int64_t j = k; j < n; j++) {
    cand x = {row[j], j};
    if (before(&x, &c[0])) c[0] = x, sift_down(c, k, 0);
  }
  qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

/* ---- lt_sample ---- */

/* The penalty on the tokens of one history row, from the original logits x,
 * so a token seen twice is penalised once (the seed builds a mask). */
static void penalise(double *v, const double *x, const int64_t *hist, int64_t n, double p) {
  for (int64_t i = 0; i < n; i++) {
    int64_t t = hist[i];
    v[t] = x[t] > 0 ? x[t] / p : x[t] * p;
  }
}

static int64_t argmax_row(const double *v, int64_t n) {
  int64_t best = 0;
  for (int64_t j = 1; j < n; j++)
    if (v[j] > v[best]) best = j;
  return best;
}

/* The token u picks among c[0..n) (best first), weighted by exp(v - c[0].v). */
static int64_t draw(const cand *c, int64_t n, double u, double *w) {
  double total = 0;
  for (int64_t i = 0; i < n; i++) total += w[i] = exp(c[i].v - c[0].v);
  double target = u * total, run = 0;
  for (int64_t i = 0; i < n; i++) {
    run += w[i];
    if (run > target && w[i] > 0) return c[i].id;
  }
  for (int64_t i = n - 1; i > 0; i--) /* rounding left target at the end: the last with weight */
    if (w[i] > 0) return c[i].id;
  return c[0].id;
}

/* Buckets of weights by binary exponent: bucket i holds e in [2^-i, 2^(1-i)),
 * from e = 1 (the largest logit) down to the smallest subnormal. */
#define N_BUCKETS 1075

/* The nucleus draw over the row v (penalised, not yet divided by t). Each
 * token's weight e = exp(v/t - max) is summed in token order (the total) and
 * into its exponent's bucket; the buckets from the top until their mass
 * passes top_p bound the nucleus, so only the tokens in them are sorted
 * (best first) and walked, widening by a bucket when rounding leaves the cut
 * outside. A flat distribution sorts most of the vocabulary; a trained
 * model's few hundred tokens. e takes V doubles. */
static int64_t draw_nucleus(const double *v, int64_t V, double t, double top_p, double u, cand *c, double *e) {
  double m = v[argmax_row(v, V)] / t, total = 0, bucket[N_BUCKETS] = {0};
  for (int64_t j = 0; j < V; j++) {
    total += e[j] = exp(v[j] / t - m);
    int b = 0;
    if (e[j] > 0) frexp(e[j], &b), bucket[1 - b] += e[j];
  }
  int last = 0;
  double upper = 0, mass = 0;
  int64_t n = 0, keep = 0;
  for (;;) {
    while (last < N_BUCKETS && upper / total <= top_p) upper += bucket[last++];
    double tau = ldexp(1.0, 1 - last); /* the tokens of buckets 0 .. last-1 */
    n = 0;
    for (int64_t j = 0; j < V; j++)
      if (e[j] >= tau || last == N_BUCKETS) c[n++] = (cand){v[j], j};
    qsort(c, (size_t)n, sizeof *c, cmp_cand);
    mass = 0, keep = 0;
    while (keep < n && mass / total <= top_p) mass += e[c[keep++].id];
    if (mass / total > top_p || last == N_BUCKETS) break;
    upper += bucket[last++];
  }
  double target = u * mass, run = 0;
  for (int64_t i = 0; i < keep; i++) {
    double w = e[c[i].id];
    run += w;
    if (run > target && w > 0) return c[i].id;
  }
  for (int64_t i = keep - 1; i > 0; i--)
    if (e[c[i].id] > 0) return c[i].id;
  return c[0].id;
}

/* One row: 0, or 1 when its scaled logits overflow to +inf. A penalised
 * copy of the row takes the first V doubles of w's room; the candidates'
 * weights are written past it (w + V). */
static int sample_row(const double *x, int64_t V, const int64_t *hist, int64_t nh, const lt_sample_opts *o, double u,
                      cand *c, double *w, int64_t *token) {
  const double *v = x;
  if (o->repetition_penalty != 1 && nh > 0) {
    memcpy(w, x, (size_t)V * sizeof *w);
    penalise(w, x, hist, nh, o->repetition_penalty);
    v = w;
  }
  if (o->temperature <= 0) return *token = argmax_row(v, V), 0;
  int64_t best = argmax_row(v, V);
  if (isinf(v[best] / o->temperature)) return 1;
  if (o->top_k == 0 && o->top_p < 1) return *token = draw_nucleus(v, V, o->temperature, o->top_p, u, c, w + V), 0;
  int64_t n = V;
  if (o->top_k > 0) {
    n = o->top_k < V ? o->top_k : V;
    select_top(v, V, n, c);
  } else { /* a plain draw needs no order, only the largest first for the shift */
    for (int64_t j = 0; j < V; j++) c[j] = (cand){v[j], j};
    c[0] = (cand){v[best], best}, c[best] = (cand){v[0], 0};
  }
  for (int64_t i = 0; i < n; i++) c[i].v /= o->temperature;
  *token = draw(c, n, u, w + V);
  return 0;
}

static lt_status check_opts(lt_ctx *ctx, const lt_sample_opts *o) {
  if (!(o->repetition_penalty > 0) || isinf(o->repetition_penalty))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: repetition_penalty must be a positive finite number, got %g",
                       o->repetition_penalty);
  if (isnan(o->temperature) || isinf(o->temperature))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: temperature must be a finite number, got %g", o->temperature);
  if (o->top_k < 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: top_k must be >= 0, got %lld", (long long)o->top_k);
  if (!(o->top_p >= 0 && o->top_p <= 1))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: top_p must be in [0, 1], got %g", o->top_p);
  return LT_OK;
}

/* Logits: NaN and +inf refused, every row with a finite value. */
static lt_status check_logits(lt_ctx *ctx, const double *x, int64_t R, int64_t V) {
  for (int64_t r = 0; r < R; r++) {
    int finite = 0;
    for (int64_t j = 0; j < V; j++) {
      double v = x[r * V + j];
      if (isnan(v) || (isinf(v) && v > 0))
        return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: logits row %lld has %s at token %lld", (long long)r,
                           isnan(v) ? "NaN" : "+inf", (long long)j);
      finite |= !isinf(v);
    }
    if (!finite) return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: logits row %lld is -inf everywhere", (long long)r);
  }
  return LT_OK;
}

/* history: (R, n) beside (R, V) logits, (n) beside (V); ids in [0, V). */
static lt_status check_history(lt_ctx *ctx, const lt_tensor *h, const lt_tensor *x, int64_t V) {
  if (lt_dtype_info(h->dtype)->is_float || h->dtype == LT_BOOL)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: history must hold integer token ids, got %s",
                       lt_dtype_info(h->dtype)->name);
  if (x->ndim == 1 && h->ndim != 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: history must be 1-D beside 1-D logits, got %d dimensions", h->ndim);
  if (x->ndim == 2 && (h->ndim != 2 || h->shape[0] != x->shape[0]))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: history must be (%lld, n), one row per row of logits",
                       (long long)x->shape[0]);
  for (int64_t i = 0; i < lt_tensor_size(h); i++) {
    double t = lt_tensor_get(h, i);
    if (t < 0 || t >= (double)V)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: history holds token %.0f, outside the vocabulary 0 .. %lld", t,
                         (long long)V - 1);
  }
  return LT_OK;
}

/* Draws every row; a row whose scaled logits overflow gets token -1. */
static lt_status sample_rows(lt_ctx *ctx, const double *x, int64_t R, int64_t V, const int64_t *hist, int64_t nh,
                             const lt_sample_opts *o, const double *u, int64_t *tokens) {
  int threads = R > 1 && R * V >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (threads > R) threads = (int)R;
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, threads, (size_t)V * (sizeof(cand) + 2 * sizeof(double)), "sample"))
    return LT_ERR_MEM;
  LT_PARALLEL_FOR(threads, r, R, {
    cand *c = lt__workspace_mine(&ws);
    double *w = (double *)(c + V);
    if (sample_row(x + r * V, V, hist ? hist + r * nh : NULL, nh, o, u ? u[r] : 0, c, w, &tokens[r])) tokens[r] = -1;
  });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

lt_status lt_sample(lt_ctx *ctx, lt_tensor **out, lt_tensor *logits, const lt_sample_opts *o) {
  *out = NULL;
  if (check_opts(ctx, o)) return LT_ERR_ARG;
  if (!lt_dtype_info(logits->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: logits must be a float tensor, got %s",
                       lt_dtype_info(logits->dtype)->name);
  if (logits->ndim != 1 && logits->ndim != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: logits must be (V) or (rows, V), got %d dimensions", logits->ndim);
  int64_t V = logits->shape[logits->ndim - 1], R = logits->ndim == 2 ? logits->shape[0] : 1;
  if (V == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "sample: logits have an empty vocabulary axis");
  if (o->history && check_history(ctx, o->history, logits, V)) return LT_ERR_ARG;
  lt_tensor *x = NULL, *h = NULL, *u = NULL;
  lt_status st = lt__as_contig(ctx, &x, logits, LT_FLOAT64);
  if (!st) st = check_logits(ctx, lt__f64(x), R, V);
  int64_t nh = o->history ? o->history->shape[o->history->ndim - 1] : 0;
  if (!st && nh > 0) st = lt__as_contig(ctx, &h, o->history, LT_INT64);
  if (!st && o->temperature > 0) st = lt_random_uniform(ctx, &u, LT_FLOAT64, 1, &R, 0, 1);
  if (!st) st = lt_tensor_new(ctx, out, LT_INT64, logits->ndim - 1, logits->shape);
  if (!st)
    st = sample_rows(ctx, lt__f64(x), R, V, h ? (const int64_t *)lt_tensor_data(h) : NULL, nh, o, u ? lt__f64(u) : NULL,
                     lt_tensor_data(*out));
  for (int64_t r = 0; !st && r < R; r++)
    if (((const int64_t *)lt_tensor_data(*out))[r] < 0)
      st = lt_ctx_fail(ctx, LT_ERR_ARG, "sample: logits row %lld overflow when divided by temperature %g", (long long)r,
                       o->temperature);
  lt_tensor_release(x), lt_tensor_release(h), lt_tensor_release(u);
  if (st) lt_tensor_release(*out), *out = NULL;
  return st;
}

/* ---- lt_topk_indices ---- */

lt_status lt_topk_indices(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int64_t k) {
  *out = NULL;
  if (x->ndim < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "topk: x must have at least one dimension");
  if (x->dtype == LT_BOOL) return lt_ctx_fail(ctx, LT_ERR_ARG, "topk: x must be numeric, got bool");
  int64_t n = x->shape[x->ndim - 1];
  if (k < 1 || k > n)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "topk: k must be in 1 .. %lld (the last axis), got %lld", (long long)n,
                       (long long)k);
  lt_tensor *xc = NULL;
  lt_status st = lt__as_contig(ctx, &xc, x, LT_FLOAT64);
  if (st) return st;
  const double *v = lt__f64(xc);
  int64_t rows = lt_tensor_size(xc) / n;
  for (int64_t i = 0; i < rows * n; i++)
    if (isnan(v[i])) {
      lt_tensor_release(xc);
      return lt_ctx_fail(ctx, LT_ERR_ARG, "topk: x has NaN at element %lld", (long long)i);
    }
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  shape[x->ndim - 1] = k;
  int threads = rows > 1 && rows * n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  lt_workspace ws = {0};
  st = lt_tensor_new(ctx, out, LT_INT64, x->ndim, shape);
  if (!st) st = lt__workspace_reserve(ctx, &ws, threads, (size_t)k * sizeof(cand), "topk");
  if (!st) {
    int64_t *idx = lt_tensor_data(*out);
    LT_PARALLEL_FOR(threads, r, rows, {
      cand *c = lt__workspace_mine(&ws);
      select_top(v + r * n, n, k, c);
      for (int64_t j = 0; j < k; j++) idx[r * k + j] = c[j].id;
    });
  }
  lt__workspace_release(ctx, &ws);
  lt_tensor_release(xc);
  if (st) lt_tensor_release(*out), *out = NULL;
  return st;
}
