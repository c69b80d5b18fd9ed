/* The built-in layers of lattice.nn as userdata types: Linear, Embedding,
 * LayerNorm, RMSNorm, BatchNorm, Dropout, Identity and the activations. Each
 * forward is one C call on the tensors of the module's fields table. The
 * constructors here take a ready fields table (lua/lattice/nn/layers.lua makes
 * it, with the initial weights) and check it. Every forward but Embedding's
 * also takes a SparseTensor: it transforms the features and returns a
 * SparseTensor of the same coordinates (BatchNorm's statistics are then over
 * the sparse rows). */
#include <math.h>
#include <string.h>
#include "base.h"
#include "nn_module.h"
#include "sparse_binding.h"

/* The tensor a forward gets at arg 2: a tensor, or a SparseTensor's features. */
static lt_tensor *input(lua_State *L, const char *type) { return lt_l_module_input(L, type, "x", 1); }

/* lt_l_result for the forwards that take input(): the new tensor at the top,
 * for a SparseTensor input, becomes the features of a SparseTensor with the
 * input's coordinates (identity and batch counts kept). */
static int output(lua_State *L, lt_status st) {
  lt_l_result(L, st);
  if (lt_l_issparse(L, 2)) lt_l_push_with_feats(L, 2, -1);
  return 1;
}

/* Checks the fields table's tensor `key`: a float tensor of `ndim` dims (and
 * first dim `d0` when d0 >= 0), or absent when optional. */
static lt_tensor *check_param(lua_State *L, int arg, const char *type, const char *key, int ndim, int64_t d0,
                              int optional) {
  lua_getfield(L, arg, key);
  lt_tensor *t = lt_l_totensor(L, -1);
  int absent = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (absent && optional) return NULL;
  if (!t) luaL_error(L, "%s: %s must be a lattice.Tensor", type, key);
  char s[LT_SHAPE_STR_MAX];
  if (!lt_dtype_info(lt_tensor_dtype(t))->is_float)
    luaL_error(L, "%s: %s must be a float tensor, got %s", type, key, lt_dtype_info(lt_tensor_dtype(t))->name);
  if (lt_tensor_ndim(t) != ndim || (d0 >= 0 && lt_tensor_shape(t)[0] != d0))
    luaL_error(L, "%s: %s has shape %s", type, key, lt__shape_str(s, sizeof s, lt_tensor_ndim(t), lt_tensor_shape(t)));
  return t;
}

/* ---- Linear, Embedding ---- */

static const char *const linear_params[] = {"weight", "bias", NULL};

static int linear_forward(lua_State *L);
static const lt_l_module_type linear_type = {"Linear", 0, linear_forward, linear_params, NULL};

static int linear_forward(lua_State *L) {
  lt_l_module_check(L, 1, &linear_type);
  lt_tensor *x = input(L, linear_type.name), *w = lt_l_module_tensor(L, 1, "weight", 0),
            *b = lt_l_module_tensor(L, 1, "bias", 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  return output(L, lt_linear(lt_l_ctx(L), &u->t, x, w, b));
}

static int l_linear(lua_State *L) {
  lt_tensor *w = check_param(L, 1, "Linear", "weight", 2, -1, 0);
  check_param(L, 1, "Linear", "bias", 1, lt_tensor_shape(w)[0], 1);
  lt_l_module_new(L, &linear_type, 1);
  return 1;
}

static const char *const embedding_params[] = {"weight", NULL};

static int embedding_forward(lua_State *L);
static int embedding_as_linear(lua_State *L);
static const luaL_Reg embedding_methods[] = {{"as_linear", embedding_as_linear}, {NULL, NULL}};
static const lt_l_module_type embedding_type = {"Embedding", 0, embedding_forward, embedding_params, embedding_methods};

static int embedding_forward(lua_State *L) {
  lt_l_module_check(L, 1, &embedding_type);
  lt_tensor *ids = lt_l_module_input(L, embedding_type.name, "ids", 0), *w = lt_l_module_tensor(L, 1, "weight", 0);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_embedding(lt_l_ctx(L), &u->t, w, ids));
}

/* emb:as_linear(x) = x @ weight^T: the output head tied to the embedding. */
static int embedding_as_linear(lua_State *L) {
  lt_l_module_check(L, 1, &embedding_type);
  lt_tensor *x = lt_l_checktensor(L, 2), *w = lt_l_module_tensor(L, 1, "weight", 0);
  lt_l_tensor *u = lt_l_newtensor(L);
  return lt_l_result(L, lt_linear(lt_l_ctx(L), &u->t, x, w, NULL));
}

