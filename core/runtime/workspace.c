/* Per-thread scratch for parallel loops (runtime/parallel.h). */
#include "runtime/parallel.h"

lt_status lt__workspace_reserve(lt_ctx *ctx, lt_workspace *ws, int slices, size_t slice_bytes, const char *op) {
  *ws = (lt_workspace){0};
  size_t stride = (slice_bytes + LT_ALIGN - 1) / LT_ALIGN * LT_ALIGN; /* no two threads share a cache line */
  if (slices < 1) slices = 1;
  if (stride && (size_t)slices > SIZE_MAX / stride)
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: scratch of %d x %zu bytes is too large", op, slices, slice_bytes);
  size_t total = stride * (size_t)slices;
  char *base = total ? lt_ctx_alloc(ctx, total) : NULL;
  if (total && !base) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory for %zu bytes of scratch", op, total);
  *ws = (lt_workspace){.base = base, .stride = stride, .total = total, .slices = slices};
  return LT_OK;
}

void lt__workspace_release(lt_ctx *ctx, lt_workspace *ws) {
  if (ws->base) lt_ctx_free(ctx, ws->base, ws->total);
  *ws = (lt_workspace){0};
}
