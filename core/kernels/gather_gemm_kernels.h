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

/* The forward: y (n_out, c_out) [+]= sum_k x[idx[o*K + k]] @ W_k, with the
 * weight packed (gather_gemm.h) into column blocks of `block` columns. */
typedef struct lt__ggemm_job {
  float *y;
  int64_t ldy;
  const float *x;
  int64_t ldx;
  const int64_t *idx;
  const float *wp;
  int64_t k, c_in, c_out, ldt;
  int accumulate;
} lt__ggemm_job;

/* Computes output rows [o0, o0 + rows), rows <= LT_GGEMM_TILE_ROWS, with the
 * calling thread's scratch (lt__ggemm_scratch_bytes). */
typedef void (*lt__ggemm_rows_fn)(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);
void lt__ggemm_rows_ref(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);
void lt__ggemm_rows_avx2(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);
void lt__ggemm_rows_avx512(const lt__ggemm_job *j, int64_t o0, int64_t rows, void *scratch);

/* A forward tile's scratch: the accumulator tile (LT_GGEMM_TILE_ROWS x ldt),
 * then one offset's compacted rows: the input row each reads and the tile
 * row it adds to. */
typedef struct lt__ggemm_scratch {
  float *tile;
  const float **xr;
  int32_t *tr;
} lt__ggemm_scratch;

static inline size_t lt__ggemm_tile_bytes(int64_t ldt) {
  return ((size_t)LT_GGEMM_TILE_ROWS * (size_t)ldt * sizeof(float) + 63) / 64 * 64;
}
static inline size_t lt__ggemm_scratch_bytes(int64_t ldt) {
  return lt__ggemm_tile_bytes(ldt) + LT_GGEMM_TILE_ROWS * (sizeof(const float *) + sizeof(int32_t));
}
static inline lt__ggemm_scratch lt__ggemm_scratch_of(void *p, int64_t ldt) {
  lt__ggemm_scratch s;
  s.tile = p;
  s.xr = (const float **)((char *)p + lt__ggemm_tile_bytes(ldt));
  s.tr = (int32_t *)(s.xr + LT_GGEMM_TILE_ROWS);
  return s;
}

/* The offset-k inputs of rows [o0, o0 + rows), in row order, skipping the
 * -1 entries: xr[e] the input row, tr[e] its tile row. Branch-free: every
 * entry is written, and the count advances only past the present ones. */
static inline int64_t lt__ggemm_compact(lt__ggemm_scratch s, const lt__ggemm_job *j, int64_t o0, int64_t rows,
                                        int64_t k) {
  const int64_t *col = j->idx + o0 * j->k + k;
  int64_t n = 0;
  for (int64_t r = 0; r < rows; r++) {
    int64_t i = col[r * j->k];
    s.xr[n] = j->x + (i >= 0 ? i : 0) * j->ldx;
    s.tr[n] = (int32_t)r;
    n += i >= 0;
  }
  return n;
}

/* The tile starts as y's rows (accumulate) or zeros; the columns past c_out
 * are zero either way, and only c_out columns are written back. */
void lt__ggemm_tile_begin(const lt__ggemm_job *j, float *tile, int64_t o0, int64_t rows);
void lt__ggemm_tile_end(const lt__ggemm_job *j, const float *tile, int64_t o0, int64_t rows);

/* The weight gradient, one offset at a time: out_k (p, q) [+]= sum_e a[ea]^T b[eb]
 * over the offset's edges (ea, eb) in ascending output-row order, with
 * out_k[r][c] at dw[k*ldk + r*ldr + c]. a are the rows whose elements are
 * broadcast (x for dW_k, dy for dW_k^T), b the rows read as vectors. */
typedef struct lt__wgrad_job {
  float *dw;
  int64_t ldk, ldr;
  const float *a, *b;
  int64_t lda, ldb;
  /* the _ref kernel scans idx; the vector kernels read edges: (a row, b row)
   * pairs, offset k's at [2*start[k], 2*start[k+1]) */
  const int64_t *idx;
  int a_is_x;
  const int64_t *edges, *start;
  int64_t n_out, k, p, q, ldq;
  int accumulate;
} lt__wgrad_job;

typedef void (*lt__wgrad_fn)(const lt__wgrad_job *j, int64_t k, void *scratch);
void lt__ggemm_wgrad_offset_ref(const lt__wgrad_job *j, int64_t k, void *scratch);
void lt__ggemm_wgrad_offset_avx2(const lt__wgrad_job *j, int64_t k, void *scratch);
void lt__ggemm_wgrad_offset_avx512(const lt__wgrad_job *j, int64_t k, void *scratch);

/* A weight-gradient task's scratch: the accumulator out_k (p x ldq), the
 * packed b rows of one panel (LT_GGEMM_PANEL_EDGES x ldq), the a row of each
 * edge of the panel. */
typedef struct lt__wgrad_scratch {
  float *tile, *panel;
  const float **ar;
} lt__wgrad_scratch;

static inline size_t lt__wgrad_tile_bytes(int64_t p, int64_t ldq) {
  return ((size_t)p * (size_t)ldq * sizeof(float) + 63) / 64 * 64;
}
static inline size_t lt__wgrad_scratch_bytes(int64_t p, int64_t ldq) {
  return lt__wgrad_tile_bytes(p, ldq) + (size_t)LT_GGEMM_PANEL_EDGES * (size_t)ldq * sizeof(float) +
         LT_GGEMM_PANEL_EDGES * sizeof(const float *);
}
static inline lt__wgrad_scratch lt__wgrad_scratch_of(void *p, const lt__wgrad_job *j) {
  lt__wgrad_scratch s;
  s.tile = p;
  s.panel = (float *)((char *)p + lt__wgrad_tile_bytes(j->p, j->ldq));
  s.ar = (const float **)(s.panel + (size_t)LT_GGEMM_PANEL_EDGES * (size_t)j->ldq);
  return s;
}

/* out_k starts as dw's block (accumulate) or zeros, columns past q zero;
 * only q columns go back. */
void lt__wgrad_tile_begin(const lt__wgrad_job *j, float *tile, int64_t k);
void lt__wgrad_tile_end(const lt__wgrad_job *j, const float *tile, int64_t k);

#endif
