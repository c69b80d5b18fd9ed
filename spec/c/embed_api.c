/* The embedding API (lattice/lua.h) under bad arguments: every pointer,
 * count, dtype and index a host can get wrong, each checked for the status
 * (or return value) and the exact message lua.h documents.
 *
 * Each case runs in a child process, so a case that crashes is reported as
 * that case's failure (with its signal) and the other cases still run.
 * Exit status 1 when any case fails. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lattice/lua.h"

/* Fails the current case with the line and a message. */
#define CHECK(cond, ...)               \
  do {                                 \
    if (!(cond)) {                     \
      printf("  line %d: ", __LINE__); \
      printf(__VA_ARGS__);             \
      printf("\n");                    \
      return 1;                        \
    }                                  \
  } while (0)

/* The status and the message on top of the stack, which is then popped;
 * `top` is the stack height before the call, so exactly one value was pushed. */
#define CHECK_ERROR(L, top, got, want_status, want_msg)                                                    \
  do {                                                                                                     \
    int got_ = (got);                                                                                      \
    CHECK(got_ == (want_status), "status %d, want %d", got_, (want_status));                               \
    CHECK(lua_gettop(L) == (top) + 1, "stack has %d values, want %d", lua_gettop(L), (top) + 1);           \
    const char *msg_ = lua_tostring(L, -1);                                                                \
    CHECK(msg_ &&strcmp(msg_, (want_msg)) == 0, "message '%s',\n    want    '%s'", msg_ ? msg_ : "(none)", \
          (want_msg));                                                                                     \
    lua_pop(L, 1);                                                                                         \
  } while (0)

/* The message lattice_lua_read leaves on the state's context. */
#define CHECK_READ_ERROR(L, got, want_msg)                                                                 \
  do {                                                                                                     \
    int64_t got_ = (got);                                                                                  \
    CHECK(got_ == -1, "read returned %lld, want -1", (long long)got_);                                     \
    const char *msg_ = lt_ctx_error(lattice_lua_context(L));                                               \
    CHECK(strcmp(msg_, (want_msg)) == 0, "context error '%s',\n    want          '%s'", msg_, (want_msg)); \
  } while (0)

static lua_State *open_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (lattice_lua_open(L, NULL) != LUA_OK) {
    printf("  lattice_lua_open: %s\n", lua_tostring(L, -1));
    fflush(stdout);
    _exit(1);
  }
  return L;
}

/* A state with the standard libraries but without lattice. */
static lua_State *bare_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  return L;
}

static const float four[4] = {1, 2, 3, 4};
static const int64_t shape4[1] = {4};

/* ---- lattice_lua_open ---- */

static int open_null_state(void) {
  CHECK(lattice_lua_open(NULL, NULL) == LUA_ERRRUN, "want LUA_ERRRUN");
  return 0;
}

static int open_without_libs(void) {
  lua_State *L = luaL_newstate();
  CHECK_ERROR(L, 0, lattice_lua_open(L, NULL), LUA_ERRRUN,
              "lattice_lua_open: the package library is not open (call luaL_openlibs first)");
  lua_close(L);
  return 0;
}

static int open_missing_dir(void) {
  lua_State *L = bare_state();
  CHECK_ERROR(L, 0, lattice_lua_open(L, "/nonexistent/lua"), LUA_ERRRUN,
              "lattice_lua_open: no lattice/init.lua under '/nonexistent/lua'");
  lua_close(L);
  return 0;
}

static int open_dir_with_separator(void) {
  lua_State *L = bare_state();
  CHECK_ERROR(L, 0, lattice_lua_open(L, "/tmp/a;b"), LUA_ERRRUN,
              "lattice_lua_open: the Lua directory '/tmp/a;b' contains ';' or '?', which package.path cannot hold");
  lua_close(L);
  return 0;
}

static int open_twice(void) {
  lua_State *L = open_state();
  CHECK(lattice_lua_open(L, NULL) == LUA_OK && lua_gettop(L) == 0, "a second open must succeed, pushing nothing");
  lua_close(L);
  return 0;
}

