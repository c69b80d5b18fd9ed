/* The shared module lattice/core.so for plain `lua5.4`: the binding is linked
 * in statically, and this file keeps luaopen_lattice_core exported. */
#include "lattice/lua.h"

int (*const lattice_core_entry)(lua_State *) = luaopen_lattice_core;
