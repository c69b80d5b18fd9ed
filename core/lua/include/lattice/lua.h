/* Embedding lattice in a host program through a lua_State.
 *
 *   lua_State *L = luaL_newstate();
 *   luaL_openlibs(L);
 *   if (lattice_lua_open(L, NULL) != LUA_OK) -- message on the stack
 *   ...push data with lattice_lua_push_copy / _push_view, call a Lua function,
 *   read results with lattice_lua_read...
 *
 * examples/embed/host.c is a complete host. Each lua_State gets its own
 * context (allocator, RNG, threads, tape); two states in two threads compute
 * at once without seeing each other. One lua_State is used by one thread at a
 * time, as Lua itself requires.
 *
 * None of these functions raises a Lua error into the host: the ones that can
 * fail return LUA_OK or an error code with the message pushed on the stack. */
#ifndef LATTICE_LUA_H
#define LATTICE_LUA_H

#include <lua.h>
#include "lattice/lattice.h"

/* The Lua C module entry: `require "lattice.core"`. */
int luaopen_lattice_core(lua_State *L);

/* Preloads lattice.core, puts lattice's Lua files first on package.path,
 * requires "lattice" and sets it as the global `lattice`. Needs the standard
 * libraries (luaL_openlibs). The Lua directory (the one holding
 * lattice/init.lua) is, first found: `lua_dir` when non-NULL, the environment
 * variable LATTICE_LUA_PATH, the source tree of the build, the installed one.
 * Returns LUA_OK with nothing pushed, or an error code with the message on
 * the stack. */
int lattice_lua_open(lua_State *L, const char *lua_dir);

/* Pushes a new tensor holding a copy of `data` (row-major, `ndim` dims, each
 * at most LT_MAX_DIMS); the host may reuse `data` at once. Returns LUA_OK
 * with the tensor pushed, or an error code with the message pushed. */
int lattice_lua_push_copy(lua_State *L, const void *data, lt_dtype dt, int ndim, const int64_t *shape);

/* Pushes a tensor viewing the host's buffer without copying.
 * Lifetime rule: the buffer must stay valid and unmoved until `release(ud)`
 * is called. lattice calls it exactly once, when the last tensor viewing the
 * buffer (views, reshapes and slices of it included) is collected or closed,
 * or at lua_close at the latest; also before returning when the push fails.
 * `release` may be NULL when the buffer outlives the lua_State.
 * Ops read the buffer and write their results into new tensors; nothing in
 * lattice writes into it, and the host must not change it while Lua code that
 * reads the tensor runs. Returns like lattice_lua_push_copy. */
int lattice_lua_push_view(lua_State *L, void *data, lt_dtype dt, int ndim, const int64_t *shape,
                          void (*release)(void *ud), void *ud);

/* The tensor at `idx`, or NULL when the value is not a (live) tensor. The
 * pointer is borrowed: valid while the value stays reachable from Lua. */
lt_tensor *lattice_lua_totensor(lua_State *L, int idx);

/* Copies the tensor at `idx` row-major into `dst`, converted to dtype `dt`
 * (at most `capacity` elements). Returns the element count, or -1 when the
 * value is not a tensor or does not fit (nothing is written then). */
int64_t lattice_lua_read(lua_State *L, int idx, void *dst, lt_dtype dt, int64_t capacity);

/* The context of this state (created on first use). */
lt_ctx *lattice_lua_context(lua_State *L);

#endif
