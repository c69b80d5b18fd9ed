/* The config binding: lattice.BlockConfig and lattice.ModelConfig, userdata
 * holding the plain structs of lattice/transformer.h, so a kernel's binding
 * reads them directly (lt_l_checkblockconfig). They are values, frozen as
 * the seed's dataclasses are: fields read as cfg.d_model, derived values as
 * cfg.head_dim, and cfg:replace{...} makes a modified copy. Everything a
 * config holds is Lua memory (a model's block_configs array is a userdata
 * kept as its user value), so an error at any point leaks nothing; the
 * malloc'd texts of the JSON functions sit in a box whose __gc frees them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"
#include "io/numtext.h"
#include "transformer/config.h"

#define LT_L_BLOCK_CONFIG "lattice.BlockConfig"
#define LT_L_MODEL_CONFIG "lattice.ModelConfig"
#define LT_L_CBOX         "lattice.CBuffer"
#define MAX_UNKNOWN       8 /* unknown keys named in one message */

/* ---- the userdata ---- */

static lt_block_config *push_block(lua_State *L, const lt_block_config *c) {
  lt_block_config *u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = *c;
  luaL_setmetatable(L, LT_L_BLOCK_CONFIG);
  return u;
}

/* A new ModelConfig copying m, its block_configs (n of them) into a buffer
 * userdata that is its user value. */
static lt_model_config *push_model(lua_State *L, const lt_model_config *m, int64_t n) {
  lt_block_config *layers = NULL;
  if (m->block_configs) {
    layers = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *layers, 0);
    memcpy(layers, m->block_configs, (size_t)n * sizeof *layers);
  } else {
    lua_pushnil(L);
  }
  lt_model_config *u = lua_newuserdatauv(L, sizeof *u, 1);
  *u = *m;
  u->block_configs = layers;
  luaL_setmetatable(L, LT_L_MODEL_CONFIG);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return u;
}

const lt_block_config *lt_l_checkblockconfig(lua_State *L, int arg) {
  return luaL_checkudata(L, arg, LT_L_BLOCK_CONFIG);
}

const lt_model_config *lt_l_checkmodelconfig(lua_State *L, int arg) {
  return luaL_checkudata(L, arg, LT_L_MODEL_CONFIG);
}

static int64_t nlayers(const lt_model_config *m) { return m->block_configs ? m->n_layers : 0; }

/* A box for malloc'd memory that must not leak when an error jumps past it. */
typedef struct cbox {
  void *p;
} cbox;

static int cbox_gc(lua_State *L) {
  cbox *b = lua_touserdata(L, 1);
  free(b->p);
  b->p = NULL;
  return 0;
}

static cbox *push_box(lua_State *L) {
  cbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  luaL_setmetatable(L, LT_L_CBOX);
  return b;
}

/* ---- Lua values into fields ---- */

/* What a Lua value of field f must be. */
static const char *lua_expects(const lt_config_field *f) {
  switch (f->type) {
  case LT_CONFIG_STRING: return "a string";
  case LT_CONFIG_INT: return "an integer";
  case LT_CONFIG_OPT_INT: return "an integer or nil";
  case LT_CONFIG_FLOAT: return "a number";
  case LT_CONFIG_BOOL: return "a boolean";
  default: return lt_config_field_expects(f);
  }
}

static int wrong(lua_State *L, const char *who, const lt_config_field *f, int idx, const char *expects) {
  return luaL_error(L, "%s: %s must be %s, got %s", who, f->name, expects, lt_l_valuename(L, idx));
}

/* The integer at idx (a float with an integer value counts), else an error. */
static int64_t read_int(lua_State *L, const char *who, const lt_config_field *f, int idx) {
  int isint = 0;
  lua_Integer v = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &isint) : 0;
  if (!isint) wrong(L, who, f, idx, lua_expects(f));
  if (f->type == LT_CONFIG_OPT_INT && v == 0) wrong(L, who, f, idx, lt_config_field_expects(f)); /* 0 means None */
  return v;
}

static void read_string(lua_State *L, const char *who, const lt_config_field *f, int idx, char *dst) {
  if (lua_type(L, idx) != LUA_TSTRING) wrong(L, who, f, idx, lua_expects(f));
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (n == 0 || n >= LT_CONFIG_NAME_MAX || strlen(s) != n)
    luaL_error(L, "%s: %s must be %s, got %s", who, f->name, lt_config_field_expects(f),
               lua_pushfstring(L, "%d bytes", (int)n));
  memset(dst, 0, LT_CONFIG_NAME_MAX);
  memcpy(dst, s, n);
}

