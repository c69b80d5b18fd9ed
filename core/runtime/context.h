/* The context's internals, for the core's areas (the public part is
 * lattice/ctx.h). The context knows nothing of what other areas keep on it:
 * they hang their state (the autograd tape, the coordinate manager's caches)
 * in extension slots, each with the destructor that frees it. */
#ifndef LATTICE_RUNTIME_CONTEXT_H
#define LATTICE_RUNTIME_CONTEXT_H

#include "base.h"

/* Spare tensor headers and storage records kept on the context, so that
 * creating a tensor calls no malloc (see ctx.c). Single-threaded: tensors are
 * created outside parallel regions. */
typedef enum lt_obj_kind { LT_OBJ_TENSOR, LT_OBJ_STORAGE, LT_OBJ_KINDS } lt_obj_kind;
void *lt__ctx_obj_get(lt_ctx *ctx, lt_obj_kind kind); /* zeroed, or NULL */
void lt__ctx_obj_put(lt_ctx *ctx, lt_obj_kind kind, void *p);

int lt__ctx_threads(const lt_ctx *ctx);
lt_isa lt__ctx_isa(const lt_ctx *ctx);
/* Hands out `n` consecutive RNG counters. */
uint64_t lt__ctx_rng_take(lt_ctx *ctx, uint64_t n, uint64_t *key);

/* The generation of the recording tape, 0 when none records (autograd/tape.c
 * reads it for every op, so it is a plain field rather than a slot). */
uint64_t lt__ctx_tape_gen(const lt_ctx *ctx);
void lt__ctx_set_tape_gen(lt_ctx *ctx, uint64_t gen);
/* A generation never handed out before on this context. */
uint64_t lt__ctx_new_tape_gen(lt_ctx *ctx);

/* Extension slots: state of another area, owned by the context. Setting a
 * slot destroys what it held; lt_ctx_close and the last lt_ctx_release destroy
 * every slot, the highest first. */
typedef enum lt_ctx_slot {
  LT_SLOT_TAPE,         /* autograd/tape.c: the tape and its arena */
  LT_SLOT_COORDS,       /* sparse/manager.c: the coordinate manager and its caches */
  LT_SLOT_SHELLS,       /* sparse/neighbor_shells.c: the shells' table (~120 KB), built on first use */
  LT_SLOT_SHELL_ORDERS, /* sparse/neighbor_shells.c: the bits kernel's orders (~1 MB), built on first use */
  LT_SLOT_COUNT
} lt_ctx_slot;
void *lt__ctx_slot(const lt_ctx *ctx, lt_ctx_slot slot);
void lt__ctx_set_slot(lt_ctx *ctx, lt_ctx_slot slot, void *p, void (*destroy)(void *p));

#endif