/* ---- lattice_lua_push_copy and lattice_lua_push_view ---- */

static int push_null_state(void) {
  CHECK(lattice_lua_push_copy(NULL, four, LT_FLOAT32, 1, shape4) == LUA_ERRRUN, "copy: want LUA_ERRRUN");
  CHECK(lattice_lua_push_view(NULL, (void *)four, LT_FLOAT32, 1, shape4, NULL, NULL) == LUA_ERRRUN,
        "view: want LUA_ERRRUN");
  return 0;
}

static int push_not_open(void) {
  lua_State *L = bare_state();
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_FLOAT32, 1, shape4), LUA_ERRRUN,
              "lattice_lua_push_copy: lattice is not open in this state (call lattice_lua_open first)");
  lua_close(L);
  return 0;
}

static int push_null_data(void) {
  lua_State *L = open_state();
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, NULL, LT_FLOAT32, 1, shape4), LUA_ERRRUN,
              "lattice_lua_push_copy: data is NULL for 4 elements");
  CHECK_ERROR(L, 0, lattice_lua_push_view(L, NULL, LT_FLOAT32, 1, shape4, NULL, NULL), LUA_ERRRUN,
              "lattice_lua_push_view: data is NULL for 4 elements");
  lua_close(L);
  return 0;
}

static int push_null_data_empty(void) {
  lua_State *L = open_state();
  int64_t shape[2] = {3, 0};
  CHECK(lattice_lua_push_copy(L, NULL, LT_FLOAT32, 2, shape) == LUA_OK, "an empty copy needs no data");
  CHECK(lattice_lua_push_view(L, NULL, LT_INT32, 2, shape, NULL, NULL) == LUA_OK, "an empty view needs no data");
  CHECK(lattice_lua_read(L, -1, NULL, LT_FLOAT32, 0) == 0, "an empty tensor reads as 0 elements");
  lt_tensor *t = lattice_lua_totensor(L, -2);
  CHECK(t && lt_tensor_size(t) == 0, "an empty tensor");
  lua_close(L);
  return 0;
}

static int push_null_shape(void) {
  lua_State *L = open_state();
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_FLOAT32, 1, NULL), LUA_ERRRUN,
              "lattice_lua_push_copy: shape is NULL with ndim 1");
  CHECK(lattice_lua_push_copy(L, four, LT_FLOAT32, 0, NULL) == LUA_OK, "ndim 0 needs no shape");
  float x = 0;
  CHECK(lattice_lua_read(L, -1, &x, LT_FLOAT32, 1) == 1 && x == 1, "a scalar holding data[0]");
  lua_close(L);
  return 0;
}

static int push_bad_ndim(void) {
  lua_State *L = open_state();
  int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_FLOAT32, -1, shape), LUA_ERRRUN,
              "lattice_lua_push_copy: ndim must be in [0, 8], got -1");
  CHECK_ERROR(L, 0, lattice_lua_push_view(L, (void *)four, LT_FLOAT32, 9, shape, NULL, NULL), LUA_ERRRUN,
              "lattice_lua_push_view: ndim must be in [0, 8], got 9");
  lua_close(L);
  return 0;
}

static int push_negative_dim(void) {
  lua_State *L = open_state();
  int64_t shape[2] = {2, -3};
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_FLOAT32, 2, shape), LUA_ERRRUN,
              "lattice_lua_push_copy: shape[1] is -3 (dimensions are at least 0)");
  lua_close(L);
  return 0;
}

static int push_overflowing_shape(void) {
  lua_State *L = open_state();
  int64_t big[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
  int64_t zero_big[3] = {0, (int64_t)1 << 62, (int64_t)1 << 62}; /* no elements, but strides overflow */
  int64_t max[1] = {INT64_MAX};
  const char *want = "lattice_lua_push_copy: shape is too large (its non-zero dimensions multiply to 2^59 or more)";
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_FLOAT32, 2, big), LUA_ERRRUN, want);
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_FLOAT32, 3, zero_big), LUA_ERRRUN, want);
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_INT64, 1, max), LUA_ERRRUN, want);
  lua_close(L);
  return 0;
}

