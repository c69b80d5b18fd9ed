/* Test hooks for the shared microkernels (core/kernels/), kept out of the
 * public namespace (lua/lattice/init.lua lists them as internal): each runs
 * one kernel with a forced ISA, so specs can compare every variant with the
 * _ref one and benchmarks can time the kernel alone. */
#include <string.h>
#include "binding.h"
#include "kernels/gather_gemm_tensor.h"
#include "kernels/sgemm.h"
#include "tensor/internal.h"
#include "runtime/context.h"

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

/* lattice.core.sgemm_with_isa(a, b, isa, {ta, tb, alpha, beta, c, bias,
 * threads}) -> alpha op(a) @ op(b) + beta c (+ bias, each row: with beta
 * 0), the ISA used: lattice's dense sgemm with one ISA and thread count
 * (default: the state's). a is (m, k), or (k, m) with ta; b (k, n), or
 * (n, k) with tb; c (m, n) is not modified; bias (n). */
static int l_sgemm_with_isa(lua_State *L) {
  static const char *const allowed[] = {"ta", "tb", "alpha", "beta", "c", "bias", "threads", NULL};
  lt_l_checkmaxargs(L, 4, "sgemm_with_isa");
  lt_tensor *a0 = lt_l_checktensor(L, 1), *b0 = lt_l_checktensor(L, 2);
  lt_isa isa = check_isa(L, 3, "sgemm_with_isa");
  if (isa > lt_cpu_isa()) isa = lt_cpu_isa();
  lt_l_checkoptions(L, 4, "sgemm_with_isa", allowed);
  int ta = lt_l_optbooleanfield(L, 4, "ta", 0), tb = lt_l_optbooleanfield(L, 4, "tb", 0);
  float alpha = (float)lt_l_optnumberfield(L, 4, "alpha", 1), beta = (float)lt_l_optnumberfield(L, 4, "beta", 0);
  lt_ctx *ctx = lt_l_ctx(L);
  int threads = (int)lt_l_optintegerfield(L, 4, "threads", lt__ctx_threads(ctx));
  lt_tensor *c0 = NULL, *bias = NULL;
  if (lua_istable(L, 4) && lua_getfield(L, 4, "c") != LUA_TNIL) c0 = lt_l_checktensor(L, -1);
  if (lua_istable(L, 4) && lua_getfield(L, 4, "bias") != LUA_TNIL) bias = lt_l_checktensor(L, -1);
  if (threads < 1 || threads > 64) return luaL_error(L, "sgemm_with_isa: threads must be in [1, 64], got %d", threads);
  if (a0->ndim != 2 || b0->ndim != 2 || a0->dtype != LT_FLOAT32 || b0->dtype != LT_FLOAT32)
    return luaL_error(L, "sgemm_with_isa: a and b must be 2-D float32 tensors");
  int64_t m = a0->shape[ta], k = a0->shape[1 - ta], n = b0->shape[1 - tb];
  if (b0->shape[tb] != k) return luaL_error(L, "sgemm_with_isa: op(a) and op(b) do not align");
  if (c0 && (c0->ndim != 2 || c0->shape[0] != m || c0->shape[1] != n || c0->dtype != LT_FLOAT32))
    return luaL_error(L, "sgemm_with_isa: c must be a (%d, %d) float32 tensor", (int)m, (int)n);
  if (bias && (bias->ndim != 1 || bias->shape[0] != n || bias->dtype != LT_FLOAT32 || !lt_tensor_is_contiguous(bias)))
    return luaL_error(L, "sgemm_with_isa: bias must be a contiguous (%d) float32 tensor", (int)n);
  if (bias && beta != 0) return luaL_error(L, "sgemm_with_isa: a bias needs beta 0");
  lt_l_tensor *u = lt_l_newtensor(L); /* nothing raises from here on */
  lt_tensor *a = NULL, *b = NULL, *cc = NULL;
  lt_status st = lt_contiguous(ctx, &a, a0);
  if (!st) st = lt_contiguous(ctx, &b, b0);
  if (!st && c0) st = lt_contiguous(ctx, &cc, c0);
  if (!st) st = lt_tensor_zeros(ctx, &u->t, LT_FLOAT32, 2, (int64_t[]){m, n});
  if (!st && cc) memcpy(lt_tensor_data(u->t), lt_tensor_data(cc), (size_t)(m * n) * sizeof(float));
  if (!st) {
    lt__sgemm_args g = {ta,
                        tb,
                        m,
                        n,
                        k,
                        alpha,
                        lt_tensor_data(a),
                        ta ? m : k,
                        lt_tensor_data(b),
                        tb ? k : n,
                        beta,
                        lt_tensor_data(u->t),
                        n,
                        bias ? lt_tensor_data(bias) : NULL};
    lt__sgemm_with(ctx, isa, threads, &g);
  }
  lt_tensor_release(a), lt_tensor_release(b), lt_tensor_release(cc);
  lt_l_result(L, st);
  lua_pushstring(L, lt_isa_name(isa));
  return 2;
}

