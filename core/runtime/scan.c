/* Count, prefix-sum, fill (runtime/scan.h). */
#include <string.h>
#include "runtime/context.h"
#include "runtime/parallel.h"
#include "runtime/scan.h"

int64_t lt__prefix_sum(int64_t *x, int64_t n) {
  int64_t total = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = x[i];
    x[i] = total;
    total += v;
  }
  return total;
}

/* The items of chunk c of `chunks` equal chunks: [lo, hi). */
static void chunk_range(int64_t n, int chunks, int c, int64_t *lo, int64_t *hi) {
  *lo = n * c / chunks;
  *hi = n * (c + 1) / chunks;
}

static int64_t first_bad_key(const int64_t *key, int64_t n, int64_t nbuckets) {
  for (int64_t i = 0; i < n; i++)
    if (key[i] < -1 || key[i] >= nbuckets) return i;
  return -1;
}

lt_status lt__bucket_sort(lt_ctx *ctx, const int64_t *key, int64_t n, int64_t nbuckets, int64_t *offsets,
                          int64_t *order, const char *op) {
  int64_t bad = first_bad_key(key, n, nbuckets);
  if (bad >= 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: key %lld is out of range for %lld buckets", op, (long long)key[bad],
                       (long long)nbuckets);
  int chunks = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  /* count[c * nbuckets + b]: items of chunk c in bucket b, then where they start */
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, 1, (size_t)chunks * (size_t)nbuckets * sizeof(int64_t), op)) return LT_ERR_MEM;
  int64_t *count = lt__workspace_slice(&ws, 0);
  LT_PARALLEL_FOR(chunks, c, chunks, {
    int64_t lo, hi, *cc = count + c * nbuckets;
    chunk_range(n, chunks, (int)c, &lo, &hi);
    memset(cc, 0, (size_t)nbuckets * sizeof *cc);
    for (int64_t i = lo; i < hi; i++)
      if (key[i] >= 0) cc[key[i]]++;
  });
  /* bucket-major, chunk-minor: chunk c's items of bucket b follow chunk c-1's */
  int64_t total = 0;
  for (int64_t b = 0; b < nbuckets; b++) {
    offsets[b] = total;
    for (int c = 0; c < chunks; c++) {
      int64_t v = count[c * nbuckets + b];
      count[c * nbuckets + b] = total;
      total += v;
    }
  }
  offsets[nbuckets] = total;
  LT_PARALLEL_FOR(chunks, c, chunks, {
    int64_t lo, hi, *next = count + c * nbuckets;
    chunk_range(n, chunks, (int)c, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
      if (key[i] >= 0) order[next[key[i]]++] = i;
  });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}