static int push_out_of_memory(void) {
  lua_State *L = open_state();
  int64_t huge[1] = {(int64_t)1 << 50}; /* 4 PiB: representable, never allocatable */
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, LT_FLOAT32, 1, huge), LUA_ERRMEM,
              "lattice_lua_push_copy: out of memory allocating 4503599627370496 bytes");
  lua_close(L);
  return 0;
}

static int push_bad_dtype(void) {
  lua_State *L = open_state();
  CHECK_ERROR(L, 0, lattice_lua_push_copy(L, four, (lt_dtype)99, 1, shape4), LUA_ERRRUN,
              "lattice_lua_push_copy: dtype 99 is not an lt_dtype (0 to 8)");
  CHECK_ERROR(L, 0, lattice_lua_push_view(L, (void *)four, (lt_dtype)-1, 1, shape4, NULL, NULL), LUA_ERRRUN,
              "lattice_lua_push_view: dtype -1 is not an lt_dtype (0 to 8)");
  lua_close(L);
  return 0;
}

static int view_misaligned(void) {
  lua_State *L = open_state();
  static float buf[8];
  CHECK_ERROR(L, 0, lattice_lua_push_view(L, (char *)buf + 1, LT_FLOAT32, 1, shape4, NULL, NULL), LUA_ERRRUN,
              "lattice_lua_push_view: data is not aligned to 4 bytes, as float32 needs");
  CHECK(lattice_lua_push_copy(L, (char *)buf + 1, LT_FLOAT32, 1, shape4) == LUA_OK, "a copy takes any alignment");
  lua_close(L);
  return 0;
}

static void count_release(void *ud) { ++*(int *)ud; }

static int view_failure_releases_once(void) {
  int calls = 0;
  lua_State *L = open_state();
  CHECK(lattice_lua_push_view(NULL, (void *)four, LT_FLOAT32, 1, shape4, count_release, &calls) == LUA_ERRRUN,
        "NULL state");
  CHECK(calls == 1, "release called %d times for a NULL state, want 1", calls);
  CHECK(lattice_lua_push_view(L, NULL, LT_FLOAT32, 1, shape4, count_release, &calls) == LUA_ERRRUN, "NULL data");
  CHECK(calls == 2, "release called %d times in all, want 2", calls);
  lua_pop(L, 1);
  CHECK(lattice_lua_push_view(L, (void *)four, LT_FLOAT32, 1, shape4, count_release, &calls) == LUA_OK, "a view");
  CHECK(calls == 2, "release called while the view lives");
  lua_close(L);
  CHECK(calls == 3, "release called %d times after lua_close, want 3", calls);
  return 0;
}

/* ---- lattice_lua_totensor ---- */

static int totensor_bad_values(void) {
  CHECK(lattice_lua_totensor(NULL, 1) == NULL, "NULL state");
  lua_State *L = open_state();
  CHECK(lattice_lua_push_copy(L, four, LT_FLOAT32, 1, shape4) == LUA_OK, "push");
  CHECK(lattice_lua_totensor(L, 1) && lattice_lua_totensor(L, -1) == lattice_lua_totensor(L, 1), "the tensor");
  CHECK(lattice_lua_totensor(L, 0) == NULL, "index 0");
  CHECK(lattice_lua_totensor(L, 2) == NULL, "index past the top");
  CHECK(lattice_lua_totensor(L, 1000000) == NULL, "index far past the top");
  CHECK(lattice_lua_totensor(L, -2) == NULL, "negative index below the bottom");
  CHECK(lattice_lua_totensor(L, -1000000) == NULL, "negative index far below the bottom");
  CHECK(lattice_lua_totensor(L, LUA_REGISTRYINDEX) == NULL, "the registry");
  lua_pushinteger(L, 4);
  CHECK(lattice_lua_totensor(L, -1) == NULL, "a number");
  CHECK(luaL_dostring(L, "local t = lattice.zeros({2}); t:close(); return t") == LUA_OK, "a closed tensor");
  CHECK(lattice_lua_totensor(L, -1) == NULL, "a closed tensor");
  CHECK(lua_gettop(L) == 3, "the stack is unchanged");
  lua_close(L);
  L = bare_state();
  lua_newuserdatauv(L, 8, 0);
  luaL_newmetatable(L, "other.Type");
  lua_setmetatable(L, -2);
  CHECK(lattice_lua_totensor(L, -1) == NULL, "a foreign userdata in a state without lattice");
  lua_close(L);
  return 0;
}

