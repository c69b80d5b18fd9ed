/* The helpers of binding.h. */
#include <stdint.h>
#include <string.h>
#include "binding.h"

lt_ctx *lt_l_ctx(lua_State *L) { return *(lt_ctx **)lua_touserdata(L, lua_upvalueindex(1)); }

lt_tensor *lt_l_totensor(lua_State *L, int arg) {
  lt_l_tensor *u = luaL_testudata(L, arg, LT_L_TENSOR);
  return u ? u->t : NULL;
}

lt_tensor *lt_l_checktensor(lua_State *L, int arg) {
  lt_l_tensor *u = luaL_testudata(L, arg, LT_L_TENSOR);
  if (!u) luaL_typeerror(L, arg, LT_L_TENSOR);
  if (!u->t) luaL_argerror(L, arg, "tensor is closed");
  return u->t;
}

void lt_l_check(lua_State *L, lt_status st) {
  if (st != LT_OK) luaL_error(L, "%s", lt_ctx_error(lt_l_ctx(L)));
}

void lt_l_report_alloc(lua_State *L, lt_ctx *ctx) {
  /* LUA_GCSTEP counts whole kilobytes, and would run even a stopped GC */
  if (!lua_gc(L, LUA_GCISRUNNING)) return;
  size_t debt = lt_ctx_take_alloc_debt(ctx, 1024);
  if (debt) lua_gc(L, LUA_GCSTEP, (int)(debt / 1024));
}

lt_l_tensor *lt_l_newtensor(lua_State *L) {
  lt_l_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->t = NULL;
  luaL_setmetatable(L, LT_L_TENSOR);
  return u;
}

void lt_l_newlist(lua_State *L, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lt_l_newtensor(L);
    lua_rawseti(L, -2, i + 1);
  }
}

void lt_l_fill_list(lua_State *L, int list, int n, lt_tensor **ts) {
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, list, i + 1);
    ((lt_l_tensor *)lua_touserdata(L, -1))->t = ts[i];
    lua_pop(L, 1);
  }
}

int lt_l_result(lua_State *L, lt_status st) {
  lt_l_check(L, st);
  lt_l_report_alloc(L, lt_l_ctx(L));
  return 1;
}

/* The dtype a Lua number at arg takes beside a tensor of dtype like. It
 * depends on the dtypes only, never on the value (as in NumPy 2 and MLX): a
 * float tensor's dtype; beside an integer tensor, a Lua integer takes its dtype
 * (booleans count in int32), its value wrapped into it, and a Lua float is
 * float32. */
static lt_dtype number_dtype(lua_State *L, int arg, const lt_tensor *like) {
  if (!like) return LT_FLOAT32;
  lt_dtype ld = lt_tensor_dtype(like);
  if (lt_dtype_info(ld)->is_float) return ld;
  if (!lua_isinteger(L, arg)) return LT_FLOAT32;
  return ld == LT_BOOL ? LT_INT32 : ld;
}

static int is_number(lua_State *L, int arg) { return lua_type(L, arg) == LUA_TNUMBER; }

/* A new reference: the tensor at arg, or the number there as a 0-d tensor.
 * The caller has checked that arg is one of the two. */
static lt_status operand(lua_State *L, int arg, const lt_tensor *like, lt_tensor **out) {
  if (!is_number(L, arg)) {
    *out = lt_tensor_retain(lt_l_totensor(L, arg));
    return LT_OK;
  }
  lt_dtype dt = number_dtype(L, arg, like);
  lt_status st = lt_tensor_full(lt_l_ctx(L), out, dt, 0, NULL, lua_tonumber(L, arg));
  if (!st && !lt_dtype_info(dt)->is_float) { /* exact, and wrapped like integer arithmetic */
    int64_t v = lua_tointeger(L, arg);
    lt_dtype_convert(lt_tensor_data(*out), dt, &v, LT_INT64, 1);
  }
  return st;
}

lt_tensor *lt_l_checkoperand(lua_State *L, int arg, const lt_tensor *like) {
  if (!is_number(L, arg)) lt_l_checktensor(L, arg);
  lt_tensor *t = NULL;
  lt_l_check(L, operand(L, arg, like, &t));
  return t;
}

void lt_l_checkpair(lua_State *L, int i, int j, lt_tensor **a, lt_tensor **b) {
  /* Types first, so that nothing exists yet if one of them raises. */
  if (!is_number(L, i)) lt_l_checktensor(L, i);
  if (!is_number(L, j)) lt_l_checktensor(L, j);
  int number_first = is_number(L, i);
  lt_status st = operand(L, number_first ? j : i, NULL, number_first ? b : a);
  if (!st) st = operand(L, number_first ? i : j, number_first ? *b : *a, number_first ? a : b);
  if (st) {
    lt_tensor_release(number_first ? *b : *a);
    lt_l_check(L, st);
  }
}

int lt_l_axis_from_lua(lua_Integer axis, int ndim) {
  if (axis == 0) return -1;
  if (axis < 0) axis += ndim + 1;
  return (axis < 1 || axis > ndim) ? -1 : (int)axis - 1;
}

int lt_l_checkaxis(lua_State *L, int arg, int ndim, const char *fname) {
  lua_Integer a = luaL_checkinteger(L, arg);
  int ax = lt_l_axis_from_lua(a, ndim);
  if (ax < 0) luaL_error(L, "%s: axis %d is out of range for %d dimensions", fname, (int)a, ndim);
  return ax;
}

