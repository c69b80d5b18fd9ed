/* Four lua_States in four threads, set to 1, 2, 1 and 2 threads, each
 * multiplying the same float64 matrices with lattice.matmul again and again
 * (float64 goes to OpenBLAS's dgemm; float32 runs lattice's own sgemm, whose
 * bits do not depend on the thread count). OpenBLAS
 * keeps one thread count for the whole process; unless lattice sets it and
 * calls dgemm as one step, a state set to 1 thread sometimes multiplies with 2
 * (another state reset the count in between) and gets other bits, since the
 * summation order differs. Every result must equal, bitwise, the reference
 * for its state's thread count, computed by one state before the threads
 * start.
 *
 *   spec_blas_states [seconds [m k n]]   (default 5 s)
 *
 * The shape is (m, k) @ (k, n) when given, else the first candidate whose
 * 1-thread and 2-thread products differ in their bits on this machine (which
 * depends on OpenBLAS's kernels); when none does, a mix-up could not be seen
 * and the test is skipped (exit 77). Exit 1 on any mismatch or error. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lattice/lua.h"

enum { NSTATES = 4, SKIP = 77 };

typedef struct gemm_shape {
  int m, k, n;
} gemm_shape;

/* All large enough that OpenBLAS threads them (m*n*k above 2^18). The first
 * (m*n*k = 1.4M) is small so that many calls, and so many chances to catch a
 * mix-up, fit in the time. Before the fix a mix-up showed in about one run of
 * three to six of 3-5 s, and 67 times in one 30 s run: a race is caught by
 * chance, at a rate that follows the machine's load. c_blas_lock checks the
 * lock itself deterministically. */
static const gemm_shape candidates[] = {{64, 333, 64}, {256, 333, 256}, {256, 256, 256}, {512, 512, 512}};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Uniform in [-0.5, 0.5): products of such values round differently when
 * summed in another order. */
static void fill(double *x, int64_t n, unsigned seed) {
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (double)(seed >> 8) / 16777216.0 - 0.5;
  }
}

/* Sets global `name` to a copy of the (rows, cols) matrix x; 1 on success. */
static int set_matrix(lua_State *L, const char *name, const double *x, int rows, int cols) {
  int64_t shape[2] = {rows, cols};
  if (lattice_lua_push_copy(L, x, LT_FLOAT64, 2, shape) != LUA_OK) return 0;
  lua_setglobal(L, name);
  return 1;
}

/* A state with lattice open, set to `threads`, holding the matrices as the
 * globals A (m, k) and B (k, n) and the function product(). NULL (the reason printed) on failure. */
