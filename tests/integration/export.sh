#!/bin/bash
# tests/integration/export.sh -- maosctl export / import against real
# daemons: a round trip (export, import into a fresh daemon, export again:
# identical apart from the documented fields), import twice (nothing the
# second time), a partial import completed by a re-run, a truncated or
# damaged file refused with its line number and nothing written, the
# pg-copy format read back as PostgreSQL's COPY text, and the JSON Lines
# read by Python's json module.
set -u
MAOSD=${MAOSD_BIN:?}
CTL=${MAOSCTL_BIN:?}
TMP=$(mktemp -d /tmp/maos-export-XXXXXX)
SOCK=$TMP/a.sock
LOG=$TMP/maosd.log
DPID=
PASS=0
FAIL=0
. "$(dirname "$0")/../daemon.sh"

BPIDS=()
trap 'for p in "${BPIDS[@]}"; do kill -TERM $p 2>/dev/null; wait $p 2>/dev/null; done; keep_or_clean' EXIT

bad() { echo "FAIL: $*" >&2; FAIL=$((FAIL + 1)); }

# start_more NAME: another maosd on $TMP/NAME, socket $TMP/NAME.sock
start_more() {
    "$MAOSD" --data-dir "$TMP/$1" --socket "$TMP/$1.sock" --log-level warn \
        </dev/null >>"$LOG" 2>&1 &
    BPIDS+=($!)
    local i
    for i in $(seq 1 200); do
        "$CTL" --socket "$TMP/$1.sock" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "maosd $1 did not serve" >&2
    return 1
}

start_daemon || exit 1
A=(--socket "$SOCK")
for s in 1 2 3; do
    for i in $(seq 1 40); do
        printf '{"type":"t%d","data":{"i":%d,"s":"tab\\there\\nnewline \\u00e9 \\\\ end"},"meta":{"by":"test","n":%d}}\n' \
            $((i % 3)) $i $i
    done >"$TMP/batch$s"
done
# interleaved: three streams, batches of 10 so positions interleave
for k in 0 1 2 3; do
    for s in 1 2 3; do
        sed -n "$((k * 10 + 1)),$((k * 10 + 10))p" "$TMP/batch$s" |
            "$CTL" "${A[@]}" append "ex-$s" --batch - >/dev/null || bad "append ex-$s"
    done
done
"$CTL" "${A[@]}" kv put plan step '{"n":1,"who":"a"}' >/dev/null || bad "kv put"
"$CTL" "${A[@]}" kv put plan step '{"n":2,"who":"b"}' >/dev/null || bad "kv put again"
"$CTL" "${A[@]}" kv put plan other '{"x":[1,2]}' >/dev/null || bad "kv put other"
# tasks: 3 ready (one with a dedupe key), 1 delayed, 1 dead, 1 done
for i in 1 2; do "$CTL" "${A[@]}" queue enqueue work "{\"job\":$i}" >/dev/null || bad "enqueue"; done
"$CTL" "${A[@]}" queue enqueue work '{"job":3}' --dedupe j3 --priority 5 >/dev/null || bad "enqueue j3"
"$CTL" "${A[@]}" queue enqueue work '{"job":4}' --delay 3600000 >/dev/null || bad "enqueue delayed"
"$CTL" "${A[@]}" queue enqueue doomed '{"job":5}' --max-attempts 1 >/dev/null || bad "enqueue doomed"
"$CTL" "${A[@]}" queue enqueue fine '{"job":6}' >/dev/null || bad "enqueue fine"
read -r tid _ tok _ < <("$CTL" "${A[@]}" queue claim doomed) || bad "claim doomed"
"$CTL" "${A[@]}" queue nack "$tid" "$tok" --error boom >/dev/null || bad "nack"
read -r tid _ tok _ < <("$CTL" "${A[@]}" queue claim fine) || bad "claim fine"
"$CTL" "${A[@]}" queue ack "$tid" "$tok" >/dev/null || bad "ack"
"$CTL" "${A[@]}" export -o "$TMP/e1.jsonl" 2>"$TMP/err" || bad "export"
[ -s "$TMP/err" ] && bad "export wrote to stderr without a terminal: $(cat "$TMP/err")"
ok

# Python's JSON reader takes every line; the counts hold
python3 - "$TMP/e1.jsonl" <<'EOF' || bad "python reads the export"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert lines[0]["kind"] == "header" and lines[0]["format"] == "maos-export", lines[0]
assert lines[-1]["kind"] == "trailer", lines[-1]
events = [l for l in lines[1:-1] if "kind" not in l]
entries = [l for l in lines[1:-1] if l.get("kind") == "entry"]
tasks = [l for l in lines[1:-1] if l.get("kind") == "task"]
n = lines[-1]["count"]
assert len(events) == n and n > 123, len(events)
assert len(entries) == lines[-1]["entries"] == 2, entries
assert sorted(t["state"] for t in tasks) == ["dead", "delayed", "ready", "ready", "ready"], tasks
assert len(tasks) == lines[-1]["tasks"]
assert [e["position"] for e in events] == list(range(1, n + 1))
EOF
ok

