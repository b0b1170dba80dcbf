#!/bin/sh
# Builds native/build/sgwall-gai.so (native/sgwall-gai.c), the LD_PRELOAD shim the
# host dataplane gives iptables-restore (see the file's header). Run by `npm run build`
# and by `npm ci`/`npm install` (prepare). Without a C compiler it warns and exits 0:
# sgwall then runs iptables-restore without the shim (correct, much slower with many devices).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${CC:-}" ]; then
  if command -v cc >/dev/null 2>&1; then CC=cc; else CC=gcc; fi
fi
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build-native: no C compiler ($CC); iptables-restore will run without native/build/sgwall-gai.so" >&2
  exit 0
fi
mkdir -p native/build
"$CC" -O2 -Wall -Wextra -Werror -shared -fPIC -o native/build/sgwall-gai.so.tmp native/sgwall-gai.c -ldl
mv native/build/sgwall-gai.so.tmp native/build/sgwall-gai.so
