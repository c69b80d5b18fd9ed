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
 * Errors. None of the lattice_lua_* functions raises a Lua error into the
 * host, whatever its arguments: each checks them and reports.
 *  - The int functions return LUA_OK, or an error code with the message
 *    pushed on the stack: LUA_ERRRUN for bad arguments (the message names the
 *    function and the argument: "lattice_lua_push_copy: data is NULL for 4
 *    elements"), LUA_ERRMEM when memory runs out.
 *  - With L == NULL they return LUA_ERRRUN, and when the stack cannot grow by
 *    the few slots they need (the host filled it), LUA_ERRMEM: in both cases
 *    nothing is pushed, since there is no room for a message.
 *  - lattice_lua_totensor and lattice_lua_context return NULL, and
 *    lattice_lua_read -1, leaving the stack as it was.
 * What cannot be checked stays the host's part: L must be a live state (not
 * closed), and non-NULL data must point to as many elements as the shape
 * says. luaopen_lattice_core is a lua_CFunction: Lua calls it (through
 * require or lua_call) and it raises as Lua functions do. */
#ifndef LATTICE_LUA_H
#define LATTICE_LUA_H

/* Inside the block: Lua's own lua.h declares its C functions without
 * extern "C" (C++ hosts include lua.hpp for that). */
#ifdef __cplusplus
extern "C" {
#endif
#include <lua.h>
#include "lattice/lattice.h"

/* The Lua C module entry: `require "lattice.core"`. */
int luaopen_lattice_core(lua_State *L);

/* Preloads lattice.core, puts lattice's Lua files first on package.path,
 * requires "lattice" and sets it as the global `lattice`. Needs the standard
 * libraries (luaL_openlibs). The Lua directory (the one holding
 * lattice/init.lua) is, first found: `lua_dir` when non-NULL, the environment
 * variable LATTICE_LUA_PATH, the source tree of the build, the installed one.
 * A directory the host names (lua_dir or LATTICE_LUA_PATH) must hold
 * lattice/init.lua, and no directory may contain ';' or '?' (package.path's
 * separators). Opening a state twice is harmless. Returns LUA_OK with nothing
 * pushed, or an error code with the message on the stack. */
int lattice_lua_open(lua_State *L, const char *lua_dir);

/* Pushes a new tensor holding a copy of `data`: row-major, dtype `dt`, `ndim`
 * dimensions (0 to LT_MAX_DIMS) given by `shape`. `shape` may be NULL only
 * when ndim is 0 (a scalar), `data` only when the shape has no elements.
 * Dimensions are at least 0, and the non-zero ones must multiply to less than
 * 2^59 (every dimension counts, zero or not). The host may reuse `data` at
 * once; it needs no alignment. Returns LUA_OK with the tensor pushed, or an
 * error code with the message pushed (LUA_ERRMEM when the bytes cannot be
 * allocated). */
int lattice_lua_push_copy(lua_State *L, const void *data, lt_dtype dt, int ndim, const int64_t *shape);

/* Pushes a tensor viewing the host's buffer without copying. The arguments
 * are checked as lattice_lua_push_copy's, and `data` must be aligned to its
 * dtype's size (4 bytes for float32), since ops read it through typed
 * pointers.
 * Lifetime rule: the buffer must stay valid and unmoved until `release(ud)`
 * is called. lattice calls it exactly once, when the last tensor viewing the
 * buffer (views, reshapes and slices of it included) is collected or closed,
 * or at lua_close at the latest; also before returning when the push fails
 * (bad arguments and a NULL L included).
 * `release` may be NULL when the buffer outlives the lua_State.
 * Ops read the buffer and write their results into new tensors; nothing in
 * lattice writes into it, and the host must not change it while Lua code that
 * reads the tensor runs. Returns like lattice_lua_push_copy. */
int lattice_lua_push_view(lua_State *L, void *data, lt_dtype dt, int ndim, const int64_t *shape,
                          void (*release)(void *ud), void *ud);

/* The tensor at `idx`, or NULL when L is NULL, idx is outside the stack, or
 * the value is not a live tensor (another type, or a closed tensor). The
 * pointer is borrowed: valid while the value stays reachable from Lua. */
lt_tensor *lattice_lua_totensor(lua_State *L, int idx);

/* Copies the tensor at `idx` row-major into `dst`, converted to dtype `dt`
 * (at most `capacity` elements). Returns the element count, or -1 when L is
 * NULL, idx is outside the stack, the value is not a live tensor, dt is out
 * of range, capacity is negative or too small, or dst is NULL while the
 * tensor has elements. Nothing is written then, and (L not NULL) the reason
 * is the context's error: lt_ctx_error(lattice_lua_context(L)), e.g.
 * "lattice_lua_read: capacity is 3, the tensor has 4 elements". */
int64_t lattice_lua_read(lua_State *L, int idx, void *dst, lt_dtype dt, int64_t capacity);

/* The context of this state, created on first use (lattice need not be open
 * yet; lattice_lua_open keeps the same one). NULL when L is NULL or the
 * context cannot be created (out of memory, a full stack). Borrowed: it lives
 * until lua_close. */
lt_ctx *lattice_lua_context(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
