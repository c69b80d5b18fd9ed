/* The elementwise binding: binary ops (also as the Tensor's arithmetic
 * metamethods), unary ops, where and clip; plus the machine limits that the
 * benchmarks compare against (peak_gflops, bench_memcpy), the active ISA, and
 * the hooks spec/isa_spec.lua uses to run each ISA's kernels side by side
 * (unary_with_isa, unary_grad_with_isa). */
#include <math.h>
#include <string.h>
#include "binding.h"
#include "lattice/peak.h"
#include "ops/unary_kernels.h"

/* ---- binary ---- */

/* The result userdata comes before the operands: a number operand is a new
 * tensor that nothing may raise over before its release. (The stack is set
 * first, so the userdata cannot pass for a missing argument; a third argument
 * is refused before that, as it would otherwise vanish.) */
static int binary(lua_State *L, lt_binary_op op) {
  lt_tensor *a, *b;
  lt_l_checkmaxargs(L, 2, lt_binary_name(op));
  lua_settop(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_checkpair(L, 1, 2, &a, &b);
  lt_status st = lt_binary(lt_l_ctx(L), &u->t, op, a, b);
  lt_tensor_release(a);
  lt_tensor_release(b);
  return lt_l_result(L, st);
}

static int l_add(lua_State *L) { return binary(L, LT_BINARY_ADD); }
static int l_subtract(lua_State *L) { return binary(L, LT_BINARY_SUB); }
static int l_multiply(lua_State *L) { return binary(L, LT_BINARY_MUL); }
static int l_divide(lua_State *L) { return binary(L, LT_BINARY_DIV); }
static int l_power(lua_State *L) { return binary(L, LT_BINARY_POW); }
static int l_maximum(lua_State *L) { return binary(L, LT_BINARY_MAXIMUM); }
static int l_minimum(lua_State *L) { return binary(L, LT_BINARY_MINIMUM); }
static int l_floor_divide(lua_State *L) { return binary(L, LT_BINARY_FLOOR_DIVIDE); }
static int l_remainder(lua_State *L) { return binary(L, LT_BINARY_REMAINDER); }
static int l_equal(lua_State *L) { return binary(L, LT_BINARY_EQUAL); }
static int l_not_equal(lua_State *L) { return binary(L, LT_BINARY_NOT_EQUAL); }
static int l_less(lua_State *L) { return binary(L, LT_BINARY_LESS); }
static int l_less_equal(lua_State *L) { return binary(L, LT_BINARY_LESS_EQUAL); }
static int l_greater(lua_State *L) { return binary(L, LT_BINARY_GREATER); }
static int l_greater_equal(lua_State *L) { return binary(L, LT_BINARY_GREATER_EQUAL); }

/* ---- unary ---- */

/* nargs: how many arguments the Lua function takes (leaky_relu and gelu 2). */
static int unary(lua_State *L, lt_unary_op op, double alpha, int nargs) {
  lt_l_checkmaxargs(L, nargs, lt_unary_name(op));
  lua_settop(L, 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_tensor *x = lt_l_checkoperand(L, 1, NULL);
  lt_status st = lt_unary(lt_l_ctx(L), &u->t, op, x, alpha);
  lt_tensor_release(x);
  return lt_l_result(L, st);
}

static int l_neg(lua_State *L) { return unary(L, LT_UNARY_NEG, 0, 1); }
static int l_exp(lua_State *L) { return unary(L, LT_UNARY_EXP, 0, 1); }
static int l_log(lua_State *L) { return unary(L, LT_UNARY_LOG, 0, 1); }
static int l_sqrt(lua_State *L) { return unary(L, LT_UNARY_SQRT, 0, 1); }
static int l_rsqrt(lua_State *L) { return unary(L, LT_UNARY_RSQRT, 0, 1); }
static int l_abs(lua_State *L) { return unary(L, LT_UNARY_ABS, 0, 1); }
static int l_tanh(lua_State *L) { return unary(L, LT_UNARY_TANH, 0, 1); }
static int l_sigmoid(lua_State *L) { return unary(L, LT_UNARY_SIGMOID, 0, 1); }
static int l_relu(lua_State *L) { return unary(L, LT_UNARY_RELU, 0, 1); }
static int l_silu(lua_State *L) { return unary(L, LT_UNARY_SILU, 0, 1); }
static int l_softplus(lua_State *L) { return unary(L, LT_UNARY_SOFTPLUS, 0, 1); }
static int l_square(lua_State *L) { return unary(L, LT_UNARY_SQUARE, 0, 1); }
static int l_sin(lua_State *L) { return unary(L, LT_UNARY_SIN, 0, 1); }
static int l_cos(lua_State *L) { return unary(L, LT_UNARY_COS, 0, 1); }
static int l_gelu_approx(lua_State *L) { return unary(L, LT_UNARY_GELU_TANH, 0, 1); }

/* leaky_relu(x, negative_slope = 0.01) */
static int l_leaky_relu(lua_State *L) { return unary(L, LT_UNARY_LEAKY_RELU, luaL_optnumber(L, 2, 0.01), 2); }

/* gelu(x, {approximate = "none" | "tanh"}), as PyTorch names it. */
static int l_gelu(lua_State *L) {
  static const char *const allowed[] = {"approximate", NULL};
  lt_l_checkmaxargs(L, 2, "gelu");
  lt_l_checkoptions(L, 2, "gelu", allowed);
  const char *approx = lt_l_optstringfield(L, 2, "approximate", "none");
  if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0)
    return luaL_error(L, "gelu: approximate must be 'none' or 'tanh', got '%s'", approx);
  return unary(L, strcmp(approx, "tanh") == 0 ? LT_UNARY_GELU_TANH : LT_UNARY_GELU, 0, 2);
}

/* __unm receives the operand twice. */
static int l_unm(lua_State *L) {
  lua_settop(L, 1);
  return unary(L, LT_UNARY_NEG, 0, 1);
}

/* ---- where, clip ---- */

/* where(cond, a, b): a where cond is nonzero, else b; numbers allowed for a and b. */
static int l_where(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "where");
  lua_settop(L, 3);
  lt_tensor *cond = lt_l_checktensor(L, 1), *a, *b;
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_checkpair(L, 2, 3, &a, &b);
  lt_status st = lt_where(lt_l_ctx(L), &u->t, cond, a, b);
  lt_tensor_release(a);
  lt_tensor_release(b);
  return lt_l_result(L, st);
}

