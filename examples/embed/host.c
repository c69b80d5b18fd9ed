/* Embedding lattice in a C program: the host owns its data (points in a float
 * array), hands it to a model written in Lua (model.lua), and reads the
 * result back: a projection, a Gram matrix, and the per-point logits of a
 * sparse convolution over the voxelized point cloud.
 *
 *   embed_example [model.lua]            one state: zero-copy pushes and a copy,
 *                                        a script error the state survives
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

/* ---- a point cloud and its logits in plain C ---- */

/* The integer points of a sphere shell of radius r around the origin, at
 * most cap of them, into pts (x, y, z per point). Returns their count. */
static int64_t sphere_shell(float *pts, int64_t cap, int r) {
  int64_t n = 0;
  for (int x = -r; x <= r; x++)
    for (int y = -r; y <= r; y++)
      for (int z = -r; z <= r; z++) {
        double d = sqrt((double)(x * x + y * y + z * z)) - r;
        if (d > -0.5 && d <= 0.5 && n < cap) pts[3 * n] = (float)x, pts[3 * n + 1] = (float)y, pts[3 * n + 2] = (float)z, n++;
      }
  return n;
}

/* model.segment's weights: ((c+1)(9ix+3iy+iz) + ci) mod 5 - 2. */
static float conv_weight(int c, int k, int ci) { return (float)(((c + 1) * k + ci) % 5 - 2); }

/* model.segment for distinct integer points inside [-r, r]^3: each point is
 * its own voxel with its coordinates as features, and logit c sums
 * w[c][k] . q over the 27 offsets d_k whose neighbour q = p + d_k is a point.
 * A dense occupancy grid stands in for lattice's coordinate hash. */
static int ref_segment(const float *p, int64_t n, int r, float *out) {
  int side = 2 * r + 3; /* a margin of one around the box */
  char *occupied = calloc((size_t)side * side * side, 1);
  if (!occupied) return -1;
#define CELL(x, y, z) (((int64_t)((x) + r + 1) * side + ((y) + r + 1)) * side + ((z) + r + 1))
  for (int64_t i = 0; i < n; i++) occupied[CELL((int)p[3 * i], (int)p[3 * i + 1], (int)p[3 * i + 2])] = 1;
  for (int64_t i = 0; i < n; i++) {
    int x = (int)p[3 * i], y = (int)p[3 * i + 1], z = (int)p[3 * i + 2];
    for (int c = 0; c < 2; c++) {
      float acc = 0;
      for (int k = 0; k < 27; k++) {
        int qx = x + k / 9 - 1, qy = y + k / 3 % 3 - 1, qz = z + k % 3 - 1;
        if (!occupied[CELL(qx, qy, qz)]) continue;
        acc += conv_weight(c, k, 0) * qx + conv_weight(c, k, 1) * qy + conv_weight(c, k, 2) * qz;
      }
      out[2 * i + c] = acc;
    }
  }
#undef CELL
  free(occupied);
  return 0;
}

/* A call the script refuses (points with 2 columns) gives its message; the
 * state stays usable, as the next call shows. */
static int survive_an_error(lua_State *L) {
  float flat[4] = {0, 1, 2, 3};
  float out[8];
  int64_t shape[2] = {2, 2};
  if (lattice_lua_push_copy(L, flat, LT_FLOAT32, 2, shape) != LUA_OK) return 0;
  printf("a call with (2, 2) points fails, as it should (the message is on stderr)\n");
  fflush(stdout);
  return call_model(L, "segment", out, 8) < 0;
}

