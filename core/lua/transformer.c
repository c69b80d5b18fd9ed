/* The transformer ops' binding: lattice.rope (MLX's mx.fast.rope) and
 * lattice.linear_act (the fused GEMM + activation behind nn.MLP's "fused"
 * backend); lattice.core.kv_cache_write (the KV cache's in-place write). */
#include <string.h>
#include "binding.h"

/* lattice.rope(x, dims[, {traditional = false, base = 10000, scale = 1,
 * offset = 0, seq_axis = -2, positions = nil}]): the leading `dims`
 * features of x's last axis rotated by position, positions running along
 * seq_axis (a Lua axis: -2 for (B, H, T, D), -3 for (B, T, H, D)) from
 * `offset`, or given one per row by the integer tensor `positions` (T). */
static int l_rope(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "rope");
  static const char *const allowed[] = {"traditional", "base", "scale", "offset", "seq_axis", "positions", NULL};
  lt_tensor *x = lt_l_checktensor(L, 1);
  lt_rope_opts o = {.dims = luaL_checkinteger(L, 2)};
  lt_l_checkoptions(L, 3, "rope", allowed);
  o.traditional = lt_l_optbooleanfield(L, 3, "traditional", 0);
  o.base = lt_l_optnumberfield(L, 3, "base", 10000.0);
  o.scale = lt_l_optnumberfield(L, 3, "scale", 1.0);
  o.offset = lt_l_optintegerfield(L, 3, "offset", 0);
  int nd = lt_tensor_ndim(x);
  lua_Integer axis = lt_l_optintegerfield(L, 3, "seq_axis", -2);
  o.seq_axis = nd < 2 ? -2 : lt_l_axis_from_lua(axis, nd); /* with fewer, lt_rope says what x lacks */
  if (o.seq_axis < 0 && nd >= 2) return luaL_error(L, "rope: seq_axis %I is out of range for %d dimensions", axis, nd);
  if (o.seq_axis == nd - 1) return luaL_error(L, "rope: seq_axis %I is the feature axis; positions need another", axis);
  if (!lua_isnoneornil(L, 3) && lua_getfield(L, 3, "positions") != LUA_TNIL) {
    o.positions = lt_l_totensor(L, -1);
    if (!o.positions) return luaL_error(L, "rope: option 'positions' must be a tensor, got %s", luaL_typename(L, -1));
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_rope(lt_l_ctx(L), &u->t, x, &o));
}

/* The activation named at arg, or an error listing the names. */
static lt_linear_act_op check_act(lua_State *L, int arg) {
  const char *name = luaL_checkstring(L, arg);
  for (int i = 0; i < LT_LINEAR_ACT_COUNT; i++)
    if (strcmp(name, lt_linear_act_name((lt_linear_act_op)i)) == 0) return (lt_linear_act_op)i;
  return luaL_error(L, "linear_act: activation must be one of 'relu', 'gelu', 'silu', 'glu', 'swiglu', got '%s'", name);
}

/* lattice.linear_act(x, weight, bias, activation): act(x @ weight^T + bias)
 * in one op, the activation applied to each block of the GEMM's output
 * while it is in cache; glu and swiglu gate one half of the output with the
 * other (the result is half as wide). bias may be nil. */
static int l_linear_act(lua_State *L) {
  lt_l_checkmaxargs(L, 4, "linear_act");
  lt_tensor *x = lt_l_checktensor(L, 1), *w = lt_l_checktensor(L, 2);
  lt_tensor *b = lua_isnil(L, 3) ? NULL : lt_l_checktensor(L, 3);
  lt_linear_act_op op = check_act(L, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_linear_act(lt_l_ctx(L), &u->t, x, w, b, op));
}

/* lattice.core.kv_cache_write(cache, pos, src) -> cache: src (B, H, T, D)
 * written in place at positions pos .. pos + T - 1 (0-based, as the cache's
 * offset counts) of cache (B, H, S, D). The KV cache objects' one write. */
static int l_kv_cache_write(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "kv_cache_write");
  lt_tensor *cache = lt_l_checktensor(L, 1);
  lua_Integer pos = luaL_checkinteger(L, 2);
  lt_tensor *src = lt_l_checktensor(L, 3);
  lt_status st = lt_kv_cache_write(lt_l_ctx(L), cache, pos, src);
  lt_l_check(L, st);
  lua_settop(L, 1);
  return 1;
}

void lt_l_open_transformer(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"rope", l_rope}, {"linear_act", l_linear_act}, {"kv_cache_write", l_kv_cache_write}, {NULL, NULL}};
  lt_l_register(L, fns);
}
