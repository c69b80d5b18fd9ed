/* Internal to the gather-GEMM family (kernels/gather_gemm*.c): the jobs the
 * drivers in gather_gemm.c hand to one ISA's kernels, those kernels, and the
 * scratch layout they share. gather_gemm_simd.h writes the vector kernels
 * once; gather_gemm_avx2.c and gather_gemm_avx512.c instantiate them. */
#ifndef LATTICE_KERNELS_GATHER_GEMM_KERNELS_H
#define LATTICE_KERNELS_GATHER_GEMM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Output rows per forward tile: the tile (rows x ldt floats) lives in L1/L2
 * while every offset of its rows streams through it. */
#define LT_GGEMM_TILE_ROWS 64
/* Edges per weight-gradient panel: the packed rows of the vector operand
 * (edges x ldq floats) stay in L1 while every row block of dW_k reads them. */
#define LT_GGEMM_PANEL_EDGES 64

/* The forward: y (n_out, c_out) [+]= sum_k x[idx[o*K + k]] @ W_k, with wp
 * the packed weight (gather_gemm.h): offset k's block of columns [col0, ..)
 * at wp + (k*c_in)*ldt + c_in*col0, c_in rows of the block's width. */
typedef struct lt__ggemm_job {
  float *y;
  int64_t ldy;
  const float *x;
  int64_t ldx;
  const int32_t *idx;
  const int32_t *order; /* n_out, or NULL: tile t holds rows order[64t ..), else 64t .. */
  const float *wp;
  const float *bias; /* c_out, or NULL: where a row starts unless accumulating */
  int64_t n_out, n_in, k, c_in, c_out, ldt;
  int accumulate;
} lt__ggemm_job;

/* Computes the output rows at positions [o0, o0 + rows) of the order (rows
 * <= LT_GGEMM_TILE_ROWS), with the calling thread's scratch
 * (lt__ggemm_scratch_bytes). Which rows share a tile never changes a row's
 * sum: the order is for locality only. */
typedef void (*lt__ggemm_rows_fn)(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);
void lt__ggemm_rows_ref(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);
void lt__ggemm_rows_avx2(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);
void lt__ggemm_rows_avx512(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);

/* A forward tile's scratch: the accumulator tile (LT_GGEMM_TILE_ROWS x ldt);
 * which of the tile's rows have an input at each offset (present[k], bit r
 * for row r: the tile has 64 rows so that one word holds them); one
 * offset's present rows listed (tr, with room for a vector store past the
 * last), and for each its input row (xr) and accumulator row (ar); with an
 * order, the tile's rows of idx gathered (tidx, LT_GGEMM_TILE_ROWS x K). */
typedef struct lt__ggemm_scratch {
  float *tile;
  uint64_t *present;
  int32_t *tr, *tidx;
  const float **xr;
  float **ar;
} lt__ggemm_scratch;

_Static_assert(LT_GGEMM_TILE_ROWS == 64, "a tile's rows are the bits of one uint64_t");
#define LT_GGEMM_LIST_SLOTS (LT_GGEMM_TILE_ROWS + 16)

static inline size_t lt__ggemm_tile_bytes(int64_t ldt) {
  return ((size_t)LT_GGEMM_TILE_ROWS * (size_t)ldt * sizeof(float) + 63) / 64 * 64;
}
static inline size_t lt__ggemm_scratch_bytes(int64_t ldt, int64_t k) {
  return lt__ggemm_tile_bytes(ldt) + LT_GGEMM_TILE_ROWS * (sizeof(const float *) + sizeof(float *)) +
         LT_GGEMM_LIST_SLOTS * sizeof(int32_t) + (size_t)k * sizeof(uint64_t) +
         (size_t)(LT_GGEMM_TILE_ROWS * k) * sizeof(int32_t);
}
static inline lt__ggemm_scratch lt__ggemm_scratch_of(void *p, int64_t ldt, int64_t k) {
  lt__ggemm_scratch s;
  s.tile = p;
  s.xr = (const float **)((char *)p + lt__ggemm_tile_bytes(ldt));
  s.ar = (float **)(s.xr + LT_GGEMM_TILE_ROWS);
  s.tr = (int32_t *)(s.ar + LT_GGEMM_TILE_ROWS);
  s.present = (uint64_t *)(s.tr + LT_GGEMM_LIST_SLOTS);
  s.tidx = (int32_t *)(s.present + k);
  return s;
}

