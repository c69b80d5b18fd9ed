/* The coordinate manager: per context (slot LT_SLOT_COORDS), it hands out map
 * ids, interns recent maps by content, and caches kernel relations keyed by
 * (kind, input map, target map, kernel spec) so that a network's layers reuse
 * them. The cache is bounded in bytes; the least recently used relation goes
 * first. It holds references: maps and relations live while cached, and its
 * bytes count every map it keeps alive once, whether the ring or a relation
 * holds it (lt_coords.cache_holds). */
#include <stdlib.h>
#include <string.h>
#include "sparse/internal.h"

#define RECENT_MAPS   64
#define MAX_RELATIONS 256
#define DEFAULT_LIMIT ((size_t)1 << 30)

typedef struct cached {
  lt_relation *r;
  uint64_t used; /* the manager's clock at the last hit */
} cached;

typedef struct manager {
  uint64_t next_id, clock;
  lt_coords *maps[RECENT_MAPS]; /* a ring, oldest replaced first */
  int next_map;
  cached rel[MAX_RELATIONS];
  int nrel;
  size_t bytes, limit;
} manager;

/* The hash counted whether built yet or not (lt__coords_hash builds it on first use), so that holding and
 * dropping a map count the same bytes. */
static size_t map_bytes(const lt_coords *c) { return (size_t)c->n * 16 + lt__coord_hash_bytes(c->n); }

/* The cache takes (hold) or gives up (drop) a reference to c; its bytes count
 * c while it holds any. */
static lt_coords *hold(manager *m, lt_coords *c) {
  if (c->cache_holds++ == 0) m->bytes += map_bytes(c);
  return lt_coords_retain(c);
}

static void drop(manager *m, lt_coords *c) {
  if (!c) return;
  if (--c->cache_holds == 0) m->bytes -= map_bytes(c);
  lt_coords_release(c);
}

static void hold_relation(manager *m, lt_relation *r, uint64_t used, int slot) {
  m->rel[slot] = (cached){lt_relation_retain(r), used};
  m->bytes += r->bytes;
  hold(m, r->in);
  hold(m, r->out);
}

static void drop_relation(manager *m, int slot) {
  lt_relation *r = m->rel[slot].r;
  drop(m, r->in);
  drop(m, r->out);
  m->bytes -= r->bytes;
  lt_relation_release(r);
}

static void clear(manager *m) {
  for (int k = 0; k < RECENT_MAPS; k++) {
    drop(m, m->maps[k]);
    m->maps[k] = NULL;
  }
  for (int k = 0; k < m->nrel; k++) drop_relation(m, k);
  m->nrel = 0;
}

static void destroy(void *p) {
  clear(p);
  free(p);
}

/* The manager, made on first use; NULL when out of memory. */
static manager *get(lt_ctx *ctx) {
  manager *m = lt__ctx_slot(ctx, LT_SLOT_COORDS);
  if (m) return m;
  m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->limit = DEFAULT_LIMIT;
  lt__ctx_set_slot(ctx, LT_SLOT_COORDS, m, destroy);
  return m;
}

uint64_t lt__manager_next_id(lt_ctx *ctx) {
  manager *m = get(ctx);
  return m ? ++m->next_id : 0; /* 0 when out of memory: only a name, identity is the object */
}

/* The recent maps and those the cached relations hold are all interned: a
 * network's supports stay shared however many maps came in between. */
lt_coords *lt__manager_find_coords(lt_ctx *ctx, const lt_coords *c) {
  manager *m = lt__ctx_slot(ctx, LT_SLOT_COORDS);
  for (int k = 0; m && k < RECENT_MAPS; k++)
    if (m->maps[k] && lt_coords_equal(m->maps[k], c)) return m->maps[k];
  for (int k = 0; m && k < m->nrel; k++) {
    lt_relation *r = m->rel[k].r;
    if (lt_coords_equal(r->in, c)) return r->in;
    if (lt_coords_equal(r->out, c)) return r->out;
  }
  return NULL;
}

void lt__manager_keep_coords(lt_ctx *ctx, lt_coords *c) {
  manager *m = get(ctx);
  if (!m) return; /* not interned: it still works, it is only not shared */
  drop(m, m->maps[m->next_map]);
  m->maps[m->next_map] = hold(m, c);
  m->next_map = (m->next_map + 1) % RECENT_MAPS;
}

static int same_spec(const lt_kernel_spec *a, const lt_kernel_spec *b) { return !memcmp(a, b, sizeof *a); }

lt_relation *lt__manager_find_relation(lt_ctx *ctx, lt_relation_kind kind, const lt_coords *in, const lt_coords *target,
                                       const lt_kernel_spec *spec) {
  manager *m = lt__ctx_slot(ctx, LT_SLOT_COORDS);
  for (int k = 0; m && k < m->nrel; k++) {
    lt_relation *r = m->rel[k].r;
    if (r->kind == kind && r->in == in && (!target || r->out == target) && same_spec(&r->spec, spec) &&
        (target || !r->targeted)) {
      m->rel[k].used = ++m->clock;
      return r;
    }
  }
  return NULL;
}

/* Drops the least recently used relation. */
static void evict_one(manager *m) {
  int lru = 0;
  for (int k = 1; k < m->nrel; k++)
    if (m->rel[k].used < m->rel[lru].used) lru = k;
  drop_relation(m, lru);
  m->rel[lru] = m->rel[--m->nrel];
}

void lt__manager_keep_relation(lt_ctx *ctx, lt_relation *r) {
  manager *m = get(ctx);
  if (!m || r->bytes > m->limit) return;
  while (m->nrel > 0 && (m->nrel == MAX_RELATIONS || m->bytes + r->bytes > m->limit)) evict_one(m);
  hold_relation(m, r, ++m->clock, m->nrel++);
}

size_t lt_sparse_cache_bytes(lt_ctx *ctx) {
  manager *m = lt__ctx_slot(ctx, LT_SLOT_COORDS);
  return m ? m->bytes : 0;
}

void lt_sparse_set_cache_limit(lt_ctx *ctx, size_t bytes) {
  manager *m = get(ctx);
  if (!m) return;
  m->limit = bytes;
  while (m->nrel > 0 && m->bytes > m->limit) evict_one(m);
}

void lt_sparse_clear_cache(lt_ctx *ctx) {
  manager *m = lt__ctx_slot(ctx, LT_SLOT_COORDS);
  if (m) clear(m);
}
