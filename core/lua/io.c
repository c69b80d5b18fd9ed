/* safetensors from Lua:
 *   lattice.save_safetensors(path, {name = tensor, ...}[, {key = "value", ...}])
 *   local tensors, metadata = lattice.load_safetensors(path)
 * Tensors and metadata are written in byte-wise sorted name order, so the same
 * table always gives the same file. */
#include <stdlib.h>
#include <string.h>
#include "binding.h"

#define LT_L_ST_FILE "lattice.safetensors_file"

/* Pushes the string at `idx` with each NUL byte shown as \0, for messages. */
static const char *push_shown(lua_State *L, int idx) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++)
    if (s[i])
      luaL_addchar(&b, s[i]);
    else
      luaL_addstring(&b, "\\0");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* A path argument: C would see it end at a NUL byte, so one is an error
 * ("<fname>: a\0b: path contains a NUL byte"), never a shorter path. */
static const char *check_path(lua_State *L, int arg, const char *fname) {
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  if (strlen(path) != len) luaL_error(L, "%s: %s: path contains a NUL byte", fname, push_shown(L, arg));
  return path;
}

/* Counts the entries of the table at `arg` after checking every key is a
 * string without NUL bytes and, when `tensors`, every value a live tensor;
 * otherwise every value a string. */
static int check_table(lua_State *L, int arg, int tensors) {
  const char *what = tensors ? "tensor name" : "metadata key";
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      const char *type = luaL_typename(L, -2);
      luaL_error(L, "save_safetensors: %s %s is a %s, not a string", what, luaL_tolstring(L, -2, NULL), type);
    }
    size_t len;
    const char *key = lua_tolstring(L, -2, &len);
    if (strlen(key) != len) luaL_error(L, "save_safetensors: %s '%s' contains a NUL byte", what, push_shown(L, -2));
    if (tensors && !lt_l_totensor(L, -1)) {
      if (luaL_testudata(L, -1, LT_L_TENSOR)) luaL_error(L, "save_safetensors: tensor '%s' is closed", key);
      luaL_error(L, "save_safetensors: tensor '%s' is a %s, not a lattice.Tensor", key, luaL_typename(L, -1));
    }
    if (!tensors && lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "save_safetensors: metadata value for '%s' is a %s, not a string", key, luaL_typename(L, -1));
    if (!tensors && strlen(lua_tostring(L, -1)) != lua_rawlen(L, -1))
      luaL_error(L, "save_safetensors: metadata value '%s' for '%s' contains a NUL byte", push_shown(L, -1), key);
    n++;
    lua_pop(L, 1);
  }
  return n;
}

static int cmp_named(const void *a, const void *b) {
  return strcmp(((const lt_named_tensor *)a)->name, ((const lt_named_tensor *)b)->name);
}
static int cmp_meta(const void *a, const void *b) {
  return strcmp(((const lt_metadata_entry *)a)->key, ((const lt_metadata_entry *)b)->key);
}

/* Arrays live in userdata (collected if anything raises); the strings they
 * point to stay alive in the argument tables. */
static int l_save_safetensors(lua_State *L) {
  const char *path = check_path(L, 1, "save_safetensors");
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  int n = check_table(L, 2, 1), nmeta = lua_istable(L, 3) ? check_table(L, 3, 0) : 0;
  lt_named_tensor *ts = lua_newuserdatauv(L, (size_t)n * sizeof *ts, 0);
  lt_metadata_entry *meta = lua_newuserdatauv(L, (size_t)nmeta * sizeof *meta, 0);
  int i = 0; /* i < n: the tables are not changed in between, but never overrun */
  for (lua_pushnil(L); i < n && lua_next(L, 2); lua_pop(L, 1), i++)
    ts[i] = (lt_named_tensor){lua_tostring(L, -2), lt_l_totensor(L, -1)};
  qsort(ts, (size_t)(n = i), sizeof *ts, cmp_named);
  i = 0;
  for (lua_pushnil(L); i < nmeta && lua_next(L, 3); lua_pop(L, 1), i++)
    meta[i] = (lt_metadata_entry){lua_tostring(L, -2), lua_tostring(L, -1)};
  qsort(meta, (size_t)(nmeta = i), sizeof *meta, cmp_meta);
  lt_l_check(L, lt_safetensors_save(lt_l_ctx(L), path, n, ts, nmeta, meta));
  return 0;
}

/* The loaded file while its tensors move into Lua: released by __gc if a
 * push raises, else right away. */
typedef struct st_box {
  lt_safetensors *st;
} st_box;

static int st_box_release(lua_State *L) {
  st_box *b = luaL_checkudata(L, 1, LT_L_ST_FILE);
  lt_safetensors_free(b->st);
  b->st = NULL;
  return 0;
}

static int l_load_safetensors(lua_State *L) {
  const char *path = check_path(L, 1, "load_safetensors");
  st_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->st = NULL;
  luaL_setmetatable(L, LT_L_ST_FILE);
  lt_l_check(L, lt_safetensors_load(lt_l_ctx(L), path, &b->st));
  lt_safetensors *st = b->st;
  lua_createtable(L, 0, st->n);
  for (int i = 0; i < st->n; i++) {
    lt_l_newtensor(L)->t = st->tensors[i].tensor; /* the Lua value owns it from here */
    st->tensors[i].tensor = NULL;
    lua_setfield(L, -2, st->tensors[i].name);
  }
  lua_createtable(L, 0, st->nmeta);
  for (int i = 0; i < st->nmeta; i++) {
    lua_pushstring(L, st->meta[i].value);
    lua_setfield(L, -2, st->meta[i].key);
  }
  lt_safetensors_free(st);
  b->st = NULL;
  lt_l_report_alloc(L, lt_l_ctx(L));
  return 2;
}

void lt_l_open_io(lua_State *L) {
  if (luaL_newmetatable(L, LT_L_ST_FILE)) {
    lua_pushcfunction(L, st_box_release);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"save_safetensors", l_save_safetensors},
      {"load_safetensors", l_load_safetensors},
      {NULL, NULL},
  };
  lt_l_register(L, fns);
}