int lt_l_optaxis(lua_State *L, int arg, int ndim, const char *fname, int def0) {
  return lua_isnoneornil(L, arg) ? def0 : lt_l_checkaxis(L, arg, ndim, fname);
}

int lt_l_checkaxes(lua_State *L, int arg, int ndim, int *axes, const char *fname) {
  if (lua_isnoneornil(L, arg)) return 0;
  if (!lua_istable(L, arg)) {
    axes[0] = lt_l_checkaxis(L, arg, ndim, fname);
    return 1;
  }
  int n = (int)luaL_len(L, arg);
  if (n > LT_MAX_DIMS) luaL_error(L, "%s: too many axes", fname);
  for (int i = 0; i < n; i++) {
    lua_geti(L, arg, i + 1);
    int isnum;
    lua_Integer a = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum) luaL_error(L, "%s: axes must be integers", fname);
    axes[i] = lt_l_axis_from_lua(a, ndim);
    if (axes[i] < 0) luaL_error(L, "%s: axis %d is out of range for %d dimensions", fname, (int)a, ndim);
    for (int j = 0; j < i; j++)
      if (axes[j] == axes[i]) luaL_error(L, "%s: axis %d is repeated", fname, (int)a);
  }
  return n;
}

lt_dtype lt_l_checkdtype(lua_State *L, int arg) {
  const char *name = luaL_checkstring(L, arg);
  int dt = lt_dtype_from_name(name);
  if (dt < 0) luaL_argerror(L, arg, lua_pushfstring(L, "unknown dtype '%s'", name));
  return (lt_dtype)dt;
}

lt_dtype lt_l_optdtype(lua_State *L, int arg, lt_dtype def) {
  return lua_isnoneornil(L, arg) ? def : lt_l_checkdtype(L, arg);
}

int lt_l_checkshape(lua_State *L, int arg, int64_t *shape, const char *fname) {
  if (lua_isinteger(L, arg)) { /* a lone number is a 1-D shape */
    shape[0] = lua_tointeger(L, arg);
    if (shape[0] < 0) luaL_error(L, "%s: shape has a negative dimension", fname);
    return 1;
  }
  luaL_checktype(L, arg, LUA_TTABLE);
  int n = (int)luaL_len(L, arg);
  if (n > LT_MAX_DIMS) luaL_error(L, "%s: shape has %d dimensions (at most %d)", fname, n, LT_MAX_DIMS);
  for (int i = 0; i < n; i++) {
    lua_geti(L, arg, i + 1);
    int isnum;
    lua_Integer d = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || d < 0) luaL_error(L, "%s: shape must hold non-negative integers", fname);
    shape[i] = d;
  }
  return n;
}

void lt_l_pushshape(lua_State *L, int ndim, const int64_t *shape) {
  lua_createtable(L, ndim, 0);
  for (int i = 0; i < ndim; i++) {
    lua_pushinteger(L, shape[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

void lt_l_checkoptions(lua_State *L, int arg, const char *fname, const char *const *allowed) {
  if (lua_isnoneornil(L, arg)) return;
  if (!lua_istable(L, arg)) luaL_error(L, "%s: options must be a table, got %s", fname, luaL_typename(L, arg));
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *k = allowed; *k && !ok; k++) ok = strcmp(*k, lua_tostring(L, -1)) == 0;
    if (!ok) luaL_error(L, "%s: unknown option '%s'", fname, luaL_tolstring(L, -1, NULL));
  }
}

/* Pushes field `key` of the options table at arg (nil when there is none). */
static int field(lua_State *L, int arg, const char *key) {
  if (lua_isnoneornil(L, arg)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, arg, key);
}

lua_Number lt_l_optnumberfield(lua_State *L, int arg, const char *key, lua_Number def) {
  int t = field(L, arg, key);
  if (t != LUA_TNIL && t != LUA_TNUMBER) luaL_error(L, "option '%s' must be a number", key);
  lua_Number v = t == LUA_TNIL ? def : lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

lua_Integer lt_l_optintegerfield(lua_State *L, int arg, const char *key, lua_Integer def) {
  int t = field(L, arg, key);
  if (t != LUA_TNIL && !lua_isinteger(L, -1)) luaL_error(L, "option '%s' must be an integer", key);
  lua_Integer v = t == LUA_TNIL ? def : lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

const char *lt_l_optstringfield(lua_State *L, int arg, const char *key, const char *def) {
  int t = field(L, arg, key);
  if (t != LUA_TNIL && t != LUA_TSTRING) luaL_error(L, "option '%s' must be a string", key);
  const char *v = t == LUA_TNIL ? def : lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the options table */
  return v;
}

int lt_l_optbooleanfield(lua_State *L, int arg, const char *key, int def) {
  int t = field(L, arg, key);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN) luaL_error(L, "option '%s' must be a boolean", key);
  int v = t == LUA_TNIL ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

void lt_l_pushctx(lua_State *L) { lua_getfield(L, LUA_REGISTRYINDEX, LT_L_CONTEXT); }

void lt_l_register(lua_State *L, const luaL_Reg *fns) {
  lt_l_pushctx(L);
  luaL_setfuncs(L, fns, 1);
}
