/* Quantizing points onto a voxel lattice (lattice/sparse_voxel.h): the
 * distinct voxels first seen first, each point's voxel, and each voxel's
 * points, in parallel and the same for any thread count.
 *
 * The points are cut into `chunks` and their keys into `parts` by the high
 * bits of key_digest (both counts depend on N only). A point's
 * cell comes from the vector kernel of kernels/voxel_cells.h, a block of
 * points at a time, in A and again in B (recomputing it is cheaper than
 * storing and reading it back); its part is noted by A (two bytes a point:
 * B then neither hashes its key nor waits on the digest for its cursor,
 * which made B a third faster):
 *   A  per chunk, count each part's keys, note each point's part and find
 *      the first bad point;
 *   B  per chunk, scatter (key, point, features) into
 *      the parts, in point order (a counting sort: prefix sums of A's counts
 *      give every chunk its cursors), so that C reads the features as a
 *      stream, not by gathers;
 *   C  per part, the distinct keys through the coordinate hash (sparse/
 *      internal.h, sized for the part's points: short probes) into the
 *      part's own rows, first seen first (so each part's first points
 *      ascend), each voxel's point count, and (voxelize) its features
 *      reduced in point order;
 *   D  per chunk, the voxels whose first point it holds, in first-seen
 *      order (their ids: a prefix sum over chunks): each part's share of
 *      them, noted by C, ranked by first point in a bitmap of a window of
 *      the chunk's points, their rows, first points, counts and features
 *      read in each part's order and written at their ids (no array over
 *      the points marks the first ones: its zeroing, C's scattered writes
 *      to it and D's scans of it were ~30 MB of memory traffic for 1M
 *      points);
 *   E  per chunk, each of its points' voxel id in point order (B's cursors
 *      replayed from the noted parts give each point's position), only when
 *      the caller keeps it (voxelize needs it for its backward only).
 * A part holds ~131072 points: B's stores miss the more, the more parts
 * there are (a part is four streams of stores per chunk), C's rows and hash
 * the fewer. Against parts of 65536, B takes 0.6 of the time with two
 * threads and C 1.2 to 1.27 times, 0.85 to 0.89 of the build in all (call
 * by call; one thread: 0.87 to 1.06); parts of 262144 were slower.
 * Every phase hands out its chunks or parts one at a time (each writes
 * only its own entries, so any thread may take any): on a shared machine a
 * thread that loses its core for a while no longer holds the other at the
 * phase's end (0.93 to 0.98 of the time, call by call). */
#include <math.h>
#include <string.h>
#include "kernels/key_digest.h"
#include "kernels/voxel_cells.h"
#include "runtime/context.h"
#include "runtime/parallel.h"
#include "sparse/internal.h"

#define PART_POINTS  131072
#define MAX_PARTS    1024
#define CHUNK_POINTS 16384
#define MAX_CHUNKS   64
#define BLOCK        256   /* points whose cells are computed at once */
#define WINDOW       65536 /* points D ranks at once (a thread's 8 KB bitmap and 4 KB of counts) */

typedef struct plan {
  int64_t n;
  int parts, pbits, chunks, threads;
  const float *p;
  const lt_tensor *points; /* the caller's, for the messages (p is its float32 copy) */
  const int64_t *batch;    /* NULL: all 0 */
  const lt_voxel_grid *g;
  lt_cell_grid grid; /* g's with 1 / size where size is a power of two (the product is the quotient) */
  lt_isa isa;
  const char *feats; /* NULL (quantize only), or (n, c) rows of `fsize` bytes, float32 or float64 */
  int64_t c;
  size_t fsize;
  int f64;
  lt_voxel_reduction red;
  int keep; /* LT__VOXELS_INVERSE, LT__VOXELS_ARG: what the caller needs besides the voxels */
} plan;

/* D's first points of a window of points, as bits, and the marks before each word. */
typedef struct window_ranks {
  uint64_t bits[WINDOW / 64];
  int32_t before[WINDOW / 64];
} window_ranks;