# a fresh daemon: import, import again, export again
start_more b || exit 1
B=(--socket "$TMP/b.sock")
out=$("$CTL" "${B[@]}" import "$TMP/e1.jsonl") || bad "import"
case $out in *"imported 120 events (0 were there already; "*" of tables and queues skipped), 2 table entries (0 were there already) and 4 tasks (0 were there already; 1 dead letters not imported)"*) ok ;;
    *) bad "import said: $out" ;; esac
out=$("$CTL" "${B[@]}" import - <"$TMP/e1.jsonl") || bad "import again"
case $out in *"imported 0 events (120 were there already"*"0 table entries (2 were there already) and 0 tasks (4 were there already"*) ok ;;
    *) bad "second import said: $out" ;; esac
"$CTL" "${B[@]}" export -o "$TMP/e2.jsonl" || bad "export of the copy"
out=$("$CTL" "${B[@]}" --json queue stats work)
case $out in *'"ready":3,'*'"delayed":1,'*) ok ;; *) bad "the copy's queue work: $out" ;; esac
python3 - "$TMP/e1.jsonl" "$TMP/e2.jsonl" <<'EOF' || bad "round trip differs"
import json, sys
def load(p):
    ls = [json.loads(l) for l in open(p, encoding="utf-8")]
    return [l for l in ls if "kind" not in l], [l for l in ls if l.get("kind") == "entry"]
ev1, en1 = load(sys.argv[1])
ev2, en2 = load(sys.argv[2])
skip = ("kv.", "queue-")
user1 = [e for e in ev1 if not e["stream"].startswith(skip)]
user2 = [e for e in ev2 if not e["stream"].startswith(skip)]
assert len(user1) == len(user2) == 120, (len(user1), len(user2))
for a, b in zip(user1, user2):
    m = dict(b["meta"])
    assert m.pop("source_position") == a["position"], b
    assert m.pop("source_time") == a["time"], b
    for k in ("stream", "version", "id", "type", "data"):
        assert a[k] == b[k], (k, a, b)
    assert m == a["meta"], (m, a["meta"])
key = lambda e: (e["table"], e["key"])
assert [(key(e), e["data"]) for e in sorted(en1, key=key)] == \
       [(key(e), e["data"]) for e in sorted(en2, key=key)], (en1, en2)
EOF
ok

# a partial import completed by a re-run: the first run stops when the
# target's storage fails (maosd-fault: its 3rd write fails, the group's
# outcome unknown, then read-only); after a restart, the re-run of the same
# file completes it and duplicates nothing
FAULT=${MAOSD_FAULT_BIN:?}
MAOS_FAULT_WRITE_FAIL_AFTER=2 "$FAULT" --data-dir "$TMP/c" --socket "$TMP/c.sock" \
    --log-level warn </dev/null >>"$LOG" 2>&1 &
cpid=$!
for i in $(seq 1 200); do "$CTL" --socket "$TMP/c.sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
C=(--socket "$TMP/c.sock")
out=$("$CTL" "${C[@]}" import "$TMP/e1.jsonl" 2>&1) && bad "the import went through a failed write"
case $out in *"OUTCOME_UNKNOWN"*"re-run of the same file resumes here"*) ok ;; *) bad "partial: $out" ;; esac
kill -TERM $cpid; wait $cpid
start_more c || exit 1
got=$("$CTL" "${C[@]}" --json read-all | python3 -c 'import sys; print(sum(1 for _ in sys.stdin))')
[ "$got" -gt 0 ] && [ "$got" -lt 120 ] && ok || bad "the failed run stored $got events, want some"
out=$("$CTL" "${C[@]}" import "$TMP/e1.jsonl") || bad "completing import"
case $out in *"imported $((120 - got)) events ($got were there already"*) ok ;;
    *) bad "completion said: $out (the first run stored $got)" ;; esac
n=$("$CTL" "${C[@]}" read-all --stream ex-2 | wc -l)
[ "$n" = 40 ] && ok || bad "ex-2 has $n events after the completion, want 40"
# the streams' order is the source's
"$CTL" "${A[@]}" --json read ex-3 | python3 -c 'import json,sys; print([json.loads(l)["data"]["i"] for l in sys.stdin])' >"$TMP/o1"
"$CTL" "${C[@]}" --json read ex-3 | python3 -c 'import json,sys; print([json.loads(l)["data"]["i"] for l in sys.stdin])' >"$TMP/o2"
cmp -s "$TMP/o1" "$TMP/o2" && ok || bad "ex-3 order differs: $(cat "$TMP/o1") vs $(cat "$TMP/o2")"

