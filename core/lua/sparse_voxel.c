/* Points and voxels from Lua (lua/lattice/ops/voxel.lua checks the options):
 *   lattice.core.sparse.quantize(points, batch, size, origin, fname) -> coords, index, inverse
 *   lattice.core.sparse.voxelize(points, feats, batch, size, origin, reduction, batches, fname) -> SparseTensor
 *   lattice.core.sparse.devoxelize(points, x, batch, size, origin, mode, renormalize, fname) -> Tensor
 *   lattice.core.sparse.cells_with_isa(points, size, origin, isa) -> cells (N, 3) int32, the number of
 *     points with cells (0 after), the ISA used: the cell kernel of sparse_quantize and voxelize, for specs
 *   lattice.core.sparse.digests_with_isa(keys, isa) -> digests (N) int64, the ISA used: the key digest
 *     kernel of sparse_quantize and voxelize (keys int32 (N, 4)), for specs
 * batch: nil or an integer (N) tensor; size, origin: lists of 3 numbers;
 * reduction "mean", "sum" or "max"; mode "nearest" or "trilinear"; batches:
 * the number of batch counts the voxelized tensor gets; fname one of the
 * public names (the tape names its nodes with it: static strings). */
#include "sparse_binding.h"
#include "sparse/internal.h"

static const char *const names[] = {"sparse_quantize", "unique_coords", "voxelize", "devoxelize", NULL};
static const char *const reductions[] = {"mean", "sum", "max", NULL};
static const char *const modes[] = {"nearest", "trilinear", NULL};

static void read_grid(lua_State *L, int size, int origin, lt_voxel_grid *g) {
  for (int a = 0; a < 3; a++) {
    lua_rawgeti(L, size, a + 1);
    g->size[a] = (float)luaL_checknumber(L, -1);
    lua_rawgeti(L, origin, a + 1);
    g->origin[a] = (float)luaL_checknumber(L, -1);
    lua_pop(L, 2);
  }
}

static lt_tensor *opt_batch(lua_State *L, int arg) { return lua_isnoneornil(L, arg) ? NULL : lt_l_checktensor(L, arg); }

static int l_quantize(lua_State *L) {
  lua_settop(L, 5);
  lt_tensor *points = lt_l_checktensor(L, 1), *batch = opt_batch(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  const char *fname = names[luaL_checkoption(L, 5, NULL, names)];
  lt_voxel_grid g;
  read_grid(L, 3, 4, &g);
  lt_l_tensor *u[3];
  for (int k = 0; k < 3; k++) u[k] = lt_l_newtensor(L);
  lt_l_check(L, lt_sparse_quantize(lt_l_ctx(L), &u[0]->t, &u[1]->t, &u[2]->t, points, batch, &g, fname));
  lt_l_report_alloc(L, lt_l_ctx(L));
  return 3;
}

static int l_voxelize(lua_State *L) {
  lua_settop(L, 8);
  lt_tensor *points = lt_l_checktensor(L, 1), *feats = lt_l_checktensor(L, 2), *batch = opt_batch(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  lt_voxel_reduction red = (lt_voxel_reduction)luaL_checkoption(L, 6, NULL, reductions);
  lua_Integer batches = luaL_checkinteger(L, 7);
  const char *fname = names[luaL_checkoption(L, 8, NULL, names)];
  lt_voxel_grid g;
  read_grid(L, 4, 5, &g);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_l_pushkey(L, NULL); /* created first: nothing below raises while the map is held */
  int key = lua_gettop(L);
  lt_l_tensor *u = lt_l_newtensor(L);
  int out = lua_gettop(L);
  lt_l_check(L, lt_sparse_voxelize(ctx, lua_touserdata(L, key), &u->t, points, feats, batch, &g, red, fname));
  lt_l_push_counts_for(L, *(lt_coords **)lua_touserdata(L, key), batches);
  lt_l_pushsparse(L, key, out, -1);
  lt_l_report_alloc(L, ctx);
  return 1;
}

static int l_devoxelize(lua_State *L) {
  lua_settop(L, 8);
  lt_tensor *points = lt_l_checktensor(L, 1), *batch = opt_batch(L, 3);
  lt_l_checksparse(L, 2);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  lt_devoxel_mode mode = (lt_devoxel_mode)luaL_checkoption(L, 6, NULL, modes);
  int renormalize = lua_toboolean(L, 7);
  const char *fname = names[luaL_checkoption(L, 8, NULL, names)];
  lt_voxel_grid g;
  read_grid(L, 4, 5, &g);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_sparse_devoxelize(lt_l_ctx(L), &u->t, points, batch, lt_l_sparse_coords(L, 2),
                                             lt_l_sparse_feats(L, 2), &g, mode, renormalize, fname));
}

static int l_cells_with_isa(lua_State *L) {
  lua_settop(L, 4);
  lt_tensor *points = lt_l_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lt_isa isa = lt_l_checkisa(L, 4, "cells_with_isa"), used;
  lt_voxel_grid g;
  read_grid(L, 2, 3, &g);
  lt_l_tensor *u = lt_l_newtensor(L);
  int64_t good;
  lt_l_check(L, lt__voxel_cells_isa(lt_l_ctx(L), &u->t, &good, points, &g, isa, &used));
  lua_pushinteger(L, good);
  lua_pushstring(L, lt_isa_name(used));
  return 3;
}

static int l_digests_with_isa(lua_State *L) { return lt_l_isa_hook(L, lt__key_digests_isa, "digests_with_isa"); }

void lt_l_open_sparse_voxel(lua_State *L) {
  lt_l_sparse_table(L);
  static const luaL_Reg fns[] = {{"quantize", l_quantize},
                                 {"voxelize", l_voxelize},
                                 {"devoxelize", l_devoxelize},
                                 {"cells_with_isa", l_cells_with_isa},
                                 {"digests_with_isa", l_digests_with_isa},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
  lua_pop(L, 1);
}
