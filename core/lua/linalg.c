/* The linalg binding: matmul, linear, dropout, layer_norm, rms_norm, and bench_sgemm, the direct
 * OpenBLAS call that bench/matmul.lua measures lattice.matmul against. */
#include <cblas.h>
#include "binding.h"
#include "quant_binding.h"
#include "runtime/blas_call.h"

/* A tensor or nil at `arg` (NULL for nil). */
static lt_tensor *opttensor(lua_State *L, int arg) { return lua_isnoneornil(L, arg) ? NULL : lt_l_checktensor(L, arg); }

/* lattice.matmul(a, b) -> a @ b with NumPy matmul rules. */
static int l_matmul(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "matmul");
  lt_tensor *a = lt_l_checktensor(L, 1), *b = lt_l_checktensor(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_matmul(lt_l_ctx(L), &u->t, a, b));
}

/* lattice.layer_norm(x, weight, bias, eps): MLX mx.fast.layer_norm's order;
 * weight and bias may be nil; eps defaults to 1e-5. */
static int l_layer_norm(lua_State *L) {
  lt_l_checkmaxargs(L, 4, "layer_norm");
  lt_tensor *x = lt_l_checktensor(L, 1), *w = opttensor(L, 2), *b = opttensor(L, 3);
  double eps = luaL_optnumber(L, 4, 1e-5);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_layer_norm(lt_l_ctx(L), &u->t, x, w, b, eps));
}

/* lattice.rms_norm(x, weight, eps): weight may be nil; eps defaults to 1e-5. */
static int l_rms_norm(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "rms_norm");
  lt_tensor *x = lt_l_checktensor(L, 1), *w = opttensor(L, 2);
  double eps = luaL_optnumber(L, 3, 1e-5);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_rms_norm(lt_l_ctx(L), &u->t, x, w, eps));
}

/* lattice.linear(x, weight[, bias]) -> x @ weight^T + bias, weight (out, in)
 * as nn.Linear holds it, or a QuantizedWeight of that shape; the bias is
 * added inside the GEMM. */
static int l_linear(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "linear");
  lt_qweight qw;
  if (lt_l_toqweight(L, 2, &qw)) {
    lt_tensor *x = lt_l_checktensor(L, 1), *b = opttensor(L, 3);
    lt_l_tensor *u = lt_l_newtensor(L);
    return lt_l_result(L, lt_quant_linear(lt_l_ctx(L), &u->t, x, &qw, b));
  }
  lt_tensor *x = lt_l_checktensor(L, 1), *w = lt_l_checktensor(L, 2), *b = opttensor(L, 3);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_linear(lt_l_ctx(L), &u->t, x, w, b));
}

/* lattice.dropout(x, p): elements zeroed with probability p, the rest scaled
 * by 1 / (1 - p), the mask from the context's generator. */
static int l_dropout(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "dropout");
  lt_tensor *x = lt_l_checktensor(L, 1);
  double p = luaL_checknumber(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_dropout(lt_l_ctx(L), &u->t, x, p));
}

/* Times `reps` rounds of `batch` row-major (m,k) @ (k,n) cblas_sgemm calls, each
 * on its own matrices (as a batched matmul reads them), with the context's
 * thread count; returns seconds per round. */
static double time_sgemm(lt_ctx *ctx, float *a, float *b, float *c, int m, int n, int k, int64_t reps, int64_t batch) {
  lt__blas_begin(ctx); /* as lattice.matmul does; held over the timed rounds */
  double t0 = 0;
  for (int64_t r = -1; r < reps; r++) { /* round -1 warms up: pages touched, threads started */
    if (r == 0) t0 = lt_now();
    for (int64_t i = 0; i < batch; i++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a + i * m * k, k, b + i * k * n, n, 0.0f,
                  c + i * m * n, n);
  }
  double secs = (lt_now() - t0) / (double)reps;
  lt__blas_end();
  return secs;
}

/* lattice.bench_sgemm(m, n, k, reps[, batch]) -> seconds per (batched) product
 * computed by direct cblas_sgemm calls on buffers from the context's allocator:
 * the reference bench/matmul.lua measures lattice.matmul against. Benchmark use only. */
static int l_bench_sgemm(lua_State *L) {
  lua_Integer m = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2), k = luaL_checkinteger(L, 3);
  lua_Integer reps = luaL_optinteger(L, 4, 1), batch = luaL_optinteger(L, 5, 1);
  if (m < 1 || n < 1 || k < 1 || m > 65536 || n > 65536 || k > 65536)
    return luaL_error(L, "bench_sgemm: sizes must be in [1, 65536], got %I, %I, %I", m, n, k);
  if (reps < 1 || batch < 1 || batch > 4096)
    return luaL_error(L, "bench_sgemm: reps must be >= 1 and batch in [1, 4096], got %I and %I", reps, batch);
  lt_ctx *ctx = lt_l_ctx(L);
  size_t na = (size_t)(batch * m * k), nb = (size_t)(batch * k * n), nc = (size_t)(batch * m * n);
  float *a = lt_ctx_alloc(ctx, na * sizeof(float)), *b = lt_ctx_alloc(ctx, nb * sizeof(float));
  float *c = lt_ctx_alloc(ctx, nc * sizeof(float));
  double secs = -1;
  if (a && b && c) {
    for (size_t i = 0; i < na; i++) a[i] = (float)((int)(i % 13) - 6) / 8.0f;
    for (size_t i = 0; i < nb; i++) b[i] = (float)((int)(i % 7) - 3) / 4.0f;
    secs = time_sgemm(ctx, a, b, c, (int)m, (int)n, (int)k, reps, batch);
  }
  if (a) lt_ctx_free(ctx, a, na * sizeof(float));
  if (b) lt_ctx_free(ctx, b, nb * sizeof(float));
  if (c) lt_ctx_free(ctx, c, nc * sizeof(float));
  if (secs < 0) return luaL_error(L, "bench_sgemm: out of memory");
  lua_pushnumber(L, secs);
  return 1;
}

void lt_l_open_linalg(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"matmul", l_matmul},     {"linear", l_linear},           {"dropout", l_dropout}, {"layer_norm", l_layer_norm},
      {"rms_norm", l_rms_norm}, {"bench_sgemm", l_bench_sgemm}, {NULL, NULL},
  };
  lt_l_register(L, fns);
}