# truncated and damaged files: refused with the line, nothing written
start_more d || exit 1
D=(--socket "$TMP/d.sock")
head -n 50 "$TMP/e1.jsonl" >"$TMP/cut.jsonl"
out=$("$CTL" "${D[@]}" import "$TMP/cut.jsonl" 2>&1) && bad "a truncated file was imported"
case $out in *"truncated: no trailer after line 50"*"nothing imported"*) ok ;; *) bad "truncated: $out" ;; esac
head -c 3000 "$TMP/e1.jsonl" >"$TMP/cut2.jsonl"
out=$("$CTL" "${D[@]}" import "$TMP/cut2.jsonl" 2>&1) && bad "a file cut mid-line was imported"
case $out in *", line "*"not a JSON object"*) ok ;; *) bad "cut mid-line: $out" ;; esac
sed '7s/"stream"/"strem"/' "$TMP/e1.jsonl" >"$TMP/bad.jsonl"
out=$("$CTL" "${D[@]}" import "$TMP/bad.jsonl" 2>&1) && bad "a damaged line was imported"
case $out in *"line 7: not an event"*) ok ;; *) bad "damaged: $out" ;; esac
long=$(printf 'x%.0s' $(seq 1 300))
sed "60s/\"type\":\"t[0-9]\"/\"type\":\"$long\"/" "$TMP/e1.jsonl" >"$TMP/longtype.jsonl"
out=$("$CTL" "${D[@]}" import "$TMP/longtype.jsonl" 2>&1) && bad "a 300-byte type was imported"
case $out in *"line 60: a stream or type name"*"nothing imported"*) ok ;; *) bad "long type: $out" ;; esac
sed '90s/"id":"[^"]*"/"id":"not-a-uuid"/' "$TMP/e1.jsonl" >"$TMP/badid.jsonl"
out=$("$CTL" "${D[@]}" import "$TMP/badid.jsonl" 2>&1) && bad "a bad id was imported"
case $out in *"line 90: an event id that is not a UUID"*) ok ;; *) bad "bad id: $out" ;; esac
echo 'not json' | "$CTL" "${D[@]}" import - >/dev/null 2>&1 && bad "garbage imported"
out=$("$CTL" "${D[@]}" --json stats) || bad "stats"
case $out in *'"head_position":0,'*) ok ;; *) bad "something was written: $out" ;; esac

# filters and bounds
n=$("$CTL" "${A[@]}" export --prefix ex-2 --to 60 | python3 -c '
import json, sys
ls = [json.loads(l) for l in sys.stdin]
ev = [l for l in ls if "kind" not in l]
assert all(e["stream"] == "ex-2" and e["position"] <= 60 for e in ev), ev
print(len(ev))')
[ "$n" = 20 ] && ok || bad "export --prefix ex-2 --to 60 gave $n events, want 20"
"$CTL" "${A[@]}" export --from 9 --to 3 >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--from past --to"
"$CTL" "${A[@]}" export --format csv >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--format csv"

# pg-copy: PostgreSQL COPY text, read back the way COPY reads it
"$CTL" "${A[@]}" export --format pg-copy -o "$TMP/e.copy" || bad "pg-copy"
python3 - "$TMP/e.copy" "$TMP/e1.jsonl" <<'EOF' || bad "pg-copy rows differ from the events"
import json, re, sys
def unescape(f):
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[m.group(1)], f)
rows = [[unescape(f) for f in l.split("\t")] for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l]
ev = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
ev = [e for e in ev if "kind" not in e]
assert len(rows) == len(ev), (len(rows), len(ev))
for r, e in zip(rows, ev):
    assert len(r) == 8, r
    assert int(r[0]) == e["position"] and r[1] == e["stream"] and int(r[2]) == e["version"]
    assert r[3] == e["id"] and r[4] == e["type"] and r[7] == e["time"]
    assert json.loads(r[5]) == e["data"] and json.loads(r[6]) == e["meta"], r
EOF
ok
grep -qi "copy events" "$(dirname "$0")/../../packaging/maos-export-pg.sql" && ok ||
    bad "packaging/maos-export-pg.sql has no COPY"

# ---- verify --export: the chain through the lines, the daemon's signature ----------
"$CTL" "${A[@]}" pubkey >"$TMP/key.pub" || bad "pubkey"
"$CTL" verify --export "$TMP/e1.jsonl" --pubkey "$TMP/key.pub" >"$TMP/out" 2>&1 &&
    grep -q "hash chain intact; its trailer is signed" "$TMP/out" && ok ||
    bad "verify --export of a whole export: $(cat "$TMP/out")"
