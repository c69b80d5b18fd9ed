/* Sparse pooling from Lua (lua/lattice/ops/pool.lua checks the options):
 *   lattice.core.sparse.pool(mode, x, size, stride, padding, dilation, fname) -> SparseTensor
 *   lattice.core.sparse.global_pool(mode, x, fname) -> Tensor (B, C)
 *   lattice.core.sparse.colsum_with_isa(x, isa) -> Tensor (C) float64, the ISA used: the column sums of
 *     global pooling's kernel, for specs
 * mode "sum", "avg" or "max"; size .. dilation lists of 3 integers; fname one
 * of the public names (messages carry it). The local pools read the cached
 * relation of a convolution with the same kernel spec. And the pooling
 * modules of lattice.nn as built-in types: Pool3d, SumPool3d, AvgPool3d,
 * MaxPool3d, GlobalSumPool, GlobalAvgPool, GlobalMaxPool, made by
 * lattice.core.nn.sparse_pool(name, fields) (lua/lattice/nn/sparse_pool.lua
 * makes the fields: mode and the lists kernel_size, stride, padding, dilation). */
#include <string.h>
#include "nn_module.h"
#include "sparse_binding.h"
#include "sparse/internal.h"

static const char *const modes[] = {"sum", "avg", "max", NULL};

/* The names a pool may be called by: messages keep a pointer to one (the
 * autograd tape names its nodes with it), so they are static strings. */
static const char *const names[] = {
    "pool3d",          "sum_pool3d",      "avg_pool3d",    "max_pool3d",    "global_sum_pool",
    "global_avg_pool", "global_max_pool", "Pool3d",        "SumPool3d",     "AvgPool3d",
    "MaxPool3d",       "GlobalSumPool",   "GlobalAvgPool", "GlobalMaxPool", NULL};

static const char *check_name(lua_State *L, int arg) { return names[luaL_checkoption(L, arg, NULL, names)]; }

