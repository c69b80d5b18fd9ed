#include <stdlib.h>
#include <string.h>
#include "runtime/arena.h"

#define BLOCK_BYTES ((size_t)64 << 10)
#define ALIGN       16

struct lt_arena_block {
  lt_arena_block *next;
  size_t size, used;
  _Alignas(ALIGN) unsigned char data[];
};

static lt_arena_block *block_new(size_t size) {
  lt_arena_block *b = malloc(sizeof *b + size);
  if (b) *b = (lt_arena_block){.size = size};
  return b;
}

/* Blocks after `cur` are empty (reset empties all of them), so the first one
 * with room is taken; one too small for this request stays for later ones. */
void *lt__arena_alloc(lt_arena *a, size_t n) {
  n = (n + ALIGN - 1) / ALIGN * ALIGN;
  lt_arena_block *b = a->cur;
  while (b && b->size - b->used < n) b = b->next;
  if (!b) {
    b = block_new(n > BLOCK_BYTES ? n : BLOCK_BYTES);
    if (!b) return NULL;
    if (a->cur) { /* after the current block: the empty ones behind it stay in the list */
      b->next = a->cur->next;
      a->cur->next = b;
    } else {
      a->first = b;
    }
  }
  a->cur = b;
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

void lt__arena_reset(lt_arena *a) {
  for (lt_arena_block *b = a->first; b; b = b->next) b->used = 0;
  a->cur = a->first;
}

void lt__arena_free(lt_arena *a) {
  for (lt_arena_block *b = a->first, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  a->first = a->cur = NULL;
}
