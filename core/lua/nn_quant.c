/* The quantized modules of lattice.nn as built-in module types, holding MLX's
 * parameters under MLX's names, so that save_weights and load_weights write
 * and read what MLX writes:
 *   QuantizedLinear     weight (uint32 codes), scales, biases (affine only), bias?
 *                       m(x) = x @ W^T + bias
 *   QuantizedEmbedding  weight, scales, biases; m(ids) the dequantized rows,
 *                       m:as_linear(x) = x @ W^T (a head tied to the table)
 *   QQLinear            weight, scales (mxfp8 or nvfp4), bias?
 *                       m(x) = quantize_dequantize(x) @ W^T + bias
 * Each holds its bits, group_size and mode; m:quantized_weight() is the
 * QuantizedWeight of its current tensors (shared). QuantizedLinear and
 * QQLinear also take a SparseTensor, as nn.Linear does (the seed's
 * quantized feature Linear): its features transformed, its coordinates kept.
 * lua/lattice/nn/quantized.lua makes the fields. */
#include <string.h>
#include "nn_module.h"
#include "quant_binding.h"
#include "sparse_binding.h"

typedef struct qcfg {
  int bits, group_size;
  lt_quant_mode mode;
} qcfg;

/* The module's quantized weight, its tensors borrowed from the fields table. */
static lt_qweight module_qweight(lua_State *L, const qcfg *c) {
  return (lt_qweight){lt_l_module_tensor(L, 1, "weight", 0),
                      lt_l_module_tensor(L, 1, "scales", 0),
                      c->mode == LT_QUANT_AFFINE ? lt_l_module_tensor(L, 1, "biases", 0) : NULL,
                      c->bits,
                      c->group_size,
                      c->mode};
}

static int is_quantized(const lt_l_module_type *type);

/* m:quantized_weight() */
static int quantized_weight(lua_State *L) {
  const lt_l_module_type *type = lt_l_module_type_of(L, 1);
  if (!is_quantized(type)) return luaL_typeerror(L, 1, "quantized module");
  qcfg *c = lua_touserdata(L, 1);
  module_qweight(L, c); /* a missing part is an error naming the module */
  lt_l_module_field(L, 1, "weight");
  lt_l_module_field(L, 1, "scales");
  lt_l_module_field(L, 1, "biases");
  lt_l_pushqweight_of(L, -3, -2, c->mode == LT_QUANT_AFFINE ? -1 : 0, c->bits, c->group_size, c->mode, type->name);
  return 1;
}

/* ---- QuantizedLinear, QQLinear ---- */

static const char *const qlinear_params[] = {"weight", "scales", "biases", "bias", NULL};
static const char *const qqlinear_params[] = {"weight", "scales", "bias", NULL};
static const luaL_Reg linear_methods[] = {{"quantized_weight", quantized_weight}, {NULL, NULL}};

static int qlinear_forward(lua_State *L);
static int qqlinear_forward(lua_State *L);
static const lt_l_module_type qlinear_type = {"QuantizedLinear", sizeof(qcfg), qlinear_forward, qlinear_params,
                                              linear_methods};
static const lt_l_module_type qqlinear_type = {"QQLinear", sizeof(qcfg), qqlinear_forward, qqlinear_params,
                                               linear_methods};

/* The input at arg 2: a tensor, or a SparseTensor's features. */
static lt_tensor *linear_input(lua_State *L, const lt_l_module_type *type) {
  return lt_l_module_input(L, type->name, "x", 1);
}

/* lt_l_result, the new tensor at the top becoming the features of a
 * SparseTensor with the input's coordinates when the input was one. */
static int linear_output(lua_State *L, lt_status st) {
  lt_l_result(L, st);
  if (lt_l_issparse(L, 2)) lt_l_push_with_feats(L, 2, -1);
  return 1;
}

/* The int8 pack of the module's weight (lt_quant_pack_int8), made on first
 * use and kept in the private field _int8_pack = {pack =, weight =, scales =,
 * biases =} beside the parts it was made from; those are held there, so
 * they stay alive and a replaced part is seen as a different object, and
 * the pack is made again. Its bytes are the context's, like any tensor's. */
