/* The products with a quantized W (n, k): the forward y (m, n) = x (m, k) @
 * W^T and the input gradient dx (m, k) = g (m, n) @ W, in three ways:
 *   matvec  m = 1 (decoding a token): the kernel reads W's codes once, with
 *           OpenMP over W's rows; memory-bound, so bytes read are what count.
 *   tiles   m > 1: each thread dequantizes a piece of W (at most
 *           LT_QPANEL_ROWS x LT_QPANEL_COLS) into a float panel that stays in
 *           cache, and the register-tiled FMA kernels run every row block of
 *           x against it (x permuted once into the panel order). OpenMP over
 *           W's row tiles for y, over column tiles for dx, so no two threads
 *           write one element and sums do not depend on the thread count.
 *   blas    float64 (the reference path of gradient checks), or when asked:
 *           blocks of W's rows dequantized and handed to dgemm/sgemm. The
 *           tiles beat sgemm at every m measured (bench/quant.lua): on this
 *           machine OpenBLAS 0.3.21 does not know the CPU and runs its SSE3
 *           kernels.
 * Neither way dequantizes all of W at once: memory beyond the operands is a
 * panel per thread (tiles), a block of rows (blas), a permuted copy of x. */
#include "quant/internal.h"

/* Rows of x up to which a panel is one register tile (panel_rows). */
#define SMALL_PANEL_M 16
/* Values of W per block of the blas way (2 MB of float32). */
#define BLAS_BLOCK_VALUES (1 << 19)

static int threads_for(const lt_ctx *ctx, int64_t work) { return work >= LT_GRAIN ? lt__ctx_threads(ctx) : 1; }

static int choose_path(const lt__qkernels *kt, const lt__qmat *q, int64_t m, lt_dtype dt) {
  if (dt == LT_FLOAT64) return 3;
  if (m == 1 && kt->matvec && (kt == &lt__qkernels_ref || lt__qmatvec_fits(q))) return 1;
  return 2;
}

/* ---- matvec ---- */

/* Rows [r0, r1) of thread t's share, whole blocks of 4 rows. */
static void share(int64_t n, int t, int threads, int64_t *r0, int64_t *r1) {
  *r0 = n * t / threads / 4 * 4;
  *r1 = t == threads - 1 ? n : n * (t + 1) / threads / 4 * 4;
}

static lt_status matvec_rows(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, const float *x, int64_t m,
                             float *y) {
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, 1, (size_t)q->in * sizeof(float), "linear")) return LT_ERR_MEM;
  float *xp = lt__workspace_slice(&ws, 0), *yr = y;
  int threads = threads_for(ctx, q->rows * q->in / 8);
  for (int64_t i = 0; i < m; i++, yr += q->rows) {
    lt__qpermute(q->bits, xp, x + i * q->in, q->in);
    LT_PARALLEL_FOR(threads, t, threads, {
      int64_t r0, r1;
      share(q->rows, (int)t, threads, &r0, &r1);
      kt->matvec(q, xp, yr, r0, r1);
    });
  }
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}

/* ---- tiles ---- */

/* xp (m, k) <- the rows of x (m, k) in panel order. */
static lt_status permuted_rows(lt_ctx *ctx, lt_workspace *ws, const lt__qmat *q, const float *x, int64_t m) {
  if (lt__workspace_reserve(ctx, ws, 1, (size_t)(m * q->in) * sizeof(float), "linear")) return LT_ERR_MEM;
  float *xp = lt__workspace_slice(ws, 0);
  int threads = threads_for(ctx, m * q->in);
  LT_PARALLEL_FOR(threads, i, m, { lt__qpermute(q->bits, xp + i * q->in, x + i * q->in, q->in); });
  return LT_OK;
}

static int64_t tile_cols(const lt__qmat *q, int64_t k0) {
  return q->in - k0 < LT_QPANEL_COLS ? q->in - k0 : LT_QPANEL_COLS;
}

/* y[i][n0 + j] = the sum of the lanes of acc[i][j] (m, nn, lanes). */
static void sum_lanes(float *y, int64_t n, const float *acc, int64_t m, int64_t nn, int lanes) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < nn; j++) {
      float s = 0;
      for (int l = 0; l < lanes; l++) s += acc[(i * nn + j) * lanes + l];
      y[i * n + j] = s;
    }
}

/* The rows of W a panel holds for m rows of x: for few rows of x, one
 * register tile's worth (3), so that the panel stays in L1 beside x; for
 * more, a panel in L2 that every row block of x sweeps. */
static int64_t panel_rows(int64_t m) { return m <= SMALL_PANEL_M ? 3 : LT_QPANEL_ROWS; }

