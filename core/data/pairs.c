/* The token sequence and its pair index (pairs.h). */
#include <stdlib.h>
#include <string.h>
#include "data/pairs.h"

/* Buffers come from the context's allocator, which needs the size back. */
static void *get(lt__pairs *ps, int64_t count, size_t size) {
  void *p = lt_ctx_alloc(ps->ctx, (size_t)(count ? count : 1) * size);
  if (!p) ps->status = LT_ERR_MEM;
  return p;
}
static void put(lt__pairs *ps, void *p, int64_t count, size_t size) {
  if (p) lt_ctx_free(ps->ctx, p, (size_t)(count ? count : 1) * size);
}

static uint64_t hash(uint64_t key) {
  key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ull;
  key = (key ^ (key >> 27)) * 0x94d049bb133111ebull;
  return key ^ (key >> 31);
}

/* The slot holding key, or the free slot where it would go. */
static lt__pair *slot_for(const lt__pair *slots, int64_t nslots, uint64_t key) {
  uint64_t mask = (uint64_t)nslots - 1;
  for (uint64_t i = hash(key) & mask;; i = (i + 1) & mask)
    if (slots[i].key == key || slots[i].key == LT_PAIR_EMPTY) return (lt__pair *)&slots[i];
}

lt__pair *lt__pairs_find(const lt__pairs *ps, uint64_t key) {
  lt__pair *e = slot_for(ps->slots, ps->nslots, key);
  return e->key == key ? e : NULL;
}

static lt__pair *new_slots(lt__pairs *ps, int64_t nslots) {
  lt__pair *slots = get(ps, nslots, sizeof *slots);
  if (slots)
    for (int64_t i = 0; i < nslots; i++) slots[i] = (lt__pair){.key = LT_PAIR_EMPTY};
  return slots;
}

/* Doubles the table once it is half full, so probes stay short. */
static int make_room(lt__pairs *ps) {
  if (2 * (ps->used + 1) <= ps->nslots) return 1;
  lt__pair *slots = new_slots(ps, 2 * ps->nslots);
  if (!slots) return 0;
  for (int64_t i = 0; i < ps->nslots; i++)
    if (ps->slots[i].key != LT_PAIR_EMPTY) *slot_for(slots, 2 * ps->nslots, ps->slots[i].key) = ps->slots[i];
  put(ps, ps->slots, ps->nslots, sizeof *ps->slots);
  ps->slots = slots;
  ps->nslots *= 2;
  return 1;
}

static int append(lt__pairs *ps, lt__pair *e, int64_t node) {
  if (e->npos == e->cap) {
    int64_t cap = e->cap ? 2 * e->cap : 4;
    int64_t *nodes = get(ps, cap, sizeof *nodes);
    if (!nodes) return 0;
    if (e->npos) memcpy(nodes, e->nodes, (size_t)e->npos * sizeof *nodes);
    put(ps, e->nodes, e->cap, sizeof *nodes);
    e->nodes = nodes;
    e->cap = cap;
  }
  e->nodes[e->npos++] = node;
  return 1;
}

/* One more occurrence of (a, b), at node `left`. */
static void increase(lt__pairs *ps, int32_t a, int32_t b, int64_t left) {
  if (ps->status || !make_room(ps)) return;
  uint64_t key = LT_PAIR_KEY(a, b);
  lt__pair *e = slot_for(ps->slots, ps->nslots, key);
  if (e->key == LT_PAIR_EMPTY) {
    *e = (lt__pair){.key = key};
    ps->used++;
  }
  if (!append(ps, e, left)) return;
  e->count++;
  if (ps->on_increase) ps->on_increase(ps->user, key, e->count);
}

lt_status lt__pairs_add(lt__pairs *ps, uint64_t key, int64_t count) {
  if (!make_room(ps)) return lt_ctx_fail(ps->ctx, LT_ERR_MEM, "merges: out of memory");
  lt__pair *e = slot_for(ps->slots, ps->nslots, key);
  LT_ASSERT(e->key == LT_PAIR_EMPTY);
  *e = (lt__pair){.key = key, .count = count};
  ps->used++;
  return LT_OK;
}

static void decrease(lt__pairs *ps, int32_t a, int32_t b) {
  lt__pair *e = lt__pairs_find(ps, LT_PAIR_KEY(a, b));
  LT_ASSERT(e && e->count > 0);
  e->count--;
}

