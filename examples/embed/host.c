/* Embedding lattice in a C program: the host owns its data (points in a float
 * array), hands it to a model written in Lua (model.lua), and reads the
 * result back.
 *
 *   embed_example [model.lua]            one state: a zero-copy push and a copy
 *   embed_example --threads [model.lua]  two states in two threads at once, each
 *                                        result checked against plain C
 *
 * The API is core/lua/include/lattice/lua.h. Exit status 1 on any error or
 * mismatch. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lattice/lua.h"

/* A new state with lattice open and the model table at stack index 1. */
static lua_State *open_model(const char *path) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (lattice_lua_open(L, NULL) != LUA_OK || luaL_dofile(L, path) != LUA_OK) {
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

/* Calls model[fn] on the tensor on top of the stack (popping it) and copies
 * the result into `out` as float32. Returns its element count, or -1. */
static int64_t call_model(lua_State *L, const char *fn, float *out, int64_t capacity) {
  lua_getfield(L, 1, fn);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "embed: %s: %s\n", fn, lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  int64_t n = lattice_lua_read(L, -1, out, LT_FLOAT32, capacity);
  lua_pop(L, 1);
  return n;
}

static void print_matrix(const char *name, const float *m, int rows, int cols) {
  printf("%s (%d x %d):\n", name, rows, cols);
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < cols; j++) printf(" %8.3f", m[i * cols + j]);
    printf("\n");
  }
}

static void released(void *ud) { printf("lattice released the host's buffer '%s'\n", (const char *)ud); }

static int demo(const char *path) {
  float points[4][3] = {{0, 0, 0}, {1, 0, 2}, {0, 1, -2}, {2, 2, 4}};
  int64_t shape[2] = {4, 3};
  float proj[4 * 2], gram[3 * 3];
  lua_State *L = open_model(path);
  if (!L) return 1;
  /* Zero-copy: the tensor reads `points` in place, so the array must stay
   * valid until released() runs (when Lua drops the last view, at the latest
   * in lua_close). A copy can be reused by the host right after the push. */
  int ok = lattice_lua_push_view(L, points, LT_FLOAT32, 2, shape, released, "points") == LUA_OK &&
           call_model(L, "project", proj, 8) == 8 && lattice_lua_push_copy(L, points, LT_FLOAT32, 2, shape) == LUA_OK &&
           call_model(L, "gram", gram, 9) == 9;
  if (!ok && lua_gettop(L) > 1) fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
  if (ok) {
    print_matrix("project(points)", proj, 4, 2);
    print_matrix("gram(points)", gram, 3, 3);
  }
  lua_close(L);
  return ok ? 0 : 1;
}

/* ---- two states in two threads ---- */

enum { NPOINTS = 100000, REPEATS = 20 };

typedef struct job {
  const char *path, *fn;
  int seed, out_len;
  void (*reference)(const float *pts, int64_t n, float *out);
  int failed;
} job;

/* The same maps as model.lua, in plain C. */
static void ref_project(const float *p, int64_t n, float *out) {
  for (int64_t i = 0; i < n; i++) {
    out[2 * i] = p[3 * i] + 0.5f * p[3 * i + 2];
    out[2 * i + 1] = p[3 * i + 1] - 0.5f * p[3 * i + 2];
  }
}

static void ref_gram(const float *p, int64_t n, float *out) {
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++) {
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += (double)p[3 * i + a] * p[3 * i + b];
      out[3 * a + b] = (float)s;
    }
}

static void *worker(void *arg) {
  job *j = arg;
  float *pts = malloc(sizeof(float) * 3 * NPOINTS);
  float *out = malloc(sizeof(float) * j->out_len), *want = malloc(sizeof(float) * j->out_len);
  lua_State *L = pts && out && want ? open_model(j->path) : NULL;
  j->failed = L == NULL;
  /* Small integers: every result is exact in float32, whatever the summation order. */
  for (int64_t i = 0; i < 3 * NPOINTS && L; i++) pts[i] = (float)((i * 7 + j->seed) % 17 - 8);
  int64_t shape[2] = {NPOINTS, 3};
  for (int r = 0; r < REPEATS && !j->failed; r++) /* the buffer outlives L: no release callback */
    j->failed = lattice_lua_push_view(L, pts, LT_FLOAT32, 2, shape, NULL, NULL) != LUA_OK ||
                call_model(L, j->fn, out, j->out_len) != j->out_len;
  if (!j->failed) {
    j->reference(pts, NPOINTS, want);
    for (int i = 0; i < j->out_len; i++)
      if (fabsf(out[i] - want[i]) > 1e-6f * (1 + fabsf(want[i]))) {
        fprintf(stderr, "embed: %s[%d] = %g, plain C gives %g\n", j->fn, i, out[i], want[i]);
        j->failed = 1;
        break;
      }
  }
  printf("thread %s: %s\n", j->fn, j->failed ? "FAILED" : "matches plain C");
  if (L) lua_close(L);
  free(pts);
  free(out);
  free(want);
  return NULL;
}

static int two_threads(const char *path) {
  job jobs[2] = {{path, "project", 1, 2 * NPOINTS, ref_project, 0}, {path, "gram", 2, 9, ref_gram, 0}};
  pthread_t tid[2];
  for (int i = 0; i < 2; i++)
    if (pthread_create(&tid[i], NULL, worker, &jobs[i]) != 0) return 1;
  for (int i = 0; i < 2; i++) pthread_join(tid[i], NULL);
  return jobs[0].failed || jobs[1].failed;
}

int main(int argc, char **argv) {
  int threads = argc > 1 && strcmp(argv[1], "--threads") == 0;
  const char *path = argc > 1 + threads ? argv[1 + threads] : "model.lua";
  return threads ? two_threads(path) : demo(path);
}
