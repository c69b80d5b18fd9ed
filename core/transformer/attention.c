/* Scaled dot-product attention, forward and backward (lattice/transformer.h):
 *   q (B, Hq, T, D), k (B, Hkv, S, D), v (B, Hkv, S, Dv) -> out (B, Hq, T, Dv)
 *   out = softmax(scale q k^T + alibi + mask, restricted to each query's keys) v
 * This file checks the arguments, stages the inputs (float16/bfloat16 to
 * float32, rows made contiguous), runs one ISA's kernels (attention.h) in
 * parallel loops and records the op on the tape.
 *   forward   one task per (batch, query head, tile of query rows); a tile's
 *             keys stream through an online softmax, so only a tile of scores
 *             exists per thread and the saved state is the output and one
 *             log-sum-exp per query (memory linear in T)
 *   decode    for T <= DECODE_T: one task per (batch, kv head, split of the
 *             keys), every query of the group against each key as it is read,
 *             then the splits combined in order
 *   backward  one task per (batch, kv head): scores recomputed tile by tile
 *             from the log-sum-exp (FlashAttention-2); the task owns dq of its
 *             query heads and dk, dv of its kv head, so nothing is shared
 * Tasks write disjoint memory and each sums in a fixed order, so results do
 * not depend on the thread count. */
#include <math.h>
#include <string.h>
#include "lattice/transformer.h"
#include "ops/internal.h"
#include "transformer/attention.h"
#include "transformer/attention_internal.h"

/* Queries per kv head up to which the decode kernel runs instead of the tiles. */
#define DECODE_T 8
/* Keys per decode task: a fixed split, so the combined sums do not depend on
 * the thread count, and small enough that a single sequence keeps every
 * thread busy. */
#define DECODE_SPLIT 256
/* Positions are compared as float32 inside the kernels: exact below 2^24. */
#define MAX_POSITION 16777216

/* ---- arguments ---- */

static lt_status check_rank(lt_ctx *ctx, const lt_tensor *x, const char *name) {
  char s[LT_SHAPE_STR_MAX];
  if (x->ndim != 4)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: %s must have 4 dimensions (B, H, T, D), got shape %s", name,
                       lt__shape_str(s, sizeof s, x->ndim, x->shape));
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: %s must be a float tensor, got %s", name,
                       lt_dtype_info(x->dtype)->name);
  return LT_OK;
}

static lt_status check_shapes(lt_ctx *ctx, const lt_tensor *q, const lt_tensor *k, const lt_tensor *v) {
  const int64_t *a = q->shape, *b = k->shape, *c = v->shape;
  if (b[0] != a[0] || c[0] != a[0])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: q, k and v must have the same batch size, got %lld, %lld and %lld",
                       (long long)a[0], (long long)b[0], (long long)c[0]);
  if (b[1] != c[1])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: k has %lld heads, v has %lld", (long long)b[1], (long long)c[1]);
  if (b[1] < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: k and v must have at least one head, got 0");
  if (a[1] % b[1])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: q has %lld heads, not a multiple of the %lld heads of k and v",
                       (long long)a[1], (long long)b[1]);
  if (b[2] != c[2])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: k has %lld positions, v has %lld", (long long)b[2],
                       (long long)c[2]);
  if (a[3] != b[3])
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: q has head dimension %lld, k has %lld", (long long)a[3],
                       (long long)b[3]);
  if (a[3] < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: the head dimension must be at least 1, got 0");
  return LT_OK;
}

/* The options resolved against the shapes. */
static lt_status check_options(lt_ctx *ctx, lt__attn_plan *p, const lt_attention_opts *o) {
  p->scale = o->has_scale ? o->scale : 1.0 / sqrt((double)p->d);
  if (!isfinite(p->scale)) return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: scale must be finite, got %g", p->scale);
  if (o->window < 0 || o->chunk < 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: %s must be at least 1, got %lld",
                       o->window < 0 ? "window" : "chunk", (long long)(o->window < 0 ? o->window : o->chunk));
  p->window = o->window, p->chunk = o->chunk;
  p->causal = o->causal || o->window > 0 || o->chunk > 0;
  p->q_offset = o->has_q_offset ? o->q_offset : p->s - p->t;
  int64_t off = p->q_offset;
  if (off <= -MAX_POSITION || off >= MAX_POSITION || p->t > MAX_POSITION || p->s >= MAX_POSITION ||
      off + p->t > MAX_POSITION)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: positions must stay below %d, got q_offset %lld, T %lld, S %lld",
                       MAX_POSITION, (long long)p->q_offset, (long long)p->t, (long long)p->s);
  return LT_OK;
}