static lt_tensor *module_pack(lua_State *L, const lt_qweight *qw) {
  static const char *const parts[] = {"weight", "scales", "biases"};
  if (lt_l_module_field(L, 1, "_int8_pack") == LUA_TTABLE) {
    int same = 1;
    for (int k = 0; k < 3; k++) {
      lua_getfield(L, -1, parts[k]);
      lt_l_module_field(L, 1, parts[k]);
      same = same && lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
    lua_getfield(L, -1, "pack");
    lt_tensor *p = same ? lt_l_totensor(L, -1) : NULL;
    lua_pop(L, 2);
    if (p) return p;
  } else {
    lua_pop(L, 1);
  }
  lua_createtable(L, 0, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check(L, lt_quant_pack_int8(lt_l_ctx(L), &u->t, qw));
  lt_tensor *p = u->t;
  lua_setfield(L, -2, "pack");
  for (int k = 0; k < 3; k++) {
    lt_l_module_field(L, 1, parts[k]);
    lua_setfield(L, -2, parts[k]);
  }
  lt_l_module_setfield(L, 1, "_int8_pack"); /* the fields table keeps the pack alive */
  return p;
}

/* In eval mode an affine 4- or 8-bit layer computes a batch (two rows or
 * more, float32) with int8 activations (lt_quant_linear_int8); in training
 * mode, and for one row, lt_quant_linear's float product. */
static int qlinear_forward(lua_State *L) {
  qcfg *c = lt_l_module_check(L, 1, &qlinear_type);
  lt_tensor *x = linear_input(L, &qlinear_type), *b = lt_l_module_tensor(L, 1, "bias", 1);
  lt_qweight qw = module_qweight(L, c);
  int64_t ndim = lt_tensor_ndim(x), last = ndim ? lt_tensor_shape(x)[ndim - 1] : 0;
  int batch = last && lt_tensor_size(x) / last >= 2 && lt_tensor_dtype(x) != LT_FLOAT64;
  int int8 = !lt_l_module_training(L, 1) && c->mode == LT_QUANT_AFFINE && (c->bits == 4 || c->bits == 8);
  lt_tensor *pack = int8 && batch ? module_pack(L, &qw) : NULL;
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_ctx *ctx = lt_l_ctx(L);
  return linear_output(L, int8 ? lt_quant_linear_int8(ctx, &u->t, x, &qw, pack, b)
                               : lt_quant_linear(ctx, &u->t, x, &qw, b));
}

/* The input through the activation format, then the quantized product. */
static int qqlinear_forward(lua_State *L) {
  qcfg *c = lt_l_module_check(L, 1, &qqlinear_type);
  lt_tensor *x = linear_input(L, &qqlinear_type), *b = lt_l_module_tensor(L, 1, "bias", 1), *xq = NULL;
  lt_qweight qw = module_qweight(L, c);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_ctx *ctx = lt_l_ctx(L);
  lt_status st = lt_quantize_dequantize(ctx, &xq, x, c->mode);
  if (!st) st = lt_quant_linear(ctx, &u->t, xq, &qw, b);
  lt_tensor_release(xq);
  return linear_output(L, st);
}

/* ---- QuantizedEmbedding ---- */

static const char *const qembedding_params[] = {"weight", "scales", "biases", NULL};

static int qembedding_forward(lua_State *L);
static int qembedding_as_linear(lua_State *L);
static const luaL_Reg embedding_methods[] = {
    {"as_linear", qembedding_as_linear}, {"quantized_weight", quantized_weight}, {NULL, NULL}};
static const lt_l_module_type qembedding_type = {"QuantizedEmbedding", sizeof(qcfg), qembedding_forward,
                                                 qembedding_params, embedding_methods};

static int qembedding_forward(lua_State *L) {
  qcfg *c = lt_l_module_check(L, 1, &qembedding_type);
  lt_tensor *ids = lt_l_module_input(L, qembedding_type.name, "ids", 0);
  lt_qweight qw = module_qweight(L, c);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_quant_embedding(lt_l_ctx(L), &u->t, &qw, ids));
}

static int qembedding_as_linear(lua_State *L) {
  qcfg *c = lt_l_module_check(L, 1, &qembedding_type);
  lt_tensor *x = lt_l_checktensor(L, 2);
  lt_qweight qw = module_qweight(L, c);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_quant_linear(lt_l_ctx(L), &u->t, x, &qw, NULL));
}

static int is_quantized(const lt_l_module_type *type) {
  return type == &qlinear_type || type == &qqlinear_type || type == &qembedding_type;
}

/* ---- constructors ---- */

/* The fields table at 1 holds the parts and bits, group_size and mode. */
static int new_module(lua_State *L, const lt_l_module_type *type) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "mode");
  lt_quant_mode mode = lt_l_quant_mode(L, lua_tostring(L, -1), type->name);
  lua_getfield(L, 1, "bits");
  lua_getfield(L, 1, "group_size");
  qcfg c = {(int)lua_tointeger(L, -2), (int)lua_tointeger(L, -1), mode};
  lua_pop(L, 3);
  if (type == &qqlinear_type && mode == LT_QUANT_AFFINE)
    return luaL_error(L, "QQLinear: mode must be 'mxfp8' or 'nvfp4', got 'affine'");
  static const char *const keys[] = {"weight", "scales", "biases", "bias"};
  lt_tensor *t[4];
  for (int k = 0; k < 4; k++) {
    lua_getfield(L, 1, keys[k]);
    t[k] = lt_l_totensor(L, -1);
    lua_pop(L, 1);
  }
  lt_qweight qw = {t[0], t[1], t[2], c.bits, c.group_size, c.mode};
  lt_l_check(L, lt_qweight_check(lt_l_ctx(L), &qw, type->name));
  *(qcfg *)lt_l_module_new(L, type, 1) = c;
  return 1;
}

static int l_qlinear(lua_State *L) { return new_module(L, &qlinear_type); }
static int l_qqlinear(lua_State *L) { return new_module(L, &qqlinear_type); }
static int l_qembedding(lua_State *L) { return new_module(L, &qembedding_type); }

void lt_l_open_nn_quant(lua_State *L) {
  lua_getfield(L, -1, "nn");
  lt_l_module_register(L, &qlinear_type);
  lt_l_module_register(L, &qqlinear_type);
  lt_l_module_register(L, &qembedding_type);
  static const luaL_Reg fns[] = {
      {"QuantizedLinear", l_qlinear}, {"QQLinear", l_qqlinear}, {"QuantizedEmbedding", l_qembedding}, {NULL, NULL}};
  lt_l_register(L, fns);
  lua_pop(L, 1);
}
