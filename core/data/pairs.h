/* Private to core/data: a token sequence that BPE merges in place, with an
 * index of its adjacent pairs (bpe.c trains and encodes with it).
 *
 * The tokens are a doubly linked list over the text's positions; merging the
 * pair at node p folds node next(p) into p. Each distinct pair has its count
 * and the nodes it was seen at (the left node of each occurrence). That list
 * is appended to, never pruned, so it may hold nodes where the pair is gone:
 * a merge pass checks each node before merging it. Every change of a count
 * goes through the index, so after any number of merges the counts are those
 * a plain recount of the sequence would give.
 *
 *   lt__pairs ps;
 *   st = lt__pairs_init(ctx, &ps, text, n, on_increase, user);
 *   st = lt__pairs_merge(&ps, a, b, new_id);
 *   lt__pairs_free(&ps);   always, once init has been called
 *
 * on_increase(user, key, count), when not NULL, hears every count that grew
 * after init (the trainer's heap of candidates). Encoding needs no counts
 * (it merges in a fixed order) and sets counting = 0 after init: a merge
 * then skips the three lookups that lower its neighbours' counts, and
 * counts only ever grow (an empty pair is found by its nodes instead). */
#ifndef LATTICE_DATA_PAIRS_H
#define LATTICE_DATA_PAIRS_H

#include "base.h"

/* A pair (a, b) of ids below 2^31 as one key; its order is (a, b)'s. */
#define LT_PAIR_KEY(a, b) ((uint64_t)(uint32_t)(a) << 32 | (uint32_t)(b))
#define LT_PAIR_EMPTY     UINT64_MAX

typedef struct lt__pair {
  uint64_t key;   /* LT_PAIR_EMPTY for a free slot */
  int64_t count;  /* occurrences now */
  int64_t *nodes; /* where it was seen (left nodes), npos of cap */
  int64_t npos, cap;
} lt__pair;

typedef void (*lt__pair_hook)(void *user, uint64_t key, int64_t count);

typedef struct lt__pairs {
  lt_ctx *ctx;
  int64_t n;            /* nodes: the text's length */
  int32_t *tok;         /* the id at each node; -1 once folded into its left neighbour */
  int64_t *prev, *next; /* neighbours, -1 at the ends */
  lt__pair *slots;      /* open addressing, linear probing; a power of two */
  int64_t nslots, used;
  lt__pair_hook on_increase;
  void *user;
  int counting; /* 1 (init's default): counts follow every merge; 0: only the nodes are kept */
  int status;   /* LT_ERR_MEM once an allocation failed: the index is then incomplete */
} lt__pairs;

lt_status lt__pairs_init(lt_ctx *ctx, lt__pairs *ps, const uint8_t *text, int64_t n, lt__pair_hook on_increase,
                         void *user);
/* The pair's entry, or NULL when it never occurred. */
lt__pair *lt__pairs_find(const lt__pairs *ps, uint64_t key);
/* Records key with the given count and no nodes, as a set would (a key
 * already there is an error of the caller's). */
lt_status lt__pairs_add(lt__pairs *ps, uint64_t key, int64_t count);
/* Replaces every occurrence of (a, b), left to right, by new_id. */
lt_status lt__pairs_merge(lt__pairs *ps, int32_t a, int32_t b, int32_t new_id);
void lt__pairs_free(lt__pairs *ps);

#endif