static lt_status check_extras(lt_ctx *ctx, const lt__attn_plan *p, const lt_tensor *mask, const lt_tensor *alibi) {
  char s[LT_SHAPE_STR_MAX], t[LT_SHAPE_STR_MAX];
  if (mask && !lt_dtype_info(mask->dtype)->is_float && mask->dtype != LT_BOOL)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: mask must be a boolean or float tensor, got %s",
                       lt_dtype_info(mask->dtype)->name);
  int64_t full[4] = {p->nb, p->hq, p->t, p->s};
  int bad = mask && mask->ndim > 4;
  for (int i = 0; mask && !bad && i < mask->ndim; i++) {
    int64_t m = mask->shape[mask->ndim - 1 - i];
    bad = m != 1 && m != full[3 - i];
  }
  if (bad)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: mask of shape %s does not broadcast to %s",
                       lt__shape_str(s, sizeof s, mask->ndim, mask->shape), lt__shape_str(t, sizeof t, 4, full));
  if (alibi && !lt_dtype_info(alibi->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: alibi must be a float tensor, got %s",
                       lt_dtype_info(alibi->dtype)->name);
  if (alibi && (alibi->ndim != 1 || alibi->shape[0] != p->hq))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: alibi must have shape {%lld} (one slope per query head), got %s",
                       (long long)p->hq, lt__shape_str(s, sizeof s, alibi->ndim, alibi->shape));
  return LT_OK;
}

lt_status lt__attn_check(lt_ctx *ctx, lt__attn_plan *p, lt_tensor *q, lt_tensor *k, lt_tensor *v,
                         const lt_attention_opts *o) {
  static const lt_attention_opts none = {0};
  lt_status st = check_rank(ctx, q, "q");
  if (!st) st = check_rank(ctx, k, "k");
  if (!st) st = check_rank(ctx, v, "v");
  if (!st) st = check_shapes(ctx, q, k, v);
  if (st) return st;
  if (!o) o = &none;
  *p = (lt__attn_plan){.nb = q->shape[0],
                       .hq = q->shape[1],
                       .hkv = k->shape[1],
                       .t = q->shape[2],
                       .s = k->shape[2],
                       .d = q->shape[3],
                       .dv = v->shape[3]};
  lt_dtype odt = lt__promote(lt__promote(q->dtype, k->dtype), v->dtype);
  p->odt = odt, p->cdt = lt__compute_dtype(odt);
  if ((st = check_options(ctx, p, o))) return st;
  return check_extras(ctx, p, o->mask, o->alibi);
}

/* ---- staging ---- */

/* x in the compute dtype with contiguous rows: x itself when it already is. */
static lt_status stage_rows(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype cdt) {
  if (x->dtype == cdt && (x->strides[x->ndim - 1] == 1 || x->shape[x->ndim - 1] <= 1)) {
    *out = lt_tensor_retain(x);
    return LT_OK;
  }
  return lt__as_contig(ctx, out, x, cdt);
}

/* The mask as an additive tensor of the compute dtype (a boolean one becomes
 * 0 where true and -inf where false), with its strides over (B, Hq, T, S). */
