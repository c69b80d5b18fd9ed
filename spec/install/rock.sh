#!/bin/sh
# ctest's LuaRocks check: Debian's luarocks builds rocks/lattice-scm-1.rockspec
# into a temporary tree (nothing fetched: --deps-mode=none), and plain lua5.4
# with that tree's paths requires lattice and runs the quickstart. The build
# runs in a copy of the source, so build.luarocks/ stays out of the checkout.
#
#   sh spec/install/rock.sh SOURCE_DIR
set -eu
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "rock check: $*" >&2
  exit 1
}

mkdir "$tmp/src"
tar -C "$src" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$tmp/src" -xf -
cd "$tmp/src"
luarocks --lua-version=5.4 make --tree "$tmp/tree" --deps-mode=none rocks/lattice-scm-1.rockspec >"$tmp/log" 2>&1 \
  || { tail -n 30 "$tmp/log" >&2; fail "luarocks make failed"; }

cd "$tmp"
eval "$(luarocks --lua-version=5.4 path --tree "$tmp/tree")"
TREE=$tmp/tree lua5.4 -e '
  local tree = os.getenv("TREE")
  local lattice = require "lattice"
  for _, m in ipairs { "lattice", "lattice.nn", "lattice.optim", "lattice.ops" } do
    local where = assert(package.searchpath(m, package.path))
    assert(where:sub(1, #tree) == tree, m .. " came from " .. where)
  end
  assert(package.searchpath("lattice.core", package.cpath):sub(1, #tree) == tree)
  assert(lattice.sum(lattice.array({ 1, 2, 3 })):item() == 6)' || fail "require \"lattice\" from the rocks tree"
lua5.4 "$src/examples/quickstart.lua" | grep -q "largest difference: 0\.00" || fail "lua5.4 examples/quickstart.lua"
echo "rock check: luarocks make and require \"lattice\" passed"
