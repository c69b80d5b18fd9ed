/* The sparse types of the binding:
 *   lattice.CoordinateMapKey  a coordinate map's identity: keys are == exactly
 *                             when they name the same map (rows, order, stride)
 *   lattice.SparseTensor      a key, features (N, C) and optional batch counts
 * A SparseTensor is a userdata whose uservalues are its key, its feature
 * tensor and its batch counts (a Lua list or nil); the features are an
 * ordinary tensor, so autograd sees everything a sparse op does to them. */
#include <string.h>
#include "base.h"
#include "sparse_binding.h"

/* ---- CoordinateMapKey ---- */

typedef struct key_box {
  lt_coords *c;
} key_box;

lt_coords *lt_l_tokey(lua_State *L, int arg) {
  key_box *k = luaL_testudata(L, arg, LT_L_KEY);
  return k ? k->c : NULL;
}

void lt_l_pushkey(lua_State *L, lt_coords *c) {
  key_box *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->c = c;
  luaL_setmetatable(L, LT_L_KEY);
}

static int key_gc(lua_State *L) {
  key_box *k = luaL_checkudata(L, 1, LT_L_KEY);
  lt_coords_release(k->c);
  k->c = NULL;
  return 0;
}

/* Equal content is equal identity: the manager interns maps, but a map it
 * has forgotten (cleared, or pushed out by newer ones) may be built again. */
static int key_eq(lua_State *L) {
  lt_coords *a = lt_l_tokey(L, 1), *b = lt_l_tokey(L, 2);
  lua_pushboolean(L, a && b && lt_coords_equal(a, b));
  return 1;
}

static int key_tostring(lua_State *L) {
  lt_coords *c = lt_l_tokey(L, 1);
  const int *s = lt_coords_stride(c);
  lua_pushfstring(L, "CoordinateMapKey(%I, stride={%d, %d, %d}, rows=%I)", (lua_Integer)lt_coords_id(c), s[0], s[1],
                  s[2], (lua_Integer)lt_coords_count(c));
  return 1;
}

/* ---- SparseTensor ---- */

enum { UV_KEY = 1, UV_FEATS, UV_COUNTS, UV_COUNT = 3 };

int lt_l_issparse(lua_State *L, int arg) { return luaL_testudata(L, arg, LT_L_SPARSE) != NULL; }

void lt_l_checksparse(lua_State *L, int arg) {
  if (!lt_l_issparse(L, arg)) luaL_typeerror(L, arg, LT_L_SPARSE);
}

lt_coords *lt_l_sparse_coords(lua_State *L, int arg) {
  lua_getiuservalue(L, arg, UV_KEY);
  lt_coords *c = lt_l_tokey(L, -1);
  lua_pop(L, 1);
  return c;
}

void lt_l_push_sparse_counts(lua_State *L, int arg) { lua_getiuservalue(L, arg, UV_COUNTS); }

lt_tensor *lt_l_sparse_feats(lua_State *L, int arg) {
  lua_getiuservalue(L, arg, UV_FEATS);
  lt_tensor *t = lt_l_totensor(L, -1);
  lua_pop(L, 1);
  if (!t) luaL_error(L, "SparseTensor: its features are closed");
  return t;
}

const char *lt_l_type_name(lua_State *L, int i) {
  int t = luaL_getmetafield(L, i, "__name");
  const char *name = t == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, i);
  if (t != LUA_TNIL) lua_pop(L, 1); /* a __name string stays alive in the metatable */
  return name;
}

lua_Integer lt_l_sparse_batches(lua_State *L, int arg) {
  lua_getiuservalue(L, arg, UV_COUNTS);
  lua_Integer n = lua_isnil(L, -1) ? -1 : (lua_Integer)lua_rawlen(L, -1);
  lua_pop(L, 1);
  return n;
}

/* The rows of each batch 0 .. batches-1 of the map: a Lua list, sized by
 * the caller (never by the largest batch index, which a row may set to 2^31-1).
 * Returns -1, or the first row (0-based) whose batch is not below `batches`.
 * Counted in C, in a scratch userdata the GC frees whatever happens. */
int64_t lt_l_push_batch_counts(lua_State *L, const lt_coords *c, lua_Integer batches) {
  const int32_t *r = lt_tensor_data(lt_coords_tensor(c));
  int64_t n = lt_coords_count(c), outside = -1;
  lua_Integer *count = lua_newuserdatauv(L, (size_t)(batches > 0 ? batches : 1) * sizeof *count, 0);
  for (lua_Integer b = 0; b < batches; b++) count[b] = 0;
  for (int64_t i = 0; i < n; i++) {
    if (r[i * 4] < batches)
      count[r[i * 4]]++;
    else if (outside < 0)
      outside = i;
  }
  lua_createtable(L, batches < INT32_MAX ? (int)batches : 0, 0);
  for (lua_Integer b = 0; b < batches; b++) {
    lua_pushinteger(L, count[b]);
    lua_rawseti(L, -2, b + 1);
  }
  lua_remove(L, -2);
  return outside;
}

