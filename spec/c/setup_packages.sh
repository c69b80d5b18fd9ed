#!/bin/sh
# setup.sh installs per command: `quickstart` and `build` ask only for what
# building and running needs, `test` for lua-busted, lua-check, pkg-config,
# luarocks, g++ and locales as well.
# Run as a user who is not root on a machine with nothing installed (stubs of
# id and dpkg-query first on PATH), setup.sh names the missing packages and
# stops; stubs of apt-get and cmake fail, so nothing is installed or built.
#
#   sh spec/c/setup_packages.sh path/to/setup.sh     (ctest: setup_packages)
set -eu

setup=$1
stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
printf '#!/bin/sh\necho 1000\n' >"$stubs/id"
for tool in dpkg-query apt-get cmake; do printf '#!/bin/sh\nexit 1\n' >"$stubs/$tool"; done
chmod +x "$stubs"/*

# check COMMAND PACKAGES: setup.sh COMMAND stops, naming exactly PACKAGES.
check() {
  if out=$(PATH="$stubs:$PATH" sh "$setup" "$1" 2>&1); then
    echo "setup_packages: setup.sh $1 went on with nothing installed" >&2
    exit 1
  fi
  got=$(printf '%s\n' "$out" | sed -n 's/^setup.sh: these Debian packages are missing: //p')
  if [ "$got" != "$2" ]; then
    printf 'setup_packages: setup.sh %s asks for "%s", not "%s"\n' "$1" "$got" "$2" >&2
    exit 1
  fi
}

build="gcc libc6-dev make cmake liblua5.4-dev lua5.4 libopenblas-dev libcjson-dev libreadline-dev"
check quickstart "$build"
check build "$build"
check test "$build lua-busted lua-check pkg-config luarocks g++ locales"
echo "setup_packages: each command asks for what it needs"