/* The row at position p of the order. */
static inline int64_t lt__ggemm_row(const lt__ggemm_job *j, int64_t p) { return j->order ? j->order[p] : p; }

/* The tile's rows of idx, contiguous: idx itself, or (with an order) them
 * gathered into tidx. */
static inline const int32_t *lt__ggemm_tile_index(const lt__ggemm_job *j, int64_t o0, int64_t rows, int32_t *tidx) {
  if (!j->order) return j->idx + o0 * j->k;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < j->k; k++) tidx[r * j->k + k] = j->idx[(int64_t)j->order[o0 + r] * j->k + k];
  return tidx;
}

/* present[k] for the tile's rows (idx points at its first row), in one pass
 * over its rows of idx, which lie contiguous (a pass per offset would stride
 * through them K times). */
static inline void lt__ggemm_present(uint64_t *present, const int32_t *idx, int64_t K, int64_t rows) {
  for (int64_t k = 0; k < K; k++) present[k] = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < K; k++) present[k] |= (uint64_t)(idx[r * K + k] >= 0) << r;
}

/* The rows whose bits are set in `present`, ascending, into tr; the count. */
static inline int64_t lt__ggemm_list(uint64_t present, int32_t *tr) {
  int64_t n = 0;
  for (; present; present &= present - 1) tr[n++] = __builtin_ctzll(present);
  return n;
}

/* Asks for the n floats at p, into L2: what is asked for a tile or a chunk
 * ahead is more than L1 holds beside the working set. */
static inline void lt__prefetch_row(const float *p, int64_t n) {
  for (int64_t b = 0; b < n; b += 16) __builtin_prefetch(p + b, 0, 2);
}

/* Asks for part `part` of `parts` of the next tile's rows of idx and of x
 * ahead of time: the first offset's compaction would otherwise wait on a
 * miss per row, and for a map with locality (rows in Morton order) the
 * inputs the next tile reads are close to its own rows. Spread over the
 * offsets, because a burst of a few hundred prefetches stalls on the line
 * fill buffers. */
static inline void lt__ggemm_prefetch_next(const lt__ggemm_job *j, int64_t o_next, int64_t part, int64_t parts) {
  int64_t n = j->n_out - o_next < LT_GGEMM_TILE_ROWS ? j->n_out - o_next : LT_GGEMM_TILE_ROWS;
  if (n <= 0) return;
  if (j->order) { /* the rows' idx entries, and the x rows of the same numbers (a map onto its own input) */
    for (int64_t p = o_next + n * part / parts; p < o_next + n * (part + 1) / parts; p++) {
      int64_t o = j->order[p];
      const char *row = (const char *)(j->idx + o * j->k);
      for (int64_t b = 0; b < j->k * (int64_t)sizeof(int32_t); b += 64) __builtin_prefetch(row + b, 0, 2);
      if (o < j->n_in) lt__prefetch_row(j->x + o * j->ldx, j->c_in);
    }
    return;
  }
  int64_t lines = (n * j->k * (int64_t)sizeof(int32_t) + 63) / 64;
  const char *base = (const char *)(j->idx + o_next * j->k);
  for (int64_t l = lines * part / parts; l < lines * (part + 1) / parts; l++) __builtin_prefetch(base + 64 * l, 0, 2);
  for (int64_t r = o_next + n * part / parts; r < o_next + n * (part + 1) / parts && r < j->n_in; r++)
    lt__prefetch_row(j->x + r * j->ldx, j->c_in);
}

/* The tile starts as y's rows (accumulate), the bias or zeros; the columns past c_out
 * are zero either way, and only c_out columns are written back. */
void lt__ggemm_tile_begin(const lt__ggemm_job *j, float *tile, int64_t o0, int64_t rows);
void lt__ggemm_tile_end(const lt__ggemm_job *j, const float *tile, int64_t o0, int64_t rows);