/* The scratch of one build, carved from one block (bytes per point: 34 + slots). */
typedef struct scratch {
  int32_t *bkey;                        /* (n, 4): keys by part, then each part's distinct rows */
  int32_t *bidx, *lj, *vmap, *end;      /* (n) each; bidx: points by part, then each voxel's first */
  uint16_t *part;                       /* (n): each point's part (parts <= MAX_PARTS), from A for B and E */
  char *bfeat;                          /* (n, c) features by part, then each part's reduced rows */
  int32_t *barg;                        /* (n, c) for max: each reduced row's first point holding it */
  uint32_t *slots;                      /* every part's hash */
  int64_t *hist, *pstart, *hstart, *pm; /* (chunks, parts), (parts + 1) x 2, (parts) */
  int64_t *bad;                         /* (chunks): first bad point of each chunk, or -1 */
  int64_t *share;                       /* (chunks + 1, parts): D's start of each chunk in each part's voxels */
  window_ranks *ranks;                  /* (threads): D's marks of a window */
} scratch;

static int64_t chunk_lo(const plan *q, int64_t k) { return q->n * k / q->chunks; }

/* A feature row copied; the common widths with a constant size, so that the
 * copy is a few moves rather than a call per point. */
static inline void copy_row(char *dst, const char *src, size_t fsize) {
  if (fsize == 16)
    memcpy(dst, src, 16);
  else if (fsize == 32)
    memcpy(dst, src, 32);
  else
    memcpy(dst, src, fsize);
}

/* The cells of the points [lo, lo + n), n <= BLOCK, in cell (n, 3); the
 * first point without one, or n. */
static inline int64_t block_cells(const plan *q, int32_t *cell, int64_t lo, int64_t n) {
  return lt__voxel_cells(q->isa, cell, q->p + lo * 3, n, &q->grid);
}

/* The keys of the points [lo, lo + n) from their cells: batch, then cell. */
static inline void block_keys(const plan *q, int32_t *key, int64_t lo, int64_t n, const int32_t *cell) {
  for (int64_t j = 0; j < n; j++) {
    key[j * 4] = q->batch ? (int32_t)q->batch[lo + j] : 0;
    memcpy(key + j * 4 + 1, cell + j * 3, 12);
  }
}

static inline int64_t part_of(const plan *q, uint64_t digest) {
  return q->pbits ? (int64_t)(digest >> (64 - q->pbits)) : 0;
}

/* A: per chunk, the keys of each part, and the first bad point. */
static void count_parts(const plan *q, scratch *s) {
  LT_PARALLEL_FOR_DYNAMIC(q->threads, k, q->chunks, {
    int64_t *h = s->hist + k * q->parts, hi = chunk_lo(q, k + 1), bad = -1;
    int32_t cell[BLOCK * 3], key[BLOCK * 4];
    uint64_t dig[BLOCK];
    uint16_t *part = s->part;
    memset(h, 0, (size_t)q->parts * sizeof *h);
    for (int64_t lo = chunk_lo(q, k); lo < hi && bad < 0; lo += BLOCK) {
      int64_t n = hi - lo < BLOCK ? hi - lo : BLOCK, good = block_cells(q, cell, lo, n);
      if (good < n) bad = lo + good;
      block_keys(q, key, lo, good, cell);
      lt__key_digests(q->isa, dig, key, good);
      for (int64_t j = 0; j < good; j++) {
        int64_t p = part_of(q, dig[j]);
        h[p]++;
        part[lo + j] = (uint16_t)p;
      }
    }
    s->bad[k] = bad;
  });
}

/* Each part's first position (pstart) and hash slots (hstart); hist becomes
 * each chunk's cursor in each part. */
static void plan_parts(const plan *q, scratch *s) {
  int64_t pos = 0, slot = 0;
  for (int p = 0; p < q->parts; p++) {
    s->pstart[p] = pos;
    int64_t count = 0;
    for (int k = 0; k < q->chunks; k++) {
      int64_t c = s->hist[k * q->parts + p];
      s->hist[k * q->parts + p] = pos + count;
      count += c;
    }
    pos += count;
    s->hstart[p] = slot;
    int64_t cap = 16;
    while (cap < 2 * count) cap *= 2; /* load at most 1/2, as lt__coord_hash_alloc */
    slot += cap;
  }
  s->pstart[q->parts] = pos, s->hstart[q->parts] = slot;
}

/* The lines of B's three streams into a part that its next entries will
 * reach, fetched for writing 8 entries (two lines of keys) ahead: B's stores
 * miss the caches (the parts far exceed L3, and a part's streams are met
 * once in ~parts points) and would otherwise fill the store queue, each
 * waiting for its line, which the profile showed as most of B's time. */
static inline void scatter_ahead(const scratch *s, int64_t pos, size_t fsize) {
  int64_t a = pos + 8; /* past the scratch's end: harmless, fetches never fault */
  __builtin_prefetch(s->bkey + a * 4, 1);
  __builtin_prefetch(s->bidx + a, 1);
  for (size_t b = 0; b < fsize; b += 64) __builtin_prefetch(s->bfeat + a * (int64_t)fsize + b, 1);
}

