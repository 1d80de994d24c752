#!/usr/bin/env bash
# tests/subs/maosctl_queue_work.sh -- `maosctl queue work` against a real
# maosd, what maosctl_queue.sh leaves out (issue 8, "a queue worker for
# any language"):
#
#  - it survives a restart of maosd: kill -9 while it waits for work, a
#    new maosd on the same socket and data, and the worker goes on with
#    the tasks enqueued after it (it exited 3 on the lost connection);
#  - the same across a graceful restart (SIGTERM: maosd refuses writes
#    with SHUTTING_DOWN while it stops);
#  - a failing command's nack carries its exit status and the tail of its
#    stderr (last lines, invalid UTF-8 as '?'), which still reaches
#    maosctl's own stderr;
#  - enqueue --meta JSON sets the task's meta (a non-object is a usage error);
#  - client/examples/worker (maos_worker_run, a registered agent) goes on
#    across a kill -9 of maosd, acks with the payload and nacks a failing
#    one (given as $1; skipped when absent).
# Waits are polls of a condition with a deadline, never fixed sleeps.
# Usage: maosctl_queue_work.sh [WORKER_EXAMPLE]
# Environment: MAOSD_BIN, MAOSCTL_BIN (meson sets both).
set -u

MAOSD=${MAOSD_BIN:?set MAOSD_BIN}
CTL=${MAOSCTL_BIN:?set MAOSCTL_BIN}
WORKER=${1:-}
unset MAOS_SOCKET

TMP=$(mktemp -d /tmp/maos-maosctl-queue-work-XXXXXX)
SOCK=$TMP/s.sock
LOG=$TMP/maosd.log
DPID=
WPID=
PASS=0
FAIL=0

# shellcheck source=../daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/../daemon.sh"

cleanup() {
    [ -n "$WPID" ] && kill -KILL "$WPID" 2>/dev/null
    keep_or_clean
}
trap cleanup EXIT
trap 'exit 1' INT TERM
bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL: $*" >&2
}
run() {
    OUT=$(timeout 60 "$CTL" --socket "$SOCK" "$@" 2>"$TMP/err")
    ST=$?
    ERR=$(cat "$TMP/err")
}
expect_eq() {
    if [ "$1" = "$2" ]; then ok; else bad "$3: got '$1', want '$2'"; fi
}
expect_contains() {
    if printf '%s' "$1" | grep -Fq -- "$2"; then ok; else
        bad "$3: '$2' not in: $(printf '%s' "$1" | head -c 400)"
    fi
}
jstr() { printf '%s' "$1" | grep -Eo "\"$2\": ?\"([^\"\\\\]|\\\\.)*\"" | head -n 1 | sed -E 's/^[^:]*: ?"(.*)"$/\1/'; }
jnum() { printf '%s' "$1" | grep -Eo "\"$2\": ?-?[0-9]+" | head -n 1 | grep -Eo -- '-?[0-9]+$'; }

