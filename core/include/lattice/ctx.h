/* The runtime context: everything a computation needs hangs off one lt_ctx
 * (allocator, thread count, RNG, autograd tape, last error). One lua_State owns
 * one context; two contexts never see each other. */
#ifndef LATTICE_CTX_H
#define LATTICE_CTX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_ctx lt_ctx;

typedef enum lt_status {
  LT_OK = 0,
  LT_ERR_ARG,  /* bad argument: shape, dtype, axis, index, option */
  LT_ERR_MEM,  /* allocation failed */
  LT_ERR_IO,   /* file could not be read or written, or is malformed */
  LT_ERR_STATE /* call not allowed now (e.g. backward with no tape) */
} lt_status;

/* Returns a new context with one reference, or NULL when out of memory. */
lt_ctx *lt_ctx_new(void);
lt_ctx *lt_ctx_retain(lt_ctx *ctx);
/* Drops one reference; the context is freed with its last reference. */
void lt_ctx_release(lt_ctx *ctx);
/* The owner's release: ends any recording tape and destroys the context's
 * caches first (they may hold tensors, which hold the context), then drops
 * the reference. Tensors still alive keep the rest until their last release.
 * A lua_State's context is closed this way when the state closes. */
void lt_ctx_close(lt_ctx *ctx);

/* The message of the last failed call, prefixed with the public function name. */
const char *lt_ctx_error(const lt_ctx *ctx);
/* Sets the message (printf-style) and returns `status`, so callers can write
 * `return lt_ctx_fail(ctx, LT_ERR_ARG, "matmul: ...")`. */
lt_status lt_ctx_fail(lt_ctx *ctx, lt_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Threads used by lattice's own OpenMP loops and by OpenBLAS: n clamped to
 * 1 .. LT_MAX_THREADS (a count past it would only ask OpenMP for threads
 * that cannot run at once). */
#define LT_MAX_THREADS 1024
void lt_ctx_set_num_threads(lt_ctx *ctx, int n);
int lt_ctx_num_threads(const lt_ctx *ctx);

/* Caching allocator (size classes, 64-byte aligned, bounded cache). */
typedef struct lt_memory_stats {
  size_t in_use; /* bytes handed out and not yet returned */
  size_t cached; /* bytes held in the cache for reuse */
  size_t peak;   /* highest in_use seen */
  size_t limit;  /* most bytes the cache keeps */
} lt_memory_stats;

/* NULL when the bytes cannot be had (past 2^63 they never can). */
void *lt_ctx_alloc(lt_ctx *ctx, size_t nbytes);
void lt_ctx_free(lt_ctx *ctx, void *ptr, size_t nbytes);
lt_memory_stats lt_ctx_memory_stats(const lt_ctx *ctx);
void lt_ctx_set_cache_limit(lt_ctx *ctx, size_t bytes);
/* Returns every cached block to the system. */
void lt_ctx_clear_cache(lt_ctx *ctx);
/* Bytes handed out since they were last taken, once they reach `min` (else 0,
 * and they keep adding up); the Lua binding reports them to the GC. */
size_t lt_ctx_take_alloc_debt(lt_ctx *ctx, size_t min);

/* Counter-based RNG: results do not depend on the thread count. */
void lt_ctx_seed(lt_ctx *ctx, uint64_t seed);
/* The generator's whole state: its key (the seed) and the counters handed out
 * so far. Setting a saved state makes the next draws those that followed it,
 * which is how a training run resumes bit for bit. */
void lt_ctx_rng_state(const lt_ctx *ctx, uint64_t *key, uint64_t *counter);
void lt_ctx_set_rng_state(lt_ctx *ctx, uint64_t key, uint64_t counter);

/* Monotonic wall clock in seconds. */
double lt_now(void);

#ifdef __cplusplus
}
#endif

#endif
