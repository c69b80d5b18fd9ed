/* The gather-GEMM drivers (kernels/gather_gemm.h): weight packing, the
 * parallel loops and their scratch, the dispatch between ISA variants, and
 * the scalar _ref kernels, which are the scalar ISA's kernels. */
#include "kernels/gather_gemm.h"
#include <math.h>
#include <string.h>
#include "kernels/gather_gemm_kernels.h"
#include "runtime/context.h"
#include "runtime/parallel.h"

/* ---- the _ref kernels: plain loops; fmaf rounds once per step, as the
 * vector kernels' fused multiply-add does, so every variant matches these
 * bit for bit ---- */

/* y[o] (c_out) [+]= sum_k x[idx[o, k]] (c_in) @ W_k, for rows [o0, o0 + rows);
 * the scalar packed weight is the plain (K, c_in, c_out). */
void lt__ggemm_rows_ref(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch) {
  (void)scratch;
  for (int64_t o = o0; o < o0 + rows; o++) {
    float *yo = j->y + o * j->ldy;
    if (!j->accumulate)
      for (int64_t c = 0; c < j->c_out; c++) yo[c] = 0;
    for (int64_t k = 0; k < j->k; k++) {
      int64_t i = j->idx[o * j->k + k];
      if (i < 0) continue;
      const float *xi = j->x + i * j->ldx, *wk = j->wp + k * j->c_in * j->c_out;
      for (int64_t c = 0; c < j->c_in; c++)
        for (int64_t d = 0; d < j->c_out; d++) yo[d] = fmaf(xi[c], wk[c * j->c_out + d], yo[d]);
    }
  }
}

/* out_k (p, q) [+]= sum over o ascending with i = idx[o, k] >= 0 of
 * a_row^T b_row, where (a_row, b_row) = (x[i], dy[o]) or (dy[o], x[i]). */
void lt__ggemm_wgrad_offset_ref(const lt__wgrad_job *j, int64_t k, void *scratch) {
  (void)scratch;
  float *out = j->dw + k * j->ldk;
  if (!j->accumulate)
    for (int64_t r = 0; r < j->p; r++)
      for (int64_t c = 0; c < j->q; c++) out[r * j->ldr + c] = 0;
  for (int64_t o = 0; o < j->n_out; o++) {
    int64_t i = j->idx[o * j->k + k];
    if (i < 0) continue;
    const float *a = j->a + (j->a_is_x ? i : o) * j->lda, *b = j->b + (j->a_is_x ? o : i) * j->ldb;
    for (int64_t r = 0; r < j->p; r++)
      for (int64_t c = 0; c < j->q; c++) out[r * j->ldr + c] = fmaf(a[r], b[c], out[r * j->ldr + c]);
  }
}

/* ---- tiles shared by the vector kernels ---- */

void lt__ggemm_tile_begin(const lt__ggemm_job *j, float *tile, int64_t o0, int64_t rows) {
  memset(tile, 0, (size_t)(rows * j->ldt) * sizeof *tile);
  if (j->accumulate)
    for (int64_t r = 0; r < rows; r++)
      memcpy(tile + r * j->ldt, j->y + (o0 + r) * j->ldy, (size_t)j->c_out * sizeof *tile);
}

void lt__ggemm_tile_end(const lt__ggemm_job *j, const float *tile, int64_t o0, int64_t rows) {
  for (int64_t r = 0; r < rows; r++)
    memcpy(j->y + (o0 + r) * j->ldy, tile + r * j->ldt, (size_t)j->c_out * sizeof *tile);
}

void lt__wgrad_tile_begin(const lt__wgrad_job *j, float *tile, int64_t k) {
  memset(tile, 0, (size_t)(j->p * j->ldq) * sizeof *tile);
  if (j->accumulate)
    for (int64_t r = 0; r < j->p; r++)
      memcpy(tile + r * j->ldq, j->dw + k * j->ldk + r * j->ldr, (size_t)j->q * sizeof *tile);
}

void lt__wgrad_tile_end(const lt__wgrad_job *j, const float *tile, int64_t k) {
  for (int64_t r = 0; r < j->p; r++)
    memcpy(j->dw + k * j->ldk + r * j->ldr, tile + r * j->ldq, (size_t)j->q * sizeof *tile);
}

/* ---- dispatch ---- */

static lt_isa clamp_isa(lt_isa want) {
  lt_isa best = lt_cpu_isa();
  return want < best ? want : best;
}