/* lattice.core.bench_lt_sgemm(m, n, k, reps[, ta, tb]) -> seconds per
 * product of lattice's sgemm on buffers from the context's allocator, with
 * the state's ISA and threads (beside bench_sgemm's OpenBLAS). Benchmark use only. */
static int l_bench_lt_sgemm(lua_State *L) {
  lua_Integer m = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2), k = luaL_checkinteger(L, 3);
  lua_Integer reps = luaL_checkinteger(L, 4);
  int ta = lua_toboolean(L, 5), tb = lua_toboolean(L, 6);
  if (m < 1 || n < 1 || k < 1 || m > 65536 || n > 65536 || k > 65536 || reps < 1)
    return luaL_error(L, "bench_lt_sgemm: sizes must be in [1, 65536] and reps >= 1");
  lt_ctx *ctx = lt_l_ctx(L);
  size_t na = (size_t)(m * k), nb = (size_t)(k * n), nc = (size_t)(m * n);
  float *a = lt_ctx_alloc(ctx, na * sizeof(float)), *b = lt_ctx_alloc(ctx, nb * sizeof(float));
  float *c = lt_ctx_alloc(ctx, nc * sizeof(float));
  double secs = -1;
  if (a && b && c) {
    for (size_t i = 0; i < na; i++) a[i] = (float)((int)(i % 13) - 6) / 8.0f;
    for (size_t i = 0; i < nb; i++) b[i] = (float)((int)(i % 7) - 3) / 4.0f;
    lt__sgemm_args g = {ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n, NULL};
    double t0 = 0;
    for (lua_Integer r = -1; r < reps; r++) { /* round -1 warms up */
      if (r == 0) t0 = lt_now();
      lt__sgemm(ctx, &g);
    }
    secs = (lt_now() - t0) / (double)reps;
  }
  if (a) lt_ctx_free(ctx, a, na * sizeof(float));
  if (b) lt_ctx_free(ctx, b, nb * sizeof(float));
  if (c) lt_ctx_free(ctx, c, nc * sizeof(float));
  if (secs < 0) return luaL_error(L, "bench_lt_sgemm: out of memory");
  lua_pushnumber(L, secs);
  return 1;
}

void lt_l_open_kernels(lua_State *L) {
  static const luaL_Reg fns[] = {{"ggemm_with_isa", l_ggemm_with_isa},
                                 {"ggemm_wgrad_with_isa", l_ggemm_wgrad_with_isa},
                                 {"bench_ggemm", l_bench_ggemm},
                                 {"bench_ggemm_wgrad", l_bench_ggemm_wgrad},
                                 {"sgemm_with_isa", l_sgemm_with_isa},
                                 {"bench_lt_sgemm", l_bench_lt_sgemm},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
}
