/* The tape primitives behind lattice.value_and_grad (lua/lattice/autograd.lua). */
#include "binding.h"

static int l_tape_begin(lua_State *L) {
  lt_l_check(L, lt_tape_begin(lt_l_ctx(L)));
  return 0;
}

static int l_tape_end(lua_State *L) {
  lt_tape_end(lt_l_ctx(L));
  return 0;
}

static int l_tape_watch(lua_State *L) {
  lt_tensor *x = lt_l_checktensor(L, 1), *leaf;
  lt_l_check(L, lt_tape_watch(lt_l_ctx(L), &leaf, x));
  lt_l_pushtensor(L, leaf);
  return 1;
}

/* tape_backward(y, {leaf, ...}) -> {grad, ...} */
static int l_tape_backward(lua_State *L) {
  lua_settop(L, 2);
  lt_tensor *y = lt_l_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)luaL_len(L, 2);
  lt_tensor **leaves = lua_newuserdatauv(L, (size_t)(2 * n + 1) * sizeof *leaves, 0), **grads = leaves + n;
  for (int i = 0; i < n; i++) {
    lua_geti(L, 2, i + 1);
    leaves[i] = lt_l_checktensor(L, -1);
    lua_pop(L, 1);
  }
  lt_l_check(L, lt_tape_backward(lt_l_ctx(L), y, n, leaves, grads));
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lt_l_pushtensor(L, grads[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_tape_size(lua_State *L) {
  lua_pushinteger(L, lt_tape_size(lt_l_ctx(L)));
  return 1;
}

static int l_stop_gradient(lua_State *L) {
  lt_tensor *x = lt_l_checktensor(L, 1), *t;
  lt_l_check(L, lt_stop_gradient(lt_l_ctx(L), &t, x));
  lt_l_pushtensor(L, t);
  return 1;
}

void lt_l_open_autograd(lua_State *L) {
  static const luaL_Reg fns[] = {{"tape_begin", l_tape_begin},       {"tape_end", l_tape_end},
                                 {"tape_watch", l_tape_watch},       {"tape_backward", l_tape_backward},
                                 {"tape_size", l_tape_size}, {"stop_gradient", l_stop_gradient}, {NULL, NULL}};
  lt_l_register(L, fns);
}
