/* The lattice.Tensor type: creation from Lua values, read-back, properties,
 * layout methods, and the release shared by close(), __close and __gc. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "binding.h"

/* ---- release ---- */

static int tensor_close(lua_State *L) {
  lt_l_tensor *u = luaL_checkudata(L, 1, LT_L_TENSOR);
  lt_tensor_release(u->t); /* idempotent: NULL after the first call */
  u->t = NULL;
  return 0;
}

/* ---- creation from nested tables ---- */

/* The length of the nested table at idx (depth d from 1), which must be a
 * sequence: a table with holes or other keys is no array. */
static int64_t nested_len(lua_State *L, int idx, int d) {
  char what[48];
  snprintf(what, sizeof what, "the table at depth %d", d);
  return lt_l_seqlen(L, idx, "array", what);
}

/* Walks the first elements of nested tables to find the shape. */
static int infer_shape(lua_State *L, int idx, int64_t *shape) {
  int nd = 0;
  lua_pushvalue(L, idx);
  while (lua_istable(L, -1)) {
    if (nd == LT_MAX_DIMS) luaL_error(L, "array: more than %d levels of nesting", LT_MAX_DIMS);
    shape[nd] = nested_len(L, -1, nd + 1);
    nd++;
    if (shape[nd - 1] == 0) break;
    lua_geti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  return nd;
}

/* Reads the nested table at idx (depth d) into `out` as doubles, checking raggedness. */
/* Values as doubles, and as integers too where Lua holds them so (int64 stays exact). */
typedef struct values {
  double *num;
  lua_Integer *ints;
  char *is_int;
} values;

static void read_nested(lua_State *L, int idx, int d, int nd, const int64_t *shape, values *out, int64_t *pos,
                        int *all_bool) {
  int64_t len = nested_len(L, idx, d + 1);
  if (len != shape[d])
    luaL_error(L, "array: ragged nested table at depth %d (expected %I elements, got %I)", d + 1, (lua_Integer)shape[d],
               (lua_Integer)len);
  for (int64_t i = 1; i <= shape[d]; i++) {
    int t = lua_geti(L, idx, i);
    if (d + 1 < nd) {
      if (t != LUA_TTABLE) luaL_error(L, "array: ragged nested table at depth %d (expected a table)", d + 2);
      read_nested(L, lua_gettop(L), d + 1, nd, shape, out, pos, all_bool);
    } else if (t == LUA_TBOOLEAN) {
      out->is_int[*pos] = 0;
      out->num[(*pos)++] = lua_toboolean(L, -1);
    } else if (t == LUA_TNUMBER) {
      *all_bool = 0;
      out->is_int[*pos] = (char)lua_isinteger(L, -1);
      out->ints[*pos] = lua_tointeger(L, -1);
      out->num[(*pos)++] = lua_tonumber(L, -1);
    } else {
      luaL_error(L, "array: elements must be numbers or booleans, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
}

static int l_array(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "array");
  lua_settop(L, 2); /* scratch pushed below must not look like the dtype argument */
  lt_ctx *ctx = lt_l_ctx(L);
  lt_tensor *src = lt_l_totensor(L, 1);
  if (src) { /* array(tensor[, dtype]): a copy */
    lt_dtype dt = lt_l_optdtype(L, 2, lt_tensor_dtype(src));
    lt_l_tensor *u = lt_l_newtensor(L);
    return lt_l_created(L, lt_astype(ctx, &u->t, src, dt), "array");
  }
  int type = lua_type(L, 1);
  if (type != LUA_TTABLE && type != LUA_TNUMBER && type != LUA_TBOOLEAN)
    return luaL_typeerror(L, 1, "table, number or boolean");
  int64_t shape[LT_MAX_DIMS];
  int nd = type == LUA_TTABLE ? infer_shape(L, 1, shape) : 0;
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= shape[i];
  size_t m = (size_t)(n ? n : 1); /* scratch is a userdata: the GC frees it if an error jumps out */
  char *scratch = lua_newuserdatauv(L, m * (sizeof(double) + sizeof(lua_Integer) + 1), 0);
  values vals = {(double *)scratch, (lua_Integer *)(scratch + m * sizeof(double)),
                 scratch + m * (sizeof(double) + sizeof(lua_Integer))};
  int64_t pos = 0;
  int all_bool = type != LUA_TNUMBER;
  if (type == LUA_TTABLE)
    read_nested(L, 1, 0, nd, shape, &vals, &pos, &all_bool); /* checks raggedness even when empty */
  else if (type != LUA_TTABLE) {
    vals.num[0] = type == LUA_TBOOLEAN ? lua_toboolean(L, 1) : lua_tonumber(L, 1);
    vals.is_int[0] = (char)lua_isinteger(L, 1);
    vals.ints[0] = lua_tointeger(L, 1);
  }
  if (n == 0) all_bool = 0;
  lt_dtype dt = lt_l_optdtype(L, 2, all_bool ? LT_BOOL : LT_FLOAT32);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check_renamed(L, lt_tensor_new(ctx, &u->t, dt, nd, shape), "tensor", "array");
  const lt_dtype_traits *tr = lt_dtype_info(dt);
  char *p = lt_tensor_data(u->t);
  for (int64_t i = 0; i < n; i++) {
    if (dt == LT_INT64 && vals.is_int[i])
      ((int64_t *)p)[i] = vals.ints[i];
    else
      tr->store(p + i * (int64_t)tr->size, vals.num[i]);
  }
  return lt_l_result(L, LT_OK);
}

static int push_full(lua_State *L, int shape_arg, double value, lt_dtype dt, const char *fname) {
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_l_checkshape(L, shape_arg, shape, fname);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_tensor_full(lt_l_ctx(L), &u->t, dt, nd, shape, value), fname);
}

static int l_zeros(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "zeros");
  return push_full(L, 1, 0, lt_l_optdtype(L, 2, LT_FLOAT32), "zeros");
}
static int l_ones(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "ones");
  return push_full(L, 1, 1, lt_l_optdtype(L, 2, LT_FLOAT32), "ones");
}
static int l_full(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "full");
  double v = lua_isboolean(L, 2) ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
  return push_full(L, 1, v, lt_l_optdtype(L, 3, lua_isboolean(L, 2) ? LT_BOOL : LT_FLOAT32), "full");
}

