/* The expression pool that keeps backward rules short. Each helper returns a
 * new tensor owned by the pool, or NULL when an input is NULL or the op failed
 * (the first failure is kept). Rules read like the math:
 *   lt_pool p = LT_POOL(ctx);
 *   gin[0] = lt__pkeep(&p, lt__psum_to(&p, lt__pbin(&p, LT_BINARY_MUL, g, b), a));
 *   return lt__pool_drain(&p); */
#ifndef LATTICE_OPS_POOL_H
#define LATTICE_OPS_POOL_H

#include "ops/internal.h"

#define LT_POOL_MAX 32
typedef struct lt_pool {
  lt_ctx *ctx;
  lt_status st;
  int n;
  lt_tensor *items[LT_POOL_MAX];
} lt_pool;
#define LT_POOL(ctx) ((lt_pool){.ctx = (ctx)})

/* Takes ownership of t (from an lt_status-returning op) into the pool. */
lt_tensor *lt__padd(lt_pool *p, lt_status st, lt_tensor *t);
lt_tensor *lt__pbin(lt_pool *p, lt_binary_op op, lt_tensor *a, lt_tensor *b);
lt_tensor *lt__pun(lt_pool *p, lt_unary_op op, lt_tensor *x, double alpha);
lt_tensor *lt__pscalar(lt_pool *p, double v, lt_dtype dt);
/* g summed down to the shape of `like`. */
lt_tensor *lt__psum_to(lt_pool *p, lt_tensor *g, const lt_tensor *like);
/* A new reference to t for the caller (NULL stays NULL). */
lt_tensor *lt__pkeep(lt_pool *p, lt_tensor *t);
/* Releases the pool's tensors; returns the first failure. */
lt_status lt__pool_drain(lt_pool *p);

#endif
