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
  for (int64_t p = o0; p < o0 + rows; p++) {
    int64_t o = lt__ggemm_row(j, p);
    float *yo = j->y + o * j->ldy;
    if (!j->accumulate)
      for (int64_t c = 0; c < j->c_out; c++) yo[c] = j->bias ? j->bias[c] : 0.0f;
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
    const float *xi = j->x + i * j->ldx, *g = j->dy + o * j->lddy;
    const float *a = j->a_is_x ? xi : g, *b = j->a_is_x ? g : xi;
    for (int64_t r = 0; r < j->p; r++)
      for (int64_t c = 0; c < j->q; c++) out[r * j->ldr + c] = fmaf(a[r], b[c], out[r * j->ldr + c]);
  }
}

/* ---- tiles shared by the vector kernels ---- */

void lt__ggemm_tile_begin(const lt__ggemm_job *j, float *tile, int64_t o0, int64_t rows) {
  memset(tile, 0, (size_t)(rows * j->ldt) * sizeof *tile);
  if (j->bias)
    for (int64_t r = 0; r < rows; r++) memcpy(tile + r * j->ldt, j->bias, (size_t)j->c_out * sizeof *tile);
  if (j->accumulate)
    for (int64_t r = 0; r < rows; r++)
      memcpy(tile + r * j->ldt, j->y + lt__ggemm_row(j, o0 + r) * j->ldy, (size_t)j->c_out * sizeof *tile);
}

void lt__ggemm_tile_end(const lt__ggemm_job *j, const float *tile, int64_t o0, int64_t rows) {
  for (int64_t r = 0; r < rows; r++)
    memcpy(j->y + lt__ggemm_row(j, o0 + r) * j->ldy, tile + r * j->ldt, (size_t)j->c_out * sizeof *tile);
}

void lt__wgrad_tile_begin(const lt__wgrad_job *j, float *tile, int64_t k) {
  if (j->direct) {
    if (!j->accumulate)
      for (int64_t r = 0; r < j->p; r++) memset(tile + r * j->ldr, 0, (size_t)j->q * sizeof *tile);
    return;
  }
  memset(tile, 0, (size_t)(j->p * j->ldq) * sizeof *tile);
  if (j->accumulate)
    for (int64_t r = 0; r < j->p; r++)
      memcpy(tile + r * j->ldq, j->dw + k * j->ldk + r * j->ldr, (size_t)j->q * sizeof *tile);
}