/* A list of 3 integers at the top of the stack into out (popped). */
static void pop_triple(lua_State *L, int *out, const char *what) {
  if (!lua_istable(L, -1) || lua_rawlen(L, -1) != 3) luaL_error(L, "sparse pool: %s must be a list of 3", what);
  for (int a = 0; a < 3; a++) {
    lua_rawgeti(L, -1, a + 1);
    out[a] = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ---- the pools ---- */

/* Pushes the local pool of the SparseTensor at xarg. */
static void check_input(lua_State *L, int xarg, const char *op) {
  if (!lt_l_issparse(L, xarg)) luaL_error(L, "%s: x must be a SparseTensor, got %s", op, lt_l_type_name(L, xarg));
}

static int push_pool(lua_State *L, lt_sparse_pool_mode mode, int xarg, const lt_kernel_spec *spec, const char *op) {
  check_input(L, xarg, op);
  lt_coords *in = lt_l_sparse_coords(L, xarg);
  lt_tensor *x = lt_l_sparse_feats(L, xarg);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_l_pushkey(L, NULL); /* created first: nothing below raises while the relation is held */
  int key = lua_gettop(L);
  lt_l_tensor *u = lt_l_newtensor(L);
  int feats = lua_gettop(L);
  lt_relation *r;
  lt_status st = lt_relation_get(ctx, &r, LT_RELATION_CONV, in, NULL, spec, op);
  if (!st) {
    *(lt_coords **)lua_touserdata(L, key) = lt_coords_retain(lt_relation_output(r));
    st = lt_sparse_pool(ctx, &u->t, mode, x, r, op);
    lt_relation_release(r);
  }
  lt_l_check(L, st);
  lt_l_push_counts_for(L, *(lt_coords **)lua_touserdata(L, key), lt_l_sparse_batches(L, xarg));
  lt_l_pushsparse(L, key, feats, -1);
  lt_l_report_alloc(L, ctx);
  return 1;
}

static int push_global_pool(lua_State *L, lt_sparse_pool_mode mode, int xarg, const char *op) {
  check_input(L, xarg, op);
  lua_Integer batches = lt_l_sparse_batches(L, xarg);
  if (batches < 0)
    return luaL_error(L,
                      "%s: x has no batch_counts, which global pooling needs (give them to SparseTensor, or "
                      "build x with ops.sparse_collate)",
                      op);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_sparse_global_pool(lt_l_ctx(L), &u->t, mode, lt_l_sparse_feats(L, xarg),
                                              lt_l_sparse_coords(L, xarg), batches, op));
}

/* lattice.core.sparse.pool(mode, x, size, stride, padding, dilation, fname) */
static int l_pool(lua_State *L) {
  lua_settop(L, 7);
  lt_sparse_pool_mode mode = (lt_sparse_pool_mode)luaL_checkoption(L, 1, NULL, modes);
  const char *op = check_name(L, 7);
  lt_kernel_spec spec;
  int *fields[4] = {spec.size, spec.stride, spec.padding, spec.dilation};
  static const char *const what[4] = {"kernel_size", "stride", "padding", "dilation"};
  for (int k = 0; k < 4; k++) {
    lua_pushvalue(L, 3 + k);
    pop_triple(L, fields[k], what[k]);
  }
  return push_pool(L, mode, 2, &spec, op);
}

static int l_colsum_with_isa(lua_State *L) { return lt_l_isa_hook(L, lt__colsum_isa, "colsum_with_isa"); }

/* lattice.core.sparse.global_pool(mode, x, fname) */
static int l_global_pool(lua_State *L) {
  lua_settop(L, 3);
  lt_sparse_pool_mode mode = (lt_sparse_pool_mode)luaL_checkoption(L, 1, NULL, modes);
  return push_global_pool(L, mode, 2, check_name(L, 3));
}

/* ---- modules ---- */

typedef struct pool_cfg {
  lt_sparse_pool_mode mode;
  int global;
  lt_kernel_spec spec;
  const char *op;
} pool_cfg;

static int pool_forward(lua_State *L);
static const lt_l_module_type pool_types[] = {
    {"Pool3d", sizeof(pool_cfg), pool_forward, NULL, NULL},
    {"SumPool3d", sizeof(pool_cfg), pool_forward, NULL, NULL},
    {"AvgPool3d", sizeof(pool_cfg), pool_forward, NULL, NULL},
    {"MaxPool3d", sizeof(pool_cfg), pool_forward, NULL, NULL},
    {"GlobalSumPool", sizeof(pool_cfg), pool_forward, NULL, NULL},
    {"GlobalAvgPool", sizeof(pool_cfg), pool_forward, NULL, NULL},
    {"GlobalMaxPool", sizeof(pool_cfg), pool_forward, NULL, NULL},
};
#define NPOOL (int)(sizeof pool_types / sizeof pool_types[0])

static int pool_forward(lua_State *L) {
  const lt_l_module_type *type = lt_l_module_type_of(L, 1);
  if (!type || type->forward != pool_forward) return luaL_typeerror(L, 1, "sparse pooling module");
  pool_cfg *c = lua_touserdata(L, 1);
  lt_l_checkmaxargs(L, 2, c->op);
  lua_settop(L, 2);
  return c->global ? push_global_pool(L, c->mode, 2, c->op) : push_pool(L, c->mode, 2, &c->spec, c->op);
}

/* lattice.core.nn.sparse_pool(name, fields): fields hold mode ("sum", "avg",
 * "max") and, for the local pools, kernel_size, stride, padding, dilation. */
static int l_pool_module(lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  int k = luaL_checkoption(L, 1, NULL, names) - 7; /* the module names follow the 7 op names */
  if (k < 0) return luaL_error(L, "sparse_pool: unknown module '%s'", lua_tostring(L, 1));
  pool_cfg cfg = {.global = k >= 4, .op = names[k + 7]};
  lua_getfield(L, 2, "mode");
  cfg.mode = (lt_sparse_pool_mode)luaL_checkoption(L, -1, NULL, modes);
  lua_pop(L, 1);
  static const char *const keys[4] = {"kernel_size", "stride", "padding", "dilation"};
  int *fields[4] = {cfg.spec.size, cfg.spec.stride, cfg.spec.padding, cfg.spec.dilation};
  for (int f = 0; !cfg.global && f < 4; f++) {
    lua_getfield(L, 2, keys[f]);
    pop_triple(L, fields[f], keys[f]);
  }
  *(pool_cfg *)lt_l_module_new(L, &pool_types[k], 2) = cfg;
  return 1;
}

void lt_l_open_sparse_pool(lua_State *L) {
  lt_l_sparse_table(L);
  static const luaL_Reg fns[] = {
      {"pool", l_pool}, {"global_pool", l_global_pool}, {"colsum_with_isa", l_colsum_with_isa}, {NULL, NULL}};
  lt_l_register(L, fns);
  lua_pop(L, 1);
  lua_getfield(L, -1, "nn");
  for (int k = 0; k < NPOOL; k++) lt_l_module_register(L, &pool_types[k]);
  static const luaL_Reg mods[] = {{"sparse_pool", l_pool_module}, {NULL, NULL}};
  lt_l_register(L, mods);
  lua_pop(L, 1);
}
