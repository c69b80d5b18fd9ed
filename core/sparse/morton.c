/* Morton (Z-order) codes and the orders of coordinate rows (lattice/sparse_order.h):
 * Morton and Hilbert by a 63-bit code of x, y, z, lexicographic by the
 * coordinates themselves (any int32). The order is a least-significant-digit radix
 * sort of the 96-bit keys (batch, code), one byte per pass, carrying the row along: stable, so equal keys keep their
 * row order, and passes whose byte is the same for every row are skipped (coordinates of one scene share their high
 * bits); lex is two such sorts, by z and then by (batch, x, y). Plain sequential passes: their result is the same for
 * any thread count by construction. */
#include <string.h>
#include "lattice/sparse_order.h"
#include "sparse/internal.h"

#define OFFSET  (1u << 20)
#define DIGITS  12 /* 8 bytes of code, then 4 of batch */
#define BUCKETS 256

/* The low 21 bits of v spread to every third bit. */
static uint64_t spread(uint64_t v) {
  v &= 0x1fffff;
  v = (v | v << 32) & 0x1f00000000ffffull;
  v = (v | v << 16) & 0x1f0000ff0000ffull;
  v = (v | v << 8) & 0x100f00f00f00f00full;
  v = (v | v << 4) & 0x10c30c30c30c30c3ull;
  v = (v | v << 2) & 0x1249249249249249ull;
  return v;
}

uint64_t lt_morton_encode(int32_t x, int32_t y, int32_t z) {
  return spread((uint32_t)(x + (int32_t)OFFSET)) | spread((uint32_t)(y + (int32_t)OFFSET)) << 1 |
         spread((uint32_t)(z + (int32_t)OFFSET)) << 2;
}

/* The 3D Hilbert index of (x, y, z) offset to 21 bits: Skilling's
 * transposition (J. Skilling, "Programming the Hilbert curve", AIP Conf.
 * Proc. 707, 2004), whose bits read x, y, z from the most significant. */
uint64_t lt_hilbert_encode(int32_t x, int32_t y, int32_t z) {
  uint32_t v[3] = {(uint32_t)(x + (int32_t)OFFSET), (uint32_t)(y + (int32_t)OFFSET), (uint32_t)(z + (int32_t)OFFSET)};
  for (uint32_t q = 1u << 20; q > 1; q >>= 1) { /* undo the excess work */
    uint32_t p = q - 1;
    for (int i = 0; i < 3; i++)
      if (v[i] & q) {
        v[0] ^= p;
      } else {
        uint32_t t = (v[0] ^ v[i]) & p;
        v[0] ^= t, v[i] ^= t;
      }
  }
  for (int i = 1; i < 3; i++) v[i] ^= v[i - 1]; /* Gray encode */
  uint32_t t = 0;
  for (uint32_t q = 1u << 20; q > 1; q >>= 1)
    if (v[2] & q) t ^= q - 1;
  for (int i = 0; i < 3; i++) v[i] ^= t;
  uint64_t h = 0;
  for (int b = 20; b >= 0; b--)
    for (int i = 0; i < 3; i++) h = h << 1 | (v[i] >> b & 1);
  return h;
}

/* v with its sign bit flipped: unsigned order is signed order. */
static uint32_t ordered(int32_t v) { return (uint32_t)v ^ 0x80000000u; }

static uint64_t encode(lt_coord_order kind, const int32_t *r) {
  return kind == LT_ORDER_MORTON ? lt_morton_encode(r[1], r[2], r[3]) : lt_hilbert_encode(r[1], r[2], r[3]);
}

/* A contiguous int32 (N, 4) copy of coords (or coords itself); every x, y, z
 * in the Morton range when `ranged`. */
static lt_status staged_coords(lt_ctx *ctx, lt_tensor **out, lt_tensor *coords, int ranged, const char *op) {
  *out = NULL;
  lt_status st = lt__coords_check_rows(ctx, coords, op);
  if (!st) st = lt__as_contig(ctx, out, coords, LT_INT32);
  if (st || !ranged) return st;
  const int32_t *r = lt_tensor_data(*out);
  for (int64_t i = 0; i < coords->shape[0]; i++)
    for (int a = 1; a < 4; a++)
      if (r[i * 4 + a] < LT_MORTON_MIN || r[i * 4 + a] > LT_MORTON_MAX) {
        lt_tensor_release(*out), *out = NULL;
        return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: row %lld has %c = %d, outside the Morton range [%d, %d]", op,
                           (long long)i + 1, "xyz"[a - 1], r[i * 4 + a], LT_MORTON_MIN, LT_MORTON_MAX);
      }
  return LT_OK;
}

lt_status lt_morton_codes(lt_ctx *ctx, lt_tensor **codes, lt_tensor *coords, const char *op) {
  *codes = NULL;
  lt_tensor *c;
  lt_status st = staged_coords(ctx, &c, coords, 1, op);
  if (st) return st;
  int64_t n = c->shape[0];
  st = lt_tensor_new(ctx, codes, LT_INT64, 1, &n);
  const int32_t *r = lt_tensor_data(c);
  for (int64_t i = 0; !st && i < n; i++)
    ((int64_t *)lt_tensor_data(*codes))[i] = (int64_t)lt_morton_encode(r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3]);
  lt_tensor_release(c);
  return st;
}

/* ---- the radix sort ---- */

