/* The expression pool that keeps backward rules short (ops/pool.h). */
#include "ops/pool.h"

lt_tensor *lt__padd(lt_pool *p, lt_status st, lt_tensor *t) {
  if (st) {
    if (p->st == LT_OK) p->st = st;
    return NULL;
  }
  LT_ASSERT(p->n < LT_POOL_MAX);
  p->items[p->n++] = t;
  return t;
}

lt_tensor *lt__pbin(lt_pool *p, lt_binary_op op, lt_tensor *a, lt_tensor *b) {
  if (!a || !b) return NULL;
  lt_tensor *t = NULL;
  lt_status st = lt_binary(p->ctx, &t, op, a, b);
  return lt__padd(p, st, t);
}

lt_tensor *lt__pun(lt_pool *p, lt_unary_op op, lt_tensor *x, double alpha) {
  if (!x) return NULL;
  lt_tensor *t = NULL;
  lt_status st = lt_unary(p->ctx, &t, op, x, alpha);
  return lt__padd(p, st, t);
}

lt_tensor *lt__pscalar(lt_pool *p, double v, lt_dtype dt) {
  lt_tensor *t = NULL;
  lt_status st = lt_tensor_full(p->ctx, &t, dt, 0, NULL, v);
  return lt__padd(p, st, t);
}

lt_tensor *lt__psum_to(lt_pool *p, lt_tensor *g, const lt_tensor *like) {
  if (!g) return NULL;
  lt_tensor *t = NULL;
  lt_status st = lt__sum_to_shape(p->ctx, &t, g, like->ndim, like->shape);
  return lt__padd(p, st, t);
}

lt_tensor *lt__pkeep(lt_pool *p, lt_tensor *t) {
  (void)p;
  return lt_tensor_retain(t);
}

lt_status lt__pool_drain(lt_pool *p) {
  lt__release_all(p->n, p->items);
  p->n = 0;
  return p->st;
}
