#!/bin/sh
# lattice's entry script, for a Debian 12 machine (bare is fine):
#
#   sh setup.sh quickstart   install what building needs, build, run examples/quickstart.lua
#   sh setup.sh test         install what building and testing need, build, run every test (ctest)
#   sh setup.sh build        install what building needs, build into ./build
#
# As root it installs the missing Debian packages with apt-get; as another
# user it prints the apt-get line to run and stops. The build is CMake's
# Release build in ./build; the command it makes is ./build/bin/lattice.
set -eu

cd "$(dirname "$0")"

# What building and running lattice needs (Debian package names).
#   gcc libc6-dev make cmake         the C toolchain (OpenMP comes with gcc)
#   liblua5.4-dev lua5.4             Lua 5.4 to embed, and its interpreter (CMake looks for it)
#   libopenblas-dev libcjson-dev     GEMMs; JSON headers of safetensors files
#   libreadline-dev                  line editing, completion and history in the REPL
BUILD_PACKAGES="gcc libc6-dev make cmake liblua5.4-dev lua5.4 libopenblas-dev libcjson-dev libreadline-dev"
# What the tests need on top.
#   lua-busted lua-check             the spec runner (its files cover Lua 5.4), the Lua linter
#   pkg-config luarocks              the install checks: a host built with pkg-config, luarocks make
#   g++ locales                      a C++ host of the public headers; a decimal-comma locale for the locale check
TEST_PACKAGES="lua-busted lua-check pkg-config luarocks g++ locales"

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

# The packages of the list $1 that are not installed.
missing_packages() {
  missing=""
  for p in $1; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing="$missing $p"
    fi
  done
  echo "${missing# }"
}

# Installs the missing packages of the list $1 (as root), or says what to run.
install_packages() {
  missing=$(missing_packages "$1")
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: these Debian packages are missing: $missing" >&2
    echo "Install them, then run this again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $missing" >&2
    exit 1
  fi
  echo "setup.sh: installing $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# Installs the packages of the list $1, then builds.
build() {
  install_packages "$1"
  jobs=$(nproc 2>/dev/null || echo 2)
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$jobs"
}

case "${1:-}" in
  quickstart)
    build "$BUILD_PACKAGES"
    exec ./build/bin/lattice examples/quickstart.lua
    ;;
  test)
    build "$BUILD_PACKAGES $TEST_PACKAGES"
    # ctest's summary ("100% tests passed, 0 tests failed out of N") ends the output.
    exec ctest --test-dir build --output-on-failure -j "$(nproc 2>/dev/null || echo 2)"
    ;;
  build)
    build "$BUILD_PACKAGES"
    ;;
  -h | --help | help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
