/* A bump allocator for many small objects that die together (the autograd
 * tape's nodes, their input lists, saved values and attributes). Reset keeps
 * its blocks, so a training step records its tape without calling malloc. */
#ifndef LATTICE_RUNTIME_ARENA_H
#define LATTICE_RUNTIME_ARENA_H

#include <stddef.h>

typedef struct lt_arena_block lt_arena_block;
typedef struct lt_arena {
  lt_arena_block *first, *cur;
} lt_arena;

/* n zeroed bytes aligned to 16, valid until the next reset; NULL when out of memory. */
void *lt__arena_alloc(lt_arena *a, size_t n);
/* Forgets every allocation, keeping the blocks for reuse. */
void lt__arena_reset(lt_arena *a);
/* Frees the blocks. */
void lt__arena_free(lt_arena *a);

#endif
