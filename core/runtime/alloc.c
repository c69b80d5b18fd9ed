#include <sched.h>
#include <stdlib.h>
#include "runtime/alloc.h"
#include "base.h"

#define DEFAULT_LIMIT ((size_t)2 << 30) /* 2 GiB of cached blocks at most */

static size_t class_size(int c) {
  if (c == 0) return LT_ALIGN;
  int k = (c - 1) / 4 + 6, q = (c - 1) % 4 + 1;
  size_t base = (size_t)1 << k;
  return base + (size_t)q * (base >> 2);
}

int lt__alloc_class(size_t nbytes, size_t *class_bytes) {
  /* Past 2^63 a class's bytes would wrap around (the top one of (2^63, 2^64]
   * is 2^64, which is 0), and a request of SIZE_MAX bytes, say a negative
   * count cast to size_t, would get a block of none: no class at all. */
  if (nbytes > (size_t)1 << 63) {
    *class_bytes = 0;
    return LT_ALLOC_CLASSES;
  }
  if (nbytes <= LT_ALIGN) {
    *class_bytes = LT_ALIGN;
    return 0;
  }
  /* nbytes in (2^k, 2^(k+1)]: classes 2^k * (1 + q/4), q = 1..4 */
  int k = 63 - __builtin_clzll((unsigned long long)(nbytes - 1));
  size_t base = (size_t)1 << k, quarter = base >> 2;
  size_t q = (nbytes - base + quarter - 1) / quarter; /* 1..4 */
  *class_bytes = base + q * quarter;
  return (k - 6) * 4 + (int)q;
}

/* A spin of a few hundred tries, then yields: the holder only ever moves a
 * few pointers, or frees blocks to the system. */
static void lock(lt_allocator *a) {
  for (int spins = 0; __atomic_exchange_n(&a->lock, 1, __ATOMIC_ACQUIRE); spins++)
    if (spins > 256) sched_yield();
}

static void unlock(lt_allocator *a) { __atomic_store_n(&a->lock, 0, __ATOMIC_RELEASE); }

void lt__allocator_init(lt_allocator *a) {
  *a = (lt_allocator){0};
  a->limit = DEFAULT_LIMIT;
}

/* Caller holds the lock. Largest classes first: they hold the most bytes per block. */
static void trim_locked(lt_allocator *a, size_t keep) {
  for (int c = LT_ALLOC_CLASSES - 1; c >= 0 && a->cached > keep; c--) {
    while (a->free_list[c] && a->cached > keep) {
      void *blk = a->free_list[c];
      a->free_list[c] = *(void **)blk;
      a->cached -= class_size(c);
      free(blk);
    }
  }
}

void lt__allocator_trim(lt_allocator *a, size_t keep) {
  lock(a);
  trim_locked(a, keep);
  unlock(a);
}

void lt__allocator_destroy(lt_allocator *a) { lt__allocator_trim(a, 0); }

/* A cached block of class c, or a fresh one from the system (the cache is
 * given back first when the system has none). Caller holds the lock. */
static void *take_locked(lt_allocator *a, int c, size_t bytes) {
  void *blk = a->free_list[c];
  if (blk) {
    a->free_list[c] = *(void **)blk;
    a->cached -= bytes;
    return blk;
  }
  size_t padded = (bytes + LT_ALIGN - 1) / LT_ALIGN * LT_ALIGN; /* aligned_alloc wants a multiple */
  blk = aligned_alloc(LT_ALIGN, padded);
  if (!blk) {
    trim_locked(a, 0);
    blk = aligned_alloc(LT_ALIGN, padded);
  }
  return blk;
}

void *lt__allocator_get(lt_allocator *a, size_t nbytes) {
  size_t bytes;
  int c = lt__alloc_class(nbytes, &bytes);
  if (c >= LT_ALLOC_CLASSES) return NULL;
  lock(a);
  void *blk = take_locked(a, c, bytes);
  if (blk) {
    a->in_use += bytes;
    lt__allocator_add_debt(a, bytes);
    if (a->in_use > a->peak) a->peak = a->in_use;
  }
  unlock(a);
  return blk;
}

void lt__allocator_put(lt_allocator *a, void *ptr, size_t nbytes) {
  if (!ptr) return;
  size_t bytes;
  int c = lt__alloc_class(nbytes, &bytes);
  if (c >= LT_ALLOC_CLASSES) return; /* no block of that size was ever handed out */
  lock(a);
  a->in_use -= bytes;
  if (bytes > a->limit) {
    free(ptr);
  } else {
    if (a->cached + bytes > a->limit) trim_locked(a, a->limit - bytes);
    *(void **)ptr = a->free_list[c];
    a->free_list[c] = ptr;
    a->cached += bytes;
  }
  unlock(a);
}

lt_memory_stats lt__allocator_stats(lt_allocator *a) {
  lock(a);
  lt_memory_stats s = {.in_use = a->in_use, .cached = a->cached, .peak = a->peak, .limit = a->limit};
  unlock(a);
  return s;
}

void lt__allocator_set_limit(lt_allocator *a, size_t limit) {
  lock(a);
  a->limit = limit;
  trim_locked(a, limit);
  unlock(a);
}

/* The debt is an atomic counter rather than under the lock: every tensor
 * header adds to it, and a lock there would cost more than the header. */
void lt__allocator_add_debt(lt_allocator *a, size_t bytes) { __atomic_fetch_add(&a->debt, bytes, __ATOMIC_RELAXED); }

size_t lt__allocator_take_debt(lt_allocator *a, size_t min) {
  size_t d = __atomic_load_n(&a->debt, __ATOMIC_RELAXED);
  while (d >= min && !__atomic_compare_exchange_n(&a->debt, &d, 0, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return d >= min ? d : 0;
}
