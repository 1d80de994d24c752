#!/usr/bin/env bash
# tests/abi/symbols.sh LIB LIST -- the ABI check of libmaos-client: the
# dynamic symbols LIB defines must be exactly the names in LIST (one a
# line, sorted; client/libmaos-client.symbols).
#   - a name in LIST missing from LIB: an ABI break (a function removed or
#     renamed): restore it, or bump the SONAME and regenerate LIST;
#   - a name in LIB missing from LIST: a new export; when intended, add it
#     (regenerate with: nm -D --defined-only LIB | awk '{print $3}' | sort);
#   - anything not maos_*: a leak of an internal (see libmaos-client.map).
# Prints "N passed, N failed" like the other checks.
set -uo pipefail
lib=$1 list=$2
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRBVW]$/ {print $3}' | sed 's/@.*//' |
       grep -v '^MAOS_CLIENT_[0-9]*$' | sort -u)
want=$(grep -v '^#' "$list" | sort -u)
fail=0
missing=$(comm -13 <(echo "$have") <(echo "$want"))
extra=$(comm -23 <(echo "$have") <(echo "$want"))
leaked=$(echo "$have" | grep -v '^maos_' || true)
if [ -n "$missing" ]; then
    echo "ABI break: exported before, missing now:"; echo "$missing" | sed 's/^/  /'
    fail=1
fi
if [ -n "$extra" ]; then
    echo "new exports not in $list (add them if intended):"; echo "$extra" | sed 's/^/  /'
    fail=1
fi
if [ -n "$leaked" ]; then
    echo "internal symbols exported:"; echo "$leaked" | sed 's/^/  /'
    fail=1
fi
echo "$(echo "$want" | wc -l) symbols checked"
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $fail
