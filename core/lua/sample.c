/* The binding of the token choosers (lattice/generate.h) behind lattice.sample
 * and lattice.topk: sample_logits and topk_indices, internal names that the
 * Lua functions in front of them call. */
#include "binding.h"

/* sample_logits(logits[, {repetition_penalty = 1, temperature = 1, top_k = 0,
 * top_p = 1, history}]) -> int64 token ids, one per row. */
static int l_sample_logits(lua_State *L) {
  static const char *const allowed[] = {"repetition_penalty", "temperature", "top_k", "top_p", "history", NULL};
  lt_l_checkmaxargs(L, 2, "sample");
  lt_tensor *logits = lt_l_checktensor(L, 1);
  lt_l_checkoptions(L, 2, "sample", allowed);
  lt_sample_opts o = {
      .repetition_penalty = lt_l_optnumberfield(L, 2, "repetition_penalty", 1.0),
      .temperature = lt_l_optnumberfield(L, 2, "temperature", 1.0),
      .top_k = lt_l_optintegerfield(L, 2, "top_k", 0),
      .top_p = lt_l_optnumberfield(L, 2, "top_p", 1.0),
  };
  if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "history") != LUA_TNIL) {
    o.history = lt_l_totensor(L, -1);
    if (!o.history) return luaL_error(L, "sample: history must be a tensor, got %s", luaL_typename(L, -1));
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_sample(lt_l_ctx(L), &u->t, logits, &o));
}

/* topk_indices(x, k) -> int64 positions of the k largest of each last-axis row. */
static int l_topk_indices(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "topk");
  lt_tensor *x = lt_l_checktensor(L, 1);
  lua_Integer k = luaL_checkinteger(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_topk_indices(lt_l_ctx(L), &u->t, x, k));
}

void lt_l_open_sample(lua_State *L) {
  static const luaL_Reg fns[] = {{"sample_logits", l_sample_logits}, {"topk_indices", l_topk_indices}, {NULL, NULL}};
  lt_l_register(L, fns);
}