static lua_State *open_state(int threads, const double *a, const double *b, gemm_shape s) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  char set[64];
  snprintf(set, sizeof set, "lattice.set_num_threads(%d)", threads);
  if (lattice_lua_open(L, NULL) != LUA_OK || luaL_dostring(L, set) != LUA_OK || !set_matrix(L, "A", a, s.m, s.k) ||
      !set_matrix(L, "B", b, s.k, s.n) || luaL_dostring(L, "function product() return lattice.matmul(A, B) end")) {
    fprintf(stderr, "blas_states: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

/* out (m*n floats) = A @ B through lattice.matmul, the function compiled
 * once as the global `product`; 0 or -1. */
static int multiply(lua_State *L, double *out, int64_t count) {
  lua_getglobal(L, "product");
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "blas_states: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  int64_t n = lattice_lua_read(L, -1, out, LT_FLOAT64, count);
  lua_pop(L, 1);
  return n == count ? 0 : -1;
}

typedef struct worker {
  int threads;
  const double *a, *b, *want; /* want: the reference for this thread count */
  gemm_shape s;
  double deadline;
  long iters, vs_first, vs_ref; /* results differing from the first, from the reference */
  int failed;
} worker;

static void *run_worker(void *arg) {
  worker *w = arg;
  int64_t count = (int64_t)w->s.m * w->s.n;
  size_t bytes = (size_t)count * sizeof(double);
  double *first = malloc(bytes), *out = malloc(bytes);
  lua_State *L = first && out ? open_state(w->threads, w->a, w->b, w->s) : NULL;
  w->failed = !L || multiply(L, first, count) != 0;
  if (!w->failed) w->vs_ref += memcmp(first, w->want, bytes) != 0;
  for (w->iters = 1; !w->failed && now() < w->deadline; w->iters++) {
    w->failed = multiply(L, out, count) != 0;
    w->vs_first += memcmp(out, first, bytes) != 0;
    w->vs_ref += memcmp(out, w->want, bytes) != 0;
  }
  if (L) lua_close(L);
  free(first);
  free(out);
  return NULL;
}

/* The references for 1 and 2 threads, computed by one state alone. Returns
 * 1 when they differ in their bits (so a mix-up would show), 0 when they do
 * not, -1 on error. */
static int references(gemm_shape s, const double *a, const double *b, double *ref1, double *ref2) {
  int64_t count = (int64_t)s.m * s.n;
  lua_State *L = open_state(1, a, b, s);
  if (!L) return -1;
  int ok = multiply(L, ref1, count) == 0 && luaL_dostring(L, "lattice.set_num_threads(2)") == LUA_OK &&
           multiply(L, ref2, count) == 0;
  lua_close(L);
  return ok ? memcmp(ref1, ref2, (size_t)count * sizeof(double)) != 0 : -1;
}

/* Four states at once until `seconds` have passed; returns the number of
 * mismatching results, or -1 on error. */
static long run_states(gemm_shape s, const double *a, const double *b, const double *ref1, const double *ref2,
                       double seconds) {
  worker w[NSTATES];
  pthread_t tid[NSTATES];
  double deadline = now() + seconds;
  for (int i = 0; i < NSTATES; i++) {
    int threads = i % 2 ? 2 : 1;
    w[i] =
        (worker){.threads = threads, .a = a, .b = b, .want = threads == 1 ? ref1 : ref2, .s = s, .deadline = deadline};
    if (pthread_create(&tid[i], NULL, run_worker, &w[i]) != 0) return -1;
  }
  long bad = 0, total = 0;
  int failed = 0;
  for (int i = 0; i < NSTATES; i++) {
    pthread_join(tid[i], NULL);
    printf("state %d (%d thread%s): %ld products, %ld differ from its first, %ld from the %d-thread reference%s\n",
           i + 1, w[i].threads, w[i].threads > 1 ? "s" : "", w[i].iters, w[i].vs_first, w[i].vs_ref, w[i].threads,
           w[i].failed ? " (FAILED)" : "");
    bad += w[i].vs_ref;
    total += w[i].iters;
    failed |= w[i].failed;
  }
  printf("%ld of %ld products mismatched\n", bad, total);
  return failed ? -1 : bad;
}

/* The test on one shape: SKIP when 1 and 2 threads give the same bits there,
 * else 0, or 1 on a mismatch or an error. */
static int test_shape(gemm_shape s, double seconds) {
  size_t na = (size_t)s.m * s.k, nb = (size_t)s.k * s.n, nc = (size_t)s.m * s.n;
  double *a = malloc(sizeof(double) * na), *b = malloc(sizeof(double) * nb);
  double *ref1 = malloc(sizeof(double) * nc), *ref2 = malloc(sizeof(double) * nc);
  int result = 1;
  if (a && b && ref1 && ref2) {
    fill(a, (int64_t)na, 1);
    fill(b, (int64_t)nb, 2);
    int differ = references(s, a, b, ref1, ref2);
    if (differ > 0)
      printf("(%d, %d) @ (%d, %d): 1 and 2 threads give different bits; 4 states for %g s\n", s.m, s.k, s.k, s.n,
             seconds);
    result = differ < 0 ? 1 : !differ ? SKIP : run_states(s, a, b, ref1, ref2, seconds) != 0;
  }
  free(a);
  free(b);
  free(ref1);
  free(ref2);
  return result;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 5;
  int result = SKIP;
  if (argc > 4) {
    gemm_shape given = {atoi(argv[2]), atoi(argv[3]), atoi(argv[4])};
    if (given.m < 1 || given.k < 1 || given.n < 1) return fprintf(stderr, "blas_states: bad shape\n"), 1;
    result = test_shape(given, seconds);
  }
  int n = (int)(sizeof candidates / sizeof candidates[0]);
  for (int c = 0; c < n && argc <= 4 && result == SKIP; c++) result = test_shape(candidates[c], seconds);
  if (result == SKIP) printf("1 and 2 threads give the same bits here: a mix-up cannot be seen; skipped\n");
  return result;
}
