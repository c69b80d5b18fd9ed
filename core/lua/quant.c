/* lattice.QuantizedWeight: a userdata holding a quantized weight's
 * configuration (bits, group_size, mode) whose uservalues are its parts, the
 * ordinary tensors weight (uint32 codes), scales and biases (MLX's names);
 * the ops borrow them. Fields: bits, group_size, mode, shape (the logical
 * one), dtype (what dequantize gives), nbytes, weight, scales, biases;
 * qw:dequantize(). Functions: quantize_weight, QuantizedWeight (from parts),
 * dequantize, quantize_dequantize, is_quantized_weight, and the specs' hooks
 * quant_linear_with_isa, quant_linear_grad_with_isa, quant_pack_int8 and
 * quant_linear_int8 (the C API's int8 product, which QuantizedLinear uses in
 * eval mode). */
#include <string.h>
#include "base.h"
#include "quant/internal.h"
#include "quant_binding.h"

typedef struct qw_box {
  int bits, group_size;
  lt_quant_mode mode;
} qw_box;

enum { UV_WEIGHT = 1, UV_SCALES, UV_BIASES, UV_COUNT = 3 };

static const char *const part_names[UV_COUNT] = {"weight", "scales", "biases"};

lt_quant_mode lt_l_quant_mode(lua_State *L, const char *name, const char *fname) {
  int m = name ? lt_quant_mode_from_name(name) : -1;
  if (m < 0)
    luaL_error(L, "%s: mode must be 'affine', 'mxfp8' or 'nvfp4', got %s%s%s", fname, name ? "'" : "",
               name ? name : "nil", name ? "'" : "");
  return (lt_quant_mode)m;
}

/* The tensor in uservalue uv of the QuantizedWeight at arg (NULL when none). */
static lt_tensor *part(lua_State *L, int arg, int uv) {
  lua_getiuservalue(L, arg, uv);
  int absent = lua_isnil(L, -1);
  lt_tensor *t = lt_l_totensor(L, -1);
  lua_pop(L, 1);
  if (!t && !absent) luaL_error(L, "QuantizedWeight: its %s tensor was closed", part_names[uv - 1]);
  return t;
}

int lt_l_toqweight(lua_State *L, int arg, lt_qweight *qw) {
  qw_box *b = luaL_testudata(L, arg, LT_L_QWEIGHT);
  if (!b) return 0;
  *qw = (lt_qweight){
      part(L, arg, UV_WEIGHT), part(L, arg, UV_SCALES), part(L, arg, UV_BIASES), b->bits, b->group_size, b->mode};
  return 1;
}

static lt_qweight check_qweight(lua_State *L, int arg) {
  lt_qweight qw;
  if (!lt_l_toqweight(L, arg, &qw)) luaL_typeerror(L, arg, LT_L_QWEIGHT);
  return qw;
}

/* Pushes a QuantizedWeight with empty tensors as parts (biases only when
 * asked), returning them for the caller to fill. */
static qw_box *new_qweight(lua_State *L, lt_l_tensor **parts, int with_biases) {
  qw_box *b = lua_newuserdatauv(L, sizeof *b, UV_COUNT);
  *b = (qw_box){0};
  luaL_setmetatable(L, LT_L_QWEIGHT);
  for (int k = 0; k < UV_COUNT; k++) {
    parts[k] = NULL;
    if (k == UV_BIASES - 1 && !with_biases) continue;
    parts[k] = lt_l_newtensor(L);
    lua_setiuservalue(L, -2, k + 1);
  }
  return b;
}

void lt_l_pushqweight_of(lua_State *L, int w, int scales, int biases, int bits, int group_size, lt_quant_mode mode,
                         const char *fname) {
  int idx[UV_COUNT] = {lua_absindex(L, w), lua_absindex(L, scales), biases ? lua_absindex(L, biases) : 0};
  lt_qweight qw = {lt_l_checktensor(L, idx[0]),
                   lt_l_checktensor(L, idx[1]),
                   idx[2] && !lua_isnil(L, idx[2]) ? lt_l_checktensor(L, idx[2]) : NULL,
                   bits,
                   group_size,
                   mode};
  lt_l_check(L, lt_qweight_check(lt_l_ctx(L), &qw, fname));
  qw_box *b = lua_newuserdatauv(L, sizeof *b, UV_COUNT);
  *b = (qw_box){bits, group_size, mode};
  luaL_setmetatable(L, LT_L_QWEIGHT);
  for (int k = 0; k < UV_COUNT; k++) {
    if (!idx[k]) continue;
    lua_pushvalue(L, idx[k]);
    lua_setiuservalue(L, -2, k + 1);
  }
}

/* ---- options ---- */

typedef struct qconfig {
  lt_quant_mode mode;
  int bits, group_size;
} qconfig;

