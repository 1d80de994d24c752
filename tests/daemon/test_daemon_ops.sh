#!/usr/bin/env bash
# tests/daemon/test_daemon_ops.sh -- maosd as an operator meets it: flags,
# config file, one daemon per data directory and per socket, stale sockets,
# signals, durability modes.  Every daemon it starts is stopped by pid.
#
# Env: MAOSD_BIN, MAOSCTL_BIN (set by meson).
set -u
MAOSD=${MAOSD_BIN:?MAOSD_BIN not set}
MAOSCTL=${MAOSCTL_BIN:?MAOSCTL_BIN not set}
T=$(mktemp -d /tmp/maos-daemon-ops.XXXXXX)
PIDS=()
pass=0 fail=0

cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

ok()   { pass=$((pass + 1)); echo "ok - $1"; }
bad()  { fail=$((fail + 1)); echo "not ok - $1"; [ -n "${2:-}" ] && echo "# $2"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

# start NAME ARGS...: start maosd in the background, log to $T/NAME.log;
# its pid is left in $LASTPID (not echoed: a $(...) would wait for maosd)
LASTPID=
start() {
    local name=$1; shift
    "$MAOSD" "$@" >/dev/null 2>"$T/$name.log" &
    LASTPID=$!
    PIDS+=("$LASTPID")
}

# wait_sock SOCK: until maosctl ping answers (bounded: 10 s)
wait_sock() {
    for _ in $(seq 1 200); do
        "$MAOSCTL" --socket "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# wait_exit PID SECONDS: the exit status, or 124 if it is still running
wait_exit() {
    local pid=$1 n=$(( $2 * 20 ))
    for _ in $(seq 1 "$n"); do
        if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; return $?; fi
        sleep 0.05
    done
    return 124
}

# --help, --version, bad flags
"$MAOSD" --help >"$T/help" 2>&1; rc=$?
check "--help exits 0" [ $rc -eq 0 ]
check "--help lists every flag" bash -c "for f in --config --data-dir --socket --socket-group --durability --max-frame --log-level --version; do grep -q -- \"\$f\" '$T/help' || exit 1; done"
out=$("$MAOSD" --version); rc=$?
check "--version exits 0 and names maosd" bash -c "[ $rc -eq 0 ] && [[ '$out' == maosd* ]]"
"$MAOSD" --no-such-flag >/dev/null 2>&1; rc=$?
check "unknown flag exits 2" [ $rc -eq 2 ]
"$MAOSD" --durability sometimes --data-dir "$T/x" --socket "$T/x.sock" >/dev/null 2>"$T/bad.err"; rc=$?
check "bad --durability exits 2 with a message" bash -c "[ $rc -eq 2 ] && grep -q durability '$T/bad.err'"

# config file sets socket and data dir; a flag overrides the file
mkdir -p "$T/cfg"
cat >"$T/cfg/maosd.conf" <<CONF
[maosd]
data_dir = $T/cfgdata
socket = $T/cfg.sock
durability = none
log_level = info
CONF
start cfg --config "$T/cfg/maosd.conf"; pid=$LASTPID
if wait_sock "$T/cfg.sock"; then
    ok "config file: socket from the file"
    check "config file: data dir from the file" test -d "$T/cfgdata"
    dur=$("$MAOSCTL" --socket "$T/cfg.sock" --json stats | grep -o '"durability": *"[a-z]*"' | grep -o '[a-z]*"$')
    check "config file: durability none" [ "$dur" = 'none"' ]
else
    bad "config file: socket from the file" "$(cat "$T/cfg.log")"
fi
kill -TERM "$pid"; wait_exit "$pid" 10; rc=$?
check "SIGTERM: clean exit 0" [ $rc -eq 0 ]
check "SIGTERM: logs stopped cleanly" grep -q "stopped cleanly" "$T/cfg.log"
check "SIGTERM: socket removed" test ! -e "$T/cfg.sock"

start cfg2 --config "$T/cfg/maosd.conf" --socket "$T/flag.sock"; pid=$LASTPID
if wait_sock "$T/flag.sock"; then ok "flag overrides the config file"; else bad "flag overrides the config file" "$(cat "$T/cfg2.log")"; fi
kill -TERM "$pid"; wait_exit "$pid" 10 >/dev/null

printf '[maosd]\nno_such_key = 1\n' >"$T/bad.conf"
"$MAOSD" --config "$T/bad.conf" >/dev/null 2>"$T/badconf.err"; rc=$?
check "unknown config key exits 2 naming the key" bash -c "[ $rc -eq 2 ] && grep -q no_such_key '$T/badconf.err'"
"$MAOSD" --config "$T/missing.conf" >/dev/null 2>&1; rc=$?
check "missing explicit config file exits 2" [ $rc -eq 2 ]

# one daemon per data directory and per socket
start one --data-dir "$T/d1" --socket "$T/one.sock"; pid=$LASTPID
wait_sock "$T/one.sock" || bad "first daemon starts" "$(cat "$T/one.log")"
"$MAOSCTL" --socket "$T/one.sock" append s-1 t '{"n":1}' >/dev/null
start two --data-dir "$T/d1" --socket "$T/two.sock"; p2=$LASTPID
wait_exit "$p2" 10; rc=$?
check "second daemon on the same data dir exits 1 at once" [ $rc -eq 1 ]
check "... saying the data dir is in use" grep -q "in use by another maosd" "$T/two.log"
start three --data-dir "$T/d3" --socket "$T/one.sock"; p3=$LASTPID
wait_exit "$p3" 10; rc=$?
check "second daemon on the same socket exits 1 at once" [ $rc -eq 1 ]
check "... saying another maosd listens there" grep -q "another maosd is already listening" "$T/three.log"
check "the first daemon still serves" bash -c "'$MAOSCTL' --socket '$T/one.sock' ping >/dev/null"

# kill -9 leaves a stale socket; a restart replaces it and keeps the data
kill -9 "$pid"; wait "$pid" 2>/dev/null
check "kill -9 leaves the socket file" test -S "$T/one.sock"
start one-again --data-dir "$T/d1" --socket "$T/one.sock"; pid=$LASTPID
if wait_sock "$T/one.sock"; then ok "restart replaces a stale socket"; else bad "restart replaces a stale socket" "$(cat "$T/one-again.log")"; fi
check "... and logs it" grep -q "replacing stale socket" "$T/one-again.log"
n=$("$MAOSCTL" --socket "$T/one.sock" read s-1 | wc -l)
check "... and the data is there" [ "$n" -eq 1 ]

# socket permissions: 0600, directory created 0700
mkdir -p "$T/rt"
start perm --data-dir "$T/d4" --socket "$T/rt/sub/maosd.sock"; pid2=$LASTPID
if wait_sock "$T/rt/sub/maosd.sock"; then
    check "socket mode 0600" [ "$(stat -c %a "$T/rt/sub/maosd.sock")" = 600 ]
    check "socket directory mode 0700" [ "$(stat -c %a "$T/rt/sub")" = 700 ]
else
    bad "daemon with a socket in a new directory" "$(cat "$T/perm.log")"
fi
kill -TERM "$pid2"; wait_exit "$pid2" 10 >/dev/null

# --socket-group: socket 0660 owned by that group, new directory 0750
grp=$(getent group daemon >/dev/null && echo daemon || id -gn)
start grp --data-dir "$T/d6" --socket "$T/rtg/sub/maosd.sock" --socket-group "$grp"; pid3=$LASTPID
if wait_sock "$T/rtg/sub/maosd.sock"; then
    check "--socket-group: socket mode 0660" [ "$(stat -c %a "$T/rtg/sub/maosd.sock")" = 660 ]
    check "--socket-group: socket group $grp" [ "$(stat -c %G "$T/rtg/sub/maosd.sock")" = "$grp" ]
    check "--socket-group: directory mode 0750" [ "$(stat -c %a "$T/rtg/sub")" = 750 ]
else
    bad "daemon with --socket-group $grp" "$(cat "$T/grp.log")"
fi
kill -TERM "$pid3"; wait_exit "$pid3" 10 >/dev/null

# a socket directory others can write to (not sticky) is refused: they
# could replace the socket; with the sticky bit (like /tmp) it is fine
mkdir -p "$T/open" && chmod 0777 "$T/open"
start open --data-dir "$T/d6" --socket "$T/open/maosd.sock"; p5=$LASTPID
wait_exit "$p5" 10; rc=$?
check "world-writable socket directory: exits 1 (got $rc)" [ $rc -eq 1 ]
check "... saying it is writable by others" grep -q "writable by others" "$T/open.log"
check "... and serves nothing there" test ! -e "$T/open/maosd.sock"
[ $rc -eq 124 ] && { kill -TERM "$p5"; wait_exit "$p5" 10 >/dev/null; }
chmod 01777 "$T/open"
start sticky --data-dir "$T/d6" --socket "$T/open/maosd.sock"; p6=$LASTPID
if wait_sock "$T/open/maosd.sock"; then ok "sticky world-writable socket directory: starts"; else bad "sticky world-writable socket directory: starts" "$(cat "$T/sticky.log")"; fi
kill -TERM "$p6"; wait_exit "$p6" 10; rc=$?
check "... and stops cleanly (got $rc)" [ $rc -eq 0 ]

# a socket path that is a regular file is never replaced
touch "$T/notasock"
start notasock --data-dir "$T/d5" --socket "$T/notasock"; p4=$LASTPID
wait_exit "$p4" 10; rc=$?
check "refuses to replace a non-socket file" bash -c "[ $rc -eq 1 ] && [ -f '$T/notasock' ]"

# SIGTERM under load (8 writers, every request answered, nothing
# acknowledged lost, exit 0 in time) is tests/fault/test_shutdown.c: it
# sends the signal after a counted number of acknowledgements, not after a
# sleep.

# a second signal exits at once
kill -TERM "$pid"; kill -TERM "$pid" 2>/dev/null; wait_exit "$pid" 10; rc=$?
check "a second signal still exits promptly" [ $rc -ne 124 ]

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
