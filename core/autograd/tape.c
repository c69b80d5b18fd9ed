/* The tape: nodes recorded in execution order, walked in reverse by backward.
 * A tensor is tracked when its tape_gen equals the recording generation, so
 * tensors left over from an earlier tape are never mistaken for tracked ones.
 * The tape lives in the context's LT_SLOT_TAPE; its node list and arena are
 * kept between tapes, so a training step records without calling malloc. */
#include <stdlib.h>
#include <string.h>
#include "autograd/tape.h"
#include "runtime/arena.h"
#include "runtime/context.h"

typedef struct lt_tape {
  lt_arena arena;
  lt_node **nodes;
  int64_t nnodes, cap;
  int64_t nslots;
} lt_tape;

static void tape_destroy(void *p);

static lt_tape *tape_of(const lt_ctx *ctx) { return lt__ctx_slot(ctx, LT_SLOT_TAPE); }

static int tracked(const lt_ctx *ctx, const lt_tensor *t) {
  uint64_t gen = lt__ctx_tape_gen(ctx);
  return gen != 0 && t->tape_gen == gen;
}

int lt_tape_is_recording(const lt_ctx *ctx) { return lt__ctx_tape_gen(ctx) != 0; }
uint64_t lt_tape_generation(const lt_ctx *ctx) { return lt__ctx_tape_gen(ctx); }

int64_t lt_tape_size(lt_ctx *ctx) {
  lt_tape *tape = tape_of(ctx);
  return tape && lt_tape_is_recording(ctx) ? tape->nnodes : 0;
}

lt_status lt_tape_begin(lt_ctx *ctx) {
  if (lt_tape_is_recording(ctx))
    return lt_ctx_fail(ctx, LT_ERR_STATE, "value_and_grad: nested differentiation is not supported yet");
  if (!tape_of(ctx)) {
    lt_tape *tape = calloc(1, sizeof *tape);
    if (!tape) return lt_ctx_fail(ctx, LT_ERR_MEM, "value_and_grad: out of memory");
    lt__ctx_set_slot(ctx, LT_SLOT_TAPE, tape, tape_destroy);
  }
  lt__ctx_set_tape_gen(ctx, lt__ctx_new_tape_gen(ctx));
  return LT_OK;
}

static void node_clear(lt_node *n) {
  for (int k = 0; k < n->nin; k++) lt_tensor_release(n->in[k]);
  for (int k = 0; k < n->nsaved; k++)
    if (n->saved[k].obj && n->saved[k].release) n->saved[k].release(n->saved[k].obj);
}

/* Releases what the nodes hold; keeps the node list and the arena's blocks. */
static void tape_clear(lt_tape *tape) {
  for (int64_t i = 0; i < tape->nnodes; i++) node_clear(tape->nodes[i]);
  tape->nnodes = tape->nslots = 0;
  lt__arena_reset(&tape->arena);
}

static void tape_destroy(void *p) {
  lt_tape *tape = p;
  tape_clear(tape);
  lt__arena_free(&tape->arena);
  free(tape->nodes);
  free(tape);
}

void lt_tape_end(lt_ctx *ctx) {
  lt_tape *tape = tape_of(ctx);
  lt__ctx_set_tape_gen(ctx, 0);
  if (tape) tape_clear(tape);
}

static void track(lt_tape *tape, uint64_t gen, lt_tensor *t) {
  t->tape_gen = gen;
  t->slot = tape->nslots++;
}

lt_status lt_tape_watch(lt_ctx *ctx, lt_tensor **leaf, lt_tensor *x) {
  *leaf = NULL;
  if (!lt_tape_is_recording(ctx)) return lt_ctx_fail(ctx, LT_ERR_STATE, "value_and_grad: no tape is recording");
  lt_status st = lt__view(ctx, leaf, x, x->ndim, x->shape, x->strides, x->offset);
  if (st == LT_OK) track(tape_of(ctx), lt__ctx_tape_gen(ctx), *leaf);
  return st;
}