static int int_option(lua_State *L, int arg, const char *key, int def, const char *fname) {
  if (lua_isnoneornil(L, arg)) return def;
  int t = lua_getfield(L, arg, key);
  if (t != LUA_TNIL && !lua_isinteger(L, -1))
    luaL_error(L, "%s: %s must be an integer, got %s", fname, key, lt_l_valuename(L, -1));
  lua_Integer v = t == LUA_TNIL ? def : lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (v < -1000000 || v > 1000000) luaL_error(L, "%s: %s must be a small integer, got %I", fname, key, v);
  return (int)v;
}

/* {bits, group_size, mode} with MLX's defaults per mode: affine 4 bits in
 * groups of 64, mxfp8 8 in 32, nvfp4 4 in 16. */
static qconfig check_config(lua_State *L, int arg, const char *fname) {
  static const char *const keys[] = {"bits", "group_size", "mode", NULL};
  lt_l_checkoptions(L, arg, fname, keys);
  qconfig c = {LT_QUANT_AFFINE, 0, 0};
  if (!lua_isnoneornil(L, arg)) {
    int t = lua_getfield(L, arg, "mode");
    if (t != LUA_TNIL && t != LUA_TSTRING)
      luaL_error(L, "%s: mode must be a string, got %s", fname, luaL_typename(L, -1));
    if (t == LUA_TSTRING) c.mode = lt_l_quant_mode(L, lua_tostring(L, -1), fname);
    lua_pop(L, 1);
  }
  static const int def_bits[] = {4, 8, 4}, def_gs[] = {64, 32, 16};
  c.bits = int_option(L, arg, "bits", def_bits[c.mode], fname);
  c.group_size = int_option(L, arg, "group_size", def_gs[c.mode], fname);
  lt_l_check(L, lt_quant_check_config(lt_l_ctx(L), c.mode, c.bits, c.group_size, fname));
  return c;
}

/* ---- functions ---- */

/* lattice.quantize_weight(w[, {bits, group_size, mode = "affine"}]) -> QuantizedWeight */
static int l_quantize_weight(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "quantize_weight");
  lt_tensor *w = lt_l_checktensor(L, 1);
  qconfig c = check_config(L, 2, "quantize_weight");
  lt_l_tensor *parts[UV_COUNT];
  qw_box *b = new_qweight(L, parts, c.mode == LT_QUANT_AFFINE);
  lt_qweight qw;
  lt_l_check(L, lt_quantize_weight(lt_l_ctx(L), &qw, w, c.mode, c.bits, c.group_size));
  parts[0]->t = qw.w, parts[1]->t = qw.scales; /* nothing raises from here on */
  if (parts[2]) parts[2]->t = qw.biases;
  *b = (qw_box){c.bits, c.group_size, c.mode};
  lt_l_report_alloc(L, lt_l_ctx(L));
  return 1;
}

/* lattice.QuantizedWeight(weight, scales, biases[, {bits, group_size, mode}]):
 * the parts of a quantized weight (a checkpoint's weight, scales and biases),
 * checked against each other; biases is nil for mxfp8 and nvfp4. */
static int l_qweight_from_parts(lua_State *L) {
  lt_l_checkmaxargs(L, 4, "QuantizedWeight");
  lt_l_checktensor(L, 1);
  lt_l_checktensor(L, 2);
  if (!lua_isnoneornil(L, 3)) lt_l_checktensor(L, 3);
  qconfig c = check_config(L, 4, "QuantizedWeight");
  lt_l_pushqweight_of(L, 1, 2, 3, c.bits, c.group_size, c.mode, "QuantizedWeight");
  return 1;
}

/* lattice.dequantize(qw) and qw:dequantize() -> the float weight */
static int l_dequantize(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "dequantize");
  lt_qweight qw = check_qweight(L, 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_dequantize(lt_l_ctx(L), &u->t, &qw));
}

/* lattice.quantize_dequantize(x, {mode = "mxfp8" | "nvfp4"}) -> x through the format and back */
static int l_quantize_dequantize(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "quantize_dequantize");
  lt_tensor *x = lt_l_checktensor(L, 1);
  static const char *const keys[] = {"mode", NULL};
  lt_l_checkoptions(L, 2, "quantize_dequantize", keys);
  const char *name = lua_istable(L, 2) && lua_getfield(L, 2, "mode") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lt_quant_mode mode = lt_l_quant_mode(L, name, "quantize_dequantize");
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_quantize_dequantize(lt_l_ctx(L), &u->t, x, mode));
}

static int l_is_quantized_weight(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, LT_L_QWEIGHT) != NULL);
  return 1;
}

/* "auto" (0, as the op chooses), "matvec", "tiles", "blas" or "int8" at arg. */
static int check_path(lua_State *L, int arg) {
  static const char *const paths[] = {"auto", "matvec", "tiles", "blas", "int8", NULL};
  return luaL_checkoption(L, arg, "auto", paths);
}

