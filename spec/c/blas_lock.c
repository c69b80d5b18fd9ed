/* The BLAS call lock (core/runtime/blas_call.h), driven directly from
 * threads that hold it open: calls with one thread count run at once, a call
 * with another count waits until they have ended and then runs with its own,
 * and calls are admitted in arrival order (one arriving behind a waiting
 * call does not overtake it). Exit status 1 on a failure. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include "lattice/lattice.h"
#include "runtime/blas_call.h"

int openblas_get_num_threads(void);

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

/* One thread inside lt__blas_begin/end until told to leave. */
typedef struct caller {
  lt_ctx *ctx;
  pthread_t tid;
  int entered, leave, threads_seen; /* guarded by mutex */
} caller;

static void *hold(void *arg) {
  caller *c = arg;
  lt__blas_begin(c->ctx);
  pthread_mutex_lock(&mutex);
  c->entered = 1;
  c->threads_seen = openblas_get_num_threads();
  pthread_cond_broadcast(&changed);
  while (!c->leave) pthread_cond_wait(&changed, &mutex);
  pthread_mutex_unlock(&mutex);
  lt__blas_end();
  return NULL;
}

static int start(caller *c, int threads) {
  c->ctx = lt_ctx_new();
  if (!c->ctx) return 0;
  lt_ctx_set_num_threads(c->ctx, threads);
  return pthread_create(&c->tid, NULL, hold, c) == 0;
}

/* Whether c is inside the lock within `seconds`. */
static int entered_within(caller *c, double seconds) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  long ns = t.tv_nsec + (long)((seconds - (long)seconds) * 1e9);
  t.tv_sec += (time_t)seconds + ns / 1000000000L;
  t.tv_nsec = ns % 1000000000L;
  pthread_mutex_lock(&mutex);
  while (!c->entered && pthread_cond_timedwait(&changed, &mutex, &t) == 0) {
  }
  int e = c->entered;
  pthread_mutex_unlock(&mutex);
  return e;
}

static void leave(caller *c) {
  pthread_mutex_lock(&mutex);
  c->leave = 1;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&mutex);
  pthread_join(c->tid, NULL);
  lt_ctx_release(c->ctx);
}

static int failures = 0;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  failures += !ok;
}

/* A time a waiting call gets to (wrongly) enter; a call that should enter
 * gets far longer, so a loaded machine does not fail the test. */
#define BRIEF 0.3
#define LONG  10.0

int main(void) {
  caller a = {0}, b = {0}, c = {0}, d = {0};
  if (!start(&a, 1)) return 1;
  check(entered_within(&a, LONG) && a.threads_seen == 1, "a call runs with its context's thread count (1)");
  if (!start(&b, 1)) return 1;
  check(entered_within(&b, LONG), "a second 1-thread call runs beside the first");
  if (!start(&c, 2)) return 1;
  check(!entered_within(&c, BRIEF), "a 2-thread call waits while 1-thread calls run");
  if (!start(&d, 1)) return 1;
  check(!entered_within(&d, BRIEF), "a 1-thread call arriving behind it does not overtake it");
  leave(&a);
  check(!entered_within(&c, BRIEF), "the 2-thread call still waits while one 1-thread call runs");
  leave(&b);
  check(entered_within(&c, LONG) && c.threads_seen == 2, "it runs with 2 threads once they have ended");
  check(!entered_within(&d, BRIEF), "the later 1-thread call waits for it");
  leave(&c);
  check(entered_within(&d, LONG) && d.threads_seen == 1, "and then runs with 1 thread");
  leave(&d);
  printf("%d failures\n", failures);
  return failures != 0;
}
