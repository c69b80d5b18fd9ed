/* The tape primitives behind lattice.value_and_grad (lua/lattice/autograd.lua).
 *
 * tape_begin() returns a handle, a lattice.Tape userdata, that ties the
 * recording tape to the call that began it: tape_end(handle), its __close and
 * its __gc all end the tape, if it is still that handle's. A gradient can be
 * abandoned half-way (a coroutine that yields inside the function and is never
 * resumed, closed or collected): when a new tape_begin finds the tape of a
 * coroutine that is not running, it ends that tape and the abandoned handle
 * fails from then on with a message saying so. Only a tape whose coroutine is
 * running (or waits on a coroutine it resumed) makes tape_begin fail: that is
 * real nesting. */
#include "binding.h"

#define LT_L_TAPE "lattice.Tape"
/* Registry field: a weak table holding the handle of the recording tape at [1]. */
#define LT_L_TAPE_OWNER "lattice.tape_owner"

typedef struct tape_handle {
  uint64_t gen; /* 0 once ended */
} tape_handle;

static void handle_end(lua_State *L, tape_handle *h) {
  lt_ctx *ctx = lt_l_ctx(L);
  if (h->gen && lt_tape_generation(ctx) == h->gen) lt_tape_end(ctx);
  h->gen = 0;
}

static int l_tape_end(lua_State *L) {
  handle_end(L, luaL_checkudata(L, 1, LT_L_TAPE));
  return 0;
}

/* Pushes the registry's owner table. */
static void push_owner_table(lua_State *L) {
  if (luaL_getsubtable(L, LUA_REGISTRYINDEX, LT_L_TAPE_OWNER)) return;
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

/* True when co is running or waits on a coroutine it resumed (as
 * coroutine.status says "running" or "normal"). */
static int thread_active(lua_State *L, lua_State *co) {
  if (co == L) return 1;
  lua_Debug ar;
  return lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar);
}

/* A tape is recording: fail when its owner is active (nesting), else end it. */
static void reclaim_or_fail(lua_State *L, lt_ctx *ctx) {
  push_owner_table(L);
  if (lua_rawgeti(L, -1, 1) == LUA_TUSERDATA) {
    lua_getiuservalue(L, -1, 1);
    lua_State *co = lua_tothread(L, -1);
    if (co && thread_active(L, co))
      luaL_error(L, "value_and_grad: nested differentiation is not supported yet (value_and_grad was called "
                    "inside a function it is differentiating)");
    ((tape_handle *)lua_touserdata(L, -2))->gen = 0; /* abandoned: it can never finish */
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  lt_tape_end(ctx);
}

static int l_tape_begin(lua_State *L) {
  lt_ctx *ctx = lt_l_ctx(L);
  tape_handle *h = lua_newuserdatauv(L, sizeof *h, 1); /* first, so that nothing below can leak */
  h->gen = 0;
  luaL_setmetatable(L, LT_L_TAPE);
  if (lt_tape_is_recording(ctx)) reclaim_or_fail(L, ctx);
  lua_pushthread(L);
  lua_setiuservalue(L, -2, 1);
  lt_l_check(L, lt_tape_begin(ctx));
  h->gen = lt_tape_generation(ctx);
  push_owner_table(L);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pop(L, 1);
  return 1;
}

/* The handle at arg, which must still own the recording tape. */
static void check_live(lua_State *L, int arg) {
  tape_handle *h = luaL_checkudata(L, arg, LT_L_TAPE);
  if (!h->gen || lt_tape_generation(lt_l_ctx(L)) != h->gen)
    luaL_error(L, "value_and_grad: this gradient was abandoned: another value_and_grad started while its "
                  "coroutine was suspended");
}

static int l_tape_watch(lua_State *L) {
  check_live(L, 1);
  lt_tensor *x = lt_l_checktensor(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check(L, lt_tape_watch(lt_l_ctx(L), &u->t, x));
  return 1;
}

/* Leaf i (1-based) of the list at arg. Leaves are what the differentiated
 * function received, so one that is closed was closed inside it: the message
 * says so in the words of the caller (autograd.lua puts "grad:" for grad). */
static lt_tensor *check_leaf(lua_State *L, int arg, int i) {
  lua_geti(L, arg, i);
  lt_tensor *t = lt_l_totensor(L, -1);
  if (!t && luaL_testudata(L, -1, LT_L_TENSOR))
    luaL_error(L, "value_and_grad: an input being differentiated was closed inside the function (close it after "
                  "the gradient is taken)");
  if (!t) luaL_error(L, "tape_backward: leaf %d is a %s, not a lattice.Tensor", i, luaL_typename(L, -1));
  lua_pop(L, 1); /* the list keeps it alive */
  return t;
}

/* tape_backward(handle, y, {leaf, ...}) -> {grad, ...} */
static int l_tape_backward(lua_State *L) {
  lua_settop(L, 3);
  check_live(L, 1);
  lt_tensor *y = lt_l_checktensor(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  int n = (int)luaL_len(L, 3);
  lt_tensor **leaves = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *leaves, 0);
  for (int i = 0; i < n; i++) leaves[i] = check_leaf(L, 3, i + 1);
  lt_tensor **grads = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *grads, 0);
  lt_l_newlist(L, n);
  lt_l_check(L, lt_tape_backward(lt_l_ctx(L), y, n, leaves, grads));
  lt_l_fill_list(L, lua_gettop(L), n, grads);
  return lt_l_result(L, LT_OK);
}

static int l_tape_size(lua_State *L) {
  lua_pushinteger(L, lt_tape_size(lt_l_ctx(L)));
  return 1;
}

static int l_stop_gradient(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "stop_gradient");
  lt_tensor *x = lt_l_checktensor(L, 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check(L, lt_stop_gradient(lt_l_ctx(L), &u->t, x));
  return 1;
}

void lt_l_open_autograd(lua_State *L) {
  if (luaL_newmetatable(L, LT_L_TAPE)) {
    static const luaL_Reg meta[] = {{"__gc", l_tape_end}, {"__close", l_tape_end}, {NULL, NULL}};
    lt_l_register(L, meta);
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"tape_begin", l_tape_begin},
                                 {"tape_end", l_tape_end},
                                 {"tape_watch", l_tape_watch},
                                 {"tape_backward", l_tape_backward},
                                 {"tape_size", l_tape_size},
                                 {"stop_gradient", l_stop_gradient},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
}
