/* The gather-GEMM kernels written once over the primitives of the simd_*.h
 * header the including file chose. That file defines:
 *   LT_GGEMM_ROWS, LT_GGEMM_WGRAD_OFFSET  the functions to define
 *   LT_GGEMM_NV_MAX                        vectors per column block
 *   LT_GGEMM_MR1 .. LT_GGEMM_MR<NV_MAX>    rows per register tile for a block
 *                                          of 1 .. NV_MAX vectors
 * The register tile is MR rows x NV vectors of accumulators; each step of the
 * reduction loads NV weight vectors once and broadcasts one element per row
 * against them. Rows come from pointer lists (gathered inputs), so the gather
 * costs a pointer per row and nothing per element. Each accumulator is one
 * chain of vfma in reduction order, the order of the _ref's fmaf loops. */
#include "kernels/gather_gemm_kernels.h"

#define LT_GGEMM_MR_MAX 12
#define LT_GGEMM_NV_ARR 4

/* ---- forward ---- */

/* acc (tile rows tr[0..mr), nv vectors from the tile pointer's column) +=
 * sum_{c < n} xr[r][c] * w[c*ldw .. + nv*LT_W). mr and nv are constants
 * at every call, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void ggemm_micro(const int mr, const int nv, int64_t n, const float *w,
                                                              int64_t ldw, const float *const *xr, float *tile,
                                                              int64_t ldt, const int32_t *tr) {
  vf acc[LT_GGEMM_MR_MAX][LT_GGEMM_NV_ARR];
  const float *xp[LT_GGEMM_MR_MAX];
  for (int r = 0; r < mr; r++) {
    xp[r] = xr[r];
    for (int v = 0; v < nv; v++) acc[r][v] = vload(tile + tr[r] * ldt + v * LT_W);
  }
  for (int64_t c = 0; c < n; c++) {
    vf wv[LT_GGEMM_NV_ARR];
    for (int v = 0; v < nv; v++) wv[v] = vload(w + c * ldw + v * LT_W);
    for (int r = 0; r < mr; r++) {
      vf a = vset(xp[r][c]);
      for (int v = 0; v < nv; v++) acc[r][v] = vfma(a, wv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < mr; r++)
    for (int v = 0; v < nv; v++) vstore(tile + tr[r] * ldt + v * LT_W, acc[r][v]);
}

/* All m compacted rows of one column block of nv vectors: register tiles of
 * MR rows, then the remainder as tiles of 4, 2 and 1. */
static inline __attribute__((always_inline)) void ggemm_block_nv(const int nv, const int mr, int64_t m, int64_t n,
                                                                 const float *w, const float *const *xr, float *tile,
                                                                 int64_t ldt, const int32_t *tr) {
  int64_t ldw = nv * LT_W, g = 0;
  for (; g + mr <= m; g += mr) ggemm_micro(mr, nv, n, w, ldw, xr + g, tile, ldt, tr + g);
  for (; g + 4 <= m; g += 4) ggemm_micro(4, nv, n, w, ldw, xr + g, tile, ldt, tr + g);
  for (; g + 2 <= m; g += 2) ggemm_micro(2, nv, n, w, ldw, xr + g, tile, ldt, tr + g);
  if (g < m) ggemm_micro(1, nv, n, w, ldw, xr + g, tile, ldt, tr + g);
}

static void ggemm_block(int nv, int64_t m, int64_t n, const float *w, const float *const *xr, float *tile, int64_t ldt,
                        const int32_t *tr) {
  if (nv == 1) ggemm_block_nv(1, LT_GGEMM_MR1, m, n, w, xr, tile, ldt, tr);
  if (nv == 2) ggemm_block_nv(2, LT_GGEMM_MR2, m, n, w, xr, tile, ldt, tr);
#if LT_GGEMM_NV_MAX >= 4
  if (nv == 3) ggemm_block_nv(3, LT_GGEMM_MR3, m, n, w, xr, tile, ldt, tr);
  if (nv == 4) ggemm_block_nv(4, LT_GGEMM_MR4, m, n, w, xr, tile, ldt, tr);
#endif
}