static lt_status stage_mask(lt_ctx *ctx, lt__attn_staged *s, lt_tensor *mask, lt_dtype cdt) {
  lt_status st;
  if (mask->dtype == LT_BOOL) {
    if ((st = lt_tensor_new(ctx, &s->mask, cdt, mask->ndim, mask->shape))) return st;
    lt_tensor *b = NULL;
    if ((st = lt__as_contig(ctx, &b, mask, LT_BOOL))) return st;
    const uint8_t *src = lt_tensor_data(b);
    for (int64_t i = 0, n = lt_tensor_size(b); i < n; i++) {
      if (cdt == LT_FLOAT64)
        lt__f64(s->mask)[i] = src[i] ? 0.0 : -INFINITY;
      else
        lt__f32(s->mask)[i] = src[i] ? 0.0f : -INFINITY;
    }
    lt_tensor_release(b);
  } else if ((st = mask->dtype == cdt ? (s->mask = lt_tensor_retain(mask), LT_OK)
                                      : lt__as_contig(ctx, &s->mask, mask, cdt))) {
    return st;
  }
  for (int i = 0; i < 4; i++) {
    int a = s->mask->ndim - 4 + i;
    s->ms[i] = a < 0 || s->mask->shape[a] == 1 ? 0 : s->mask->strides[a];
  }
  return LT_OK;
}

lt_status lt__attn_stage(lt_ctx *ctx, lt__attn_staged *s, const lt__attn_plan *p, lt_tensor *q, lt_tensor *k,
                         lt_tensor *v, lt_tensor *mask, lt_tensor *alibi) {
  *s = (lt__attn_staged){0};
  lt_status st = stage_rows(ctx, &s->q, q, p->cdt);
  if (!st) st = stage_rows(ctx, &s->k, k, p->cdt);
  if (!st) st = stage_rows(ctx, &s->v, v, p->cdt);
  if (!st && mask) st = stage_mask(ctx, s, mask, p->cdt);
  if (!st && alibi) st = lt__as_contig(ctx, &s->alibi, alibi, p->cdt);
  return st;
}

void lt__attn_unstage(lt__attn_staged *s) {
  lt_tensor *ts[5] = {s->q, s->k, s->v, s->mask, s->alibi};
  lt__release_all(5, ts);
  *s = (lt__attn_staged){0};
}

static void copy3(int64_t *dst, const lt_tensor *t) { memcpy(dst, t->strides, 3 * sizeof *dst); }

/* The kernels' view of a staged problem, with out and lse to write. */
void lt__attn_job_of(lt__attn_job *j, const lt__attn_plan *p, const lt__attn_staged *s, lt_tensor *out,
                     lt_tensor *lse) {
  *j = (lt__attn_job){.nb = p->nb,
                      .hq = p->hq,
                      .hkv = p->hkv,
                      .t = p->t,
                      .s = p->s,
                      .d = p->d,
                      .dv = p->dv,
                      .group = p->hq / p->hkv,
                      .scale = p->scale,
                      .causal = p->causal,
                      .window = p->window,
                      .chunk = p->chunk,
                      .q_offset = p->q_offset};
  j->q = lt_tensor_data(s->q), j->k = lt_tensor_data(s->k), j->v = lt_tensor_data(s->v);
  copy3(j->qs, s->q), copy3(j->ks, s->k), copy3(j->vs, s->v);
  j->o = lt_tensor_data(out), copy3(j->os, out);
  j->lse = lt_tensor_data(lse);
  if (s->alibi) j->alibi = lt_tensor_data(s->alibi);
  if (s->mask) j->mask = lt_tensor_data(s->mask), memcpy(j->ms, s->ms, sizeof j->ms);
}

/* ---- running the kernels ---- */

const lt__attn_kernels *lt__attn_kernels_for(lt_dtype cdt, lt_isa isa) {
  if (cdt == LT_FLOAT64) return &lt__attn_f64;
  if (isa >= LT_ISA_AVX512) return &lt__attn_avx512;
  if (isa >= LT_ISA_AVX2) return &lt__attn_avx2;
  return &lt__attn_ref;
}

/* One thread for problems too small to split. */
static int threads_for(const lt_ctx *ctx, const lt__attn_job *j) {
  double work = (double)j->nb * (double)j->hq * (double)j->t * (double)j->s * (double)(j->d + j->dv);
  return work >= 8.0 * LT_GRAIN ? lt__ctx_threads(ctx) : 1;
}

/* Tile i of n in the order that puts a cheap causal tile beside a dear one,
 * so that contiguous runs of tasks cost alike: 0, n-1, 1, n-2, ... */
