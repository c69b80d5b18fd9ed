/* Coordinate utilities from Lua (lua/lattice/ops/coords.lua checks the
 * options and converts coordinates to int32 tensors):
 *   lattice.core.sparse.coords_setop(kind, a, b, fname) -> coords      kind "union", "intersection", "difference"
 *   lattice.core.sparse.coords_lookup(map, query, fname) -> rows (-1: absent)
 *   lattice.core.sparse.coords_unique(coords, fname) -> coords, index, inverse
 *   lattice.core.sparse.coords_order(coords, kind, fname) -> order      kind "lex", "morton", "hilbert"
 *   lattice.core.sparse.coords_bounds(map, batches, fname) -> lo, hi (B, 3)
 *   lattice.core.sparse.dense_index(map, batches, min, shape, fname) -> index (B X Y Z)
 *   lattice.core.sparse.from_dense(dense, min, fname) -> cells, coords
 *   lattice.core.sparse.neighbors(kind, source, query, k, radius, fname) -> {query_row, source_row,
 *       neighbor_id, distances, row_offsets}      kind "knn" or "radius" (k: max_neighbors, 0 for all)
 *   lattice.core.sparse.neighbors_with_isa(kind, source, query, k, radius, fname, isa) -> relation, the ISA
 *       run (a test hook: the shells' kernel of one ISA, lowered to what the machine allows)
 * A map argument is a SparseTensor, a CoordinateMapKey or an int32 (N, 4)
 * tensor of distinct rows (made a map at stride 1). */
#include "sparse_binding.h"
#include "runtime/context.h"
#include "sparse/neighbor_shells.h"

static const char *const sets[] = {"union", "intersection", "difference", NULL};
static const char *const orders[] = {"lex", "morton", "hilbert", NULL};

/* The map at arg (borrowed); a tensor's map is pushed as a key that keeps it. */
static lt_coords *map_at(lua_State *L, int arg, const char *fname) {
  if (lt_l_issparse(L, arg)) return lt_l_sparse_coords(L, arg);
  lt_coords *c = lt_l_tokey(L, arg);
  if (c) return c;
  lt_tensor *t = lt_l_checktensor(L, arg);
  lt_l_pushkey(L, NULL);
  lt_coords **box = lua_touserdata(L, -1);
  lt_l_check(L, lt_coords_new(lt_l_ctx(L), box, t, (int[]){1, 1, 1}, fname));
  return *box;
}

static void read_ints(lua_State *L, int arg, int64_t *out) {
  luaL_checktype(L, arg, LUA_TTABLE);
  for (int a = 0; a < 3; a++) {
    lua_rawgeti(L, arg, a + 1);
    out[a] = (int64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
}

static int l_setop(lua_State *L) {
  lua_settop(L, 4);
  lt_coords_set kind = (lt_coords_set)luaL_checkoption(L, 1, NULL, sets);
  const char *fname = luaL_checkstring(L, 4);
  lt_coords *a = map_at(L, 2, fname), *b = map_at(L, 3, fname);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_coords_setop(lt_l_ctx(L), &u->t, a, b, kind, fname));
}

static int l_lookup(lua_State *L) {
  lua_settop(L, 3);
  const char *fname = luaL_checkstring(L, 3);
  lt_tensor *q = lt_l_checktensor(L, 2);
  lt_coords *c = map_at(L, 1, fname);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_coords_lookup(lt_l_ctx(L), &u->t, c, q, fname));
}

static int l_unique(lua_State *L) {
  lt_tensor *c = lt_l_checktensor(L, 1);
  const char *fname = luaL_checkstring(L, 2);
  lt_l_tensor *u[3];
  for (int k = 0; k < 3; k++) u[k] = lt_l_newtensor(L);
  lt_l_check(L, lt_coords_unique(lt_l_ctx(L), &u[0]->t, &u[1]->t, &u[2]->t, c, fname));
  return 3;
}

static int l_order(lua_State *L) {
  lt_tensor *c = lt_l_checktensor(L, 1);
  lt_coord_order kind = (lt_coord_order)luaL_checkoption(L, 2, NULL, orders);
  const char *fname = luaL_checkstring(L, 3);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_coords_order(lt_l_ctx(L), &u->t, c, kind, fname));
}

static int l_bounds(lua_State *L) {
  lua_settop(L, 3);
  lua_Integer batches = luaL_checkinteger(L, 2);
  const char *fname = luaL_checkstring(L, 3);
  lt_coords *c = map_at(L, 1, fname);
  lt_l_tensor *lo = lt_l_newtensor(L), *hi = lt_l_newtensor(L);
  lt_l_check(L, lt_coords_bounds(lt_l_ctx(L), &lo->t, &hi->t, c, batches, fname));
  return 2;
}

