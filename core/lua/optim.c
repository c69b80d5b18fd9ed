/* The fused optimizer steps behind lattice.optim (lua/lattice/optim):
 *   lattice.core.optim_update(kind, hyper, param, grad, state...) -> param
 * updates param and its state in place and returns param; when param cannot
 * be written in place (shared with a view, a host buffer, not contiguous) the
 * update goes to a copy, which is returned for the caller to put in its place.
 *   lattice.core.optim_check(kind, hyper, name, param, grad, state...) -> true, or nil and a message
 * runs optim_update's checks, changing nothing (the caller checks every
 * parameter before it updates any).
 *   lattice.core.optim_state_shapes(kind, hyper, param) -> {shape, ...}, {name, ...} */
#include <string.h>
#include "binding.h"
#include "tensor/internal.h"

static lt_optim_kind check_kind(lua_State *L, int arg) {
  const char *name = luaL_checkstring(L, arg);
  for (int k = 0; k < LT_OPTIM_COUNT; k++)
    if (strcmp(name, lt_optim_name((lt_optim_kind)k)) == 0) return (lt_optim_kind)k;
  luaL_error(L, "optim_update: unknown optimizer '%s'", name);
  return LT_OPTIM_SGD;
}

static double num(lua_State *L, int arg, const char *key, double def) {
  lua_getfield(L, arg, key);
  double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int flag(lua_State *L, int arg, const char *key) {
  lua_getfield(L, arg, key);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* The hyperparameters from the table at arg (the names of lattice/optim.h). */
static lt_optim_hyper check_hyper(lua_State *L, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lt_optim_hyper h = {.learning_rate = num(L, arg, "learning_rate", 0),
                      .momentum = num(L, arg, "momentum", 0),
                      .dampening = num(L, arg, "dampening", 0),
                      .nesterov = flag(L, arg, "nesterov"),
                      .weight_decay = num(L, arg, "weight_decay", 0),
                      .beta1 = num(L, arg, "beta1", 0),
                      .beta2 = num(L, arg, "beta2", 0),
                      .eps = num(L, arg, "eps", 0),
                      .bias_correction = flag(L, arg, "bias_correction"),
                      .eps2 = num(L, arg, "eps2", 0),
                      .clip_threshold = num(L, arg, "clip_threshold", 1),
                      .decay_rate = num(L, arg, "decay_rate", -0.8),
                      .scale_parameter = flag(L, arg, "scale_parameter"),
                      .relative_step = flag(L, arg, "relative_step"),
                      .warmup_init = flag(L, arg, "warmup_init"),
                      .first_moment = flag(L, arg, "first_moment")};
  lua_getfield(L, arg, "step");
  h.step = luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return h;
}

/* The state tensors at first, first + 1, ... (at most 4). */
static int check_states(lua_State *L, int first, lt_tensor **state) {
  int nstate = lua_gettop(L) - first + 1;
  if (nstate > 4) return luaL_error(L, "optim_update: at most 4 state tensors");
  for (int k = 0; k < nstate; k++) state[k] = lt_l_checktensor(L, first + k);
  return nstate;
}

static int l_optim_update(lua_State *L) {
  lt_optim_kind kind = check_kind(L, 1);
  lt_optim_hyper h = check_hyper(L, 2);
  lt_tensor *p = lt_l_checktensor(L, 3), *g = lt_l_checktensor(L, 4);
  lt_tensor *state[4];
  int nstate = check_states(L, 5, state);
  lt_ctx *ctx = lt_l_ctx(L);
  if (lt_tensor_is_contiguous(p) && lt__uniquely_owned(p)) {
    lt_l_check(L, lt_optim_update(ctx, kind, &h, p, g, nstate, state));
    lua_pushvalue(L, 3);
    return 1;
  }
  lt_l_tensor *u = lt_l_newtensor(L); /* a copy of its own, updated and handed back */
  lt_l_check(L, lt__copy_as(ctx, &u->t, p, lt_tensor_dtype(p)));
  return lt_l_result(L, lt_optim_update(ctx, kind, &h, u->t, g, nstate, state));
}

static int l_optim_check(lua_State *L) {
  lt_optim_kind kind = check_kind(L, 1);
  lt_optim_hyper h = check_hyper(L, 2);
  const char *name = luaL_checkstring(L, 3);
  lt_tensor *p = lt_l_checktensor(L, 4), *g = lt_l_checktensor(L, 5);
  lt_tensor *state[4];
  int nstate = check_states(L, 6, state);
  lt_ctx *ctx = lt_l_ctx(L);
  if (lt_optim_check(ctx, kind, &h, name, p, g, nstate, state) == LT_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, lt_ctx_error(ctx));
  return 2;
}

static int l_optim_state_shapes(lua_State *L) {
  lt_optim_kind kind = check_kind(L, 1);
  lt_optim_hyper h = check_hyper(L, 2);
  lt_tensor *p = lt_l_checktensor(L, 3);
  int n = lt_optim_state_count(kind, &h, p);
  lua_createtable(L, n, 0);
  lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    int64_t shape[LT_MAX_DIMS];
    int nd = lt_optim_state_shape(kind, &h, p, k, shape);
    lt_l_pushshape(L, nd, shape);
    lua_rawseti(L, -3, k + 1);
    lua_pushstring(L, lt_optim_state_name(kind, &h, p, k));
    lua_rawseti(L, -2, k + 1);
  }
  return 2;
}

/* lattice.core.sum_squares(t) -> the sum of t's squared elements, in double
 * (for the global norm of clip_grad_norm). */
static int l_sum_squares(lua_State *L) {
  lt_tensor *t = lt_l_checktensor(L, 1);
  int64_t n = lt_tensor_size(t);
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = lt_tensor_get(t, i);
    s += v * v;
  }
  lua_pushnumber(L, s);
  return 1;
}

void lt_l_open_optim(lua_State *L) {
  static const luaL_Reg fns[] = {{"optim_update", l_optim_update},
                                 {"optim_check", l_optim_check},
                                 {"optim_state_shapes", l_optim_state_shapes},
                                 {"sum_squares", l_sum_squares},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
}
