/* Relations and sparse convolutions from Lua (lua/lattice/ops.lua wraps them
 * with the seed's option names):
 *   lattice.core.kernel_relation(kind, input, spec[, target]) -> Relation
 *   lattice.core.sparse_conv(kind, x, weight, bias, spec, target, op) -> SparseTensor
 * (weight a tensor or a QuantizedWeight)
 * kind is "conv", "subm", "transposed" or "generative"; spec a table
 * {size = {3}, stride = {3}, padding = {3}, dilation = {3}}; input a
 * SparseTensor or a CoordinateMapKey; target nil, a SparseTensor, a key or an
 * int32 (M, 4) coordinate tensor at the output's tensor stride. */
#include <string.h>
#include "base.h"
#include "quant_binding.h"
#include "sparse_binding.h"
#include "sparse/internal.h"

#define LT_L_RELATION "lattice.Relation"

static const char *const kinds[LT_RELATION_KINDS] = {"conv", "subm", "transposed", "generative"};

static lt_relation_kind check_kind(lua_State *L, int arg) {
  const char *k = luaL_checkstring(L, arg);
  for (int i = 0; i < LT_RELATION_KINDS; i++)
    if (!strcmp(k, kinds[i])) return (lt_relation_kind)i;
  luaL_error(L, "kernel_relation: unknown kind '%s'", k);
  return LT_RELATION_CONV;
}

