#!/usr/bin/env bash
# tests/abi/abi.sh LIB BASELINE -- the ABI compatibility check of
# libmaos-client (abi-compat): LIB, as built, against BASELINE, the ABI of
# the current SONAME as abidw described it (tests/abi/libmaos-client.abi,
# checked in).  abidiff (Debian abigail-tools) reports every exported
# function or variable removed, and every change of a type they use (a
# field added to maos_options, a parameter changed, ...); either fails.
# Functions added are compatible and pass (abi-symbols lists them).
#
# Only types of the installed headers count (client/include/maos/*.h and
# proto's consts.h and errors.h, gathered by installed_headers below;
# --drop-private-types): the library's private structures (client_priv.h,
# behind maos_ctx's opaque priv pointer) change freely, and so do the wire
# structures of maos/proto.h, which is not installed (docs/ARCHITECTURE.md
# "The client library's ABI": they grow with every protocol addition).
#
# After an intended incompatible change: bump the SONAME (client/meson.build
# soversion, the node of client/libmaos-client.map, the Debian package
# name) and regenerate the baseline from the new library:
#     tests/abi/abi.sh --baseline build/client/libmaos-client.so
# After an intended compatible addition, regenerate it as well (so that a
# later removal of the addition is caught).
#
# Without abidiff (abigail-tools not installed) the test is skipped (exit
# 77), saying so.  Prints "N passed, N failed" like the other checks.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
# The headers `meson install` puts in include/maos, and only those.
hdrs=$(mktemp -d)
trap 'rm -rf "$hdrs"' EXIT
mkdir "$hdrs/maos"
cp "$src"/client/include/maos/*.h "$src/proto/include/maos/consts.h" \
   "$src/proto/include/maos/errors.h" "$hdrs/maos/"
if [ "${1:-}" = --baseline ]; then
    abidw --no-corpus-path --headers-dir "$hdrs" --drop-private-types \
        --out-file "$src/tests/abi/libmaos-client.abi" "$2"
    exit $?
fi
lib=$1 base=$2
if ! command -v abidiff >/dev/null 2>&1; then
    echo "abidiff not found (apt install abigail-tools): ABI compatibility not checked"
    exit 77
fi
out=$(abidiff --no-added-syms --hd2 "$hdrs" --drop-private-types "$base" "$lib" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
    echo "ABI of $(basename "$lib") compatible with $(basename "$base")"
    echo "1 passed, 0 failed"
    exit 0
fi
echo "$out"
# abidiff's status is a bit set: 1 error, 2 usage, 4 ABI change, 8
# incompatible change
echo "abidiff exit status $rc: $( ((rc & 3)) && echo "abidiff failed" ||
      echo "the ABI changed: bump the SONAME or restore it (see tests/abi/abi.sh)")"
echo "0 passed, 1 failed"
exit 1
