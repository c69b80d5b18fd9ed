/* The in-place write behind the preallocated KV cache of the attention
 * modules (lua/lattice/transformer/cache.lua):
 *   cache (B, H, S, D) contiguous, pos, src (B, H, T, D) -> cache[:, :, pos : pos + T] = src
 * Tensors are immutable everywhere else; a cache buffer is the one exception,
 * owned by its cache object, so that decoding writes each new key and value
 * once instead of concatenating the whole history every step. src may be any
 * strided view of any float dtype (converted to the cache's on store). */
#include "lattice/transformer.h"
#include "autograd/tape.h"
#include "tensor/internal.h"

static int is_float(lt_dtype dt) { return lt_dtype_info(dt)->is_float; }

static lt_status check(lt_ctx *ctx, const lt_tensor *cache, int64_t pos, const lt_tensor *src) {
  if (cache->ndim != 4 || src->ndim != 4)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "kv_cache_write: cache and src must be 4-D (B, H, S, D), got %d-D and %d-D",
                       cache->ndim, src->ndim);
  if (!is_float(cache->dtype) || !is_float(src->dtype))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "kv_cache_write: cache and src must be float tensors, got %s and %s",
                       lt_dtype_info(cache->dtype)->name, lt_dtype_info(src->dtype)->name);
  if (!lt_tensor_is_contiguous(cache) || cache->storage->wrapped)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "kv_cache_write: the cache must be a contiguous tensor of its own");
  for (int a = 0; a < 4; a++)
    if (a != 2 && cache->shape[a] != src->shape[a])
      return lt_ctx_fail(ctx, LT_ERR_ARG,
                         "kv_cache_write: src has size %lld on axis %d, the cache %lld (only the positions may differ)",
                         (long long)src->shape[a], a + 1, (long long)cache->shape[a]);
  int64_t t = src->shape[2], s = cache->shape[2];
  if (pos < 0 || t > s - pos)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "kv_cache_write: positions %lld .. %lld are past the cache's %lld",
                       (long long)pos, (long long)(pos + t - 1), (long long)s);
  return LT_OK;
}

lt_status lt_kv_cache_write(lt_ctx *ctx, lt_tensor *cache, int64_t pos, lt_tensor *src) {
  lt_status st = check(ctx, cache, pos, src);
  if (st) return st;
  /* The cache is no node of the tape: a tracked src would lose its gradient. */
  if (lt__tape_wants(ctx, 1, &src))
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "kv_cache_write: src is being differentiated; a KV cache is for inference (decode without "
                       "a gradient)");
  lt_tensor *view = NULL;
  st = lt__slice_view(ctx, &view, cache, 2, pos, pos + src->shape[2], 1);
  if (st) return st;
  lt__assign(view, src);
  lt_tensor_release(view);
  return LT_OK;
}