/* A list of BlockConfig at idx into a new buffer userdata left on the stack;
 * returns its length. */
static int64_t read_layers(lua_State *L, const char *who, const lt_config_field *f, int idx, lt_model_config *m) {
  if (!lua_istable(L, idx)) wrong(L, who, f, idx, lt_config_field_expects(f));
  lua_Integer n = lt_l_seqlen(L, idx, who, "block_configs");
  lt_block_config *layers = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *layers, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    const lt_block_config *c = luaL_testudata(L, -1, LT_L_BLOCK_CONFIG);
    if (!c) luaL_error(L, "%s: block_configs[%I] must be a lattice.BlockConfig, got %s", who, i, luaL_typename(L, -1));
    layers[i - 1] = *c;
    lua_pop(L, 1);
  }
  m->block_configs = layers;
  return n;
}

/* The value at idx into field f of the struct at base. A model's
 * block_configs leave their buffer on the stack (*n gets the length). */
static void read_field(lua_State *L, const char *who, const lt_config_field *f, int idx, void *base, int64_t *n) {
  char *p = (char *)base + f->offset;
  int none = lua_isnil(L, idx) || (lua_type(L, idx) == LUA_TBOOLEAN && !lua_toboolean(L, idx));
  switch (f->type) {
  case LT_CONFIG_STRING: read_string(L, who, f, idx, p); break;
  case LT_CONFIG_INT: *(int64_t *)p = read_int(L, who, f, idx); break;
  case LT_CONFIG_OPT_INT: *(int64_t *)p = none ? 0 : read_int(L, who, f, idx); break;
  case LT_CONFIG_FLOAT:
    if (lua_type(L, idx) != LUA_TNUMBER) wrong(L, who, f, idx, lua_expects(f));
    *(double *)p = lua_tonumber(L, idx);
    break;
  case LT_CONFIG_BOOL:
    if (lua_type(L, idx) != LUA_TBOOLEAN) wrong(L, who, f, idx, lua_expects(f));
    *(int *)p = lua_toboolean(L, idx);
    break;
  case LT_CONFIG_BLOCK: {
    const lt_block_config *c = luaL_testudata(L, idx, LT_L_BLOCK_CONFIG);
    if (!c) wrong(L, who, f, idx, lt_config_field_expects(f));
    *(lt_block_config *)p = *c;
    break;
  }
  case LT_CONFIG_BLOCK_LIST:
    if (none) {
      ((lt_model_config *)base)->block_configs = NULL;
      *n = 0;
    } else {
      *n = read_layers(L, who, f, idx, base);
    }
    break;
  }
}

/* Sorts the (few) names in place, for a message that is the same every run. */
static void sort_names(const char **names, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      const char *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
}

/* "<who>: unknown field 'x'" (or fields, sorted) for any key of the table at
 * t that names no field of `kind`. The names are collected in a table on the
 * stack, which keeps them alive while they are sorted. */
static void check_keys(lua_State *L, int t, lt_config_kind kind, const char *who) {
  lua_newtable(L);
  int u = lua_gettop(L), n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    int known = lua_type(L, -1) == LUA_TSTRING && lt_config_field_named(kind, lua_tostring(L, -1));
    if (!known && n < MAX_UNKNOWN) {
      luaL_tolstring(L, -1, NULL);
      lua_rawseti(L, u, ++n);
    }
  }
  if (n == 0) {
    lua_pop(L, 1);
    return;
  }
  const char *names[MAX_UNKNOWN];
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, u, i + 1);
    names[i] = lua_tostring(L, -1); /* the string stays in u */
    lua_pop(L, 1);
  }
  sort_names(names, n);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; i < n; i++) {
    if (i) luaL_addstring(&b, ", ");
    luaL_addchar(&b, '\'');
    luaL_addstring(&b, names[i]);
    luaL_addchar(&b, '\'');
  }
  luaL_pushresult(&b);
  luaL_error(L, "%s: unknown field%s %s", who, n > 1 ? "s" : "", lua_tostring(L, -1));
}

/* Fills the struct at base from the table at t (fields it names; the rest
 * keep their values), in the field table's order so the first error is the
 * same every run. Returns the model's block_configs count (buffer on the
 * stack when there is one). */