typedef struct item {
  uint64_t code;
  uint32_t batch; /* the batch with its sign bit flipped: unsigned order is signed order */
  int32_t row;
} item;

static unsigned digit(const item *it, int d) {
  return d < 8 ? (unsigned)(it->code >> (8 * d)) & 0xff : (it->batch >> (8 * (d - 8))) & 0xff;
}

/* One stable pass by digit d from src into dst, with that digit's counts. */
static void radix_pass(item *dst, const item *src, int64_t n, int d, const int64_t *count) {
  int64_t start[BUCKETS], total = 0;
  for (int b = 0; b < BUCKETS; b++) start[b] = total, total += count[b];
  for (int64_t i = 0; i < n; i++) dst[start[digit(src + i, d)]++] = src[i];
}

/* Sorts items[0..n) by (batch, code), tmp (n) being the other buffer;
 * returns the buffer that holds the result. */
static item *radix_sort(item *items, item *tmp, int64_t n) {
  int64_t count[DIGITS][BUCKETS] = {{0}}; /* 24 KB: every digit's counts in one read of the items */
  for (int64_t i = 0; i < n; i++)
    for (int d = 0; d < DIGITS; d++) count[d][digit(items + i, d)]++;
  for (int d = 0; d < DIGITS; d++) {
    if (n == 0 || count[d][digit(items, d)] == n) continue; /* one value for every row: nothing to order */
    radix_pass(tmp, items, n, d, count[d]);
    item *t = items;
    items = tmp, tmp = t;
  }
  return items;
}

/* The rows of r (n, 4) in (batch, x, y, z) order, equal rows by row, for
 * any int32: sorted by z, then stably by (batch, x, y), which keeps the z
 * order within each (batch, x, y). buf holds 2n items; returns the sorted ones. */
static const item *lex_sort(item *buf, const int32_t *r, int64_t n) {
  for (int64_t i = 0; i < n; i++) buf[i] = (item){ordered(r[i * 4 + 3]), 0, (int32_t)i};
  item *by_z = radix_sort(buf, buf + n, n), *other = by_z == buf ? buf + n : buf;
  for (int64_t i = 0; i < n; i++) {
    const int32_t *p = r + (int64_t)by_z[i].row * 4;
    by_z[i] = (item){(uint64_t)ordered(p[1]) << 32 | ordered(p[2]), ordered(p[0]), by_z[i].row};
  }
  return radix_sort(by_z, other, n);
}

lt_status lt_morton_order(lt_ctx *ctx, lt_tensor **order, lt_tensor *coords, const char *op) {
  return lt_coords_order(ctx, order, coords, LT_ORDER_MORTON, op);
}

lt_status lt_coords_order(lt_ctx *ctx, lt_tensor **order, lt_tensor *coords, lt_coord_order kind, const char *op) {
  *order = NULL;
  if ((unsigned)kind >= LT_ORDERS) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown order", op);
  lt_tensor *c;
  lt_status st = staged_coords(ctx, &c, coords, kind != LT_ORDER_LEX, op);
  if (st) return st;
  int64_t n = c->shape[0];
  size_t bytes = (size_t)(2 * n + 1) * sizeof(item);
  item *buf = lt_ctx_alloc(ctx, bytes);
  if (!buf) st = lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  if (!st) st = lt_tensor_new(ctx, order, LT_INT32, 1, &n);
  if (!st) {
    const int32_t *r = lt_tensor_data(c);
    const item *sorted;
    if (kind == LT_ORDER_LEX) {
      sorted = lex_sort(buf, r, n);
    } else {
      for (int64_t i = 0; i < n; i++) buf[i] = (item){encode(kind, r + i * 4), ordered(r[i * 4]), (int32_t)i};
      sorted = radix_sort(buf, buf + n, n);
    }
    int32_t *o = lt_tensor_data(*order);
    for (int64_t i = 0; i < n; i++) o[i] = sorted[i].row;
  }
  if (buf) lt_ctx_free(ctx, buf, bytes);
  lt_tensor_release(c);
  return st;
}

/* ---- an order for the convolution kernels ---- */

/* Rows lie scattered when more than one pair in SCATTERED of neighbouring
 * rows steps back in (batch, Morton code of the 4x4x4 brick): a voxelizer's
 * or a conv's output order (children of a row next to each other) steps
 * back almost never, a shuffled one every other row. */
#define SCATTERED 64

static int in_range(const int32_t *r) {
  for (int a = 1; a < 4; a++)
    if (r[a] < LT_MORTON_MIN || r[a] > LT_MORTON_MAX) return 0;
  return 1;
}

static int steps_back(const int32_t *p, const int32_t *q) {
  if (p[0] != q[0]) return q[0] < p[0];
  return lt_morton_encode(q[1], q[2], q[3]) >> 6 < lt_morton_encode(p[1], p[2], p[3]) >> 6;
}

lt_status lt__morton_order_if_scattered(lt_ctx *ctx, lt_tensor **order, const lt_coords *c, const char *op) {
  *order = NULL;
  const int32_t *r = lt_tensor_data(c->rows);
  int64_t back = 0;
  for (int64_t i = 0; i < c->n; i++) {
    if (!in_range(r + i * 4)) return LT_OK; /* no Morton code: the rows stay as they are */
    if (i > 0) back += steps_back(r + (i - 1) * 4, r + i * 4);
  }
  if (back * SCATTERED <= c->n) return LT_OK;
  return lt_morton_order(ctx, order, c->rows, op);
}
