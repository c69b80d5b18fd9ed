/* A host that runs under a locale whose decimal point is a comma, as one
 * does after setlocale(LC_ALL, "") on a German or French desktop. printf and
 * strtod follow LC_NUMERIC; lattice's number text must not: JSON it writes
 * stays JSON, numbers it reads keep their fractions, and a config's tostring
 * still reads back as the same config.
 *
 * The locale is the system's de_DE.UTF-8 or fr_FR.UTF-8 when installed, else
 * one compiled with localedef into a temporary directory (LOCPATH). Without
 * either there is no comma locale to run under, and the test is skipped
 * (exit 77). Exit 1 when a check fails. */
#define _POSIX_C_SOURCE 200809L
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lattice/lua.h"

enum { SKIP = 77 };

/* True when the current locale writes 1.5 as "1,5". */
static int comma_locale_set(const char *name) {
  char buf[16];
  if (!setlocale(LC_ALL, name)) return 0;
  snprintf(buf, sizeof buf, "%.1f", 1.5);
  return strcmp(buf, "1,5") == 0;
}

/* Sets a comma locale; `dir` receives the temporary LOCPATH, if one was made. */
static int set_comma_locale(char *dir) {
  if (comma_locale_set("de_DE.UTF-8") || comma_locale_set("fr_FR.UTF-8")) return 1;
  if (!mkdtemp(dir)) return 0;
  char cmd[256];
  snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
  if (system(cmd) != 0) return 0;
  setenv("LOCPATH", dir, 1);
  return comma_locale_set("de_DE.UTF-8");
}

static const char checks[] =
    "local json = lattice.json\n"
    "local text = json.encode({x = 1.5, y = {0.1, -2.25e-7}})\n"
    "assert(text == '{\"x\":1.5,\"y\":[0.1,-2.25e-07]}', 'json.encode wrote ' .. text)\n"
    "local v = json.decode('{\"x\": 1.5, \"y\": [0.1, -2.25e-7, 3e2]}')\n"
    "assert(v.x == 3 / 2, 'json.decode read 1.5 as ' .. string.format('%a', v.x))\n"
    "assert(v.y[1] == 0.1 and v.y[2] == -2.25e-7 and v.y[3] == 300.0, 'json.decode read the array wrong')\n"
    "local cfg = lattice.BlockConfig{attention = 'gqa', ffn = 'gated', norm = 'rms_norm', position = 'rope',\n"
    "                                d_model = 8, n_heads = 2, n_kv_heads = 1, rope_theta = 10000.5}\n"
    "local s = tostring(cfg)\n"
    "assert(s:find('rope_theta = 10000.5,', 1, true), 'tostring wrote ' .. s)\n"
    "local again = load('return ' .. s, 'tostring', 't', {BlockConfig = lattice.BlockConfig})()\n"
    "assert(again.rope_theta == 10000.5, 'tostring read back rope_theta ' .. again.rope_theta)\n"
    "local j = cfg:to_json()\n"
    "assert(j:find('\"rope_theta\":%s*10000%.5,'), 'to_json wrote ' .. j)\n"
    "assert(lattice.BlockConfig.from_json(j).rope_theta == 10000.5, 'from_json read rope_theta wrong')\n";

int main(void) {
  char dir[] = "/tmp/lattice_locale_XXXXXX";
  if (!set_comma_locale(dir)) {
    printf("skipped: no locale with a decimal comma (installed, or made by localedef)\n");
    return SKIP;
  }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  int failed = lattice_lua_open(L, NULL) != LUA_OK || luaL_dostring(L, checks) != LUA_OK;
  printf("%s %s\n", failed ? "FAIL" : "ok  ",
         failed ? lua_tostring(L, -1) : "number text under a decimal-comma locale");
  lua_close(L);
  if (getenv("LOCPATH")) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("could not remove %s\n", dir);
  }
  return failed;
}