static int64_t read_table(lua_State *L, int t, lt_config_kind kind, void *base, int64_t n, const char *who) {
  if (lua_isnoneornil(L, t)) return n;
  if (!lua_istable(L, t)) luaL_error(L, "%s: expected a table of fields, got %s", who, luaL_typename(L, t));
  check_keys(L, t, kind, who);
  int count;
  const lt_config_field *fs = lt_config_fields(kind, &count);
  for (int i = 0; i < count; i++) {
    int top = lua_gettop(L);
    if (lua_getfield(L, t, fs[i].name) == LUA_TNIL) { /* absent: keeps its value */
      lua_pop(L, 1);
      continue;
    }
    read_field(L, who, &fs[i], top + 1, base, &n);
    lua_remove(L, top + 1); /* the value; a block_configs buffer stays above it */
  }
  return n;
}

/* ---- constructors and replace ---- */

static void check_block(lua_State *L, const lt_block_config *c, const char *who) {
  lt_l_check(L, lt__block_config_check(lt_l_ctx(L), c, who));
}

static int new_block(lua_State *L, const lt_block_config *from, int t, const char *who) {
  lt_block_config c = *from;
  read_table(L, t, LT_CONFIG_BLOCK_KIND, &c, 0, who);
  check_block(L, &c, who);
  push_block(L, &c);
  return 1;
}

/* The model's block_configs buffer stays on the stack while it is checked
 * and copied, so the pointer into it stays valid. */
static int new_model(lua_State *L, const lt_model_config *from, int t, const char *who) {
  lt_model_config m = *from;
  int64_t n = read_table(L, t, LT_CONFIG_MODEL_KIND, &m, nlayers(from), who);
  lt_l_check(L, lt__model_config_check(lt_l_ctx(L), &m, n, who));
  push_model(L, &m, n);
  return 1;
}

/* lattice.BlockConfig([fields]): the table is the __call's second argument. */
static int l_block_config(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "BlockConfig");
  lt_block_config c;
  lt_block_config_init(&c);
  return new_block(L, &c, 2, "BlockConfig");
}

static int l_model_config(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "ModelConfig");
  lt_model_config m;
  lt_model_config_init(&m);
  return new_model(L, &m, 2, "ModelConfig");
}

static int block_replace(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "BlockConfig:replace");
  return new_block(L, lt_l_checkblockconfig(L, 1), 2, "BlockConfig:replace");
}

static int model_replace(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "ModelConfig:replace");
  return new_model(L, lt_l_checkmodelconfig(L, 1), 2, "ModelConfig:replace");
}

/* ---- fields out ---- */

/* Pushes field f of the struct at base (None as nil). */
static void push_field(lua_State *L, const lt_config_field *f, const void *base) {
  const char *p = (const char *)base + f->offset;
  int64_t v;
  switch (f->type) {
  case LT_CONFIG_STRING: lua_pushstring(L, p); break;
  case LT_CONFIG_BOOL: lua_pushboolean(L, *(const int *)p); break;
  case LT_CONFIG_FLOAT: lua_pushnumber(L, *(const double *)p); break;
  case LT_CONFIG_INT:
  case LT_CONFIG_OPT_INT:
    memcpy(&v, p, sizeof v);
    if (f->type == LT_CONFIG_OPT_INT && v == 0)
      lua_pushnil(L);
    else
      lua_pushinteger(L, v);
    break;
  case LT_CONFIG_BLOCK: push_block(L, (const lt_block_config *)p); break;
  case LT_CONFIG_BLOCK_LIST: {
    const lt_model_config *m = base;
    if (!m->block_configs) {
      lua_pushnil(L);
      break;
    }
    lua_createtable(L, (int)m->n_layers, 0);
    for (int64_t i = 0; i < m->n_layers; i++) {
      push_block(L, &m->block_configs[i]);
      lua_rawseti(L, -2, i + 1);
    }
    break;
  }
  }
}

/* cfg:to_table(): the fields as a plain table, as the constructor takes them. */
static int to_table(lua_State *L, lt_config_kind kind, const void *base) {
  int n;
  const lt_config_field *fs = lt_config_fields(kind, &n);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    push_field(L, &fs[i], base);
    lua_setfield(L, -2, fs[i].name);
  }
  return 1;
}

static int block_to_table(lua_State *L) { return to_table(L, LT_CONFIG_BLOCK_KIND, lt_l_checkblockconfig(L, 1)); }
static int model_to_table(lua_State *L) { return to_table(L, LT_CONFIG_MODEL_KIND, lt_l_checkmodelconfig(L, 1)); }

