/* What the files of the `lattice` command share: main.c runs code, repl.c
 * reads and prints, completion.c gives readline Lua names for Tab. */
#ifndef LATTICE_HOST_H
#define LATTICE_HOST_H

#include <lua.h>

#define LT_HOST_NAME "lattice"
/* Registry field holding the lattice.repl module while the REPL runs. */
#define LT_HOST_REPL_MODULE "lattice.host.repl"

/* Calls the function under the `narg` arguments on top with a traceback
 * handler; Ctrl-C stops it with an "interrupted!" error. */
int lt__host_docall(lua_State *L, int narg, int nres);
/* Prints the error on top (when status is not LUA_OK) to stderr and pops it. */
int lt__host_report(lua_State *L, int status);

void lt__host_repl(lua_State *L);

#ifdef LATTICE_HAVE_READLINE
/* Tab completion of Lua names in L, between begin and end. */
void lt__host_completion_begin(lua_State *L);
void lt__host_completion_end(void);
#endif

#endif
