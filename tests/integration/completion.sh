#!/bin/bash
# tests/integration/completion.sh -- the bash completion of maosctl
# (client/completion/maosctl.bash) against a real maosd: commands,
# options of a command (from maosctl's own help), kv sub-commands, stream
# names from the daemon, and nothing harmful when the daemon is gone.
set -u
MAOSD=${MAOSD_BIN:?set MAOSD_BIN}
CTL=${MAOSCTL_BIN:?set MAOSCTL_BIN}
unset MAOS_SOCKET
TMP=$(mktemp -d /tmp/maos-completion-XXXXXX)
SOCK=$TMP/s.sock
LOG=$TMP/maosd.log
DPID=
PASS=0
FAIL=0
. "$(dirname "${BASH_SOURCE[0]}")/../daemon.sh"
trap keep_or_clean EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../../client/completion/maosctl.bash"

# complete WORDS...: the line as typed (the last word is the one completed)
complete_line() {
    COMP_WORDS=("$CTL" --socket "$SOCK" "$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _maosctl
}
expect_has() { # WHAT WORD
    local w
    for w in "${COMPREPLY[@]}"; do [ "$w" = "$2" ] && { ok; return; }; done
    FAIL=$((FAIL + 1)); echo "FAIL: $1: '$2' not offered (got: ${COMPREPLY[*]})" >&2
}
expect_not() {
    local w
    for w in "${COMPREPLY[@]}"; do [ "$w" = "$2" ] && { FAIL=$((FAIL + 1)); echo "FAIL: $1: '$2' offered" >&2; return; }; done
    ok
}

start_daemon || exit 1
"$CTL" --socket "$SOCK" append task-17 created '{}' >/dev/null || { echo "FAIL: append"; exit 1; }
"$CTL" --socket "$SOCK" kv put settings mode '{"v":1}' >/dev/null || { echo "FAIL: kv put"; exit 1; }

complete_line "re";           expect_has "commands" read; expect_has "commands" read-all
expect_not "commands" ping
complete_line "queue" "--";   expect_has "queue options" --ordering-key; expect_has "queue options" --dead
complete_line "kv" "";        expect_has "kv sub-commands" watch
complete_line "kv" "get" "se"; expect_has "table names" settings
complete_line "read" "task-"; expect_has "stream names" task-17
complete_line "read-all" "--stream" "t"; expect_has "--stream names" task-17
complete_line "--";           expect_has "global options" --json
stop_daemon
complete_line "read" "task-"; expect_not "stream names without a daemon" task-17

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