static int l_embedding(lua_State *L) {
  check_param(L, 1, "Embedding", "weight", 2, -1, 0);
  lt_l_module_new(L, &embedding_type, 1);
  return 1;
}

/* x's channels (its last axis) against the layer's `want`, for an x of at
 * least `min_ndim` axes (the op itself refuses fewer). Called when the layer
 * has no weight or running statistics, which would otherwise have the op
 * refuse a wrong count: without them it would normalise any count. */
static void check_channels(lua_State *L, const char *type, const lt_tensor *x, int min_ndim, lua_Integer want) {
  int nd = lt_tensor_ndim(x);
  if (nd < min_ndim || lt_tensor_shape(x)[nd - 1] == want) return;
  luaL_error(L, "%s: x has %I channels, the layer has %I", type, (lua_Integer)lt_tensor_shape(x)[nd - 1], want);
}

/* ---- LayerNorm, RMSNorm ---- */

typedef struct norm_cfg {
  double eps;
  lua_Integer dims;
} norm_cfg;

static const char *const norm_params[] = {"weight", "bias", NULL};

static int layer_norm_forward(lua_State *L);
static int rms_norm_forward(lua_State *L);
static const lt_l_module_type layer_norm_type = {"LayerNorm", sizeof(norm_cfg), layer_norm_forward, norm_params, NULL};
static const lt_l_module_type rms_norm_type = {"RMSNorm", sizeof(norm_cfg), rms_norm_forward, norm_params, NULL};

static int layer_norm_forward(lua_State *L) {
  norm_cfg *c = lt_l_module_check(L, 1, &layer_norm_type);
  lt_tensor *x = input(L, layer_norm_type.name), *w = lt_l_module_tensor(L, 1, "weight", 1),
            *b = lt_l_module_tensor(L, 1, "bias", 1);
  if (!w) check_channels(L, layer_norm_type.name, x, 1, c->dims);
  lt_l_tensor *u = lt_l_newtensor(L);
  return output(L, lt_layer_norm(lt_l_ctx(L), &u->t, x, w, b, c->eps));
}

static int rms_norm_forward(lua_State *L) {
  norm_cfg *c = lt_l_module_check(L, 1, &rms_norm_type);
  lt_tensor *x = input(L, rms_norm_type.name), *w = lt_l_module_tensor(L, 1, "weight", 1);
  lt_l_tensor *u = lt_l_newtensor(L);
  return output(L, lt_rms_norm(lt_l_ctx(L), &u->t, x, w, c->eps));
}

static int new_norm(lua_State *L, const lt_l_module_type *type, int has_bias) {
  double eps = lt_l_module_number(L, 1, "eps", 0, HUGE_VAL, type->name);
  lua_getfield(L, 1, "dims");
  lua_Integer dims = lua_tointeger(L, -1);
  lua_pop(L, 1);
  check_param(L, 1, type->name, "weight", 1, dims, 1);
  if (has_bias) check_param(L, 1, type->name, "bias", 1, dims, 1);
  norm_cfg *c = lt_l_module_new(L, type, 1);
  c->eps = eps, c->dims = dims;
  return 1;
}

static int l_layer_norm(lua_State *L) { return new_norm(L, &layer_norm_type, 1); }
static int l_rms_norm(lua_State *L) { return new_norm(L, &rms_norm_type, 0); }

/* ---- BatchNorm ---- */

typedef struct batch_norm_cfg {
  double eps, momentum;
  int track;
  lua_Integer features;
} batch_norm_cfg;

static const char *const batch_norm_params[] = {"weight", "bias", "running_mean", "running_var", NULL};

static int batch_norm_forward(lua_State *L);
static const lt_l_module_type batch_norm_type = {"BatchNorm", sizeof(batch_norm_cfg), batch_norm_forward,
                                                 batch_norm_params, NULL};

/* out = (1 - m) running + m batch, in running's dtype (C elements). */
static lt_status running_update(lt_ctx *ctx, lt_tensor **out, lt_tensor *running, lt_tensor *batch, double m) {
  int64_t c = lt_tensor_size(running);
  lt_status st = lt_tensor_new(ctx, out, lt_tensor_dtype(running), 1, &c);
  if (st) return st;
  const lt_dtype_traits *tr = lt_dtype_info(lt_tensor_dtype(running));
  char *p = lt_tensor_data(*out);
  for (int64_t j = 0; j < c; j++)
    tr->store(p + j * (int64_t)tr->size, (1 - m) * lt_tensor_get(running, j) + m * lt_tensor_get(batch, j));
  return LT_OK;
}

