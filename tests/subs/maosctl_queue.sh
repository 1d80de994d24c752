#!/usr/bin/env bash
# tests/subs/maosctl_queue.sh -- maosctl queue against a real maosd (issue 8,
# "maosctl").  Plain bash + grep/sed, in the style of maosctl_tail.sh.
#
#  - enqueue prints the id (a dedupe key returns the same id); claim prints
#    ID ATTEMPT TOKEN DATA; ack/nack/extend/release with ID TOKEN; a wrong
#    token (LEASE_LOST) and an unknown task (NOT_FOUND) exit 1;
#  - --json: a task is one object with id, queue, state, attempt, data,
#    priority, enqueued (RFC 3339), and a claim adds token and lease_until;
#  - list / stats / show (state and history) / dead / retry --all / purge
#    --dead;
#  - work runs a shell command once per task with the payload on stdin,
#    acks with its stdout on exit 0, nacks otherwise; --count N;
#  - usage errors exit 2.
# Environment: MAOSD_BIN, MAOSCTL_BIN (meson sets both).
set -u

MAOSD=${MAOSD_BIN:?set MAOSD_BIN}
CTL=${MAOSCTL_BIN:?set MAOSCTL_BIN}
unset MAOS_SOCKET

TMP=$(mktemp -d /tmp/maos-maosctl-queue-XXXXXX)
SOCK=$TMP/s.sock
LOG=$TMP/maosd.log
DPID=
PASS=0
FAIL=0

# shellcheck source=../daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/../daemon.sh"

trap keep_or_clean EXIT
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
expect_status() {
    if [ "$ST" -eq "$1" ]; then ok; else
        bad "$2: exit status got $ST, want $1 (stdout: $(printf '%s' "$OUT" | head -c 300); stderr: $(printf '%s' "$ERR" | head -c 300))"
    fi
}
expect_eq() {
    if [ "$1" = "$2" ]; then ok; else bad "$3: got '$1', want '$2'"; fi
}
expect_contains() {
    if printf '%s' "$1" | grep -Fq -- "$2"; then ok; else
        bad "$3: '$2' not in: $(printf '%s' "$1" | head -c 400)"
    fi
}
jstr() { printf '%s' "$1" | grep -Eo "\"$2\": ?\"[^\"]*\"" | head -n 1 | sed -E 's/.*: ?"(.*)"/\1/'; }
jnum() { printf '%s' "$1" | grep -Eo "\"$2\": ?-?[0-9]+" | head -n 1 | grep -Eo -- '-?[0-9]+$'; }

start_daemon || { FAIL=1; exit 1; }

# ---- usage ----------------------------------------------------------------------------
run queue --help
expect_status 0 "queue --help"
expect_contains "$OUT" "queue work" "help names work"
run queue frobnicate x
expect_status 2 "unknown queue command"
run queue enqueue jobs 'not json'
expect_status 2 "enqueue of bad JSON"
run queue ack not-a-uuid 5
expect_status 2 "ack of a bad id"
run queue purge jobs
expect_status 2 "purge without --dead"

