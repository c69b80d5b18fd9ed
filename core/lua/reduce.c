/* Binding of reductions, argmax/argmin and softmax:
 *   lattice.sum(x, axes, keepdims)  (also mean, max, min, logsumexp)
 *   lattice.var(x, axes, keepdims, ddof)
 *   lattice.argmax(x, axis, keepdims), lattice.argmin   (axis nil: flattened)
 *   lattice.softmax(x, axis), lattice.log_softmax        (axis default -1)
 * Axes are Lua's (1-based, negative from the end); axes nil means all of them,
 * an empty table none. */
#include <limits.h>
#include "binding.h"

static int optboolean(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return 0;
  luaL_checktype(L, arg, LUA_TBOOLEAN);
  return lua_toboolean(L, arg);
}

/* A reduction over an empty table of axes reduces nothing, as in NumPy: x in
 * the dtype the reduction would give (int64 sums, float means), or zeros for
 * var. The casts are differentiable, so gradients pass through unchanged. */
static int reduce_no_axes(lua_State *L, lt_reduce_op op, lt_tensor *x) {
  lt_ctx *ctx = lt_l_ctx(L);
  lt_dtype dt = lt_tensor_dtype(x), out_dt = dt;
  int is_float = lt_dtype_info(dt)->is_float;
  if (op == LT_REDUCE_SUM && !is_float) out_dt = LT_INT64;
  if ((op == LT_REDUCE_MEAN || op == LT_REDUCE_LOGSUMEXP || op == LT_REDUCE_VAR) && !is_float) out_dt = LT_FLOAT32;
  lt_l_tensor *u = lt_l_newtensor(L);
  if (op == LT_REDUCE_VAR)
    return lt_l_result(L, lt_tensor_zeros(ctx, &u->t, out_dt, lt_tensor_ndim(x), lt_tensor_shape(x)));
  return lt_l_result(L, lt_astype(ctx, &u->t, x, out_dt));
}

static int reduce(lua_State *L, lt_reduce_op op) {
  const char *name = lt_reduce_name(op);
  lt_l_checkmaxargs(L, op == LT_REDUCE_VAR ? 4 : 3, name);
  lt_tensor *x = lt_l_checktensor(L, 1);
  if (lua_istable(L, 2) && luaL_len(L, 2) == 0) return reduce_no_axes(L, op, x);
  int axes[LT_MAX_DIMS];
  int naxes = lt_l_checkaxes(L, 2, lt_tensor_ndim(x), axes, name);
  int keepdims = optboolean(L, 3);
  int ddof = 0;
  if (op == LT_REDUCE_VAR) {
    lua_Integer d = luaL_optinteger(L, 4, 0);
    if (d < 0 || d > INT_MAX) return luaL_error(L, "var: ddof must be a non-negative integer, got %I", d);
    ddof = (int)d;
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_reduce(lt_l_ctx(L), &u->t, op, x, naxes, axes, keepdims, ddof));
}

static int l_sum(lua_State *L) { return reduce(L, LT_REDUCE_SUM); }
static int l_mean(lua_State *L) { return reduce(L, LT_REDUCE_MEAN); }
static int l_max(lua_State *L) { return reduce(L, LT_REDUCE_MAX); }
static int l_min(lua_State *L) { return reduce(L, LT_REDUCE_MIN); }
static int l_var(lua_State *L) { return reduce(L, LT_REDUCE_VAR); }
static int l_logsumexp(lua_State *L) { return reduce(L, LT_REDUCE_LOGSUMEXP); }

static int arg(lua_State *L, int is_max) {
  const char *name = is_max ? "argmax" : "argmin";
  lt_l_checkmaxargs(L, 3, name);
  lt_tensor *x = lt_l_checktensor(L, 1);
  int axis = lua_isnoneornil(L, 2) ? LT_ALL_AXES : lt_l_checkaxis(L, 2, lt_tensor_ndim(x), name);
  int keepdims = optboolean(L, 3);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, is_max ? lt_argmax(ctx, &u->t, x, axis, keepdims) : lt_argmin(ctx, &u->t, x, axis, keepdims));
}

static int l_argmax(lua_State *L) { return arg(L, 1); }
static int l_argmin(lua_State *L) { return arg(L, 0); }

static int softmax(lua_State *L, int is_log) {
  const char *name = is_log ? "log_softmax" : "softmax";
  lt_l_checkmaxargs(L, 2, name);
  lt_tensor *x = lt_l_checktensor(L, 1);
  int nd = lt_tensor_ndim(x);
  /* a 0-d input has no last axis: C reports axis -1 as out of range */
  int axis = lt_l_optaxis(L, 2, nd, name, nd - 1);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, is_log ? lt_log_softmax(ctx, &u->t, x, axis) : lt_softmax(ctx, &u->t, x, axis));
}

static int l_softmax(lua_State *L) { return softmax(L, 0); }
static int l_log_softmax(lua_State *L) { return softmax(L, 1); }

void lt_l_open_reduce(lua_State *L) {
  static const luaL_Reg fns[] = {{"sum", l_sum},
                                 {"mean", l_mean},
                                 {"max", l_max},
                                 {"min", l_min},
                                 {"var", l_var},
                                 {"logsumexp", l_logsumexp},
                                 {"argmax", l_argmax},
                                 {"argmin", l_argmin},
                                 {"softmax", l_softmax},
                                 {"log_softmax", l_log_softmax},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
}
