/* luaopen_lattice_core: one context per lua_State, owned by a userdata in the
 * registry whose __gc closes it (lt_ctx_close: a tape left recording by an
 * abandoned gradient, and every cache, is freed with the state). */
#include "binding.h"
#include "nn_module.h"
#include "quant_binding.h"
#include "sparse_binding.h"
#include "lattice/lua.h"

static int ctx_gc(lua_State *L) {
  lt_ctx **box = lua_touserdata(L, 1);
  if (*box) lt_ctx_close(*box);
  *box = NULL;
  return 0;
}

/* Creates this state's context the first time; later calls reuse it. */
static void ensure_context(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LT_L_CONTEXT) == LUA_TUSERDATA) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lt_ctx **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "lattice.Context");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  *box = lt_ctx_new();
  if (!*box) luaL_error(L, "lattice: out of memory creating the context");
  lua_setfield(L, LUA_REGISTRYINDEX, LT_L_CONTEXT);
}

int luaopen_lattice_core(lua_State *L) {
  ensure_context(L);
  lua_newtable(L);
  lt_l_open_tensor(L);
  lt_l_open_random(L);
  lt_l_open_elementwise(L);
  lt_l_open_reduce(L);
  lt_l_open_linalg(L);
  lt_l_open_index(L);
  lt_l_open_autograd(L);
  lt_l_open_io(L);
  lt_l_open_runtime(L);
  lt_l_open_nn(L);
  lt_l_open_nn_sparse(L);
  lt_l_open_nn_quant(L);
  lt_l_open_optim(L);
  lt_l_open_config(L);
  lt_l_open_transformer(L);
  lt_l_open_attention(L);
  lt_l_open_sample(L);
  lt_l_open_kernels(L);
  lt_l_open_sparse(L);
  lt_l_open_sparse_ops(L);
  lt_l_open_tokens(L);
  lt_l_open_json(L);
  lt_l_open_fs(L);
  lt_l_open_sparse_pool(L);
  lt_l_open_sparse_algebra(L);
  lt_l_open_sparse_rows(L);
  lt_l_open_sparse_voxel(L);
  lt_l_open_sparse_coords(L);
  lt_l_open_quant(L);
  return 1;
}

/* Protected part of lattice_lua_context: creating the context can fail. */
static int context_protected(lua_State *L) {
  ensure_context(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LT_L_CONTEXT);
  lua_pushlightuserdata(L, *(lt_ctx **)lua_touserdata(L, -1));
  return 1;
}

/* A host calls this outside any pcall, so nothing here may raise. */
lt_ctx *lattice_lua_context(lua_State *L) {
  if (!L || !lua_checkstack(L, 2)) return NULL;
  lua_pushcfunction(L, context_protected);
  lt_ctx *ctx = lua_pcall(L, 0, 1, 0) == LUA_OK ? lua_touserdata(L, -1) : NULL;
  lua_pop(L, 1);
  return ctx;
}
