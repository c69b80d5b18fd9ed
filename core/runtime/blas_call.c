/* The lock that makes "set OpenBLAS's thread count, call it" one step
 * (runtime/blas_call.h).
 *
 * Calls are admitted in arrival order (a ticket each). A call joins the
 * calls already running when they use its thread count, and otherwise waits
 * until they have all ended, then sets the count. So the count never changes
 * under a running call, states on one thread each still multiply in
 * parallel (a plain mutex would serialise them), and no count waits forever
 * behind a stream of another. */
#include <pthread.h>
#include "runtime/blas_call.h"

/* Declared by OpenBLAS's cblas.h; repeated here to keep the header out. */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);

/* lattice's one piece of global mutable state, and it has to be global:
 * what it guards, OpenBLAS's thread count, is itself one per process, so a
 * lock per context could not keep two states from meeting there. */
static pthread_mutex_t blas_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t blas_changed = PTHREAD_COND_INITIALIZER;
static struct {
  unsigned long next, serving; /* tickets: the next to hand out, the next to admit */
  int calls;                   /* calls running */
  int threads;                 /* their thread count, when calls > 0 */
} blas;                        /* guarded by blas_mutex */

void lt__blas_begin(const lt_ctx *ctx) {
  int n = lt_ctx_num_threads(ctx);
  pthread_mutex_lock(&blas_mutex);
  unsigned long ticket = blas.next++;
  while (blas.serving != ticket || (blas.calls > 0 && blas.threads != n)) pthread_cond_wait(&blas_changed, &blas_mutex);
  blas.serving++;
  if (blas.calls++ == 0) {
    /* setting it is not free (OpenBLAS takes its own lock and may start
     * threads), and most calls find it right already */
    if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
    blas.threads = n;
  }
  pthread_cond_broadcast(&blas_changed); /* the next ticket may join */
  pthread_mutex_unlock(&blas_mutex);
}

void lt__blas_end(void) {
  pthread_mutex_lock(&blas_mutex);
  if (--blas.calls == 0) pthread_cond_broadcast(&blas_changed);
  pthread_mutex_unlock(&blas_mutex);
}

int lt__blas_threads_for(const lt_ctx *ctx) {
  lt__blas_begin(ctx); /* as a call would: OpenBLAS applies its own cap */
  int n = openblas_get_num_threads();
  lt__blas_end();
  return n;
}
