/* Embedding lattice in a host program through a lua_State.
 *
 *   lua_State *L = luaL_newstate();
 *   luaL_openlibs(L);
 *   lattice_lua_open(L);             -- lattice and lattice.core are now requirable
 *   ...push data with lattice_lua_push_copy / _push_view, run a script,
 *   read results with lattice_lua_read...
 *
 * Each lua_State gets its own context (allocator, RNG, threads, tape); two
 * states in two threads compute at once without seeing each other. */
#ifndef LATTICE_LUA_H
#define LATTICE_LUA_H

#include <lua.h>
#include "lattice/lattice.h"

/* The Lua C module entry: `require "lattice.core"`. */
int luaopen_lattice_core(lua_State *L);

/* Preloads lattice.core, puts lattice's Lua files on package.path (the
 * source tree in a build, the installed ones otherwise, or `lua_dir` when
 * non-NULL), requires "lattice" and sets it as the global `lattice`.
 * Returns LUA_OK, or an error code with the message on the stack. */
int lattice_lua_open(lua_State *L, const char *lua_dir);

/* Pushes a new tensor holding a copy of `data` (row-major, `ndim` dims). */
void lattice_lua_push_copy(lua_State *L, const void *data, lt_dtype dt, int ndim, const int64_t *shape);

/* Pushes a tensor viewing the host's buffer without copying. Lifetime rule:
 * the buffer must stay valid and unmoved until `release(ud)` is called, which
 * happens when the last tensor viewing it (views and slices included) is
 * collected or closed; `release` may be NULL when the buffer outlives the
 * lua_State. Ops read it and write results into new tensors; nothing writes
 * into the host buffer. */
void lattice_lua_push_view(lua_State *L, void *data, lt_dtype dt, int ndim, const int64_t *shape,
                           void (*release)(void *ud), void *ud);

/* The tensor at `idx`, or NULL when the value is not a tensor. The pointer is
 * borrowed: valid while the value stays reachable from Lua. */
lt_tensor *lattice_lua_totensor(lua_State *L, int idx);

/* Copies the tensor at `idx` row-major into `dst` as dtype `dt` (at most
 * `capacity` elements). Returns the element count, or -1 when the value is not
 * a tensor or does not fit. */
int64_t lattice_lua_read(lua_State *L, int idx, void *dst, lt_dtype dt, int64_t capacity);

/* The context of this state. */
lt_ctx *lattice_lua_context(lua_State *L);

#endif