/* model:get_block_config(i): layer i's config, i from 1 as Lua counts. */
static int model_get_block_config(lua_State *L) {
  lt_l_checkmaxargs(L, 2, "get_block_config");
  const lt_model_config *m = lt_l_checkmodelconfig(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  if (i < 1 || i > m->n_layers)
    return luaL_error(L, "get_block_config: layer %I is out of range for %I layers", i, (lua_Integer)m->n_layers);
  push_block(L, lt_model_config_layer(m, i - 1));
  return 1;
}

/* ---- tostring: a constructor expression that builds the config again ---- */

static void add_float(luaL_Buffer *b, double v) {
  char buf[40];
  lt__format_double_exact(buf, sizeof buf, 14, v);
  luaL_addstring(b, buf);
  if (!strpbrk(buf, ".eEn")) luaL_addstring(b, ".0"); /* a float reads as one, as Lua prints it */
}

/* s as a Lua string literal: quotes and backslashes escaped, other control
 * bytes as decimal escapes. */
static void add_quoted(luaL_Buffer *b, const char *s) {
  luaL_addchar(b, '"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      luaL_addchar(b, '\\');
      luaL_addchar(b, (char)c);
    } else if (c < 32 || c == 127) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\%03u", c);
      luaL_addstring(b, esc);
    } else {
      luaL_addchar(b, (char)c);
    }
  }
  luaL_addchar(b, '"');
}

static void add_block(lua_State *L, luaL_Buffer *b, const lt_block_config *c);

static void add_value(lua_State *L, luaL_Buffer *b, const lt_config_field *f, const void *base) {
  const char *p = (const char *)base + f->offset;
  int64_t v;
  switch (f->type) {
  case LT_CONFIG_STRING: add_quoted(b, p); break;
  case LT_CONFIG_BOOL: luaL_addstring(b, *(const int *)p ? "true" : "false"); break;
  case LT_CONFIG_FLOAT: add_float(b, *(const double *)p); break;
  case LT_CONFIG_INT:
  case LT_CONFIG_OPT_INT:
    memcpy(&v, p, sizeof v);
    if (f->type == LT_CONFIG_OPT_INT && v == 0)
      luaL_addstring(b, "nil");
    else {
      lua_pushinteger(L, v);
      luaL_addvalue(b);
    }
    break;
  case LT_CONFIG_BLOCK: add_block(L, b, (const lt_block_config *)p); break;
  case LT_CONFIG_BLOCK_LIST: {
    const lt_model_config *m = base;
    if (!m->block_configs) {
      luaL_addstring(b, "nil");
      break;
    }
    luaL_addchar(b, '{');
    for (int64_t i = 0; i < m->n_layers; i++) {
      if (i) luaL_addstring(b, ", ");
      add_block(L, b, &m->block_configs[i]);
    }
    luaL_addchar(b, '}');
    break;
  }
  }
}

static void add_fields(lua_State *L, luaL_Buffer *b, lt_config_kind kind, const void *base) {
  int n;
  const lt_config_field *fs = lt_config_fields(kind, &n);
  luaL_addstring(b, kind == LT_CONFIG_BLOCK_KIND ? "BlockConfig{" : "ModelConfig{");
  for (int i = 0; i < n; i++) {
    if (i) luaL_addstring(b, ", ");
    luaL_addstring(b, fs[i].name);
    luaL_addstring(b, " = ");
    add_value(L, b, &fs[i], base);
  }
  luaL_addchar(b, '}');
}

static void add_block(lua_State *L, luaL_Buffer *b, const lt_block_config *c) {
  add_fields(L, b, LT_CONFIG_BLOCK_KIND, c);
}

static int tostring_of(lua_State *L, lt_config_kind kind, const void *base) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  add_fields(L, &b, kind, base);
  luaL_pushresult(&b);
  return 1;
}

static int block_tostring(lua_State *L) { return tostring_of(L, LT_CONFIG_BLOCK_KIND, lt_l_checkblockconfig(L, 1)); }
static int model_tostring(lua_State *L) { return tostring_of(L, LT_CONFIG_MODEL_KIND, lt_l_checkmodelconfig(L, 1)); }

static int block_eq(lua_State *L) {
  const lt_block_config *a = luaL_testudata(L, 1, LT_L_BLOCK_CONFIG), *b = luaL_testudata(L, 2, LT_L_BLOCK_CONFIG);
  lua_pushboolean(L, a && b && lt_block_config_equal(a, b));
  return 1;
}

