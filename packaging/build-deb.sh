#!/usr/bin/env bash
# packaging/build-deb.sh -- build a Debian package of maos from this tree.
#
#   packaging/build-deb.sh [--build-dir DIR] [--out DIR]
#
# Builds a release configuration (prefix /usr, no tests) in DIR (default
# build-deb), installs it with `meson install --destdir` into a staging
# root, and packs that root with dpkg-deb into OUT/maos_<version>_<arch>.deb
# (OUT defaults to the build directory).  The package holds maosd, maosctl,
# libmaos-client (library, headers, pkg-config file), the systemd unit and
# the example config.  Its Depends line comes from dpkg-shlibdeps (the
# runtime libraries maosd and the client actually link), with a fixed
# Debian 12 list as the fallback.  Its postinst creates the `maos` system
# user and group that the unit runs as; nothing is started automatically.
#
# Needs the build dependencies (packaging/maos-dev installs them) and
# dpkg-dev.  Runs as any user: dpkg-deb --root-owner-group makes every file
# root-owned in the package without fakeroot.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=build-deb
out=""

die() { echo "build-deb: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a directory"; build_dir=$2; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see $0 --help)" ;;
    esac
    shift
done
case "$build_dir" in /*) ;; *) build_dir="$SRC/$build_dir" ;; esac
[ -n "$out" ] || out=$build_dir
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in meson ninja dpkg-deb dpkg; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (packaging/maos-dev installs the build tools)"
done

# ---- build and stage ------------------------------------------------------------

opts=(--prefix=/usr --sysconfdir=/etc --localstatedir=/var --buildtype=release
      -Dtests=false -Dfuzz=false -Db_sanitize=none -Dwerror=false)
if [ -f "$build_dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "${opts[@]}" "$build_dir" "$SRC"
else
    rm -rf "$build_dir"
    meson setup "${opts[@]}" "$build_dir" "$SRC"
fi
ninja -C "$build_dir"

root="$build_dir/debroot"
rm -rf "$root"
meson install -C "$build_dir" --destdir "$root" --no-rebuild --quiet

version=$(meson introspect --projectinfo "$build_dir" |
    sed -n 's/.*"version": *"\([^"]*\)".*/\1/p')
[ -n "$version" ] || die "cannot read the project version"
arch=$(dpkg --print-architecture)

[ -x "$root/usr/sbin/maosd" ] || die "maosd was not installed into $root/usr/sbin"

# ---- dependencies ----------------------------------------------------------------

# Debian 12's runtime libraries, used if dpkg-shlibdeps is unavailable or fails.
fallback_depends="libc6, librocksdb7.8, libuv1, libmsgpackc2, libsodium23, libjansson4, libinih1, libsystemd0"

mkdir -p "$root/DEBIAN"
libdir=$(dirname "$(find "$root" -name 'libmaos-client.so.*' -type f | head -n 1)")
soname_major=$(find "$libdir" -name 'libmaos-client.so.[0-9]*' -type l | sed -n 's/.*\.so\.\([0-9]*\)$/\1/p' | head -n 1)
# Tells dpkg-shlibdeps (and packages built against libmaos-client) which
# package provides the library.
printf 'libmaos-client %s maos (>= %s)\n' "${soname_major:-0}" "$version" >"$root/DEBIAN/shlibs"

depends=""
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    work=$(mktemp -d)
    mkdir -p "$work/debian"
    printf 'Source: maos\n\nPackage: maos\nArchitecture: any\n' >"$work/debian/control"
    ln -s "$root" "$work/debian/maos"
    mapfile -t elves < <(find "$root/usr" -type f \( -perm -u+x -o -name '*.so.*' \) |
        while read -r f; do head -c 4 "$f" | grep -q 'ELF' && echo "$f"; done)
    if line=$(cd "$work" && dpkg-shlibdeps -O -xmaos -l"$libdir" "${elves[@]}" 2>"$work/err"); then
        depends=$(printf '%s\n' "$line" | sed -n 's/^shlibs:Depends=//p')
    else
        echo "build-deb: dpkg-shlibdeps failed, using the Debian 12 list:" >&2
        sed 's/^/  /' "$work/err" >&2
    fi
    rm -rf "$work"
fi
[ -n "$depends" ] || depends=$fallback_depends

# ---- control and maintainer scripts ------------------------------------------------

installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: maos
Version: $version
Architecture: $arch
Maintainer: maos developers <maos@localhost>
Installed-Size: $installed_kb
Depends: $depends
Suggests: libmsgpack-dev, libjansson-dev
Section: database
Priority: optional
Description: coordination store for multi-agent systems on one machine
 maosd is one small daemon that owns a RocksDB database and serves agent
 processes over a Unix socket: named event streams with a global ordered
 log, optimistic concurrency, idempotent appends and transactions, with
 group commit so that many writer processes share each fsync.
 .
 This package contains maosd with its systemd unit, the maosctl command
 line tool and the libmaos-client C library with its headers.
EOF

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# The system user and group maosd.service runs as come from sysusers.d
# (/usr/lib/sysusers.d/maos.conf), its directories from tmpfiles.d, as
# dh_installsysusers and dh_installtmpfiles would do it.
set -e
if [ "$1" = configure ]; then
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers /usr/lib/sysusers.d/maos.conf
        systemd-tmpfiles --create /usr/lib/tmpfiles.d/maos.conf || true
    else # no systemd (a container): the same user by hand
        getent group maos >/dev/null || groupadd --system maos
        getent passwd maos >/dev/null ||
            useradd --system --gid maos --home-dir /var/lib/maos --no-create-home \
                --shell /usr/sbin/nologin --comment "maos coordination store" maos
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    echo "maos: start the daemon with: systemctl enable --now maosd" >&2
    echo "maos: let a user connect with: adduser USER maos" >&2
fi
exit 0
EOF

cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop maosd.service maosd.socket >/dev/null 2>&1 || true
    systemctl disable maosd.service maosd.socket >/dev/null 2>&1 || true
fi
exit 0
EOF

cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# The database in /var/lib/maos and the maos user are kept, even on purge:
# an event log is not something to delete as a side effect.
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/shlibs"

# A library package also triggers ldconfig.
printf 'activate-noawait ldconfig\n' >"$root/DEBIAN/triggers"
chmod 0644 "$root/DEBIAN/triggers"

deb="$out/maos_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "build-deb: wrote $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