static int like(lua_State *L, double value, const char *fname) {
  lt_l_checkmaxargs(L, 2, fname);
  lt_tensor *x = lt_l_checktensor(L, 1);
  lt_dtype dt = lt_l_optdtype(L, 2, lt_tensor_dtype(x));
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_tensor_full(lt_l_ctx(L), &u->t, dt, lt_tensor_ndim(x), lt_tensor_shape(x), value), fname);
}
static int l_zeros_like(lua_State *L) { return like(L, 0, "zeros_like"); }
static int l_ones_like(lua_State *L) { return like(L, 1, "ones_like"); }

/* arange(stop), arange(start, stop[, step]); a trailing string is the dtype. */
static int l_arange(lua_State *L) {
  lt_l_checkmaxargs(L, 4, "arange");
  int top = lua_gettop(L);
  lt_dtype dt = LT_FLOAT32;
  if (top > 0 && lua_type(L, top) == LUA_TSTRING) dt = lt_l_checkdtype(L, top--);
  double start = 0, stop, step = 1;
  if (top == 1)
    stop = luaL_checknumber(L, 1);
  else {
    start = luaL_checknumber(L, 1);
    stop = luaL_checknumber(L, 2);
    if (top >= 3) step = luaL_checknumber(L, 3);
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_tensor_arange(lt_l_ctx(L), &u->t, start, stop, step, dt), "arange");
}

static int l_eye(lua_State *L) {
  lt_l_checkmaxargs(L, 4, "eye");
  lua_Integer n = luaL_checkinteger(L, 1), m = luaL_optinteger(L, 2, n), k = luaL_optinteger(L, 3, 0);
  if (n < 0 || m < 0) return luaL_error(L, "eye: sizes must be non-negative");
  lt_dtype dt = lt_l_optdtype(L, 4, LT_FLOAT32);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_created(L, lt_tensor_eye(lt_l_ctx(L), &u->t, n, m, k, dt), "eye");
}

/* ---- read-back ---- */