/* Vector lanes, and columns per packed block (the scalar block is all of c_out). */
static int64_t lanes_of(lt_isa isa) { return isa == LT_ISA_AVX512 ? 16 : isa == LT_ISA_AVX2 ? 8 : 1; }
static int64_t block_of(lt_isa isa, int64_t c_out) {
  return isa == LT_ISA_AVX512 ? 64 : isa == LT_ISA_AVX2 ? 16 : (c_out > 0 ? c_out : 1);
}

static lt__ggemm_rows_fn rows_fn(lt_isa isa) {
  return isa == LT_ISA_AVX512 ? lt__ggemm_rows_avx512 : isa == LT_ISA_AVX2 ? lt__ggemm_rows_avx2 : lt__ggemm_rows_ref;
}

static lt__wgrad_fn wgrad_fn(lt_isa isa) {
  return isa == LT_ISA_AVX512 ? lt__ggemm_wgrad_offset_avx512
         : isa == LT_ISA_AVX2 ? lt__ggemm_wgrad_offset_avx2
                              : lt__ggemm_wgrad_offset_ref;
}

/* ---- packing ---- */

lt_status lt__ggemm_pack_isa(lt_ctx *ctx, lt_ggemm_weight *pw, lt_isa isa, const float *w, int64_t sk, int64_t sc,
                             int64_t sj, int64_t k, int64_t c_in, int64_t c_out, const char *op) {
  isa = clamp_isa(isa);
  int64_t lanes = lanes_of(isa), nb = block_of(isa, c_out), ldt = (c_out + lanes - 1) / lanes * lanes;
  size_t bytes = (size_t)(k * c_in * ldt) * sizeof(float);
  *pw = (lt_ggemm_weight){.isa = isa, .k = k, .c_in = c_in, .c_out = c_out, .ldt = ldt};
  pw->data = lt_ctx_alloc(ctx, bytes ? bytes : 1);
  if (!pw->data) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for a packed weight of %zu bytes", op, bytes);
  pw->bytes = bytes ? bytes : 1;
  /* block at col0 of offset kk: c_in rows of min(nb, ldt - col0) columns */
  for (int64_t kk = 0; kk < k; kk++)
    for (int64_t col0 = 0; col0 < ldt; col0 += nb) {
      int64_t width = ldt - col0 < nb ? ldt - col0 : nb;
      float *dst = pw->data + (kk * c_in) * ldt + c_in * col0;
      for (int64_t c = 0; c < c_in; c++)
        for (int64_t d = 0; d < width; d++)
          dst[c * width + d] = col0 + d < c_out ? w[kk * sk + c * sc + (col0 + d) * sj] : 0.0f;
    }
  return LT_OK;
}

lt_status lt__ggemm_pack(lt_ctx *ctx, lt_ggemm_weight *pw, const float *w, int64_t sk, int64_t sc, int64_t sj,
                         int64_t k, int64_t c_in, int64_t c_out, const char *op) {
  return lt__ggemm_pack_isa(ctx, pw, lt__ctx_isa(ctx), w, sk, sc, sj, k, c_in, c_out, op);
}

void lt__ggemm_weight_release(lt_ctx *ctx, lt_ggemm_weight *pw) {
  if (pw->data) lt_ctx_free(ctx, pw->data, pw->bytes);
  *pw = (lt_ggemm_weight){0};
}

/* ---- the forward ---- */

