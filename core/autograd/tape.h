/* The autograd tape as ops see it: what a node holds and how an op records
 * one. A node has any number of inputs and outputs, saved values that may be
 * tensors or other objects with their release function, and the op's own
 * attribute struct; all of it comes from the tape's arena and is released
 * when the tape ends.
 *
 * Recording an op (most have one output):
 *   typedef struct softmax_attrs { int axis, is_log; } softmax_attrs;
 *   lt_node *n;
 *   st = lt__record(ctx, &n, LT_OP("softmax", softmax_backward, softmax_attrs, 1), out, 1, &x);
 *   if (n) {
 *     *(softmax_attrs *)n->attrs = (softmax_attrs){axis, is_log};
 *     lt__node_save(n, 0, *out);
 *   }
 * n is NULL when nothing was recorded (no input is tracked, or no tape). */
#ifndef LATTICE_AUTOGRAD_TAPE_H
#define LATTICE_AUTOGRAD_TAPE_H

#include "tensor/internal.h"

typedef struct lt_node lt_node;

/* Computes the gradients of a node's inputs. gout[k] is the gradient of
 * output k with that output's shape, or NULL when none reached it (read it as
 * zeros); at least one is non-NULL. The rule writes gin[k] for the inputs
 * lt__needs(node, k) names: a new reference with input k's shape (any float
 * dtype; the tape converts), or NULL for "no gradient" (zeros). Ops called
 * here record nothing. On failure the tape releases whatever gin holds. */
typedef lt_status (*lt_backward_fn)(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gout, lt_tensor **gin);

/* A value kept for backward: a tensor (release = lt_tensor_release) or any
 * object with its own release function. */
typedef struct lt_saved {
  void *obj;
  void (*release)(void *obj);
} lt_saved;

struct lt_node {
  const char *name;
  lt_backward_fn backward;
  int nin, nout, nsaved;
  lt_tensor **in;   /* retained; may hold NULL for an absent optional input */
  int64_t *in_slot; /* -1 where input k is not tracked: no gradient is wanted */
  int64_t *out_slot;
  lt_saved *saved; /* zeroed until saved */
  void *attrs;     /* the op's attribute struct, zeroed */
};

/* What a kind of op records: its name (errors name it), its backward rule,
 * the size of its attribute struct and how many values it may save. */
typedef struct lt_op {
  const char *name;
  lt_backward_fn backward;
  size_t attrs_size;
  int nsaved;
} lt_op;
#define LT_OP(name, backward, attrs_type, nsaved) ((lt_op){(name), (backward), sizeof(attrs_type), (nsaved)})
/* For ops without attributes. */
typedef struct lt_no_attrs {
  char unused;
} lt_no_attrs;

static inline int lt__needs(const lt_node *n, int k) { return n->in_slot[k] >= 0; }
static inline lt_tensor *lt__saved(const lt_node *n, int k) { return (lt_tensor *)n->saved[k].obj; }

/* True when recording and any of the n inputs (NULL entries allowed) is tracked. */
int lt__tape_wants(const lt_ctx *ctx, int n, lt_tensor *const *inputs);
/* Records `out = op(inputs...)` when wanted: *node is the new node, or NULL
 * when nothing needed recording. On failure *out is released and NULL. */
lt_status lt__record(lt_ctx *ctx, lt_node **node, lt_op op, lt_tensor **out, int nin, lt_tensor *const *inputs);
/* The same for ops with several outputs; on failure every output is released. */
lt_status lt__record_outputs(lt_ctx *ctx, lt_node **node, lt_op op, int nout, lt_tensor **outs, int nin,
                             lt_tensor *const *inputs);
/* Saves tensor t (retained) as value k. */
void lt__node_save(lt_node *node, int k, lt_tensor *t);
/* Saves any object as value k; the node owns it and calls release(obj) when
 * the tape ends (release may be NULL for objects that need none). */
void lt__node_keep(lt_node *node, int k, void *obj, void (*release)(void *obj));

/* *acc += g for a gradient slot (g is consumed): the sum is written into *acc
 * when *acc is uniquely owned, contiguous and of a float dtype that holds it,
 * else a new tensor replaces it. (autograd/accumulate.c) */
lt_status lt__grad_accumulate(lt_ctx *ctx, lt_tensor **acc, lt_tensor *g);

#endif