/* The m compacted rows of offset k, every column block. */
static void ggemm_offset(const lt__ggemm_job *j, int64_t k, int64_t m, lt__ggemm_scratch s) {
  const float *wk = j->wp + k * j->c_in * j->ldt;
  for (int64_t col0 = 0; col0 < j->ldt; col0 += LT_GGEMM_NV_MAX * LT_W) {
    int64_t nv = (j->ldt - col0) / LT_W;
    if (nv > LT_GGEMM_NV_MAX) nv = LT_GGEMM_NV_MAX;
    ggemm_block((int)nv, m, j->c_in, wk + j->c_in * col0, s.xr, s.tile + col0, j->ldt, s.tr);
  }
}

void LT_GGEMM_ROWS(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch) {
  lt__ggemm_scratch s = lt__ggemm_scratch_of(scratch, j->ldt);
  lt__ggemm_tile_begin(j, s.tile, o0, rows);
  for (int64_t k = 0; k < j->k; k++) {
    int64_t m = lt__ggemm_compact(s, j, o0, rows, k);
    if (m) ggemm_offset(j, k, m, s);
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
  for (int64_t e = 0; e < m; e++) {
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

/* Rows [0, p) of one column block over one panel: tiles of MR rows, then 4, 2, 1. */
static inline __attribute__((always_inline)) void wgrad_block_nv(const int nv, const int mr, int64_t p, int64_t m,
                                                                 const float *const *ar, const float *panel,
                                                                 int64_t ldp, float *tile, int64_t ldt) {
  int64_t r = 0;
  for (; r + mr <= p; r += mr) wgrad_micro(mr, nv, m, ar, r, panel, ldp, tile + r * ldt, ldt);
  for (; r + 4 <= p; r += 4) wgrad_micro(4, nv, m, ar, r, panel, ldp, tile + r * ldt, ldt);
  for (; r + 2 <= p; r += 2) wgrad_micro(2, nv, m, ar, r, panel, ldp, tile + r * ldt, ldt);
  if (r < p) wgrad_micro(1, nv, m, ar, r, panel, ldp, tile + r * ldt, ldt);
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

/* Gathers the panel's m edges: a row pointers, b rows copied into the panel
 * (its columns past q stay zero from wgrad_offset's start). */
static void wgrad_pack(const lt__wgrad_job *j, const int64_t *edges, int64_t m, lt__wgrad_scratch s) {
  for (int64_t e = 0; e < m; e++) {
    s.ar[e] = j->a + edges[2 * e] * j->lda;
    const float *b = j->b + edges[2 * e + 1] * j->ldb;
    float *dst = s.panel + e * j->ldq;
    int64_t c = 0;
    for (; c + LT_W <= j->q; c += LT_W) vstore(dst + c, vload(b + c));
    for (; c < j->q; c++) dst[c] = b[c];
  }
}

void LT_GGEMM_WGRAD_OFFSET(const lt__wgrad_job *j, int64_t k, void *scratch) {
  lt__wgrad_scratch s = lt__wgrad_scratch_of(scratch, j);
  lt__wgrad_tile_begin(j, s.tile, k);
  for (int64_t e = 0; e < LT_GGEMM_PANEL_EDGES; e++)
    for (int64_t c = j->q; c < j->ldq; c++) s.panel[e * j->ldq + c] = 0;
  for (int64_t e0 = j->start[k]; e0 < j->start[k + 1]; e0 += LT_GGEMM_PANEL_EDGES) {
    int64_t m = j->start[k + 1] - e0;
    if (m > LT_GGEMM_PANEL_EDGES) m = LT_GGEMM_PANEL_EDGES;
    wgrad_pack(j, j->edges + 2 * e0, m, s);
    for (int64_t col0 = 0; col0 < j->ldq; col0 += LT_GGEMM_NV_MAX * LT_W) {
      int64_t nv = (j->ldq - col0) / LT_W;
      if (nv > LT_GGEMM_NV_MAX) nv = LT_GGEMM_NV_MAX;
      wgrad_block((int)nv, j->p, m, s.ar, s.panel + col0, j->ldq, s.tile + col0, j->ldq);
    }
  }
  lt__wgrad_tile_end(j, s.tile, k);
}
