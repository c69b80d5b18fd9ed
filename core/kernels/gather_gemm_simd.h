/* The gather-GEMM kernels written once over the primitives of the simd_*.h
 * header the including file chose. That file defines:
 *   LT_GGEMM_ROWS, LT_GGEMM_WGRAD_OFFSETS the functions to define
 *   LT_GGEMM_NV_MAX                        vectors per column block
 *   LT_GGEMM_MR1 .. LT_GGEMM_MR<NV_MAX>    rows per register tile for a block
 *                                          of 1 .. NV_MAX vectors
 *   LT_GGEMM_PRESENT, LT_GGEMM_LIST        lt__ggemm_present and
 *                                          lt__ggemm_list, or the ISA's own
 * The register tile is MR rows x NV vectors of accumulators; each step of the
 * reduction loads NV weight vectors once and broadcasts one element per row
 * against them. Rows come from pointer lists (gathered inputs), so the gather
 * costs a pointer per row and nothing per element. Each accumulator is one
 * chain of vfma in reduction order, the order of the _ref's fmaf loops. */
#include "kernels/gather_gemm_kernels.h"

#define LT_GGEMM_MR_MAX 12
#define LT_GGEMM_NV_ARR 4

/* ---- forward ---- */

/* acc (rows ar[0..mr) of the tile from column col0, nv vectors) +=
 * sum_{c < n} xr[r][c] * w[c*ldw .. + nv*LT_W): xr are the gathered input
 * rows. mr and nv are constants at every call, so the accumulators live in
 * registers. */
