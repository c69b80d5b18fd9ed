/* The machinery every built-in module type shares (nn_module.h): metatables,
 * field access, checked assignment. */
#include <string.h>
#include "base.h"
#include "nn_module.h"
#include "sparse_binding.h"

#define METHODS_FIELD "methods"

const lt_l_module_type *lt_l_module_type_of(lua_State *L, int arg) {
  if (!lua_getmetatable(L, arg)) return NULL;
  lua_getfield(L, -1, "__module_type");
  const lt_l_module_type *t = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return t;
}

void *lt_l_module_check(lua_State *L, int arg, const lt_l_module_type *type) {
  char name[64];
  snprintf(name, sizeof name, "lattice.nn.%s", type->name);
  return luaL_checkudata(L, arg, name);
}

int lt_l_module_field(lua_State *L, int arg, const char *key) {
  lua_getiuservalue(L, arg, 1);
  lua_pushstring(L, key);
  int t = lua_rawget(L, -2);
  lua_remove(L, -2);
  return t;
}

lt_tensor *lt_l_module_tensor(lua_State *L, int arg, const char *key, int optional) {
  int t = lt_l_module_field(L, arg, key);
  lt_tensor *x = lt_l_totensor(L, -1);
  lua_pop(L, 1);
  if (x || (optional && t == LUA_TNIL)) return x;
  const lt_l_module_type *type = lt_l_module_type_of(L, arg);
  luaL_error(L, "%s: field '%s' is %s, not a tensor", type ? type->name : "module", key,
             t == LUA_TNIL ? "missing" : lua_typename(L, t));
  return NULL;
}

lt_tensor *lt_l_module_input(lua_State *L, const char *type, const char *what, int sparse) {
  if (sparse && lt_l_issparse(L, 2)) return lt_l_sparse_feats(L, 2);
  lt_tensor *x = lt_l_totensor(L, 2);
  if (!x)
    luaL_error(L, "%s: %s must be a lattice.Tensor%s, got %s", type, what, sparse ? " or a SparseTensor" : "",
               lt_l_type_name(L, 2));
  return x;
}

int lt_l_module_training(lua_State *L, int arg) {
  lt_l_module_field(L, arg, "training");
  int training = !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  lua_pop(L, 1);
  return training;
}

void lt_l_module_setfield(lua_State *L, int arg, const char *key) {
  lua_getiuservalue(L, arg, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, key);
  lua_pop(L, 1);
}

double lt_l_module_number(lua_State *L, int arg, const char *key, double lo, double hi, const char *type) {
  lua_getfield(L, arg, key);
  if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: %s must be a number", type, key);
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(v >= lo && v <= hi)) { /* lua_pushfstring knows no %g */
    char msg[200];
    snprintf(msg, sizeof msg, "%s: %s must be in [%g, %g], got %g", type, key, lo, hi, v);
    luaL_error(L, "%s", msg);
  }
  return v;
}

/* ---- metamethods ---- */

/* m.key: the type's methods, then the fields. */
static int module_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int is_param(const lt_l_module_type *type, const char *key) {
  for (const char *const *p = type->params; p && *p; p++)
    if (strcmp(*p, key) == 0) return 1;
  return 0;
}

/* A parameter takes a tensor of its current shape (any float dtype; an
 * integer parameter, a quantized weight's codes, its own dtype); the
 * training flag a boolean; the protocol's private fields ("_...") anything.
 * Everything else is read-only. */
