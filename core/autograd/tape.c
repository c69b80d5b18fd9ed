/* The tape: nodes recorded in execution order, walked in reverse by backward.
 * A tensor is tracked when its tape_gen equals the recording generation, so
 * tensors left over from an earlier tape are never mistaken for tracked ones. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct lt_tape {
  lt_node *nodes;
  int64_t nnodes, cap;
  int64_t nslots;
};

static int tracked(const lt_ctx *ctx, const lt_tensor *t) {
  uint64_t gen = lt__ctx_tape_gen(ctx);
  return gen != 0 && t->tape_gen == gen;
}

int lt_tape_is_recording(const lt_ctx *ctx) { return lt__ctx_tape_gen(ctx) != 0; }

int64_t lt_tape_size(lt_ctx *ctx) {
  lt_tape *tape = lt__ctx_tape(ctx);
  return tape ? tape->nnodes : 0;
}

lt_status lt_tape_begin(lt_ctx *ctx) {
  if (lt__ctx_tape(ctx))
    return lt_ctx_fail(ctx, LT_ERR_STATE, "value_and_grad: nested differentiation is not supported yet");
  lt_tape *tape = lt__ctx_spare_tape(ctx); /* the last tape's node array, reused */
  if (!tape) tape = calloc(1, sizeof *tape);
  if (!tape) return lt_ctx_fail(ctx, LT_ERR_MEM, "value_and_grad: out of memory");
  lt__ctx_set_tape(ctx, tape);
  lt__ctx_next_tape_gen(ctx);
  return LT_OK;
}

static void node_clear(lt_node *n) {
  for (int k = 0; k < n->nin; k++) lt_tensor_release(n->in[k]);
  for (int k = 0; k < LT_NODE_MAX_SAVED; k++) lt_tensor_release(n->saved[k]);
}

void lt__tape_free(lt_tape *tape) {
  if (!tape) return;
  for (int64_t i = 0; i < tape->nnodes; i++) node_clear(&tape->nodes[i]);
  free(tape->nodes);
  free(tape);
}

/* The node array is kept for the next tape: allocating it afresh every step
 * makes malloc consolidate the many small blocks Lua just freed (perf). */
void lt_tape_end(lt_ctx *ctx) {
  lt_tape *tape = lt__ctx_tape(ctx);
  if (!tape) return;
  for (int64_t i = 0; i < tape->nnodes; i++) node_clear(&tape->nodes[i]);
  tape->nnodes = tape->nslots = 0;
  lt__ctx_set_tape(ctx, NULL);
  lt__ctx_keep_spare_tape(ctx, tape);
}

static void track(lt_tape *tape, uint64_t gen, lt_tensor *t) {
  t->tape_gen = gen;
  t->slot = tape->nslots++;
}

lt_status lt_tape_watch(lt_ctx *ctx, lt_tensor **leaf, lt_tensor *x) {
  lt_tape *tape = lt__ctx_tape(ctx);
  if (!tape) return lt_ctx_fail(ctx, LT_ERR_STATE, "value_and_grad: no tape is recording");
  lt_status st = lt__view(ctx, leaf, x, x->ndim, x->shape, x->strides, x->offset);
  if (st == LT_OK) track(tape, lt__ctx_tape_gen(ctx), *leaf);
  return st;
}

int lt__tape_wants(const lt_ctx *ctx, int n, lt_tensor *const *inputs) {
  if (!lt_tape_is_recording(ctx)) return 0;
  for (int i = 0; i < n; i++)
    if (inputs[i] && tracked(ctx, inputs[i])) return 1;
  return 0;
}

lt_node *lt__tape_record(lt_ctx *ctx, const char *name, lt_backward_fn backward, lt_tensor *out, int nin,
                         lt_tensor *const *inputs) {
  lt_tape *tape = lt__ctx_tape(ctx);
  LT_ASSERT(tape && nin <= LT_NODE_MAX_IN);
  if (tape->nnodes == tape->cap) {
    int64_t cap = tape->cap ? 2 * tape->cap : 64;
    lt_node *nodes = realloc(tape->nodes, (size_t)cap * sizeof *nodes);
    if (!nodes) {
      lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory recording the tape", name);
      return NULL;
    }
    tape->nodes = nodes;
    tape->cap = cap;
  }
  lt_node *n = &tape->nodes[tape->nnodes++];
  memset(n, 0, sizeof *n);
  n->name = name;
  n->backward = backward;
  n->nin = nin;
  for (int k = 0; k < nin; k++) {
    n->in[k] = lt_tensor_retain(inputs[k]);
    n->needs[k] = inputs[k] && tracked(ctx, inputs[k]);
    n->in_slot[k] = n->needs[k] ? inputs[k]->slot : -1;
  }
  track(tape, lt__ctx_tape_gen(ctx), out);
  n->out_slot = out->slot;
  return n;
}

