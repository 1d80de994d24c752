#!/usr/bin/env bash
# tests/integration/maosctl.sh -- maosctl end to end against a real maosd
# (issue 2, "maosctl").  Plain bash + grep/awk/sed: no jq, no python.
#
# Every check prints what it got and what it wanted when it fails; the
# script goes on after a failure, prints "N passed, N failed" and exits 1
# if anything failed.  The daemon runs on a temp dir that is removed when
# everything passed and kept (its log path printed) otherwise.  The daemon
# is stopped by its pid (SIGTERM, then SIGKILL after 15 s) on every exit.
#
# Environment: MAOSD_BIN, MAOSCTL_BIN (meson sets both).
set -u

MAOSD=${MAOSD_BIN:?set MAOSD_BIN}
CTL=${MAOSCTL_BIN:?set MAOSCTL_BIN}
unset MAOS_SOCKET

TMP=$(mktemp -d /tmp/maos-maosctl-XXXXXX)
SOCK=$TMP/s.sock
LOG=$TMP/maosd.log
DPID=
PASS=0
FAIL=0

# shellcheck source=../daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/../daemon.sh"

cleanup() {
    keep_or_clean
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# Not exited (a dead child stays a zombie until waited for: kill -0 would
# still succeed).
daemon_alive() {
    [ -r "/proc/$DPID/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$DPID/stat"
}
DEAD_NOTED=
bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL: $*" >&2
    if [ -n "$DPID" ] && [ -z "$DEAD_NOTED" ] && ! daemon_alive; then
        DEAD_NOTED=1
        echo "FAIL: maosd (pid $DPID) is no longer running; log: $LOG" >&2
        tail -n 20 "$LOG" >&2
    fi
}

# run ARGS...: run maosctl (through `timeout`), set OUT, ERR, ST.
run() {
    OUT=$(timeout 120 "$CTL" "$@" 2>"$TMP/err")
    ST=$?
    ERR=$(cat "$TMP/err")
}
# run_in INPUT ARGS...: the same with stdin.
run_in() {
    local input=$1
    shift
    OUT=$(printf '%s' "$input" | timeout 120 "$CTL" "$@" 2>"$TMP/err")
    ST=$?
    ERR=$(cat "$TMP/err")
}

# expect_status WANT DESCRIPTION: check ST.
expect_status() {
    if [ "$ST" -eq "$1" ]; then
        ok
    else
        bad "$2: exit status got $ST, want $1 (stdout: $(printf '%s' "$OUT" | head -c 300); stderr: $(printf '%s' "$ERR" | head -c 300))"
    fi
}
# expect_eq GOT WANT DESCRIPTION
expect_eq() {
    if [ "$1" = "$2" ]; then
        ok
    else
        bad "$3: got '$1', want '$2'"
    fi
}
# expect_match TEXT ERE DESCRIPTION (every line of TEXT must match)
expect_lines_match() {
    local n
    n=$(printf '%s\n' "$1" | grep -Evc -- "$2")
    if [ -n "$1" ] && [ "$n" -eq 0 ]; then
        ok
    else
        bad "$3: $n line(s) do not match /$2/; first: $(printf '%s\n' "$1" | grep -Ev -- "$2" | head -n 1 | head -c 400)"
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
# jnum LINE KEY: a top-level number field of a flat-ish JSON line
jnum() { printf '%s' "$1" | grep -Eo "\"$2\": ?-?[0-9]+" | head -n 1 | grep -Eo -- '-?[0-9]+$'; }
# jstr LINE KEY: a string field (no escapes)
jstr() { printf '%s' "$1" | grep -Eo "\"$2\": ?\"[^\"]*\"" | head -n 1 | sed -E 's/^"[^"]*": ?"//; s/"$//'; }

UUID_RE='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
TIME_RE='20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{6}Z'
# event_re STREAM TYPE DATA_RE META_RE: the exact JSON shape of an event,
# with exactly these eight fields in this order.
event_re() {
    printf '^\\{ ?"position": ?[0-9]+, ?"stream": ?"%s", ?"version": ?[0-9]+, ?"id": ?"%s", ?"type": ?"%s", ?"data": ?%s, ?"meta": ?%s, ?"time": ?"%s" ?\\}$' \
        "$1" "$UUID_RE" "$2" "$3" "$4" "$TIME_RE"
}

start_daemon || { FAIL=1; exit 1; }

# ---- help and usage ---------------------------------------------------------
for cmd in ping append read read-all streams stats verify; do
    run "$cmd" --help
    expect_status 0 "maosctl $cmd --help"
    if [ -z "$OUT" ]; then bad "maosctl $cmd --help printed nothing on stdout"; else ok; fi
done
run --help
expect_status 0 "maosctl --help"
expect_contains "$OUT" "read-all" "maosctl --help lists the commands"

run
expect_status 2 "maosctl without a command"
run --socket "$SOCK" frobnicate
expect_status 2 "unknown command"
run --socket "$SOCK" append only-stream
expect_status 2 "append without type and data"
run --socket "$SOCK" read
expect_status 2 "read without a stream"
run --socket "$SOCK" read s-1 --limit notanumber
expect_status 2 "read --limit notanumber"
run --socket "$SOCK" read s-1 --frobnicate
expect_status 2 "unknown option"
run --socket "$SOCK" append s-1 T '{"bad json'
expect_status 2 "append with bad JSON data"
run --socket "$SOCK" append s-1 T '{}' --expect notaversion
expect_status 2 "append --expect notaversion"
run --socket "$SOCK" append s-1 T '{}' --meta '[1,2]'
if [ "$ST" -eq 1 ] || [ "$ST" -eq 2 ]; then ok; else bad "append --meta that is not an object: exit $ST, want 1 or 2"; fi
run --socket "$SOCK" read s-1
expect_status 1 "nothing was written by the refused appends (read s-1 is not found)"

# ---- cannot connect -----------------------------------------------------------
run --socket "$TMP/nothing.sock" ping
expect_status 3 "ping on a socket nobody serves"
run --socket "$TMP/nothing.sock" read s-1
expect_status 3 "read on a socket nobody serves"
run --socket "$TMP/nothing.sock" append s-1 T '{}'
expect_status 3 "append on a socket nobody serves"

# ---- socket from --socket, MAOS_SOCKET, and where global options stand --------
run --socket "$SOCK" ping
expect_status 0 "ping --socket before"
run ping --socket "$SOCK"
expect_status 0 "ping --socket after"
OUT=$(MAOS_SOCKET=$SOCK timeout 60 "$CTL" ping 2>/dev/null); ST=$?
expect_status 0 "ping with MAOS_SOCKET"
OUT=$(MAOS_SOCKET=$TMP/nothing.sock timeout 60 "$CTL" ping 2>/dev/null); ST=$?
expect_status 3 "ping with MAOS_SOCKET to nothing"
OUT=$(MAOS_SOCKET=$TMP/nothing.sock timeout 60 "$CTL" --socket "$SOCK" ping 2>/dev/null); ST=$?
expect_status 0 "--socket wins over MAOS_SOCKET"

# ---- append and read ----------------------------------------------------------
run --socket "$SOCK" --json append order-1 Created '{"n":1}'
expect_status 0 "append --json"
expect_eq "$(nlines "$OUT")" 1 "append --json prints one line"
expect_lines_match "$OUT" "^\\{.*\\}$" "append --json prints an object"
expect_eq "$(jstr "$OUT" stream)" "order-1" "append --json stream"
expect_eq "$(jnum "$OUT" version)" 0 "append --json version"
expect_eq "$(jnum "$OUT" position)" 1 "append --json position"
expect_lines_match "$OUT" "\"id\": ?\"$UUID_RE\"" "append --json id is a UUID"
expect_eq "$(printf '%s' "$OUT" | grep -Eo '"[a-z_]+": ?' | wc -l | tr -d ' ')" 4 \
    "append --json has exactly stream, version, position, id"

run append order-1 Paid '{"n":2}' --socket "$SOCK" --json --expect 0
expect_status 0 "append --expect 0 with global options after the command"
expect_eq "$(jnum "$OUT" version)" 1 "version after --expect 0"
run --socket "$SOCK" append order-1 Paid '{"n":3}' --expect 0
expect_status 1 "append --expect 0 on a stream at 1 (conflict)"
run --socket "$SOCK" append order-1 Paid '{"n":3}' --expect no_stream
expect_status 1 "append --expect no_stream on an existing stream"
run --socket "$SOCK" append order-9 Paid '{"n":3}' --expect exists
expect_status 1 "append --expect exists on a missing stream"
run --socket "$SOCK" append order-1 Paid '{"n":3}' --expect exists
expect_status 0 "append --expect exists"
run --socket "$SOCK" append order-1 Paid '{"n":4}' --expect any
expect_status 0 "append --expect any"
run --socket "$SOCK" append order-1 Paid '{"n":5}' --expect 3
expect_status 0 "append --expect 3"

ID=0190f3c2-7d1e-7abc-9def-0123456789ab
run --socket "$SOCK" --json append order-2 Shipped '{"n":6}' --id "$ID" --meta '{"agent":"a1"}'
expect_status 0 "append --id --meta"
POS6=$(jnum "$OUT" position)
expect_eq "$(jstr "$OUT" id)" "$ID" "append --id echoes the id"
run --socket "$SOCK" --json append order-2 Shipped '{"n":6}' --id "$ID" --meta '{"agent":"a1"}'
expect_status 0 "idempotent re-send with the same --id"
expect_eq "$(jnum "$OUT" position)" "$POS6" "re-send returns the original position"
run --socket "$SOCK" append order-3 Shipped '{"n":6}' --id "$ID"
expect_status 1 "same --id on another stream"
run --socket "$SOCK" append order-3 Shipped '{"n":6}' --id not-a-uuid
if [ "$ST" -eq 1 ] || [ "$ST" -eq 2 ]; then ok; else bad "append --id not-a-uuid: exit $ST, want 1 or 2"; fi

run --socket "$SOCK" --json read order-1
expect_status 0 "read --json"
expect_eq "$(nlines "$OUT")" 5 "order-1 holds 5 events"
expect_lines_match "$OUT" "$(event_re order-1 '(Created|Paid)' '\{ ?"n": ?[0-9] ?\}' '\{\}')" \
    "event JSON shape (exactly position, stream, version, id, type, data, meta, time)"
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"version": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" \
    "0 1 2 3 4 " "read versions in order"
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"n": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" \
    "1 2 3 4 5 " "read data in order"
run --socket "$SOCK" --json read order-2
expect_lines_match "$OUT" "$(event_re order-2 Shipped '\{ ?"n": ?6 ?\}' '\{ ?"agent": ?"a1" ?\}')" \
    "event with --id and --meta"
expect_eq "$(jstr "$OUT" id)" "$ID" "read shows the given id"
run read order-1 --json --backward --socket "$SOCK"
expect_status 0 "read --backward"
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"version": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" \
    "4 3 2 1 0 " "read --backward versions"
run --socket "$SOCK" --json read order-1 --from 2 --limit 2
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"version": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" \
    "2 3 " "read --from 2 --limit 2"
run --socket "$SOCK" --json read order-1 --from 3 --backward
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"version": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" \
    "3 2 1 0 " "read --from 3 --backward"
run --socket "$SOCK" read order-1
expect_status 0 "read (readable output)"
if [ "$(nlines "$OUT")" -ge 5 ]; then ok; else bad "readable read printed $(nlines "$OUT") lines for 5 events"; fi
expect_contains "$OUT" "Created" "readable read shows the type"
run --socket "$SOCK" read no-such-stream
expect_status 1 "read of a missing stream"
run --socket "$SOCK" append '$system' T '{}'
expect_status 1 "append to a reserved \$ stream"

# ---- batches ---------------------------------------------------------------------
seq 0 5999 | awk '{printf "{\"type\":\"Big\",\"data\":{\"i\":%d}}\n", $1}' >"$TMP/b1.jsonl"
seq 6000 10499 | awk '{printf "{\"type\":\"Big\",\"data\":{\"i\":%d}}\n", $1}' >"$TMP/b2.jsonl"
run --socket "$SOCK" append big-1 --batch "$TMP/b1.jsonl"
expect_status 0 "append --batch FILE (6000 events)"
run_in "$(cat "$TMP/b2.jsonl")" --socket "$SOCK" --json append big-1 --batch -
expect_status 0 "append --batch - from stdin (4500 events)"
expect_eq "$(nlines "$OUT")" 4500 "append --batch --json prints one line per event"
expect_eq "$(printf '%s\n' "$OUT" | head -n 1 | grep -Eo '"version": ?[0-9]+' | grep -Eo '[0-9]+$')" 6000 \
    "first version of the second batch"
run --socket "$SOCK" --json read big-1
expect_status 0 "read without --limit"
expect_eq "$(nlines "$OUT")" 10500 "read without --limit prints every event across pages"
expect_eq "$(printf '%s\n' "$OUT" | awk -F'"version":' '{v = $2 + 0; if (v != NR - 1) {print NR; exit}}')" "" \
    "versions 0..10499 in order"
expect_eq "$(printf '%s\n' "$OUT" | awk -F'"i":' '{v = $2 + 0; if (v != NR - 1) {print NR; exit}}')" "" \
    "data i 0..10499 in order"
run --socket "$SOCK" --json read big-1 --backward
expect_eq "$(nlines "$OUT")" 10500 "read --backward without --limit prints everything"
expect_eq "$(printf '%s\n' "$OUT" | awk -F'"i":' '{v = $2 + 0; if (v != 10500 - NR) {print NR; exit}}')" "" \
    "backward data i 10499..0"
run --socket "$SOCK" --json read-all --stream big-1
expect_eq "$(nlines "$OUT")" 10500 "read-all --stream without --limit prints everything"
run --socket "$SOCK" --json read big-1 --limit 7
expect_eq "$(nlines "$OUT")" 7 "read --limit 7"

printf '%s\n' '{"type":"B","data":{"i":1},"id":"0190f3c2-7d1e-7abc-9def-00000000000a","meta":{"m":1}}' \
    '{"type":"B","data":null}' >"$TMP/b3.jsonl"
run --socket "$SOCK" --json append batch-1 --batch "$TMP/b3.jsonl"
expect_status 0 "append --batch with id, meta and null data"
run --socket "$SOCK" --json read batch-1
expect_eq "$(nlines "$OUT")" 2 "batch-1 holds 2 events"
expect_eq "$(jstr "$OUT" id)" "0190f3c2-7d1e-7abc-9def-00000000000a" "batch id kept"
expect_lines_match "$(printf '%s\n' "$OUT" | head -n 1)" "$(event_re batch-1 B '\{ ?"i": ?1 ?\}' '\{ ?"m": ?1 ?\}')" "batch event with meta"
expect_lines_match "$(printf '%s\n' "$OUT" | tail -n 1)" "$(event_re batch-1 B null '\{\}')" "batch event with null data"
printf '%s\n' '{"type":"C","data":{"i":1}}' '{"type":"C","data":{"i":' >"$TMP/bad.jsonl"
run --socket "$SOCK" append batch-2 --batch "$TMP/bad.jsonl"
if [ "$ST" -eq 1 ] || [ "$ST" -eq 2 ]; then ok; else bad "append --batch with a broken line: exit $ST, want 1 or 2"; fi
run --socket "$SOCK" read batch-2
expect_status 1 "a batch with a broken line writes nothing"

# ---- read-all and its filters -----------------------------------------------------
run --socket "$SOCK" --json append cat-1 A '{"k":1}'
T1=$(jnum "$OUT" position)
sleep 0.05
run --socket "$SOCK" --json append cat-2 B '{"k":2}'
run --socket "$SOCK" --json read cat-2
TIME2=$(jstr "$OUT" time)
sleep 0.05
run --socket "$SOCK" --json append dog-1 A '{"k":3}'
run --socket "$SOCK" --json append catx-1 B '{"k":4}'
run --socket "$SOCK" --json read catx-1
TIME4=$(jstr "$OUT" time)

count_all() { run --socket "$SOCK" --json read-all "$@"; nlines "$OUT"; }
expect_eq "$(count_all --from "$T1")" 4 "read-all --from P"
expect_eq "$(count_all --from "$T1" --stream cat-1)" 1 "read-all --stream"
expect_eq "$(count_all --from "$T1" --prefix cat)" 3 "read-all --prefix cat"
expect_eq "$(count_all --from "$T1" --category cat)" 2 "read-all --category cat"
expect_eq "$(count_all --from "$T1" --type A)" 2 "read-all --type A"
expect_eq "$(count_all --from "$T1" --type A --type B)" 4 "read-all --type A --type B"
expect_eq "$(count_all --prefix cat --type B)" 2 "read-all --prefix cat --type B"
expect_eq "$(count_all --since "$TIME2")" 3 "read-all --since"
expect_eq "$(count_all --since "$TIME2" --until "$TIME2")" 1 "read-all --since --until (one instant)"
expect_eq "$(count_all --until "$TIME4" --category cat)" 2 "read-all --until --category"
run --socket "$SOCK" --json read-all --category cat --backward
expect_eq "$(printf '%s\n' "$OUT" | grep -Eo '"k": ?[0-9]+' | grep -Eo '[0-9]+$' | tr '\n' ' ')" "2 1 " \
    "read-all --category --backward order"
run --socket "$SOCK" --json read-all --from "$T1" --limit 2
expect_eq "$(nlines "$OUT")" 2 "read-all --limit 2"
run --socket "$SOCK" --json read-all --type A --from "$T1"
expect_lines_match "$OUT" "$(event_re '(cat-1|dog-1)' A '\{ ?"k": ?[0-9] ?\}' '\{\}')" "read-all event JSON shape"
run --socket "$SOCK" --json read-all
TOTAL=$(nlines "$OUT")
expect_eq "$TOTAL" $((5 + 1 + 10500 + 2 + 4)) "read-all prints the whole log"
expect_eq "$(printf '%s\n' "$OUT" | awk -F'"position":' '{v = $2 + 0; if (v != NR) {print NR; exit}}')" "" \
    "read-all positions 1..N dense"
run --socket "$SOCK" read-all --since not-a-time
expect_status 2 "read-all --since not-a-time"

# ---- streams, stats, verify ----------------------------------------------------------
run --socket "$SOCK" streams --prefix cat
expect_status 0 "streams --prefix"
expect_contains "$OUT" "catx-1" "streams lists catx-1"
if printf '%s' "$OUT" | grep -q "order-1"; then bad "streams --prefix cat lists order-1"; else ok; fi
run --socket "$SOCK" --json streams --prefix cat
expect_eq "$(nlines "$OUT")" 3 "streams --prefix cat --json: three streams"
run --socket "$SOCK" --json streams --prefix order
expect_status 0 "streams --json"
expect_eq "$(nlines "$OUT")" 2 "streams --prefix order --json: two lines"
expect_lines_match "$(printf '%s\n' "$OUT" | head -n 1)" '"stream": ?"order-1"' "streams JSON names the stream"
expect_eq "$(jnum "$(printf '%s\n' "$OUT" | head -n 1)" count)" 5 "order-1 count"
expect_eq "$(jnum "$(printf '%s\n' "$OUT" | head -n 1)" head)" 4 "order-1 head"
run --socket "$SOCK" --json streams
expect_status 0 "streams"
expect_eq "$(nlines "$OUT")" 8 "streams --json lists all 8 streams"

run --socket "$SOCK" stats
expect_status 0 "stats"
if [ -n "$OUT" ]; then ok; else bad "stats printed nothing"; fi
run --socket "$SOCK" --json stats
expect_status 0 "stats --json"
expect_eq "$(jnum "$OUT" head_position)" "$TOTAL" "stats head_position"
expect_eq "$(jstr "$OUT" state)" ok "stats state"

# status: one screen for a person, the same figures in --json
run --socket "$SOCK" status
expect_status 0 "status"
expect_contains "$OUT" "state ok, durability sync" "status: state and durability"
expect_contains "$OUT" "$TMP/data, " "status: the data directory"
expect_contains "$OUT" "position $TOTAL" "status: the head"
expect_contains "$OUT" "events/s (last minute)" "status: the rates"
run --socket "$SOCK" --json status
expect_status 0 "status --json"
expect_eq "$(jstr "$OUT" data_dir)" "$TMP/data" "status --json data_dir"
expect_eq "$(jnum "$OUT" head_position)" "$TOTAL" "status --json head_position"
if [ "$(jnum "$OUT" data_bytes)" -gt 0 ]; then ok; else bad "status --json data_bytes: $OUT"; fi

run --socket "$SOCK" verify
expect_status 0 "verify"
expect_contains "$OUT" "OK" "verify prints OK"

# ---- access tokens ---------------------------------------------------------------------------
run --socket "$SOCK" token create --name cli --scope read:orders- --scope append:orders- --expires 1h
expect_status 0 "token create"
CLI_TOKEN=$OUT
expect_lines_match "$CLI_TOKEN" '^maos_[A-Za-z0-9_-]{43}$' "token create prints the token"
run --socket "$SOCK" token create --name cli --scope read:
expect_status 1 "token create of an existing name"
expect_contains "$ERR" "CONFLICT" "token create of an existing name: CONFLICT"
run --socket "$SOCK" token create --name bad --scope frob:x
expect_status 1 "token create with a bad scope"
expect_contains "$ERR" "frob:x" "the bad scope is named"
run --socket "$SOCK" token create --name none
expect_status 2 "token create without scopes"
run --socket "$SOCK" token create --name x --scope read: --expires soon
expect_status 2 "token create --expires soon"
run --socket "$SOCK" token list
expect_status 0 "token list"
expect_contains "$OUT" "cli  read:orders-,append:orders-" "token list: name and scopes"
case "$OUT" in *"${CLI_TOKEN#maos_}"*) bad "token list shows the secret" ;; *) ok ;; esac
MAOS_TOKEN=$CLI_TOKEN run --socket "$SOCK" append orders-9 placed '{}'
expect_status 0 "append in the token's scope"
TOTAL=$((TOTAL + 1))
MAOS_TOKEN=$CLI_TOKEN run --socket "$SOCK" append billing-9 paid '{}'
expect_status 1 "append out of the token's scope"
expect_contains "$ERR" "FORBIDDEN: append needs scope append:billing-9" "FORBIDDEN names the scope"
MAOS_TOKEN=$CLI_TOKEN run --socket "$SOCK" --json read-all
expect_lines_match "$OUT" '"stream": ?"orders-9"' "read-all through the token: its streams only"
run --socket "$SOCK" token revoke cli
expect_status 0 "token revoke"
MAOS_TOKEN=$CLI_TOKEN run --socket "$SOCK" ping
expect_status 3 "ping with a revoked token"
expect_contains "$ERR" "unknown or revoked token" "a revoked token: refused at hello"
expect_contains "$ERR" "maosctl: UNAUTHENTICATED: " "a refused hello names its code"
run --socket "$SOCK" token revoke cli
expect_status 1 "token revoke of an unknown name"
run --socket "$SOCK" ping
expect_status 0 "no token: the daemon's own user may do everything"