int64_t lt_l_push_counts_for(lua_State *L, const lt_coords *c, lua_Integer batches) {
  if (batches >= 0) return lt_l_push_batch_counts(L, c, batches);
  lua_pushnil(L);
  return -1;
}

void lt_l_pushsparse(lua_State *L, int key, int feats, int counts) {
  key = lua_absindex(L, key), feats = lua_absindex(L, feats), counts = lua_absindex(L, counts);
  lua_newuserdatauv(L, 1, UV_COUNT);
  luaL_setmetatable(L, LT_L_SPARSE);
  lua_pushvalue(L, key);
  lua_setiuservalue(L, -2, UV_KEY);
  lua_pushvalue(L, feats);
  lua_setiuservalue(L, -2, UV_FEATS);
  lua_pushvalue(L, counts);
  lua_setiuservalue(L, -2, UV_COUNTS);
}

/* t[i] (or the value at index t when i is 0) as an integer: a number with an
 * integral value; a numeric string is not one. */
static int to_integer(lua_State *L, int t, lua_Integer i, lua_Integer *v) {
  if (i) lua_geti(L, t, i);
  int isint = lua_type(L, i ? -1 : t) == LUA_TNUMBER;
  *v = isint ? lua_tointegerx(L, i ? -1 : t, &isint) : 0;
  if (i) lua_pop(L, 1);
  return isint;
}

/* The batch counts at arg (a list of non-negative integers) checked against
 * the rows: they must sum to N and give each batch its rows. */
static void check_counts(lua_State *L, int arg, const lt_coords *c) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = (lua_Integer)luaL_len(L, arg), total = 0;
  for (lua_Integer b = 1; b <= n; b++) {
    lua_Integer v;
    if (!to_integer(L, arg, b, &v) || v < 0)
      luaL_error(L, "SparseTensor: batch_counts[%I] must be a non-negative integer", b);
    total = (lua_Integer)((lua_Unsigned)total + (lua_Unsigned)v); /* wraps as Lua's own sums do; rows checked below */
  }
  if (total != lt_coords_count(c))
    luaL_error(L, "SparseTensor: batch_counts sum to %I, not to the row count %I", total,
               (lua_Integer)lt_coords_count(c));
  int64_t outside = lt_l_push_batch_counts(L, c, n);
  if (outside >= 0)
    luaL_error(L, "SparseTensor: row %I has batch index %d, batch_counts has %I batches", (lua_Integer)outside + 1,
               ((const int32_t *)lt_tensor_data(lt_coords_tensor(c)))[outside * 4], n);
  for (lua_Integer b = 1; b <= n; b++) {
    lua_geti(L, arg, b);
    lua_geti(L, -2, b);
    lua_Integer want = lua_tointeger(L, -2), got = lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (want != got)
      luaL_error(L, "SparseTensor: batch_counts[%I] is %I, the batch column counts %I for batch %I", b, want, got,
                 b - 1);
  }
  lua_pop(L, 1);
}

/* Strides from a number or a list of 3 at arg (default 1). */
void lt_l_checkstride(lua_State *L, int arg, int *stride, const char *fname, const char *what) {
  for (int a = 0; a < 3; a++) stride[a] = 1;
  if (lua_isnoneornil(L, arg)) return;
  if (lua_istable(L, arg)) {
    if (luaL_len(L, arg) != 3) luaL_error(L, "%s: %s must be a number or a list of 3", fname, what);
    for (int a = 0; a < 3; a++) {
      lua_Integer v;
      if (!to_integer(L, arg, a + 1, &v) || v < 1 || v > INT32_MAX)
        luaL_error(L, "%s: %s must hold positive integers", fname, what);
      stride[a] = (int)v;
    }
    return;
  }
  lua_Integer v;
  if (!to_integer(L, arg, 0, &v) || v < 1 || v > INT32_MAX)
    luaL_error(L, "%s: %s must be a positive integer", fname, what);
  for (int a = 0; a < 3; a++) stride[a] = (int)v;
}

/* lattice.core.SparseTensor(coords, feats, batch_counts or nil, stride or nil) */
static int l_sparse_new(lua_State *L) {
  lua_settop(L, 4);
  lt_tensor *coords = lt_l_checktensor(L, 1), *feats = lt_l_checktensor(L, 2);
  int stride[3];
  lt_l_checkstride(L, 4, stride, "SparseTensor", "stride");
  if (!lt_dtype_info(lt_tensor_dtype(feats))->is_float)
    return luaL_error(L, "SparseTensor: feats must be a float tensor, got %s",
                      lt_dtype_info(lt_tensor_dtype(feats))->name);
  char shape[LT_SHAPE_STR_MAX];
  if (lt_tensor_ndim(feats) != 2)
    return luaL_error(L, "SparseTensor: feats must have shape {N,C}, got %s",
                      lt__shape_str(shape, sizeof shape, lt_tensor_ndim(feats), lt_tensor_shape(feats)));
  lt_coords **box = &((key_box *)lua_newuserdatauv(L, sizeof(key_box), 0))->c;
  *box = NULL;
  luaL_setmetatable(L, LT_L_KEY); /* first: an error below leaks nothing */
  lt_l_check(L, lt_coords_new(lt_l_ctx(L), box, coords, stride, "SparseTensor"));
  if (lt_tensor_shape(feats)[0] != lt_coords_count(*box))
    return luaL_error(L, "SparseTensor: feats have %I rows, coords have %I", (lua_Integer)lt_tensor_shape(feats)[0],
                      (lua_Integer)lt_coords_count(*box));
  if (!lua_isnil(L, 3)) check_counts(L, 3, *box);
  lt_l_pushsparse(L, 5, 2, 3);
  return 1;
}

