/* Definitions shared by the core's files and by nobody else. */
#ifndef LATTICE_INTERNAL_H
#define LATTICE_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "lattice/lattice.h"

#define LT_ALIGN     64
#define LT_ASSERT(c) ((c) ? (void)0 : lt__assert_fail(#c, __FILE__, __LINE__))
void lt__assert_fail(const char *cond, const char *file, int line);

/* ---- storage and tensor ---- */

typedef struct lt_storage {
  int64_t refcount;
  void *data;
  size_t nbytes;
  lt_ctx *ctx; /* retained; its allocator owns `data` unless wrapped */
  int wrapped; /* a host buffer: released through `release`, if any */
  void (*release)(void *ud);
  void *release_ud;
} lt_storage;

struct lt_tensor {
  int64_t refcount;
  lt_storage *storage;
  int64_t offset; /* elements */
  int ndim;
  lt_dtype dtype;
  int64_t shape[LT_MAX_DIMS];
  int64_t strides[LT_MAX_DIMS]; /* elements */
  /* autograd: tracked when tape_gen equals the context's recording generation */
  uint64_t tape_gen;
  int64_t slot;
};

/* A new header viewing `base`'s storage with the given layout (untracked). */
lt_status lt__view(lt_ctx *ctx, lt_tensor **out, const lt_tensor *base, int ndim, const int64_t *shape,
                   const int64_t *strides, int64_t offset);
int64_t lt__numel(int ndim, const int64_t *shape);
/* Normalises a possibly negative axis; returns -1 when out of range. */
int lt__axis(int axis, int ndim);
/* Formats a shape as "{2,3}" into buf. */
const char *lt__shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
#define LT_SHAPE_STR_MAX 200
/* Contiguous version of x in dtype dt: a new reference (x itself when already so). */
lt_status lt__as_contig(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype dt);
static inline lt_status lt__as_f32(lt_ctx *ctx, lt_tensor **out, lt_tensor *x) {
  return lt__as_contig(ctx, out, x, LT_FLOAT32);
}
/* Replaces *t (contiguous) by its conversion to dt, releasing the old one
 * (nothing to do when it already has dt). On failure *t is NULL. */
lt_status lt__to_dtype(lt_ctx *ctx, lt_tensor **t, lt_dtype dt);
static inline float *lt__f32(const lt_tensor *t) { return (float *)t->storage->data + t->offset; }
/* The dtype float results take for a given input dtype (ints compute in float32). */
static inline lt_dtype lt__float_result(lt_dtype dt) {
  return (dt == LT_FLOAT16 || dt == LT_BFLOAT16) ? dt : LT_FLOAT32;
}
/* Gradient reduced from a broadcast shape back to `ndim/shape` by summing. */
lt_status lt__sum_to_shape(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, int ndim, const int64_t *shape);
/* Broadcast result shape of a and b; returns 0 and fails ctx when incompatible. */
int lt__broadcast_shape(lt_ctx *ctx, const char *op, int *ndim, int64_t *shape, const lt_tensor *a, const lt_tensor *b);
void lt__release_all(int n, lt_tensor **ts);
/* Strides (in elements) of contiguous t read in the broadcast shape (nd,
 * shape): 0 on broadcast axes. */
void lt__broadcast_strides(int nd, const int64_t *shape, const lt_tensor *t, int64_t *strides);
/* The common dtype of two operands: a float wins (two different floats meet
 * in float32), else the wider integer (bool < uint8 < int32 < int64). */
lt_dtype lt__promote(lt_dtype a, lt_dtype b);
/* Writes src (same shape, any layout and dtype) into the view dst. */
void lt__assign(lt_tensor *dst, const lt_tensor *src);
/* An untracked view of x[start:stop] along the 0-based axis. */
lt_status lt__slice_view(lt_ctx *ctx, lt_tensor **out, const lt_tensor *x, int axis, int64_t start, int64_t stop);

/* ---- autograd tape ---- */

#define LT_NODE_MAX_IN    4
#define LT_NODE_MAX_SAVED 4
typedef struct lt_node lt_node;
/* Computes the gradients of the inputs from `gout` (the gradient of the output).
 * gin[k] is wanted only where node->needs[k]; each gin[k] is a new reference with
 * the input's shape, or NULL for "no gradient". Ops called here record nothing. */
typedef lt_status (*lt_backward_fn)(lt_ctx *ctx, const lt_node *node, lt_tensor *gout, lt_tensor **gin);
struct lt_node {
  const char *name;
  lt_backward_fn backward;
  int nin;
  lt_tensor *in[LT_NODE_MAX_IN]; /* retained */
  int needs[LT_NODE_MAX_IN];     /* input is tracked */
  int64_t in_slot[LT_NODE_MAX_IN];
  lt_tensor *saved[LT_NODE_MAX_SAVED]; /* retained; often the output */
  int64_t out_slot;
  double f[4]; /* op attributes */
  int64_t i[LT_MAX_DIMS + 4];
};

