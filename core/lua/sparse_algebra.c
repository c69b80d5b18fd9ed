/* Sparse algebra from Lua (lua/lattice/ops/algebra.lua checks the options):
 *   lattice.core.sparse.binary(op, a, b, join, fname) -> SparseTensor
 * op "add", "sub", "mul", "maximum", "minimum" or "cat"; join "inner",
 * "left", "right" or "outer"; fname one of the public names. And x + y,
 * x - y, x * y for two SparseTensors of the same coordinate identity (the
 * SparseTensor metatable's __add, __sub, __mul): features row by row, key kept. */
#include <string.h>
#include "sparse_binding.h"

static const char *const ops[] = {"add", "sub", "mul", "maximum", "minimum", "cat", NULL};
static const char *const joins[] = {"inner", "left", "right", "outer", NULL};
/* Static: the autograd tape names its nodes with these pointers. */
static const char *const names[] = {"sparse_add",     "sparse_sub", "sparse_mul",         "sparse_maximum",
                                    "sparse_minimum", "cat",        "sparse_cat_aligned", NULL};

/* The largest batch index of the map's rows (-1 for none). */
static lua_Integer max_batch(const lt_coords *c) {
  const int32_t *r = lt_tensor_data(lt_coords_tensor(c));
  lua_Integer m = -1;
  for (int64_t i = 0; i < lt_coords_count(c); i++)
    if (r[i * 4] > m) m = r[i * 4];
  return m;
}

/* The result's batch count: as many as either input has (-1: neither has
 * counts). An input without counts must have its rows inside them. */
static lua_Integer result_batches(lua_State *L, int a, int b, const char *name) {
  lua_Integer na = lt_l_sparse_batches(L, a), nb = lt_l_sparse_batches(L, b), n = na > nb ? na : nb;
  for (int k = 0; k < 2 && n >= 0; k++) {
    int arg = k ? b : a;
    lua_Integer m = lt_l_sparse_batches(L, arg) < 0 ? max_batch(lt_l_sparse_coords(L, arg)) : -1;
    if (m >= n)
      luaL_error(L, "%s: %s has a row of batch %I, beyond the %I batches of %s's batch_counts", name, k ? "b" : "a", m,
                 n, k ? "a" : "b");
  }
  return n;
}

/* Pushes op(a, b) for the SparseTensors at a and b; its batch counts cover as
 * many batches as either input's (none when neither has counts). */
static int push_binary(lua_State *L, lt_sparse_binary_op op, int a, int b, lt_sparse_join join, const char *name) {
  lt_l_checksparse(L, a);
  lt_l_checksparse(L, b);
  lua_Integer batches = result_batches(L, a, b, name);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_l_pushkey(L, NULL);
  int key = lua_gettop(L);
  lt_l_tensor *u = lt_l_newtensor(L);
  int feats = lua_gettop(L);
  lt_coords **out = lua_touserdata(L, key);
  lt_l_check(L, lt_sparse_binary(ctx, out, &u->t, op, lt_l_sparse_coords(L, a), lt_l_sparse_feats(L, a),
                                 lt_l_sparse_coords(L, b), lt_l_sparse_feats(L, b), join, name));
  lt_l_push_counts_for(L, *out, batches);
  lt_l_pushsparse(L, key, feats, -1);
  lt_l_report_alloc(L, ctx);
  return 1;
}

/* lattice.core.sparse.binary(op, a, b, join, fname) */
static int l_binary(lua_State *L) {
  lua_settop(L, 5);
  lt_sparse_binary_op op = (lt_sparse_binary_op)luaL_checkoption(L, 1, NULL, ops);
  lt_sparse_join join = (lt_sparse_join)luaL_checkoption(L, 4, NULL, joins);
  return push_binary(L, op, 2, 3, join, names[luaL_checkoption(L, 5, NULL, names)]);
}

/* x + y and its kin: the same coordinate identity only (alignment by value
 * is the ops' job, with its join stated). */
static int arith(lua_State *L, lt_sparse_binary_op op, const char *sign, const char *name) {
  if (!lt_l_issparse(L, 1) || !lt_l_issparse(L, 2))
    return luaL_error(L, "SparseTensor %s: both operands must be SparseTensors, got %s and %s", sign,
                      lt_l_type_name(L, 1), lt_l_type_name(L, 2));
  if (!lt_coords_equal(lt_l_sparse_coords(L, 1), lt_l_sparse_coords(L, 2)))
    return luaL_error(L,
                      "SparseTensor %s: the operands have different coordinate identities (ops.%s aligns them "
                      "by coordinate value)",
                      sign, name);
  return push_binary(L, op, 1, 2, LT_SPARSE_JOIN_LEFT, name);
}

static int l_add(lua_State *L) { return arith(L, LT_SPARSE_ADD, "+", "sparse_add"); }
static int l_sub(lua_State *L) { return arith(L, LT_SPARSE_SUB, "-", "sparse_sub"); }
static int l_mul(lua_State *L) { return arith(L, LT_SPARSE_MUL, "*", "sparse_mul"); }

void lt_l_open_sparse_algebra(lua_State *L) {
  lt_l_sparse_table(L);
  static const luaL_Reg fns[] = {{"binary", l_binary}, {NULL, NULL}};
  lt_l_register(L, fns);
  lua_pop(L, 1);
  luaL_getmetatable(L, LT_L_SPARSE);
  static const luaL_Reg meta[] = {{"__add", l_add}, {"__sub", l_sub}, {"__mul", l_mul}, {NULL, NULL}};
  lt_l_register(L, meta);
  lua_pop(L, 1);
}
