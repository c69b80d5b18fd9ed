/* The caching allocator behind tensor storage. First touch of fresh pages is
 * expensive (~1.4 ms per MB on this kind of VM), so freed buffers go to
 * per-size-class free lists and are handed out again; the cache is bounded and
 * returns blocks to the system past its limit. Single-threaded: one per context. */
#ifndef LATTICE_ALLOC_H
#define LATTICE_ALLOC_H

#include <stddef.h>
#include "lattice/ctx.h"

/* Classes: four per power of two (x1, x1.25, x1.5, x1.75), from 64 bytes. */
#define LT_ALLOC_CLASSES 256

typedef struct lt_allocator {
  void *free_list[LT_ALLOC_CLASSES]; /* intrusive: a free block's first word links the next */
  size_t in_use, cached, peak, limit;
  size_t debt; /* bytes handed out since the binding last asked */
} lt_allocator;

void lt__allocator_init(lt_allocator *a);
void lt__allocator_destroy(lt_allocator *a);
void *lt__allocator_get(lt_allocator *a, size_t nbytes);
void lt__allocator_put(lt_allocator *a, void *ptr, size_t nbytes);
lt_memory_stats lt__allocator_stats(const lt_allocator *a);
void lt__allocator_set_limit(lt_allocator *a, size_t limit);
/* Frees cached blocks until at most `keep` bytes stay cached. */
void lt__allocator_trim(lt_allocator *a, size_t keep);
/* The size class of a request and the bytes that class holds. */
int lt__alloc_class(size_t nbytes, size_t *class_bytes);

#endif