/* In training the batch statistics normalise and, when tracked, move the
 * running averages: two new tensors replace them in the fields table. */
static void update_running(lua_State *L, const batch_norm_cfg *c, lt_tensor *bm, lt_tensor *bv) {
  lt_ctx *ctx = lt_l_ctx(L);
  lt_tensor *rm = lt_l_module_tensor(L, 1, "running_mean", 0), *rv = lt_l_module_tensor(L, 1, "running_var", 0);
  lt_l_tensor *um = lt_l_newtensor(L), *uv = lt_l_newtensor(L);
  lt_status st = running_update(ctx, &um->t, rm, bm, c->momentum);
  if (!st) st = running_update(ctx, &uv->t, rv, bv, c->momentum);
  lt_tensor_release(bm), lt_tensor_release(bv);
  lt_l_check(L, st);
  lt_l_module_setfield(L, 1, "running_var");
  lt_l_module_setfield(L, 1, "running_mean");
}

static int batch_norm_forward(lua_State *L) {
  batch_norm_cfg *c = lt_l_module_check(L, 1, &batch_norm_type);
  lt_tensor *x = input(L, batch_norm_type.name), *w = lt_l_module_tensor(L, 1, "weight", 1),
            *b = lt_l_module_tensor(L, 1, "bias", 1);
  lt_tensor *rm = c->track ? lt_l_module_tensor(L, 1, "running_mean", 0) : NULL;
  lt_tensor *rv = c->track ? lt_l_module_tensor(L, 1, "running_var", 0) : NULL;
  if (!w && !rm) check_channels(L, batch_norm_type.name, x, 2, c->features);
  int training = lt_l_module_training(L, 1), batch = training || !c->track;
  lt_tensor *bm = NULL, *bv = NULL;
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_status st = lt_batch_norm(lt_l_ctx(L), &u->t, &bm, &bv, x, w, b, rm, rv, batch, c->eps);
  if (st == LT_OK && training && c->track) {
    update_running(L, c, bm, bv); /* pushes and pops its own values: u stays on top */
  } else {
    lt_tensor_release(bm), lt_tensor_release(bv);
  }
  return output(L, st);
}

static int l_batch_norm(lua_State *L) {
  double eps = lt_l_module_number(L, 1, "eps", 0, HUGE_VAL, "BatchNorm");
  double momentum = lt_l_module_number(L, 1, "momentum", 0, 1, "BatchNorm");
  lua_getfield(L, 1, "num_features");
  lua_Integer n = lua_tointeger(L, -1);
  lua_getfield(L, 1, "track_running_stats");
  int track = lua_toboolean(L, -1);
  lua_pop(L, 2);
  for (int k = 0; batch_norm_params[k]; k++) /* the running statistics are required when tracked */
    check_param(L, 1, "BatchNorm", batch_norm_params[k], 1, n, !(track && k >= 2));
  batch_norm_cfg *c = lt_l_module_new(L, &batch_norm_type, 1);
  *c = (batch_norm_cfg){eps, momentum, track, n};
  return 1;
}

/* ---- Dropout, Identity ---- */

typedef struct dropout_cfg {
  double p;
} dropout_cfg;

static int dropout_forward(lua_State *L);
static const lt_l_module_type dropout_type = {"Dropout", sizeof(dropout_cfg), dropout_forward, NULL, NULL};

/* The identity in evaluation mode (and for p = 0): the input itself. */
static int dropout_forward(lua_State *L) {
  dropout_cfg *c = lt_l_module_check(L, 1, &dropout_type);
  lt_tensor *x = input(L, dropout_type.name);
  if (!lt_l_module_training(L, 1) || c->p == 0) {
    lua_settop(L, 2);
    return 1;
  }
  lt_l_tensor *u = lt_l_newtensor(L);
  return output(L, lt_dropout(lt_l_ctx(L), &u->t, x, c->p));
}

static int l_dropout(lua_State *L) {
  double p = lt_l_module_number(L, 1, "p", 0, 1, "Dropout");
  if (p >= 1) return luaL_error(L, "Dropout: p must be in [0, 1), got 1"); /* p = 1 would divide by 0 */
  dropout_cfg *c = lt_l_module_new(L, &dropout_type, 1);
  c->p = p;
  return 1;
}

