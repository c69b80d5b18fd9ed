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

/* permutation(n[, {seed=}]): 0 .. n-1 shuffled (int32); with a seed, from a
 * generator of its own, leaving this state's as it was. */
static int l_permutation(lua_State *L) {
  static const char *const opts[] = {"seed", NULL};
  lt_l_checkmaxargs(L, 2, "random.permutation");
  lua_Integer n = luaL_checkinteger(L, 1);
  lt_l_checkoptions(L, 2, "random.permutation", opts);
  uint64_t seed = 0;
  int seeded = 0;
  if (lua_istable(L, 2) && lua_getfield(L, 2, "seed") != LUA_TNIL) {
    if (!lua_isinteger(L, -1))
      return luaL_error(L, "random.permutation: seed must be an integer, got %s", lt_l_valuename(L, -1));
    seed = (uint64_t)lua_tointeger(L, -1);
    seeded = 1;
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_random_permutation(lt_l_ctx(L), &u->t, n, seeded ? &seed : NULL), "random.permutation");
}

/* get_state() -> {key = k, counter = c}: the generator's 64-bit key and
 * counter as Lua integers (their bits: a value past 2^63 reads negative). */
static int l_get_state(lua_State *L) {
  lt_l_checkmaxargs(L, 0, "random.get_state");
  uint64_t key, counter;
  lt_ctx_rng_state(lt_l_ctx(L), &key, &counter);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)key);
  lua_setfield(L, -2, "key");
  lua_pushinteger(L, (lua_Integer)counter);
  lua_setfield(L, -2, "counter");
  return 1;
}

static uint64_t state_field(lua_State *L, const char *name) {
  if (lua_getfield(L, 1, name) != LUA_TNUMBER || !lua_isinteger(L, -1))
    luaL_error(L, "random.set_state: %s must be an integer, got %s", name, lt_l_valuename(L, -1));
  uint64_t v = (uint64_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* set_state(s): the state get_state gave; both fields are checked first. */
static int l_set_state(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "random.set_state");
  luaL_checktype(L, 1, LUA_TTABLE);
  uint64_t key = state_field(L, "key"), counter = state_field(L, "counter");
  lt_ctx_set_rng_state(lt_l_ctx(L), key, counter);
  return 0;
}

void lt_l_open_random(lua_State *L) {
  static const luaL_Reg fns[] = {{"seed", l_seed},
                                 {"normal", l_normal},
                                 {"uniform", l_uniform},
                                 {"randint", l_randint},
                                 {"permutation", l_permutation},
                                 {"get_state", l_get_state},
                                 {"set_state", l_set_state},
                                 {NULL, NULL}};
  lua_newtable(L);
  lt_l_register(L, fns);
  lua_setfield(L, -2, "random");
}
