/* Placeholder until the embedding API lands. */
#include "binding.h"
#include "lattice/lua.h"
int lattice_lua_open(lua_State *L, const char *lua_dir) { (void)lua_dir; lua_pushliteral(L, "not implemented yet"); return LUA_ERRRUN; }