static int model_eq(lua_State *L) {
  const lt_model_config *a = luaL_testudata(L, 1, LT_L_MODEL_CONFIG), *b = luaL_testudata(L, 2, LT_L_MODEL_CONFIG);
  lua_pushboolean(L, a && b && lt_model_config_equal(a, b));
  return 1;
}

/* ---- JSON ---- */

/* Pushes the malloc'd text (freed here) or raises when it is NULL. */
static int push_text(lua_State *L, char *text, const char *who) {
  cbox *box = push_box(L);
  box->p = text;
  if (!text) return luaL_error(L, "%s: out of memory", who);
  lua_pushstring(L, text);
  free(box->p);
  box->p = NULL;
  return 1;
}

static int block_to_json(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "BlockConfig:to_json");
  return push_text(L, lt_block_config_to_json(lt_l_checkblockconfig(L, 1)), "BlockConfig:to_json");
}

static int model_to_json(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "ModelConfig:to_json");
  return push_text(L, lt_model_config_to_json(lt_l_checkmodelconfig(L, 1)), "ModelConfig:to_json");
}

/* cfg:save_json(path): the JSON text, written atomically. */
static int save_json(lua_State *L, int (*to_json)(lua_State *), const char *who) {
  lt_l_checkmaxargs(L, 2, who);
  const char *path = luaL_checkstring(L, 2);
  lua_settop(L, 1);
  to_json(L);
  lt_l_check(L, lt_config_write_file(lt_l_ctx(L), path, lua_tostring(L, -1), who));
  return 0;
}

static int block_save_json(lua_State *L) { return save_json(L, block_to_json, "BlockConfig:save_json"); }
static int model_save_json(lua_State *L) { return save_json(L, model_to_json, "ModelConfig:save_json"); }

/* Parses the text at arg 1 (from_json) or the file it names (load_json). The
 * file's text sits in a box while it is parsed. */
static const char *source_text(lua_State *L, int is_file, size_t *n, const char **who, const char *fname) {
  const char *arg = luaL_checkstring(L, 1);
  *who = is_file ? lua_pushfstring(L, "%s: %s", fname, arg) : fname;
  if (!is_file) return lua_tolstring(L, 1, n);
  cbox *box = push_box(L);
  char *text = NULL;
  lt_l_check(L, lt_config_read_file(lt_l_ctx(L), arg, &text, n, fname));
  box->p = text;
  return text;
}

static int block_from(lua_State *L, int is_file, const char *fname) {
  lt_l_checkmaxargs(L, 1, fname);
  size_t n;
  const char *who, *text = source_text(L, is_file, &n, &who, fname);
  lt_block_config c;
  lt_l_check(L, lt_block_config_from_json(lt_l_ctx(L), &c, text, n, who));
  push_block(L, &c);
  return 1;
}

static int model_from(lua_State *L, int is_file, const char *fname) {
  lt_l_checkmaxargs(L, 1, fname);
  size_t n;
  const char *who, *text = source_text(L, is_file, &n, &who, fname);
  cbox *layers = push_box(L);
  lt_model_config m;
  lt_block_config *owned = NULL;
  lt_status st = lt_model_config_from_json(lt_l_ctx(L), &m, &owned, text, n, who);
  layers->p = owned;
  lt_l_check(L, st);
  push_model(L, &m, nlayers(&m));
  return 1;
}

static int block_from_json(lua_State *L) { return block_from(L, 0, "BlockConfig.from_json"); }
static int block_load_json(lua_State *L) { return block_from(L, 1, "BlockConfig.load_json"); }
static int model_from_json(lua_State *L) { return model_from(L, 0, "ModelConfig.from_json"); }
static int model_load_json(lua_State *L) { return model_from(L, 1, "ModelConfig.load_json"); }

/* ---- __index ---- */

/* Field, derived value or method `key` of the config at 1 (metatable
 * upvalue 1 holds the methods). */
static int config_index(lua_State *L, lt_config_kind kind, const void *base) {
  const char *key = luaL_checkstring(L, 2);
  const lt_config_field *f = lt_config_field_named(kind, key);
  if (f) {
    push_field(L, f, base);
    return 1;
  }
  if (lua_getfield(L, lua_upvalueindex(1), key) != LUA_TNIL) return 1;
  return luaL_error(L, "%s: no field '%s'", kind == LT_CONFIG_BLOCK_KIND ? "BlockConfig" : "ModelConfig", key);
}

