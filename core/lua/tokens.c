/* The tokenizer kernels (lattice/data.h) for lua/lattice/data/tokenizers.lua,
 * as lattice.core functions, and the type lattice.Pieces: a vocabulary's byte
 * strings in one block, which decodes ids to text.
 *
 * Every function takes, last, the name of the method the user called
 * ("CharTokenizer:encode"), which its errors begin with. */
#include <string.h>
#include "binding.h"

#define LT_L_PIECES "lattice.Pieces"

/* Piece k is bytes[offsets[k] .. offsets[k + 1]), both inside the userdata. */
typedef struct pieces {
  int64_t n;
  int64_t *offsets; /* n + 1 */
  uint8_t *bytes;
} pieces;

/* Raises the context's message as "<who>: ...": the core's operation name
 * ("encode: ...") is replaced, "merges: ..." is kept after it. */
static void check(lua_State *L, lt_status st, const char *who) {
  if (st == LT_OK) return;
  const char *msg = lt_ctx_error(lt_l_ctx(L)), *colon = strchr(msg, ':');
  if (strncmp(msg, "merges:", 7) == 0 || !colon) luaL_error(L, "%s: %s", who, msg);
  luaL_error(L, "%s%s", who, colon);
}

static const uint8_t *check_text(lua_State *L, int arg, size_t *n) {
  return (const uint8_t *)luaL_checklstring(L, arg, n);
}

/* fn(text) -> a tensor, for tokens_bytes(text, who) -> ids and
 * tokens_char_vocab(text, who) -> keys. */
static int from_text(lua_State *L, lt_status (*fn)(lt_ctx *, lt_tensor **, const uint8_t *, int64_t)) {
  size_t n;
  const uint8_t *text = check_text(L, 1, &n);
  const char *who = luaL_checkstring(L, 2);
  lt_l_tensor *u = lt_l_newtensor(L);
  check(L, fn(lt_l_ctx(L), &u->t, text, (int64_t)n), who);
  return lt_l_result(L, LT_OK);
}

static int l_tokens_bytes(lua_State *L) { return from_text(L, lt_bytes_encode); }
static int l_tokens_char_vocab(lua_State *L) { return from_text(L, lt_chars_vocab); }

/* tokens_chars(text, keys, who) -> ids */
static int l_tokens_chars(lua_State *L) {
  size_t n;
  const uint8_t *text = check_text(L, 1, &n);
  lt_tensor *keys = lt_l_checktensor(L, 2);
  const char *who = luaL_checkstring(L, 3);
  lt_l_tensor *u = lt_l_newtensor(L);
  check(L, lt_chars_encode(lt_l_ctx(L), &u->t, text, (int64_t)n, keys), who);
  return lt_l_result(L, LT_OK);
}

/* bpe_train(text, max_merges, min_frequency, who) -> merges (M, 2) */
static int l_bpe_train(lua_State *L) {
  size_t n;
  const uint8_t *text = check_text(L, 1, &n);
  lua_Integer max_merges = luaL_checkinteger(L, 2), min_frequency = luaL_checkinteger(L, 3);
  const char *who = luaL_checkstring(L, 4);
  lt_l_tensor *u = lt_l_newtensor(L);
  check(L, lt_bpe_train(lt_l_ctx(L), &u->t, text, (int64_t)n, max_merges, min_frequency), who);
  return lt_l_result(L, LT_OK);
}

/* bpe_check(merges, who) */
static int l_bpe_check(lua_State *L) {
  lt_tensor *merges = lt_l_checktensor(L, 1);
  check(L, lt_bpe_check_merges(lt_l_ctx(L), merges), luaL_checkstring(L, 2));
  return 0;
}

/* bpe_encode(text, merges, who) -> ids */
static int l_bpe_encode(lua_State *L) {
  size_t n;
  const uint8_t *text = check_text(L, 1, &n);
  lt_tensor *merges = lt_l_checktensor(L, 2);
  const char *who = luaL_checkstring(L, 3);
  lt_l_tensor *u = lt_l_newtensor(L);
  check(L, lt_bpe_encode(lt_l_ctx(L), &u->t, text, (int64_t)n, merges), who);
  return lt_l_result(L, LT_OK);
}

/* pieces(list) -> Pieces: the strings of a Lua sequence, copied into one
 * userdata (the GC sees its size). */
static int l_pieces(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = lt_l_seqlen(L, 1, "pieces", "the vocabulary");
  size_t total = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_geti(L, 1, i) != LUA_TSTRING)
      luaL_error(L, "pieces: vocabulary entry %I is a %s, not a string", i, luaL_typename(L, -1));
    total += lua_rawlen(L, -1);
    lua_pop(L, 1);
  }
  size_t head = sizeof(pieces) + (size_t)(n + 1) * sizeof(int64_t);
  pieces *p = lua_newuserdatauv(L, head + total, 0);
  p->n = n;
  p->offsets = (int64_t *)(p + 1);
  p->bytes = (uint8_t *)p + head;
  p->offsets[0] = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    lua_geti(L, 1, i);
    const char *s = lua_tolstring(L, -1, &len);
    memcpy(p->bytes + p->offsets[i - 1], s, len);
    p->offsets[i] = p->offsets[i - 1] + (int64_t)len;
    lua_pop(L, 1);
  }
  luaL_setmetatable(L, LT_L_PIECES);
  return 1;
}

/* pieces:decode(ids, who) -> the joined bytes of the ids (a tensor). */
static int pieces_decode(lua_State *L) {
  pieces *p = luaL_checkudata(L, 1, LT_L_PIECES);
  lt_tensor *ids = lt_l_checktensor(L, 2);
  const char *who = luaL_checkstring(L, 3);
  lt_ctx *ctx = lt_l_ctx(L);
  int64_t size;
  check(L, lt_tokens_decoded_size(ctx, &size, ids, p->offsets, p->n), who);
  luaL_Buffer b;
  uint8_t *dst = (uint8_t *)luaL_buffinitsize(L, &b, (size_t)size);
  check(L, lt_tokens_decode(ctx, dst, ids, p->offsets, p->bytes), who);
  luaL_pushresultsize(&b, (size_t)size);
  return 1;
}

/* pieces:get(id) -> the bytes of the 0-based id. */
static int pieces_get(lua_State *L) {
  pieces *p = luaL_checkudata(L, 1, LT_L_PIECES);
  lua_Integer id = luaL_checkinteger(L, 2);
  luaL_argcheck(L, id >= 0 && id < p->n, 2, "id out of range");
  lua_pushlstring(L, (const char *)p->bytes + p->offsets[id], (size_t)(p->offsets[id + 1] - p->offsets[id]));
  return 1;
}

static int pieces_len(lua_State *L) {
  lua_pushinteger(L, ((pieces *)luaL_checkudata(L, 1, LT_L_PIECES))->n);
  return 1;
}

void lt_l_open_tokens(lua_State *L) {
  static const luaL_Reg methods[] = {{"decode", pieces_decode}, {"get", pieces_get}, {NULL, NULL}};
  if (luaL_newmetatable(L, LT_L_PIECES)) {
    lua_newtable(L);
    lt_l_register(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, pieces_len);
    lua_setfield(L, -2, "__len");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"tokens_bytes", l_tokens_bytes},
      {"tokens_char_vocab", l_tokens_char_vocab},
      {"tokens_chars", l_tokens_chars},
      {"bpe_train", l_bpe_train},
      {"bpe_check", l_bpe_check},
      {"bpe_encode", l_bpe_encode},
      {"pieces", l_pieces},
      {NULL, NULL},
  };
  lt_l_register(L, fns);
}
