/* lattice.json: Lua values as JSON text and back, for the files beside the
 * tensors (a checkpoint's metadata.json, an adapter's adapter_config.json, a
 * tokenizer).
 *
 *   lattice.json.encode(value[, {indent = n}]) -> text
 *   lattice.json.decode(text) -> value
 *
 * Writing: a table whose keys are exactly 1 .. n (n >= 1) is an array; one
 * with string keys an object, its keys in byte order (the same table always
 * gives the same text); an empty table is {}. Integers are written as
 * integers, floats as the shortest text that reads back as the same double,
 * with ".0" when it would look like an integer, as Python writes them.
 * Strings must be UTF-8. indent n puts each member on a line of its own, as
 * Python's json.dumps(indent=n) does; without it the text is compact.
 *
 * Reading is RFC 8259 as core/io's strict checker takes it. Objects become
 * tables, arrays sequences, integers written without '.' or exponent that
 * fit in 64 bits Lua integers, other numbers floats. null becomes an absent
 * key in an object; in an array it has no Lua value and is an error. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"
#include "io/json.h"
#include "io/numtext.h"
#include "io/safetensors.h"

#define MAX_DEPTH LT_JSON_MAX_DEPTH

/* ---- writing ---- */

/* The text grows in a userdata at stack slot `slot` (replaced by a larger one
 * as needed), so an error anywhere leaves nothing to free. */
typedef struct out {
  lua_State *L;
  int slot;
  char *p;
  size_t n, cap;
  int indent;
} out;

static void reserve(out *o, size_t more) {
  if (o->n + more <= o->cap) return;
  size_t cap = o->cap * 2 > o->n + more ? o->cap * 2 : o->n + more;
  char *p = lua_newuserdatauv(o->L, cap, 0);
  memcpy(p, o->p, o->n);
  lua_replace(o->L, o->slot);
  o->p = p;
  o->cap = cap;
}

static void put(out *o, const char *s, size_t n) {
  reserve(o, n);
  memcpy(o->p + o->n, s, n);
  o->n += n;
}

static void newline(out *o, int depth) {
  if (o->indent < 0) return;
  put(o, "\n", 1);
  for (int i = 0; i < depth * o->indent; i++) put(o, " ", 1);
}

static void put_string(out *o, const char *s, size_t n) {
  if (lt__utf8_invalid_at(s, n) >= 0) luaL_error(o->L, "json.encode: string is not valid UTF-8");
  put(o, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = c == '"'    ? "\\\""
                      : c == '\\' ? "\\\\"
                      : c == '\n' ? "\\n"
                      : c == '\t' ? "\\t"
                      : c == '\r' ? "\\r"
                                  : NULL;
    char buf[8];
    if (!esc && c < 0x20) {
      snprintf(buf, sizeof buf, "\\u%04x", c);
      esc = buf;
    }
    if (esc)
      put(o, esc, strlen(esc));
    else
      put(o, (const char *)&c, 1);
  }
  put(o, "\"", 1);
}

static void put_number(out *o, int idx) {
  char buf[40];
  if (lua_isinteger(o->L, idx)) {
    snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(o->L, idx));
  } else {
    double v = lua_tonumber(o->L, idx);
    if (!isfinite(v))
      luaL_error(o->L, "json.encode: cannot write %s (JSON has no such number)", lua_tostring(o->L, idx));
    lt__format_double_exact(buf, sizeof buf, 1, v);
    if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
  }
  put(o, buf, strlen(buf));
}

static void put_value(out *o, int idx, int depth);

/* The table's length as an array (keys exactly 1 .. n), 0 for an object
 * (string keys only, or none), or an error for anything else. */
static lua_Integer array_length(lua_State *L, int idx) {
  lua_Integer count = 0, max = 0;
  int strings = 0, others = 0;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    count++;
    if (lua_type(L, -2) == LUA_TSTRING) {
      strings = 1;
    } else if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
      max = lua_tointeger(L, -2) > max ? lua_tointeger(L, -2) : max;
    } else if (lua_type(L, -2) == LUA_TNUMBER) {
      others = 1; /* 0, a negative key or a float: not an array position */
    } else {
      luaL_error(L, "json.encode: a table key is a %s; keys must be strings, or 1 .. n for an array",
                 luaL_typename(L, -2));
    }
  }
  if (!others && max == 0) return 0;
  if (!others && !strings && max == count) return count;
  return luaL_error(L, "json.encode: a table is neither an array (keys 1 .. n) nor an object (string keys)");
}

typedef struct key_ref {
  const char *s;
  size_t n;
} key_ref;