int lt__tape_wants(const lt_ctx *ctx, int n, lt_tensor *const *inputs) {
  if (!lt_tape_is_recording(ctx)) return 0;
  for (int i = 0; i < n; i++)
    if (inputs[i] && tracked(ctx, inputs[i])) return 1;
  return 0;
}

/* Bytes rounded up to the arena's alignment. */
static size_t aligned(size_t n) { return (n + 15) / 16 * 16; }

/* A zeroed node with its arrays, appended to the tape; NULL when out of
 * memory. The node and its arrays are one arena allocation. */
static lt_node *node_new(lt_tape *tape, lt_op op, int nin, int nout) {
  if (tape->nnodes == tape->cap) {
    int64_t cap = tape->cap ? 2 * tape->cap : 256;
    lt_node **nodes = realloc(tape->nodes, (size_t)cap * sizeof *nodes);
    if (!nodes) return NULL;
    tape->nodes = nodes;
    tape->cap = cap;
  }
  size_t sizes[6] = {sizeof(lt_node),
                     (size_t)nin * sizeof(lt_tensor *),
                     (size_t)nin * sizeof(int64_t),
                     (size_t)nout * sizeof(int64_t),
                     (size_t)op.nsaved * sizeof(lt_saved),
                     op.attrs_size};
  size_t total = 0;
  for (int k = 0; k < 6; k++) total += aligned(sizes[k]);
  char *p = lt__arena_alloc(&tape->arena, total);
  if (!p) return NULL;
  char *parts[6];
  for (int k = 0; k < 6; k++) parts[k] = p, p += aligned(sizes[k]);
  lt_node *n = (lt_node *)parts[0];
  *n = (lt_node){.name = op.name,
                 .backward = op.backward,
                 .nin = nin,
                 .nout = nout,
                 .nsaved = op.nsaved,
                 .in = (lt_tensor **)parts[1],
                 .in_slot = (int64_t *)parts[2],
                 .out_slot = (int64_t *)parts[3],
                 .saved = (lt_saved *)parts[4],
                 .attrs = parts[5]};
  tape->nodes[tape->nnodes++] = n;
  return n;
}

lt_status lt__record_outputs(lt_ctx *ctx, lt_node **node, lt_op op, int nout, lt_tensor **outs, int nin,
                             lt_tensor *const *inputs) {
  if (node) *node = NULL;
  if (!lt__tape_wants(ctx, nin, inputs)) return LT_OK;
  lt_tape *tape = tape_of(ctx);
  lt_node *n = node_new(tape, op, nin, nout);
  if (!n) {
    lt__release_all(nout, outs);
    return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory recording the tape", op.name);
  }
  for (int k = 0; k < nin; k++) {
    n->in[k] = lt_tensor_retain(inputs[k]);
    n->in_slot[k] = inputs[k] && tracked(ctx, inputs[k]) ? inputs[k]->slot : -1;
  }
  for (int k = 0; k < nout; k++) {
    track(tape, lt__ctx_tape_gen(ctx), outs[k]);
    n->out_slot[k] = outs[k]->slot;
  }
  if (node) *node = n;
  return LT_OK;
}

lt_status lt__record(lt_ctx *ctx, lt_node **node, lt_op op, lt_tensor **out, int nin, lt_tensor *const *inputs) {
  lt_status st = lt__record_outputs(ctx, node, op, 1, out, nin, inputs);
  if (st) *out = NULL;
  return st;
}

void lt__node_keep(lt_node *node, int k, void *obj, void (*release)(void *obj)) {
  LT_ASSERT(k < node->nsaved && !node->saved[k].obj);
  node->saved[k] = (lt_saved){obj, release};
}

static void release_tensor(void *t) { lt_tensor_release(t); }

void lt__node_save(lt_node *node, int k, lt_tensor *t) { lt__node_keep(node, k, lt_tensor_retain(t), release_tensor); }

/* ---- backward ---- */