# ---- after a restart ---------------------------------------------------------------------
stop_daemon
expect_eq "$DAEMON_STATUS" 0 "maosd exit status on SIGTERM"
run --socket "$SOCK" ping
expect_status 3 "ping while the daemon is down"
start_daemon || bad "restart"
run --socket "$SOCK" --json read-all
# (the token commands above also left admin and refusal records in $audit)
expect_eq "$(printf '%s\n' "$OUT" | grep -vc '"stream": *"\$audit"')" "$TOTAL" \
    "everything is there after a restart"
run --socket "$SOCK" verify
expect_status 0 "verify after restart"

# ---- stream: retention, truncation, deletion; compact -------------------------------
for i in 1 2 3 4 5 6; do run --socket "$SOCK" append rt-1 t "{\"i\":$i}"; done
run --socket "$SOCK" stream set-retention rt-1 --max-count 2
expect_status 0 "stream set-retention"
expect_contains "$OUT" "max_count 2" "set-retention prints the rule"
# the pass runs right after the change: wait for it (bounded), not for time
for _ in $(seq 1 600); do
    run --socket "$SOCK" --json stream info rt-1
    [ "$(jnum "$OUT" first_version)" = 4 ] && break
done
expect_eq "$(jnum "$OUT" first_version)" 4 "stream info: first_version after the pass"
run --socket "$SOCK" --json read rt-1
expect_eq "$(nlines "$OUT")" 2 "read after set-retention: the last 2"
run --socket "$SOCK" stream truncate rt-1 --before 5
expect_status 0 "stream truncate"
expect_contains "$OUT" "first version 5" "truncate moves the first version"
run --socket "$SOCK" stream set-retention --category rt --max-age 7d
expect_status 0 "stream set-retention --category"
expect_contains "$OUT" "max_age_ms 604800000" "--max-age 7d in ms"
run --socket "$SOCK" stream set-retention --category rt --clear
expect_contains "$OUT" "max_age_ms 0" "--clear removes the rule"
run --socket "$SOCK" stream delete rt-1
expect_status 0 "stream delete"
run --socket "$SOCK" read rt-1
expect_status 1 "read of a deleted stream"
expect_contains "$ERR" "NOT_FOUND" "read of a deleted stream: NOT_FOUND"
run --socket "$SOCK" compact
expect_status 0 "compact"
run --socket "$SOCK" verify
expect_status 0 "verify after retention"
run --socket "$SOCK" stream set-retention rt-1
expect_status 2 "set-retention without a rule"
run --socket "$SOCK" stream set-retention rt-1 --max-age 7x
expect_status 2 "--max-age with an unknown unit"
run --socket "$SOCK" stream set-retention rt-1 --max-count 0
expect_status 2 "--max-count 0"
run --socket "$SOCK" stream truncate rt-1
expect_status 2 "truncate without --before"
run --socket "$SOCK" stream delete --category rt
expect_status 2 "delete of a category"
run --socket "$SOCK" stream delete '$system'
expect_status 1 "delete of a \$ stream"
expect_contains "$ERR" "INVALID_NAME" "delete of a \$ stream: INVALID_NAME"
run --socket "$SOCK" stream frob rt-1
expect_status 2 "unknown stream command"

echo "maosctl.sh: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
