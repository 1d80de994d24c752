#!/usr/bin/env bash
# tests/subs/maosctl_tail.sh -- maosctl tail, publish, listen and checkpoint
# against a real maosd (issue 3, "Client library and maosctl").  Plain
# bash + grep/awk/sed, in the style of tests/integration/maosctl.sh.
#
#  - tail --count N exits 0 after exactly N events; --timeout S exits 0
#    after S seconds without an event; with both, a timeout before N events
#    exits 1 (after printing what it got);
#  - tail prints what read-all prints: the same lines, text and --json;
#    from start, a position, the end (live), with filters;
#  - tail survives a daemon restart without gap or duplicate;
#  - publish prints its receivers; listen prints CHANNEL  PAYLOAD (--json:
#    {"channel","payload"}), honours --count/--timeout, never sees a
#    message published before it listened;
#  - checkpoint NAME [POSITION]; usage errors exit 2.
#
# Every background maosctl runs under `timeout` and is waited for by pid.
# Environment: MAOSD_BIN, MAOSCTL_BIN (meson sets both).
set -u

MAOSD=${MAOSD_BIN:?set MAOSD_BIN}
CTL=${MAOSCTL_BIN:?set MAOSCTL_BIN}
unset MAOS_SOCKET

TMP=$(mktemp -d /tmp/maos-maosctl-tail-XXXXXX)
SOCK=$TMP/s.sock
LOG=$TMP/maosd.log
DPID=
BG_PIDS=
PASS=0
FAIL=0

# shellcheck source=../daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/../daemon.sh"

cleanup() {
    local p
    for p in $BG_PIDS; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    keep_or_clean
}
trap cleanup EXIT
trap 'exit 1' INT TERM
bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL: $*" >&2
}

# run ARGS...: maosctl --socket SOCK ARGS (bounded by `timeout`): OUT ERR ST.
run() {
    OUT=$(timeout 30 "$CTL" --socket "$SOCK" "$@" 2>"$TMP/err")
    ST=$?
    ERR=$(cat "$TMP/err")
}

# bg NAME ARGS...: start maosctl --socket SOCK ARGS in the background,
# stdout to $TMP/NAME.out, stderr to $TMP/NAME.err; its pid in BG.
bg() {
    local name=$1
    shift
    timeout 30 "$CTL" --socket "$SOCK" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    BG=$!
    BG_PIDS="$BG_PIDS $BG"
}
# bg_wait NAME PID: wait for it; OUT ERR ST as run (ST 124: killed by timeout).
bg_wait() {
    wait "$2"
    ST=$?
    OUT=$(cat "$TMP/$1.out")
    ERR=$(cat "$TMP/$1.err")
    BG_PIDS=$(printf '%s' "$BG_PIDS" | sed "s/ $2\b//")
}

expect_status() {
    if [ "$ST" -eq "$1" ]; then
        ok
    else
        bad "$2: exit status got $ST, want $1 (stdout: $(printf '%s' "$OUT" | head -c 300); stderr: $(printf '%s' "$ERR" | head -c 300))"
    fi
}
expect_eq() {
    if [ "$1" = "$2" ]; then
        ok
    else
        bad "$3: got '$(printf '%s' "$1" | head -c 600)', want '$(printf '%s' "$2" | head -c 600)'"
    fi
}
expect_contains() {
    if printf '%s' "$1" | grep -Fq -- "$2"; then
        ok
    else
        bad "$3: '$2' not in output: $(printf '%s' "$1" | head -c 400)"
    fi
}
nlines() {
    if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | wc -l | tr -d ' '; fi
}
jnum() { printf '%s' "$1" | grep -Eo "\"$2\": ?-?[0-9]+" | head -n 1 | grep -Eo -- '-?[0-9]+$'; }
now_ms() { date +%s%3N; }

# wait_stat KEY N: until stats' KEY >= N (at most 10 s); 0 or 1.
wait_stat() {
    local i v
    for i in $(seq 1 200); do
        v=$(jnum "$(timeout 10 "$CTL" --socket "$SOCK" --json stats 2>/dev/null)" "$1")
        if [ -n "$v" ] && [ "$v" -ge "$2" ]; then return 0; fi
        sleep 0.05
    done
    return 1
}

# Catch-up in maosd can hold its last push until something else wakes the
# daemon (see tests/subs/test_subs_ops.c, test_catchup_quiet, which checks
# that on its own).  While a tail that catches up runs, NUDGE pings every
# 0.1 s so that these maosctl checks do not depend on it.
NUDGE=
nudge_start() {
    (while :; do "$CTL" --socket "$SOCK" ping >/dev/null 2>&1; sleep 0.1; done) &
    NUDGE=$!
    BG_PIDS="$BG_PIDS $NUDGE"
}
nudge_stop() {
    [ -n "$NUDGE" ] || return 0
    kill -TERM "$NUDGE" 2>/dev/null
    wait "$NUDGE" 2>/dev/null
    BG_PIDS=$(printf '%s' "$BG_PIDS" | sed "s/ $NUDGE\b//")
    NUDGE=
}

start_daemon || { FAIL=1; exit 1; }

