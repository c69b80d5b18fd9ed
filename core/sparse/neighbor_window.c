/* kNN by a candidate window per query brick (sparse/neighbor_window.h): the
 * bricks' row lists, the window of one query brick, the scalar query (_ref). */
#include "sparse/neighbor_window.h"
#include "runtime/parallel.h"

/* ---- the bricks' row lists ---- */

static int64_t brick_count(const int32_t *cells) {
  int64_t n = 0;
  for (int c = 0; c < LT_BRICK_CELLS; c++) n += cells[c] >= 0;
  return n;
}

/* One brick's rows into row and cell, by an insertion sort on the row (in
 * Morton order the rows of a brick are nearly so already). */
static void brick_fill(int32_t *row, uint8_t *cell, const int32_t *cells) {
  int64_t n = 0;
  for (int c = 0; c < LT_BRICK_CELLS; c++) {
    if (cells[c] < 0) continue;
    int64_t j = n++;
    for (; j > 0 && row[j - 1] > cells[c]; j--) row[j] = row[j - 1], cell[j] = cell[j - 1];
    row[j] = cells[c], cell[j] = (uint8_t)c;
  }
}

lt_status lt__brick_rows_build(lt_ctx *ctx, lt_brick_rows *r, const lt_bricks *src, int threads, const char *op) {
  int64_t nb = src->nb, n = 0;
  r->bytes = (size_t)(nb + 1) * sizeof *r->start;
  r->start = lt_ctx_alloc(ctx, r->bytes);
  if (!r->start) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the bricks' row lists", op);
  int32_t *start = r->start;
  LT_PARALLEL_FOR(threads, b, nb, { start[b + 1] = (int32_t)brick_count(src->cells + b * LT_BRICK_CELLS); });
  start[0] = 0;
  for (int64_t b = 0; b < nb; b++) n = start[b + 1] += (int32_t)n;
  size_t lists = (size_t)(n + 1) * (sizeof *r->row + sizeof *r->cell);
  void *block = lt_ctx_alloc(ctx, r->bytes + lists);
  if (!block) {
    lt__brick_rows_free(ctx, r);
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for the bricks' row lists", op);
  }
  /* the offsets move into one block with the lists, so that one free releases all */
  memcpy(block, r->start, r->bytes);
  lt_ctx_free(ctx, r->start, r->bytes);
  r->bytes += lists;
  r->start = block;
  r->row = r->start + nb + 1;
  r->cell = (uint8_t *)(r->row + n + 1);
  const lt_brick_rows *l = r;
  LT_PARALLEL_FOR(threads, b, nb,
                  { brick_fill(l->row + l->start[b], l->cell + l->start[b], src->cells + b * LT_BRICK_CELLS); });
  return LT_OK;
}

void lt__brick_rows_free(lt_ctx *ctx, lt_brick_rows *r) {
  if (r->start) lt_ctx_free(ctx, r->start, r->bytes);
  *r = (lt_brick_rows){0};
}

/* ---- the window of one query brick ---- */

/* The cells 0..3 of an axis of the brick at offset o (-1, 0, 1) from the
 * query brick that lie in the window, as bits. */
static unsigned axis_cells(int o) {
  unsigned all = 15, m = (1u << LT_WINDOW_MARGIN) - 1;
  return o < 0 ? all & ~(all >> LT_WINDOW_MARGIN) : o > 0 ? m & all : all;
}

/* The cells of brick b of the 27 around that lie in the window, as bits. */
static uint64_t window_cells(int b) {
  unsigned xs = axis_cells(b / 9 - 1), ys = axis_cells(b / 3 % 3 - 1), zs = axis_cells(b % 3 - 1);
  uint64_t m = 0;
  for (int x = 0; x < 4; x++)
    for (int y = 0; y < 4; y++)
      if ((xs >> x & 1) && (ys >> y & 1)) m |= (uint64_t)zs << (x << 4 | y << 2);
  return m;
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

/* The window's candidates as keys row << 16 | b << 6 | cell, sorted; their
 * number, -1 past LT_WINDOW_MOST. */
static int64_t window_keys(uint64_t *key, const lt_brick_rows *r, const lt_shell_bricks *near) {
  int order[27], nb = bricks_by_number(order, near);
  int64_t n = 0;
  for (int i = 0; i < nb; i++) {
    int b = order[i];
    int64_t id = near->base[b] / LT_BRICK_CELLS, first = r->start[id], last = r->start[id + 1];
    if (n + (last - first) > LT_WINDOW_MOST) return -1;
    uint64_t in = window_cells(b);
    for (int64_t j = first; j < last; j++) { /* branch-free: about half of a brick around lies in the window */
      key[n] = (uint64_t)r->row[j] << 16 | (uint64_t)b << 6 | r->cell[j];
      n += in >> r->cell[j] & 1;
    }
  }
  for (int64_t i = 1; i < n; i++) { /* sorted already, but where bricks' rows interleave */
    uint64_t k = key[i];
    int64_t j = i;
    for (; j > 0 && key[j - 1] > k; j--) key[j] = key[j - 1];
    key[j] = k;
  }
  return n;
}

void lt__window_build(lt_window *w, const lt_brick_rows *r, const lt_shell_bricks *near) {
  uint64_t key[LT_WINDOW_MOST + 1];
  w->n = window_keys(key, r, near);
  int64_t n = w->n < 0 ? 0 : w->n;
  for (int64_t i = 0; i < n; i++) { /* by descending row */
    int b = (int)(key[i] >> 6 & 31), c = (int)(key[i] & 63);
    int64_t j = n - 1 - i;
    w->x[j] = (int8_t)(4 * (b / 9 - 1) + (c >> 4));
    w->y[j] = (int8_t)(4 * (b / 3 % 3 - 1) + (c >> 2 & 3));
    w->z[j] = (int8_t)(4 * (b % 3 - 1) + (c & 3));
    w->row[j] = (int32_t)(key[i] >> 16);
  }
  for (int64_t i = n; i < n + LT_WINDOW_LANES; i++) w->x[i] = w->y[i] = w->z[i] = LT_WINDOW_FAR, w->row[i] = -1;
}

/* ---- one query (scalar) ---- */

int64_t lt__window_query_ref(const lt_window *w, int cell, int64_t want, int32_t *row, float *dist) {
  if (want == 0) return 0;
  if (w->n < want) return -1;
  int bound = lt__window_bound(cell), qx = cell >> 4, qy = cell >> 2 & 3, qz = cell & 3;
  int32_t d2[LT_WINDOW_MOST];
  int64_t at[LT_WINDOW_BOUNDS] = {0}, below[LT_WINDOW_BOUNDS] = {0}; /* at d^2 = t; below: at d^2 < t */
  for (int64_t i = 0; i < w->n; i++) {
    int dx = w->x[i] - qx, dy = w->y[i] - qy, dz = w->z[i] - qz;
    d2[i] = dx * dx + dy * dy + dz * dz;
    if (d2[i] < bound) at[d2[i]]++;
  }
  int t = 0;
  for (int64_t seen = at[0]; seen < want; seen += at[t]) {
    if (++t == bound) return -1; /* the want-th lies at d^2 >= bound: not decided here */
    below[t] = seen;
  }
  for (int s = 0; s <= t; s++) at[s] = below[s]; /* now: where the next at d^2 = s goes */
  for (int64_t i = w->n - 1; i >= 0; i--) { /* by ascending row */
    if (d2[i] > t || at[d2[i]] >= want) continue;
    int64_t p = at[d2[i]]++;
    row[p] = w->row[i], dist[p] = (float)d2[i];
  }
  return want;
}
