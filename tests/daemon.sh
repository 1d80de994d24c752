# tests/daemon.sh -- sourced by the bash tests that drive a real maosd
# through maosctl (tests/integration/maosctl.sh, tests/subs/maosctl_tail.sh).
#
# The sourcing script sets MAOSD, CTL, TMP, SOCK, LOG, DPID= (empty),
# PASS=0, FAIL=0 first.  Provides start_daemon / stop_daemon (by pid:
# SIGTERM, then SIGKILL after 15 s; the exit status lands in
# DAEMON_STATUS), keep_or_clean (remove TMP when everything passed, else
# keep it and print the daemon log's tail) and ok.

stop_daemon() {
    [ -n "$DPID" ] || return 0
    kill -TERM "$DPID" 2>/dev/null
    local i
    for i in $(seq 1 300); do
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$DPID" 2>/dev/null; then
        echo "maosd did not stop on SIGTERM within 15 s: SIGKILL" >&2
        kill -KILL "$DPID" 2>/dev/null
    fi
    wait "$DPID" 2>/dev/null
    DAEMON_STATUS=$?
    DPID=
}

keep_or_clean() {
    stop_daemon
    if [ "$FAIL" -eq 0 ]; then
        rm -rf "$TMP"
    else
        echo "files kept in $TMP; daemon log: $LOG" >&2
        echo "---- last lines of $LOG ----" >&2
        tail -n 30 "$LOG" >&2
    fi
}

start_daemon() {
    # no signed checkpoints: the scripts count the log's events exactly
    "$MAOSD" --data-dir "$TMP/data" --socket "$SOCK" --log-level warn \
        --chain-every-events 0 --chain-interval-s 0 \
        </dev/null >>"$LOG" 2>&1 &
    DPID=$!
    local i
    for i in $(seq 1 200); do
        if ! kill -0 "$DPID" 2>/dev/null; then
            echo "maosd exited during start-up; log: $LOG" >&2
            tail -n 30 "$LOG" >&2
            DPID=
            return 1
        fi
        if [ -S "$SOCK" ] && "$CTL" --socket "$SOCK" ping >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.05
    done
    echo "maosd did not serve on $SOCK within 10 s" >&2
    return 1
}

ok() { PASS=$((PASS + 1)); }
