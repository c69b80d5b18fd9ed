/* The sparse convolution modules of lattice.nn as built-in module types:
 * Conv3d, SubmConv3d, ConvTranspose3d, GenerativeConvTranspose3d, and their
 * quantized forms QuantizedConv3d, ... Each holds its kind and kernel spec
 * (the quantized ones bits, group_size and mode too); its forward is the op
 * of lattice.ops on the fields table's weight (C_out, Kx, Ky, Kz, C_in) and
 * bias, or on the QuantizedWeight of its weight (uint32 codes), scales and
 * biases (MLX's names, as QuantizedLinear has them) and bias:
 *   m(x[, coordinates]) for Conv3d and ConvTranspose3d (a target support),
 *   m(x) for the others; m:quantized_weight() on the quantized ones.
 * lua/lattice/nn/sparse_layers.lua makes the fields. */
#include <string.h>
#include "nn_module.h"
#include "quant_binding.h"
#include "sparse_binding.h"

typedef struct conv_cfg {
  lt_relation_kind kind;
  lt_kernel_spec spec;
  const char *op;
  int quantized, bits, group_size;
  lt_quant_mode mode;
} conv_cfg;

static const char *const conv_params[] = {"weight", "bias", NULL};
static const char *const qconv_params[] = {"weight", "scales", "biases", "bias", NULL};