static int64_t zigzag(int64_t i, int64_t n) { return i % 2 ? n - 1 - i / 2 : i / 2; }

static lt_status run_tiles(lt_ctx *ctx, const lt__attn_job *j, const lt__attn_kernels *kn) {
  int64_t rows = kn->fwd_rows(j), ntile = (j->t + rows - 1) / rows, nhead = j->nb * j->hq;
  int threads = threads_for(ctx, j);
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, threads, kn->fwd_scratch(j), "attention")) return LT_ERR_MEM;
  /* Causal tiles differ in cost and the cores may be shared: tasks handed out
   * one at a time; each writes its own memory in a fixed order. */
  LT_PARALLEL_FOR_DYNAMIC(threads, i, nhead * ntile, {
    int64_t bh = i / ntile, t0 = zigzag(i % ntile, ntile) * rows;
    int64_t n = j->t - t0 < rows ? j->t - t0 : rows;
    kn->forward(j, bh / j->hq, bh % j->hq, t0, n, lt__workspace_mine(&ws));
  });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

/* Row r = (g, t) of kv head (b, hkv): the splits' partial sums merged in
 * order into o and lse. part holds nsplit blocks of rows x (2 + Dv). */
static void combine_row(const lt__attn_job *j, const float *part, int64_t nsplit, int64_t b, int64_t hkv, int64_t r) {
  int64_t rows = j->group * j->t, w = 2 + j->dv, h = hkv * j->group + r / j->t, t = r % j->t;
  float m = -INFINITY, l = 0, *o = (float *)j->o + lt__attn_at(j->os, b, h, t);
  for (int64_t s = 0; s < nsplit; s++) m = fmaxf(m, part[(s * rows + r) * w]);
  float ms = m == -INFINITY ? 0.0f : m;
  for (int64_t e = 0; e < j->dv; e++) o[e] = 0;
  for (int64_t s = 0; s < nsplit; s++) {
    const float *ps = part + (s * rows + r) * w;
    float a = expf(ps[0] - ms);
    l += ps[1] * a;
    for (int64_t e = 0; e < j->dv; e++) o[e] += ps[2 + e] * a;
  }
  for (int64_t e = 0; e < j->dv; e++) o[e] = l > 0 ? o[e] / l : 0.0f;
  ((float *)j->lse)[(b * j->hq + h) * j->t + t] = l > 0 ? ms + logf(l) : INFINITY;
}

static lt_status run_decode(lt_ctx *ctx, const lt__attn_job *j, const lt__attn_kernels *kn) {
  int64_t nsplit = j->s > DECODE_SPLIT ? (j->s + DECODE_SPLIT - 1) / DECODE_SPLIT : 1, ngroup = j->nb * j->hkv;
  int64_t rows = j->group * j->t, w = 2 + j->dv;
  size_t part_bytes = (size_t)(ngroup * nsplit * rows * w) * sizeof(float);
  float *part = part_bytes ? lt_ctx_alloc(ctx, part_bytes) : NULL;
  int threads = threads_for(ctx, j);
  lt_workspace ws;
  if ((part_bytes && !part) || lt__workspace_reserve(ctx, &ws, threads, kn->dec_scratch(j), "attention")) {
    if (part) lt_ctx_free(ctx, part, part_bytes);
    return lt_ctx_fail(ctx, LT_ERR_MEM, "attention: out of memory");
  }
  LT_PARALLEL_FOR_DYNAMIC(threads, i, ngroup * nsplit, {
    int64_t g = i / nsplit, s0 = i % nsplit * DECODE_SPLIT, s1 = s0 + DECODE_SPLIT < j->s ? s0 + DECODE_SPLIT : j->s;
    kn->decode(j, g / j->hkv, g % j->hkv, s0, s1, part + i * rows * w, lt__workspace_mine(&ws));
  });
  /* the merge is small beside the splits: a second parallel region would cost more than it saves */
  int merge_threads = ngroup * rows * nsplit * j->dv >= LT_GRAIN ? threads : 1;
  LT_PARALLEL_FOR(merge_threads, i, ngroup * rows, {
    int64_t g = i / rows;
    combine_row(j, part + g * nsplit * rows * w, nsplit, g / j->hkv, g % j->hkv, i % rows);
  });
  lt__workspace_release(ctx, &ws);
  if (part) lt_ctx_free(ctx, part, part_bytes);
  return LT_OK;
}

