/* The attention binding:
 *   lattice.scaled_dot_product_attention(q, k, v, {scale, mask, causal, window,
 *                                                  chunk, alibi, q_offset})
 * as MLX's mx.fast.scaled_dot_product_attention(q, k, v, *, scale, mask)
 * (mask = "causal" or a tensor), with lattice's extras (lattice/transformer.h
 * and docs/transformer.md); and the hooks spec/attention_spec.lua runs each
 * ISA's kernels with (attention_with_isa, attention_grad_with_isa,
 * gemm_tile_with_isa), kept in lattice.core. */
#include <string.h>
#include "binding.h"
#include "kernels/gemm_tile.h"
#include "transformer/attention_internal.h"

#define SDPA "scaled_dot_product_attention"

static const char *const option_names[] = {"scale", "mask", "causal", "window", "chunk", "alibi", "q_offset", NULL};

/* Field `key` of the options table at arg pushed; its type (LUA_TNIL when absent). */
static int option(lua_State *L, int arg, const char *key) {
  if (lua_isnoneornil(L, arg)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, arg, key);
}

static lua_Integer opt_integer(lua_State *L, int arg, const char *key, lua_Integer min, int *given) {
  *given = option(L, arg, key) != LUA_TNIL;
  if (*given && !lua_isinteger(L, -1))
    luaL_error(L, SDPA ": option '%s' must be an integer, got %s", key, lt_l_valuename(L, -1));
  lua_Integer v = *given ? lua_tointeger(L, -1) : 0;
  if (*given && v < min) luaL_error(L, SDPA ": option '%s' must be at least %I, got %I", key, min, v);
  lua_pop(L, 1);
  return v;
}