/* clip(x, lo, hi): nil is no bound on that side. */
static int l_clip(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "clip");
  lt_tensor *x = lt_l_checktensor(L, 1);
  double lo = lua_isnoneornil(L, 2) ? NAN : luaL_checknumber(L, 2);
  double hi = lua_isnoneornil(L, 3) ? NAN : luaL_checknumber(L, 3);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_clip(lt_l_ctx(L), &u->t, x, lo, hi));
}

/* ---- ISAs, peak and memcpy ---- */

lt_isa lt_l_checkisa(lua_State *L, int arg, const char *fname) {
  const char *name = luaL_checkstring(L, arg);
  for (int i = LT_ISA_SCALAR; i <= LT_ISA_AVX512; i++)
    if (strcmp(name, lt_isa_name((lt_isa)i)) == 0) return (lt_isa)i;
  luaL_error(L, "%s: unknown ISA '%s' (expected scalar, avx2 or avx512)", fname, name);
  return LT_ISA_SCALAR;
}

int lt_l_isa_hook(lua_State *L, lt_l_isa_kernel kernel, const char *fname) {
  lua_settop(L, 2);
  lt_tensor *x = lt_l_checktensor(L, 1);
  lt_isa isa = lt_l_checkisa(L, 2, fname), used;
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check(L, kernel(lt_l_ctx(L), &u->t, x, isa, &used));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

/* lattice.isa() -> "scalar" | "avx2" | "avx512": what lattice's own kernels use. */
static int l_isa(lua_State *L) {
  lt_l_checkmaxargs(L, 0, "isa");
  lua_pushstring(L, lt_isa_name(lt__ctx_isa(lt_l_ctx(L))));
  return 1;
}

/* lattice.peak_gflops(isa, seconds = 0.5) -> GFLOP/s of the FMA peak kernel on
 * the current thread count, or nil and a message when the CPU lacks the ISA. */
static int l_peak_gflops(lua_State *L) {
  lt_isa isa = lt_l_checkisa(L, 1, "peak_gflops");
  double seconds = luaL_optnumber(L, 2, 0.5);
  if (!(seconds > 0 && seconds <= 60)) return luaL_error(L, "peak_gflops: seconds must be in (0, 60]");
  double g = lt_peak_gflops(isa, lt_ctx_num_threads(lt_l_ctx(L)), seconds);
  if (g < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "peak_gflops: %s is not available on this CPU (or LATTICE_ISA)", lt_isa_name(isa));
    return 2;
  }
  lua_pushnumber(L, g);
  return 1;
}

/* lattice.bench_memcpy(nbytes, reps) -> median seconds per copy, on the current threads. */
static int l_bench_memcpy(lua_State *L) {
  lua_Integer nbytes = luaL_checkinteger(L, 1), reps = luaL_optinteger(L, 2, 10);
  if (nbytes < 0) return luaL_error(L, "bench_memcpy: nbytes must not be negative");
  if (reps < 1 || reps > 10000) return luaL_error(L, "bench_memcpy: reps must be in [1, 10000]");
  double s;
  lt_l_check(L, lt_peak_memcpy(lt_l_ctx(L), (size_t)nbytes, (int)reps, &s));
  lua_pushnumber(L, s);
  return 1;
}

