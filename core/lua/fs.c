/* Files, directories and terminals for the Lua library (lattice.train's
 * checkpoints, lattice.lora's adapters, the progress display):
 *
 *   lattice.isatty(file) -> whether a Lua file (io.stdout) is a terminal
 *
 * and, in lattice.core only, the directory operations of core/io/dirs.h:
 *   fs_mkdirs(path, who), fs_remove_tree(path, who), fs_write(path, text, who),
 *   fs_list(path, who) -> sorted names, fs_kind(path) -> "file" | "directory" | "other" | nil,
 *   fs_tempdir(parent, name, who) -> TempDir {path}, td:commit(), td:close()
 * Errors read "<who>: <path>: <step>: <system message>". */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "binding.h"
#include "io/dirs.h"

#define LT_L_TEMPDIR "lattice.TempDir"
#define LT_L_DIRLIST "lattice.DirList"

static int fail(lua_State *L, const char *who, const char *path, const char *what, int err) {
  return luaL_error(L, "%s: %s: %s: %s", who, path, what, strerror(err));
}

/* A path argument without NUL bytes (C would see a shorter path). */
static const char *check_path(lua_State *L, int arg, const char *who) {
  size_t n;
  const char *p = luaL_checklstring(L, arg, &n);
  if (strlen(p) != n) luaL_error(L, "%s: path contains a NUL byte", who);
  return p;
}

static int l_isatty(lua_State *L) {
  lt_l_checkmaxargs(L, 1, "isatty");
  luaL_Stream *f = luaL_checkudata(L, 1, LUA_FILEHANDLE);
  if (!f->closef) return luaL_error(L, "isatty: the file is closed");
  lua_pushboolean(L, isatty(fileno(f->f)) == 1);
  return 1;
}

static int l_mkdirs(lua_State *L) {
  const char *who = luaL_checkstring(L, 2), *path = check_path(L, 1, who), *what;
  int err = lt__mkdirs(path, &what);
  return err ? fail(L, who, path, what, err) : 0;
}

static int l_remove_tree(lua_State *L) {
  const char *who = luaL_checkstring(L, 2), *path = check_path(L, 1, who), *what;
  int err = lt__remove_tree(path, &what);
  return err ? fail(L, who, path, what, err) : 0;
}

static int l_write(lua_State *L) {
  size_t n;
  const char *who = luaL_checkstring(L, 3), *path = check_path(L, 1, who), *what;
  const char *text = luaL_checklstring(L, 2, &n);
  int err = lt__write_file(path, text, n, &what);
  return err ? fail(L, who, path, what, err) : 0;
}

static int l_kind(lua_State *L) {
  const char *path = check_path(L, 1, "fs_kind");
  struct stat st;
  if (stat(path, &st) != 0) return 0;
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
  return 1;
}

/* The open DIR while its names move into Lua: closed by __gc if a push raises. */
typedef struct dir_box {
  DIR *d;
} dir_box;

static int dir_box_close(lua_State *L) {
  dir_box *b = luaL_checkudata(L, 1, LT_L_DIRLIST);
  if (b->d) closedir(b->d);
  b->d = NULL;
  return 0;
}

static int cmp_names(lua_State *L) {
  lua_pushboolean(L, strcmp(lua_tostring(L, 1), lua_tostring(L, 2)) < 0);
  return 1;
}

static int l_list(lua_State *L) {
  const char *who = luaL_checkstring(L, 2), *path = check_path(L, 1, who);
  dir_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->d = NULL;
  luaL_setmetatable(L, LT_L_DIRLIST);
  if (!(b->d = opendir(path))) return fail(L, who, path, "cannot read the directory", errno);
  lua_newtable(L);
  lua_Integer n = 0;
  for (struct dirent *e; (e = readdir(b->d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(b->d);
  b->d = NULL;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* table.sort, in byte order as strcmp compares */
  lua_getfield(L, -1, "table");
  lua_getfield(L, -1, "sort");
  lua_remove(L, -2);
  lua_pushvalue(L, -3);
  lua_pushcfunction(L, cmp_names);
  lua_call(L, 2, 0);
  lua_pop(L, 1);
  return 1;
}

/* ---- TempDir ---- */

typedef struct tempdir_box {
  lt__tmpdir td;
  int begun;
} tempdir_box;

static tempdir_box *check_tempdir(lua_State *L) { return luaL_checkudata(L, 1, LT_L_TEMPDIR); }

/* __gc, __close and close(): removes the directory unless committed; idempotent. */
static int tempdir_close(lua_State *L) {
  tempdir_box *b = check_tempdir(L);
  if (b->begun) lt__tmpdir_end(&b->td);
  b->begun = 0;
  return 0;
}

static int l_tempdir(lua_State *L) {
  const char *who = luaL_checkstring(L, 3), *parent = check_path(L, 1, who), *name = check_path(L, 2, who), *what;
  if (!*name || strchr(name, '/')) return luaL_error(L, "%s: '%s' is not a directory name", who, name);
  tempdir_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->begun = 0;
  luaL_setmetatable(L, LT_L_TEMPDIR);
  lua_pushstring(L, who);
  lua_setiuservalue(L, -2, 1);
  int err = lt__tmpdir_begin(&b->td, parent, name, &what);
  b->begun = 1;
  if (err) {
    lt__tmpdir_end(&b->td);
    b->begun = 0;
    return fail(L, who, parent, what, err);
  }
  return 1;
}

/* td:commit(): the directory appears under its final name, whole. */
static int tempdir_commit(lua_State *L) {
  tempdir_box *b = check_tempdir(L);
  lua_getiuservalue(L, 1, 1);
  const char *who = lua_tostring(L, -1), *what;
  if (!b->begun || !b->td.path) return luaL_error(L, "%s: the temporary directory is closed", who);
  int err = lt__tmpdir_commit(&b->td, &what);
  if (err) return fail(L, who, b->td.final, what, err);
  return 0;
}

static int tempdir_index(lua_State *L) {
  tempdir_box *b = check_tempdir(L);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "path") == 0) {
    if (b->begun && b->td.path)
      lua_pushstring(L, b->td.path);
    else
      lua_pushnil(L);
    return 1;
  }
  if (strcmp(key, "commit") == 0)
    lua_pushcfunction(L, tempdir_commit);
  else if (strcmp(key, "close") == 0)
    lua_pushcfunction(L, tempdir_close);
  else
    lua_pushnil(L);
  return 1;
}

void lt_l_open_fs(lua_State *L) {
  if (luaL_newmetatable(L, LT_L_TEMPDIR)) {
    static const luaL_Reg meta[] = {
        {"__gc", tempdir_close}, {"__close", tempdir_close}, {"__index", tempdir_index}, {NULL, NULL}};
    luaL_setfuncs(L, meta, 0);
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LT_L_DIRLIST)) {
    lua_pushcfunction(L, dir_box_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"isatty", l_isatty}, {"fs_mkdirs", l_mkdirs}, {"fs_remove_tree", l_remove_tree}, {"fs_write", l_write},
      {"fs_kind", l_kind},  {"fs_list", l_list},     {"fs_tempdir", l_tempdir},         {NULL, NULL},
  };
  lt_l_register(L, fns);
}