lt_status lt__ggemm(lt_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, const int64_t *idx,
                    const lt_ggemm_weight *w, int64_t n_out, int accumulate, const char *op) {
  lt__ggemm_job j = {.y = y, .ldy = ldy, .x = x, .ldx = ldx, .idx = idx, .wp = w->data, .k = w->k,
                     .c_in = w->c_in, .c_out = w->c_out, .ldt = w->ldt, .accumulate = accumulate};
  int64_t tiles = (n_out + LT_GGEMM_TILE_ROWS - 1) / LT_GGEMM_TILE_ROWS;
  int threads = n_out * w->k * (w->c_in + 1) * w->c_out >= LT_GRAIN * 8 ? lt__ctx_threads(ctx) : 1;
  if (threads > tiles) threads = tiles > 0 ? (int)tiles : 1;
  lt_workspace ws;
  lt_status st = lt__workspace_reserve(ctx, &ws, w->isa == LT_ISA_SCALAR ? 0 : threads,
                                       w->isa == LT_ISA_SCALAR ? 0 : lt__ggemm_scratch_bytes(w->ldt), op);
  if (st) return st;
  lt__ggemm_rows_fn fn = rows_fn(w->isa);
  LT_PARALLEL_FOR(threads, t, tiles, {
    int64_t o0 = t * LT_GGEMM_TILE_ROWS;
    int64_t rows = n_out - o0 < LT_GGEMM_TILE_ROWS ? n_out - o0 : LT_GGEMM_TILE_ROWS;
    fn(&j, o0, rows, ws.base ? lt__workspace_mine(&ws) : NULL);
  });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

/* ---- the weight gradient ---- */

/* Rows per chunk of the edge-list build: counts per (chunk, offset), then a
 * prefix sum, then each chunk fills its slots, in row order. */
#define EDGE_CHUNK_ROWS 4096

/* Offset-major edge lists: for each k, the (a row, b row) pairs of the rows
 * o with idx[o, k] >= 0, o ascending; start (K + 1) delimits them. */
static void edges_count(const lt_ctx *ctx, int64_t *cnt, const int64_t *idx, int64_t n_out, int64_t K, int threads) {
  int64_t chunks = (n_out + EDGE_CHUNK_ROWS - 1) / EDGE_CHUNK_ROWS;
  (void)ctx;
  LT_PARALLEL_FOR(threads, ch, chunks, {
    int64_t *c = cnt + ch * K, end = (ch + 1) * EDGE_CHUNK_ROWS < n_out ? (ch + 1) * EDGE_CHUNK_ROWS : n_out;
    for (int64_t k = 0; k < K; k++) c[k] = 0;
    for (int64_t o = ch * EDGE_CHUNK_ROWS; o < end; o++)
      for (int64_t k = 0; k < K; k++) c[k] += idx[o * K + k] >= 0;
  });
}

static void edges_fill(int64_t *edges, int64_t *pos, const int64_t *idx, int64_t n_out, int64_t K, int a_is_x,
                       int threads) {
  int64_t chunks = (n_out + EDGE_CHUNK_ROWS - 1) / EDGE_CHUNK_ROWS;
  LT_PARALLEL_FOR(threads, ch, chunks, {
    int64_t *p = pos + ch * K, end = (ch + 1) * EDGE_CHUNK_ROWS < n_out ? (ch + 1) * EDGE_CHUNK_ROWS : n_out;
    for (int64_t o = ch * EDGE_CHUNK_ROWS; o < end; o++)
      for (int64_t k = 0; k < K; k++) {
        int64_t i = idx[o * K + k];
        if (i < 0) continue;
        int64_t e = p[k]++;
        edges[2 * e] = a_is_x ? i : o;
        edges[2 * e + 1] = a_is_x ? o : i;
      }
  });
}

/* cnt (chunks x K) -> start (K + 1) and each chunk's first slot per offset, in place. */
static void edges_prefix(int64_t *cnt, int64_t *start, int64_t chunks, int64_t K) {
  int64_t s = 0;
  for (int64_t k = 0; k < K; k++) {
    start[k] = s;
    for (int64_t ch = 0; ch < chunks; ch++) {
      int64_t c = cnt[ch * K + k];
      cnt[ch * K + k] = s;
      s += c;
    }
  }
  start[K] = s;
}

/* Offsets to threads, largest first onto the least loaded: owner[k]. Which
 * thread computes an offset does not change its result. */
static void assign_offsets(int *owner, const int64_t *start, int64_t K, int threads) {
  int64_t load[64] = {0};
  if (threads > 64) threads = 64;
  for (int64_t k = 0; k < K; k++) owner[k] = -1;
  for (int64_t n = 0; n < K; n++) {
    int64_t best = -1;
    for (int64_t k = 0; k < K; k++)
      if (owner[k] < 0 && (best < 0 || start[k + 1] - start[k] > start[best + 1] - start[best])) best = k;
    int t = 0;
    for (int u = 1; u < threads; u++)
      if (load[u] < load[t]) t = u;
    owner[best] = t;
    load[t] += start[best + 1] - start[best] + 1;
  }
}

/* Everything the vector kernels need beyond the job: the edge lists and who runs which offset. */
typedef struct wgrad_plan {
  int64_t *edges, *cnt, *start;
  int *owner;
  size_t edge_bytes, cnt_bytes, start_bytes, owner_bytes;
} wgrad_plan;

static void plan_release(lt_ctx *ctx, wgrad_plan *p) {
  if (p->edges) lt_ctx_free(ctx, p->edges, p->edge_bytes);
  if (p->cnt) lt_ctx_free(ctx, p->cnt, p->cnt_bytes);
  if (p->start) lt_ctx_free(ctx, p->start, p->start_bytes);
  if (p->owner) lt_ctx_free(ctx, p->owner, p->owner_bytes);
  *p = (wgrad_plan){0};
}

static lt_status plan_build(lt_ctx *ctx, wgrad_plan *p, const lt__wgrad_job *j, int threads, const char *op) {
  int64_t chunks = (j->n_out + EDGE_CHUNK_ROWS - 1) / EDGE_CHUNK_ROWS, K = j->k;
  *p = (wgrad_plan){.cnt_bytes = (size_t)(chunks * K + 1) * sizeof(int64_t),
                    .start_bytes = (size_t)(K + 1) * sizeof(int64_t),
                    .owner_bytes = (size_t)(K + 1) * sizeof(int)};
  p->cnt = lt_ctx_alloc(ctx, p->cnt_bytes);
  p->start = lt_ctx_alloc(ctx, p->start_bytes);
  p->owner = lt_ctx_alloc(ctx, p->owner_bytes);
  if (!p->cnt || !p->start || !p->owner) goto oom;
  edges_count(ctx, p->cnt, j->idx, j->n_out, K, threads);
  edges_prefix(p->cnt, p->start, chunks, K);
  p->edge_bytes = (size_t)(2 * p->start[K] + 1) * sizeof(int64_t);
  p->edges = lt_ctx_alloc(ctx, p->edge_bytes);
  if (!p->edges) goto oom;
  edges_fill(p->edges, p->cnt, j->idx, j->n_out, K, j->a_is_x, threads);
  assign_offsets(p->owner, p->start, K, threads);
  return LT_OK;
oom:
  plan_release(ctx, p);
  return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the weight gradient's edge lists", op);
}

static lt_status wgrad_run(lt_ctx *ctx, lt__wgrad_job *j, lt_isa isa, int threads, const char *op) {
  wgrad_plan plan = {0};
  lt_workspace ws = {0};
  lt_status st = isa == LT_ISA_SCALAR ? LT_OK : plan_build(ctx, &plan, j, threads, op);
  if (!st && isa != LT_ISA_SCALAR) st = lt__workspace_reserve(ctx, &ws, threads, lt__wgrad_scratch_bytes(j->p, j->ldq), op);
  if (st) {
    plan_release(ctx, &plan);
    return st;
  }
  j->edges = plan.edges, j->start = plan.start;
  lt__wgrad_fn fn = wgrad_fn(isa);
  const int *owner = plan.owner;
  int64_t K = j->k;
  if (isa == LT_ISA_SCALAR) {
    LT_PARALLEL_FOR(threads, k, K, { fn(j, k, NULL); });
  } else {
    LT_PARALLEL_FOR(threads, t, threads, {
      for (int64_t k = 0; k < K; k++)
        if (owner[k] == t) fn(j, k, lt__workspace_mine(&ws));
    });
  }
  lt__workspace_release(ctx, &ws);
  plan_release(ctx, &plan);
  return LT_OK;
}

lt_status lt__ggemm_wgrad_isa(lt_ctx *ctx, lt_isa isa, float *dw, int64_t ldk, int64_t ldr, const float *dy,
                              int64_t lddy, const float *x, int64_t ldx, const int64_t *idx, int64_t n_out, int64_t k,
                              int64_t c_in, int64_t c_out, int transposed, int accumulate, const char *op) {
  isa = clamp_isa(isa);
  int64_t lanes = lanes_of(isa);
  lt__wgrad_job j = {.dw = dw, .ldk = ldk, .ldr = ldr, .idx = idx, .a_is_x = !transposed, .n_out = n_out, .k = k,
                     .accumulate = accumulate};
  if (transposed)
    j.a = dy, j.lda = lddy, j.b = x, j.ldb = ldx, j.p = c_out, j.q = c_in;
  else
    j.a = x, j.lda = ldx, j.b = dy, j.ldb = lddy, j.p = c_in, j.q = c_out;
  j.ldq = (j.q + lanes - 1) / lanes * lanes;
  if (k <= 0 || j.p <= 0 || j.q <= 0) return LT_OK;
  int threads = n_out * c_in * c_out >= LT_GRAIN * 8 ? lt__ctx_threads(ctx) : 1;
  if (threads > k) threads = (int)k;
  return wgrad_run(ctx, &j, isa, threads, op);
}

lt_status lt__ggemm_wgrad(lt_ctx *ctx, float *dw, int64_t ldk, int64_t ldr, const float *dy, int64_t lddy,
                          const float *x, int64_t ldx, const int64_t *idx, int64_t n_out, int64_t k, int64_t c_in,
                          int64_t c_out, int transposed, int accumulate, const char *op) {
  return lt__ggemm_wgrad_isa(ctx, lt__ctx_isa(ctx), dw, ldk, ldr, dy, lddy, x, ldx, idx, n_out, k, c_in, c_out,
                             transposed, accumulate, op);
}
