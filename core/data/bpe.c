/* Byte-level BPE: training and encoding on the pair index (pairs.h), the
 * rules in lattice/data.h.
 *
 * Training keeps a max-heap of (count, pair) candidates, ordered by count,
 * then by the smaller pair. Counts only grow through the index's hook, which
 * pushes the new count; a count that fell leaves its old entry, larger than
 * the truth, which is pushed again with the true count when it comes to the
 * top. Every pair that occurs thus has an entry at least its count, so the
 * first top entry that is exact is the most frequent pair, ties broken as the
 * rule says. */
#include <string.h>
#include "data/pairs.h"
#include "lattice/data.h"

typedef struct candidate {
  int64_t count;
  uint64_t key;
} candidate;

typedef struct heap {
  lt_ctx *ctx;
  candidate *v;
  int64_t n, cap;
  int failed; /* an allocation failed: the heap misses candidates */
} heap;

static int above(candidate x, candidate y) { return x.count > y.count || (x.count == y.count && x.key < y.key); }

static void heap_push(void *user, uint64_t key, int64_t count) {
  heap *h = user;
  if (h->failed) return;
  if (h->n == h->cap) {
    int64_t cap = h->cap ? 2 * h->cap : 1024;
    candidate *v = lt_ctx_alloc(h->ctx, (size_t)cap * sizeof *v);
    if (!v) {
      h->failed = 1;
      return;
    }
    if (h->n) memcpy(v, h->v, (size_t)h->n * sizeof *v);
    if (h->v) lt_ctx_free(h->ctx, h->v, (size_t)h->cap * sizeof *v);
    h->v = v;
    h->cap = cap;
  }
  int64_t i = h->n++;
  h->v[i] = (candidate){count, key};
  while (i > 0 && above(h->v[i], h->v[(i - 1) / 2])) {
    candidate t = h->v[i];
    h->v[i] = h->v[(i - 1) / 2];
    h->v[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static candidate heap_pop(heap *h) {
  candidate top = h->v[0];
  h->v[0] = h->v[--h->n];
  for (int64_t i = 0;;) {
    int64_t l = 2 * i + 1, r = l + 1, best = i;
    if (l < h->n && above(h->v[l], h->v[best])) best = l;
    if (r < h->n && above(h->v[r], h->v[best])) best = r;
    if (best == i) break;
    candidate t = h->v[i];
    h->v[i] = h->v[best];
    h->v[best] = t;
    i = best;
  }
  return top;
}

/* The most frequent pair with at least min_frequency occurrences, or 0. */
static int best_pair(heap *h, const lt__pairs *ps, int64_t min_frequency, uint64_t *key) {
  while (h->n > 0) {
    candidate c = heap_pop(h);
    const lt__pair *e = lt__pairs_find(ps, c.key);
    if (e->count == c.count) {
      *key = c.key;
      return c.count >= min_frequency;
    }
    if (e->count > 0) heap_push(h, c.key, e->count);
  }
  return 0;
}

static lt_status train_into(lt_ctx *ctx, int32_t *merges, int64_t *m, const uint8_t *text, int64_t n,
                            int64_t max_merges, int64_t min_frequency) {
  heap h = {.ctx = ctx};
  lt__pairs ps;
  lt_status st = lt__pairs_init(ctx, &ps, text, n, heap_push, &h);
  for (int64_t i = 0; !st && i < ps.nslots; i++)
    if (ps.slots[i].key != LT_PAIR_EMPTY) heap_push(&h, ps.slots[i].key, ps.slots[i].count);
  uint64_t key;
  for (*m = 0; !st && !h.failed && *m < max_merges && best_pair(&h, &ps, min_frequency, &key); ++*m) {
    merges[2 * *m] = (int32_t)(key >> 32);
    merges[2 * *m + 1] = (int32_t)(key & 0xffffffffu);
    st = lt__pairs_merge(&ps, merges[2 * *m], merges[2 * *m + 1], (int32_t)(256 + *m));
  }
  if (!st && h.failed) st = lt_ctx_fail(ctx, LT_ERR_MEM, "train: out of memory");
  if (h.v) lt_ctx_free(ctx, h.v, (size_t)h.cap * sizeof *h.v);
  lt__pairs_free(&ps);
  return st;
}

lt_status lt_bpe_train(lt_ctx *ctx, lt_tensor **merges, const uint8_t *text, int64_t n, int64_t max_merges,
                       int64_t min_frequency) {
  *merges = NULL;
  if (max_merges < 0 || max_merges > INT32_MAX - 256)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "train: the number of merges must be in [0, 2^31 - 256], got %lld",
                       (long long)max_merges);
  if (min_frequency < 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "train: min_frequency must be at least 1, got %lld", (long long)min_frequency);
  int64_t cap = n > 1 ? (max_merges < n - 1 ? max_merges : n - 1) : 0; /* each merge shortens the text */
  size_t bytes = (size_t)(cap ? cap : 1) * 2 * sizeof(int32_t);
  int32_t *found = lt_ctx_alloc(ctx, bytes);
  if (!found) return lt_ctx_fail(ctx, LT_ERR_MEM, "train: out of memory");
  int64_t m = 0;
  lt_status st = train_into(ctx, found, &m, text, n, cap, min_frequency);
  int64_t shape[2] = {m, 2};
  if (!st) st = lt_tensor_new(ctx, merges, LT_INT32, 2, shape);
  if (!st) memcpy(lt_tensor_data(*merges), found, (size_t)m * 2 * sizeof(int32_t));
  lt_ctx_free(ctx, found, bytes);
  return st;
}

/* The merges as int32 pairs in a buffer of the context's (2 * M), after
 * checking them; NULL with the context's message otherwise. */
static int32_t *read_merges(lt_ctx *ctx, const lt_tensor *merges, int64_t *m, lt_status *st) {
  lt_dtype dt = lt_tensor_dtype(merges);
  const int64_t *shape = lt_tensor_shape(merges);
  *st = LT_ERR_ARG;
  if (lt_dtype_info(dt)->is_float || dt == LT_BOOL) {
    lt_ctx_fail(ctx, LT_ERR_ARG, "merges: must be integers, got %s", lt_dtype_info(dt)->name);
    return NULL;
  }
  if (lt_tensor_ndim(merges) != 2 || shape[1] != 2 || shape[0] > INT32_MAX - 256) {
    char buf[LT_SHAPE_STR_MAX];
    lt_ctx_fail(ctx, LT_ERR_ARG, "merges: must have shape {M,2}, got %s",
                lt__shape_str(buf, sizeof buf, lt_tensor_ndim(merges), shape));
    return NULL;
  }
  *m = shape[0];
  int64_t *v = lt_ctx_alloc(ctx, (size_t)(*m ? *m : 1) * 2 * sizeof *v);
  int32_t *pairs = lt_ctx_alloc(ctx, (size_t)(*m ? *m : 1) * 2 * sizeof *pairs);
  if (v && pairs) {
    lt_tensor_read(merges, v, LT_INT64);
    *st = LT_OK;
    for (int64_t i = 0; i < 2 * *m && !*st; i++) {
      int64_t limit = 256 + i / 2;
      if (v[i] < 0 || v[i] >= limit)
        *st = lt_ctx_fail(ctx, LT_ERR_ARG,
                          "merges: row %lld uses id %lld, which does not exist before it (ids below %lld)",
                          (long long)(i / 2 + 1), (long long)v[i], (long long)limit);
      else
        pairs[i] = (int32_t)v[i];
    }
  } else {
    *st = lt_ctx_fail(ctx, LT_ERR_MEM, "merges: out of memory");
  }
  if (v) lt_ctx_free(ctx, v, (size_t)(*m ? *m : 1) * 2 * sizeof *v);
  if (*st && pairs) lt_ctx_free(ctx, pairs, (size_t)(*m ? *m : 1) * 2 * sizeof *pairs);
  return *st ? NULL : pairs;
}

static void free_merges(lt_ctx *ctx, int32_t *pairs, int64_t m) {
  lt_ctx_free(ctx, pairs, (size_t)(m ? m : 1) * 2 * sizeof *pairs);
}

/* A pair merged twice: the second could never apply. Found with the pair
 * index's hash table, through a sequence of no text. */
static lt_status check_repeats(lt_ctx *ctx, const int32_t *pairs, int64_t m) {
  lt__pairs seen;
  lt_status st = lt__pairs_init(ctx, &seen, NULL, 0, NULL, NULL);
  for (int64_t i = 0; i < m && !st; i++) {
    uint64_t key = LT_PAIR_KEY(pairs[2 * i], pairs[2 * i + 1]);
    lt__pair *e = lt__pairs_find(&seen, key);
    if (e)
      st = lt_ctx_fail(ctx, LT_ERR_ARG, "merges: row %lld repeats row %lld {%d,%d}", (long long)i + 1,
                       (long long)e->count, pairs[2 * i], pairs[2 * i + 1]);
    else
      st = lt__pairs_add(&seen, key, i + 1);
  }
  lt__pairs_free(&seen);
  return st;
}

lt_status lt_bpe_check_merges(lt_ctx *ctx, const lt_tensor *merges) {
  int64_t m;
  lt_status st;
  int32_t *pairs = read_merges(ctx, merges, &m, &st);
  if (!pairs) return st;
  st = check_repeats(ctx, pairs, m);
  free_merges(ctx, pairs, m);
  return st;
}

/* Merges in their order, each over the whole sequence; then the ids left, by
 * following the list from node 0 (which never folds into a left neighbour). */
lt_status lt_bpe_encode(lt_ctx *ctx, lt_tensor **out, const uint8_t *text, int64_t n, const lt_tensor *merges) {
  *out = NULL;
  int64_t m;
  lt_status st;
  int32_t *pairs = read_merges(ctx, merges, &m, &st);
  if (!pairs) return st;
  st = check_repeats(ctx, pairs, m);
  lt__pairs ps = {0};
  if (!st) st = lt__pairs_init(ctx, &ps, text, n, NULL, NULL);
  ps.counting = 0;
  for (int64_t i = 0; i < m && !st; i++) st = lt__pairs_merge(&ps, pairs[2 * i], pairs[2 * i + 1], (int32_t)(256 + i));
  int64_t count = 0;
  for (int64_t p = n ? 0 : -1; !st && p >= 0; p = ps.next[p]) count++;
  if (!st) st = lt_tensor_new(ctx, out, LT_INT32, 1, &count);
  if (!st) {
    int32_t *ids = lt_tensor_data(*out);
    for (int64_t p = n ? 0 : -1; p >= 0; p = ps.next[p]) *ids++ = ps.tok[p];
  }
  lt__pairs_free(&ps);
  free_merges(ctx, pairs, m);
  return st;
}
