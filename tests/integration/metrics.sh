#!/bin/bash
# tests/integration/metrics.sh -- maosctl stats --prometheus against a real
# maosd: every line is checked by a strict parser of the Prometheus text
# exposition format (below; promtool too when it is installed), and the
# figures agree with what the test did (appends, reads, groups).
set -u
MAOSD=${MAOSD_BIN:?}
CTL=${MAOSCTL_BIN:?}
TMP=$(mktemp -d /tmp/maos-metrics-XXXXXX)
SOCK=$TMP/s.sock
LOG=$TMP/maosd.log
DPID=
PASS=0
FAIL=0
. "$(dirname "$0")/../daemon.sh"
trap keep_or_clean EXIT
bad() { echo "FAIL: $*" >&2; FAIL=$((FAIL + 1)); }

start_daemon || exit 1
A=(--socket "$SOCK")
for i in $(seq 1 25); do
    "$CTL" "${A[@]}" append m-1 T "{\"i\":$i}" >/dev/null || bad "append $i"
done
"$CTL" "${A[@]}" read m-1 >/dev/null || bad "read"
"$CTL" "${A[@]}" kv put cfg a '{"x":1}' >/dev/null || bad "kv put"
"$CTL" "${A[@]}" stats --prometheus >"$TMP/m.txt" || bad "stats --prometheus"

python3 - "$TMP/m.txt" <<'EOF' || bad "the exposition is not valid or its figures are wrong"
import math, re, sys
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (\S+)( -?\d+)?$")
families, samples = {}, {}
cur = None
text = open(sys.argv[1], encoding="utf-8").read()
assert text.endswith("\n"), "the last line has no newline"
for n, line in enumerate(text.split("\n")[:-1], 1):
    where = f"line {n}: {line!r}"
    if line.startswith("# HELP "):
        name, _, help_ = line[7:].partition(" ")
        assert re.fullmatch(NAME, name) and help_, where
        assert name not in families, "HELP twice: " + where
        families[name] = {"help": help_, "type": None}
        cur = name
        continue
    if line.startswith("# TYPE "):
        name, _, t = line[7:].partition(" ")
        assert name == cur and families[name]["type"] is None, "TYPE without its HELP: " + where
        assert t in ("counter", "gauge", "histogram", "summary", "untyped"), where
        families[name]["type"] = t
        continue
    assert not line.startswith("#") and line.strip(), "stray line: " + where
    m = SAMPLE.match(line)
    assert m, "not a sample: " + where
    name, labels, value = m.group(1), m.group(2) or "", m.group(3)
    t = families[cur]["type"]
    ok_names = [cur] if t != "histogram" else [cur + "_bucket", cur + "_sum", cur + "_count"]
    assert name in ok_names, f"sample of another family than {cur}: " + where
    v = float(value)
    assert not math.isnan(v), where
    if t == "counter":
        assert cur.endswith("_total") and v >= 0, "counter: " + where
    key = (name, labels)
    assert key not in samples, "duplicate sample: " + where
    samples[key] = v
for name, f in families.items():
    assert f["type"], "HELP without TYPE: " + name
    assert name.startswith("maos_"), name
# histograms: buckets cumulative, le increasing, +Inf == count, sum present
for name, f in families.items():
    if f["type"] != "histogram":
        continue
    series = {}
    for (n, labels), v in samples.items():
        if n != name + "_bucket":
            continue
        le = re.search(r'le="([^"]+)"', labels).group(1)
        rest = re.sub(r',?le="[^"]+"', "", labels).replace("{,", "{")
        series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
    assert series, "a histogram without buckets: " + name
    for rest, bs in series.items():
        les = [b[0] for b in bs]
        assert les == sorted(les) and les[-1] == math.inf, (name, rest, les)
        counts = [b[1] for b in bs]
        assert counts == sorted(counts), ("not cumulative", name, rest, counts)
        plain = "" if rest in ("{}", "") else rest
        assert samples[(name + "_count", plain)] == counts[-1], (name, rest)
        assert (name + "_sum", plain) in samples, (name, rest)
# the figures
g = lambda n, l="": samples[(n, l)]
assert g("maos_head_position") == 26, g("maos_head_position")
assert g("maos_read_only") == 0
assert g("maos_data_dir_bytes") > 0
assert g("maos_connections") >= 1
assert g("maos_subscriber_lag_max_events") == 0
assert g("maos_requests_total") >= 28
ap = '{op="append"}'
assert g("maos_request_duration_seconds_count", ap) == 25, g("maos_request_duration_seconds_count", ap)
assert g("maos_request_duration_seconds_count", '{op="read"}') == 1
assert g("maos_request_duration_seconds_count", '{op="put"}') == 1
assert g("maos_commit_write_duration_seconds_count") == g("maos_commit_groups_total") >= 26
assert g("maos_commit_write_duration_seconds_sum") > 0
for n in ("maos_rocksdb_pending_compaction_bytes", "maos_rocksdb_write_stopped",
          "maos_rocksdb_write_delayed"):
    assert (n, "") in samples, n
assert [v for (n, l), v in samples.items() if n == "maos_info" and 'durability="sync"' in l] == [1]
print(f"{len(families)} families, {len(samples)} samples")
EOF
ok
if command -v promtool >/dev/null; then
    promtool check metrics <"$TMP/m.txt" && ok || bad "promtool check metrics"
else
    echo "promtool not installed: the parser above is the check"
fi
# a daemon's own failure shows: --read-only
stop_daemon
"$MAOSD" --data-dir "$TMP/data" --socket "$TMP/r.sock" --read-only --log-level warn \
    </dev/null >>"$LOG" 2>&1 &
DPID=$!
for i in $(seq 1 200); do "$CTL" --socket "$TMP/r.sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$CTL" --socket "$TMP/r.sock" stats --prometheus | grep -qx "maos_read_only 1" && ok ||
    bad "maos_read_only is not 1 under --read-only"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