/* ---- lattice_lua_read ---- */

static int read_null_state(void) {
  float out[4];
  CHECK(lattice_lua_read(NULL, 1, out, LT_FLOAT32, 4) == -1, "NULL state");
  return 0;
}

static int read_bad_values(void) {
  float out[4] = {0};
  lua_State *L = open_state();
  lua_pushinteger(L, 7);
  CHECK_READ_ERROR(L, lattice_lua_read(L, 1, out, LT_FLOAT32, 4),
                   "lattice_lua_read: the value at index 1 is a number, not a lattice.Tensor");
  CHECK_READ_ERROR(L, lattice_lua_read(L, 2, out, LT_FLOAT32, 4),
                   "lattice_lua_read: index 2 is outside the stack (1 values)");
  CHECK_READ_ERROR(L, lattice_lua_read(L, -5, out, LT_FLOAT32, 4),
                   "lattice_lua_read: index -5 is outside the stack (1 values)");
  CHECK_READ_ERROR(L, lattice_lua_read(L, 0, out, LT_FLOAT32, 4),
                   "lattice_lua_read: index 0 is outside the stack (1 values)");
  CHECK(luaL_dostring(L, "local t = lattice.zeros({2}); t:close(); return t") == LUA_OK, "a closed tensor");
  CHECK_READ_ERROR(L, lattice_lua_read(L, -1, out, LT_FLOAT32, 4),
                   "lattice_lua_read: the tensor at index -1 is closed");
  CHECK(lua_gettop(L) == 2, "the stack is unchanged");
  lua_close(L);
  return 0;
}

static int read_bad_buffer(void) {
  float out[4] = {0};
  lua_State *L = open_state();
  CHECK(lattice_lua_push_copy(L, four, LT_FLOAT32, 1, shape4) == LUA_OK, "push");
  CHECK_READ_ERROR(L, lattice_lua_read(L, -1, NULL, LT_FLOAT32, 4), "lattice_lua_read: dst is NULL for 4 elements");
  CHECK_READ_ERROR(L, lattice_lua_read(L, -1, out, LT_FLOAT32, 3),
                   "lattice_lua_read: capacity is 3, the tensor has 4 elements");
  CHECK_READ_ERROR(L, lattice_lua_read(L, -1, out, LT_FLOAT32, -1),
                   "lattice_lua_read: capacity is -1, the tensor has 4 elements");
  CHECK_READ_ERROR(L, lattice_lua_read(L, -1, out, (lt_dtype)9, 4),
                   "lattice_lua_read: dtype 9 is not an lt_dtype (0 to 8)");
  CHECK(out[0] == 0 && out[3] == 0, "nothing written on failure");
  CHECK(lattice_lua_read(L, -1, out, LT_FLOAT32, 4) == 4 && out[3] == 4, "a good read");
  CHECK(lua_gettop(L) == 1, "the stack is unchanged");
  lua_close(L);
  return 0;
}

static int read_not_open(void) {
  float out[4];
  lua_State *L = bare_state();
  lua_pushinteger(L, 1);
  CHECK_READ_ERROR(L, lattice_lua_read(L, 1, out, LT_FLOAT32, 4),
                   "lattice_lua_read: the value at index 1 is a number, not a lattice.Tensor");
  lua_close(L);
  return 0;
}

/* ---- lattice_lua_context ---- */

