#!/usr/bin/env bash
# tests/abi/abi.sh LIB BASELINE -- the ABI compatibility check of
# libmaos-client (abi-compat): LIB, as built, against BASELINE, the ABI of
# the current SONAME as abidw described it (tests/abi/libmaos-client.abi,
# checked in).  abidiff (Debian abigail-tools) reports every exported
# function or variable removed, and every change of a type they use (a
# field added to maos_options, a parameter changed, ...); either fails.
# Functions added are compatible and pass (abi-symbols lists them).
#
# Only types of the installed headers count (client/include, proto/include;
# --drop-private-types): the library's private structures (client_priv.h,
# behind maos_ctx's opaque priv pointer) change freely.
#
# After an intended incompatible change: bump the SONAME (client/meson.build
# soversion, the node of client/libmaos-client.map, the Debian package
# name) and regenerate the baseline from the new library:
#     abidw --no-corpus-path --headers-dir client/include \
#           --headers-dir proto/include --drop-private-types \
#           --out-file tests/abi/libmaos-client.abi build/client/libmaos-client.so
# After an intended compatible addition, regenerate it as well (so that a
# later removal of the addition is caught).
#
# Without abidiff (abigail-tools not installed) the test is skipped (exit
# 77), saying so.  Prints "N passed, N failed" like the other checks.
set -uo pipefail
lib=$1 base=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v abidiff >/dev/null 2>&1; then
    echo "abidiff not found (apt install abigail-tools): ABI compatibility not checked"
    exit 77
fi
out=$(abidiff --no-added-syms --hd2 "$src/client/include" --hd2 "$src/proto/include" \
    --drop-private-types "$base" "$lib" 2>&1)
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