/* B for chunk k; fsize a constant where inlined (0: no features, or 16),
 * as C's loop. */
static inline __attribute__((always_inline)) void scatter_chunk(const plan *q, const scratch *s, int64_t k,
                                                                size_t fsize) {
  int64_t *cur = s->hist + k * q->parts, hi = chunk_lo(q, k + 1);
  int32_t *bkey = s->bkey, *bidx = s->bidx, cell[BLOCK * 3], key[BLOCK * 4];
  for (int64_t lo = chunk_lo(q, k); lo < hi; lo += BLOCK) {
    int64_t n = hi - lo < BLOCK ? hi - lo : BLOCK;
    block_cells(q, cell, lo, n);
    block_keys(q, key, lo, n, cell);
    for (int64_t j = 0; j < n; j++) {
      int64_t i = lo + j, pos = cur[s->part[i]]++;
      scatter_ahead(s, pos, fsize);
      memcpy(bkey + pos * 4, key + j * 4, 16);
      bidx[pos] = (int32_t)i;
      if (fsize) copy_row(s->bfeat + pos * fsize, q->feats + i * fsize, fsize);
    }
  }
}

/* B: (key, point) into the parts A noted, in point order within each part. */
static void scatter_parts(const plan *q, scratch *s) {
  size_t fsize = q->feats ? q->fsize : 0;
  LT_PARALLEL_FOR_DYNAMIC(q->threads, k, q->chunks, {
    if (!fsize)
      scatter_chunk(q, s, k, 0);
    else if (fsize == 16)
      scatter_chunk(q, s, k, 16);
    else
      scatter_chunk(q, s, k, fsize);
  });
}

/* Reduced row j of a part takes the row of its next point i. A float32 sum
 * adds in float: the double sum rounded to float is the same value (53 >=
 * 2 * 24 + 2 bits: the double rounding is innocuous), so it vectorizes. */
static inline void combine(const plan *q, char *acc, int32_t *arg, const char *row, int32_t i) {
  if (!q->f64 && q->red != LT_VOXEL_MAX) {
    float *a = (float *)acc;
    const float *u = (const float *)row;
    for (int64_t ch = 0; ch < q->c; ch++) a[ch] += u[ch];
    return;
  }
  for (int64_t ch = 0; ch < q->c; ch++) {
    double u = q->f64 ? ((const double *)row)[ch] : ((const float *)row)[ch];
    double a = q->f64 ? ((double *)acc)[ch] : ((float *)acc)[ch];
    if (q->red != LT_VOXEL_MAX)
      a += u;
    else if (u != u ? a == a : u > a) { /* NaN wins; among equal maxima the first point stays */
      a = u;
      if (arg) arg[ch] = i;
    } else {
      continue;
    }
    if (q->f64)
      ((double *)acc)[ch] = a;
    else
      ((float *)acc)[ch] = (float)a;
  }
}

/* A float32 row added to the sum acc, four lanes at a time (one vector add;
 * the common widths are multiples of four) where a loop over c compiled to
 * a vectorized loop set up again for every point. */
static inline void add_f32(float *acc, const float *row, int64_t c) {
  int64_t ch = 0;
  for (; ch + 4 <= c; ch += 4)
    for (int l = 0; l < 4; l++) acc[ch + l] += row[ch + l];
  for (; ch < c; ch++) acc[ch] += row[ch];
}

#define RING 128 /* C's digests of the keys ahead */

/* The loop of C; `shape` a constant where inlined: FEATS_NONE (quantize),
 * FEATS_SUM4 (a float32 sum or mean of 4 channels, as voxelize's points
 * mostly carry) or FEATS_ANY, so that the common cases compile to their own
 * loops, without the generic one's tests and loops over channels. */
enum { FEATS_NONE, FEATS_SUM4, FEATS_ANY };