/* The weight gradient: out_k (p, q) [+]= sum_e a_e^T b_e over the edges of
 * offset k in ascending output-row order, out_k[r][c] at dw[k*ldk + r*ldr + c].
 * The a rows' elements are broadcast (x for dW_k, dy for dW_k^T), the b rows
 * read as vectors. */
typedef struct lt__wgrad_job {
  float *dw;
  int64_t ldk, ldr;
  const float *x, *dy;
  int64_t ldx, lddy;
  int a_is_x;
  const int32_t *idx;
  int64_t n_out, n_in, k, p, q, ldq;
  int accumulate;
  int direct; /* q is whole vectors: the vector kernels accumulate in dw itself */
} lt__wgrad_job;

/* The _ref kernel: offset k alone. */
void lt__ggemm_wgrad_offset_ref(const lt__wgrad_job *j, int64_t k, void *scratch);
/* The vector kernels: the nk offsets ks[] (ascending) of one thread. They
 * sweep the output rows once in chunks of LT_GGEMM_WGRAD_CHUNK rows, each of
 * the thread's offsets taking the chunk's edges in turn, so that the chunk's
 * rows of dy and x stay in cache for all of them (a sweep per offset would
 * fetch them from memory K times). Each out_k still sums its edges in
 * ascending row order. */
typedef void (*lt__wgrad_fn)(const lt__wgrad_job *j, const int64_t *ks, int64_t nk, void *scratch);
void lt__ggemm_wgrad_offsets_avx2(const lt__wgrad_job *j, const int64_t *ks, int64_t nk, void *scratch);
void lt__ggemm_wgrad_offsets_avx512(const lt__wgrad_job *j, const int64_t *ks, int64_t nk, void *scratch);

#define LT_GGEMM_WGRAD_CHUNK 512
#define LT_GGEMM_WGRAD_TILES (LT_GGEMM_WGRAD_CHUNK / LT_GGEMM_TILE_ROWS)

/* A weight-gradient thread's scratch: its offsets' accumulators out_k
 * (nk x p x ldq; none when they accumulate in place), the packed b rows of
 * one panel (LT_GGEMM_PANEL_EDGES x ldq), the a row of each edge of the
 * panel, and the chunk's presence masks (LT_GGEMM_WGRAD_TILES x K, as the
 * forward's). */
typedef struct lt__wgrad_scratch {
  float *tiles, *panel;
  const float **ar;
  uint64_t *present;
} lt__wgrad_scratch;

static inline size_t lt__wgrad_tiles_bytes(int64_t nk, int64_t p, int64_t ldq) {
  return ((size_t)nk * (size_t)p * (size_t)ldq * sizeof(float) + 63) / 64 * 64;
}
static inline size_t lt__wgrad_scratch_bytes(int64_t nk, int64_t p, int64_t ldq, int64_t k) {
  return lt__wgrad_tiles_bytes(nk, p, ldq) + (size_t)LT_GGEMM_PANEL_EDGES * (size_t)ldq * sizeof(float) +
         LT_GGEMM_PANEL_EDGES * sizeof(const float *) + (size_t)(LT_GGEMM_WGRAD_TILES * k) * sizeof(uint64_t);
}
static inline lt__wgrad_scratch lt__wgrad_scratch_of(void *p, const lt__wgrad_job *j, int64_t nk) {
  lt__wgrad_scratch s;
  s.tiles = p;
  s.panel = (float *)((char *)p + lt__wgrad_tiles_bytes(nk, j->p, j->ldq));
  s.ar = (const float **)(s.panel + (size_t)LT_GGEMM_PANEL_EDGES * (size_t)j->ldq);
  s.present = (uint64_t *)(s.ar + LT_GGEMM_PANEL_EDGES);
  return s;
}

/* out_k starts as dw's block (accumulate) or zeros, columns past q zero;
 * only q columns go back. In place (j->direct) begin zeroes dw's block
 * unless accumulating, and end has nothing to do. */
void lt__wgrad_tile_begin(const lt__wgrad_job *j, float *tile, int64_t k);
void lt__wgrad_tile_end(const lt__wgrad_job *j, const float *tile, int64_t k);

#endif