static int l_dense_index(lua_State *L) {
  lua_settop(L, 5);
  lua_Integer batches = luaL_checkinteger(L, 2);
  int64_t min64[3], shape[3];
  read_ints(L, 3, min64);
  read_ints(L, 4, shape);
  const char *fname = luaL_checkstring(L, 5);
  int32_t min[3];
  for (int a = 0; a < 3; a++) {
    if (min64[a] < INT32_MIN || min64[a] > INT32_MAX) return luaL_error(L, "%s: min_coord must fit in int32", fname);
    min[a] = (int32_t)min64[a];
  }
  lt_coords *c = map_at(L, 1, fname);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_coords_dense_index(lt_l_ctx(L), &u->t, c, batches, min, shape, fname));
}

static int l_from_dense(lua_State *L) {
  lt_tensor *d = lt_l_checktensor(L, 1);
  int64_t min64[3];
  read_ints(L, 2, min64);
  const char *fname = luaL_checkstring(L, 3);
  int32_t min[3];
  for (int a = 0; a < 3; a++) {
    if (min64[a] < INT32_MIN || min64[a] > INT32_MAX) return luaL_error(L, "%s: min_coord must fit in int32", fname);
    min[a] = (int32_t)min64[a];
  }
  lt_l_tensor *cells = lt_l_newtensor(L), *coords = lt_l_newtensor(L);
  lt_l_check(L, lt_coords_from_dense(lt_l_ctx(L), &cells->t, &coords->t, d, min, fname));
  return 2;
}

static const char *const kinds[] = {"knn", "radius", NULL};

/* The relation of the arguments at 1..6 with the shells' kernel of `isa`;
 * pushes it (a table) and returns the ISA run. */
static lt_isa push_neighbors(lua_State *L, lt_isa isa) {
  lt_neighbor_kind kind = (lt_neighbor_kind)luaL_checkoption(L, 1, NULL, kinds);
  lua_Integer k = luaL_checkinteger(L, 4);
  double radius = luaL_optnumber(L, 5, 0);
  const char *fname = luaL_checkstring(L, 6);
  lt_coords *source = map_at(L, 2, fname), *query = map_at(L, 3, fname);
  static const char *const fields[] = {"query_row", "source_row", "neighbor_id", "distances", "row_offsets"};
  lt_l_tensor *u[5];
  for (int f = 0; f < 5; f++) u[f] = lt_l_newtensor(L); /* made first: they own the fields as soon as they exist */
  lt_neighbors r;
  lt_isa used;
  lt_l_check(L, lt__neighbors_build_isa(lt_l_ctx(L), &r, source, query, kind, k, radius, isa, &used, fname));
  lt_tensor *ts[5] = {r.query_row, r.source_row, r.neighbor_id, r.distances, r.row_offsets};
  lua_createtable(L, 0, 5);
  for (int f = 0; f < 5; f++) {
    u[f]->t = ts[f];
    lua_pushvalue(L, -6 + f);
    lua_setfield(L, -2, fields[f]);
  }
  lt_l_report_alloc(L, lt_l_ctx(L));
  return used;
}

static int l_neighbors(lua_State *L) {
  lua_settop(L, 6);
  push_neighbors(L, lt__ctx_isa(lt_l_ctx(L)));
  return 1;
}

/* The same with the ISA named at 7 ("scalar", "avx2", "avx512"; lowered to
 * what the machine allows), and the one run: a test hook. */
static int l_neighbors_with_isa(lua_State *L) {
  lua_settop(L, 7);
  static const char *const isas[] = {"scalar", "avx2", "avx512", NULL};
  lt_isa isa = (lt_isa)luaL_checkoption(L, 7, NULL, isas);
  lua_pushstring(L, lt_isa_name(push_neighbors(L, isa)));
  return 2;
}

void lt_l_open_sparse_coords(lua_State *L) {
  lt_l_sparse_table(L);
  static const luaL_Reg fns[] = {{"coords_setop", l_setop},
                                 {"coords_lookup", l_lookup},
                                 {"coords_unique", l_unique},
                                 {"coords_order", l_order},
                                 {"coords_bounds", l_bounds},
                                 {"dense_index", l_dense_index},
                                 {"from_dense", l_from_dense},
                                 {"neighbors", l_neighbors},
                                 {"neighbors_with_isa", l_neighbors_with_isa},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
  lua_pop(L, 1);
}