# done_count QUEUE: the queue's done figure (empty when maosd is not up)
done_count() {
    jnum "$(timeout 10 "$CTL" --socket "$SOCK" --json queue stats "$1" 2>/dev/null)" done
}
# wait_done QUEUE N: until N tasks of QUEUE are done, at most 60 s
wait_done() {
    local i
    for i in $(seq 1 1200); do
        [ "$(done_count "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    return 1
}
# wait_exit PID: its exit status, or 1000 after 60 s
wait_exit() {
    local i
    for i in $(seq 1 1200); do
        kill -0 "$1" 2>/dev/null || { wait "$1"; return $?; }
        sleep 0.05
    done
    return 1000
}

start_daemon || { FAIL=1; exit 1; }

# ---- kill -9 of maosd while queue work waits ------------------------------------------
run queue enqueue r '{"i":1}'
run queue enqueue r '{"i":2}'
"$CTL" --socket "$SOCK" queue work r --count 4 -- sh -c 'cat; echo' \
    >"$TMP/work.out" 2>"$TMP/work.err" &
WPID=$!
wait_done r 2 || bad "the worker did not finish the first two tasks"
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null
DPID=
start_daemon || { FAIL=$((FAIL + 1)); exit 1; }
kill -0 "$WPID" 2>/dev/null && ok || bad "queue work exited when maosd was killed: $(cat "$TMP/work.err")"
run queue enqueue r '{"i":3}'
run queue enqueue r '{"i":4}'
wait_exit "$WPID"
WST=$?
WPID=
expect_eq "$WST" 0 "queue work --count 4 across kill -9 of maosd (stderr: $(tail -n 3 "$TMP/work.err"))"
expect_eq "$(done_count r)" 4 "every task done across the restart"

# ---- graceful restart -------------------------------------------------------------------------
run queue enqueue g '{"i":1}'
"$CTL" --socket "$SOCK" queue work g --count 2 -- sh -c 'cat; echo' \
    >"$TMP/work.out" 2>"$TMP/work.err" &
WPID=$!
wait_done g 1 || bad "the worker did not finish the first task"
stop_daemon
expect_eq "$DAEMON_STATUS" 0 "maosd exit status on SIGTERM with a worker waiting"
start_daemon || { FAIL=$((FAIL + 1)); exit 1; }
run queue enqueue g '{"i":2}'
wait_exit "$WPID"
WST=$?
WPID=
expect_eq "$WST" 0 "queue work --count 2 across a graceful restart (stderr: $(tail -n 3 "$TMP/work.err"))"
expect_eq "$(done_count g)" 2 "both tasks done across the graceful restart"

# ---- a failing command: its stderr's tail is the error -------------------------------------------
run queue enqueue f '{"i":1}'
ID=$OUT
run queue work f --count 1 -- sh -c 'echo "early noise" >&2; printf "bad input: \303\251 \377\n" >&2; exit 4'
expect_eq "$ST" 0 "queue work of a failing command exits 0"
expect_contains "$ERR" "early noise" "the command's stderr reaches maosctl's"
expect_contains "$ERR" "failed" "and the task is reported failed"
run --json queue show "$ID"
LAST=$(jstr "$OUT" last_error)
expect_contains "$LAST" "exit status 4: early noise" "last_error: status and stderr"
expect_contains "$LAST" 'bad input: é ?' "last_error: UTF-8 kept, an invalid byte as ?"
expect_eq "$(jstr "$OUT" state)" "ready" "the failed task is ready again"
run queue work f --count 1 -- sh -c 'exit 5'
run --json queue show "$ID"
expect_eq "$(jstr "$OUT" last_error)" "exit status 5" "a command without stderr: the status alone"

# ---- enqueue --meta ---------------------------------------------------------------------------
run queue enqueue m '{"x":1}' --meta '{"session":"s1","parent":"t0"}'
expect_eq "$ST" 0 "enqueue --meta"
MID=$OUT
run --json queue show "$MID"
expect_contains "$OUT" '"meta":{"session":"s1","parent":"t0"}' "show --json: the task's meta"
run queue enqueue m '{"x":1}' --meta '[1]'
expect_eq "$ST" 2 "enqueue --meta of a non-object"
run queue enqueue m '{"x":1}' --meta '{bad'
expect_eq "$ST" 2 "enqueue --meta of bad JSON"
run queue claim m --meta '{}'
expect_eq "$ST" 2 "--meta on claim"

# ---- the example worker across kill -9 of maosd ------------------------------------------------
if [ -n "$WORKER" ]; then
    run queue enqueue ex '{"i":1}'
    run queue enqueue ex '{"i":2}'
    MAOS_SOCKET=$SOCK "$WORKER" ex 4 >"$TMP/ex.out" 2>"$TMP/ex.err" &
    WPID=$!
    wait_done ex 2 || bad "the example worker did not finish the first two tasks"
    kill -KILL "$DPID"
    wait "$DPID" 2>/dev/null
    DPID=
    start_daemon || { FAIL=$((FAIL + 1)); exit 1; }
    run queue enqueue ex '{"i":3}'
    run queue enqueue ex '{"fail":true}'
    wait_exit "$WPID"
    WST=$?
    WPID=
    expect_eq "$WST" 0 "the example worker across kill -9 (stderr: $(tail -n 3 "$TMP/ex.err"))"
    expect_contains "$(cat "$TMP/ex.out")" "3 done, 1 failed" "the example worker's counts"
    run --json queue stats ex
    expect_eq "$(jnum "$OUT" done)" 3 "example: three acked"
    expect_eq "$(jnum "$OUT" ready)" 1 "example: the failing one nacked, ready again"
    run --json queue dead ex
    expect_eq "$OUT" "" "example: no dead letter"
fi

stop_daemon
expect_eq "$DAEMON_STATUS" 0 "maosd exit status on SIGTERM at the end"
echo "maosctl_queue_work.sh: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