static int context_cases(void) {
  CHECK(lattice_lua_context(NULL) == NULL, "NULL state");
  lua_State *L = bare_state();
  lt_ctx *ctx = lattice_lua_context(L);
  CHECK(ctx && ctx == lattice_lua_context(L), "created once, then reused");
  CHECK(lattice_lua_open(L, NULL) == LUA_OK && lattice_lua_context(L) == ctx, "lattice_lua_open keeps it");
  CHECK(lua_gettop(L) == 0, "the stack is unchanged");
  lua_close(L);
  return 0;
}

/* ---- a stack the host has filled ---- */

static int full_stack(void) {
  lua_State *L = open_state();
  CHECK(lattice_lua_push_copy(L, four, LT_FLOAT32, 1, shape4) == LUA_OK, "push");
  while (lua_checkstack(L, 1)) lua_pushboolean(L, 1);
  int top = lua_gettop(L);
  float out[4];
  CHECK(lattice_lua_open(L, NULL) == LUA_ERRMEM, "open: want LUA_ERRMEM");
  CHECK(lattice_lua_push_copy(L, four, LT_FLOAT32, 1, shape4) == LUA_ERRMEM, "copy: want LUA_ERRMEM");
  CHECK(lattice_lua_totensor(L, 1) == NULL, "totensor: want NULL");
  CHECK(lattice_lua_read(L, 1, out, LT_FLOAT32, 4) == -1, "read: want -1");
  CHECK(lattice_lua_context(L) == NULL, "context: want NULL");
  CHECK(lua_gettop(L) == top, "nothing pushed");
  lua_settop(L, 1);
  CHECK(lattice_lua_read(L, 1, out, LT_FLOAT32, 4) == 4 && out[3] == 4, "the state works again");
  lua_close(L);
  return 0;
}

typedef struct test_case {
  const char *name;
  int (*fn)(void);
} test_case;

static const test_case cases[] = {
    {"lattice_lua_open(NULL, ...)", open_null_state},
    {"lattice_lua_open without luaL_openlibs", open_without_libs},
    {"lattice_lua_open with a directory lacking lattice/init.lua", open_missing_dir},
    {"lattice_lua_open with ';' in the directory", open_dir_with_separator},
    {"lattice_lua_open twice", open_twice},
    {"push with a NULL state", push_null_state},
    {"push where lattice is not open", push_not_open},
    {"push with NULL data and elements", push_null_data},
    {"push with NULL data and no elements", push_null_data_empty},
    {"push with a NULL shape", push_null_shape},
    {"push with ndim out of range", push_bad_ndim},
    {"push with a negative dimension", push_negative_dim},
    {"push with a shape whose size overflows", push_overflowing_shape},
    {"push of more bytes than memory holds", push_out_of_memory},
    {"push with a dtype out of range", push_bad_dtype},
    {"push_view of misaligned data", view_misaligned},
    {"push_view calls release exactly once", view_failure_releases_once},
    {"totensor of values that are not tensors", totensor_bad_values},
    {"read with a NULL state", read_null_state},
    {"read of values that are not tensors", read_bad_values},
    {"read into a bad buffer", read_bad_buffer},
    {"read where lattice is not open", read_not_open},
    {"lattice_lua_context", context_cases},
    {"every entry with a full stack", full_stack},
};

/* Runs one case in a child; returns 0 when it passed. */
static int run_case(const test_case *c) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return perror("fork"), 1;
  if (pid == 0) { /* _exit: the child must not run the parent's atexit handlers */
    int r = c->fn();
    fflush(stdout);
    _exit(r);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  int failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  if (WIFSIGNALED(status))
    printf("FAIL %s: crashed (signal %d, %s)\n", c->name, WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    printf("%s %s\n", failed ? "FAIL" : "ok  ", c->name);
  return failed;
}

int main(void) {
  int n = (int)(sizeof cases / sizeof cases[0]), failed = 0;
  for (int i = 0; i < n; i++) failed += run_case(&cases[i]);
  printf("%d of %d cases failed\n", failed, n);
  return failed != 0;
}
