/* Row operations, ordering and occupancy from Lua (lua/lattice/ops/rows.lua
 * checks the options and converts coordinates):
 *   lattice.core.sparse.select(x, rows, fname) -> SparseTensor of x's rows (features by take)
 *   lattice.core.sparse.mask_rows(mask, n, fname) -> int32 rows
 *   lattice.core.sparse.crop_rows(x, lo, hi, fname) -> int32 rows (lo, hi lists of 3)
 *   lattice.core.sparse.topk_rows(x, keep, fname) -> int32 rows (keep: a count per batch)
 *   lattice.core.sparse.morton_codes(coords, fname) -> int64 codes
 *   lattice.core.sparse.morton_order(coords, fname) -> int32 order, its inverse
 *   lattice.core.sparse.occupancy_downsample(coords, fname) -> parents, occupancy
 *   lattice.core.sparse.occupancy_expand(coords, occupancy, fname) -> children, parent_rows, child_indices
 *   lattice.core.sparse.child_coords(parents, child_indices, fname) -> children
 * Coordinates are int32 (N, 4) tensors; fname names the public op in messages. */
#include "sparse_binding.h"

/* Pushes n empty tensors (the results, made before the op runs). */
static lt_l_tensor **push_results(lua_State *L, lt_l_tensor **u, int n) {
  for (int k = 0; k < n; k++) u[k] = lt_l_newtensor(L);
  return u;
}

static int l_select(lua_State *L) {
  lua_settop(L, 3);
  lt_l_checksparse(L, 1);
  lt_tensor *rows = lt_l_checktensor(L, 2);
  const char *fname = luaL_checkstring(L, 3);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_l_pushkey(L, NULL);
  lt_coords **out = lua_touserdata(L, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check(L, lt_sparse_select(ctx, out, lt_l_sparse_coords(L, 1), rows, fname));
  lt_l_check_renamed(L, lt_take(ctx, &u->t, lt_l_sparse_feats(L, 1), rows, 0), "take", fname);
  lt_l_push_counts_for(L, *out, lt_l_sparse_batches(L, 1));
  lt_l_pushsparse(L, 4, 5, 6);
  lt_l_report_alloc(L, ctx);
  return 1;
}

static int l_mask_rows(lua_State *L) {
  lt_tensor *mask = lt_l_checktensor(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char *fname = luaL_checkstring(L, 3);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_sparse_mask_rows(lt_l_ctx(L), &u->t, mask, n, fname));
}

static void read_triple(lua_State *L, int arg, int32_t *out) {
  luaL_checktype(L, arg, LUA_TTABLE);
  for (int a = 0; a < 3; a++) {
    lua_rawgeti(L, arg, a + 1);
    lua_Integer v = luaL_checkinteger(L, -1);
    if (v < INT32_MIN || v > INT32_MAX) luaL_error(L, "crop: bounds must fit in int32");
    out[a] = (int32_t)v;
    lua_pop(L, 1);
  }
}

static int l_crop_rows(lua_State *L) {
  lt_l_checksparse(L, 1);
  int32_t lo[3], hi[3];
  read_triple(L, 2, lo);
  read_triple(L, 3, hi);
  const char *fname = luaL_checkstring(L, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_sparse_crop_rows(lt_l_ctx(L), &u->t, lt_l_sparse_coords(L, 1), lo, hi, fname));
}

static int l_topk_rows(lua_State *L) {
  lua_settop(L, 3);
  lt_l_checksparse(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *fname = luaL_checkstring(L, 3);
  lua_Integer batches = (lua_Integer)lua_rawlen(L, 2);
  int64_t *keep = lua_newuserdatauv(L, (size_t)(batches + 1) * sizeof *keep, 0); /* scratch, the GC frees it */
  for (lua_Integer b = 0; b < batches; b++) {
    lua_rawgeti(L, 2, b + 1);
    keep[b] = (int64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_sparse_topk_rows(lt_l_ctx(L), &u->t, lt_l_sparse_coords(L, 1), lt_l_sparse_feats(L, 1), keep,
                                            batches, fname));
}

static int l_morton_codes(lua_State *L) {
  lt_tensor *coords = lt_l_checktensor(L, 1);
  const char *fname = luaL_checkstring(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_morton_codes(lt_l_ctx(L), &u->t, coords, fname));
}

/* order, and its inverse: inverse[order[i]] = i. */
static int l_morton_order(lua_State *L) {
  lt_tensor *coords = lt_l_checktensor(L, 1);
  const char *fname = luaL_checkstring(L, 2);
  lt_l_tensor *u[2];
  push_results(L, u, 2);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_status st = lt_morton_order(ctx, &u[0]->t, coords, fname);
  if (!st) st = lt_tensor_new(ctx, &u[1]->t, LT_INT32, 1, lt_tensor_shape(u[0]->t));
  if (!st) {
    const int32_t *o = lt_tensor_data(u[0]->t);
    int32_t *inv = lt_tensor_data(u[1]->t);
    for (int64_t i = 0; i < lt_tensor_shape(u[0]->t)[0]; i++) inv[o[i]] = (int32_t)i;
  }
  lt_l_result(L, st);
  return 2;
}

static int l_occupancy_downsample(lua_State *L) {
  lt_tensor *coords = lt_l_checktensor(L, 1);
  const char *fname = luaL_checkstring(L, 2);
  lt_l_tensor *u[2];
  push_results(L, u, 2);
  lt_l_result(L, lt_occupancy_downsample(lt_l_ctx(L), &u[0]->t, &u[1]->t, coords, fname));
  return 2;
}

static int l_occupancy_expand(lua_State *L) {
  lt_tensor *coords = lt_l_checktensor(L, 1), *occ = lt_l_checktensor(L, 2);
  const char *fname = luaL_checkstring(L, 3);
  lt_l_tensor *u[3];
  push_results(L, u, 3);
  lt_l_result(L, lt_occupancy_expand(lt_l_ctx(L), &u[0]->t, &u[1]->t, &u[2]->t, coords, occ, fname));
  return 3;
}

static int l_child_coords(lua_State *L) {
  lt_tensor *parents = lt_l_checktensor(L, 1), *idx = lt_l_checktensor(L, 2);
  const char *fname = luaL_checkstring(L, 3);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_octree_children(lt_l_ctx(L), &u->t, parents, idx, fname));
}

void lt_l_open_sparse_rows(lua_State *L) {
  lt_l_sparse_table(L);
  static const luaL_Reg fns[] = {{"select", l_select},
                                 {"mask_rows", l_mask_rows},
                                 {"crop_rows", l_crop_rows},
                                 {"topk_rows", l_topk_rows},
                                 {"morton_codes", l_morton_codes},
                                 {"morton_order", l_morton_order},
                                 {"occupancy_downsample", l_occupancy_downsample},
                                 {"occupancy_expand", l_occupancy_expand},
                                 {"child_coords", l_child_coords},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
  lua_pop(L, 1);
}