static inline __attribute__((always_inline)) void ggemm_micro(const int mr, const int nv, int64_t n, const float *w,
                                                              int64_t ldw, const float *const *xr, float *const *ar,
                                                              int64_t col0) {
  vf acc[LT_GGEMM_MR_MAX][LT_GGEMM_NV_ARR];
  const float *xp[LT_GGEMM_MR_MAX];
  for (int r = 0; r < mr; r++) {
    xp[r] = xr[r];
    for (int v = 0; v < nv; v++) acc[r][v] = vload(ar[r] + col0 + v * LT_W);
  }
  /* unrolled 4 times: measured 5 to 15% faster, the loop's own count and
   * branch being a fifth of its instructions at n = 32 otherwise */
  _Pragma("GCC unroll 4") for (int64_t c = 0; c < n; c++) {
    vf wv[LT_GGEMM_NV_ARR];
    for (int v = 0; v < nv; v++) wv[v] = vload(w + c * ldw + v * LT_W);
    for (int r = 0; r < mr; r++) {
      vf a = vset(xp[r][c]);
      for (int v = 0; v < nv; v++) acc[r][v] = vfma(a, wv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < mr; r++)
    for (int v = 0; v < nv; v++) vstore(ar[r] + col0 + v * LT_W, acc[r][v]);
}

/* One register tile of m (1 to mr) rows: m becomes a constant (and no tile
 * larger than mr is compiled). */
static inline __attribute__((always_inline)) void ggemm_tile_of(const int nv, const int mr, int64_t m, int64_t n,
                                                                const float *w, const float *const *xr,
                                                                float *const *ar, int64_t col0) {
  int64_t ldw = nv * LT_W;
  switch (m) {
  case 1:
    if (1 <= mr) ggemm_micro(1, nv, n, w, ldw, xr, ar, col0);
    break;
  case 2:
    if (2 <= mr) ggemm_micro(2, nv, n, w, ldw, xr, ar, col0);
    break;
  case 3:
    if (3 <= mr) ggemm_micro(3, nv, n, w, ldw, xr, ar, col0);
    break;
  case 4:
    if (4 <= mr) ggemm_micro(4, nv, n, w, ldw, xr, ar, col0);
    break;
  case 5:
    if (5 <= mr) ggemm_micro(5, nv, n, w, ldw, xr, ar, col0);
    break;
  case 6:
    if (6 <= mr) ggemm_micro(6, nv, n, w, ldw, xr, ar, col0);
    break;
  case 7:
    if (7 <= mr) ggemm_micro(7, nv, n, w, ldw, xr, ar, col0);
    break;
  case 8:
    if (8 <= mr) ggemm_micro(8, nv, n, w, ldw, xr, ar, col0);
    break;
  case 9:
    if (9 <= mr) ggemm_micro(9, nv, n, w, ldw, xr, ar, col0);
    break;
  case 10:
    if (10 <= mr) ggemm_micro(10, nv, n, w, ldw, xr, ar, col0);
    break;
  case 11:
    if (11 <= mr) ggemm_micro(11, nv, n, w, ldw, xr, ar, col0);
    break;
  case 12:
    if (12 <= mr) ggemm_micro(12, nv, n, w, ldw, xr, ar, col0);
    break;
  }
}

/* All m compacted rows of one column block of nv vectors, in register tiles
 * of at most mr rows, as even as they can be (m = 14 with mr = 12 runs as
 * 7 + 7: two tiles of 14 chains each, where 12 + 2 would leave the last one
 * short of the 8 chains two FMA pipes of latency 4 need). */
static inline __attribute__((always_inline)) void ggemm_block_nv(const int nv, const int mr, int64_t m, int64_t n,
                                                                 const float *w, const float *const *xr,
                                                                 float *const *ar, int64_t col0) {
  int64_t tiles = (m + mr - 1) / mr;
  for (int64_t g = 0; tiles > 0; tiles--) {
    int64_t take = (m - g + tiles - 1) / tiles;
    ggemm_tile_of(nv, mr, take, n, w, xr + g, ar + g, col0);
    g += take;
  }
}

static void ggemm_block(int nv, int64_t m, int64_t n, const float *w, const float *const *xr, float *const *ar,
                        int64_t col0) {
  if (nv == 1) ggemm_block_nv(1, LT_GGEMM_MR1, m, n, w, xr, ar, col0);
  if (nv == 2) ggemm_block_nv(2, LT_GGEMM_MR2, m, n, w, xr, ar, col0);
#if LT_GGEMM_NV_MAX >= 4
  if (nv == 3) ggemm_block_nv(3, LT_GGEMM_MR3, m, n, w, xr, ar, col0);
  if (nv == 4) ggemm_block_nv(4, LT_GGEMM_MR4, m, n, w, xr, ar, col0);
#endif
}

/* The m present rows tr[] of offset k: their input rows and tile rows as
 * pointers, then every column block. */
static void ggemm_offset(const lt__ggemm_job *j, const int32_t *tidx, int64_t k, int64_t m, lt__ggemm_scratch s) {
  const int32_t *col = tidx + k;
  for (int64_t e = 0; e < m; e++) {
    s.xr[e] = j->x + col[s.tr[e] * j->k] * j->ldx;
    s.ar[e] = s.tile + s.tr[e] * j->ldt;
  }
  const float *wk = j->wp + k * j->c_in * j->ldt;
  for (int64_t col0 = 0; col0 < j->ldt; col0 += LT_GGEMM_NV_MAX * LT_W) {
    int64_t nv = (j->ldt - col0) / LT_W;
    if (nv > LT_GGEMM_NV_MAX) nv = LT_GGEMM_NV_MAX;
    ggemm_block((int)nv, m, j->c_in, wk + j->c_in * col0, s.xr, s.ar, col0);
  }
}

/* Asks for the input rows offset k gathers while the offset before it
 * computes: they are the tile's neighbours, mostly in L2 rather than L1, and
 * the broadcasts that read them would otherwise wait on each. */
static inline void ggemm_prefetch_offset(const lt__ggemm_job *j, const int32_t *tidx, int64_t k, uint64_t present) {
  for (uint64_t bits = present; bits; bits &= bits - 1)
    lt__prefetch_row(j->x + tidx[__builtin_ctzll(bits) * j->k + k] * j->ldx, j->c_in);
}

void LT_GGEMM_ROWS(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch) {
  lt__ggemm_scratch s = lt__ggemm_scratch_of(scratch, j->ldt, j->k);
  const int32_t *tidx = lt__ggemm_tile_index(j, o0, rows, s.tidx);
  lt__ggemm_tile_begin(j, s.tile, o0, rows);
  LT_GGEMM_PRESENT(s.present, tidx, j->k, rows);
  for (int64_t k = 0; k < j->k; k++) {
    lt__ggemm_prefetch_next(j, o0 + rows, k, j->k);
    if (k + 1 < j->k) ggemm_prefetch_offset(j, tidx, k + 1, s.present[k + 1]);
    int64_t m = LT_GGEMM_LIST(s.present[k], s.tr);
    if (m) ggemm_offset(j, tidx, k, m, s);
  }
  lt__ggemm_tile_end(j, s.tile, o0, rows);
}

/* ---- weight gradient ---- */

/* acc (mr rows from `tile`, ldt apart, nv vectors) += sum_{e < m}
 * ar[e][r] * panel[e*ldp .. + nv*LT_W): the a rows' elements broadcast
 * against the packed b rows. */
static inline __attribute__((always_inline)) void wgrad_micro(const int mr, const int nv, int64_t m,
                                                              const float *const *ar, int64_t p0, const float *panel,
                                                              int64_t ldp, float *tile, int64_t ldt) {
  vf acc[LT_GGEMM_MR_MAX][LT_GGEMM_NV_ARR];
  for (int r = 0; r < mr; r++)
    for (int v = 0; v < nv; v++) acc[r][v] = vload(tile + r * ldt + v * LT_W);
  _Pragma("GCC unroll 4") for (int64_t e = 0; e < m; e++) { /* as the forward's */
    vf bv[LT_GGEMM_NV_ARR];
    for (int v = 0; v < nv; v++) bv[v] = vload(panel + e * ldp + v * LT_W);
    const float *a = ar[e] + p0;
    for (int r = 0; r < mr; r++) {
      vf av = vset(a[r]);
      for (int v = 0; v < nv; v++) acc[r][v] = vfma(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < mr; r++)
    for (int v = 0; v < nv; v++) vstore(tile + r * ldt + v * LT_W, acc[r][v]);
}

/* One register tile of rows [p0, p0 + rows), rows 1 to mr: a constant. */
static inline __attribute__((always_inline)) void wgrad_tile_of(const int nv, const int mr, int64_t rows, int64_t m,
                                                                const float *const *ar, int64_t p0, const float *panel,
                                                                int64_t ldp, float *tile, int64_t ldt) {
  switch (rows) {
  case 1:
    if (1 <= mr) wgrad_micro(1, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 2:
    if (2 <= mr) wgrad_micro(2, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 3:
    if (3 <= mr) wgrad_micro(3, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 4:
    if (4 <= mr) wgrad_micro(4, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 5:
    if (5 <= mr) wgrad_micro(5, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 6:
    if (6 <= mr) wgrad_micro(6, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 7:
    if (7 <= mr) wgrad_micro(7, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 8:
    if (8 <= mr) wgrad_micro(8, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 9:
    if (9 <= mr) wgrad_micro(9, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 10:
    if (10 <= mr) wgrad_micro(10, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 11:
    if (11 <= mr) wgrad_micro(11, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  case 12:
    if (12 <= mr) wgrad_micro(12, nv, m, ar, p0, panel, ldp, tile, ldt);
    break;
  }
}

/* Rows [0, p) of one column block over one panel, in register tiles of at
 * most mr rows, as even as they can be (as the forward's). */
static inline __attribute__((always_inline)) void wgrad_block_nv(const int nv, const int mr, int64_t p, int64_t m,
                                                                 const float *const *ar, const float *panel,
                                                                 int64_t ldp, float *tile, int64_t ldt) {
  int64_t tiles = (p + mr - 1) / mr;
  for (int64_t r = 0; tiles > 0; tiles--) {
    int64_t take = (p - r + tiles - 1) / tiles;
    wgrad_tile_of(nv, mr, take, m, ar, r, panel, ldp, tile + r * ldt, ldt);
    r += take;
  }
}

static void wgrad_block(int nv, int64_t p, int64_t m, const float *const *ar, const float *panel, int64_t ldp,
                        float *tile, int64_t ldt) {
  if (nv == 1) wgrad_block_nv(1, LT_GGEMM_MR1, p, m, ar, panel, ldp, tile, ldt);
  if (nv == 2) wgrad_block_nv(2, LT_GGEMM_MR2, p, m, ar, panel, ldp, tile, ldt);
#if LT_GGEMM_NV_MAX >= 4
  if (nv == 3) wgrad_block_nv(3, LT_GGEMM_MR3, p, m, ar, panel, ldp, tile, ldt);
  if (nv == 4) wgrad_block_nv(4, LT_GGEMM_MR4, p, m, ar, panel, ldp, tile, ldt);
#endif
}

/* The panel's m edges into one offset's accumulator (rows ldt apart), every column block. */
static void wgrad_flush(const lt__wgrad_job *j, int64_t m, float *tile, int64_t ldt, lt__wgrad_scratch s) {
  for (int64_t col0 = 0; col0 < j->ldq; col0 += LT_GGEMM_NV_MAX * LT_W) {
    int64_t nv = (j->ldq - col0) / LT_W;
    if (nv > LT_GGEMM_NV_MAX) nv = LT_GGEMM_NV_MAX;
    wgrad_block((int)nv, j->p, m, s.ar, s.panel + col0, j->ldq, tile + col0, ldt);
  }
}

/* Adds edge (i, o) to the panel at slot e: its a row's pointer, its b row
 * copied (the panel's columns past q stay zero from the start). */
static inline void wgrad_put(const lt__wgrad_job *j, int64_t e, int64_t i, int64_t o, lt__wgrad_scratch s) {
  const float *xi = j->x + i * j->ldx, *g = j->dy + o * j->lddy, *b = j->a_is_x ? g : xi;
  s.ar[e] = j->a_is_x ? xi : g;
  float *dst = s.panel + e * j->ldq;
  int64_t c = 0;
  for (; c + LT_W <= j->q; c += LT_W) vstore(dst + c, vload(b + c));
  for (; c < j->q; c++) dst[c] = b[c];
}

/* Part `part` of `parts` of the rows [o0, o0 + rows) of x and dy asked for
 * ahead of time: the next chunk's rows of dy are its outputs' and, for a
 * map with locality (rows in Morton order), those of x are close to the
 * inputs it reads. Spread over the offsets, as the forward's prefetch is. */
static void wgrad_prefetch(const lt__wgrad_job *j, int64_t o0, int64_t rows, int64_t part, int64_t parts) {
  int64_t c_in = j->a_is_x ? j->p : j->q, c_out = j->a_is_x ? j->q : j->p;
  for (int64_t r = o0 + rows * part / parts; r < o0 + rows * (part + 1) / parts; r++) {
    if (r < j->n_in) lt__prefetch_row(j->x + r * j->ldx, c_in);
    lt__prefetch_row(j->dy + r * j->lddy, c_out);
  }
}

/* Offset k's edges among rows [o0, o0 + rows) (their presence masks in
 * present, K apart per tile), ascending, into its accumulator. */
static void wgrad_chunk(const lt__wgrad_job *j, int64_t k, int64_t o0, int64_t rows, float *tile, int64_t ldt,
                        lt__wgrad_scratch s) {
  int64_t e = 0;
  for (int64_t t = 0; t * LT_GGEMM_TILE_ROWS < rows; t++)
    for (uint64_t bits = s.present[t * j->k + k]; bits; bits &= bits - 1) {
      int64_t o = o0 + t * LT_GGEMM_TILE_ROWS + __builtin_ctzll(bits);
      wgrad_put(j, e++, j->idx[o * j->k + k], o, s);
      if (e == LT_GGEMM_PANEL_EDGES) wgrad_flush(j, e, tile, ldt, s), e = 0;
    }
  if (e) wgrad_flush(j, e, tile, ldt, s);
}

/* Where offset t of the thread's accumulates: in place in dw when q is a
 * whole number of vectors (j->direct), else its tile in the scratch. */
static float *wgrad_acc(const lt__wgrad_job *j, const int64_t *ks, int64_t t, lt__wgrad_scratch s, int64_t *ldt) {
  *ldt = j->direct ? j->ldr : j->ldq;
  return j->direct ? j->dw + ks[t] * j->ldk : s.tiles + (size_t)t * (size_t)(j->p * j->ldq);
}

void LT_GGEMM_WGRAD_OFFSETS(const lt__wgrad_job *j, const int64_t *ks, int64_t nk, void *scratch) {
  lt__wgrad_scratch s = lt__wgrad_scratch_of(scratch, j, j->direct ? 0 : nk);
  int64_t ldt;
  for (int64_t t = 0; t < nk; t++) lt__wgrad_tile_begin(j, wgrad_acc(j, ks, t, s, &ldt), ks[t]);
  for (int64_t e = 0; e < LT_GGEMM_PANEL_EDGES; e++)
    for (int64_t c = j->q; c < j->ldq; c++) s.panel[e * j->ldq + c] = 0;
  for (int64_t o0 = 0; o0 < j->n_out; o0 += LT_GGEMM_WGRAD_CHUNK) {
    int64_t rows = j->n_out - o0 < LT_GGEMM_WGRAD_CHUNK ? j->n_out - o0 : LT_GGEMM_WGRAD_CHUNK;
    for (int64_t r = 0; r < rows; r += LT_GGEMM_TILE_ROWS)
      LT_GGEMM_PRESENT(s.present + r / LT_GGEMM_TILE_ROWS * j->k, j->idx + (o0 + r) * j->k, j->k,
                       rows - r < LT_GGEMM_TILE_ROWS ? rows - r : LT_GGEMM_TILE_ROWS);
    int64_t next = j->n_out - o0 - rows < LT_GGEMM_WGRAD_CHUNK ? j->n_out - o0 - rows : LT_GGEMM_WGRAD_CHUNK;
    for (int64_t t = 0; t < nk; t++) {
      wgrad_prefetch(j, o0 + rows, next, t, nk);
      float *acc = wgrad_acc(j, ks, t, s, &ldt);
      wgrad_chunk(j, ks[t], o0, rows, acc, ldt, s);
    }
  }
  for (int64_t t = 0; t < nk; t++) lt__wgrad_tile_end(j, wgrad_acc(j, ks, t, s, &ldt), ks[t]);
}