lt_status lt__pairs_init(lt_ctx *ctx, lt__pairs *ps, const uint8_t *text, int64_t n, lt__pair_hook on_increase,
                         void *user) {
  *ps = (lt__pairs){.ctx = ctx, .n = n, .nslots = 1024, .counting = 1};
  ps->tok = get(ps, n, sizeof *ps->tok);
  ps->prev = get(ps, n, sizeof *ps->prev);
  ps->next = get(ps, n, sizeof *ps->next);
  ps->slots = new_slots(ps, ps->nslots);
  if (ps->status) return lt_ctx_fail(ctx, LT_ERR_MEM, "train: out of memory for %lld bytes of text", (long long)n);
  for (int64_t i = 0; i < n; i++) {
    ps->tok[i] = text[i];
    ps->prev[i] = i - 1;
    ps->next[i] = i + 1 < n ? i + 1 : -1;
  }
  for (int64_t i = 0; i + 1 < n; i++) increase(ps, ps->tok[i], ps->tok[i + 1], i);
  ps->on_increase = on_increase; /* from here on: the counts that merges raise */
  ps->user = user;
  if (ps->status) return lt_ctx_fail(ctx, LT_ERR_MEM, "train: out of memory for %lld bytes of text", (long long)n);
  return LT_OK;
}

static int cmp_node(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

/* Folds node q = next(p) into p, which becomes new_id: the pairs with the
 * neighbours o = prev(p) and r = next(q) change with it. */
static void fold(lt__pairs *ps, int64_t p, int32_t new_id) {
  int64_t q = ps->next[p], o = ps->prev[p], r = ps->next[q];
  int32_t a = ps->tok[p], b = ps->tok[q];
  if (ps->counting) {
    if (o >= 0) decrease(ps, ps->tok[o], a);
    if (r >= 0) decrease(ps, b, ps->tok[r]);
    decrease(ps, a, b);
  }
  ps->tok[p] = new_id;
  ps->tok[q] = -1;
  ps->next[p] = r;
  if (r >= 0) ps->prev[r] = p;
  if (o >= 0) increase(ps, ps->tok[o], new_id, o);
  if (r >= 0) increase(ps, new_id, ps->tok[r], p);
}

/* The nodes are taken from the entry first: folding adds pairs (all of them
 * holding new_id), which may move the table's entries. In node order, an
 * occurrence that overlaps one just merged ("aaa") is gone when its turn
 * comes, as a left-to-right replacement leaves it. */
lt_status lt__pairs_merge(lt__pairs *ps, int32_t a, int32_t b, int32_t new_id) {
  lt__pair *e = lt__pairs_find(ps, LT_PAIR_KEY(a, b));
  if (!e || e->npos == 0 || (ps->counting && e->count == 0)) return LT_OK;
  int64_t *nodes = e->nodes, np = e->npos, cap = e->cap;
  e->nodes = NULL;
  e->npos = e->cap = 0;
  qsort(nodes, (size_t)np, sizeof *nodes, cmp_node);
  for (int64_t i = 0; i < np && !ps->status; i++) {
    int64_t p = nodes[i], q = ps->next[p];
    if (ps->tok[p] == a && q >= 0 && ps->tok[q] == b) fold(ps, p, new_id);
  }
  put(ps, nodes, cap, sizeof *nodes);
  if (ps->status) return lt_ctx_fail(ps->ctx, LT_ERR_MEM, "train: out of memory");
  LT_ASSERT(!ps->counting || lt__pairs_find(ps, LT_PAIR_KEY(a, b))->count == 0);
  return LT_OK;
}

void lt__pairs_free(lt__pairs *ps) {
  if (ps->slots)
    for (int64_t i = 0; i < ps->nslots; i++) put(ps, ps->slots[i].nodes, ps->slots[i].cap, sizeof(int64_t));
  put(ps, ps->slots, ps->nslots, sizeof *ps->slots);
  put(ps, ps->tok, ps->n, sizeof *ps->tok);
  put(ps, ps->prev, ps->n, sizeof *ps->prev);
  put(ps, ps->next, ps->n, sizeof *ps->next);
  *ps = (lt__pairs){0};
}
