/* The caching allocator behind tensor storage. First touch of fresh pages is
 * expensive (~1.4 ms per MB on this kind of VM), so freed buffers go to
 * per-size-class free lists and are handed out again; the cache is bounded and
 * returns blocks to the system past its limit. One per context; its calls may
 * come from several threads at once (scratch taken inside a parallel region),
 * so the lists are guarded by a spinlock: nearly always uncontended, and then
 * one atomic exchange, where a pthread mutex cost ~3% of a training step of
 * tiny ops (callgrind). */
#ifndef LATTICE_ALLOC_H
#define LATTICE_ALLOC_H

#include <stddef.h>
#include "lattice/ctx.h"

/* Classes: four per power of two (x1, x1.25, x1.5, x1.75), from 64 bytes. */
#define LT_ALLOC_CLASSES 256

typedef struct lt_allocator {
  int lock;                          /* 0 free, 1 held */
  void *free_list[LT_ALLOC_CLASSES]; /* intrusive: a free block's first word links the next */
  size_t in_use, cached, peak, limit;
  size_t debt; /* bytes handed out since the binding last asked */
} lt_allocator;

void lt__allocator_init(lt_allocator *a);
void lt__allocator_destroy(lt_allocator *a);
void *lt__allocator_get(lt_allocator *a, size_t nbytes);
void lt__allocator_put(lt_allocator *a, void *ptr, size_t nbytes);
lt_memory_stats lt__allocator_stats(lt_allocator *a);
void lt__allocator_set_limit(lt_allocator *a, size_t limit);
/* Frees cached blocks until at most `keep` bytes stay cached. */
void lt__allocator_trim(lt_allocator *a, size_t keep);
/* The debt reported to the GC: grown by allocations (and by the context's
 * spare headers), taken when it reaches `min` (else 0, and it keeps adding up). */
void lt__allocator_add_debt(lt_allocator *a, size_t bytes);
size_t lt__allocator_take_debt(lt_allocator *a, size_t min);
/* The size class of a request and the bytes that class holds;
 * LT_ALLOC_CLASSES for a request past 2^63 bytes, which none holds. */
int lt__alloc_class(size_t nbytes, size_t *class_bytes);

#endif
