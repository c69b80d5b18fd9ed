/* kNN by a candidate window per query brick (sparse/neighbor_window.h): the
 * bricks' row lists, the window of one query brick, the scalar query (_ref). */
#include "sparse/neighbor_window.h"
#include "runtime/parallel.h"

/* ---- the bricks' row lists ---- */

/* One brick's rows into its slot, sorted: taken in Morton order of the
 * cells (order[m] the m-th; branch-free), which is their order already
 * where the rows are in Morton order, then an insertion sort for any other
 * order. */
static void brick_fill(int32_t *row, uint8_t *cell, const int32_t *cells, const uint8_t *order) {
  int64_t n = 0;
  for (int m = 0; m < LT_BRICK_CELLS; m++) {
    int c = order[m];
    row[n] = cells[c], cell[n] = (uint8_t)c;
    n += cells[c] >= 0;
  }
  for (int64_t i = 1; i < n; i++) {
    int32_t r = row[i];
    uint8_t c = cell[i];
    int64_t j = i;
    for (; j > 0 && row[j - 1] > r; j--) row[j] = row[j - 1], cell[j] = cell[j - 1];
    row[j] = r, cell[j] = c;
  }
  if (n < LT_BRICK_CELLS) row[n] = -1;
}

lt_status lt__brick_rows_build(lt_ctx *ctx, lt_brick_rows *r, const lt_bricks *src, int threads, const char *op) {
  int64_t nb = src->nb;
  r->bytes = (size_t)(nb > 0 ? nb : 1) * LT_BRICK_CELLS * (sizeof *r->row + sizeof *r->cell);
  r->row = lt_ctx_alloc(ctx, r->bytes);
  if (!r->row) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the bricks' row lists", op);
  r->cell = (uint8_t *)(r->row + (nb > 0 ? nb : 1) * LT_BRICK_CELLS);
  const lt_brick_rows *l = r;
  uint8_t order[LT_BRICK_CELLS];
  for (int c = 0; c < LT_BRICK_CELLS; c++) order[lt__morton_cell(c)] = (uint8_t)c; /* the m-th cell in Morton order */
  LT_PARALLEL_FOR(threads, b, nb, {
    brick_fill(l->row + b * LT_BRICK_CELLS, l->cell + b * LT_BRICK_CELLS, src->cells + b * LT_BRICK_CELLS, order);
  });
  return LT_OK;
}

void lt__brick_rows_free(lt_ctx *ctx, lt_brick_rows *r) {
  if (r->row) lt_ctx_free(ctx, r->row, r->bytes);
  *r = (lt_brick_rows){0};
}

/* ---- the window of one query brick ---- */

/* The cells 0..3 of an axis of the brick at offset o (-1, 0, 1) from the
 * query brick that lie in the window, as bits. */
static unsigned axis_cells(int o) {
  unsigned all = 15, m = (1u << LT_WINDOW_MARGIN) - 1;
  return o < 0 ? all & ~(all >> LT_WINDOW_MARGIN) : o > 0 ? m & all : all;
}

void lt__window_cells(lt_window_cells *c) {
  for (int b = 0; b < 27; b++) {
    unsigned xs = axis_cells(b / 9 - 1), ys = axis_cells(b / 3 % 3 - 1), zs = axis_cells(b % 3 - 1);
    c->in[b] = 0;
    for (int x = 0; x < 4; x++)
      for (int y = 0; y < 4; y++)
        if ((xs >> x & 1) && (ys >> y & 1)) c->in[b] |= (uint64_t)zs << (x << 4 | y << 2);
  }
}

void lt__window_prefetch(const lt_brick_rows *r, const lt_shell_bricks *near) {
  for (int b = 0; b < 27; b++) {
    if (near->base[b] < 0) continue;
    __builtin_prefetch(r->row + near->base[b]); /* base: the brick's number times 64 */
    __builtin_prefetch(r->cell + near->base[b]);
  }
}

/* The bricks around (0..26) that exist into order, by their brick numbers:
 * in first-seen order, so that rows in Morton order come out nearly sorted. */
static int bricks_by_number(int *order, const lt_shell_bricks *near) {
  int n = 0;
  for (int b = 0; b < 27; b++) {
    if (near->base[b] < 0) continue;
    int j = n++;
    for (; j > 0 && near->base[order[j - 1]] > near->base[b]; j--) order[j] = order[j - 1];
    order[j] = b;
  }
  return n;
}