# ---- usage --------------------------------------------------------------------------
for cmd in tail publish listen checkpoint; do
    run "$cmd" --help
    expect_status 0 "maosctl $cmd --help"
done
run tail --count 0
expect_status 2 "tail --count 0"
run tail --count -3
expect_status 2 "tail --count -3"
run tail --from middle
expect_status 2 "tail --from middle"
run tail --from 0
expect_status 2 "tail --from 0"
run tail --timeout soon
expect_status 2 "tail --timeout soon"
run publish chan.1 '{"bad json'
expect_status 2 "publish with bad JSON"
run publish chan.1
expect_status 2 "publish without a payload"
run listen
expect_status 2 "listen without a pattern"
run listen 'x.*' --count nope
expect_status 2 "listen --count nope"
run --json stats
expect_eq "$(jnum "$OUT" subscriptions)" 0 "usage errors made no subscription"
expect_eq "$(jnum "$OUT" head_position)" 0 "usage errors wrote nothing"

# ---- the log: task-1 x5 (1..5), job-1 x2 (6..7) -------------------------------------
for i in 1 2 3 4 5; do
    run append task-1 Progress "{\"i\":$i}"
    expect_status 0 "append task-1 $i"
done
run append job-1 Done '{"ok":true}'
run append job-1 Done '{"ok":false,"why":"é ✓"}'
expect_status 0 "append job-1"

# ---- the quiet case, without NUDGE: catch-up alone must finish -----------------------
T0=$(now_ms)
OUT=$(timeout 10 "$CTL" --socket "$SOCK" tail --from start --count 7 2>"$TMP/err")
ST=$?
ERR=$(cat "$TMP/err")
expect_status 0 "tail --from start --count 7 on a quiet daemon (nothing else happening) within 10 s"
expect_eq "$(nlines "$OUT")" 7 "tail --from start --count 7 on a quiet daemon prints 7 events"

# ---- --count: exactly N, from start / a position, text and JSON = read-all -------
nudge_start
run tail --from start --count 3
expect_status 0 "tail --from start --count 3"
expect_eq "$(nlines "$OUT")" 3 "tail --count 3 prints 3 events"
TAIL_TEXT=$OUT
run read-all --limit 3
expect_eq "$TAIL_TEXT" "$OUT" "tail --count 3 prints what read-all --limit 3 prints"

run --json tail --from start --count 7
expect_status 0 "tail --json --from start --count 7"
TAIL_JSON=$OUT
run --json read-all
expect_eq "$TAIL_JSON" "$OUT" "tail --json lines equal read-all --json lines (all 7)"
expect_eq "$(nlines "$TAIL_JSON")" 7 "7 JSON lines"

run --json tail --from 4 --count 4
expect_status 0 "tail --from 4 --count 4"
TAIL_JSON=$OUT
run --json read-all --from 4
expect_eq "$TAIL_JSON" "$OUT" "tail --from 4 equals read-all --from 4"

run --json tail --from start --stream task-1 --count 5
TAIL_JSON=$OUT
run --json read-all --stream task-1
expect_eq "$TAIL_JSON" "$OUT" "tail --stream task-1 equals read-all --stream task-1"
run --json tail --from start --category job --type Done --count 2
TAIL_JSON=$OUT
run --json read-all --category job --type Done
expect_eq "$TAIL_JSON" "$OUT" "tail --category job --type Done equals read-all with the same filter"
expect_eq "$(nlines "$TAIL_JSON")" 2 "2 job events"

# --count smaller than one push: stops after exactly N
run --json tail --from start --count 1
expect_eq "$(nlines "$OUT")" 1 "tail --count 1 prints one line"
expect_eq "$(jnum "$OUT" position)" 1 "tail --count 1 from start prints position 1"

# ---- --timeout ---------------------------------------------------------------------------
# from the end (the default): nothing new comes; exits 0 after ~0.5 s, prints nothing
T0=$(now_ms)
run tail --timeout 0.5
T1=$(now_ms)
expect_status 0 "tail --timeout 0.5 with no event"
expect_eq "$OUT" "" "tail --timeout 0.5 with no event prints nothing"
if [ $((T1 - T0)) -ge 400 ] && [ $((T1 - T0)) -lt 10000 ]; then ok; else
    bad "tail --timeout 0.5 took $((T1 - T0)) ms, want about 500"
fi
# from start with a timeout and no count: the 7 stored, then 0 after the quiet time
run tail --from start --timeout 0.5
expect_status 0 "tail --from start --timeout 0.5"
expect_eq "$(nlines "$OUT")" 7 "tail --from start --timeout 0.5 prints the 7 stored events"
# count and timeout: the timeout comes before N -> 1, after printing what came
run tail --from start --count 10 --timeout 0.5
expect_status 1 "tail --count 10 --timeout 0.5 with only 7 events"
expect_eq "$(nlines "$OUT")" 7 "a timed-out tail still printed the 7 events it got"
expect_contains "$ERR" "7 of 10" "the timeout message says how many of how many"
# count reached before the timeout -> 0
run tail --from start --count 7 --timeout 5
expect_status 0 "tail --count 7 --timeout 5 with 7 events"
nudge_stop