/* True when recording and any of the n inputs is tracked. */
int lt__tape_wants(const lt_ctx *ctx, int n, lt_tensor *const *inputs);
/* Records a node producing `out` (tracked from now on). Returns the node for
 * attributes and saved values (lt__node_save), or NULL with ctx failed. */
lt_node *lt__tape_record(lt_ctx *ctx, const char *name, lt_backward_fn backward, lt_tensor *out, int nin,
                         lt_tensor *const *inputs);
void lt__node_save(lt_node *node, int k, lt_tensor *t);
/* Records `out = op(inputs...)` if wanted, releasing *out on failure. */
lt_status lt__record(lt_ctx *ctx, lt_node **node, const char *name, lt_backward_fn backward, lt_tensor **out, int nin,
                     lt_tensor *const *inputs);

/* ---- context internals ---- */

/* Spare tensor headers and storage records kept on the context, so that
 * creating a tensor calls no malloc (see ctx.c). */
typedef enum lt_obj_kind { LT_OBJ_TENSOR, LT_OBJ_STORAGE, LT_OBJ_KINDS } lt_obj_kind;
void *lt__ctx_obj_get(lt_ctx *ctx, lt_obj_kind kind); /* zeroed, or NULL */
void lt__ctx_obj_put(lt_ctx *ctx, lt_obj_kind kind, void *p);

typedef struct lt_tape lt_tape;
int lt__ctx_threads(const lt_ctx *ctx);
lt_tape *lt__ctx_tape(lt_ctx *ctx);
void lt__ctx_set_tape(lt_ctx *ctx, lt_tape *tape);
/* An ended tape kept for reuse: take it (or NULL), keep one, free one. */
lt_tape *lt__ctx_spare_tape(lt_ctx *ctx);
void lt__ctx_keep_spare_tape(lt_ctx *ctx, lt_tape *tape);
void lt__tape_free(lt_tape *tape);
uint64_t lt__ctx_tape_gen(const lt_ctx *ctx);
uint64_t lt__ctx_next_tape_gen(lt_ctx *ctx);
/* Stops recording for a while (backward rules); returns what resume restores. */
uint64_t lt__ctx_pause_tape(lt_ctx *ctx);
void lt__ctx_resume_tape(lt_ctx *ctx, uint64_t gen);
/* Hands out `n` consecutive RNG counters. */
uint64_t lt__ctx_rng_take(lt_ctx *ctx, uint64_t n, uint64_t *key);
lt_isa lt__ctx_isa(const lt_ctx *ctx);
/* Sets OpenBLAS's thread count to the context's before a BLAS call. */
void lt__blas_threads(const lt_ctx *ctx);

/* ---- expression pool for backward rules ----
 * Each helper returns a new tensor owned by the pool, or NULL when an input is
 * NULL or the op failed (the first failure is kept). Rules read like the math:
 *   lt_pool p = LT_POOL(ctx);
 *   gin[0] = lt__pkeep(&p, lt__psum_to(&p, lt__pbin(&p, LT_MUL, g, b), a));
 *   return lt__pool_drain(&p);
 */
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

/* Work (elements) below which an op stays on one thread. */
#define LT_GRAIN 32768

/* for (int64_t i = 0; i < n; i++) { body }, split statically over `threads`
 * OpenMP threads. With one thread it runs the plain loop without entering
 * OpenMP at all: here even a one-thread parallel region costs a futex call
 * (~1.5 us, measured), more than a whole small op. The body is a braced block
 * that must not break out of the loop or return. */
// clang-format off
#define LT_PARALLEL_FOR(threads, i, n, ...)                                 \
  do {                                                                      \
    int lt_threads_ = (threads);                                            \
    int64_t lt_n_ = (n);                                                    \
    if (lt_threads_ > 1) {                                                  \
      _Pragma("omp parallel for num_threads(lt_threads_) schedule(static)") \
      for (int64_t i = 0; i < lt_n_; i++) __VA_ARGS__                       \
    } else {                                                                \
      for (int64_t i = 0; i < lt_n_; i++) __VA_ARGS__                       \
    }                                                                       \
  } while (0)
// clang-format on

/* y[i] = exp(x[i] - shift) for n floats, within 1 ulp of expf, in a loop the
 * compiler vectorises (core/ops/expf.h, defined in softmax.c). y may equal x. */
void lt__exp_shift(float *y, const float *x, float shift, int64_t n);

#endif
