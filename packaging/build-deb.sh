#!/usr/bin/env bash
# packaging/build-deb.sh -- build the Debian packages of maos from this tree.
#
#   packaging/build-deb.sh [--out DIR]
#
# A thin wrapper around the Debian way: copies the tracked tree (git
# ls-files, or everything but build directories outside git) into a
# scratch directory, runs `dpkg-buildpackage -b -us -uc` there (debian/:
# debhelper 13 with meson, prefix /usr, no tests), checks the result with
# lintian (errors fail the build) and moves the packages into DIR (default
# dist/): maosd, maosctl, libmaos-client1, libmaos-client-dev (and their
# -dbgsym), python3-maos (the Python client, built by pybuild).  Install
# them with
#     apt install ./dist/maosd_*.deb ./dist/maosctl_*.deb ./dist/libmaos-client1_*.deb
# Needs the build dependencies of debian/control plus debhelper and lintian
# (packaging/maos-dev installs them).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$SRC/dist"
die() { echo "build-deb: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see $0 --help)" ;;
    esac
    shift
done
for tool in dpkg-buildpackage dh lintian; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (packaging/maos-dev installs it)"
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d /tmp/maos-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/maos"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 cp --parents -P -t "$work/maos" 2>/dev/null || true)
else
    (cd "$SRC" && tar --exclude='./build*' --exclude='./dist' --exclude='./obj-*' -cf - .) |
        (cd "$work/maos" && tar -xf -)
fi
[ -f "$work/maos/debian/control" ] || die "no debian/control in the copied tree"
# Debian's tools and interpreter first: pybuild runs `python3.11 -m build`
# from PATH, and an interpreter of pyenv or a venv put before /usr/bin has
# neither Debian's build module nor its setuptools.
(cd "$work/maos" && PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH dpkg-buildpackage -b -us -uc -j"$(nproc)")
changes=$(ls "$work"/maos_*.changes)
lintian --fail-on error "$changes"
mv "$work"/*.deb "$out"/
echo "build-deb: packages in $out:"
ls -1 "$out"/*.deb
