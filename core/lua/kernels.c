/* Test hooks for the shared microkernels (core/kernels/), kept out of the
 * public namespace (lua/lattice/init.lua lists them as internal): each runs
 * one kernel with a forced ISA, so specs can compare every variant with the
 * _ref one and benchmarks can time the kernel alone. */
#include <string.h>
#include "binding.h"
#include "kernels/gather_gemm_tensor.h"

static lt_isa check_isa(lua_State *L, int arg, const char *fname) {
  const char *name = luaL_checkstring(L, arg);
  for (int i = LT_ISA_SCALAR; i <= LT_ISA_AVX512; i++)
    if (strcmp(name, lt_isa_name((lt_isa)i)) == 0) return (lt_isa)i;
  luaL_error(L, "%s: unknown ISA '%s' (expected scalar, avx2 or avx512)", fname, name);
  return LT_ISA_SCALAR;
}

static lt_tensor *opt_tensor(lua_State *L, int arg) {
  return lua_isnoneornil(L, arg) ? NULL : lt_l_checktensor(L, arg);
}

/* lattice.core.ggemm_with_isa(x, w, idx, isa [, y]) -> [y +] sum_k x[idx[:, k]] @ w[k],
 * the ISA used. x (n_in, c_in), w (K, c_in, c_out) float32; idx int32/int64
 * (n_out, K) of 0-based rows, -1 for none. y is not modified. */
static int l_ggemm_with_isa(lua_State *L) {
  lt_l_checkmaxargs(L, 5, "ggemm_with_isa");
  lt_tensor *x = lt_l_checktensor(L, 1), *w = lt_l_checktensor(L, 2), *idx = lt_l_checktensor(L, 3);
  lt_isa isa = check_isa(L, 4, "ggemm_with_isa"), used = LT_ISA_SCALAR;
  lt_tensor *y = opt_tensor(L, 5);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_result(L, lt__ggemm_tensor(lt_l_ctx(L), &u->t, x, w, idx, y, isa, &used, "ggemm_with_isa"));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

/* lattice.core.ggemm_wgrad_with_isa(x, dy, idx, isa [, dw [, transposed]]) ->
 * dw (K, c_in, c_out) [+]= sum_o x[idx[o, k]]^T dy[o] (or (K, c_out, c_in)
 * when transposed), the ISA used. */
static int l_ggemm_wgrad_with_isa(lua_State *L) {
  lt_l_checkmaxargs(L, 6, "ggemm_wgrad_with_isa");
  lt_tensor *x = lt_l_checktensor(L, 1), *dy = lt_l_checktensor(L, 2), *idx = lt_l_checktensor(L, 3);
  lt_isa isa = check_isa(L, 4, "ggemm_wgrad_with_isa"), used = LT_ISA_SCALAR;
  lt_tensor *dw = opt_tensor(L, 5);
  int transposed = lua_toboolean(L, 6);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_result(
      L, lt__ggemm_wgrad_tensor(lt_l_ctx(L), &u->t, x, dy, idx, dw, transposed, isa, &used, "ggemm_wgrad_with_isa"));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

/* lattice.core.bench_ggemm(x, w, idx, isa, reps) -> median seconds per
 * forward call (packing included), the ISA used; bench_ggemm_wgrad(x, dy,
 * idx, isa, reps) likewise for the weight gradient. Arguments are checked
 * once, outside the timing. Benchmark use only. */
static int l_bench_ggemm(lua_State *L) {
  lt_l_checkmaxargs(L, 5, "bench_ggemm");
  lt_tensor *x = lt_l_checktensor(L, 1), *w = lt_l_checktensor(L, 2), *idx = lt_l_checktensor(L, 3);
  lt_isa isa = check_isa(L, 4, "bench_ggemm"), used = LT_ISA_SCALAR;
  int reps = (int)luaL_checkinteger(L, 5);
  double s = 0;
  lt_l_check(L, lt__ggemm_bench(lt_l_ctx(L), &s, x, w, idx, isa, reps, &used, "bench_ggemm"));
  lua_pushnumber(L, s);
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

static int l_bench_ggemm_wgrad(lua_State *L) {
  lt_l_checkmaxargs(L, 5, "bench_ggemm_wgrad");
  lt_tensor *x = lt_l_checktensor(L, 1), *dy = lt_l_checktensor(L, 2), *idx = lt_l_checktensor(L, 3);
  lt_isa isa = check_isa(L, 4, "bench_ggemm_wgrad"), used = LT_ISA_SCALAR;
  int reps = (int)luaL_checkinteger(L, 5);
  double s = 0;
  lt_l_check(L, lt__ggemm_wgrad_bench(lt_l_ctx(L), &s, x, dy, idx, isa, reps, &used, "bench_ggemm_wgrad"));
  lua_pushnumber(L, s);
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

void lt_l_open_kernels(lua_State *L) {
  static const luaL_Reg fns[] = {{"ggemm_with_isa", l_ggemm_with_isa},
                                 {"ggemm_wgrad_with_isa", l_ggemm_wgrad_with_isa},
                                 {"bench_ggemm", l_bench_ggemm},
                                 {"bench_ggemm_wgrad", l_bench_ggemm_wgrad},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
}