static void push_element(lua_State *L, const lt_tensor *t, int64_t flat) {
  double v = lt_tensor_get(t, flat);
  lt_dtype dt = lt_tensor_dtype(t);
  if (dt == LT_BOOL)
    lua_pushboolean(L, v != 0);
  else if (lt_dtype_info(dt)->is_float)
    lua_pushnumber(L, v);
  else if (dt == LT_INT64) {
    const int64_t *p = lt_tensor_data(t); /* exact: int64 does not round-trip through double */
    int64_t off = 0, rem = flat;
    for (int i = lt_tensor_ndim(t) - 1; i >= 0; i--) {
      off += (rem % lt_tensor_shape(t)[i]) * lt_tensor_strides(t)[i];
      rem /= lt_tensor_shape(t)[i];
    }
    lua_pushinteger(L, p[off]);
  } else
    lua_pushinteger(L, (lua_Integer)v);
}

static void push_list(lua_State *L, const lt_tensor *t, int d, int64_t *flat) {
  const int64_t *shape = lt_tensor_shape(t);
  lua_createtable(L, (int)shape[d], 0);
  for (int64_t i = 0; i < shape[d]; i++) {
    if (d + 1 == lt_tensor_ndim(t))
      push_element(L, t, (*flat)++);
    else
      push_list(L, t, d + 1, flat);
    lua_rawseti(L, -2, i + 1);
  }
}

static int l_tolist(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "tolist");
  lt_tensor *t = lt_l_checktensor(L, 1);
  int64_t flat = 0;
  if (lt_tensor_ndim(t) == 0)
    push_element(L, t, 0);
  else
    push_list(L, t, 0, &flat);
  return 1;
}

static int l_item(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "item");
  lt_tensor *t = lt_l_checktensor(L, 1);
  if (lt_tensor_size(t) != 1)
    return luaL_error(L, "item: tensor has %I elements, expected 1", (lua_Integer)lt_tensor_size(t));
  push_element(L, t, 0);
  return 1;
}

/* ---- layout ---- */

static int l_astype(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "astype");
  lt_tensor *x = lt_l_checktensor(L, 1);
  lt_dtype dt = lt_l_checkdtype(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_astype(lt_l_ctx(L), &u->t, x, dt));
}

/* reshape(x, {2, 3}) or reshape(x, 2, 3); -1 infers one dimension. */
static int l_reshape(lua_State *L) {
  lt_tensor *x = lt_l_checktensor(L, 1);
  int64_t shape[LT_MAX_DIMS];
  int nd;
  if (lua_istable(L, 2)) {
    lt_l_checkmaxargs(L, 2, "reshape");
    nd = lt_l_readshape(L, 2, shape, LUA_MININTEGER, "reshape"); /* -1 infers, the core checks the rest */
  } else {
    nd = lua_gettop(L) - 1;
    if (nd > LT_MAX_DIMS) return luaL_error(L, "reshape: at most %d dimensions", LT_MAX_DIMS);
    for (int i = 0; i < nd; i++) shape[i] = luaL_checkinteger(L, i + 2);
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_reshape(lt_l_ctx(L), &u->t, x, nd, shape));
}

/* transpose(x) reverses the axes; transpose(x, {2, 1, 3}) permutes them (1-based). */
static int l_transpose(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "transpose");
  lt_tensor *x = lt_l_checktensor(L, 1);
  int perm[LT_MAX_DIMS], nd = lt_tensor_ndim(x);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer len = lt_l_seqlen(L, 2, "transpose", "axes");
    if (len != nd) return luaL_error(L, "transpose: axes has %I entries for %d dimensions", len, nd);
    for (int i = 0; i < nd; i++) {
      lua_geti(L, 2, i + 1);
      int isint;
      lua_Integer a = lua_tointegerx(L, -1, &isint);
      if (!isint) return luaL_error(L, "transpose: axes[%d] must be an integer, got %s", i + 1, lt_l_valuename(L, -1));
      perm[i] = lt_l_axis_from_lua(a, nd);
      lua_pop(L, 1);
      if (perm[i] < 0) return luaL_error(L, "transpose: axes must be a permutation of the %d dimensions", nd);
    }
  }
  int identity = lua_isnoneornil(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_transpose(lt_l_ctx(L), &u->t, x, identity ? NULL : perm));
}