static int module_newindex(lua_State *L) {
  const lt_l_module_type *type = lt_l_module_type_of(L, 1);
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (key && key[0] == '_') {
    lua_settop(L, 3);
    lt_l_module_setfield(L, 1, key);
    return 0;
  }
  if (key && strcmp(key, "training") == 0) {
    if (!lua_isboolean(L, 3))
      return luaL_error(L, "%s: training must be a boolean, got %s", type->name, luaL_typename(L, 3));
  } else if (key && is_param(type, key)) {
    lt_tensor *t = lt_l_totensor(L, 3);
    if (!t) return luaL_error(L, "%s: %s must be a lattice.Tensor, got %s", type->name, key, luaL_typename(L, 3));
    lt_l_module_field(L, 1, key);
    lt_tensor *old = lt_l_totensor(L, -1);
    lua_pop(L, 1);
    lt_dtype dt = lt_tensor_dtype(t);
    if (old && !lt_dtype_info(lt_tensor_dtype(old))->is_float) { /* a quantized weight's codes */
      if (dt != lt_tensor_dtype(old))
        return luaL_error(L, "%s: %s must be a %s tensor, got %s", type->name, key,
                          lt_dtype_info(lt_tensor_dtype(old))->name, lt_dtype_info(dt)->name);
    } else if (!lt_dtype_info(dt)->is_float) {
      return luaL_error(L, "%s: %s must be a float tensor, got %s", type->name, key, lt_dtype_info(dt)->name);
    }
    if (old && (lt_tensor_ndim(old) != lt_tensor_ndim(t) ||
                memcmp(lt_tensor_shape(old), lt_tensor_shape(t), (size_t)lt_tensor_ndim(t) * sizeof(int64_t)))) {
      char a[LT_SHAPE_STR_MAX], b[LT_SHAPE_STR_MAX];
      return luaL_error(L, "%s: %s has shape %s, got a tensor of shape %s", type->name, key,
                        lt__shape_str(a, sizeof a, lt_tensor_ndim(old), lt_tensor_shape(old)),
                        lt__shape_str(b, sizeof b, lt_tensor_ndim(t), lt_tensor_shape(t)));
    }
  } else {
    return luaL_error(L, "%s: field '%s' cannot be set", type->name, luaL_tolstring(L, 2, NULL));
  }
  lua_settop(L, 3);
  lt_l_module_setfield(L, 1, key);
  return 0;
}

/* ---- registration ---- */

/* lattice.core.nn.fields(m): the fields table of a built-in module. */
static int l_fields(lua_State *L) {
  if (!lt_l_module_type_of(L, 1)) return luaL_typeerror(L, 1, "built-in module");
  lua_getiuservalue(L, 1, 1);
  return 1;
}

void lt_l_module_register(lua_State *L, const lt_l_module_type *type) {
  char name[64];
  snprintf(name, sizeof name, "lattice.nn.%s", type->name);
  /* methods: forward, the type's own, and what the Lua protocol adds later */
  lua_getfield(L, -1, METHODS_FIELD);
  lua_newtable(L);
  lt_l_pushctx(L);
  lua_pushcclosure(L, type->forward, 1);
  lua_setfield(L, -2, "forward");
  if (type->methods) lt_l_register(L, type->methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, type->name);
  luaL_newmetatable(L, name);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, module_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, module_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushlightuserdata(L, (void *)type);
  lua_setfield(L, -2, "__module_type");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "__lattice_module");
  lua_pushstring(L, type->name);
  lua_setfield(L, -2, "__type_name");
  /* lattice.core.nn.metatables[name]: lua/lattice/nn adds __call and __tostring */
  lua_getfield(L, -4, "metatables");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, type->name);
  lua_pop(L, 4);
}

void *lt_l_module_new(lua_State *L, const lt_l_module_type *type, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  char name[64];
  snprintf(name, sizeof name, "lattice.nn.%s", type->name);
  void *p = lua_newuserdatauv(L, type->size ? type->size : 1, 1);
  memset(p, 0, type->size ? type->size : 1);
  luaL_setmetatable(L, name);
  lua_pushvalue(L, arg);
  lua_setiuservalue(L, -2, 1);
  return p;
}

void lt_l_module_open(lua_State *L) {
  lua_newtable(L);
  lua_setfield(L, -2, METHODS_FIELD);
  lua_newtable(L);
  lua_setfield(L, -2, "metatables");
  lua_pushcfunction(L, l_fields);
  lua_setfield(L, -2, "fields");
}