lt_status lt__attn_run_forward(lt_ctx *ctx, const lt__attn_job *j, const lt__attn_kernels *kn, lt__attn_path path) {
  if (j->nb * j->hq * j->t == 0) return LT_OK;
  int decode = kn->decode && (path == LT__ATTN_DECODE || (path == LT__ATTN_AUTO && j->t <= DECODE_T));
  return decode ? run_decode(ctx, j, kn) : run_tiles(ctx, j, kn);
}

lt_status lt__attn_run_backward(lt_ctx *ctx, const lt__attn_job *j, const lt__attn_kernels *kn) {
  int threads = threads_for(ctx, j);
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, threads, kn->bwd_scratch(j), "attention")) return LT_ERR_MEM;
  LT_PARALLEL_FOR_DYNAMIC(threads, i, j->nb * j->hkv,
                          { kn->backward(j, i / j->hkv, i % j->hkv, lt__workspace_mine(&ws)); });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

/* out: a (B, Hq, T, Dv) view of a new (B, T, Hq, Dv) buffer of dtype dt. */
lt_status lt__attn_new_out(lt_ctx *ctx, lt_tensor **out, const lt__attn_plan *p, lt_dtype dt) {
  int64_t shape[4] = {p->nb, p->t, p->hq, p->dv}, vshape[4] = {p->nb, p->hq, p->t, p->dv};
  int64_t strides[4] = {p->t * p->hq * p->dv, p->dv, p->hq * p->dv, 1};
  lt_tensor *base = NULL;
  lt_status st = lt_tensor_new(ctx, &base, dt, 4, shape);
  if (!st) st = lt__view(ctx, out, base, 4, vshape, strides, base->offset);
  lt_tensor_release(base);
  return st;
}

/* y, a view made by lt__attn_new_out, converted to dt the same way. */
static lt_status out_as(lt_ctx *ctx, lt_tensor **out, lt_tensor *y, const lt__attn_plan *p, lt_dtype dt) {
  if (y->dtype == dt) {
    *out = lt_tensor_retain(y);
    return LT_OK;
  }
  lt_status st = lt__attn_new_out(ctx, out, p, dt);
  if (!st) lt__assign(*out, y);
  return st;
}

/* ---- the op ---- */

typedef struct attn_attrs {
  lt__attn_plan plan;
} attn_attrs;

static lt_status attention_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin);

/* Forward in the compute dtype: y (the (B, Hq, T, Dv) view) and lse. */
lt_status lt__attn_forward(lt_ctx *ctx, lt_tensor **y, lt_tensor **lse, const lt__attn_plan *p, lt_tensor *q,
                           lt_tensor *k, lt_tensor *v, lt_tensor *mask, lt_tensor *alibi, lt_isa isa,
                           lt__attn_path path) {
  lt__attn_staged s;
  lt__attn_job j;
  int64_t lshape[3] = {p->nb, p->hq, p->t};
  *y = *lse = NULL;
  lt_status st = lt__attn_stage(ctx, &s, p, q, k, v, mask, alibi);
  if (!st) st = lt__attn_new_out(ctx, y, p, p->cdt);
  if (!st) st = lt_tensor_new(ctx, lse, p->cdt, 3, lshape);
  if (!st) lt__attn_job_of(&j, p, &s, *y, *lse);
  if (!st && p->dv == 0) /* nothing to compute; the backward reads every row as seeing no key */
    for (int64_t i = 0, n = lt_tensor_size(*lse); i < n; i++) {
      if (p->cdt == LT_FLOAT64)
        lt__f64(*lse)[i] = INFINITY;
      else
        lt__f32(*lse)[i] = INFINITY;
    }
  if (!st && p->dv > 0) st = lt__attn_run_forward(ctx, &j, lt__attn_kernels_for(p->cdt, isa), path);
  lt__attn_unstage(&s);
  if (st) {
    lt_tensor_release(*y), lt_tensor_release(*lse);
    *y = *lse = NULL;
  }
  return st;
}