static int l_expand_dims(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "expand_dims");
  lt_tensor *x = lt_l_checktensor(L, 1);
  int axis = lt_l_checkaxis(L, 2, lt_tensor_ndim(x) + 1, "expand_dims");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_expand_dims(lt_l_ctx(L), &u->t, x, axis));
}

static int l_squeeze(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "squeeze");
  lt_tensor *x = lt_l_checktensor(L, 1);
  int axis = lt_l_optaxis(L, 2, lt_tensor_ndim(x), "squeeze", LT_ALL_AXES);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_squeeze(lt_l_ctx(L), &u->t, x, axis));
}

/* Lua's inclusive 1-based [first, last] (negatives from the end, -1 the last)
 * as lt_slice's 0-based start and exclusive stop. A negative step walks from
 * first down to last; the stop before the first element is passed as
 * -(n + 1), which lt_slice reads as Python does. */
static void slice_bounds(int64_t n, lua_Integer first, lua_Integer last, lua_Integer step, int64_t *start,
                         int64_t *stop) {
  if (first < 0) first += n + 1;
  if (last < 0) last += n + 1;
  if (step > 0) {
    if (first < 1) first = 1;
    if (last > n) last = n;
    *start = first - 1;
    *stop = last < first ? first - 1 : last;
  } else {
    if (first > n) first = n;
    if (last < 1) last = 1;
    *start = first < last ? 0 : first - 1; /* first < last: nothing to walk */
    *stop = first < last ? 0 : last >= 2 ? last - 2 : -(n + 1);
  }
}

/* slice(x, axis, first, last[, step]): Lua-style inclusive 1-based bounds,
 * negatives counted from the end (-1 is the last), like string.sub. A negative
 * step walks backwards from first to last, which default to the last and the
 * first element (Python's x[::-1] is slice(x, 1, nil, nil, -1)). */
static int l_slice(lua_State *L) {
  lt_l_checkmaxargs(L, 5, "slice");
  lt_tensor *x = lt_l_checktensor(L, 1);
  int axis = lt_l_checkaxis(L, 2, lt_tensor_ndim(x), "slice");
  int64_t n = lt_tensor_shape(x)[axis], start, stop;
  lua_Integer step = luaL_optinteger(L, 5, 1);
  lua_Integer first = luaL_optinteger(L, 3, step > 0 ? 1 : -1), last = luaL_optinteger(L, 4, step > 0 ? -1 : 1);
  slice_bounds(n, first, last, step, &start, &stop);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_slice(lt_l_ctx(L), &u->t, x, axis, start, stop, step));
}

static int l_broadcast_to(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "broadcast_to");
  lt_tensor *x = lt_l_checktensor(L, 1);
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_l_checkshape(L, 2, shape, "broadcast_to");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_broadcast_to(lt_l_ctx(L), &u->t, x, nd, shape));
}

static int l_contiguous(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "contiguous");
  lt_tensor *x = lt_l_checktensor(L, 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_contiguous(lt_l_ctx(L), &u->t, x));
}

/* The tensors of the list at `arg`, into a scratch userdata left on the stack. */
static lt_tensor **check_list(lua_State *L, int arg, int *n, const char *fname) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer len = lt_l_seqlen(L, arg, fname, "the list of tensors");
  if (len < 1) luaL_error(L, "%s: needs at least one tensor", fname);
  if (len > INT_MAX) luaL_error(L, "%s: %I tensors are too many", fname, len);
  *n = (int)len;
  lt_tensor **xs = lua_newuserdatauv(L, (size_t)*n * sizeof *xs, 0);
  for (int i = 0; i < *n; i++) {
    lua_geti(L, arg, i + 1);
    xs[i] = lt_l_totensor(L, -1);
    if (!xs[i] && luaL_testudata(L, -1, LT_L_TENSOR)) luaL_error(L, "%s: element %d is closed", fname, i + 1);
    if (!xs[i]) luaL_error(L, "%s: element %d is a %s, not a lattice.Tensor", fname, i + 1, luaL_typename(L, -1));
    lua_pop(L, 1); /* the list keeps the tensor alive */
  }
  return xs;
}