static inline __attribute__((always_inline)) int64_t unique_loop(const plan *q, const scratch *s, int64_t p,
                                                                 uint32_t *slots, int64_t cap, int shape) {
  int64_t lo = s->pstart[p], hi = s->pstart[p + 1], P = q->parts, chunk = 0, next = chunk_lo(q, 1);
  int64_t *share = s->share + p;
  memset(slots, 0, (size_t)cap * sizeof *slots);
  share[0] = 0;
  lt_coord_hash h = {slots, (uint64_t)cap - 1, 0};
  int32_t *rows = s->bkey + lo * 4, *end = s->end + lo, *bidx = s->bidx + lo, *lj = s->lj + lo;
  int inverse = q->keep & LT__VOXELS_INVERSE; /* lj only for E */
  size_t fsize = shape == FEATS_SUM4 ? 16 : q->fsize;
  char *feat = shape != FEATS_NONE ? s->bfeat + lo * fsize : NULL;
  int32_t *arg = shape == FEATS_ANY && q->keep & LT__VOXELS_ARG && q->red == LT_VOXEL_MAX ? s->barg + lo * q->c : NULL;
  int sum32 = shape == FEATS_SUM4 || (shape == FEATS_ANY && !q->f64 && q->red != LT_VOXEL_MAX);
  int64_t m = 0, n = hi - lo, c = shape == FEATS_SUM4 ? 4 : q->c;
  uint64_t dig[RING];
  lt__key_digests(q->isa, dig, rows, n < RING ? n : RING);
  for (int64_t k = 0; k < n; k++) {
    if (k && !(k & 63) && k + 64 < n)
      lt__key_digests(q->isa, dig + ((k + 64) & (RING - 1)), rows + (k + 64) * 4, n - k - 64 < 64 ? n - k - 64 : 64);
    if (k + 16 < n) __builtin_prefetch(slots + (dig[(k + 16) & (RING - 1)] & h.mask));
    int32_t key[4];
    memcpy(key, rows + k * 4, 16);
    int64_t before = m, j = lt__coord_hash_insert_at(&h, rows, &m, key, dig[k & (RING - 1)]);
    if (inverse) lj[k] = (int32_t)(lo + j);
    if (m > before) { /* a new voxel */
      end[j] = 1;
      if (feat && j != k) copy_row(feat + j * fsize, feat + k * fsize, fsize);
      for (int64_t ch = 0; arg && ch < c; ch++) arg[j * c + ch] = bidx[k];
      for (; bidx[k] >= next; next = chunk_lo(q, chunk + 1)) share[++chunk * P] = j;
      bidx[j] = bidx[k];
      continue;
    }
    end[j]++;
    if (sum32)
      add_f32((float *)(feat + j * fsize), (const float *)(feat + k * fsize), c);
    else if (feat)
      combine(q, feat + j * fsize, arg ? arg + j * c : NULL, feat + k * fsize, bidx[k]);
  }
  while (chunk < q->chunks) share[++chunk * P] = m;
  return m;
}

/* C for one part: its distinct rows (compacted in place over its keys: row j
 * is written once key j + 1 or later has been read; the reduced features and
 * the first points the same way over the feature rows and the points), each
 * point's voxel as a position lo + j in that layout (lj), each voxel's point
 * count (end, at its position), and where each chunk's voxels begin among
 * them (share: those whose first point it holds). The digests come from
 * the vector kernel 64 keys at a time, 64 to 128 keys ahead (the rows
 * compacted over the keys reach key k at most: the keys ahead are unread);
 * each key's slot is fetched 16 keys ahead, as its probe would otherwise
 * wait on L2. */
static int64_t unique_part(const plan *q, const scratch *s, int64_t p, uint32_t *slots, int64_t cap) {
  if (!q->feats) return unique_loop(q, s, p, slots, cap, FEATS_NONE);
  if (q->c == 4 && !q->f64 && q->red != LT_VOXEL_MAX) return unique_loop(q, s, p, slots, cap, FEATS_SUM4);
  return unique_loop(q, s, p, slots, cap, FEATS_ANY);
}

/* D1: as each chunk's first voxel id (in bad), the voxels before it; returns M. */
static int64_t count_shares(const plan *q, scratch *s) {
  int64_t total = 0;
  for (int k = 0; k < q->chunks; k++) {
    const int64_t *share = s->share + k * q->parts;
    int64_t c = 0;
    for (int p = 0; p < q->parts; p++) c += share[q->parts + p] - share[p];
    s->bad[k] = total, total += c;
  }
  return total;
}

/* The outputs: rows (M, 4), first points, counts, features (M, c) and arg for max, inverse (N). */
typedef struct outputs {
  int32_t *rows, *index, *cnt, *inverse, *arg;
  char *y;
} outputs;