# one character of the 5th event line changed: named, with the positions it can be in
awk 'NR == 6 { sub(/"by":"test"/, "\"by\":\"tesT\"") } { print }' "$TMP/e1.jsonl" >"$TMP/x.jsonl"
cmp -s "$TMP/e1.jsonl" "$TMP/x.jsonl" && bad "the test did not change the file"
"$CTL" verify --export "$TMP/x.jsonl" --pubkey "$TMP/key.pub" >"$TMP/out" 2>&1
[ $? = 1 ] && grep -q "^BAD: line .*positions 1\.\." "$TMP/out" && ok ||
    bad "a changed character: $(cat "$TMP/out")"
# a cut file fails on its missing trailer
head -n -1 "$TMP/e1.jsonl" >"$TMP/x.jsonl"
"$CTL" verify --export "$TMP/x.jsonl" >"$TMP/out" 2>&1
[ $? = 1 ] && grep -q "no trailer" "$TMP/out" && ok || bad "a cut export: $(cat "$TMP/out")"
# another key: the trailer's signature does not verify
printf '%064d\n' 7 >"$TMP/other.pub"
"$CTL" verify --export "$TMP/e1.jsonl" --pubkey "$TMP/other.pub" >"$TMP/out" 2>&1
[ $? = 1 ] && grep -q "signature does not verify" "$TMP/out" && ok ||
    bad "another key: $(cat "$TMP/out")"
# a filtered export holds part of the chain: refused, exit 2
"$CTL" "${A[@]}" export --prefix ex-1 -o "$TMP/f.jsonl" || bad "export --prefix"
"$CTL" verify --export "$TMP/f.jsonl" >/dev/null 2>&1; [ $? = 2 ] && ok ||
    bad "verify --export of a filtered export"

# data JSON cannot carry (msgpack bin, from the Python client): the line keeps the
# stored record, import stores it exactly, verify hashes it
PY=/usr/bin/python3 # Debian's: python3-msgpack (the set-up installs it)
[ -x "$PY" ] || PY=python3
PYP="$(cd "$(dirname "$0")/../../client/python" && pwd)"
PYTHONPATH="$PYP" $PY -c '
import sys, maos
with maos.Client(sys.argv[1]) as c:
    c.append("bin-1", [{"type": "b", "data": b"\x00\x01\xff", "meta": {"k": 1.5}}])
' "$SOCK" || bad "python append bin"
"$CTL" "${A[@]}" export -o "$TMP/b.jsonl" || bad "export with bin"
grep '"stream":"bin-1"' "$TMP/b.jsonl" | grep -q '"record":' && ok || bad "no record for bin data"
"$CTL" verify --export "$TMP/b.jsonl" --pubkey "$TMP/key.pub" >/dev/null 2>&1 && ok ||
    bad "verify --export with a record line"
start_more bin || bad "start bin"
"$CTL" --socket "$TMP/bin.sock" import "$TMP/b.jsonl" >/dev/null || bad "import with bin"
PYTHONPATH="$PYP" $PY -c '
import sys, maos
with maos.Client(sys.argv[1]) as c:
    ev = list(c.read("bin-1"))
    assert len(ev) == 1 and ev[0].data == b"\x00\x01\xff", ev
' "$TMP/bin.sock" && ok || bad "bin data not kept exactly"

# retention: removed events keep their place as "removed" lines; the chain verifies,
# import skips them
"$CTL" "${A[@]}" stream set-retention ex-1 --max-count 5 >/dev/null || bad "set-retention"
for _ in $(seq 1 600); do
    "$CTL" "${A[@]}" --json stream info ex-1 | grep -q '"first_version": *35' && break
done
"$CTL" "${A[@]}" export -o "$TMP/r.jsonl" || bad "export after retention"
# 35 removed: the stubs at the log's start collapsed into the anchor (ex-1 wrote
# positions 1..10), the anchor's is the first line, the others stay as lines
anchor=$("$CTL" "${A[@]}" stats | awk '$1 == "log_anchor" { print $2 }')
want=$((anchor > 1 ? 35 - (anchor - 1) : 35))
n=$(grep -c '"kind":"removed"' "$TMP/r.jsonl")
[ "$n" = "$want" ] && ok || bad "removed lines: $n, want $want (anchor $anchor)"
"$CTL" verify --export "$TMP/r.jsonl" --pubkey "$TMP/key.pub" >"$TMP/out" 2>&1 &&
    grep -q "($want removed)" "$TMP/out" && ok || bad "verify after retention: $(cat "$TMP/out")"
start_more ret || bad "start ret"
"$CTL" --socket "$TMP/ret.sock" import "$TMP/r.jsonl" >/dev/null || bad "import after retention"
n=$("$CTL" --socket "$TMP/ret.sock" --json read ex-1 | wc -l)
[ "$n" = 5 ] && ok || bad "ex-1 after importing an export with removed lines: $n, want 5"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