static int join(lua_State *L, int stack) {
  const char *fname = stack ? "stack" : "concatenate";
  lt_l_checkmaxargs(L, 2, fname);
  lua_settop(L, 2);
  int n;
  lt_tensor **xs = check_list(L, 1, &n, fname);
  int axis = lt_l_optaxis(L, 2, lt_tensor_ndim(xs[0]) + stack, fname, 0);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, (stack ? lt_stack : lt_concatenate)(lt_l_ctx(L), &u->t, n, xs, axis));
}
static int l_concatenate(lua_State *L) { return join(L, 0); }
static int l_stack(lua_State *L) { return join(L, 1); }

/* split(x, n[, axis]): n equal pieces; split(x, {i, j, ...}[, axis]): new
 * pieces begin at the 1-based positions i, j, ... */
/* The 1-based positions at which split's pieces begin, as 0-based indices
 * into a scratch userdata left on the stack; *n is the number of pieces. */
static int64_t *split_positions(lua_State *L, int arg, int *n) {
  lua_Integer len = lt_l_seqlen(L, arg, "split", "the positions");
  if (len >= INT_MAX) luaL_error(L, "split: %I positions are too many", len);
  *n = (int)len + 1;
  int64_t *at = lua_newuserdatauv(L, (size_t)*n * sizeof *at, 0);
  for (int i = 0; i + 1 < *n; i++) {
    lua_geti(L, arg, i + 1);
    int isint;
    lua_Integer p = lua_tointegerx(L, -1, &isint);
    if (!isint) luaL_error(L, "split: positions[%d] must be an integer, got %s", i + 1, lt_l_valuename(L, -1));
    lua_pop(L, 1);
    at[i] = p < 1 ? -1 : p - 1; /* below 1 stays out of range without overflowing */
  }
  return at;
}

/* 0-based starts of n equal pieces of an axis of `size`, in a scratch userdata. */
static int64_t *equal_positions(lua_State *L, lua_Integer n, int64_t size) {
  if (n < 1 || size % n)
    luaL_error(L, "split: axis of size %I cannot be split into %I equal pieces", (lua_Integer)size, n);
  if (n > INT_MAX) luaL_error(L, "split: %I pieces are too many", n);
  int64_t *at = lua_newuserdatauv(L, (size_t)n * sizeof *at, 0);
  for (int64_t i = 0; i + 1 < n; i++) at[i] = (i + 1) * (size / n);
  return at;
}

static int l_split(lua_State *L) {
  lt_l_checkmaxargs(L, 3, "split");
  lua_settop(L, 3);
  lt_tensor *x = lt_l_checktensor(L, 1);
  if (lt_tensor_ndim(x) == 0) return luaL_error(L, "split: a 0-d tensor has no axis to split");
  int axis = lt_l_optaxis(L, 3, lt_tensor_ndim(x), "split", 0);
  int64_t size = lt_tensor_shape(x)[axis], *at;
  int n;
  if (lua_istable(L, 2)) {
    at = split_positions(L, 2, &n);
  } else {
    lua_Integer pieces = luaL_checkinteger(L, 2);
    at = equal_positions(L, pieces, size);
    n = (int)pieces;
  }
  lt_tensor **outs = lua_newuserdatauv(L, (size_t)n * sizeof *outs, 0);
  lt_l_newlist(L, n);
  lt_l_check(L, lt_split(lt_l_ctx(L), outs, x, n, at, axis));
  lt_l_fill_list(L, lua_gettop(L), n, outs);
  return lt_l_result(L, LT_OK);
}

/* ---- properties and indexing ---- */

/* t[i]: the i-th slice along the first axis (1-based, negatives from the end), a view. */
static int index_row(lua_State *L, lt_tensor *x, lua_Integer i) {
  if (lt_tensor_ndim(x) == 0) return luaL_error(L, "index: a 0-d tensor cannot be indexed");
  int64_t n = lt_tensor_shape(x)[0];
  lua_Integer k = i < 0 ? i + n + 1 : i;
  if (k < 1 || k > n) return luaL_error(L, "index: %I is out of range for axis 1 of size %I", i, (lua_Integer)n);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_tensor *row;
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check(L, lt_slice(ctx, &row, x, 0, k - 1, k, 1));
  lt_status st = lt_squeeze(ctx, &u->t, row, 0);
  lt_tensor_release(row);
  return lt_l_result(L, st);
}