lt_status lt_attention(lt_ctx *ctx, lt_tensor **out, lt_tensor *q, lt_tensor *k, lt_tensor *v,
                       const lt_attention_opts *opts) {
  *out = NULL;
  lt__attn_plan p;
  lt_tensor *mask = opts ? opts->mask : NULL, *alibi = opts ? opts->alibi : NULL, *y = NULL, *lse = NULL;
  lt_status st = lt__attn_check(ctx, &p, q, k, v, opts);
  if (st) return st;
  if (lt__tape_wants(ctx, 1, &mask))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "attention: the mask takes no gradient; pass it through stop_gradient");
  if (lt__tape_wants(ctx, 1, &alibi))
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "attention: the alibi slopes take no gradient; pass them through stop_gradient");
  st = lt__attn_forward(ctx, &y, &lse, &p, q, k, v, mask, alibi, lt__ctx_isa(ctx), LT__ATTN_AUTO);
  if (!st) st = out_as(ctx, out, y, &p, p.odt);
  lt_node *node = NULL;
  lt_tensor *ins[5] = {q, k, v, mask, alibi};
  if (!st)
    st = lt__record(ctx, &node, LT_OP("scaled_dot_product_attention", attention_backward, attn_attrs, 2), out, 5, ins);
  if (node) {
    ((attn_attrs *)node->attrs)->plan = p;
    lt__node_save(node, 0, y);
    lt__node_save(node, 1, lse);
  }
  lt_tensor_release(y), lt_tensor_release(lse);
  return st;
}

/* ---- backward ---- */

/* dq, dk, dv (contiguous, the compute dtype) from the output gradient g and
 * the forward's y and lse; every gradient is computed (the kernels make them
 * together). */
lt_status lt__attn_backward(lt_ctx *ctx, lt_tensor **grads, const lt__attn_plan *p, lt_tensor *q, lt_tensor *k,
                            lt_tensor *v, lt_tensor *mask, lt_tensor *alibi, lt_tensor *y, lt_tensor *lse, lt_tensor *g,
                            lt_isa isa) {
  lt__attn_staged s;
  lt__attn_job j;
  lt_tensor *gs = NULL;
  grads[0] = grads[1] = grads[2] = NULL;
  lt_status st = lt__attn_stage(ctx, &s, p, q, k, v, mask, alibi);
  if (!st) st = stage_rows(ctx, &gs, g, p->cdt);
  if (!st) st = lt_tensor_new(ctx, &grads[0], p->cdt, 4, q->shape);
  if (!st) st = lt_tensor_new(ctx, &grads[1], p->cdt, 4, k->shape);
  if (!st) st = lt_tensor_new(ctx, &grads[2], p->cdt, 4, v->shape);
  if (!st) {
    lt__attn_job_of(&j, p, &s, y, lse);
    j.gout = lt_tensor_data(gs), copy3(j.gs, gs);
    j.gq = lt_tensor_data(grads[0]), j.gk = lt_tensor_data(grads[1]), j.gv = lt_tensor_data(grads[2]);
    if (lt_tensor_size(grads[0]) + lt_tensor_size(grads[1]) + lt_tensor_size(grads[2]) > 0)
      st = lt__attn_run_backward(ctx, &j, lt__attn_kernels_for(p->cdt, isa));
  }
  lt__attn_unstage(&s);
  lt_tensor_release(gs);
  if (st) lt__release_all(3, grads), grads[0] = grads[1] = grads[2] = NULL;
  return st;
}

static lt_status attention_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  const lt__attn_plan *p = &((const attn_attrs *)n->attrs)->plan;
  lt_tensor *grads[3];
  lt_status st = lt__attn_backward(ctx, grads, p, n->in[0], n->in[1], n->in[2], n->in[3], n->in[4], lt__saved(n, 0),
                                   lt__saved(n, 1), gouts[0], lt__ctx_isa(ctx));
  if (st) return st;
  for (int i = 0; i < 3; i++) {
    if (lt__needs(n, i))
      gin[i] = grads[i];
    else
      lt_tensor_release(grads[i]);
  }
  return LT_OK;
}