static void push_counts_copy(lua_State *L, int arg) {
  lua_getiuservalue(L, arg, UV_COUNTS);
  if (lua_isnil(L, -1)) return;
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
  for (lua_Integer b = 1; b <= n; b++) {
    lua_rawgeti(L, -2, b);
    lua_rawseti(L, -2, b);
  }
  lua_remove(L, -2);
}

static int sparse_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1; /* methods */
  const char *k = luaL_checkstring(L, 2);
  lt_coords *c = lt_l_sparse_coords(L, 1);
  if (!strcmp(k, "feats")) {
    lua_getiuservalue(L, 1, UV_FEATS);
  } else if (!strcmp(k, "coordinate_map_key")) {
    lua_getiuservalue(L, 1, UV_KEY);
  } else if (!strcmp(k, "batch_counts")) {
    push_counts_copy(L, 1); /* a copy: the tensor's own list must not change under it */
  } else if (!strcmp(k, "coords")) {
    lt_l_newtensor(L)->t = lt_tensor_retain(lt_coords_tensor(c));
  } else if (!strcmp(k, "stride")) {
    const int *s = lt_coords_stride(c);
    lua_createtable(L, 3, 0);
    for (int a = 0; a < 3; a++) lua_pushinteger(L, s[a]), lua_rawseti(L, -2, a + 1);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int sparse_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lt_coords_count(lt_l_sparse_coords(L, 1)));
  return 1;
}

static int sparse_newindex(lua_State *L) {
  return luaL_error(L, "SparseTensor: field '%s' cannot be set (use with_feats for new features)",
                    luaL_tolstring(L, 2, NULL));
}

/* x:with_feats(f): the same coordinates (identity kept), features f. */
static int l_with_feats(lua_State *L) {
  lt_l_checksparse(L, 1);
  lt_tensor *f = lt_l_checktensor(L, 2);
  lt_coords *c = lt_l_sparse_coords(L, 1);
  char shape[LT_SHAPE_STR_MAX];
  if (lt_tensor_ndim(f) != 2 || lt_tensor_shape(f)[0] != lt_coords_count(c))
    return luaL_error(L, "with_feats: features must have shape {%I,C}, got %s", (lua_Integer)lt_coords_count(c),
                      lt__shape_str(shape, sizeof shape, lt_tensor_ndim(f), lt_tensor_shape(f)));
  if (!lt_dtype_info(lt_tensor_dtype(f))->is_float)
    return luaL_error(L, "with_feats: features must be a float tensor, got %s",
                      lt_dtype_info(lt_tensor_dtype(f))->name);
  lt_l_push_with_feats(L, 1, 2);
  return 1;
}

void lt_l_push_with_feats(lua_State *L, int like, int feats) {
  like = lua_absindex(L, like), feats = lua_absindex(L, feats);
  lua_getiuservalue(L, like, UV_KEY);
  lua_getiuservalue(L, like, UV_COUNTS);
  lt_l_pushsparse(L, -2, feats, -1);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static const luaL_Reg sparse_methods[] = {{"with_feats", l_with_feats}, {NULL, NULL}};

void lt_l_open_sparse(lua_State *L) {
  luaL_newmetatable(L, LT_L_KEY);
  static const luaL_Reg key_meta[] = {{"__gc", key_gc}, {"__eq", key_eq}, {"__tostring", key_tostring}, {NULL, NULL}};
  luaL_setfuncs(L, key_meta, 0);
  lua_pop(L, 1);
  /* methods: shared with Lua as lattice.core.SparseTensor_methods (astype, tostring are added there) */
  lua_newtable(L);
  lt_l_register(L, sparse_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "SparseTensor_methods");
  luaL_newmetatable(L, LT_L_SPARSE);
  lt_l_pushctx(L);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, sparse_index, 2);
  lua_setfield(L, -2, "__index");
  static const luaL_Reg meta[] = {{"__len", sparse_len}, {"__newindex", sparse_newindex}, {NULL, NULL}};
  luaL_setfuncs(L, meta, 0);
  lua_pop(L, 2);
  static const luaL_Reg fns[] = {{"SparseTensor", l_sparse_new}, {NULL, NULL}};
  lt_l_register(L, fns);
}

void lt_l_sparse_table(lua_State *L) {
  if (lua_getfield(L, -1, "sparse") == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "sparse");
}