static int cmp_keys(const void *x, const void *y) {
  const key_ref *a = x, *b = y;
  int c = memcmp(a->s, b->s, a->n < b->n ? a->n : b->n);
  return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* The keys stay alive in the table, which nothing changes while it is written. */
static void put_object(out *o, int idx, int depth) {
  lua_State *L = o->L;
  size_t count = 0;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) count++;
  key_ref *keys = lua_newuserdatauv(L, (count ? count : 1) * sizeof *keys, 0);
  size_t i = 0;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    keys[i].s = lua_tolstring(L, -2, &keys[i].n);
    i++;
  }
  qsort(keys, count, sizeof *keys, cmp_keys);
  put(o, "{", 1);
  for (i = 0; i < count; i++) {
    if (i) put(o, ",", 1);
    newline(o, depth + 1);
    put_string(o, keys[i].s, keys[i].n);
    put(o, o->indent < 0 ? ":" : ": ", o->indent < 0 ? 1 : 2);
    lua_pushlstring(L, keys[i].s, keys[i].n);
    lua_rawget(L, idx);
    put_value(o, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  if (count) newline(o, depth);
  put(o, "}", 1);
  lua_pop(L, 1); /* keys */
}

static void put_value(out *o, int idx, int depth) {
  lua_State *L = o->L;
  if (depth >= MAX_DEPTH)
    luaL_error(L, "json.encode: tables nested deeper than %d (a table that contains itself?)", MAX_DEPTH);
  luaL_checkstack(L, 8, "json.encode");
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: lua_toboolean(L, idx) ? put(o, "true", 4) : put(o, "false", 5); return;
  case LUA_TNUMBER: put_number(o, idx); return;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    put_string(o, s, n);
    return;
  }
  case LUA_TTABLE: {
    lua_Integer n = array_length(L, idx);
    if (n == 0) {
      put_object(o, idx, depth);
      return;
    }
    put(o, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) put(o, ",", 1);
      newline(o, depth + 1);
      lua_rawgeti(L, idx, i);
      put_value(o, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    newline(o, depth);
    put(o, "]", 1);
    return;
  }
  default: luaL_error(L, "json.encode: cannot write a %s", luaL_typename(L, idx));
  }
}

static int l_encode(lua_State *L) {
  static const char *const opts[] = {"indent", NULL};
  lt_l_checkmaxargs(L, 2, "json.encode");
  luaL_checkany(L, 1);
  lt_l_checkoptions(L, 2, "json.encode", opts);
  lua_Integer indent = -1;
  if (lua_istable(L, 2) && lua_getfield(L, 2, "indent") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 16)
      return luaL_error(L, "json.encode: indent must be an integer in [0, 16], got %s", lt_l_valuename(L, -1));
    indent = lua_tointeger(L, -1);
  }
  lua_settop(L, 1);
  out o = {L, 2, lua_newuserdatauv(L, 256, 0), 0, 256, (int)indent};
  put_value(&o, 1, 0);
  lua_pushlstring(L, o.p, o.n);
  return 1;
}

/* ---- reading ---- */

static void push_value(lua_State *L, const char *s, int64_t at);

static void push_string(lua_State *L, const char *s, int64_t at) {
  size_t raw = (size_t)(lt__json_skip(s, at) - at);
  luaL_Buffer b;
  char *dst = luaL_buffinitsize(L, &b, raw);
  luaL_pushresultsize(&b, lt__json_string(s, at, dst));
}

/* The number's text is copied out to end it with a NUL; a text too long for
 * the buffer (JSON puts no bound on digits: "1.000...0e5") goes through a Lua
 * string instead, since cut short it would read as another number. */
static void push_number(lua_State *L, const char *s, int64_t at) {
  size_t n = (size_t)(lt__json_skip(s, at) - at);
  char small[64];
  const char *buf = small;
  if (n < sizeof small) {
    memcpy(small, s + at, n);
    small[n] = '\0';
  } else {
    buf = lua_pushlstring(L, s + at, n);
  }
  lua_Number v;
  if (!strpbrk(buf, ".eE")) {
    errno = 0;
    long long i = strtoll(buf, NULL, 10);
    if (errno == 0) {
      if (buf != small) lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)i);
      return;
    }
  }
  v = lt__parse_double(buf, NULL);
  if (buf != small) lua_pop(L, 1);
  lua_pushnumber(L, v);
}

static void push_container(lua_State *L, const char *s, int64_t at) {
  int64_t key, val;
  lua_newtable(L);
  if (s[at] == '{') {
    while (lt__json_member(s, &at, &key, &val)) {
      if (s[lt__json_ws(s, val)] == 'n') continue; /* null: the key stays absent */
      push_string(L, s, key);
      push_value(L, s, val);
      lua_rawset(L, -3);
    }
    return;
  }
  for (lua_Integer i = 1; lt__json_element(s, &at, &val); i++) {
    if (s[lt__json_ws(s, val)] == 'n')
      luaL_error(L, "json.decode: null at byte %d is an array element, which Lua cannot hold", (int)val + 1);
    push_value(L, s, val);
    lua_rawseti(L, -2, i);
  }
}

static void push_value(lua_State *L, const char *s, int64_t at) {
  luaL_checkstack(L, 8, "json.decode");
  at = lt__json_ws(s, at);
  switch (s[at]) {
  case '{':
  case '[': push_container(L, s, at); return;
  case '"': push_string(L, s, at); return;
  case 't': lua_pushboolean(L, 1); return;
  case 'f': lua_pushboolean(L, 0); return;
  case 'n': lua_pushnil(L); return;
  default: push_number(L, s, at); return;
  }
}

static int l_decode(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "json.decode");
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int64_t bad = lt__utf8_invalid_at(s, n), end;
  if (bad >= 0) return luaL_error(L, "json.decode: the text is not valid UTF-8 (byte %d)", (int)bad + 1);
  char why[LT_JSON_WHY_MAX];
  bad = lt__json_check(s, (int64_t)n, &end, why);
  if (bad >= (int64_t)n) return luaL_error(L, "json.decode: the text ends inside a value");
  if (bad >= 0) return luaL_error(L, "json.decode: byte %d: %s", (int)bad + 1, why);
  if (lt__json_ws(s, end) < (int64_t)n)
    return luaL_error(L, "json.decode: byte %d: text after the value", (int)lt__json_ws(s, end) + 1);
  push_value(L, s, 0);
  return 1;
}

void lt_l_open_json(lua_State *L) {
  static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
  lua_newtable(L);
  lt_l_register(L, fns);
  lua_setfield(L, -2, "json");
}