static int tensor_index(lua_State *L) {
  /* Methods resolve even on a closed tensor, so close() stays callable and the
   * method itself reports the closed argument. */
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1;
  lt_tensor *x = lt_l_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) { /* t[2.0] is t[2], as for Lua tables; t[1.5] is a mistake */
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (!isint) return luaL_error(L, "index: %s is not an integer", luaL_tolstring(L, 2, NULL));
    return index_row(L, x, i);
  }
  const char *key = lua_tostring(L, 2);
  if (key && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(key, "shape") == 0) {
      lt_l_pushshape(L, lt_tensor_ndim(x), lt_tensor_shape(x));
      return 1;
    }
    if (strcmp(key, "dtype") == 0) {
      lua_pushstring(L, lt_dtype_info(lt_tensor_dtype(x))->name);
      return 1;
    }
    if (strcmp(key, "ndim") == 0) {
      lua_pushinteger(L, lt_tensor_ndim(x));
      return 1;
    }
    if (strcmp(key, "size") == 0) {
      lua_pushinteger(L, lt_tensor_size(x));
      return 1;
    }
    if (strcmp(key, "T") == 0) {
      lt_l_tensor *u = lt_l_newtensor(L);
      return lt_l_result(L, lt_transpose(lt_l_ctx(L), &u->t, x, NULL));
    }
  }
  return 0; /* nil, like a missing field */
}

static int tensor_len(lua_State *L) {
  lt_tensor *x = lt_l_checktensor(L, 1);
  if (lt_tensor_ndim(x) == 0) return luaL_error(L, "len: a 0-d tensor has no length");
  lua_pushinteger(L, lt_tensor_shape(x)[0]);
  return 1;
}

static int tensor_newindex(lua_State *L) {
  return luaL_error(L, "lattice.Tensor: tensors are immutable (field '%s')", luaL_tolstring(L, 2, NULL));
}

static int l_shares_storage(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "shares_storage");
  lua_pushboolean(L, lt_tensor_shares_storage(lt_l_checktensor(L, 1), lt_l_checktensor(L, 2)));
  return 1;
}

static int l_is_tensor(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "is_tensor");
  lua_pushboolean(L, lt_l_totensor(L, 1) != NULL);
  return 1;
}

static const luaL_Reg functions[] = {{"array", l_array},
                                     {"zeros", l_zeros},
                                     {"ones", l_ones},
                                     {"full", l_full},
                                     {"zeros_like", l_zeros_like},
                                     {"ones_like", l_ones_like},
                                     {"arange", l_arange},
                                     {"eye", l_eye},
                                     {"tolist", l_tolist},
                                     {"item", l_item},
                                     {"astype", l_astype},
                                     {"reshape", l_reshape},
                                     {"transpose", l_transpose},
                                     {"expand_dims", l_expand_dims},
                                     {"squeeze", l_squeeze},
                                     {"slice", l_slice},
                                     {"broadcast_to", l_broadcast_to},
                                     {"contiguous", l_contiguous},
                                     {"concatenate", l_concatenate},
                                     {"stack", l_stack},
                                     {"split", l_split},
                                     {"is_tensor", l_is_tensor},
                                     {"shares_storage", l_shares_storage},
                                     {"close", tensor_close},
                                     {NULL, NULL}};

void lt_l_open_tensor(lua_State *L) {
  lt_l_register(L, functions);
  /* The methods table, shared with Lua as lattice.core.Tensor so the package can add to it. */
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "Tensor");
  luaL_newmetatable(L, LT_L_TENSOR);
  lt_l_pushctx(L);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, tensor_index, 2);
  lua_setfield(L, -2, "__index");
  static const luaL_Reg meta[] = {{"__gc", tensor_close},
                                  {"__close", tensor_close},
                                  {"__len", tensor_len},
                                  {"__newindex", tensor_newindex},
                                  {NULL, NULL}};
  lt_l_register(L, meta);
  lua_pop(L, 2);
}