/* Voxel v (at position pos of the parts' layout) written out. */
static inline void emit_voxel(const plan *q, const scratch *s, const outputs *o, int64_t v, int64_t pos) {
  int32_t n = s->end[pos];
  memcpy(o->rows + v * 4, s->bkey + pos * 4, 16);
  o->cnt[v] = n;
  if (!q->feats) return;
  char *y = o->y + v * (int64_t)q->fsize;
  copy_row(y, s->bfeat + pos * (int64_t)q->fsize, q->fsize);
  if (o->arg) memcpy(o->arg + v * q->c, s->barg + pos * q->c, (size_t)q->c * 4);
  if (q->red != LT_VOXEL_MEAN || n == 1) return;
  if (!q->f64) {
    float *f = (float *)y, d = (float)n;
    int64_t ch = 0;
    for (; ch + 4 <= q->c; ch += 4) /* one vector division, as add_f32 */
      for (int l = 0; l < 4; l++) f[ch + l] /= d;
    for (; ch < q->c; ch++) f[ch] /= d;
    return;
  }
  for (int64_t ch = 0; ch < q->c; ch++) ((double *)y)[ch] /= n;
}

/* D2: per chunk, a window of its points at a time: the first points of the
 * voxels each part has there marked in a bitmap (they are each part's
 * next voxels, as the share advances), then every such voxel written out
 * at its rank among the marks, a part at a time: the parts' rows are read
 * in order and the writes stay within the window's ids (in L2), where
 * walking the marks in point order read every voxel's row, count and
 * features from a random part (D takes 0.57 to 0.58 of the time, one
 * thread and two, call by call). vmap[pos] = the id. */
static void emit_voxels(const plan *q, scratch *s, const outputs *o) {
  LT_PARALLEL_FOR_DYNAMIC(q->threads, k, q->chunks, {
    int64_t v = s->bad[k], hi = chunk_lo(q, k + 1), next[MAX_PARTS], last[MAX_PARTS];
    window_ranks *r = s->ranks + lt__thread_id();
    memcpy(next, s->share + k * q->parts, (size_t)q->parts * sizeof *next);
    const int64_t *stop = s->share + (k + 1) * q->parts;
    for (int64_t lo = chunk_lo(q, k); lo < hi; lo += WINDOW) {
      int64_t n = hi - lo < WINDOW ? hi - lo : WINDOW, words = (n + 63) / 64, marks = 0;
      memset(r->bits, 0, (size_t)words * sizeof *r->bits);
      for (int p = 0; p < q->parts; p++) {
        const int32_t *first = s->bidx + s->pstart[p];
        int64_t j = next[p];
        for (; j < stop[p] && first[j] < lo + n; j++) {
          int64_t b = first[j] - lo;
          r->bits[b >> 6] |= 1ull << (b & 63);
        }
        last[p] = j;
      }
      for (int64_t w = 0; w < words; w++) r->before[w] = (int32_t)marks, marks += __builtin_popcountll(r->bits[w]);
      for (int p = 0; p < q->parts; p++) {
        int64_t base = s->pstart[p];
        const int32_t *first = s->bidx + base;
        for (int64_t j = next[p]; j < last[p]; j++) {
          int64_t b = first[j] - lo;
          int64_t id = v + r->before[b >> 6] + __builtin_popcountll(r->bits[b >> 6] & ((1ull << (b & 63)) - 1));
          o->index[id] = (int32_t)(lo + b);
          emit_voxel(q, s, o, id, base + j);
          if (o->inverse) s->vmap[base + j] = (int32_t)id;
        }
        next[p] = last[p];
      }
      v += marks;
    }
  });
}

/* E: each point's voxel id, per chunk in point order: B's cursors replayed
 * from the parts A noted give each point's position, whose voxel (lj) is
 * read as one stream per part and its id from vmap (the parts' voxels, in
 * cache), the ids written in order (scattered from the parts, each would
 * miss a line). After B, a chunk's cursors start where the chunk before
 * left its own. */
static void emit_inverse(const plan *q, const scratch *s, int32_t *inverse) {
  LT_PARALLEL_FOR_DYNAMIC(q->threads, k, q->chunks, {
    int64_t cur[MAX_PARTS], hi = chunk_lo(q, k + 1);
    const int32_t *lj = s->lj, *vmap = s->vmap;
    const uint16_t *part = s->part;
    memcpy(cur, k ? s->hist + (k - 1) * q->parts : s->pstart, (size_t)q->parts * sizeof *cur);
    for (int64_t i = chunk_lo(q, k); i < hi; i++) inverse[i] = vmap[lj[cur[part[i]]++]];
  });
}