/* y (m, n) = x @ W^T: the threads take W's row tiles, each with a panel and
 * the accumulators of its tile. */
static lt_status tiles_forward(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, const float *x, int64_t m,
                               float *y) {
  lt_workspace xs, ws;
  int64_t n = q->rows, ntiles = (n + LT_QPANEL_ROWS - 1) / LT_QPANEL_ROWS, pr = panel_rows(m);
  int threads = threads_for(ctx, m * n * q->in / 16);
  size_t panel = (size_t)pr * LT_QPANEL_COLS, accs = (size_t)(m * LT_QPANEL_ROWS * kt->lanes);
  if (permuted_rows(ctx, &xs, q, x, m)) return LT_ERR_MEM;
  if (lt__workspace_reserve(ctx, &ws, threads, (panel + accs) * sizeof(float), "linear")) {
    lt__workspace_release(ctx, &xs);
    return LT_ERR_MEM;
  }
  const float *xp = lt__workspace_slice(&xs, 0);
  int codes = m <= SMALL_PANEL_M && kt->dot_codes && lt__qmatvec_fits(q); /* W straight from its codes */
  LT_PARALLEL_FOR(threads, t, ntiles, {
    float *p = lt__workspace_mine(&ws), *acc = p + panel;
    int64_t n0 = t * LT_QPANEL_ROWS, nn = n - n0 < LT_QPANEL_ROWS ? n - n0 : LT_QPANEL_ROWS;
    memset(acc, 0, (size_t)(m * nn * kt->lanes) * sizeof(float));
    for (int64_t k0 = 0; k0 < q->in; k0 += LT_QPANEL_COLS) { /* x's tile of k stays in L1 for the whole tile of W */
      int64_t kn = tile_cols(q, k0);
      if (codes) {
        kt->dot_codes(q, n0, nn, k0, kn, acc, nn, xp + k0, q->in, m);
        continue;
      }
      for (int64_t j0 = 0; j0 < nn; j0 += pr) {
        int64_t nj = nn - j0 < pr ? nn - j0 : pr;
        kt->dequant_panel(q, n0 + j0, nj, k0, kn, p, kn);
        kt->dot(acc + j0 * kt->lanes, nn, xp + k0, q->in, p, kn, m, nj, kn);
      }
    }
    sum_lanes(y + n0, n, acc, m, nn, kt->lanes);
  });
  lt__workspace_release(ctx, &ws);
  lt__workspace_release(ctx, &xs);
  return LT_OK;
}

/* dx (m, k) = g (m, n) @ W, through dxp in panel order. */
static lt_status tiles_grad(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, const float *g, int64_t m,
                            float *dx) {
  lt_workspace ds, panels;
  int64_t n = q->rows, ktiles = (q->in + LT_QPANEL_COLS - 1) / LT_QPANEL_COLS;
  int threads = threads_for(ctx, m * n * q->in / 16);
  if (lt__workspace_reserve(ctx, &ds, 1, (size_t)(m * q->in) * sizeof(float), "linear")) return LT_ERR_MEM;
  if (lt__workspace_reserve(ctx, &panels, threads, LT_QPANEL_ROWS * LT_QPANEL_COLS * sizeof(float), "linear")) {
    lt__workspace_release(ctx, &ds);
    return LT_ERR_MEM;
  }
  float *dxp = lt__workspace_slice(&ds, 0);
  memset(dxp, 0, (size_t)(m * q->in) * sizeof(float));
  LT_PARALLEL_FOR(threads, t, ktiles, {
    float *panel = lt__workspace_mine(&panels);
    int64_t k0 = t * LT_QPANEL_COLS, kn = tile_cols(q, k0);
    for (int64_t n0 = 0; n0 < n; n0 += LT_QPANEL_ROWS) {
      int64_t nn = n - n0 < LT_QPANEL_ROWS ? n - n0 : LT_QPANEL_ROWS;
      kt->dequant_panel(q, n0, nn, k0, kn, panel, kn);
      kt->dot_t(dxp + k0, q->in, g + n0, n, panel, kn, m, nn, kn);
    }
  });
  LT_PARALLEL_FOR(threads_for(ctx, m * q->in), i, m,
                  { lt__qunpermute(q->bits, dx + i * q->in, dxp + i * q->in, q->in); });
  lt__workspace_release(ctx, &panels);
  lt__workspace_release(ctx, &ds);
  return LT_OK;
}

/* ---- blas ---- */

/* dst (cols, rows) = src (rows, cols)^T, elements of es bytes. */
static void transpose(void *dst, const void *src, int64_t rows, int64_t cols, size_t es) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      memcpy((char *)dst + (j * rows + i) * (int64_t)es, (const char *)src + (i * cols + j) * (int64_t)es, es);
}

