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

void lt_l_check_renamed(lua_State *L, lt_status st, const char *core_name, const char *fname) {
  if (st == LT_OK) return;
  const char *msg = lt_ctx_error(lt_l_ctx(L));
  size_t n = strlen(core_name);
  if (strncmp(msg, core_name, n) == 0 && msg[n] == ':') luaL_error(L, "%s%s", fname, msg + n);
  luaL_error(L, "%s", msg);
}

int lt_l_created(lua_State *L, lt_status st, const char *fname) {
  lt_l_check_renamed(L, st, "tensor", fname);
  return lt_l_result(L, LT_OK);
}

void lt_l_checkmaxargs(lua_State *L, int max, const char *fname) {
  int n = lua_gettop(L);
  while (n > max && lua_isnil(L, n)) n--; /* a trailing nil is an absent argument */
  if (n > max) luaL_error(L, "%s: too many arguments (expected at most %d, got %d)", fname, max, n);
}

/* How a table key reads in a message: 'x' for strings, else as tostring. */
static const char *key_name(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) return lua_pushfstring(L, "'%s'", lua_tostring(L, idx));
  return luaL_tolstring(L, idx, NULL);
}

lua_Integer lt_l_seqlen(lua_State *L, int idx, const char *fname, const char *what) {
  idx = lua_absindex(L, idx);
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    if (k < 1) luaL_error(L, "%s: %s is not a sequence (key %s)", fname, what, key_name(L, -1));
    count++;
    if (k > max) max = k;
  }
  if (max == count) return count;
  /* a hole below max: the first one is at most count + 1, so this loop is short */
  lua_Integer hole = 1;
  while (lua_rawgeti(L, idx, hole) != LUA_TNIL) {
    lua_pop(L, 1);
    hole++;
  }
  return luaL_error(L, "%s: %s has a hole at index %I", fname, what, hole);
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
  if (ax < 0) luaL_error(L, "%s: axis %I is out of range for %d dimensions", fname, a, ndim);
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
  lua_Integer n = lt_l_seqlen(L, arg, fname, "the axes table");
  if (n > LT_MAX_DIMS) luaL_error(L, "%s: too many axes", fname);
  for (int i = 0; i < n; i++) {
    lua_geti(L, arg, i + 1);
    int isnum;
    lua_Integer a = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum) luaL_error(L, "%s: axes must be integers", fname);
    axes[i] = lt_l_axis_from_lua(a, ndim);
    if (axes[i] < 0) luaL_error(L, "%s: axis %I is out of range for %d dimensions", fname, a, ndim);
    for (int j = 0; j < i; j++)
      if (axes[j] == axes[i]) luaL_error(L, "%s: axis %I is repeated", fname, a);
  }
  return (int)n;
}

/* Pushes "unknown dtype 'x'; known dtypes: float32, ..., bool", the floats
 * first, from the traits table so that a new dtype is listed at once. */
static const char *push_unknown_dtype(lua_State *L, const char *name) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "unknown dtype '%s'; known dtypes: ", name);
  luaL_addvalue(&b);
  int first = 1;
  for (int floats = 1; floats >= 0; floats--)
    for (int i = 0; i < LT_DTYPE_COUNT; i++) {
      const lt_dtype_traits *tr = lt_dtype_info((lt_dtype)i);
      if (tr->is_float != floats) continue;
      if (!first) luaL_addstring(&b, ", ");
      luaL_addstring(&b, tr->name);
      first = 0;
    }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

lt_dtype lt_l_checkdtype(lua_State *L, int arg) {
  const char *name = luaL_checkstring(L, arg);
  int dt = lt_dtype_from_name(name);
  if (dt < 0) luaL_argerror(L, arg, push_unknown_dtype(L, name));
  return (lt_dtype)dt;
}

lt_dtype lt_l_dtype_named(lua_State *L, const char *name, const char *fname) {
  int dt = lt_dtype_from_name(name);
  if (dt < 0) luaL_error(L, "%s: %s", fname, push_unknown_dtype(L, name));
  return (lt_dtype)dt;
}

lt_dtype lt_l_optdtype(lua_State *L, int arg, lt_dtype def) {
  return lua_isnoneornil(L, arg) ? def : lt_l_checkdtype(L, arg);
}

const char *lt_l_valuename(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TNUMBER ? luaL_tolstring(L, idx, NULL) : luaL_typename(L, idx);
}

/* The integer at idx, at least `min`, as element i of a shape; else an error
 * naming the element: "reshape: shape[2] must be an integer, got 3.5". */
static int64_t shape_element(lua_State *L, int idx, int i, lua_Integer min, const char *fname) {
  int isnum;
  lua_Integer d = lua_tointegerx(L, idx, &isnum);
  if (isnum && d >= min) return d;
  return luaL_error(L, "%s: shape[%d] must be %s, got %s", fname, i, min < 0 ? "an integer" : "a non-negative integer",
                    lt_l_valuename(L, idx));
}

int lt_l_readshape(lua_State *L, int arg, int64_t *shape, lua_Integer min, const char *fname) {
  lua_Integer n = lt_l_seqlen(L, arg, fname, "the shape");
  if (n > LT_MAX_DIMS) luaL_error(L, "%s: shape has %I dimensions (at most %d)", fname, n, LT_MAX_DIMS);
  for (int i = 0; i < n; i++) {
    lua_geti(L, arg, i + 1);
    shape[i] = shape_element(L, -1, i + 1, min, fname);
    lua_pop(L, 1);
  }
  return (int)n;
}

int lt_l_checkshape(lua_State *L, int arg, int64_t *shape, const char *fname) {
  if (lua_isinteger(L, arg)) { /* a lone number is a 1-D shape */
    shape[0] = shape_element(L, arg, 1, 0, fname);
    return 1;
  }
  luaL_checktype(L, arg, LUA_TTABLE);
  return lt_l_readshape(L, arg, shape, 0, fname);
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
