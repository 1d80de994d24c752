#!/bin/sh
# tests/python/run.sh -- the Python client's meson tests.
#
#   run.sh pytest     client/python/tests against the built maosd (MAOSD_BIN)
#   run.sh mypy       mypy --strict of the maos package
#   run.sh pyflakes   python3 -m pyflakes of the package, tests and examples
#
# Env: PYTHON (the interpreter meson found: Debian's /usr/bin/python3 first,
# which sees the python3-* packages), MAOS_PY_DIR (client/python).  A tool
# that is not installed skips the test (exit 77) and says which package
# gives it; everything else is a pass or a fail.
set -u
PY=${PYTHON:-/usr/bin/python3}
DIR=${MAOS_PY_DIR:?MAOS_PY_DIR not set}
need() {  # need MODULE PACKAGE
    if ! "$PY" -c "import $1" 2>/dev/null; then
        echo "SKIP: $PY cannot import $1 (apt-get install $2)"
        exit 77
    fi
}
need msgpack python3-msgpack
cd "$DIR" || exit 1
case "${1:-}" in
pytest)
    need pytest python3-pytest
    exec "$PY" -m pytest -q -p no:cacheprovider -o console_output_style=classic tests ;;
mypy)
    need mypy mypy
    exec "$PY" -m mypy --strict --no-incremental --cache-dir=/dev/null maos ;;
pyflakes)
    need pyflakes python3-pyflakes
    set -- maos tests
    for p in examples bench.py; do [ -e "$p" ] && set -- "$@" "$p"; done
    exec "$PY" -m pyflakes "$@" 2>&1 ;;
*)
    echo "usage: run.sh pytest|mypy|pyflakes" >&2; exit 2 ;;
esac