/* Rows [n0, n0 + nn) of W into `block` (nn, k) in dt: float32 in panel
 * order by the table's kernel, float64 (the reference path) in natural order. */
static void dequant_block(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, int64_t n0, int64_t nn, lt_dtype dt,
                          void *block) {
  LT_PARALLEL_FOR(threads_for(ctx, nn * q->in), i, nn, {
    for (int64_t k0 = 0; k0 < q->in; k0 += LT_QPANEL_COLS) {
      int64_t kn = tile_cols(q, k0);
      if (dt == LT_FLOAT64) {
        float row[LT_QPANEL_COLS];
        double *d = (double *)block + i * q->in + k0;
        lt__qdequant_row(q, n0 + i, k0, kn, row);
        for (int64_t k = 0; k < kn; k++) d[k] = row[k];
      } else {
        kt->dequant_panel(q, n0 + i, 1, k0, kn, (float *)block + i * q->in + k0, kn);
      }
    }
  });
}

static int64_t block_rows(const lt__qmat *q) {
  int64_t nb = q->in ? BLAS_BLOCK_VALUES / q->in : q->rows;
  return nb < 16 ? 16 : nb;
}

/* forward: y (m, n) = x @ W^T; grad: y (m, k) = x (m, n) @ W. Each block
 * of W's rows is one contiguous GEMM: the forward computes y^T's rows
 * (block @ x^T), the gradient adds (x^T's rows)^T @ block. In float32 W is
 * dequantized in panel order, so x's rows (forward) are permuted alike and
 * y's (gradient) permuted back. */
static lt_status blas_way(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, lt_dtype dt, const void *x, int64_t m,
                          void *y, int grad) {
  int64_t nb = block_rows(q), n = q->rows, k = q->in;
  size_t es = lt_dtype_info(dt)->size;
  lt_workspace ws, xs = {0};
  if (dt == LT_FLOAT32 && !grad) {
    if (permuted_rows(ctx, &xs, q, x, m)) return LT_ERR_MEM;
    x = lt__workspace_slice(&xs, 0);
  }
  /* the block of W, and y^T (forward) or x^T (gradient) */
  size_t block = (size_t)(nb * k) * es, turned = (size_t)(m * n) * es;
  if (lt__workspace_reserve(ctx, &ws, 1, block + turned, "linear")) {
    lt__workspace_release(ctx, &xs);
    return LT_ERR_MEM;
  }
  char *w = lt__workspace_slice(&ws, 0), *t = w + block;
  if (grad) {
    transpose(t, x, m, n, es);
    memset(y, 0, (size_t)(m * k) * es);
  }
  for (int64_t n0 = 0; n0 < n; n0 += nb) {
    int64_t nn = n - n0 < nb ? n - n0 : nb;
    dequant_block(ctx, kt, q, n0, nn, dt, w);
    if (grad)
      lt__gemm(ctx, dt, 1, 0, m, k, nn, t + n0 * m * (int64_t)es, w, 1.0, y);
    else
      lt__gemm(ctx, dt, 0, 1, nn, m, k, w, x, 0.0, t + n0 * m * (int64_t)es);
  }
  if (!grad) transpose(y, t, n, m, es);
  if (dt == LT_FLOAT32 && grad) {
    float *yf = y, *row = (float *)w; /* the block is free now: one row of scratch */
    for (int64_t i = 0; i < m; i++) {
      lt__qunpermute(q->bits, row, yf + i * k, k);
      memcpy(yf + i * k, row, (size_t)k * sizeof(float));
    }
  }
  lt__workspace_release(ctx, &ws);
  lt__workspace_release(ctx, &xs);
  return LT_OK;
}

/* ---- entry points ---- */

lt_status lt__qmatmul_forward(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, lt_dtype dt, const void *x,
                              int64_t m, void *y, int path) {
  if (path == 0) path = choose_path(kt, q, m, dt);
  if (dt == LT_FLOAT64 || path == 3) return blas_way(ctx, kt, q, dt, x, m, y, 0);
  if (path == 1 && kt->matvec && (kt == &lt__qkernels_ref || lt__qmatvec_fits(q)))
    return matvec_rows(ctx, kt, q, x, m, y);
  return tiles_forward(ctx, kt, q, x, m, y);
}

lt_status lt__qmatmul_grad(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, lt_dtype dt, const void *g,
                           int64_t m, void *dx, int path) {
  if (path == 0) path = dt == LT_FLOAT64 ? 3 : 2;
  if (dt == LT_FLOAT64 || path == 3) return blas_way(ctx, kt, q, dt, g, m, dx, 1);
  return tiles_grad(ctx, kt, q, g, m, dx);
}
