/* Parallel loops and their scratch memory. One parallel loop per op over its
 * outermost independent axis; scratch is reserved before the loop, one slice
 * per thread, never allocated inside it. */
#ifndef LATTICE_RUNTIME_PARALLEL_H
#define LATTICE_RUNTIME_PARALLEL_H

#include <omp.h>
#include "base.h"

/* Work (elements) below which an op stays on one thread. */
#define LT_GRAIN 32768

/* for (int64_t i = 0; i < n; i++) { body }, split statically over `threads`
 * OpenMP threads. With one thread it runs the plain loop without entering
 * OpenMP at all: here even a one-thread parallel region costs a futex call
 * (~1.5 us, measured), more than a whole small op. The body is a braced block
 * that must not break out of the loop or return. */
// clang-format off
#define LT_PARALLEL_FOR(threads, i, n, ...) LT__PARALLEL_LOOP(threads, i, n, "omp for schedule(static)", __VA_ARGS__)
// clang-format on

/* LT_PARALLEL_FOR with the iterations handed out one at a time: when the
 * cores are shared, a thread that finishes early takes the next one rather
 * than waiting at the end for a descheduled thread's static share. For
 * loops whose iterations write disjoint memory, each in its own fixed
 * order, so that which thread runs one changes no bit of the result. */
// clang-format off
#define LT_PARALLEL_FOR_DYNAMIC(threads, i, n, ...) \
  LT__PARALLEL_LOOP(threads, i, n, "omp for schedule(dynamic, 1)", __VA_ARGS__)
// clang-format on

/* Both loops: the team's threads share the iterations by `schedule`, each
 * knowing its index (lt_tid_) once; the plain loop's index is 0 by
 * definition, not omp_get_thread_num(), which inside a host's own parallel
 * region gives the host thread's index there (a slice past the workspace). */
// clang-format off
#define LT__PARALLEL_LOOP(threads, i, n, schedule, ...)      \
  do {                                                       \
    int lt_threads_ = (threads);                             \
    int64_t lt_n_ = (n);                                     \
    if (lt_threads_ > 1) {                                   \
      _Pragma("omp parallel num_threads(lt_threads_)")       \
      {                                                      \
        const int lt_tid_ = omp_get_thread_num();            \
        (void)lt_tid_;                                       \
        _Pragma(schedule)                                    \
        for (int64_t i = 0; i < lt_n_; i++) __VA_ARGS__      \
      }                                                      \
    } else {                                                 \
      const int lt_tid_ = 0;                                 \
      (void)lt_tid_;                                         \
      for (int64_t i = 0; i < lt_n_; i++) __VA_ARGS__        \
    }                                                        \
  } while (0)
// clang-format on

/* The calling thread's index in the body of an LT_PARALLEL_FOR (only there:
 * elsewhere it does not compile). */
#define lt__thread_id() (lt_tid_)

/* Scratch for one parallel loop: `slices` slices of `slice_bytes` each, every
 * slice LT_ALIGN-aligned and on its own cache lines, from the context's
 * caching allocator (so a loop run every step reuses the same pages):
 *   lt_workspace ws;
 *   if (lt__workspace_reserve(ctx, &ws, threads, bytes, "op")) return LT_ERR_MEM;
 *   LT_PARALLEL_FOR(threads, i, n, { float *tmp = lt__workspace_mine(&ws); ... });
 *   lt__workspace_release(ctx, &ws);
 * A slice is private to the thread that asks for it; release is idempotent. */
typedef struct lt_workspace {
  char *base;
  size_t stride, total;
  int slices;
} lt_workspace;

/* Fails with "<op>: out of memory" on the context. */
lt_status lt__workspace_reserve(lt_ctx *ctx, lt_workspace *ws, int slices, size_t slice_bytes, const char *op);
void lt__workspace_release(lt_ctx *ctx, lt_workspace *ws);
static inline void *lt__workspace_slice(const lt_workspace *ws, int k) { return ws->base + (size_t)k * ws->stride; }
/* The calling thread's slice, in the body of an LT_PARALLEL_FOR. */
#define lt__workspace_mine(ws) lt__workspace_slice((ws), lt__thread_id())

#endif
