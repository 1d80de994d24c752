#!/usr/bin/env bash
# packaging/test-deb.sh -- CI's packaging phase: build the Debian packages
# (packaging/build-deb.sh), install them into this machine with apt, and
# check what a person would use: the files are where Debian puts them, the
# `maos` user exists, the installed maosd serves (started by its unit when
# systemd runs, else /usr/sbin/maosd by hand) and the installed maosctl
# pings it, the examples compile against the installed -dev package with
# pkg-config; then remove (the data stays) and purge (the data goes).
# Ends with "N passed, N failed".  Root (or sudo) is needed for apt.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pass=0
fail=0
check() { # WHAT COMMAND...
    local what=$1
    shift
    if "$@" >/tmp/maos-test-deb.out 2>&1; then
        pass=$((pass + 1)); echo "ok: $what"
    else
        fail=$((fail + 1)); echo "FAIL: $what"; sed 's/^/    /' /tmp/maos-test-deb.out | tail -20
    fi
}
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

tmp=$(mktemp -d /tmp/maos-test-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
check "packages build, lintian clean of errors" "$SRC/packaging/build-deb.sh" --out "$tmp/dist"
[ "$fail" -eq 0 ] || finish
debs=("$tmp"/dist/maosd_*.deb "$tmp"/dist/maosctl_*.deb "$tmp"/dist/libmaos-client1_*.deb
      "$tmp"/dist/libmaos-client-dev_*.deb)
check "apt installs the four packages" $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${debs[@]}"
check "maosd and maosctl in /usr" test -x /usr/sbin/maosd -a -x /usr/bin/maosctl
check "units in /lib/systemd" test -f /lib/systemd/system/maosd.service -a \
    -f /lib/systemd/system/maosd.socket
check "man pages" test -f /usr/share/man/man8/maosd.8.gz -a -f /usr/share/man/man1/maosctl.1.gz \
    -a -f /usr/share/man/man5/maosd.conf.5.gz -a -f /usr/share/man/man3/libmaos-client.3.gz
check "bash completion" test -f /usr/share/bash-completion/completions/maosctl
check "the maos user (sysusers.d)" getent passwd maos
check "pkg-config finds maos-client" pkg-config --exists maos-client

# the installed daemon serves
if [ -d /run/systemd/system ]; then
    check "systemctl start maosd" $SUDO systemctl start maosd
    check "installed maosctl pings the unit's maosd" /usr/bin/maosctl --socket /run/maos/maosd.sock ping
    $SUDO systemctl stop maosd
else
    echo "no systemd running: the installed /usr/sbin/maosd is started by hand, as the unit would"
    $SUDO setpriv --reuid=maos --regid=maos --init-groups /usr/sbin/maosd --socket /run/maos/maosd.sock \
        --data-dir /var/lib/maos --socket-group maos --log-level warn >"$tmp/maosd.log" 2>&1 &
    dpid=$!
    # a client trusts a server of uid root or its own; this one runs as maos
    export MAOS_SERVER_UID
    MAOS_SERVER_UID=$(id -u maos)
    up() { for _ in $(seq 1 200); do /usr/bin/maosctl --socket /run/maos/maosd.sock ping && return 0; sleep 0.05; done; cat "$tmp/maosd.log"; return 1; }
    check "installed maosctl pings the installed maosd" up
    check "an append through the installed tools" /usr/bin/maosctl --socket /run/maos/maosd.sock \
        append deb-test ok '{"n":1}'
    $SUDO kill -TERM "$dpid"
    wait "$dpid"
    check "installed maosd stopped cleanly" test $? -eq 0
fi

# the examples build against the -dev package
for ex in "$SRC"/client/examples/*.c; do
    name=$(basename "$ex" .c)
    extra=""
    grep -q 'adapters/libuv.h' "$ex" && extra=libuv
    # shellcheck disable=SC2046
    check "example $name compiles and links with pkg-config" \
        cc -o "$tmp/$name" "$ex" $(pkg-config --cflags --libs maos-client $extra)
done

check "apt remove keeps the data" sh -c "$SUDO apt-get remove -y maosd >/dev/null && test -d /var/lib/maos"
check "apt purge deletes it" sh -c "$SUDO apt-get purge -y maosd maosctl libmaos-client-dev libmaos-client1 >/dev/null && test ! -e /var/lib/maos"
finish