static int conv_forward(lua_State *L);
static int quantized_weight(lua_State *L);
static const luaL_Reg qconv_methods[] = {{"quantized_weight", quantized_weight}, {NULL, NULL}};
/* The float types, then the quantized ones in the same order. */
static const lt_l_module_type conv_types[] = {
    {"Conv3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
    {"SubmConv3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
    {"ConvTranspose3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
    {"GenerativeConvTranspose3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
    {"QuantizedConv3d", sizeof(conv_cfg), conv_forward, qconv_params, qconv_methods},
    {"QuantizedSubmConv3d", sizeof(conv_cfg), conv_forward, qconv_params, qconv_methods},
    {"QuantizedConvTranspose3d", sizeof(conv_cfg), conv_forward, qconv_params, qconv_methods},
    {"QuantizedGenerativeConvTranspose3d", sizeof(conv_cfg), conv_forward, qconv_params, qconv_methods},
};
static const lt_relation_kind conv_kinds[] = {LT_RELATION_CONV, LT_RELATION_SUBM, LT_RELATION_TRANSPOSED,
                                              LT_RELATION_GENERATIVE};
#define NCONV  (int)(sizeof conv_types / sizeof conv_types[0])
#define NKINDS (int)(sizeof conv_kinds / sizeof conv_kinds[0])

static conv_cfg *check_conv(lua_State *L, int arg) {
  const lt_l_module_type *type = lt_l_module_type_of(L, arg);
  if (!type || type->forward != conv_forward) luaL_typeerror(L, arg, "sparse convolution module");
  return lua_touserdata(L, arg);
}

/* The quantized module's weight, its tensors borrowed from the fields table. */
static lt_qweight module_qweight(lua_State *L, const conv_cfg *c) {
  return (lt_qweight){lt_l_module_tensor(L, 1, "weight", 0),
                      lt_l_module_tensor(L, 1, "scales", 0),
                      c->mode == LT_QUANT_AFFINE ? lt_l_module_tensor(L, 1, "biases", 0) : NULL,
                      c->bits,
                      c->group_size,
                      c->mode};
}

static int conv_forward(lua_State *L) {
  conv_cfg *c = check_conv(L, 1);
  lua_settop(L, 3);
  if (!lua_isnil(L, 3) && (c->kind == LT_RELATION_SUBM || c->kind == LT_RELATION_GENERATIVE))
    return luaL_error(L, "%s: takes no target coordinates", c->op);
  lt_tensor *b = lt_l_module_tensor(L, 1, "bias", 1);
  if (!c->quantized)
    return lt_l_sparse_conv_push(L, c->kind, 2, lt_l_module_tensor(L, 1, "weight", 0), NULL, b, &c->spec, 3, c->op);
  lt_qweight qw = module_qweight(L, c);
  return lt_l_sparse_conv_push(L, c->kind, 2, NULL, &qw, b, &c->spec, 3, c->op);
}

/* m:quantized_weight(): the QuantizedWeight of the module's current parts (shared). */
static int quantized_weight(lua_State *L) {
  conv_cfg *c = check_conv(L, 1);
  if (!c->quantized) return luaL_typeerror(L, 1, "quantized convolution module");
  module_qweight(L, c); /* a missing part is an error naming the module */
  lt_l_module_field(L, 1, "weight");
  lt_l_module_field(L, 1, "scales");
  lt_l_module_field(L, 1, "biases");
  lt_l_pushqweight_of(L, -3, -2, c->mode == LT_QUANT_AFFINE ? -1 : 0, c->bits, c->group_size, c->mode, c->op);
  return 1;
}

/* A list of 3 integers in field `key` of the table at arg. */
static void triple_field(lua_State *L, int arg, const char *key, int *out, const char *type) {
  lua_getfield(L, arg, key);
  if (!lua_istable(L, -1) || luaL_len(L, -1) != 3) luaL_error(L, "%s: %s must be a list of 3 integers", type, key);
  for (int a = 0; a < 3; a++) {
    lua_geti(L, -1, a + 1);
    out[a] = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* The quantized module's bits, group_size and mode from the fields table at
 * arg, checked with its parts (what load_weights will have to match). */
static void quantized_fields(lua_State *L, int arg, conv_cfg *cfg, const char *name) {
  lua_getfield(L, arg, "mode");
  cfg->mode = lt_l_quant_mode(L, lua_tostring(L, -1), name);
  lua_getfield(L, arg, "bits");
  lua_getfield(L, arg, "group_size");
  cfg->bits = (int)lua_tointeger(L, -2), cfg->group_size = (int)lua_tointeger(L, -1);
  lua_pop(L, 3);
  static const char *const keys[] = {"weight", "scales", "biases"};
  lt_tensor *t[3];
  for (int k = 0; k < 3; k++) {
    lua_getfield(L, arg, keys[k]);
    t[k] = lt_l_totensor(L, -1);
    lua_pop(L, 1);
  }
  lt_qweight qw = {t[0], t[1], t[2], cfg->bits, cfg->group_size, cfg->mode};
  lt_l_check(L, lt_qweight_check(lt_l_ctx(L), &qw, name));
}

/* lattice.core.nn.sparse_conv(name, fields): fields hold weight, bias?,
 * kernel_size, stride, padding, dilation (lists of 3), and for the quantized
 * types scales, biases, bits, group_size and mode. */
static int l_sparse_conv_module(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  for (int k = 0; k < NCONV; k++) {
    if (strcmp(name, conv_types[k].name)) continue;
    conv_cfg cfg = {.kind = conv_kinds[k % NKINDS], .op = conv_types[k].name, .quantized = k >= NKINDS};
    triple_field(L, 2, "kernel_size", cfg.spec.size, name);
    triple_field(L, 2, "stride", cfg.spec.stride, name);
    triple_field(L, 2, "padding", cfg.spec.padding, name);
    triple_field(L, 2, "dilation", cfg.spec.dilation, name);
    if (cfg.quantized) {
      quantized_fields(L, 2, &cfg, name);
    } else {
      lua_getfield(L, 2, "weight");
      if (!lt_l_totensor(L, -1)) return luaL_error(L, "%s: weight must be a lattice.Tensor", name);
      lua_pop(L, 1);
    }
    *(conv_cfg *)lt_l_module_new(L, &conv_types[k], 2) = cfg;
    return 1;
  }
  return luaL_error(L, "sparse_conv: unknown module '%s'", name);
}

void lt_l_open_nn_sparse(lua_State *L) {
  lua_getfield(L, -1, "nn");
  for (int k = 0; k < NCONV; k++) lt_l_module_register(L, &conv_types[k]);
  static const luaL_Reg fns[] = {{"sparse_conv", l_sparse_conv_module}, {NULL, NULL}};
  lt_l_register(L, fns);
  lua_pop(L, 1);
}
