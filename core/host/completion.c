/* Tab in the REPL completes Lua names, never file names: globals and
 * keywords, fields of a path (`lattice.random.`), methods of a value
 * (`x:re`). lattice.repl.complete (lua/lattice/repl.lua) finds them on the
 * live state without running its code; this file hands them to readline. */
#ifdef LATTICE_HAVE_READLINE
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>
#include <readline/readline.h>
#include "host.h"

/* readline calls its completion hook with no user pointer, so the state it
 * completes in is kept here, set for the REPL's lifetime by
 * lt__host_completion_begin and cleared by lt__host_completion_end. */
static lua_State *completing;

/* What ends a word: not '.' or ':', so "lattice.random.no" is one word. */
static const char word_breaks[] = " \t\n\"'<>=;+-*/%^~#&|,()[]{}";

/* Under lua_pcall: lattice.repl.complete(text, the globals), a list. */
static int find_words(lua_State *L) {
  const char *text = lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LT_HOST_REPL_MODULE);
  lua_getfield(L, -1, "complete");
  lua_pushstring(L, text);
  lua_pushglobaltable(L);
  lua_call(L, 2, 1);
  luaL_checktype(L, -1, LUA_TTABLE);
  return 1;
}

static void free_words(char **words, size_t n) {
  for (size_t i = 0; i < n; i++) free(words[i]);
  free(words);
}

static size_t common_prefix(char **words, size_t n) {
  size_t len = strlen(words[0]);
  for (size_t i = 1; i < n; i++) {
    size_t k = 0;
    while (k < len && words[i][k] == words[0][k]) k++;
    len = k;
  }
  return len;
}

/* The list on top in readline's form: [0] what replaces the word (the only
 * word, or the words' common prefix), then the words, then NULL. */
static char **to_matches(lua_State *L) {
  size_t n = lua_rawlen(L, -1);
  char **m = n ? calloc(n + 2, sizeof *m) : NULL;
  if (!m) return NULL;
  for (size_t i = 1; i <= n; i++) {
    int is_string = lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING;
    m[i] = is_string ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    if (!m[i]) return free_words(m, i), NULL;
  }
  if (n == 1) {
    m[0] = m[1];
    m[1] = NULL;
    return m;
  }
  m[0] = strndup(m[1], common_prefix(m + 1, n));
  if (!m[0]) return free_words(m, n + 1), NULL;
  return m;
}

/* Tab with no word before it indents, as in Python's REPL. */
static char **indent(void) {
  char **m = calloc(2, sizeof *m);
  if (m && !(m[0] = strdup("\t"))) free(m), m = NULL;
  return m;
}

static char **complete(const char *text, int start, int end) {
  (void)start, (void)end;
  rl_attempted_completion_over = 1;  /* Lua names only, never file names */
  rl_completion_suppress_append = 1; /* a word ends as it is: "zeros(" or "random" */
  if (text[0] == '\0') return indent();
  lua_State *L = completing;
  if (!L || !lua_checkstack(L, 4)) return NULL;
  int top = lua_gettop(L);
  lua_pushcfunction(L, find_words);
  lua_pushlightuserdata(L, (void *)text);
  char **matches = lua_pcall(L, 1, 1, 0) == LUA_OK ? to_matches(L) : NULL;
  lua_settop(L, top);
  return matches;
}

void lt__host_completion_begin(lua_State *L) {
  completing = L;
  /* older readlines declare these without const */
  rl_readline_name = (char *)LT_HOST_NAME; /* for $if lattice in ~/.inputrc */
  rl_completer_word_break_characters = (char *)word_breaks;
  rl_attempted_completion_function = complete;
}

void lt__host_completion_end(void) {
  rl_attempted_completion_function = NULL;
  completing = NULL;
}
#endif
