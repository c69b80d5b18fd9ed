/* The `lattice` command: Lua 5.4 with lattice open as the global `lattice`.
 *
 *   lattice script.lua [args]   run a script (arg[0] = script, ... = args)
 *   lattice -e 'code' [...]     run code, then the script if one follows
 *   lattice -                   run standard input
 *   lattice                     a REPL (standard input a terminal), else run stdin
 *   lattice models ...          a subcommand: lattice.cli.models' run(args)
 *
 * It follows lua.c where a Lua user expects it to (the `arg` table, `-e`, `-i`,
 * Ctrl-C stopping the running code). The REPL is in repl.c. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include "lattice/lua.h"
#include "host.h"

#ifndef LATTICE_VERSION
#define LATTICE_VERSION "0.1.0"
#endif

static const char *progname = LT_HOST_NAME;

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s [options] [script [args]]\n"
          "  -e code   run code (may be repeated)\n"
          "  -i        enter the REPL after running the script or code\n"
          "  -v        print the version (also --version)\n"
          "  -h        print this help (also --help)\n"
          "  --        stop handling options\n"
          "  -         run standard input\n"
          "With no script and no -e: a REPL when standard input is a terminal, else run it.\n"
          "Subcommands (as the first argument; run a file of that name as ./NAME):\n"
          "  %s models list|info|count|bench ...   the model presets (lattice models --help)\n",
          progname, progname);
}

/* ---- running code with a traceback ---- */

/* The state whose code Ctrl-C stops: a signal handler can reach nothing but
 * statics, so this one is set for the length of each call (as in lua.c). */
static lua_State *running;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* Ctrl-C while Lua runs: stop at the next instruction (as lua.c does). */
static void on_sigint(int sig) {
  signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
  lua_sethook(running, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* The SIGINT handler in place before the call (the REPL's prompt handler, or
 * the default) comes back after it, so Ctrl-C between two inputs never kills. */
int lt__host_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  struct sigaction stop = {0}, before;
  stop.sa_handler = on_sigint;
  sigemptyset(&stop.sa_mask);
  running = L;
  sigaction(SIGINT, &stop, &before);
  int status = lua_pcall(L, narg, nres, base);
  sigaction(SIGINT, &before, NULL);
  /* a Ctrl-C that came as the call ended must not stop the next one */
  if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}

int lt__host_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fflush(stdout); /* keep the order of what the script printed and the error */
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = lt__host_docall(L, 0, 0);
  return lt__host_report(L, status);
}

/* arg[i] = argv[script + i]; arg[-1] etc. hold what came before the script. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Runs the script argv[script] ("-" is stdin) with argv[script+1..] as `...`. */
static int run_script(lua_State *L, char **argv, int argc, int script) {
  const char *fname = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
  int status = luaL_loadfile(L, fname);
  if (status != LUA_OK) return lt__host_report(L, status);
  int n = argc - script - 1;
  luaL_checkstack(L, n, "too many arguments to the script");
  for (int i = 1; i <= n; i++) lua_pushstring(L, argv[script + i]);
  return lt__host_report(L, lt__host_docall(L, n, 0));
}

/* ---- subcommands ---- */

/* The first argument names a subcommand written in Lua: `lattice models
 * list` runs require("lattice.cli.models").run({"list"}). */
static const char *const subcommands[] = {"models", NULL};

static int is_subcommand(int argc, char **argv) {
  if (argc < 2) return 0;
  for (int i = 0; subcommands[i]; i++)
    if (strcmp(argv[1], subcommands[i]) == 0) return 1;
  return 0;
}

static int require_run(lua_State *L) {
  const char *name = lua_tostring(L, 1);
  lua_getglobal(L, "require");
  lua_pushfstring(L, "lattice.cli.%s", name);
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "run");
  lua_pushvalue(L, 2);
  lua_call(L, 1, 1);
  return 1;
}

/* Runs the subcommand argv[1] with argv[2..] as its arguments; returns its
 * exit status (1 when it raised, after the error is reported). */
static int run_subcommand(lua_State *L, char **argv, int argc) {
  lua_pushcfunction(L, require_run);
  lua_pushstring(L, argv[1]);
  lua_createtable(L, argc - 2, 0);
  for (int i = 2; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  if (lt__host_report(L, lt__host_docall(L, 2, 1)) != LUA_OK) return 1;
  int status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 1;
  lua_pop(L, 1);
  return status;
}

/* ---- main ---- */

typedef struct options {
  int script; /* index of the script in argv, or 0 */
  int has_e, interactive, version;
} options;

/* Scans the options; returns 0, or -1 for a bad option (already reported). */
static int scan_args(char **argv, int argc, options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) return o->script = i, 0;
    if (strcmp(a, "--") == 0) return o->script = i + 1 < argc ? i + 1 : 0, 0;
    if (strcmp(a, "-e") == 0) {
      if (++i == argc) return fprintf(stderr, "%s: '-e' needs an argument\n", progname), -1;
      o->has_e = 1;
    } else if (strcmp(a, "-i") == 0) {
      o->interactive = 1;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      o->version = 1;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(EXIT_SUCCESS);
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", progname, a);
      usage(stderr);
      return -1;
    }
  }
  return 0;
}

/* Runs the -e codes in order, up to the script. */
static int run_codes(lua_State *L, char **argv, int end) {
  for (int i = 1; i < end; i++) {
    if (strcmp(argv[i], "-e") != 0) continue;
    const char *code = argv[++i];
    if (dochunk(L, luaL_loadbuffer(L, code, strlen(code), "=(command line)")) != LUA_OK) return 0;
  }
  return 1;
}

/* Everything that touches Lua, under lua_pcall so nothing can panic. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  if (is_subcommand(argc, argv)) {
    luaL_openlibs(L);
    if (lt__host_report(L, lattice_lua_open(L, NULL)) != LUA_OK) return 0;
    lua_pushboolean(L, run_subcommand(L, argv, argc) == 0);
    return 1;
  }
  options o = {0};
  if (scan_args(argv, argc, &o) != 0) return 0;
  if (o.version) printf("lattice %s (%s)\n", LATTICE_VERSION, LUA_RELEASE);
  luaL_openlibs(L);
  if (lt__host_report(L, lattice_lua_open(L, NULL)) != LUA_OK) return 0;
  create_arg_table(L, argv, argc, o.script ? o.script : argc);
  if (!run_codes(L, argv, o.script ? o.script : argc)) return 0;
  if (o.script && run_script(L, argv, argc, o.script) != LUA_OK) return 0;
  if (o.interactive)
    lt__host_repl(L);
  else if (!o.script && !o.has_e && !o.version) {
    if (isatty(STDIN_FILENO))
      lt__host_repl(L);
    else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK)
      return 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", progname);
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int ok = status == LUA_OK && lua_toboolean(L, -1);
  if (status != LUA_OK) lt__host_report(L, status);
  lua_close(L);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