/* lattice.core.quant_linear_with_isa(x, qw, bias, isa[, path]) -> y, the ISA used */
static int l_quant_linear_with_isa(lua_State *L) {
  lt_tensor *x = lt_l_checktensor(L, 1), *b = lua_isnoneornil(L, 3) ? NULL : lt_l_checktensor(L, 3);
  lt_qweight qw = check_qweight(L, 2);
  lt_isa isa = lt_l_checkisa(L, 4, "quant_linear_with_isa"), used;
  int path = check_path(L, 5);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_result(L, lt__quant_linear_isa(lt_l_ctx(L), &u->t, x, &qw, b, isa, path, &used));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

/* lattice.core.quant_linear_grad_with_isa(g, qw, isa[, path]) -> g @ W, the ISA used */
static int l_quant_linear_grad_with_isa(lua_State *L) {
  lt_tensor *g = lt_l_checktensor(L, 1);
  lt_qweight qw = check_qweight(L, 2);
  lt_isa isa = lt_l_checkisa(L, 3, "quant_linear_grad_with_isa"), used;
  int path = check_path(L, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_result(L, lt__quant_linear_grad_isa(lt_l_ctx(L), &u->t, g, &qw, isa, path, &used));
  lua_pushstring(L, lt_isa_name(used));
  return 2;
}

/* lattice.core.quant_pack_int8(qw) -> the uint8 pack of lt_quant_pack_int8 */
static int l_quant_pack_int8(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "quant_pack_int8");
  lt_qweight qw = check_qweight(L, 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_quant_pack_int8(lt_l_ctx(L), &u->t, &qw));
}

/* lattice.core.quant_linear_int8(x, qw[, pack[, bias]]) -> lt_quant_linear_int8's y */
static int l_quant_linear_int8(lua_State *L) {
  lt_l_checkmaxargs(L, 4, "quant_linear_int8");
  lt_tensor *x = lt_l_checktensor(L, 1);
  lt_qweight qw = check_qweight(L, 2);
  lt_tensor *pack = lua_isnoneornil(L, 3) ? NULL : lt_l_checktensor(L, 3);
  lt_tensor *b = lua_isnoneornil(L, 4) ? NULL : lt_l_checktensor(L, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_quant_linear_int8(lt_l_ctx(L), &u->t, x, &qw, pack, b));
}

/* ---- the type ---- */

/* The logical shape, the dequantized dtype or the bytes of the parts. */
static int push_derived(lua_State *L, const char *key) {
  lt_qweight qw = check_qweight(L, 1);
  if (strcmp(key, "shape") == 0) {
    int64_t shape[LT_MAX_DIMS];
    int nd = lt_qweight_shape(&qw, shape);
    lt_l_pushshape(L, nd, shape);
  } else if (strcmp(key, "dtype") == 0) {
    lua_pushstring(L, lt_dtype_info(lt_qweight_dtype(&qw))->name);
  } else if (strcmp(key, "nbytes") == 0) {
    lua_pushinteger(L, (lua_Integer)lt_qweight_nbytes(&qw));
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int qw_index(lua_State *L) {
  qw_box *b = luaL_checkudata(L, 1, LT_L_QWEIGHT);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "bits") == 0)
    lua_pushinteger(L, b->bits);
  else if (strcmp(key, "group_size") == 0)
    lua_pushinteger(L, b->group_size);
  else if (strcmp(key, "mode") == 0)
    lua_pushstring(L, lt_quant_mode_name(b->mode));
  else if (strcmp(key, "weight") == 0 || strcmp(key, "scales") == 0 || strcmp(key, "biases") == 0)
    lua_getiuservalue(L, 1, key[0] == 'w' ? UV_WEIGHT : key[0] == 's' ? UV_SCALES : UV_BIASES);
  else if (strcmp(key, "dequantize") == 0)
    lua_pushvalue(L, lua_upvalueindex(1));
  else
    return push_derived(L, key);
  return 1;
}

static int qw_tostring(lua_State *L) {
  lt_qweight qw = check_qweight(L, 1);
  int64_t shape[LT_MAX_DIMS];
  char s[LT_SHAPE_STR_MAX];
  int nd = lt_qweight_shape(&qw, shape);
  lua_pushfstring(L, "QuantizedWeight(shape=%s, bits=%d, group_size=%d, mode=%s, dtype=%s)",
                  lt__shape_str(s, sizeof s, nd, shape), qw.bits, qw.group_size, lt_quant_mode_name(qw.mode),
                  lt_dtype_info(lt_qweight_dtype(&qw))->name);
  return 1;
}

void lt_l_open_quant(lua_State *L) {
  luaL_newmetatable(L, LT_L_QWEIGHT);
  lt_l_pushctx(L);
  lua_pushcclosure(L, l_dequantize, 1);
  lua_pushcclosure(L, qw_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, qw_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"quantize_weight", l_quantize_weight},
                                 {"QuantizedWeight", l_qweight_from_parts},
                                 {"dequantize", l_dequantize},
                                 {"quantize_dequantize", l_quantize_dequantize},
                                 {"is_quantized_weight", l_is_quantized_weight},
                                 {"quant_linear_with_isa", l_quant_linear_with_isa},
                                 {"quant_linear_grad_with_isa", l_quant_linear_grad_with_isa},
                                 {"quant_pack_int8", l_quant_pack_int8},
                                 {"quant_linear_int8", l_quant_linear_int8},
                                 {NULL, NULL}};
  lt_l_register(L, fns);
}