static void spec_field(lua_State *L, int arg, const char *key, int *out, int def) {
  lua_getfield(L, arg, key);
  if (lua_isnil(L, -1)) {
    out[0] = out[1] = out[2] = def;
  } else {
    for (int a = 0; a < 3; a++) {
      lua_geti(L, -1, a + 1);
      out[a] = (int)luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

static lt_kernel_spec check_spec(lua_State *L, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lt_kernel_spec s;
  spec_field(L, arg, "size", s.size, 3);
  spec_field(L, arg, "stride", s.stride, 1);
  spec_field(L, arg, "padding", s.padding, 0);
  spec_field(L, arg, "dilation", s.dilation, 1);
  return s;
}

/* What a value is called in messages: its type's __name, else its Lua type. */
static const char *type_name(lua_State *L, int arg) {
  int t = luaL_getmetafield(L, arg, "__name");
  if (t == LUA_TSTRING) {
    const char *name = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the metatable */
    return name;
  }
  if (t != LUA_TNIL) lua_pop(L, 1);
  return luaL_typename(L, arg);
}

/* The map of the int32 (N, 4) tensor t at `stride`; its key userdata is pushed
 * to keep it alive. `op` prefixes the manager's messages. */
static lt_coords *coords_of_tensor(lua_State *L, lt_tensor *t, const int *stride, const char *op) {
  lt_l_pushkey(L, NULL);
  lt_coords **box = lua_touserdata(L, -1);
  lt_l_check(L, lt_coords_new(lt_l_ctx(L), box, t, stride, op));
  return *box;
}

/* The map at arg: a SparseTensor's, a key's, or that of an int32 coordinate
 * tensor at tensor stride 1 (build_kernel_relation; lua/lattice/ops.lua
 * converts tables and other integer tensors). */
static lt_coords *check_coords(lua_State *L, int arg, const char *fname) {
  if (lt_l_issparse(L, arg)) return lt_l_sparse_coords(L, arg);
  lt_coords *c = lt_l_tokey(L, arg);
  if (c) return c;
  lt_tensor *t = lt_l_totensor(L, arg);
  if (!t)
    luaL_error(L, "%s: coords must be a lattice.Tensor, a table, a SparseTensor or a CoordinateMapKey, got %s", fname,
               type_name(L, arg));
  return coords_of_tensor(L, t, (int[]){1, 1, 1}, fname);
}

/* The target map at arg (nil: none): a SparseTensor, a key, or an int32
 * coordinate tensor, which becomes a map at the output's stride. */
static lt_coords *check_target(lua_State *L, int arg, lt_relation_kind kind, lt_coords *in, const lt_kernel_spec *s,
                               const char *fname) {
  if (lua_isnoneornil(L, arg)) return NULL;
  if (lt_l_issparse(L, arg)) return lt_l_sparse_coords(L, arg);
  lt_coords *c = lt_l_tokey(L, arg);
  if (c) return c;
  lt_tensor *t = lt_l_totensor(L, arg);
  if (!t || lt_tensor_dtype(t) != LT_INT32) {
    const char *got =
        t ? lua_pushfstring(L, "a %s tensor", lt_dtype_info(lt_tensor_dtype(t))->name) : type_name(L, arg);
    luaL_error(L, "%s: coordinates must be a SparseTensor, a CoordinateMapKey or an int32 coordinate tensor, got %s",
               fname, got);
  }
  char shape[LT_SHAPE_STR_MAX];
  if (lt_tensor_ndim(t) != 2 || lt_tensor_shape(t)[1] != 4)
    luaL_error(L, "%s: coordinates must have shape {N,4} (batch, x, y, z), got %s", fname,
               lt__shape_str(shape, sizeof shape, lt_tensor_ndim(t), lt_tensor_shape(t)));
  int stride[3];
  lt_l_check(L, lt_relation_output_stride(lt_l_ctx(L), kind, in, s, stride, fname));
  /* the manager's messages about these rows read "conv3d: coordinates: rows 1 and 2 are ..." */
  return coords_of_tensor(L, t, stride, lua_pushfstring(L, "%s: coordinates", fname));
}

/* ---- Relation ---- */

typedef struct rel_box {
  lt_relation *r;
} rel_box;

static lt_relation *check_relation(lua_State *L, int arg) {
  return ((rel_box *)luaL_checkudata(L, arg, LT_L_RELATION))->r;
}

static int rel_gc(lua_State *L) {
  rel_box *b = luaL_checkudata(L, 1, LT_L_RELATION);
  lt_relation_release(b->r);
  b->r = NULL;
  return 0;
}

/* The edges (in_row, out_row, kernel_id) as int32 tensors, by output row then offset. */
static void push_edges(lua_State *L, const lt_relation *r, int which) {
  int64_t E = lt_relation_edges(r), K = lt_relation_volume(r);
  const lt_tensor *idx = lt_relation_index(r);
  int64_t n_out = lt_tensor_shape(idx)[0];
  const int32_t *p = lt_tensor_data(idx);
  lt_l_tensor *u = lt_l_newtensor(L);
  lt_l_check(L, lt_tensor_new(lt_l_ctx(L), &u->t, LT_INT32, 1, &E));
  int32_t *out = lt_tensor_data(u->t);
  int64_t e = 0;
  for (int64_t o = 0; o < n_out; o++)
    for (int64_t k = 0; k < K; k++)
      if (p[o * K + k] >= 0) out[e++] = (int32_t)(which == 0 ? p[o * K + k] : which == 1 ? o : k);
  lt_l_report_alloc(L, lt_l_ctx(L));
}

static int rel_index(lua_State *L) {
  lt_relation *r = check_relation(L, 1);
  const char *k = luaL_checkstring(L, 2);
  int K = lt_relation_volume(r);
  if (!strcmp(k, "in_row"))
    push_edges(L, r, 0);
  else if (!strcmp(k, "out_row"))
    push_edges(L, r, 1);
  else if (!strcmp(k, "kernel_id"))
    push_edges(L, r, 2);
  else if (!strcmp(k, "out_coords"))
    lt_l_newtensor(L)->t = lt_tensor_retain(lt_coords_tensor(lt_relation_output(r)));
  else if (!strcmp(k, "out_key"))
    lt_l_pushkey(L, lt_coords_retain(lt_relation_output(r)));
  else if (!strcmp(k, "in_key"))
    lt_l_pushkey(L, lt_coords_retain(lt_relation_input(r)));
  else if (!strcmp(k, "index"))
    lt_l_newtensor(L)->t = lt_tensor_retain(lt_relation_index(r));
  else if (!strcmp(k, "n_kernels"))
    lua_pushinteger(L, K);
  else if (!strcmp(k, "edges"))
    lua_pushinteger(L, (lua_Integer)lt_relation_edges(r));
  else if (!strcmp(k, "counts")) {
    const int64_t *c = lt_relation_counts(r);
    lua_createtable(L, K, 0);
    for (int i = 0; i < K; i++) lua_pushinteger(L, (lua_Integer)c[i]), lua_rawseti(L, -2, i + 1);
  } else if (!strcmp(k, "kernel_offsets")) {
    const int *off = lt_relation_offsets(r);
    lua_createtable(L, K, 0);
    for (int i = 0; i < K; i++) {
      lua_createtable(L, 3, 0);
      for (int a = 0; a < 3; a++) lua_pushinteger(L, off[i * 3 + a]), lua_rawseti(L, -2, a + 1);
      lua_rawseti(L, -2, i + 1);
    }
  } else
    lua_pushnil(L);
  return 1;
}

static int rel_tostring(lua_State *L) {
  lt_relation *r = check_relation(L, 1);
  lua_pushfstring(
      L, "Relation(%I -> %I rows, %d offsets, %I edges)", (lua_Integer)lt_coords_count(lt_relation_input(r)),
      (lua_Integer)lt_coords_count(lt_relation_output(r)), lt_relation_volume(r), (lua_Integer)lt_relation_edges(r));
  return 1;
}

static int l_kernel_relation(lua_State *L) {
  lua_settop(L, 4);
  lt_relation_kind kind = check_kind(L, 1);
  lt_coords *in = check_coords(L, 2, "build_kernel_relation");
  lt_kernel_spec spec = check_spec(L, 3);
  lt_coords *target = check_target(L, 4, kind, in, &spec, "build_kernel_relation");
  rel_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->r = NULL;
  luaL_setmetatable(L, LT_L_RELATION);
  lt_l_check(L, lt_relation_get(lt_l_ctx(L), &b->r, kind, in, target, &spec, "build_kernel_relation"));
  return 1;
}

/* ---- convolution ---- */

/* The output's batch counts: nil when the input has none, else the rows of
 * each of the input's batches (an output row in another batch, which only a
 * target can bring, is an error: the counts would not cover it). */
static void push_output_counts(lua_State *L, int xarg, const lt_coords *out, const char *op) {
  lt_l_push_sparse_counts(L, xarg);
  if (lua_isnil(L, -1)) return;
  lua_Integer batches = (lua_Integer)lua_rawlen(L, -1);
  lua_pop(L, 1);
  int64_t outside = lt_l_push_batch_counts(L, out, batches);
  if (outside >= 0)
    luaL_error(L, "%s: coordinates: row %I has batch index %d, the input's batch_counts has %I batches", op,
               (lua_Integer)outside + 1, ((const int32_t *)lt_tensor_data(lt_coords_tensor(out)))[outside * 4],
               batches);
}

int lt_l_sparse_conv_push(lua_State *L, lt_relation_kind kind, int xarg, lt_tensor *w, const lt_qweight *qw,
                          lt_tensor *bias, const lt_kernel_spec *spec, int target_arg, const char *op) {
  /* named after op: a module's forward through __call has no name of its own */
  if (!lt_l_issparse(L, xarg)) luaL_error(L, "%s: x must be a SparseTensor, got %s", op, lt_l_type_name(L, xarg));
  lt_coords *in = lt_l_sparse_coords(L, xarg);
  lt_tensor *x = lt_l_sparse_feats(L, xarg);
  lt_coords *target = check_target(L, target_arg, kind, in, spec, op);
  lt_ctx *ctx = lt_l_ctx(L);
  /* the weight against the spec before the relation: a refused call builds and caches none */
  lt_l_check(L, w ? lt__sparse_conv_check(ctx, x, w, bias, lt_coords_count(in), spec, op)
                  : lt__sparse_conv_quantized_check(ctx, x, qw, bias, lt_coords_count(in), spec, op));
  rel_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* holds the relation while the op runs */
  b->r = NULL;
  luaL_setmetatable(L, LT_L_RELATION);
  lt_l_check(L, lt_relation_get(ctx, &b->r, kind, in, target, spec, op));
  lt_l_pushkey(L, lt_coords_retain(lt_relation_output(b->r)));
  int key = lua_gettop(L);
  push_output_counts(L, xarg, lt_relation_output(b->r), op); /* before the conv: its errors record nothing */
  int counts = lua_gettop(L);
  lt_l_tensor *u = lt_l_newtensor(L);
  int feats = lua_gettop(L);
  lt_l_check(L, w ? lt_sparse_conv(ctx, &u->t, x, w, bias, b->r, op)
                  : lt_sparse_conv_quantized(ctx, &u->t, x, qw, bias, b->r, op));
  lt_l_pushsparse(L, key, feats, counts);
  lt_l_report_alloc(L, ctx);
  return 1;
}

static int l_sparse_conv(lua_State *L) {
  lua_settop(L, 7);
  lt_relation_kind kind = check_kind(L, 1);
  lt_qweight qw;
  int quantized = lt_l_toqweight(L, 3, &qw);
  lt_tensor *w = quantized ? NULL : lt_l_checktensor(L, 3), *bias = lua_isnil(L, 4) ? NULL : lt_l_checktensor(L, 4);
  lt_kernel_spec spec = check_spec(L, 5);
  return lt_l_sparse_conv_push(L, kind, 2, w, quantized ? &qw : NULL, bias, &spec, 6, luaL_checkstring(L, 7));
}

void lt_l_open_sparse_ops(lua_State *L) {
  luaL_newmetatable(L, LT_L_RELATION);
  static const luaL_Reg meta[] = {{"__gc", rel_gc}, {"__index", rel_index}, {"__tostring", rel_tostring}, {NULL, NULL}};
  lt_l_register(L, meta); /* the context as upvalue: __index makes tensors */
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"kernel_relation", l_kernel_relation}, {"sparse_conv", l_sparse_conv}, {NULL, NULL}};
  lt_l_register(L, fns);
}