static int identity_forward(lua_State *L) {
  lua_settop(L, 2);
  return 1;
}
static const lt_l_module_type identity_type = {"Identity", 0, identity_forward, NULL, NULL};

static int l_identity(lua_State *L) {
  lt_l_module_new(L, &identity_type, 1);
  return 1;
}

/* ---- activations ---- */

typedef struct activation_cfg {
  lt_unary_op op;
  double alpha;
} activation_cfg;

static int activation_forward(lua_State *L) {
  const lt_l_module_type *type = lt_l_module_type_of(L, 1);
  if (!type || type->forward != activation_forward) return luaL_typeerror(L, 1, "activation module");
  activation_cfg *c = lua_touserdata(L, 1);
  lt_tensor *x = input(L, type->name);
  lt_l_tensor *u = lt_l_newtensor(L);
  return output(L, lt_unary(lt_l_ctx(L), &u->t, c->op, x, c->alpha));
}

static const lt_l_module_type activation_types[] = {
    {"ReLU", sizeof(activation_cfg), activation_forward, NULL, NULL},
    {"LeakyReLU", sizeof(activation_cfg), activation_forward, NULL, NULL},
    {"GELU", sizeof(activation_cfg), activation_forward, NULL, NULL},
    {"SiLU", sizeof(activation_cfg), activation_forward, NULL, NULL},
    {"Sigmoid", sizeof(activation_cfg), activation_forward, NULL, NULL},
    {"Tanh", sizeof(activation_cfg), activation_forward, NULL, NULL},
    {"Softplus", sizeof(activation_cfg), activation_forward, NULL, NULL},
};
#define NACTIVATIONS (int)(sizeof activation_types / sizeof activation_types[0])

/* lattice.core.nn.activation(name, fields): the activation module of that name;
 * LeakyReLU reads fields.negative_slope, GELU fields.approx ("none", or "tanh"
 * and its MLX name "precise"). */
static int l_activation(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  static const lt_unary_op ops[] = {LT_UNARY_RELU,    LT_UNARY_LEAKY_RELU, LT_UNARY_GELU,    LT_UNARY_SILU,
                                    LT_UNARY_SIGMOID, LT_UNARY_TANH,       LT_UNARY_SOFTPLUS};
  for (int k = 0; k < NACTIVATIONS; k++) {
    if (strcmp(name, activation_types[k].name) != 0) continue;
    activation_cfg cfg = {ops[k], 0};
    if (ops[k] == LT_UNARY_LEAKY_RELU)
      cfg.alpha = lt_l_module_number(L, 2, "negative_slope", -HUGE_VAL, HUGE_VAL, name);
    if (ops[k] == LT_UNARY_GELU) {
      lua_getfield(L, 2, "approx");
      const char *a = lua_tostring(L, -1);
      int tanh_approx = a && (strcmp(a, "tanh") == 0 || strcmp(a, "precise") == 0);
      if (!a || (strcmp(a, "none") && !tanh_approx))
        return luaL_error(L, "GELU: approx must be 'none', 'tanh' or 'precise', got %s", a ? a : luaL_typename(L, -1));
      if (tanh_approx) cfg.op = LT_UNARY_GELU_TANH;
      lua_pop(L, 1);
    }
    *(activation_cfg *)lt_l_module_new(L, &activation_types[k], 2) = cfg;
    return 1;
  }
  return luaL_error(L, "activation: unknown activation '%s'", name);
}

void lt_l_open_nn(lua_State *L) {
  lua_newtable(L);
  lt_l_module_open(L);
  const lt_l_module_type *types[] = {&linear_type,     &embedding_type, &layer_norm_type, &rms_norm_type,
                                     &batch_norm_type, &dropout_type,   &identity_type};
  for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) lt_l_module_register(L, types[k]);
  for (int k = 0; k < NACTIVATIONS; k++) lt_l_module_register(L, &activation_types[k]);
  static const luaL_Reg fns[] = {{"Linear", l_linear},     {"Embedding", l_embedding},   {"LayerNorm", l_layer_norm},
                                 {"RMSNorm", l_rms_norm},  {"BatchNorm", l_batch_norm},  {"Dropout", l_dropout},
                                 {"Identity", l_identity}, {"activation", l_activation}, {NULL, NULL}};
  lt_l_register(L, fns);
  lua_setfield(L, -2, "nn");
}