/* ---- checks and staging ---- */

static lt_status check_grid(lt_ctx *ctx, const lt_voxel_grid *g, const char *op) {
  for (int a = 0; a < 3; a++) {
    if (!(g->size[a] > 0) || !isfinite(g->size[a]))
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: voxel_size must be positive and finite, got %g on %c", op,
                         (double)g->size[a], "xyz"[a]);
    if (!isfinite(g->origin[a]))
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: origin must be finite, got %g on %c", op, (double)g->origin[a],
                         "xyz"[a]);
  }
  return LT_OK;
}

lt_status lt__points_stage(lt_ctx *ctx, lt_tensor **pts, lt_tensor **bat, lt_tensor *points, lt_tensor *batch,
                           const lt_voxel_grid *g, const char *op) {
  char s[LT_SHAPE_STR_MAX];
  *pts = *bat = NULL;
  lt_status st = check_grid(ctx, g, op);
  if (st) return st;
  if (!lt_dtype_info(points->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: points must be a float tensor, got %s", op,
                       lt_dtype_info(points->dtype)->name);
  if (points->ndim != 2 || points->shape[1] != 3)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: points must have shape {N,3}, got %s", op,
                       lt__shape_str(s, sizeof s, points->ndim, points->shape));
  int64_t n = points->shape[0];
  if (batch) {
    lt_dtype dt = batch->dtype;
    if (dt != LT_INT32 && dt != LT_INT64 && dt != LT_UINT8)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: batch must be an integer tensor, got %s", op, lt_dtype_info(dt)->name);
    if (batch->ndim != 1 || batch->shape[0] != n)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: batch has shape %s, expected {%lld} (one per point)", op,
                         lt__shape_str(s, sizeof s, batch->ndim, batch->shape), (long long)n);
    st = lt__as_contig(ctx, bat, batch, LT_INT64);
    const int64_t *b = st ? NULL : lt_tensor_data(*bat);
    for (int64_t i = 0; !st && i < n; i++)
      if (b[i] < 0 || b[i] > INT32_MAX)
        st = lt_ctx_fail(ctx, LT_ERR_ARG, "%s: batch[%lld] is %lld; batch indices are in 0..%d", op, (long long)i + 1,
                         (long long)b[i], INT32_MAX);
  }
  if (!st) st = lt__as_contig(ctx, pts, points, LT_FLOAT32);
  if (st) lt_tensor_release(*bat), *bat = NULL;
  return st;
}

lt_status lt__point_not_finite(lt_ctx *ctx, const lt_tensor *points, int64_t i, int a, const char *op) {
  double given = lt_tensor_get(points, i * 3 + a);
  if (isfinite(given))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: point %lld has %c = %g, beyond float32 (points are taken as float32)", op,
                       (long long)i + 1, "xyz"[a], given);
  return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: point %lld has a non-finite %c (%g)", op, (long long)i + 1, "xyz"[a], given);
}

static lt_status bad_point(lt_ctx *ctx, const plan *q, int64_t i, const char *op) {
  const float *p = q->p + i * 3;
  for (int a = 0; a < 3; a++)
    if (!isfinite(p[a])) return lt__point_not_finite(ctx, q->points, i, a, op);
  for (int a = 0; a < 3; a++) {
    float u = (p[a] - q->g->origin[a]) / q->g->size[a];
    if (!(floorf(u) >= -2147483648.0f && floorf(u) < 2147483648.0f)) /* %.10g: every digit of a float32 near 2^31 */
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: point %lld falls outside the int32 voxel lattice (%c: %.10g voxels)", op,
                         (long long)i + 1, "xyz"[a], (double)u);
  }
  return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: point %lld cannot be quantized", op, (long long)i + 1);
}

/* ---- the build ---- */

/* g with 1 / size where size is a power of two (the product is then the quotient), else 0. */
static void cell_grid(lt_cell_grid *cg, const lt_voxel_grid *g) {
  memcpy(cg->size, g->size, sizeof cg->size), memcpy(cg->origin, g->origin, sizeof cg->origin);
  for (int a = 0; a < 3; a++) {
    int e;
    float m = frexpf(g->size[a], &e); /* size = m 2^e, m = 1/2 for a power of two */
    cg->inv[a] = m == 0.5f && e - 1 > -126 && e - 1 < 127 ? ldexpf(1.0f, 1 - e) : 0.0f;
  }
}

