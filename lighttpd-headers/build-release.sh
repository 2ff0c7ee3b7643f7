#!/usr/bin/env bash
# Builds another lighttpd release than the installed one from Debian's own
# source package, for the tests to run the module against (issue #11):
#
#   lighttpd-headers/build-release.sh 1.4.79-2 trixie
#   lighttpd-headers/build-release.sh 1.4.85-1 sid
#
# Result, in lighttpd-headers/upstream/release-<upstream version>/ (ignored,
# like all fetched third-party source):
#   tree/        the source with Debian's patches, configured the way
#                debian/rules configures what changes struct layouts
#                (autotools, --with-pcre2; config.h at the top): what the
#                module is built against (LIGHTTPD_SRC=.../tree)
#   install/     `make install` of that tree: sbin/lighttpd, lib/mod_*.so
#   built        stamp: the Debian version built; a second run does nothing
#
# The source package comes through a private apt configuration (sources,
# lists and cache under apt/ here): one deb-src line for the suite, on the
# mirror and with the keyring of the apt source that provides the installed
# lighttpd (never a hard-coded host). The system's apt state and its
# lighttpd are not touched. Needs: dpkg-dev, autoconf, automake, libtool,
# pkg-config, make, gcc, libpcre2-dev, zlib1g-dev, libssl-dev (make deps-releases).
set -euo pipefail

die() { echo "build-release.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 <debian version, e.g. 1.4.79-2> <suite, e.g. trixie>"
debver=$1
suite=$2
upstream=${debver%-*}
here=$(cd "$(dirname "$0")" && pwd)
root="$here/upstream/release-$upstream"

if [ "$(cat "$root/built" 2>/dev/null)" = "$debver" ] && [ -x "$root/install/sbin/lighttpd" ]; then
    echo "build-release.sh: lighttpd $debver already built in $root"
    exit 0
fi

# The mirror and keyring of the apt source that provides lighttpd here.
origin=$(apt-cache policy lighttpd | awk '$1 ~ /^[0-9]+$/ && $2 ~ /:\/\// {print $2; exit}')
[ -n "$origin" ] || die "cannot tell which apt source provides lighttpd (apt-cache policy lighttpd)"
origin=${origin%/}
keyring=""
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
    keyring=$(awk -v origin="$origin" 'BEGIN { RS = "" }
        index($0, origin) > 0 && match($0, /Signed-By:[ \t]*[^ \t\n]+/) {
            s = substr($0, RSTART, RLENGTH); sub(/Signed-By:[ \t]*/, "", s); print s; exit }' "$f")
    [ -n "$keyring" ] && break
done
[ -n "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "keyring $keyring not found"

rm -rf "$root"
apt="$root/apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$root/download"
echo "deb-src [signed-by=$keyring] $origin $suite main" >"$apt/sources.list"
# Check-Valid-Until off for this private, source-only index: the version is
# exact and its files' hashes come from the signed Sources index, so a stale
# index can only lack it, never swap it; and sid's Release is valid for a
# week only, which a snapshot mirror or a machine with an odd clock (seen on
# a freshly bootstrapped machine here) outlives.
opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root"
      -o "Acquire::Check-Valid-Until=false")
echo "build-release.sh: lighttpd $debver from $origin $suite (keyring $keyring)"
apt-get "${opts[@]}" -qq update
(cd "$root/download" && apt-get "${opts[@]}" -qq source --download-only "lighttpd=$debver") ||
    die "apt-get source lighttpd=$debver from $suite failed"
# (Its signature is the maintainer's, not in the archive keyring: apt has
# checked the files against the signed Sources index already.)
dpkg-source -x "$root/download/lighttpd_$debver.dsc" "$root/tree" >"$root/unpack.log" 2>&1 ||
    { cat "$root/unpack.log" >&2; die "unpacking lighttpd $debver failed"; }

cd "$root/tree"
log="$root/build.log"
echo "build-release.sh: configuring and building (log: $log)"
{
    ./autogen.sh
    # What changes struct layouts the way Debian's build does: autotools
    # (the version id), PCRE2 (data_config, cond_match_t), and the
    # defaults every Debian build has (IPv6, mmap). TLS for the tests.
    ./configure --prefix="$root/install" --libdir="$root/install/lib" \
        --disable-dependency-tracking --with-pcre2 --with-openssl --with-zlib
    make -j"$(nproc)"
    make install
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "building lighttpd $debver failed"; }
[ -f config.h ] || die "configure wrote no config.h"
echo "$debver" >"$root/built"
echo "build-release.sh: lighttpd $debver in $root/install"
