/* Binding for indexing and losses: take, take_along_axis (alias gather),
 * embedding, cross_entropy, mse_loss.
 *
 * Indices, ids and class targets are always tensors of 0-based integers, e.g.
 * lattice.array({0, 2}, "int64"): a Lua table of numbers is refused, because
 * numbers a Lua program counts with are 1-based and values inside tensors are
 * 0-based (DESIGN.md "Names"), and a table would leave it unclear which.
 * Axes are Lua axes (1-based, negative from the end).
 *
 * gather keeps lattice's argument order (x, indices, axis), not torch.gather's
 * (input, dim, index): it is take_along_axis under PyTorch's name. */
#include <string.h>
#include "binding.h"

/* The index tensor at arg; a clear message for a Lua table. */
static lt_tensor *check_indices(lua_State *L, int arg, const char *fname, const char *what) {
  if (lua_type(L, arg) == LUA_TTABLE)
    luaL_error(L,
               "%s: %s must be a tensor of 0-based integers (e.g. lattice.array({0, 2}, \"int64\")), "
               "not a Lua table",
               fname, what);
  return lt_l_checktensor(L, arg);
}

/* lattice.take(x, indices [, axis]): axis nil takes from the flattened x. */
static int l_take(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "take");
  lt_tensor *x = lt_l_checktensor(L, 1), *idx = check_indices(L, 2, "take", "indices");
  int axis = lua_isnoneornil(L, 3) ? LT_ALL_AXES : lt_l_checkaxis(L, 3, lt_tensor_ndim(x), "take");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_take(lt_l_ctx(L), &u->t, x, idx, axis));
}

static int along(lua_State *L, const char *fname) {
  lt_l_checkmaxargs(L, 3, fname);
  lt_tensor *x = lt_l_checktensor(L, 1), *idx = check_indices(L, 2, fname, "indices");
  int axis = lua_isnoneornil(L, 3) ? LT_ALL_AXES : lt_l_checkaxis(L, 3, lt_tensor_ndim(x), fname);
  lt_l_tensor *u = lt_l_newtensor(L);
  /* The core names take_along_axis; a gather caller should read its own name. */
  lt_l_check_renamed(L, lt_take_along_axis(lt_l_ctx(L), &u->t, x, idx, axis), "take_along_axis", fname);
  return lt_l_result(L, LT_OK);
}

/* lattice.take_along_axis(x, indices [, axis]) and lattice.gather(x, indices [, axis]). */
static int l_take_along_axis(lua_State *L) { return along(L, "take_along_axis"); }
static int l_gather(lua_State *L) { return along(L, "gather"); }

/* lattice.embedding(weight, ids) */
static int l_embedding(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "embedding");
  lt_tensor *w = lt_l_checktensor(L, 1), *ids = check_indices(L, 2, "embedding", "ids");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_embedding(lt_l_ctx(L), &u->t, w, ids));
}

static lt_reduction check_reduction(lua_State *L, int arg, const char *fname) {
  const char *r = lt_l_optstringfield(L, arg, "reduction", "mean");
  if (strcmp(r, "none") == 0) return LT_REDUCTION_NONE;
  if (strcmp(r, "mean") == 0) return LT_REDUCTION_MEAN;
  if (strcmp(r, "sum") == 0) return LT_REDUCTION_SUM;
  luaL_error(L, "%s: reduction must be 'none', 'mean' or 'sum', got '%s'", fname, r);
  return LT_REDUCTION_MEAN;
}

/* lattice.cross_entropy(logits, targets [, {ignore_index = -100, label_smoothing = 0, reduction = "mean"}]) */
static int l_cross_entropy(lua_State *L) {
  static const char *const allowed[] = {"ignore_index", "label_smoothing", "reduction", NULL};
  lt_l_checkmaxargs(L, 3, "cross_entropy");
  lt_tensor *z = lt_l_checktensor(L, 1), *t = check_indices(L, 2, "cross_entropy", "targets");
  lt_l_checkoptions(L, 3, "cross_entropy", allowed);
  lua_Integer ignore = lt_l_optintegerfield(L, 3, "ignore_index", -100);
  lua_Number eps = lt_l_optnumberfield(L, 3, "label_smoothing", 0);
  lt_reduction red = check_reduction(L, 3, "cross_entropy");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_cross_entropy(lt_l_ctx(L), &u->t, z, t, (int64_t)ignore, eps, red));
}

/* lattice.mse_loss(pred, target [, {reduction = "mean"}]) */
static int l_mse_loss(lua_State *L) {
  static const char *const allowed[] = {"reduction", NULL};
  lt_l_checkmaxargs(L, 3, "mse_loss");
  lt_tensor *p = lt_l_checktensor(L, 1), *t = lt_l_checktensor(L, 2);
  lt_l_checkoptions(L, 3, "mse_loss", allowed);
  lt_reduction red = check_reduction(L, 3, "mse_loss");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_mse_loss(lt_l_ctx(L), &u->t, p, t, red));
}

void lt_l_open_index(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"take", l_take},
      {"take_along_axis", l_take_along_axis},
      {"gather", l_gather},
      {"embedding", l_embedding},
      {"cross_entropy", l_cross_entropy},
      {"mse_loss", l_mse_loss},
      {NULL, NULL},
  };
  lt_l_register(L, fns);
}
