#!/usr/bin/env bash
# goheap soak test: tests/soak/run.sh [LIBDIR]   (make soak)
# SOAK_SECONDS (default 600) sets the length. See soak.c for what it checks.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIBDIR=$(cd "${1:-$ROOT/target/release}" && pwd)
mkdir -p "$HERE/build"
gcc -O2 -g -pthread -Wall -Wextra -o "$HERE/build/soak" "$HERE/soak.c" \
    -L"$LIBDIR" -Wl,--no-as-needed -lgoheap -Wl,--as-needed -Wl,-rpath,"$LIBDIR"
exec env LD_PRELOAD="$LIBDIR/libgoheap.so" timeout -k 10 $(( ${SOAK_SECONDS:-600} + 300 )) "$HERE/build/soak"
