/* The embedding API of lattice/lua.h. Every entry checks the state and its
 * pointers first and runs its Lua work under lua_pcall, so bad arguments and
 * errors (out of memory included) come back to the host as a status with a
 * message, never as a crash or a panic. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"
#include "lattice/lua.h"

#ifndef LATTICE_LUA_DIR
#define LATTICE_LUA_DIR "lua"
#endif
#ifndef LATTICE_INSTALL_LUA_DIR
#define LATTICE_INSTALL_LUA_DIR "/usr/local/share/lua/5.4"
#endif
#ifndef LATTICE_LUA_DIR_FROM_LIB
#define LATTICE_LUA_DIR_FROM_LIB "../share/lua/5.4"
#endif

/* Before any push: a NULL state has no stack to leave a message on, and the
 * host may have used up the slots Lua guarantees it. */
static int entry_status(lua_State *L, int slots) {
  if (!L) return LUA_ERRRUN;
  return lua_checkstack(L, slots) ? LUA_OK : LUA_ERRMEM;
}

/* True when `dir` holds lattice's package entry. */
static int has_lattice(const char *dir) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/lattice/init.lua", dir) >= (int)sizeof path) return 0;
  FILE *f = fopen(path, "r");
  if (f) fclose(f);
  return f != NULL;
}

/* The Lua directory of an installed liblattice_lua: LATTICE_LUA_DIR_FROM_LIB
 * from the directory the library was loaded from, written into buf. Holds
 * for any install prefix, and wherever the install was moved. Empty when the
 * code is not in a shared library of its own (lattice/core.so, a static
 * link), where the path means nothing; has_lattice then refuses it. */
static const char *lua_dir_beside_library(char *buf, size_t n) {
  Dl_info info;
  buf[0] = '\0';
  if (!dladdr((void *)lattice_lua_open, &info) || !info.dli_fname) return buf;
  const char *slash = strrchr(info.dli_fname, '/');
  if (!slash) return buf;
  int len = snprintf(buf, n, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, LATTICE_LUA_DIR_FROM_LIB);
  if (len < 0 || (size_t)len >= n) buf[0] = '\0';
  return buf;
}

/* The Lua directory, and whether the host named it (lua_dir or
 * LATTICE_LUA_PATH). Only a named one must hold lattice: without one, require
 * may still find lattice through the host's own package.path. `buf` holds
 * the directory found beside the library. */
static const char *pick_lua_dir(const char *lua_dir, int *named, char *buf, size_t n) {
  const char *env = getenv("LATTICE_LUA_PATH");
  *named = lua_dir != NULL || (env && *env);
  if (lua_dir) return lua_dir;
  if (env && *env) return env;
  if (has_lattice(lua_dir_beside_library(buf, n))) return buf;
  return has_lattice(LATTICE_LUA_DIR) ? LATTICE_LUA_DIR : LATTICE_INSTALL_LUA_DIR;
}

/* Protected part of lattice_lua_open: the directory comes as a light
 * userdata, whether the host named it as a boolean. */
static int open_protected(lua_State *L) {
  const char *dir = lua_touserdata(L, 1);
  if (strpbrk(dir, ";?")) /* package.path's separator and wildcard */
    return luaL_error(L, "lattice_lua_open: the Lua directory '%s' contains ';' or '?', which package.path cannot hold",
                      dir);
  if (lua_toboolean(L, 2) && !has_lattice(dir))
    return luaL_error(L, "lattice_lua_open: no lattice/init.lua under '%s'", dir);
  if (!lattice_lua_context(L)) return luaL_error(L, "lattice_lua_open: out of memory creating the context");
  if (lua_getglobal(L, "package") != LUA_TTABLE)
    return luaL_error(L, "lattice_lua_open: the package library is not open (call luaL_openlibs first)");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_lattice_core);
  lua_setfield(L, -2, "lattice.core");
  lua_pop(L, 1);
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lattice");
  lua_call(L, 1, 1);
  lua_setglobal(L, "lattice");
  return 0;
}

int lattice_lua_open(lua_State *L, const char *lua_dir) {
  int status = entry_status(L, 3), named;
  if (status != LUA_OK) return status;
  char beside[4096];
  const char *dir = pick_lua_dir(lua_dir, &named, beside, sizeof beside);
  lua_pushcfunction(L, open_protected);
  lua_pushlightuserdata(L, (void *)dir);
  lua_pushboolean(L, named);
  return lua_pcall(L, 2, 0, 0);
}

/* ---- pushes ---- */

/* What the protected pushes need; `owned` says whether lattice has taken
 * responsibility for calling `release` (a view's only exit otherwise), and
 * `out_of_memory` turns the error into LUA_ERRMEM. */