static int log2_parts(int64_t n) {
  int b = 0;
  while (b < 10 && ((int64_t)PART_POINTS << b) < n) b++;
  return b; /* MAX_PARTS = 1 << 10 */
}

static lt_status reserve(lt_ctx *ctx, lt__voxels *v, scratch *s, const plan *q, const char *op) {
  int64_t n = q->n > 0 ? q->n : 1, P = q->parts, K = q->chunks, W = q->threads;
  size_t slots = (size_t)(4 * n + 16 * P); /* sum of caps <= 4 count + 16 per part */
  size_t fbytes = q->feats ? (size_t)n * q->fsize : 0,
         abytes = q->feats && q->red == LT_VOXEL_MAX && q->keep & LT__VOXELS_ARG ? (size_t)(n * q->c) * 4 : 0;
  size_t tables = (size_t)(K * P + 3 * (P + 1) + K + (K + 1) * P) * 8;
  v->bytes = tables + (size_t)W * sizeof(window_ranks) + (size_t)n * 34 + slots * 4 + fbytes + abytes + 16;
  char *b = lt_ctx_alloc(ctx, v->bytes);
  if (!b) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for quantizing %lld points", op, (long long)q->n);
  v->scratch = b;
  s->hist = (int64_t *)b, s->pstart = s->hist + K * P, s->hstart = s->pstart + P + 1, s->pm = s->hstart + P + 1;
  s->bad = s->pm + P + 1, s->share = s->bad + K;
  s->ranks = (window_ranks *)(s->share + (K + 1) * P);
  s->bkey = (int32_t *)(s->ranks + W);
  int32_t **cols[] = {&s->bidx, &s->lj, &s->vmap, &s->end};
  int32_t *at = s->bkey + 4 * n;
  for (size_t c = 0; c < sizeof cols / sizeof *cols; c++) *cols[c] = at, at += n;
  s->slots = (uint32_t *)at;
  s->part = (uint16_t *)(s->slots + slots);
  s->bfeat = (char *)(s->part + n) + (8 - (uintptr_t)(s->part + n) % 8) % 8; /* double-aligned */
  s->barg = (int32_t *)(s->bfeat + fbytes);
  return LT_OK;
}

static lt_status run(lt_ctx *ctx, lt__voxels *v, const plan *q, scratch *s, const char *op) {
  count_parts(q, s);
  for (int k = 0; k < q->chunks; k++)
    if (s->bad[k] >= 0) return bad_point(ctx, q, s->bad[k], op);
  plan_parts(q, s);
  scatter_parts(q, s);
  LT_PARALLEL_FOR_DYNAMIC(q->threads, p, q->parts, {
    s->pm[p] = unique_part(q, s, p, s->slots + s->hstart[p], s->hstart[p + 1] - s->hstart[p]);
  });

  v->m = count_shares(q, s);
  lt_status st = lt_tensor_new(ctx, &v->rows, LT_INT32, 2, (int64_t[]){v->m, 4});
  if (!st) st = lt_tensor_new(ctx, &v->index, LT_INT32, 1, &v->m);
  if (!st && q->keep & LT__VOXELS_INVERSE) st = lt_tensor_new(ctx, &v->inverse, LT_INT32, 1, &q->n);
  if (!st) st = lt_tensor_new(ctx, &v->counts, LT_INT32, 1, &v->m);
  if (!st && q->feats) st = lt_tensor_new(ctx, &v->feats, q->f64 ? LT_FLOAT64 : LT_FLOAT32, 2, (int64_t[]){v->m, q->c});
  if (!st && q->feats && q->red == LT_VOXEL_MAX && q->keep & LT__VOXELS_ARG)
    st = lt_tensor_new(ctx, &v->arg, LT_INT32, 2, (int64_t[]){v->m, q->c});
  if (st) return st;
  outputs o = {lt_tensor_data(v->rows),
               lt_tensor_data(v->index),
               lt_tensor_data(v->counts),
               v->inverse ? lt_tensor_data(v->inverse) : NULL,
               v->arg ? lt_tensor_data(v->arg) : NULL,
               v->feats ? lt_tensor_data(v->feats) : NULL};

  emit_voxels(q, s, &o);
  if (o.inverse) emit_inverse(q, s, o.inverse);
  return LT_OK;
}