void lt__node_save(lt_node *node, int k, lt_tensor *t) {
  LT_ASSERT(k < LT_NODE_MAX_SAVED && !node->saved[k]);
  node->saved[k] = lt_tensor_retain(t);
}

lt_status lt__record(lt_ctx *ctx, lt_node **node, const char *name, lt_backward_fn backward, lt_tensor **out, int nin,
                     lt_tensor *const *inputs) {
  if (node) *node = NULL;
  if (!lt__tape_wants(ctx, nin, inputs)) return LT_OK;
  lt_node *n = lt__tape_record(ctx, name, backward, *out, nin, inputs);
  if (!n) {
    lt_tensor_release(*out);
    *out = NULL;
    return LT_ERR_MEM;
  }
  if (node) *node = n;
  return LT_OK;
}

/* grads[slot] += g (g is consumed). */
static lt_status accumulate(lt_ctx *ctx, lt_tensor **slot, lt_tensor *g) {
  if (!*slot) {
    *slot = g;
    return LT_OK;
  }
  lt_tensor *sum;
  lt_status st = lt_binary(ctx, &sum, LT_ADD, *slot, g);
  lt_tensor_release(g);
  if (st) return st;
  lt_tensor_release(*slot);
  *slot = sum;
  return LT_OK;
}

static lt_status run_node(lt_ctx *ctx, const lt_node *n, lt_tensor **grads) {
  lt_tensor *gout = grads[n->out_slot], *gin[LT_NODE_MAX_IN] = {0};
  grads[n->out_slot] = NULL;
  lt_status st = n->backward(ctx, n, gout, gin);
  lt_tensor_release(gout);
  for (int k = 0; k < n->nin; k++) {
    if (!gin[k]) continue;
    if (st == LT_OK && n->needs[k]) {
      LT_ASSERT(gin[k]->ndim == n->in[k]->ndim &&
                memcmp(gin[k]->shape, n->in[k]->shape, (size_t)gin[k]->ndim * sizeof(int64_t)) == 0);
      st = accumulate(ctx, &grads[n->in_slot[k]], gin[k]);
    } else {
      lt_tensor_release(gin[k]);
    }
  }
  return st;
}

static lt_status leaf_grads(lt_ctx *ctx, lt_tensor **grads, int nleaves, lt_tensor *const *leaves, lt_tensor **out) {
  for (int i = 0; i < nleaves; i++) {
    const lt_tensor *leaf = leaves[i];
    lt_tensor *g = tracked(ctx, leaf) ? grads[leaf->slot] : NULL;
    lt_status st;
    if (!g) {
      st = lt_tensor_zeros(ctx, &out[i], leaf->dtype, leaf->ndim, leaf->shape);
    } else if (g->dtype != leaf->dtype) {
      st = lt_astype(ctx, &out[i], g, leaf->dtype);
    } else {
      out[i] = lt_tensor_retain(g);
      st = LT_OK;
    }
    if (st) {
      lt__release_all(i, out);
      return st;
    }
  }
  return LT_OK;
}

lt_status lt_tape_backward(lt_ctx *ctx, lt_tensor *y, int nleaves, lt_tensor *const *leaves, lt_tensor **out) {
  lt_tape *tape = lt__ctx_tape(ctx);
  if (!tape) return lt_ctx_fail(ctx, LT_ERR_STATE, "value_and_grad: no tape is recording");
  if (lt_tensor_size(y) != 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "value_and_grad: the function must return a scalar, got %lld elements",
                       (long long)lt_tensor_size(y));
  if (!lt_dtype_info(y->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "value_and_grad: the function must return a float, got %s",
                       lt_dtype_info(y->dtype)->name);
  lt_tensor **grads = calloc((size_t)tape->nslots + 1, sizeof *grads);
  if (!grads) return lt_ctx_fail(ctx, LT_ERR_MEM, "value_and_grad: out of memory");
  lt_status st = LT_OK;
  if (tracked(ctx, y)) {
    /* Backward rules call ordinary ops; with the generation paused they record nothing. */
    uint64_t gen = lt__ctx_pause_tape(ctx);
    st = lt_tensor_full(ctx, &grads[y->slot], y->dtype, y->ndim, y->shape, 1.0);
    for (int64_t i = tape->nnodes - 1; st == LT_OK && i >= 0; i--)
      if (grads[tape->nodes[i].out_slot]) st = run_node(ctx, &tape->nodes[i], grads);
    lt__ctx_resume_tape(ctx, gen);
  }
  if (st == LT_OK) st = leaf_grads(ctx, grads, nleaves, leaves, out);
  for (int64_t i = 0; i < tape->nslots; i++) lt_tensor_release(grads[i]);
  free(grads);
  return st;
}

lt_status lt_stop_gradient(lt_ctx *ctx, lt_tensor **out, lt_tensor *x) {
  /* A fresh header is untracked, and no node links it to x. */
  return lt__view(ctx, out, x, x->ndim, x->shape, x->strides, x->offset);
}