# ---- enqueue, claim, ack ------------------------------------------------------------------
run queue enqueue jobs '{"n":1}' --priority 5 --dedupe one
expect_status 0 "enqueue"
ID=$OUT
run queue enqueue jobs '{"n":1}' --dedupe one
expect_contains "$OUT" "$ID" "a dedupe key gives the same id"
expect_contains "$OUT" "duplicate" "and says so"
run --json queue claim jobs --lease 60000
expect_status 0 "claim"
expect_eq "$(jstr "$OUT" id)" "$ID" "claim --json: id"
expect_eq "$(jstr "$OUT" state)" "leased" "claim --json: state"
expect_eq "$(jnum "$OUT" attempt)" 1 "claim --json: attempt"
expect_eq "$(jnum "$OUT" priority)" 5 "claim --json: priority"
expect_contains "$OUT" '"data":{"n":1}' "claim --json: data"
expect_contains "$OUT" '"lease_until":"20' "claim --json: lease_until in RFC 3339"
expect_contains "$OUT" '"enqueued":"20' "claim --json: enqueued in RFC 3339"
TOKEN=$(jnum "$OUT" token)
run queue ack "$ID" $((TOKEN + 1))
expect_status 1 "ack with a wrong token"
expect_contains "$ERR" "LEASE_LOST" "wrong token: LEASE_LOST"
run queue extend "$ID" "$TOKEN" --lease 90000
expect_status 0 "extend"
run queue ack "$ID" "$TOKEN" '{"ok":true}'
expect_status 0 "ack"
run queue ack "$ID" "$TOKEN"
expect_status 1 "ack again"
run --json queue show "$ID"
expect_eq "$(jstr "$OUT" state)" "done" "show --json: done"
expect_contains "$OUT" '"result":{"ok":true}' "show --json: the result"
run queue show "$ID"
expect_contains "$OUT" "enqueued" "show: the history names enqueued"
expect_contains "$OUT" "acked" "show: and acked"
run queue show 01234567-0123-7123-8123-0123456789ab
expect_status 1 "show of an unknown task"
expect_contains "$ERR" "NOT_FOUND" "unknown task: NOT_FOUND"
run queue claim jobs
expect_status 0 "claim of an empty queue"
expect_eq "$OUT" "" "claim of an empty queue prints nothing"

# ---- nack, release, dead letters ------------------------------------------------------------
run queue enqueue fragile '"x"' --max-attempts 1
ID2=$OUT
run queue claim fragile
TOKEN2=$(printf '%s' "$OUT" | awk '{print $3}')
run queue release "$ID2" "$TOKEN2"
expect_status 0 "release"
run queue claim fragile
TOKEN2=$(printf '%s' "$OUT" | awk '{print $3}')
expect_eq "$(printf '%s' "$OUT" | awk '{print $2}')" 1 "a release gives the attempt back"
run queue nack "$ID2" "$TOKEN2" --error "it broke"
expect_eq "$OUT" "dead" "nack of the last attempt: dead"
run --json queue dead fragile
expect_eq "$(jstr "$OUT" last_error)" "it broke" "dead --json: last_error"
run queue retry fragile --all
expect_eq "$OUT" "retried 1" "retry --all"
run queue claim fragile
TOKEN2=$(printf '%s' "$OUT" | awk '{print $3}')
run queue nack "$ID2" "$TOKEN2" --retry-after 10
expect_eq "$OUT" "dead" "dead again"
run queue purge fragile --dead
expect_eq "$OUT" "purged 1" "purge --dead"
run --json queue stats fragile
expect_eq "$(jnum "$OUT" dead)" 0 "stats after purge"
run queue list
expect_contains "$OUT" "jobs  ready 0" "list names jobs"
expect_contains "$OUT" "fragile" "list names fragile"

# ---- work ------------------------------------------------------------------------------------
for i in 1 2 3; do run queue enqueue w "{\"i\":$i}"; done
run queue enqueue w '{"fail":true}'
run queue work w --count 4 -- sh -c 'read line; case "$line" in *fail*) exit 3;; esac; echo "{\"seen\":$line}"'
expect_status 0 "work --count 4"
run --json queue stats w
expect_eq "$(jnum "$OUT" done)" 3 "work: three acked"
expect_eq "$(jnum "$OUT" ready)" 1 "work: the failing one is back (nacked)"
run queue claim w
expect_contains "$OUT" "fail" "the nacked task is the failing one"
run --json queue list
expect_contains "$OUT" '"queue":"w"' "list --json"
run stats
expect_contains "$OUT" "jobs  ready 0" "stats shows the queues' figures"
run --json stats
expect_contains "$OUT" '"queues":[{"queue":"fragile"' "stats --json: queues"

stop_daemon
expect_eq "$DAEMON_STATUS" 0 "maosd exit status on SIGTERM at the end"
echo "maosctl_queue.sh: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