# ---- live: tail from the end gets what is appended after it started -----------------
bg live --json tail --count 3 --timeout 20 --prefix task-
LIVE=$BG
if wait_stat subscriptions 1; then ok; else bad "the live tail did not subscribe within 10 s"; fi
run append job-1 Done '{"skip":1}'      # 8: not task-
run append task-1 Progress '{"i":6}'    # 9
run append task-2 Progress '{"i":1}'    # 10
run append task-1 Progress '{"i":7}'    # 11
run append task-1 Progress '{"i":8}'    # 12: past the count
bg_wait live "$LIVE"
expect_status 0 "live tail --count 3 --timeout 20"
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"position": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" "9 10 11 " \
    "the live tail printed positions 9 10 11"
LIVE_OUT=$OUT
run --json read-all --prefix task- --from 9 --limit 3
expect_eq "$LIVE_OUT" "$OUT" "the live tail's lines equal read-all's for the same events"

# ---- across a daemon restart: no gap, no duplicate ----------------------------------
nudge_start
bg restart --json tail --from start --count 15 --timeout 25
RT=$BG
# wait until it has printed the 12 stored events
for i in $(seq 1 200); do
    [ "$(nlines "$(cat "$TMP/restart.out")")" -ge 12 ] && break
    sleep 0.05
done
nudge_stop
expect_eq "$(nlines "$(cat "$TMP/restart.out")")" 12 "tail printed the 12 stored events before the restart"
stop_daemon
expect_eq "$DAEMON_STATUS" 0 "maosd exit status on SIGTERM with a tail attached"
start_daemon || bad "maosd did not start again"
if wait_stat subscriptions 1; then ok; else bad "tail did not come back after the restart within 10 s"; fi
run append task-3 Progress '{"after":1}'   # 13
run append task-3 Progress '{"after":2}'   # 14
run append job-2 Done '{"after":3}'        # 15
bg_wait restart "$RT"
expect_status 0 "tail --count 15 across a restart"
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"position": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" \
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 " "tail across a restart: positions 1..15, once each"
RT_OUT=$OUT
run --json read-all
expect_eq "$RT_OUT" "$OUT" "tail across a restart equals read-all"

# ---- publish and listen ---------------------------------------------------------------
run publish late.1 '{"early":true}'
expect_status 0 "publish with nobody listening"
expect_contains "$OUT" "0 subscribers" "publish with nobody listening: 0 receivers"

bg listen1 listen 'task.*' --count 2 --timeout 20
L1=$BG
bg listen2 --json listen 'task.[0-9]' --count 1 --timeout 20
L2=$BG
bg listen3 listen 'late.*' --timeout 1.5
L3=$BG
if wait_stat channel_subscriptions 3; then ok; else bad "the listeners did not subscribe within 10 s"; fi
run publish task.1 '{"n":1}'
expect_status 0 "publish task.1"
expect_contains "$OUT" "sent to 2 subscribers" "publish task.1 reaches task.* and task.[0-9]"
run --json publish job.1 '{}'
expect_eq "$(jnum "$OUT" receivers)" 0 "publish job.1 --json: receivers 0"
run publish task.x '[1,"two",null]'
expect_contains "$OUT" "sent to 1 subscriber" "publish task.x reaches task.* only"
bg_wait listen1 "$L1"
expect_status 0 "listen 'task.*' --count 2"
expect_eq "$OUT" "$(printf 'task.1  {"n":1}\ntask.x  [1,"two",null]')" "listen prints CHANNEL  PAYLOAD"
bg_wait listen2 "$L2"
expect_status 0 "listen --json 'task.[0-9]' --count 1"
if printf '%s' "$OUT" | grep -Eq '^\{ ?"channel": ?"task\.1", ?"payload": ?\{ ?"n": ?1 ?\} ?\}$'; then ok; else
    bad "listen --json shape: got '$OUT', want {\"channel\":\"task.1\",\"payload\":{\"n\":1}}"
fi
bg_wait listen3 "$L3"
expect_status 0 "listen 'late.*' --timeout 1.5 with nothing new"
expect_eq "$OUT" "" "a message published before listen started is not delivered"
run listen 'none.*' --count 1 --timeout 0.3
expect_status 1 "listen --count 1 --timeout 0.3 with nothing"
run --json stats
expect_eq "$(jnum "$OUT" head_position)" 15 "channel messages are not stored"

# ---- checkpoint ---------------------------------------------------------------------------
run checkpoint agent-1/tasks
expect_status 1 "checkpoint of an unknown name"
expect_contains "$ERR" "NOT_FOUND" "unknown checkpoint: NOT_FOUND"
run checkpoint agent-1/tasks 12
expect_status 0 "checkpoint set"
run checkpoint agent-1/tasks
expect_status 0 "checkpoint get"
expect_contains "$OUT" "12" "checkpoint reads back 12"
run checkpoint agent-1/tasks notanumber
expect_status 2 "checkpoint NAME notanumber"

stop_daemon
expect_eq "$DAEMON_STATUS" 0 "maosd exit status on SIGTERM at the end"
echo "maosctl_tail.sh: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
