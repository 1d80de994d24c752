#!/bin/bash
# tests/integration/systemd_units.sh -- the units as systemd reads them:
# `systemd-analyze verify` on maosd.service, maosd.socket and the user unit
# (ExecStart pointed at the built maosd, which must exist for verify), and
# `systemd-analyze security` of maosd.service at most 2.0.  Skipped (exit
# 77) where systemd-analyze is absent.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
maosd=$(realpath "${MAOSD_BIN:?MAOSD_BIN is not set}")
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in maosd.service maosd.socket maosd-user.service maosd-user.socket; do
    sed "s|/usr/sbin/maosd|$maosd|g" "$src/systemd/$f" >"$tmp/$f"
done
cd "$tmp"
systemd-analyze verify maosd.service maosd.socket
XDG_RUNTIME_DIR=$tmp systemd-analyze --user verify maosd-user.service maosd-user.socket
out=$(systemd-analyze security --offline=yes maosd.service 2>&1)
level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for maosd.service: \([0-9.]*\).*/\1/p')
[ -n "$level" ] || { printf '%s\n' "$out"; echo "FAIL: no exposure level"; exit 1; }
echo "exposure level: $level"
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || { printf '%s\n' "$out"; echo "FAIL: exposure $level > 2.0"; exit 1; }
# the sysusers.d lines parse (a dry run into an empty root)
if command -v systemd-sysusers >/dev/null; then
    mkdir -p "$tmp/root"
    systemd-sysusers --dry-run --root="$tmp/root" "$src/systemd/maos.sysusers" >/dev/null 2>&1
fi
echo "units ok"
