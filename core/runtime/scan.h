/* Deterministic index building: count, prefix-sum, fill. Kernel maps, pooling
 * relations and scatters are built this way instead of with atomic appends, so
 * their order (and every sum taken in that order) is the same on every run
 * and for every thread count. */
#ifndef LATTICE_RUNTIME_SCAN_H
#define LATTICE_RUNTIME_SCAN_H

#include "base.h"

/* Exclusive prefix sum in place: x[i] becomes x[0] + ... + x[i-1]; returns the
 * total. */
int64_t lt__prefix_sum(int64_t *x, int64_t n);

/* A stable counting sort of n items by key (in [0, nbuckets), or -1 for "no
 * bucket": the item is left out). offsets (nbuckets + 1) and order (at most n)
 * are written: order[offsets[b] .. offsets[b+1]) holds, in increasing order,
 * the items whose key is b. Counts per thread chunk, one prefix sum, fills per
 * chunk: the result is the same for any thread count. Fails with
 * "<op>: key 7 is out of range for 5 buckets" or out of memory. */
lt_status lt__bucket_sort(lt_ctx *ctx, const int64_t *key, int64_t n, int64_t nbuckets, int64_t *offsets,
                          int64_t *order, const char *op);

#endif