static int block_index(lua_State *L) {
  const lt_block_config *c = lt_l_checkblockconfig(L, 1);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "head_dim") == 0)
    lua_pushinteger(L, lt_block_config_head_dim(c));
  else if (strcmp(key, "effective_n_kv_heads") == 0)
    lua_pushinteger(L, lt_block_config_kv_heads(c));
  else if (strcmp(key, "attention_scale") == 0)
    lua_pushnumber(L, lt_block_config_attention_scale(c));
  else
    return config_index(L, LT_CONFIG_BLOCK_KIND, c);
  return 1;
}

static int model_index(lua_State *L) {
  const lt_model_config *m = lt_l_checkmodelconfig(L, 1);
  if (strcmp(luaL_checkstring(L, 2), "width_mult") == 0) {
    lua_pushnumber(L, lt_model_config_width_mult(m));
    return 1;
  }
  return config_index(L, LT_CONFIG_MODEL_KIND, m);
}

static int frozen(lua_State *L) {
  const char *type = luaL_testudata(L, 1, LT_L_BLOCK_CONFIG) ? "BlockConfig" : "ModelConfig";
  return luaL_error(L, "%s: configs are frozen; make a changed copy with cfg:replace{%s = ...}", type,
                    luaL_tolstring(L, 2, NULL));
}

/* ---- registration ---- */

/* The metatable `name` with __index reading fields and `methods`. */
static void new_type(lua_State *L, const char *name, lua_CFunction index, const luaL_Reg *methods,
                     const luaL_Reg *meta) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  lt_l_register(L, methods);
  lua_pushcclosure(L, index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* module.<name> = a table of the static functions whose __call constructs. */
static void new_class(lua_State *L, const char *name, lt_config_kind kind, lua_CFunction ctor,
                      const luaL_Reg *statics) {
  lua_newtable(L);
  lt_l_register(L, statics);
  int n;
  const lt_config_field *fs = lt_config_fields(kind, &n);
  lua_createtable(L, n, 0); /* .fields: the names in the seed's order */
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, fs[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "fields");
  lua_createtable(L, 0, 1);
  lt_l_pushctx(L);
  lua_pushcclosure(L, ctor, 1);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, name);
}

static int l_is_block_config(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, LT_L_BLOCK_CONFIG) != NULL);
  return 1;
}

static int l_is_model_config(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, LT_L_MODEL_CONFIG) != NULL);
  return 1;
}

void lt_l_open_config(lua_State *L) {
  luaL_newmetatable(L, LT_L_CBOX);
  lua_pushcfunction(L, cbox_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const luaL_Reg block_methods[] = {{"replace", block_replace},
                                           {"to_table", block_to_table},
                                           {"to_json", block_to_json},
                                           {"save_json", block_save_json},
                                           {NULL, NULL}};
  static const luaL_Reg block_meta[] = {
      {"__tostring", block_tostring}, {"__eq", block_eq}, {"__newindex", frozen}, {NULL, NULL}};
  new_type(L, LT_L_BLOCK_CONFIG, block_index, block_methods, block_meta);
  static const luaL_Reg model_methods[] = {{"replace", model_replace},
                                           {"to_table", model_to_table},
                                           {"to_json", model_to_json},
                                           {"save_json", model_save_json},
                                           {"get_block_config", model_get_block_config},
                                           {NULL, NULL}};
  static const luaL_Reg model_meta[] = {
      {"__tostring", model_tostring}, {"__eq", model_eq}, {"__newindex", frozen}, {NULL, NULL}};
  new_type(L, LT_L_MODEL_CONFIG, model_index, model_methods, model_meta);
  static const luaL_Reg block_statics[] = {
      {"from_json", block_from_json}, {"load_json", block_load_json}, {NULL, NULL}};
  static const luaL_Reg model_statics[] = {
      {"from_json", model_from_json}, {"load_json", model_load_json}, {NULL, NULL}};
  new_class(L, "BlockConfig", LT_CONFIG_BLOCK_KIND, l_block_config, block_statics);
  new_class(L, "ModelConfig", LT_CONFIG_MODEL_KIND, l_model_config, model_statics);
  static const luaL_Reg fns[] = {
      {"is_block_config", l_is_block_config}, {"is_model_config", l_is_model_config}, {NULL, NULL}};
  lt_l_register(L, fns);
}