lt_status lt__voxels_build(lt_ctx *ctx, lt__voxels *v, lt_tensor *points, lt_tensor *batch, const lt_voxel_grid *g,
                           const lt_tensor *feats, lt_voxel_reduction red, int keep, const char *op) {
  *v = (lt__voxels){0};
  lt_tensor *pts, *bat;
  lt_status st = lt__points_stage(ctx, &pts, &bat, points, batch, g, op);
  if (st) return st;
  int64_t n = pts->shape[0];
  if (n >= INT32_MAX) st = lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %lld points are too many", op, (long long)n);
  int64_t chunks = n / CHUNK_POINTS;
  plan q = {.n = n,
            .pbits = log2_parts(n),
            .chunks = chunks < 1            ? 1
                      : chunks > MAX_CHUNKS ? MAX_CHUNKS
                                            : (int)chunks,
            .threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1,
            .p = lt_tensor_data(pts),
            .points = points,
            .batch = bat ? lt_tensor_data(bat) : NULL,
            .g = g,
            .keep = keep};
  q.parts = 1 << q.pbits;
  q.isa = lt__ctx_isa(ctx);
  cell_grid(&q.grid, g);
  if (feats) {
    q.feats = lt_tensor_data(feats), q.c = feats->shape[1], q.f64 = feats->dtype == LT_FLOAT64, q.red = red;
    q.fsize = (size_t)q.c * (q.f64 ? 8 : 4);
    if (q.c == 0) q.feats = NULL; /* no channels: nothing to carry */
  }
  v->n = n;
  scratch s;
  if (!st) st = reserve(ctx, v, &s, &q, op);
  if (!st) st = run(ctx, v, &q, &s, op);
  lt_tensor_release(pts), lt_tensor_release(bat);
  if (st) lt__voxels_free(ctx, v);
  return st;
}

void lt__voxels_free(lt_ctx *ctx, lt__voxels *v) {
  if (v->scratch) lt_ctx_free(ctx, v->scratch, v->bytes);
  lt_tensor_release(v->rows), lt_tensor_release(v->index), lt_tensor_release(v->inverse);
  lt_tensor_release(v->counts), lt_tensor_release(v->feats), lt_tensor_release(v->arg);
  *v = (lt__voxels){0};
}

lt_status lt_sparse_quantize(lt_ctx *ctx, lt_tensor **coords, lt_tensor **index, lt_tensor **inverse, lt_tensor *points,
                             lt_tensor *batch, const lt_voxel_grid *g, const char *op) {
  *coords = NULL;
  if (index) *index = NULL;
  if (inverse) *inverse = NULL;
  lt__voxels v;
  lt_status st = lt__voxels_build(ctx, &v, points, batch, g, NULL, LT_VOXEL_SUM, inverse ? LT__VOXELS_INVERSE : 0, op);
  if (st) return st;
  *coords = v.rows, v.rows = NULL;
  if (index) *index = v.index, v.index = NULL;
  if (inverse) *inverse = v.inverse, v.inverse = NULL;
  lt__voxels_free(ctx, &v);
  return LT_OK;
}

lt_status lt__voxel_cells_isa(lt_ctx *ctx, lt_tensor **cells, int64_t *good, lt_tensor *points, const lt_voxel_grid *g,
                              lt_isa isa, lt_isa *used) {
  lt_isa best = lt_cpu_isa();
  *cells = NULL, *good = 0, *used = isa < best ? isa : best;
  lt_tensor *pts, *bat;
  lt_status st = lt__points_stage(ctx, &pts, &bat, points, NULL, g, "cells_with_isa");
  if (st) return st;
  st = lt_tensor_new(ctx, cells, LT_INT32, 2, pts->shape);
  if (!st) {
    lt_cell_grid cg;
    cell_grid(&cg, g);
    memset(lt_tensor_data(*cells), 0, (size_t)pts->shape[0] * 12);
    *good = lt__voxel_cells(*used, lt_tensor_data(*cells), lt_tensor_data(pts), pts->shape[0], &cg);
  }
  lt_tensor_release(pts);
  return st;
}

lt_status lt__key_digests_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *keys, lt_isa isa, lt_isa *used) {
  lt_isa best = lt_cpu_isa();
  *out = NULL, *used = isa < best ? isa : best;
  lt_tensor *k = NULL;
  lt_status st = lt__coords_check_rows(ctx, keys, "digests_with_isa");
  if (!st) st = lt__as_contig(ctx, &k, keys, LT_INT32);
  if (!st) st = lt_tensor_new(ctx, out, LT_INT64, 1, keys->shape);
  if (!st) lt__key_digests(*used, lt_tensor_data(*out), lt_tensor_data(k), keys->shape[0]);
  lt_tensor_release(k);
  return st;
}
