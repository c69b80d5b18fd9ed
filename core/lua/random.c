/* lattice.random: seed, normal, uniform, randint on the context's generator. */
#include "binding.h"

static int l_seed(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "random.seed");
  lt_ctx_seed(lt_l_ctx(L), (uint64_t)luaL_checkinteger(L, 1));
  return 0;
}

/* normal(shape[, {dtype=, loc=, scale=}]) */
static int l_normal(lua_State *L) {
  static const char *const opts[] = {"dtype", "loc", "scale", NULL};
  lt_l_checkmaxargs(L, 2, "random.normal");
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_l_checkshape(L, 1, shape, "random.normal");
  lt_l_checkoptions(L, 2, "random.normal", opts);
  lt_dtype dt = lt_l_dtype_named(L, lt_l_optstringfield(L, 2, "dtype", "float32"), "random.normal");
  double loc = lt_l_optnumberfield(L, 2, "loc", 0), scale = lt_l_optnumberfield(L, 2, "scale", 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_random_normal(lt_l_ctx(L), &u->t, dt, nd, shape, loc, scale), "random.normal");
}

/* uniform(low, high, shape[, {dtype=}]) as in MLX, or uniform(shape[, {dtype=}]) on [0, 1). */
static int l_uniform(lua_State *L) {
  static const char *const opts[] = {"dtype", NULL};
  double low = 0, high = 1;
  int shape_arg = 1;
  lt_l_checkmaxargs(L, lua_istable(L, 1) ? 2 : 4, "random.uniform");
  if (!lua_istable(L, 1)) {
    low = luaL_checknumber(L, 1);
    high = luaL_checknumber(L, 2);
    shape_arg = 3;
  }
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_l_checkshape(L, shape_arg, shape, "random.uniform");
  lt_l_checkoptions(L, shape_arg + 1, "random.uniform", opts);
  lt_dtype dt = lt_l_dtype_named(L, lt_l_optstringfield(L, shape_arg + 1, "dtype", "float32"), "random.uniform");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_random_uniform(lt_l_ctx(L), &u->t, dt, nd, shape, low, high), "random.uniform");
}

/* randint(low, high, shape[, {dtype=}]): integers in [low, high), int32 by default. */
static int l_randint(lua_State *L) {
  static const char *const opts[] = {"dtype", NULL};
  lt_l_checkmaxargs(L, 4, "random.randint");
  lua_Integer low = luaL_checkinteger(L, 1), high = luaL_checkinteger(L, 2);
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_l_checkshape(L, 3, shape, "random.randint");
  lt_l_checkoptions(L, 4, "random.randint", opts);
  lt_dtype dt = lt_l_dtype_named(L, lt_l_optstringfield(L, 4, "dtype", "int32"), "random.randint");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_random_randint(lt_l_ctx(L), &u->t, dt, nd, shape, low, high), "random.randint");
}

void lt_l_open_random(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"seed", l_seed}, {"normal", l_normal}, {"uniform", l_uniform}, {"randint", l_randint}, {NULL, NULL}};
  lua_newtable(L);
  lt_l_register(L, fns);
  lua_setfield(L, -2, "random");
}
