#!/usr/bin/env bash
# packaging/test-deb.sh -- CI's packaging phase: build the Debian packages
# (packaging/build-deb.sh), install them into this machine with apt, and
# check what a person would use: the files are where Debian puts them, the
# `maos` user exists, the installed maosd serves (started by its unit when
# systemd runs, else /usr/sbin/maosd by hand) and the installed maosctl
# pings it, the examples compile against the installed -dev package with
# pkg-config, the installed Python client (python3-maos, imported by
# Debian's /usr/bin/python3 in isolated mode, so from dist-packages and
# never from this tree) appends and reads back through the installed
# maosd; then remove (the data stays) and purge (the data and the Python
# module go).
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
      "$tmp"/dist/libmaos-client-dev_*.deb "$tmp"/dist/python3-maos_*.deb)
check "apt installs the five packages" $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${debs[@]}"
check "maosd and maosctl in /usr" test -x /usr/sbin/maosd -a -x /usr/bin/maosctl
check "units in /lib/systemd" test -f /lib/systemd/system/maosd.service -a \
    -f /lib/systemd/system/maosd.socket
check "man pages" test -f /usr/share/man/man8/maosd.8.gz -a -f /usr/share/man/man1/maosctl.1.gz \
    -a -f /usr/share/man/man5/maosd.conf.5.gz -a -f /usr/share/man/man3/libmaos-client.3.gz
check "bash completion" test -f /usr/share/bash-completion/completions/maosctl
check "the maos user (sysusers.d)" getent passwd maos
check "pkg-config finds maos-client" pkg-config --exists maos-client

# The Python client as installed: /usr/bin/python3 -I (no PYTHONPATH, no
# user site, no current directory) run from an empty directory.
PYDIST=/usr/lib/python3/dist-packages
mkdir -p "$tmp/empty"
pyi() { (cd "$tmp/empty" && /usr/bin/python3 -I "$@"); }
check "python3 imports maos from $PYDIST" pyi -c "
import maos, sys
assert maos.__file__ == '$PYDIST/maos/__init__.py', maos.__file__
assert maos.Client and maos.AsyncClient and issubclass(maos.WrongExpectedVersion, maos.Error)
"
check "py.typed is installed (type hints for users' mypy)" test -f "$PYDIST/maos/py.typed"
# pyclient SOCKET: an append, a read back, a refused append and an asyncio
# read through the installed module, against the installed maosd
cat >"$tmp/pyclient.py" <<'PY'
import asyncio, sys
import maos
sock = sys.argv[1]
assert maos.__file__.startswith("/usr/lib/python3/dist-packages/"), maos.__file__
with maos.Client(sock) as c:
    r = c.append("deb-py-1", [{"type": "created", "data": {"n": 1}},
                              {"type": "done", "data": {"n": 2}}], expect="no_stream")
    assert r.count == 2 and r.first_version == 0, r
    evs = list(c.read("deb-py-1"))
    assert [(e.version, e.type, e.data) for e in evs] == \
        [(0, "created", {"n": 1}), (1, "done", {"n": 2})], evs
    try:
        c.append("deb-py-1", [{"type": "t"}], expect=7)
        raise SystemExit("an append at the wrong version was accepted")
    except maos.WrongExpectedVersion as e:
        assert e.actual == 1, e.actual
async def main() -> None:
    async with maos.AsyncClient(sock) as a:
        got = [e.type async for e in a.read("deb-py-1")]
        assert got == ["created", "done"], got
asyncio.run(main())
print("python client ok")
PY

# the installed daemon serves
if [ -d /run/systemd/system ]; then
    check "systemctl start maosd" $SUDO systemctl start maosd
    check "installed maosctl pings the unit's maosd" /usr/bin/maosctl --socket /run/maos/maosd.sock ping
    check "installed Python client appends and reads through the unit's maosd" \
        pyi "$tmp/pyclient.py" /run/maos/maosd.sock
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
    check "installed Python client appends and reads through the installed maosd" \
        pyi "$tmp/pyclient.py" /run/maos/maosd.sock
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
check "apt purge removes the Python module (and its byte code)" sh -c "$SUDO apt-get purge -y python3-maos >/dev/null && test ! -e $PYDIST/maos && ! ls -d $PYDIST/maos-*.dist-info 2>/dev/null"
check "python3 no longer imports maos" sh -c "cd '$tmp/empty' && ! /usr/bin/python3 -I -c 'import maos'"
finish