/* Brick b's rows that lie in the window (the cells `in`) onto the list's
 * front, which moves down from LT_WINDOW_END (so that rows gathered
 * ascending lie descending); returns the new front. */
static int64_t gather(lt_window *w, int64_t front, const lt_brick_rows *r, const lt_shell_bricks *near, uint64_t in,
                      int b) {
  const int32_t *row = r->row + near->base[b];
  const uint8_t *cell = r->cell + near->base[b];
  int ox = 4 * (b / 9 - 1), oy = 4 * (b / 3 % 3 - 1), oz = 4 * (b % 3 - 1);
  for (int j = 0; j < LT_BRICK_CELLS && row[j] >= 0; j++) { /* branch-free: about half lie in the window */
    int c = cell[j];
    int64_t p = front - 1;
    w->x[p] = (int8_t)(ox + (c >> 4)), w->y[p] = (int8_t)(oy + (c >> 2 & 3)), w->z[p] = (int8_t)(oz + (c & 3));
    w->row[p] = row[j];
    front -= in >> c & 1;
  }
  return front;
}

/* The list by descending row, by an insertion sort: one compare a
 * candidate where the bricks' rows do not interleave (Morton order). */
static void sort_list(lt_window *w) {
  for (int64_t i = w->first + 1; i < LT_WINDOW_END; i++) {
    int32_t r = w->row[i];
    if (r < w->row[i - 1]) continue;
    int8_t x = w->x[i], y = w->y[i], z = w->z[i];
    int64_t j = i;
    for (; j > w->first && w->row[j - 1] < r; j--)
      w->x[j] = w->x[j - 1], w->y[j] = w->y[j - 1], w->z[j] = w->z[j - 1], w->row[j] = w->row[j - 1];
    w->x[j] = x, w->y[j] = y, w->z[j] = z, w->row[j] = r;
  }
}

void lt__window_init(lt_window *w) {
  memset(w->x + LT_WINDOW_END, LT_WINDOW_FAR, LT_WINDOW_LANES);
  memset(w->y + LT_WINDOW_END, LT_WINDOW_FAR, LT_WINDOW_LANES);
  memset(w->z + LT_WINDOW_END, LT_WINDOW_FAR, LT_WINDOW_LANES);
  w->n = -1, w->first = LT_WINDOW_END;
}

void lt__window_build(lt_window *w, const lt_window_cells *in, const lt_brick_rows *r, const lt_shell_bricks *near) {
  int order[27], nb = bricks_by_number(order, near);
  int64_t front = LT_WINDOW_END;
  for (int i = 0; i < nb; i++) {
    front = gather(w, front, r, near, in->in[order[i]], order[i]);
    if (LT_WINDOW_END - front > LT_WINDOW_MOST) { /* a dense region: the shells' */
      w->n = -1;
      return;
    }
  }
  w->first = front, w->n = LT_WINDOW_END - front;
  sort_list(w);
}

/* ---- one query (scalar) ---- */

int64_t lt__window_query_ref(const lt_window *w, int cell, int64_t want, int32_t *row, float *dist) {
  if (want == 0) return 0;
  if (w->n < want) return -1;
  int bound = lt__window_bound(cell), qx = cell >> 4, qy = cell >> 2 & 3, qz = cell & 3;
  const int8_t *x = w->x + w->first, *y = w->y + w->first, *z = w->z + w->first;
  int32_t d2[LT_WINDOW_MOST];
  int64_t at[LT_WINDOW_BOUNDS] = {0}, below[LT_WINDOW_BOUNDS] = {0}; /* at d^2 = t; below: at d^2 < t */
  for (int64_t i = 0; i < w->n; i++) {
    int dx = x[i] - qx, dy = y[i] - qy, dz = z[i] - qz;
    d2[i] = dx * dx + dy * dy + dz * dz;
    if (d2[i] < bound) at[d2[i]]++;
  }
  int t = 0;
  for (int64_t seen = at[0]; seen < want; seen += at[t]) {
    if (++t == bound) return -1; /* the want-th lies at d^2 >= bound: not decided here */
    below[t] = seen;
  }
  for (int s = 0; s <= t; s++) at[s] = below[s]; /* now: where the next at d^2 = s goes */
  for (int64_t i = w->n - 1; i >= 0; i--) {      /* by ascending row */
    if (d2[i] > t || at[d2[i]] >= want) continue;
    int64_t p = at[d2[i]]++;
    row[p] = w->row[w->first + i], dist[p] = (float)d2[i];
  }
  return want;
}
