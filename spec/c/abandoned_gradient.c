/* A gradient abandoned half-way (its coroutine suspended inside the function
 * and never resumed) must not keep the context alive after lua_close: the
 * tape's tensors hold the context, so closing the state has to free the tape.
 * The input is a zero-copy view of a host buffer whose release callback
 * proves that everything holding it, the tape included, was freed. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include "lattice/lua.h"

static void on_release(void *ud) { ++*(int *)ud; }

/* Runs `script` with the view as global x, closes the state, returns the
 * number of release calls (1 when everything was freed). */
static int run(const char *script) {
  static float data[4] = {1, 2, 3, 4};
  int released = 0;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (lattice_lua_open(L, NULL) != LUA_OK) {
    fprintf(stderr, "open: %s\n", lua_tostring(L, -1));
    return -1;
  }
  if (lattice_lua_push_view(L, data, LT_FLOAT32, 1, (int64_t[]){4}, on_release, &released) != LUA_OK) {
    fprintf(stderr, "push: %s\n", lua_tostring(L, -1));
    return -1;
  }
  lua_setglobal(L, "x");
  if (luaL_dostring(L, script) != LUA_OK) {
    fprintf(stderr, "script: %s\n", lua_tostring(L, -1));
    return -1;
  }
  lua_close(L);
  return released;
}

static const char *const cases[][2] = {
    {"suspended in a coroutine", "co = coroutine.create(lattice.value_and_grad(function(x)\n"
                                 "  local y = x * 2\n"
                                 "  coroutine.yield()\n"
                                 "  return lattice.sum(y)\n"
                                 "end))\n"
                                 "assert(coroutine.resume(co, x))\n"
                                 "x = nil\n"},
    {"a matmul left on the tape", "co = coroutine.wrap(lattice.value_and_grad(function(x)\n"
                                  "  local m = lattice.matmul(x:reshape({2, 2}), x:reshape({2, 2}))\n"
                                  "  coroutine.yield()\n"
                                  "  return lattice.sum(m)\n"
                                  "end))\n"
                                  "co(x)\n"
                                  "x = nil\n"},
    {"a finished gradient", "local _, g = lattice.value_and_grad(function(x) return lattice.sum(x * x) end)(x)\n"
                            "assert(g:tolist()[4] == 8)\n"
                            "x = nil\n"},
};

int main(void) {
  int failed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int released = run(cases[i][1]);
    printf("%s: %s (release called %d times)\n", released == 1 ? "ok" : "FAILED", cases[i][0], released);
    failed += released != 1;
  }
  printf("%d passed, %d failed\n", (int)(sizeof cases / sizeof cases[0]) - failed, failed);
  return failed != 0;
}
