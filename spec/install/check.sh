#!/bin/sh
# ctest's install check: `cmake --install` into a temporary prefix, then what
# a user of the installed package does, from a directory outside the source
# tree. The prefix is moved half way, to show the install is relocatable.
#
#   sh spec/install/check.sh BUILD_DIR SOURCE_DIR
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fail() {
  echo "install check: $*" >&2
  exit 1
}
step() { echo "-- $*"; }

step "cmake --install into a temporary prefix"
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
P=$tmp/prefix
export P
for f in bin/lattice lib/lua/5.4/lattice/core.so share/lua/5.4/lattice/init.lua share/lua/5.4/lattice/nn/init.lua \
  include/lattice/lattice.h include/lattice/sparse.h include/lattice/lua.h lib/liblattice_core.so lib/liblattice_lua.so \
  lib/pkgconfig/lattice.pc lib/pkgconfig/lattice-core.pc lib/cmake/lattice/latticeConfig.cmake \
  lib/cmake/lattice/latticeTargets.cmake; do
  [ -e "$P/$f" ] || fail "$f is not installed"
done
# every Lua file of the source tree, at its place
(cd "$src/lua" && find lattice -name '*.lua') | while read -r f; do
  cmp -s "$src/lua/$f" "$P/share/lua/5.4/$f" || fail "share/lua/5.4/$f differs from lua/$f"
done

step "plain lua5.4 with the prefix's paths"
lua_paths() {
  LUA_PATH="$1/share/lua/5.4/?.lua;$1/share/lua/5.4/?/init.lua"
  LUA_CPATH="$1/lib/lua/5.4/?.so"
  export LUA_PATH LUA_CPATH
}
lua_paths "$P"
lua5.4 -e '
  local lattice = require "lattice"
  local prefix = os.getenv("P")
  for _, m in ipairs { "lattice", "lattice.nn", "lattice.optim", "lattice.ops" } do
    local where = assert(package.searchpath(m, package.path))
    assert(where:sub(1, #prefix) == prefix, m .. " came from " .. where)
  end
  assert(package.searchpath("lattice.core", package.cpath):sub(1, #prefix) == prefix)
  assert(lattice.sum(lattice.array({ 1, 2, 3 })):item() == 6)' || fail "require \"lattice\" from the prefix"
lua5.4 "$src/examples/quickstart.lua" | grep -q "largest difference: 0\.00" || fail "lua5.4 examples/quickstart.lua"

step "the prefix moved elsewhere: the command and the libraries find their files"
mv "$tmp/prefix" "$tmp/moved"
P=$tmp/moved
export P
unset LUA_PATH LUA_CPATH
"$P/bin/lattice" -e '
  local where = package.searchpath("lattice", package.path)
  assert(where:sub(1, #os.getenv("P")) == os.getenv("P"), "lattice came from " .. where)' \
  || fail "bin/lattice does not take its Lua files from the prefix"
"$P/bin/lattice" "$src/examples/quickstart.lua" | grep -q "largest difference: 0\.00" || fail "bin/lattice examples/quickstart.lua"

step "a host built with pkg-config"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
# shellcheck disable=SC2046 # pkg-config prints one flag per word
cc -o "$tmp/host_pc" "$src/examples/embed/host.c" $(pkg-config --cflags --libs lattice) -lpthread -lm \
  || fail "cc examples/embed/host.c \$(pkg-config --cflags --libs lattice)"
# shellcheck disable=SC2046
cc -o "$tmp/core_pc" -x c - $(pkg-config --cflags --libs lattice-core) <<'C' || fail "a C program on lattice-core"
#include <stdio.h>
#include "lattice/lattice.h"
/* (1 2; 3 4) @ (1 2; 3 4) = (7 10; 15 22), through the C core alone */
int main(void) {
  lt_ctx *ctx = lt_ctx_new();
  float a[4] = {1, 2, 3, 4};
  int64_t shape[2] = {2, 2};
  lt_tensor *x = NULL, *y = NULL;
  if (!ctx || lt_tensor_from_data(ctx, &x, LT_FLOAT32, 2, shape, a) != LT_OK || lt_matmul(ctx, &y, x, x) != LT_OK)
    return 1;
  const float *r = lt_tensor_data(y);
  printf("lattice-core %g %g %g %g\n", r[0], r[1], r[2], r[3]);
  lt_tensor_release(x);
  lt_tensor_release(y);
  lt_ctx_close(ctx);
  return 0;
}
C
"$tmp/core_pc" | grep -q "lattice-core 7 10 15 22" || fail "the lattice-core program"
(cd "$src/examples/embed" && "$tmp/host_pc" --threads) || fail "the pkg-config host"

step "a host built with find_package(lattice)"
cmake -S "$src/examples/embed" -B "$tmp/embed" -DCMAKE_PREFIX_PATH="$P" >/dev/null || fail "find_package(lattice)"
cmake --build "$tmp/embed" >/dev/null || fail "building examples/embed against the package"
(cd "$src/examples/embed" && "$tmp/embed/host" --threads) || fail "the find_package host"
(cd "$src/examples/embed" && "$tmp/embed/host") >/dev/null || fail "the find_package host, one state"
echo "install check: all passed"
