/* The context: error message, thread count, ISA, RNG counter, the tape's
 * generation, the allocator, spare headers and the extension slots. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include "runtime/alloc.h"
#include "runtime/context.h"
#include "tensor/internal.h"

/* Spare headers: glibc trims and regrows its heap under the GC's bursts of
 * frees, and the page faults cost more than a small op itself (perf), so
 * freed headers wait here for the next tensor, up to a bound. */
#define SPARE_MAX 8192
typedef struct spare_list {
  void *head; /* intrusive: a spare object's first word links the next */
  int64_t count;
} spare_list;

struct lt_ctx {
  int64_t refcount;
  char error[512];
  int num_threads;
  lt_isa isa;
  uint64_t rng_key, rng_counter;
  uint64_t tape_gen; /* generation of the recording tape; 0 when none */
  uint64_t last_tape_gen;
  lt_allocator alloc;
  spare_list spare[LT_OBJ_KINDS];
  struct {
    void *p;
    void (*destroy)(void *p);
  } slot[LT_SLOT_COUNT];
};

static const size_t obj_size[LT_OBJ_KINDS] = {sizeof(lt_tensor), sizeof(lt_storage)};

lt_ctx *lt_ctx_new(void) {
  lt_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return NULL;
  ctx->refcount = 1;
  ctx->num_threads = omp_get_num_procs();
  ctx->isa = lt_cpu_isa();
  lt__allocator_init(&ctx->alloc);
  lt_ctx_seed(ctx, 0);
  return ctx;
}

lt_ctx *lt_ctx_retain(lt_ctx *ctx) {
  ctx->refcount++;
  return ctx;
}

static void destroy_slots(lt_ctx *ctx) {
  for (int k = LT_SLOT_COUNT - 1; k >= 0; k--) lt__ctx_set_slot(ctx, (lt_ctx_slot)k, NULL, NULL);
}

/* What the slots hold may hold tensors, and tensors hold the context: the
 * owner's close breaks that cycle, so the last tensor's release frees it. */
void lt_ctx_close(lt_ctx *ctx) {
  if (!ctx) return;
  ctx->tape_gen = 0;
  destroy_slots(ctx);
  lt_ctx_release(ctx);
}

void lt_ctx_release(lt_ctx *ctx) {
  if (!ctx || --ctx->refcount > 0) return;
  destroy_slots(ctx);
  lt__allocator_destroy(&ctx->alloc);
  for (int k = 0; k < LT_OBJ_KINDS; k++)
    while (ctx->spare[k].head) {
      void *p = ctx->spare[k].head;
      ctx->spare[k].head = *(void **)p;
      free(p);
    }
  free(ctx);
}

void *lt__ctx_obj_get(lt_ctx *ctx, lt_obj_kind kind) {
  lt__allocator_add_debt(&ctx->alloc, obj_size[kind]); /* the GC hears of headers too, not only of data */
  spare_list *l = &ctx->spare[kind];
  if (!l->head) return calloc(1, obj_size[kind]);
  void *p = l->head;
  l->head = *(void **)p;
  l->count--;
  memset(p, 0, obj_size[kind]);
  return p;
}

void lt__ctx_obj_put(lt_ctx *ctx, lt_obj_kind kind, void *p) {
  spare_list *l = &ctx->spare[kind];
  if (l->count >= SPARE_MAX) {
    free(p);
    return;
  }
  *(void **)p = l->head;
  l->head = p;
  l->count++;
}

const char *lt_ctx_error(const lt_ctx *ctx) { return ctx->error; }

lt_status lt_ctx_fail(lt_ctx *ctx, lt_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
  va_end(ap);
  return status;
}

void lt_ctx_set_num_threads(lt_ctx *ctx, int n) {
  ctx->num_threads = n < 1 ? 1 : n > LT_MAX_THREADS ? LT_MAX_THREADS : n;
}
int lt_ctx_num_threads(const lt_ctx *ctx) { return ctx->num_threads; }
int lt__ctx_threads(const lt_ctx *ctx) { return ctx->num_threads; }
lt_isa lt__ctx_isa(const lt_ctx *ctx) { return ctx->isa; }

void *lt__ctx_slot(const lt_ctx *ctx, lt_ctx_slot slot) { return ctx->slot[slot].p; }

void lt__ctx_set_slot(lt_ctx *ctx, lt_ctx_slot slot, void *p, void (*destroy)(void *p)) {
  void *old = ctx->slot[slot].p;
  void (*old_destroy)(void *) = ctx->slot[slot].destroy;
  ctx->slot[slot].p = p;
  ctx->slot[slot].destroy = destroy;
  if (old && old_destroy) old_destroy(old); /* after the swap: a destructor may look at the slot */
}

void *lt_ctx_alloc(lt_ctx *ctx, size_t nbytes) { return lt__allocator_get(&ctx->alloc, nbytes); }
void lt_ctx_free(lt_ctx *ctx, void *ptr, size_t nbytes) { lt__allocator_put(&ctx->alloc, ptr, nbytes); }
/* The lock inside the allocator is not part of the context's value. */
lt_memory_stats lt_ctx_memory_stats(const lt_ctx *ctx) { return lt__allocator_stats((lt_allocator *)&ctx->alloc); }
void lt_ctx_set_cache_limit(lt_ctx *ctx, size_t bytes) { lt__allocator_set_limit(&ctx->alloc, bytes); }
void lt_ctx_clear_cache(lt_ctx *ctx) { lt__allocator_trim(&ctx->alloc, 0); }
size_t lt_ctx_take_alloc_debt(lt_ctx *ctx, size_t min) { return lt__allocator_take_debt(&ctx->alloc, min); }

void lt_ctx_seed(lt_ctx *ctx, uint64_t seed) {
  ctx->rng_key = seed;
  ctx->rng_counter = 0;
}

void lt_ctx_rng_state(const lt_ctx *ctx, uint64_t *key, uint64_t *counter) {
  *key = ctx->rng_key;
  *counter = ctx->rng_counter;
}

void lt_ctx_set_rng_state(lt_ctx *ctx, uint64_t key, uint64_t counter) {
  ctx->rng_key = key;
  ctx->rng_counter = counter;
}

uint64_t lt__ctx_rng_take(lt_ctx *ctx, uint64_t n, uint64_t *key) {
  uint64_t start = ctx->rng_counter;
  ctx->rng_counter += n;
  *key = ctx->rng_key;
  return start;
}

uint64_t lt__ctx_tape_gen(const lt_ctx *ctx) { return ctx->tape_gen; }
void lt__ctx_set_tape_gen(lt_ctx *ctx, uint64_t gen) { ctx->tape_gen = gen; }
uint64_t lt__ctx_new_tape_gen(lt_ctx *ctx) { return ++ctx->last_tape_gen; }

double lt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lt__assert_fail(const char *cond, const char *file, int line) {
  /* Only for lattice's own bugs, never for user input. */
  fprintf(stderr, "lattice: internal error: %s (%s:%d)\n", cond, file, line);
  abort();
}