/* A tensor option: borrowed from the options table, which the caller keeps. */
static lt_tensor *opt_tensor(lua_State *L, int arg, const char *key) {
  int t = option(L, arg, key);
  lt_tensor *x = t == LUA_TNIL ? NULL : lt_l_totensor(L, -1);
  if (t != LUA_TNIL && !x)
    luaL_error(L, SDPA ": option '%s' must be a lattice.Tensor, got %s", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return x;
}

/* mask: a tensor, or "causal" as MLX spells causal attention. */
static void opt_mask(lua_State *L, int arg, lt_attention_opts *o, int *causal_mask) {
  *causal_mask = 0;
  int t = option(L, arg, "mask");
  if (t == LUA_TSTRING) {
    if (strcmp(lua_tostring(L, -1), "causal") != 0)
      luaL_error(L, SDPA ": mask must be a lattice.Tensor or 'causal', got '%s'", lua_tostring(L, -1));
    *causal_mask = 1;
  } else if (t != LUA_TNIL && !(o->mask = lt_l_totensor(L, -1))) {
    luaL_error(L, SDPA ": mask must be a lattice.Tensor or 'causal', got %s", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
}

/* The options table at arg; nothing is allocated, so an error leaks nothing. */
static lt_attention_opts read_options(lua_State *L, int arg) {
  lt_attention_opts o = {0};
  int given, causal_mask;
  lt_l_checkoptions(L, arg, SDPA, option_names);
  if (option(L, arg, "scale") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, SDPA ": option 'scale' must be a number, got %s", luaL_typename(L, -1));
    o.has_scale = 1, o.scale = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  opt_mask(L, arg, &o, &causal_mask);
  int t = option(L, arg, "causal");
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    luaL_error(L, SDPA ": option 'causal' must be a boolean, got %s", luaL_typename(L, -1));
  int causal_false = t == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  o.causal = lua_toboolean(L, -1) || causal_mask;
  lua_pop(L, 1);
  o.window = opt_integer(L, arg, "window", 1, &given);
  o.chunk = opt_integer(L, arg, "chunk", 1, &given);
  o.q_offset = opt_integer(L, arg, "q_offset", LUA_MININTEGER, &o.has_q_offset);
  o.alibi = opt_tensor(L, arg, "alibi");
  if (causal_false && (causal_mask || o.window || o.chunk))
    luaL_error(L, SDPA ": causal = false contradicts %s, which %s causal",
               causal_mask ? "mask = 'causal'"
               : o.window  ? "window"
                           : "chunk",
               causal_mask ? "is" : "is always");
  return o;
}

/* lattice.scaled_dot_product_attention(q, k, v, opts) -> out */
static int l_sdpa(lua_State *L) {
  lt_l_checkmaxargs(L, 4, SDPA);
  lt_tensor *q = lt_l_checktensor(L, 1), *k = lt_l_checktensor(L, 2), *v = lt_l_checktensor(L, 3);
  lt_attention_opts o = read_options(L, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_status st = lt_attention(lt_l_ctx(L), &u->t, q, k, v, &o);
  lt_l_check_renamed(L, st, "attention", SDPA);
  return lt_l_result(L, st);
}

/* ---- hooks for the specs ---- */

static lt_isa check_isa(lua_State *L, int arg, const char *fname) {
  const char *name = luaL_checkstring(L, arg);
  for (int i = LT_ISA_SCALAR; i <= LT_ISA_AVX512; i++)
    if (strcmp(name, lt_isa_name((lt_isa)i)) == 0) {
      lt_isa best = lt_cpu_isa();
      return (lt_isa)i < best ? (lt_isa)i : best;
    }
  luaL_error(L, "%s: unknown ISA '%s' (expected scalar, avx2 or avx512)", fname, name);
  return LT_ISA_SCALAR;
}

static lt__attn_path check_path(lua_State *L, int arg) {
  static const char *const names[] = {"auto", "tiled", "decode", NULL};
  return (lt__attn_path)luaL_checkoption(L, arg, "auto", names);
}

/* lattice.core.attention_with_isa(q, k, v, opts, isa, path = "auto") -> out,
 * lse, the ISA used: the forward (untracked, in the compute dtype) with one
 * ISA's kernels ("scalar": the _ref), the tiles or the decode kernel forced. */
static int l_attention_with_isa(lua_State *L) {
  lt_tensor *q = lt_l_checktensor(L, 1), *k = lt_l_checktensor(L, 2), *v = lt_l_checktensor(L, 3);
  lt_attention_opts o = read_options(L, 4);
  lt_isa isa = check_isa(L, 5, "attention_with_isa");
  lt__attn_path path = check_path(L, 6);
  lt_ctx *ctx = lt_l_ctx(L);
  lt__attn_plan p;
  lt_l_newlist(L, 2);
  lt_tensor *ts[2] = {NULL, NULL};
  lt_status st = lt__attn_check(ctx, &p, q, k, v, &o);
  if (!st) st = lt__attn_forward(ctx, &ts[0], &ts[1], &p, q, k, v, o.mask, o.alibi, isa, path);
  lt_l_check_renamed(L, st, "attention", SDPA);
  lt_l_fill_list(L, lua_gettop(L), 2, ts);
  lua_geti(L, -1, 1);
  lua_geti(L, -2, 2);
  lua_pushstring(L, lt_isa_name(isa));
  return 3;
}

/* lattice.core.attention_grad_with_isa(q, k, v, g, opts, isa) -> dq, dk, dv,
 * the ISA used: the forward and then the backward with one ISA's kernels. */
static int l_attention_grad_with_isa(lua_State *L) {
  lt_tensor *q = lt_l_checktensor(L, 1), *k = lt_l_checktensor(L, 2), *v = lt_l_checktensor(L, 3);
  lt_tensor *g = lt_l_checktensor(L, 4);
  lt_attention_opts o = read_options(L, 5);
  lt_isa isa = check_isa(L, 6, "attention_grad_with_isa");
  lt_ctx *ctx = lt_l_ctx(L);
  lt__attn_plan p;
  lt_l_newlist(L, 3);
  lt_tensor *grads[3] = {NULL, NULL, NULL}, *y = NULL, *lse = NULL;
  lt_status st = lt__attn_check(ctx, &p, q, k, v, &o);
  if (!st) st = lt__attn_forward(ctx, &y, &lse, &p, q, k, v, o.mask, o.alibi, isa, LT__ATTN_TILED);
  if (!st) st = lt__attn_backward(ctx, grads, &p, q, k, v, o.mask, o.alibi, y, lse, g, isa);
  lt_tensor_release(y), lt_tensor_release(lse);
  lt_l_check_renamed(L, st, "attention", SDPA);
  lt_l_fill_list(L, lua_gettop(L), 3, grads);
  for (int i = 1; i <= 3; i++) lua_geti(L, -i, i);
  lua_pushstring(L, lt_isa_name(isa));
  return 4;
}

/* lattice.core.gemm_tile_with_isa(a, b, isa, {a_trans, c}) -> c, the ISA
 * used: c (m, n) [+]= a @ b with one ISA's tile product (float32 inputs,
 * n padded to the ISA's width here); a is (m, k), or (k, m) with a_trans. */
static int l_gemm_tile_with_isa(lua_State *L) {
  static const char *const allowed[] = {"a_trans", "c", NULL};
  lt_tensor *a = lt_l_checktensor(L, 1), *b = lt_l_checktensor(L, 2);
  lt_isa isa = check_isa(L, 3, "gemm_tile_with_isa");
  lt_l_checkoptions(L, 4, "gemm_tile_with_isa", allowed);
  int at = lt_l_optbooleanfield(L, 4, "a_trans", 0);
  lua_getfield(L, 4, "c");
  lt_tensor *c0 = lt_l_totensor(L, -1);
  int64_t m = a->shape[at], k = a->shape[1 - at], n = b->shape[1], w = lt__gemm_tile_width(isa);
  int64_t np = (n + w - 1) / w * w;
  if (a->ndim != 2 || b->ndim != 2 || b->shape[0] != k || a->dtype != LT_FLOAT32 || b->dtype != LT_FLOAT32 ||
      (c0 && (c0->ndim != 2 || c0->shape[0] != m || c0->shape[1] != n || c0->dtype != LT_FLOAT32)))
    return luaL_error(L, "gemm_tile_with_isa: float32 matrices a (m, k) or (k, m), b (k, n), c (m, n) expected");
  lt_ctx *ctx = lt_l_ctx(L);
  lt_l_tensor *u = lt_l_newtensor(L); /* before the buffers: nothing raises while they are held */
  size_t bb = (size_t)(k * np + 1) * sizeof(float), cb = (size_t)(m * np + 1) * sizeof(float);
  float *bp = lt_ctx_alloc(ctx, bb), *cp = lt_ctx_alloc(ctx, cb);
  if (!bp || !cp) {
    if (bp) lt_ctx_free(ctx, bp, bb);
    if (cp) lt_ctx_free(ctx, cp, cb);
    return luaL_error(L, "gemm_tile_with_isa: out of memory");
  }
  lt_tensor *ac = NULL, *bc = NULL, *cc = NULL, *out = NULL;
  lt_status st = lt_contiguous(ctx, &ac, a);
  if (!st) st = lt_contiguous(ctx, &bc, b);
  if (!st && c0) st = lt_contiguous(ctx, &cc, c0);
  if (!st) st = lt_tensor_new(ctx, &out, LT_FLOAT32, 2, (int64_t[]){m, n});
  if (!st) {
    memset(bp, 0, bb), memset(cp, 0, cb);
    for (int64_t i = 0; i < k; i++) memcpy(bp + i * np, (float *)lt_tensor_data(bc) + i * n, (size_t)n * sizeof(float));
    for (int64_t i = 0; cc && i < m; i++)
      memcpy(cp + i * np, (float *)lt_tensor_data(cc) + i * n, (size_t)n * sizeof(float));
    lt__gemm_tile_for(isa)(m, np, k, lt_tensor_data(ac), at ? m : k, at, bp, np, cp, np, c0 != NULL);
    for (int64_t i = 0; i < m; i++)
      memcpy((float *)lt_tensor_data(out) + i * n, cp + i * np, (size_t)n * sizeof(float));
    u->t = out;
  }
  lt_ctx_free(ctx, bp, bb), lt_ctx_free(ctx, cp, cb);
  lt_tensor_release(ac), lt_tensor_release(bc), lt_tensor_release(cc);
  lt_l_result(L, st);
  lua_pushstring(L, lt_isa_name(isa));
  return 2;
}

void lt_l_open_attention(lua_State *L) {
  static const luaL_Reg fns[] = {
      {SDPA, l_sdpa},
      {"attention_with_isa", l_attention_with_isa},
      {"attention_grad_with_isa", l_attention_grad_with_isa},
      {"gemm_tile_with_isa", l_gemm_tile_with_isa},
      {NULL, NULL},
  };
  lt_l_register(L, fns);
}