/* Per-point logits of a point cloud the host owns, read back and checked. */
static int segment_cloud(lua_State *L) {
  enum { R = 6, CAP = 2000 };
  static float pts[CAP * 3], logits[CAP * 2], want[CAP * 2];
  int64_t n = sphere_shell(pts, CAP, R), shape[2] = {n, 3};
  if (lattice_lua_push_view(L, pts, LT_FLOAT32, 2, shape, NULL, NULL) != LUA_OK ||
      call_model(L, "segment", logits, 2 * n) != 2 * n || ref_segment(pts, n, R, want) != 0)
    return 0;
  printf("segment: %lld points of a sphere shell, per-point logits (first 3):\n", (long long)n);
  for (int i = 0; i < 3; i++) printf("  (%g, %g, %g) -> %g %g\n", pts[3 * i], pts[3 * i + 1], pts[3 * i + 2], logits[2 * i], logits[2 * i + 1]);
  for (int64_t i = 0; i < 2 * n; i++)
    if (logits[i] != want[i]) {
      fprintf(stderr, "embed: segment logit %lld = %g, plain C gives %g\n", (long long)i, logits[i], want[i]);
      return 0;
    }
  printf("segment: all %lld logits equal plain C's\n", (long long)(2 * n));
  return 1;
}

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
  ok = ok && survive_an_error(L) && segment_cloud(L);
  lua_close(L);
  return ok ? 0 : 1;
}

/* ---- two states in two threads ---- */

enum { NPOINTS = 100000, REPEATS = 20, SHELL_R = 40 };

/* A thread's work: fill the host's points, call model[fn] on them REPEATS
 * times, and compare the last result with the reference in plain C. */
typedef struct job {
  const char *path, *fn;
  int seed;
  int64_t (*fill)(float *pts, int seed); /* returns the point count */
  int per_point;                         /* result values per point, or 0 for a 3x3 result */
  void (*reference)(const float *pts, int64_t n, float *out);
  int failed;
} job;

/* Small integers: every result is exact in float32, whatever the summation order. */
static int64_t fill_pattern(float *pts, int seed) {
  for (int64_t i = 0; i < 3 * NPOINTS; i++) pts[i] = (float)((i * 7 + seed) % 17 - 8);
  return NPOINTS;
}

static int64_t fill_shell(float *pts, int seed) {
  (void)seed;
  return sphere_shell(pts, NPOINTS, SHELL_R);
}

/* model.gram in plain C. */

static void ref_gram(const float *p, int64_t n, float *out) {
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++) {
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += (double)p[3 * i + a] * p[3 * i + b];
      out[3 * a + b] = (float)s;
    }
}

static void ref_segment_shell(const float *p, int64_t n, float *out) {
  if (ref_segment(p, n, SHELL_R, out) != 0) memset(out, 0xff, sizeof(float) * 2 * n); /* NaNs: a mismatch */
}

static void *worker(void *arg) {
  job *j = arg;
  float *pts = malloc(sizeof(float) * 3 * NPOINTS);
  float *out = malloc(sizeof(float) * 2 * NPOINTS), *want = malloc(sizeof(float) * 2 * NPOINTS);
  lua_State *L = pts && out && want ? open_model(j->path) : NULL;
  j->failed = L == NULL;
  int64_t n = L ? j->fill(pts, j->seed) : 0, out_len = j->per_point ? j->per_point * n : 9;
  int64_t shape[2] = {n, 3};
  for (int r = 0; r < REPEATS && !j->failed; r++) /* the buffer outlives L: no release callback */
    j->failed = lattice_lua_push_view(L, pts, LT_FLOAT32, 2, shape, NULL, NULL) != LUA_OK ||
                call_model(L, j->fn, out, out_len) != out_len;
  if (!j->failed) {
    j->reference(pts, n, want);
    for (int64_t i = 0; i < out_len; i++)
      if (fabsf(out[i] - want[i]) > 1e-6f * (1 + fabsf(want[i]))) {
        fprintf(stderr, "embed: %s[%lld] = %g, plain C gives %g\n", j->fn, (long long)i, out[i], want[i]);
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
  job jobs[2] = {{path, "segment", 1, fill_shell, 2, ref_segment_shell, 0},
                 {path, "gram", 2, fill_pattern, 0, ref_gram, 0}};
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
