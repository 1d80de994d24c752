#!/bin/bash
# tests/integration/manpages.sh -- the manual pages cannot fall behind the
# programs: every long flag in `maosd --help` is in maosd.8, every config
# key it lists is in maosd.conf.5, every command in `maosctl --help` and
# every option in each `maosctl COMMAND --help` is in maosctl.1; and every
# page builds with scdoc.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
maosd=${MAOSD_BIN:?MAOSD_BIN is not set}
maosctl=${MAOSCTL_BIN:?MAOSCTL_BIN is not set}
man=$src/docs/man
fail=0
miss() { echo "FAIL: $1 is not in $2"; fail=1; }

# scdoc writes *--flag* as bold: match the words, not the markup (read
# whole first: grep -q closing a pipe early would fail it under pipefail)
has() { local t; t=$(tr -d '*' <"$man/$2"); grep -qF -- "$1" <<<"$t"; }

for f in $("$maosd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    has "$f" maosd.8.scd || miss "maosd $f" maosd.8.scd
done
keys=$("$maosd" --help | sed -n '/^Config file keys/,/^$/p' | tail -n +2 | tr ',.' '\n\n' | tr -d ' ')
for k in $keys; do
    [ -n "$k" ] || continue
    has "$k" maosd.conf.5.scd || miss "config key $k" maosd.conf.5.scd
    has "$k" maosd.8.scd || miss "config key $k" maosd.8.scd
done
cmds=$("$maosctl" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
[ -n "$cmds" ] || { echo "FAIL: no commands in maosctl --help"; exit 1; }
for c in $cmds; do
    grep -q -- "^\*$c[* ]" "$man/maosctl.1.scd" || miss "maosctl $c (as a command)" maosctl.1.scd
    # `maosctl help CMD` says the same as `maosctl CMD --help`
    [ "$("$maosctl" help "$c")" = "$("$maosctl" "$c" --help)" ] ||
        { echo "FAIL: maosctl help $c differs from maosctl $c --help"; fail=1; }
    for f in $("$maosctl" "$c" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        has "$f" maosctl.1.scd || miss "maosctl $c $f" maosctl.1.scd
    done
done
if command -v scdoc >/dev/null; then
    for p in "$man"/*.scd; do
        scdoc <"$p" >/dev/null || { echo "FAIL: scdoc rejects $p"; fail=1; }
    done
fi
[ $fail = 0 ] && echo "manual pages cover maosd and maosctl"
exit $fail
