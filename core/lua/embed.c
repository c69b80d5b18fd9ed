/* The embedding API of lattice/lua.h. Every entry runs its Lua work under
 * lua_pcall, so an error (bad shape, out of memory) comes back to the host as
 * a status with the message on the stack instead of a panic. */
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

/* True when `dir` holds lattice's package entry. */
static int has_lattice(const char *dir) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/lattice/init.lua", dir) >= (int)sizeof path) return 0;
  FILE *f = fopen(path, "r");
  if (f) fclose(f);
  return f != NULL;
}

static const char *pick_lua_dir(const char *lua_dir) {
  if (lua_dir) return lua_dir;
  const char *env = getenv("LATTICE_LUA_PATH");
  if (env && *env) return env;
  return has_lattice(LATTICE_LUA_DIR) ? LATTICE_LUA_DIR : LATTICE_INSTALL_LUA_DIR;
}

/* Protected part of lattice_lua_open; the directory comes as a light userdata. */
static int open_protected(lua_State *L) {
  const char *dir = lua_touserdata(L, 1);
  lattice_lua_context(L); /* created here, where an error is caught */
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
  lua_pushcfunction(L, open_protected);
  lua_pushlightuserdata(L, (void *)pick_lua_dir(lua_dir));
  return lua_pcall(L, 1, 0, 0);
}

/* What the protected pushes need; `owned` says whether lattice has taken
 * responsibility for calling `release` (a view's only exit otherwise). */
typedef struct push_args {
  void *data;
  lt_dtype dt;
  int ndim;
  const int64_t *shape;
  void (*release)(void *ud);
  void *ud;
  int view, owned;
} push_args;

static int push_protected(lua_State *L) {
  push_args *a = lua_touserdata(L, 1);
  const char *fname = a->view ? "lattice_lua_push_view" : "lattice_lua_push_copy";
  if (luaL_getmetatable(L, LT_L_TENSOR) != LUA_TTABLE)
    return luaL_error(L, "%s: lattice is not open in this state (call lattice_lua_open first)", fname);
  lua_pop(L, 1);
  if (a->ndim < 0 || a->ndim > LT_MAX_DIMS || (a->ndim > 0 && !a->shape) || (int)a->dt < 0 ||
      (int)a->dt >= LT_DTYPE_COUNT)
    return luaL_error(L, "%s: bad ndim, shape or dtype", fname);
  lt_ctx *ctx = lattice_lua_context(L);
  lt_l_newtensor(L); /* the userdata first: an error below leaks nothing */
  lt_l_tensor *u = lua_touserdata(L, -1);
  lt_status st = a->view ? lt_tensor_wrap(ctx, &u->t, a->dt, a->ndim, a->shape, a->data, a->release, a->ud)
                         : lt_tensor_from_data(ctx, &u->t, a->dt, a->ndim, a->shape, a->data);
  if (a->view && st == LT_OK) a->owned = 1; /* the storage calls release from now on */
  if (st != LT_OK) return luaL_error(L, "%s", lt_ctx_error(ctx));
  lt_l_report_alloc(L, ctx); /* a copy's bytes, told to the GC */
  return 1;
}

static int push(lua_State *L, push_args *a) {
  lua_pushcfunction(L, push_protected);
  lua_pushlightuserdata(L, a);
  int status = lua_pcall(L, 1, 1, 0);
  if (a->view && !a->owned && a->release) a->release(a->ud);
  return status;
}

int lattice_lua_push_copy(lua_State *L, const void *data, lt_dtype dt, int ndim, const int64_t *shape) {
  push_args a = {.data = (void *)data, .dt = dt, .ndim = ndim, .shape = shape};
  return push(L, &a);
}

int lattice_lua_push_view(lua_State *L, void *data, lt_dtype dt, int ndim, const int64_t *shape,
                          void (*release)(void *ud), void *ud) {
  push_args a = {.data = data, .dt = dt, .ndim = ndim, .shape = shape, .release = release, .ud = ud, .view = 1};
  return push(L, &a);
}

lt_tensor *lattice_lua_totensor(lua_State *L, int idx) { return lt_l_totensor(L, idx); }

int64_t lattice_lua_read(lua_State *L, int idx, void *dst, lt_dtype dt, int64_t capacity) {
  lt_tensor *t = lt_l_totensor(L, idx);
  if (!t || (int)dt < 0 || (int)dt >= LT_DTYPE_COUNT || lt_tensor_size(t) > capacity) return -1;
  lt_tensor_read(t, dst, dt);
  return lt_tensor_size(t);
}
