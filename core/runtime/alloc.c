#include <stdlib.h>
#include "runtime/alloc.h"
#include "internal.h"

#define DEFAULT_LIMIT ((size_t)2 << 30) /* 2 GiB of cached blocks at most */

static size_t class_size(int c) {
  if (c == 0) return LT_ALIGN;
  int k = (c - 1) / 4 + 6, q = (c - 1) % 4 + 1;
  size_t base = (size_t)1 << k;
  return base + (size_t)q * (base >> 2);
}

int lt__alloc_class(size_t nbytes, size_t *class_bytes) {
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

void lt__allocator_init(lt_allocator *a) {
  *a = (lt_allocator){0};
  a->limit = DEFAULT_LIMIT;
}

void lt__allocator_trim(lt_allocator *a, size_t keep) {
  /* Largest classes first: they hold the most bytes per block. */
  for (int c = LT_ALLOC_CLASSES - 1; c >= 0 && a->cached > keep; c--) {
    while (a->free_list[c] && a->cached > keep) {
      void *blk = a->free_list[c];
      a->free_list[c] = *(void **)blk;
      a->cached -= class_size(c);
      free(blk);
    }
  }
}

void lt__allocator_destroy(lt_allocator *a) { lt__allocator_trim(a, 0); }

void *lt__allocator_get(lt_allocator *a, size_t nbytes) {
  size_t bytes;
  int c = lt__alloc_class(nbytes, &bytes);
  if (c >= LT_ALLOC_CLASSES) return NULL;
  void *blk = a->free_list[c];
  if (blk) {
    a->free_list[c] = *(void **)blk;
    a->cached -= bytes;
  } else {
    size_t padded = (bytes + LT_ALIGN - 1) / LT_ALIGN * LT_ALIGN; /* aligned_alloc wants a multiple */
    blk = aligned_alloc(LT_ALIGN, padded);
    if (!blk) {
      lt__allocator_trim(a, 0); /* give the system our cache and try once more */
      blk = aligned_alloc(LT_ALIGN, padded);
      if (!blk) return NULL;
    }
  }
  a->in_use += bytes;
  a->debt += bytes;
  if (a->in_use > a->peak) a->peak = a->in_use;
  return blk;
}

void lt__allocator_put(lt_allocator *a, void *ptr, size_t nbytes) {
  if (!ptr) return;
  size_t bytes;
  int c = lt__alloc_class(nbytes, &bytes);
  a->in_use -= bytes;
  if (bytes > a->limit) {
    free(ptr);
    return;
  }
  if (a->cached + bytes > a->limit) lt__allocator_trim(a, a->limit - bytes);
  *(void **)ptr = a->free_list[c];
  a->free_list[c] = ptr;
  a->cached += bytes;
}

lt_memory_stats lt__allocator_stats(const lt_allocator *a) {
  return (lt_memory_stats){.in_use = a->in_use, .cached = a->cached, .peak = a->peak, .limit = a->limit};
}

void lt__allocator_set_limit(lt_allocator *a, size_t limit) {
  a->limit = limit;
  lt__allocator_trim(a, limit);
}