static lt_unary_op check_unary_name(lua_State *L, int arg, const char *fname) {
  const char *name = luaL_checkstring(L, arg);
  for (int i = 0; i < LT_UNARY_COUNT; i++)
    if (strcmp(name, lt_unary_name((lt_unary_op)i)) == 0) return (lt_unary_op)i;
  luaL_error(L, "%s: unknown unary op '%s'", fname, name);
  return LT_UNARY_NEG;
}

/* lattice.unary_with_isa(op, x, isa, alpha = 0) -> y, the ISA used: the
 * forward with one ISA's kernels ("scalar" is the _ref kernel), lowered to what
 * the CPU has; records nothing. For specs that compare the variants. */
static int l_unary_with_isa(lua_State *L) {
  lt_unary_op op = check_unary_name(L, 1, "unary_with_isa");
  lt_tensor *x = lt_l_checktensor(L, 2);
  lt_isa isa = lt_l_checkisa(L, 3, "unary_with_isa"), used;
  double alpha = luaL_optnumber(L, 4, 0);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_result(L, lt__unary_isa(lt_l_ctx(L), &u->t, op, x, alpha, isa, &used));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

/* lattice.unary_grad_with_isa(op, g, x, isa, alpha = 0) -> g * f'(x), the ISA used. */
static int l_unary_grad_with_isa(lua_State *L) {
  lt_unary_op op = check_unary_name(L, 1, "unary_grad_with_isa");
  lt_tensor *g = lt_l_checktensor(L, 2), *x = lt_l_checktensor(L, 3);
  lt_isa isa = lt_l_checkisa(L, 4, "unary_grad_with_isa"), used;
  double alpha = luaL_optnumber(L, 5, 0);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_result(L, lt__unary_grad_isa(lt_l_ctx(L), &u->t, op, g, x, NULL, alpha, isa, &used));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

/* lattice.core.exp_shift_with_isa(x, shift, isa) -> exp(x - shift), the ISA
 * used: the exp kernel of softmax, logsumexp and cross_entropy, for specs. */
static int l_exp_shift_with_isa(lua_State *L) {
  lt_tensor *x = lt_l_checktensor(L, 1);
  float shift = (float)luaL_checknumber(L, 2);
  lt_isa isa = lt_l_checkisa(L, 3, "exp_shift_with_isa"), used;
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_result(L, lt__exp_shift_isa(lt_l_ctx(L), &u->t, x, shift, isa, &used));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

static const luaL_Reg functions[] = {{"exp_shift_with_isa", l_exp_shift_with_isa},
                                     {"add", l_add},
                                     {"subtract", l_subtract},
                                     {"multiply", l_multiply},
                                     {"divide", l_divide},
                                     {"power", l_power},
                                     {"maximum", l_maximum},
                                     {"minimum", l_minimum},
                                     {"floor_divide", l_floor_divide},
                                     {"remainder", l_remainder},
                                     {"equal", l_equal},
                                     {"not_equal", l_not_equal},
                                     {"less", l_less},
                                     {"less_equal", l_less_equal},
                                     {"greater", l_greater},
                                     {"greater_equal", l_greater_equal},
                                     {"neg", l_neg},
                                     {"exp", l_exp},
                                     {"log", l_log},
                                     {"sqrt", l_sqrt},
                                     {"rsqrt", l_rsqrt},
                                     {"abs", l_abs},
                                     {"tanh", l_tanh},
                                     {"sigmoid", l_sigmoid},
                                     {"relu", l_relu},
                                     {"leaky_relu", l_leaky_relu},
                                     {"gelu", l_gelu},
                                     {"gelu_approx", l_gelu_approx},
                                     {"silu", l_silu},
                                     {"softplus", l_softplus},
                                     {"square", l_square},
                                     {"sin", l_sin},
                                     {"cos", l_cos},
                                     {"where", l_where},
                                     {"clip", l_clip},
                                     {"isa", l_isa},
                                     {"peak_gflops", l_peak_gflops},
                                     {"bench_memcpy", l_bench_memcpy},
                                     {"unary_with_isa", l_unary_with_isa},
                                     {"unary_grad_with_isa", l_unary_grad_with_isa},
                                     {NULL, NULL}};

/* Lua's arithmetic on tensors; comparisons cannot be metamethods (Lua turns
 * their results into booleans), so they stay functions. */
static const luaL_Reg metamethods[] = {{"__add", l_add},    {"__sub", l_subtract},      {"__mul", l_multiply},
                                       {"__div", l_divide}, {"__idiv", l_floor_divide}, {"__mod", l_remainder},
                                       {"__pow", l_power},  {"__unm", l_unm},           {NULL, NULL}};

void lt_l_open_elementwise(lua_State *L) {
  lt_l_register(L, functions);
  luaL_getmetatable(L, LT_L_TENSOR); /* created by lt_l_open_tensor, which runs first */
  if (lua_istable(L, -1)) lt_l_register(L, metamethods);
  lua_pop(L, 1);
}
