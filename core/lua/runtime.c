/* The runtime binding: thread count, what OpenBLAS reports, the caching
 * allocator's accounting, and a monotonic clock. Everything acts on this
 * lua_State's context only, so two states in one process never meet. */
#include "binding.h"
#include "runtime/blas_call.h"

/* lattice.set_num_threads(n): lattice's OpenMP loops and OpenBLAS (which
 * matmul sets from the context before each call) both use n threads. */
static int l_set_num_threads(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "set_num_threads");
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1) return luaL_error(L, "set_num_threads: n must be at least 1, got %I", n);
  if (n > LT_MAX_THREADS) return luaL_error(L, "set_num_threads: n must be at most %d, got %I", LT_MAX_THREADS, n);
  lt_ctx_set_num_threads(lt_l_ctx(L), (int)n);
  return 0;
}

static int l_num_threads(lua_State *L) {
  lt_l_checkmaxargs(L, 0, "num_threads");
  lua_pushinteger(L, lt_ctx_num_threads(lt_l_ctx(L)));
  return 1;
}

static void setstring(lua_State *L, const char *key, const char *value) {
  if (!value) return; /* nil: the field is absent */
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

/* lattice.blas_info() -> {core=, config=, num_threads=, parallel=, coretype_env=}
 * coretype_env is nil when OPENBLAS_CORETYPE is not set. num_threads is this
 * state's: what OpenBLAS's process-wide count will be for its next call, not
 * whatever the last state to call left there. */
static int l_blas_info(lua_State *L) {
  lt_l_checkmaxargs(L, 0, "blas_info");
  lt_blas_info info = lt_blas_get_info();
  info.num_threads = lt__blas_threads_for(lt_l_ctx(L));
  lua_createtable(L, 0, 5);
  setstring(L, "core", info.core);
  setstring(L, "config", info.config);
  lua_pushinteger(L, info.num_threads);
  lua_setfield(L, -2, "num_threads");
  setstring(L, "parallel", info.parallel);
  setstring(L, "coretype_env", info.coretype_env);
  return 1;
}

/* lattice.memory_stats() -> {in_use=, cached=, peak=, limit=, sparse_cache=} in bytes;
 * sparse_cache: what the coordinate manager keeps (interned maps, relations). */
static int l_memory_stats(lua_State *L) {
  lt_l_checkmaxargs(L, 0, "memory_stats");
  lt_memory_stats s = lt_ctx_memory_stats(lt_l_ctx(L));
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)s.in_use);
  lua_setfield(L, -2, "in_use");
  lua_pushinteger(L, (lua_Integer)s.cached);
  lua_setfield(L, -2, "cached");
  lua_pushinteger(L, (lua_Integer)s.peak);
  lua_setfield(L, -2, "peak");
  lua_pushinteger(L, (lua_Integer)s.limit);
  lua_setfield(L, -2, "limit");
  lua_pushinteger(L, (lua_Integer)lt_sparse_cache_bytes(lt_l_ctx(L)));
  lua_setfield(L, -2, "sparse_cache");
  return 1;
}

/* lattice.set_cache_limit(bytes): the most bytes the cache keeps for reuse. */
static int l_set_cache_limit(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "set_cache_limit");
  int isint;
  lua_Integer bytes = lua_tointegerx(L, 1, &isint);
  if (!isint) return luaL_typeerror(L, 1, "integer");
  if (bytes < 0) return luaL_error(L, "set_cache_limit: bytes must not be negative, got %I", bytes);
  lt_ctx_set_cache_limit(lt_l_ctx(L), (size_t)bytes);
  return 0;
}

/* lattice.clear_cache(): returns every cached block to the system. */
static int l_clear_cache(lua_State *L) {
  lt_l_checkmaxargs(L, 0, "clear_cache");
  lt_sparse_clear_cache(lt_l_ctx(L)); /* first: it gives blocks back to the allocator's cache */
  lt_ctx_clear_cache(lt_l_ctx(L));
  return 0;
}

/* lattice.now(): monotonic wall clock in seconds (for timing, not dates). */
static int l_now(lua_State *L) {
  lt_l_checkmaxargs(L, 0, "now");
  lua_pushnumber(L, lt_now());
  return 1;
}

void lt_l_open_runtime(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"set_num_threads", l_set_num_threads},
      {"num_threads", l_num_threads},
      {"blas_info", l_blas_info},
      {"memory_stats", l_memory_stats},
      {"set_cache_limit", l_set_cache_limit},
      {"clear_cache", l_clear_cache},
      {"now", l_now},
      {NULL, NULL},
  };
  lt_l_register(L, fns);
}
