#!/usr/bin/env bash
# make deb: the module as a Debian package like Debian's own lighttpd
# modules (lighttpd-mod-*), enabled with `lighty-enable-mod bw-counter`.
#
#   packaging/debian/build-deb.sh [path/to/libmod_bw_counter.so [path/to/bw-report]]
#
# Writes target/debian/lighttpd-mod-bw-counter_<version>_<arch>.deb and
# prints its path last. The .so must be a release build (make build); the
# lighttpd release it was built for (the headers build.rs used: LIGHTTPD_SRC
# or lighttpd-headers/upstream/current) decides Depends, since no other
# release loads it. Needs dpkg-dev (dpkg-shlibdeps) and binutils (strip).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/packaging/debian"
so=${1:-$top/target/release/libmod_bw_counter.so}
report=${2:-$(dirname "$so")/bw-report}
die() { echo "build-deb.sh: $*" >&2; exit 1; }
[ -f "$so" ] || die "$so not built (make build)"
[ -x "$report" ] || die "$report not built (make build)"

tree=${LIGHTTPD_SRC:-$top/lighttpd-headers/upstream/current}
lighttpd_version=$(sed -n 's/^AC_INIT(\[lighttpd\],[[:space:]]*\[\([0-9.]*\)\].*/\1/p' "$tree/configure.ac" | head -n1)
[ -n "$lighttpd_version" ] || die "cannot read lighttpd's version from $tree/configure.ac"
# 1.4.69 -> the next release 1.4.70: Debian's updates of 1.4.69 (1.4.69-1+deb12u1) stay inside.
next=$(echo "$lighttpd_version" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')

crate_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/Cargo.toml" | head -n1)
version="$crate_version-1"
arch=$(dpkg --print-architecture)
name=lighttpd-mod-bw-counter
out="$top/target/debian"
root="$out/root"
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/usr/lib/lighttpd" "$root/etc/lighttpd/conf-available" \
    "$root/usr/share/doc/$name" "$root/usr/bin"

# The module, without debug information and line tables (30 MB -> ~3 MB).
strip --strip-unneeded -o "$root/usr/lib/lighttpd/mod_bw_counter.so" "$so"
chmod 0644 "$root/usr/lib/lighttpd/mod_bw_counter.so"
# The report tool (README, Reports), stripped the same way.
strip --strip-unneeded -o "$root/usr/bin/bw-report" "$report"
chmod 0755 "$root/usr/bin/bw-report"
install -m 0644 "$here/20-bw-counter.conf" "$root/etc/lighttpd/conf-available/20-bw-counter.conf"
install -m 0644 "$top/README.md" "$top/examples/schema.sql" "$top/examples/grants.sql" \
    "$top/examples/report.sql" "$root/usr/share/doc/$name/"
cat >"$root/usr/share/doc/$name/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mod_bw_counter
Comment: A Rust rewrite of GDR!'s mod_bw_counter.c for lighttpd; built
 against lighttpd $lighttpd_version's headers (BSD-3-Clause, Jan Kneschke
 and contributors).
EOF
for f in postinst prerm postrm; do install -m 0755 "$here/$f" "$root/DEBIAN/$f"; done
echo /etc/lighttpd/conf-available/20-bw-counter.conf >"$root/DEBIAN/conffiles"

# Shared-library dependencies, computed as Debian's tools do.
shlib=$(mktemp -d)
trap 'rm -rf "$shlib"' EXIT
mkdir -p "$shlib/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$name" "$name" >"$shlib/debian/control"
libs=$(cd "$shlib" && dpkg-shlibdeps -O "$root/usr/lib/lighttpd/mod_bw_counter.so" \
    "$root/usr/bin/bw-report" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$libs" ] || die "dpkg-shlibdeps found no dependencies"

size=$(du -k -s "$root" --exclude=DEBIAN | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: mod_bw_counter developers <root@localhost>
Installed-Size: $size
Depends: lighttpd (>= $lighttpd_version), lighttpd (<< $next~), $libs
Recommends: fonts-dejavu-core
Section: httpd
Priority: optional
Description: bytes per virtual host and day for lighttpd, kept in MySQL
 mod_bw_counter counts the bytes every virtual host of lighttpd receives
 and sends, exactly as mod_accesslog's %I and %O, and adds them up per
 host and day in a MySQL/MariaDB table, from a flusher process of its
 own so that the database never delays a request.
 .
 Built for lighttpd $lighttpd_version (no other release loads it). Enable
 with: lighty-enable-mod bw-counter
EOF
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$root/DEBIAN/md5sums"

deb="$out/${name}_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
rm -rf "$root"
echo "$deb"
