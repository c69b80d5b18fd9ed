/* A C++ host: every public header (lattice/lua.h brings lattice/lattice.h)
 * compiled as C++, and the C functions they declare linked by their C names,
 * which a header without extern "C" would leave undefined. Exit 1 when a
 * check fails. */
#include <cstdio>
#include <cstring>
extern "C" {
#include <lauxlib.h>
#include <lualib.h>
}
#include "lattice/lua.h"

#define CHECK(cond, what)             \
  do {                                \
    if (!(cond)) {                    \
      std::printf("FAIL %s\n", what); \
      return 1;                       \
    }                                 \
  } while (0)

int main() {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  CHECK(lattice_lua_open(L, nullptr) == LUA_OK, "lattice_lua_open");
  const float data[4] = {1, 2, 3, 4};
  const int64_t shape[2] = {2, 2};
  CHECK(lattice_lua_push_copy(L, data, LT_FLOAT32, 2, shape) == LUA_OK, "lattice_lua_push_copy");
  lua_setglobal(L, "x");
  CHECK(luaL_dostring(L, "return lattice.matmul(x, x)") == LUA_OK, "matmul");
  float out[4];
  CHECK(lattice_lua_read(L, -1, out, LT_FLOAT32, 4) == 4, "lattice_lua_read");
  const float want[4] = {7, 10, 15, 22}; /* [[1,2],[3,4]] squared */
  CHECK(std::memcmp(out, want, sizeof out) == 0, "the product");
  lt_ctx *ctx = lattice_lua_context(L);
  CHECK(ctx && lt_ctx_memory_stats(ctx).in_use > 0, "lt_ctx_memory_stats");
  lt_ctx_set_num_threads(ctx, 1);
  CHECK(lt_ctx_num_threads(ctx) == 1, "lt_ctx_num_threads");
  lua_close(L);
  std::printf("ok   a C++ host links and runs lattice\n");
  return 0;
}