typedef struct push_args {
  const char *fname;
  void *data;
  lt_dtype dt;
  int ndim;
  const int64_t *shape;
  void (*release)(void *ud);
  void *ud;
  int view, owned, out_of_memory;
} push_args;

static int dtype_ok(lt_dtype dt) { return (int)dt >= 0 && (int)dt < LT_DTYPE_COUNT; }

/* The shape's element count, or a Lua error when a dimension is negative or
 * the non-zero ones multiply to 2^59 or more (the core's bound, which keeps
 * byte counts of up to 16 bytes an element inside int64). Every dimension is
 * checked, zero or not: the strides of an empty tensor are products too. */
static int64_t checked_numel(lua_State *L, const push_args *a) {
  int64_t nonzero = 1;
  int empty = 0;
  for (int i = 0; i < a->ndim; i++) {
    int64_t d = a->shape[i];
    if (d < 0) luaL_error(L, "%s: shape[%d] is %I (dimensions are at least 0)", a->fname, i, (lua_Integer)d);
    if (d == 0) {
      empty = 1;
      continue;
    }
    if (nonzero > INT64_MAX / 16 / d)
      luaL_error(L, "%s: shape is too large (its non-zero dimensions multiply to 2^59 or more)", a->fname);
    nonzero *= d;
  }
  return empty ? 0 : nonzero;
}

/* Every argument of a push, checked before anything is created; returns the
 * element count. */
static int64_t check_push(lua_State *L, const push_args *a) {
  if (luaL_getmetatable(L, LT_L_TENSOR) != LUA_TTABLE)
    luaL_error(L, "%s: lattice is not open in this state (call lattice_lua_open first)", a->fname);
  lua_pop(L, 1);
  if (!dtype_ok(a->dt))
    luaL_error(L, "%s: dtype %d is not an lt_dtype (0 to %d)", a->fname, (int)a->dt, LT_DTYPE_COUNT - 1);
  if (a->ndim < 0 || a->ndim > LT_MAX_DIMS)
    luaL_error(L, "%s: ndim must be in [0, %d], got %d", a->fname, LT_MAX_DIMS, a->ndim);
  if (a->ndim > 0 && !a->shape) luaL_error(L, "%s: shape is NULL with ndim %d", a->fname, a->ndim);
  int64_t n = checked_numel(L, a);
  if (n > 0 && !a->data) luaL_error(L, "%s: data is NULL for %I elements", a->fname, (lua_Integer)n);
  /* ops read a view's elements through typed pointers, which must be aligned */
  const lt_dtype_traits *tr = lt_dtype_info(a->dt);
  if (a->view && (uintptr_t)a->data % tr->size)
    luaL_error(L, "%s: data is not aligned to %d bytes, as %s needs", a->fname, (int)tr->size, tr->name);
  return n;
}

static int push_protected(lua_State *L) {
  push_args *a = lua_touserdata(L, 1);
  int64_t n = check_push(L, a);
  lt_ctx *ctx = lattice_lua_context(L);
  if (!ctx) {
    a->out_of_memory = 1;
    return luaL_error(L, "%s: out of memory", a->fname);
  }
  lt_l_newtensor(L); /* the userdata first: an error below leaks nothing */
  lt_l_tensor *u = lua_touserdata(L, -1);
  lt_status st;
  if (a->view)
    st = lt_tensor_wrap(ctx, &u->t, a->dt, a->ndim, a->shape, a->data, a->release, a->ud);
  else if (n == 0) /* nothing to copy, and memcpy may not even see a NULL data */
    st = lt_tensor_new(ctx, &u->t, a->dt, a->ndim, a->shape);
  else
    st = lt_tensor_from_data(ctx, &u->t, a->dt, a->ndim, a->shape, a->data);
  if (a->view && st == LT_OK) a->owned = 1; /* the storage calls release from now on */
  if (st == LT_ERR_MEM) {
    a->out_of_memory = 1;
    if (a->view) return luaL_error(L, "%s: out of memory", a->fname);
    return luaL_error(L, "%s: out of memory allocating %I bytes", a->fname,
                      (lua_Integer)(n * (int64_t)lt_dtype_info(a->dt)->size));
  }
  if (st != LT_OK) return luaL_error(L, "%s", lt_ctx_error(ctx));
  lt_l_report_alloc(L, ctx); /* a copy's bytes, told to the GC */
  return 1;
}

static int push(lua_State *L, push_args *a) {
  int status = entry_status(L, 2);
  if (status == LUA_OK) {
    lua_pushcfunction(L, push_protected);
    lua_pushlightuserdata(L, a);
    status = lua_pcall(L, 1, 1, 0);
    if (status == LUA_ERRRUN && a->out_of_memory) status = LUA_ERRMEM;
  }
  if (a->view && !a->owned && a->release) a->release(a->ud);
  return status;
}

