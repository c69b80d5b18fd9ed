/* The sparse convolution modules of lattice.nn as built-in module types:
 * Conv3d, SubmConv3d, ConvTranspose3d, GenerativeConvTranspose3d. Each holds
 * its kind and kernel spec; its forward is the op of lattice.ops on the
 * weight (C_out, Kx, Ky, Kz, C_in) and bias of its fields table:
 *   m(x[, coordinates]) for Conv3d and ConvTranspose3d (a target support),
 *   m(x) for the others. lua/lattice/nn/sparse_layers.lua makes the fields. */
#include <string.h>
#include "nn_module.h"
#include "sparse_binding.h"

typedef struct conv_cfg {
  lt_relation_kind kind;
  lt_kernel_spec spec;
  const char *op;
} conv_cfg;

static const char *const conv_params[] = {"weight", "bias", NULL};

static int conv_forward(lua_State *L);
static const lt_l_module_type conv_types[] = {
    {"Conv3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
    {"SubmConv3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
    {"ConvTranspose3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
    {"GenerativeConvTranspose3d", sizeof(conv_cfg), conv_forward, conv_params, NULL},
};
static const lt_relation_kind conv_kinds[] = {LT_RELATION_CONV, LT_RELATION_SUBM, LT_RELATION_TRANSPOSED,
                                              LT_RELATION_GENERATIVE};
static const char *const conv_ops[] = {"Conv3d", "SubmConv3d", "ConvTranspose3d", "GenerativeConvTranspose3d"};
#define NCONV (int)(sizeof conv_types / sizeof conv_types[0])

static int conv_forward(lua_State *L) {
  const lt_l_module_type *type = lt_l_module_type_of(L, 1);
  if (!type || type->forward != conv_forward) return luaL_typeerror(L, 1, "sparse convolution module");
  conv_cfg *c = lua_touserdata(L, 1);
  lua_settop(L, 3);
  if (!lua_isnil(L, 3) && (c->kind == LT_RELATION_SUBM || c->kind == LT_RELATION_GENERATIVE))
    return luaL_error(L, "%s: takes no target coordinates", c->op);
  lt_tensor *w = lt_l_module_tensor(L, 1, "weight", 0), *b = lt_l_module_tensor(L, 1, "bias", 1);
  return lt_l_sparse_conv_push(L, c->kind, 2, w, b, &c->spec, 3, c->op);
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

/* lattice.core.nn.sparse_conv(name, fields): fields hold weight, bias?,
 * kernel_size, stride, padding, dilation (lists of 3). */
static int l_sparse_conv_module(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  for (int k = 0; k < NCONV; k++) {
    if (strcmp(name, conv_types[k].name)) continue;
    conv_cfg cfg = {.kind = conv_kinds[k], .op = conv_ops[k]};
    triple_field(L, 2, "kernel_size", cfg.spec.size, name);
    triple_field(L, 2, "stride", cfg.spec.stride, name);
    triple_field(L, 2, "padding", cfg.spec.padding, name);
    triple_field(L, 2, "dilation", cfg.spec.dilation, name);
    lua_getfield(L, 2, "weight");
    if (!lt_l_totensor(L, -1)) return luaL_error(L, "%s: weight must be a lattice.Tensor", name);
    lua_pop(L, 1);
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
