/* kNN by a candidate window shared by one query brick's queries
 * (sparse/neighbor_window.c), ahead of the shells of sparse/neighbor_shells.h.
 * The source rows whose cells lie within LT_WINDOW_MARGIN cells of a query
 * brick (its (4 + 2 margin)^3 window) are listed once for all the brick's
 * queries, sorted by source row (descending), so that a candidate's position
 * in the list is the tie rule. A query then computes its squared distance to every
 * candidate, finds the d^2 T of its want-th nearest by counting the
 * candidates with d^2 <= t for t = 0, 1, ..., and places the ones with
 * d^2 <= T by a counting sort on d^2 (in row order within one d^2): nearest
 * first, ties by row, the first `want` kept.
 * Exact when T < e^2, e the distance from the query to the window's nearest
 * face plus one: a source outside the window differs by at least e on some
 * axis, so it lies at d^2 >= e^2 > T. Otherwise (too few candidates, a
 * far k-th, a window past LT_WINDOW_MOST) the query takes the shells. */
#ifndef LATTICE_SPARSE_NEIGHBOR_WINDOW_H
#define LATTICE_SPARSE_NEIGHBOR_WINDOW_H

#include "sparse/neighbor_shells.h"

#define LT_WINDOW_MARGIN 3   /* cells past the brick on every side: e >= 4, exact for T <= 15 */
#define LT_WINDOW_MOST   256 /* candidates a window holds; more (a dense region, where the shells end early) */
#define LT_WINDOW_LANES  64  /* the lists padded to a multiple of two AVX2 vectors of bytes */
#define LT_WINDOW_FAR    12  /* the padding's coordinate: farther than any bound from every query cell */
#define LT_WINDOW_END    (LT_WINDOW_MOST + 64) /* the list's end: room for one brick's rows past the most */
#define LT_WINDOW_BOUNDS ((4 + LT_WINDOW_MARGIN) * (4 + LT_WINDOW_MARGIN)) /* above every e^2 */

/* Each source brick's rows ascending, with their cells (0..63), in a slot
 * of 64 per brick (read by brick number, as the brick's cells are, so that
 * both are fetched ahead alike): brick b's are row[64 b ..], ended by -1
 * where it has fewer than 64. */
typedef struct lt_brick_rows {
  int32_t *row;
  uint8_t *cell;
  size_t bytes;
} lt_brick_rows;

/* The cells of each of the 27 bricks around a query brick that lie in its
 * window, as bits (b = 9 (x + 1) + 3 (y + 1) + z + 1, as in lt_shell_bricks). */
typedef struct lt_window_cells {
  uint64_t in[27];
} lt_window_cells;

/* One query brick's candidates, by descending row, at first .. LT_WINDOW_END
 * (n of them; n = -1 where more than LT_WINDOW_MOST lie near): their cells
 * relative to the brick's first cell (-LT_WINDOW_MARGIN .. 3 +
 * LT_WINDOW_MARGIN per axis) and rows; past LT_WINDOW_END, padding. */
typedef struct lt_window {
  int64_t n, first;
  int8_t x[LT_WINDOW_END + LT_WINDOW_LANES];
  int8_t y[LT_WINDOW_END + LT_WINDOW_LANES];
  int8_t z[LT_WINDOW_END + LT_WINDOW_LANES];
  int32_t row[LT_WINDOW_END + LT_WINDOW_LANES];
} lt_window;

/* The lists of the bricks of src. Fails with "<op>: out of memory ..." on the context. */
lt_status lt__brick_rows_build(lt_ctx *ctx, lt_brick_rows *r, const lt_bricks *src, int threads, const char *op);
void lt__brick_rows_free(lt_ctx *ctx, lt_brick_rows *r);

/* The window's cells of each brick around (the same for every query brick). */
void lt__window_cells(lt_window_cells *c);

/* A window's padding, once before its first build. */
void lt__window_init(lt_window *w);

/* The window of the query brick whose 27 source bricks around are `near`. */
void lt__window_build(lt_window *w, const lt_window_cells *in, const lt_brick_rows *r, const lt_shell_bricks *near);

/* The lists of the bricks around asked of the memory ahead of a window build. */
void lt__window_prefetch(const lt_brick_rows *r, const lt_shell_bricks *near);

/* e^2 for a query in cell `cell` of its brick: the window's candidates
 * decide every d^2 below it. */
static inline int lt__window_bound(int cell) {
  int e = 4 + LT_WINDOW_MARGIN;
  for (int a = 0; a < 3; a++) {
    int u = cell >> (2 * a) & 3, near = u + LT_WINDOW_MARGIN + 1, far = 4 + LT_WINDOW_MARGIN - u;
    e = near < e ? near : e;
    e = far < e ? far : e;
  }
  return e * e;
}

/* The query in cell `cell`: its `want` nearest candidates into row and dist
 * (d^2), nearest first, ties by row, returning want; -1 where the window
 * cannot decide them (the shells then do). The two ISAs give the same. */
int64_t lt__window_query_ref(const lt_window *w, int cell, int64_t want, int32_t *row, float *dist);
int64_t lt__window_query_avx2(const lt_window *w, int cell, int64_t want, int32_t *row, float *dist);

#endif