int lattice_lua_push_copy(lua_State *L, const void *data, lt_dtype dt, int ndim, const int64_t *shape) {
  push_args a = {.fname = "lattice_lua_push_copy", .data = (void *)data, .dt = dt, .ndim = ndim, .shape = shape};
  return push(L, &a);
}

int lattice_lua_push_view(lua_State *L, void *data, lt_dtype dt, int ndim, const int64_t *shape,
                          void (*release)(void *ud), void *ud) {
  push_args a = {.fname = "lattice_lua_push_view",
                 .data = data,
                 .dt = dt,
                 .ndim = ndim,
                 .shape = shape,
                 .release = release,
                 .ud = ud,
                 .view = 1};
  return push(L, &a);
}

/* ---- reading tensors back ---- */

/* A lookup of the value at the host's index `idx`; `valid` says whether idx
 * names a value (Lua does not check stack indices: one below the bottom would
 * read the caller's frame), `top` is the stack height the host saw. */
typedef struct lookup_args {
  const char *fname;
  int idx, valid, top;
  lt_tensor *t;
} lookup_args;

/* Argument 2 is the value itself (nil for an invalid index). */
static int lookup_protected(lua_State *L) {
  lookup_args *a = lua_touserdata(L, 1);
  if (!a->valid) return luaL_error(L, "%s: index %d is outside the stack (%d values)", a->fname, a->idx, a->top);
  lt_l_tensor *u = luaL_testudata(L, 2, LT_L_TENSOR);
  if (!u)
    return luaL_error(L, "%s: the value at index %d is a %s, not a lattice.Tensor", a->fname, a->idx,
                      luaL_typename(L, 2));
  if (!u->t) return luaL_error(L, "%s: the tensor at index %d is closed", a->fname, a->idx);
  a->t = u->t;
  return 0;
}

/* The live tensor at a->idx (borrowed: the host's stack slot keeps it), or
 * NULL with the reason pushed. Needs 3 free stack slots. */
static lt_tensor *lookup(lua_State *L, lookup_args *a) {
  a->top = lua_gettop(L);
  int i = a->idx, on_stack = i > LUA_REGISTRYINDEX; /* Lua checks pseudo-indices itself */
  int at = on_stack && i < 0 ? a->top + i + 1 : i;  /* absolute: the pushes below move the top */
  a->valid = !on_stack || (at >= 1 && at <= a->top);
  lua_pushcfunction(L, lookup_protected);
  lua_pushlightuserdata(L, a);
  if (a->valid)
    lua_pushvalue(L, at);
  else
    lua_pushnil(L);
  return lua_pcall(L, 2, 0, 0) == LUA_OK ? a->t : NULL;
}

lt_tensor *lattice_lua_totensor(lua_State *L, int idx) {
  if (entry_status(L, 3) != LUA_OK) return NULL;
  lookup_args a = {.fname = "lattice_lua_totensor", .idx = idx};
  lt_tensor *t = lookup(L, &a);
  if (!t) lua_pop(L, 1);
  return t;
}

/* lattice_lua_read's failure: -1, with the reason as the context's error;
 * the stack stays as the host left it. */
static int64_t read_fail(lua_State *L, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lt_ctx *ctx = lattice_lua_context(L);
  if (ctx) lt_ctx_fail(ctx, LT_ERR_ARG, "%s", msg);
  return -1;
}

int64_t lattice_lua_read(lua_State *L, int idx, void *dst, lt_dtype dt, int64_t capacity) {
  if (entry_status(L, 3) != LUA_OK) return -1;
  lookup_args a = {.fname = "lattice_lua_read", .idx = idx};
  lt_tensor *t = lookup(L, &a);
  if (!t) {
    char msg[512]; /* copied before the pop lets the collector take the string */
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "lattice_lua_read: error");
    lua_pop(L, 1);
    return read_fail(L, "%s", msg);
  }
  int64_t n = lt_tensor_size(t);
  if (!dtype_ok(dt))
    return read_fail(L, "lattice_lua_read: dtype %d is not an lt_dtype (0 to %d)", (int)dt, LT_DTYPE_COUNT - 1);
  if (capacity < 0 || n > capacity)
    return read_fail(L, "lattice_lua_read: capacity is %lld, the tensor has %lld elements", (long long)capacity,
                     (long long)n);
  if (n > 0 && !dst) return read_fail(L, "lattice_lua_read: dst is NULL for %lld elements", (long long)n);
  lt_tensor_read(t, dst, dt);
  return n;
}