void lt__wgrad_tile_end(const lt__wgrad_job *j, const float *tile, int64_t k) {
  if (j->direct) return;
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

/* Row tiles go to the threads in blocks of TILES_PER_BLOCK, dealt out in
 * turn: a thread's tiles stay neighbours in the rows' (Morton) order, and
 * the work of a dense region of the support is shared rather than landing on
 * one thread, as halves of the rows would. Each output row is written by
 * the one thread that owns its tile, and its sum does not depend on which. */
#define TILES_PER_BLOCK 16

lt_status lt__ggemm(lt_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, const int32_t *idx,
                    const int32_t *order, const lt_ggemm_weight *w, const float *bias, int64_t n_out, int64_t n_in,
                    int accumulate, const char *op) {
  lt__ggemm_job j = {.y = y,
                     .ldy = ldy,
                     .x = x,
                     .ldx = ldx,
                     .idx = idx,
                     .order = order,
                     .wp = w->data,
                     .n_out = n_out,
                     .n_in = n_in,
                     .k = w->k,
                     .c_in = w->c_in,
                     .c_out = w->c_out,
                     .ldt = w->ldt,
                     .bias = accumulate ? NULL : bias,
                     .accumulate = accumulate};
  int64_t tiles = (n_out + LT_GGEMM_TILE_ROWS - 1) / LT_GGEMM_TILE_ROWS;
  int64_t blocks = (tiles + TILES_PER_BLOCK - 1) / TILES_PER_BLOCK;
  int threads = n_out * w->k * (w->c_in + 1) * w->c_out >= LT_GRAIN * 8 ? lt__ctx_threads(ctx) : 1;
  if (threads > blocks) threads = blocks > 0 ? (int)blocks : 1;
  lt_workspace ws;
  lt_status st = lt__workspace_reserve(ctx, &ws, w->isa == LT_ISA_SCALAR ? 0 : threads,
                                       w->isa == LT_ISA_SCALAR ? 0 : lt__ggemm_scratch_bytes(w->ldt, w->k), op);
  if (st) return st;
  lt__ggemm_rows_fn fn = rows_fn(w->isa);
  LT_PARALLEL_FOR(threads, t, threads, {
    void *scratch = ws.base ? lt__workspace_mine(&ws) : NULL;
    for (int64_t b = t; b < blocks; b += threads)
      for (int64_t tile = b * TILES_PER_BLOCK; tile < (b + 1) * TILES_PER_BLOCK && tile < tiles; tile++) {
        int64_t o0 = tile * LT_GGEMM_TILE_ROWS;
        fn(&j, o0, n_out - o0 < LT_GGEMM_TILE_ROWS ? n_out - o0 : LT_GGEMM_TILE_ROWS, scratch);
      }
  });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

/* ---- the weight gradient ---- */

/* The weight gradient's threads (each owns whole offsets). */
#define LT_GGEMM_MAX_THREADS 256
/* Rows per task of the edge count, and how many of them it counts: the
 * count only balances the threads' work, so a sample of the rows does. */
#define COUNT_ROWS   4096
#define COUNT_SAMPLE 256

/* cnt[k] ~ the edges of offset k / (COUNT_ROWS / COUNT_SAMPLE): per-chunk
 * counts of each chunk's first COUNT_SAMPLE rows (chunks x K), summed. */
static void count_edges(int64_t *cnt, const int32_t *idx, int64_t n_out, int64_t K, int threads) {
  int64_t chunks = (n_out + COUNT_ROWS - 1) / COUNT_ROWS;
  LT_PARALLEL_FOR(threads, ch, chunks, {
    int64_t *c = cnt + (ch + 1) * K, o0 = ch * COUNT_ROWS;
    int64_t end = o0 + COUNT_SAMPLE < n_out ? o0 + COUNT_SAMPLE : n_out;
    for (int64_t k = 0; k < K; k++) c[k] = 0;
    for (int64_t o = o0; o < end; o++)
      for (int64_t k = 0; k < K; k++) c[k] += 1 - (int64_t)((uint32_t)idx[o * K + k] >> 31);
  });
  for (int64_t k = 0; k < K; k++) cnt[k] = 0;
  for (int64_t ch = 0; ch < chunks; ch++)
    for (int64_t k = 0; k < K; k++) cnt[k] += cnt[(ch + 1) * K + k];
}

/* Offsets to threads, the largest first onto the least loaded, then each
 * thread's list ascending: ks[t*K .. t*K + nk[t]). owner (K) is scratch.
 * Which thread computes an offset does not change its result. */
static void assign_offsets(int64_t *ks, int64_t *nk, int64_t *owner, const int64_t *cnt, int64_t K, int threads) {
  int64_t load[LT_GGEMM_MAX_THREADS] = {0};
  for (int64_t k = 0; k < K; k++) owner[k] = -1;
  for (int64_t n = 0; n < K; n++) {
    int64_t best = -1;
    for (int64_t k = 0; k < K; k++)
      if (owner[k] < 0 && (best < 0 || cnt[k] > cnt[best])) best = k;
    int t = 0;
    for (int u = 1; u < threads; u++)
      if (load[u] < load[t]) t = u;
    owner[best] = t;
    load[t] += cnt[best] + 1;
  }
  for (int t = 0; t < threads; t++) nk[t] = 0;
  for (int64_t k = 0; k < K; k++) ks[owner[k] * K + nk[owner[k]]++] = k;
}

/* The split of the offsets over the threads: ks (threads x K), nk (threads),
 * with cnt ((chunks + 1) x K) and owner (K) as scratch, in one allocation. */
typedef struct wgrad_plan {
  int64_t *ks, *nk, *cnt, *owner;
  size_t bytes;
} wgrad_plan;

static lt_status plan_build(lt_ctx *ctx, wgrad_plan *p, const lt__wgrad_job *j, int threads, const char *op) {
  int64_t K = j->k, chunks = (j->n_out + COUNT_ROWS - 1) / COUNT_ROWS;
  size_t n = (size_t)(threads * K + threads + (chunks + 1) * K + K);
  *p = (wgrad_plan){.bytes = n * sizeof(int64_t)};
  p->ks = lt_ctx_alloc(ctx, p->bytes);
  if (!p->ks) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the weight gradient's plan", op);
  p->nk = p->ks + threads * K, p->cnt = p->nk + threads, p->owner = p->cnt + (chunks + 1) * K;
  count_edges(p->cnt, j->idx, j->n_out, K, threads);
  assign_offsets(p->ks, p->nk, p->owner, p->cnt, K, threads);
  return LT_OK;
}

static lt_status wgrad_run(lt_ctx *ctx, lt__wgrad_job *j, lt_isa isa, int threads, const char *op) {
  if (isa == LT_ISA_SCALAR) {
    LT_PARALLEL_FOR(threads, k, j->k, { lt__ggemm_wgrad_offset_ref(j, k, NULL); });
    return LT_OK;
  }
  wgrad_plan plan;
  lt_workspace ws = {0};
  lt_status st = plan_build(ctx, &plan, j, threads, op);
  if (st) return st;
  int64_t most = 0;
  for (int t = 0; t < threads; t++) most = plan.nk[t] > most ? plan.nk[t] : most;
  st = lt__workspace_reserve(ctx, &ws, threads, lt__wgrad_scratch_bytes(j->direct ? 0 : most, j->p, j->ldq, j->k), op);
  if (!st) {
    lt__wgrad_fn fn = isa == LT_ISA_AVX512 ? lt__ggemm_wgrad_offsets_avx512 : lt__ggemm_wgrad_offsets_avx2;
    const int64_t *ks = plan.ks, *nk = plan.nk;
    int64_t K = j->k;
    LT_PARALLEL_FOR(threads, t, threads, { fn(j, ks + t * K, nk[t], lt__workspace_mine(&ws)); });
  }
  lt__workspace_release(ctx, &ws);
  lt_ctx_free(ctx, plan.ks, plan.bytes);
  return st;
}

lt_status lt__ggemm_wgrad_isa(lt_ctx *ctx, lt_isa isa, float *dw, int64_t ldk, int64_t ldr, const float *dy,
                              int64_t lddy, const float *x, int64_t ldx, const int32_t *idx, int64_t n_out,
                              int64_t n_in, int64_t k, int64_t c_in, int64_t c_out, int transposed, int accumulate,
                              const char *op) {
  isa = clamp_isa(isa);
  int64_t lanes = lanes_of(isa);
  lt__wgrad_job j = {.dw = dw,
                     .ldk = ldk,
                     .ldr = ldr,
                     .x = x,
                     .dy = dy,
                     .ldx = ldx,
                     .lddy = lddy,
                     .a_is_x = !transposed,
                     .idx = idx,
                     .n_out = n_out,
                     .n_in = n_in,
                     .k = k,
                     .accumulate = accumulate};
  j.p = transposed ? c_out : c_in, j.q = transposed ? c_in : c_out;
  j.ldq = (j.q + lanes - 1) / lanes * lanes;
  j.direct = j.q % lanes == 0;
  if (k <= 0 || j.p <= 0 || j.q <= 0) return LT_OK;
  int threads = n_out * c_in * c_out >= LT_GRAIN * 8 ? lt__ctx_threads(ctx) : 1;
  if (threads > k) threads = (int)k;
  if (threads > LT_GGEMM_MAX_THREADS) threads = LT_GGEMM_MAX_THREADS;
  return wgrad_run(ctx, &j, isa, threads, op);
}

lt_status lt__ggemm_wgrad(lt_ctx *ctx, float *dw, int64_t ldk, int64_t ldr, const float *dy, int64_t lddy,
                          const float *x, int64_t ldx, const int32_t *idx, int64_t n_out, int64_t n_in, int64_t k,
                          int64_t c_in, int64_t c_out, int transposed, int accumulate, const char *op) {
  return lt__ggemm_wgrad_isa(ctx, lt__ctx_isa(ctx), dw, ldk, ldr, dy, lddy, x, ldx, idx, n_out, n_in, k, c_in, c_out,
                             transposed, accumulate, op);
}