/* Runs one node: takes its outputs' gradients out of `grads`, adds the inputs'
 * gradients into theirs. Gradients a rule returns for inputs that need none
 * are dropped. */
static lt_status run_node(lt_ctx *ctx, const lt_node *n, lt_tensor **grads, lt_tensor **gout, lt_tensor **gin) {
  for (int k = 0; k < n->nout; k++) {
    gout[k] = grads[n->out_slot[k]];
    grads[n->out_slot[k]] = NULL;
  }
  memset(gin, 0, (size_t)n->nin * sizeof *gin);
  lt_status st = n->backward(ctx, n, gout, gin);
  lt__release_all(n->nout, gout);
  for (int k = 0; k < n->nin; k++) {
    if (!gin[k]) continue;
    if (st == LT_OK && lt__needs(n, k)) {
      LT_ASSERT(gin[k]->ndim == n->in[k]->ndim &&
                memcmp(gin[k]->shape, n->in[k]->shape, (size_t)gin[k]->ndim * sizeof(int64_t)) == 0);
      st = lt__grad_accumulate(ctx, &grads[n->in_slot[k]], gin[k]);
    } else {
      lt_tensor_release(gin[k]);
    }
    gin[k] = NULL;
  }
  return st;
}

static int has_gradient(const lt_node *n, lt_tensor *const *grads) {
  for (int k = 0; k < n->nout; k++)
    if (grads[n->out_slot[k]]) return 1;
  return 0;
}

/* The node list walked backwards; gout/gin scratch sized for the widest node. */
static lt_status run_nodes(lt_ctx *ctx, lt_tape *tape, lt_tensor **grads) {
  int width = 1;
  for (int64_t i = 0; i < tape->nnodes; i++) {
    if (tape->nodes[i]->nin > width) width = tape->nodes[i]->nin;
    if (tape->nodes[i]->nout > width) width = tape->nodes[i]->nout;
  }
  lt_tensor **scratch = lt__arena_alloc(&tape->arena, 2 * (size_t)width * sizeof *scratch);
  if (!scratch) return lt_ctx_fail(ctx, LT_ERR_MEM, "value_and_grad: out of memory");
  lt_status st = LT_OK;
  for (int64_t i = tape->nnodes - 1; st == LT_OK && i >= 0; i--)
    if (has_gradient(tape->nodes[i], grads)) st = run_node(ctx, tape->nodes[i], grads, scratch, scratch + width);
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
      st = lt__copy_as(ctx, &out[i], g, leaf->dtype);
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

static lt_status check_output(lt_ctx *ctx, const lt_tensor *y) {
  if (lt_tensor_size(y) != 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "value_and_grad: the function must return a scalar, got %lld elements",
                       (long long)lt_tensor_size(y));
  if (!lt_dtype_info(y->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "value_and_grad: the function must return a float, got %s",
                       lt_dtype_info(y->dtype)->name);
  return LT_OK;
}

lt_status lt_tape_backward(lt_ctx *ctx, lt_tensor *y, int nleaves, lt_tensor *const *leaves, lt_tensor **out) {
  lt_tape *tape = tape_of(ctx);
  if (!lt_tape_is_recording(ctx)) return lt_ctx_fail(ctx, LT_ERR_STATE, "value_and_grad: no tape is recording");
  lt_status st = check_output(ctx, y);
  if (st) return st;
  lt_tensor **grads = calloc((size_t)tape->nslots + 1, sizeof *grads);
  if (!grads) return lt_ctx_fail(ctx, LT_ERR_MEM, "value_and_grad: out of memory");
  if (tracked(ctx, y)) {
    /* Backward rules call ordinary ops; with the generation paused they record nothing. */
    uint64_t gen = lt__ctx_tape_gen(ctx);
    lt__ctx_set_tape_gen(ctx, 0);
    st = lt_tensor_full(ctx, &grads[y->slot], y->dtype, y->ndim, y->shape, 1.0);
    if (st == LT_OK) st = run_nodes(ctx, tape, grads);
    lt__ctx_set_tape_gen(ctx, gen);
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
