#!/usr/bin/env bash
# Fetch the lighttpd source that matches the lighttpd this machine runs (or a
# version given as $1), from Debian's source package, and unpack its headers
# into lighttpd-headers/upstream/ (git-ignored: third-party source is never
# committed).
#
#   lighttpd-headers/fetch.sh            # version of the installed `lighttpd -v`
#   lighttpd-headers/fetch.sh 1.4.69     # a given upstream version
#   lighttpd-headers/fetch.sh 1.4.69-1   # a given Debian package version
#
# Result:
#   upstream/lighttpd-<ver>/           configure.ac and src/*.h with Debian's
#                                      patches applied (what build.rs reads)
#   upstream/download/                 the .dsc and tarballs as downloaded
#                                      (the automake proof unpacks them again)
#   upstream/current                   symlink to lighttpd-<ver>
#
# Needs root only when the machine has no deb-src entry yet: one is derived
# from the apt source the installed lighttpd package came from (same URIs,
# suites, components and keyring), never a hard-coded mirror.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest_root="$here/upstream"
want=${1:-}

die() { echo "fetch.sh: $*" >&2; exit 1; }

# Points upstream/current at lighttpd-$upstream_ver, touching the link only
# when it points elsewhere: build.rs watches it, and a re-created link makes
# cargo rebuild the crate on every make target.
link_current() {
    [ "$(readlink "$dest_root/current" 2>/dev/null)" = "lighttpd-$upstream_ver" ] ||
        ln -sfn "lighttpd-$upstream_ver" "$dest_root/current"
}

if [ -z "$want" ]; then
    command -v lighttpd >/dev/null 2>&1 || die "lighttpd is not installed; give a version: $0 1.4.69"
    want=$(lighttpd -v 2>&1 | sed -n 's|^lighttpd/\([0-9][0-9.]*\).*|\1|p' | head -n1)
    [ -n "$want" ] || die "could not read the version from 'lighttpd -v'"
fi
upstream_ver=${want%%-*}

if [ -f "$dest_root/lighttpd-$upstream_ver/src/plugin.h" ] && [ -f "$dest_root/lighttpd-$upstream_ver/configure.ac" ]; then
    link_current
    echo "fetch.sh: lighttpd $upstream_ver headers already in $dest_root/lighttpd-$upstream_ver"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; point LIGHTTPD_SRC at a lighttpd $upstream_ver source tree instead"
command -v dpkg-source >/dev/null 2>&1 || die "dpkg-source not found: apt-get install dpkg-dev"

have_deb_src() { apt-cache showsrc lighttpd 2>/dev/null | grep -q '^Package: lighttpd'; }

add_deb_src() {
    [ "$(id -u)" = 0 ] || die "no deb-src entry for lighttpd; run once as root to derive one from the apt sources"
    # The URI the installed (or candidate) binary package comes from, e.g.
    # "http://deb.debian.org/debian": only sources with that URI are mirrored
    # as deb-src, so third-party repositories without sources are left alone.
    local origin
    origin=$(apt-cache policy lighttpd | awk '$1 ~ /^[0-9]+$/ && $2 ~ /:\/\// {print $2; exit}')
    [ -n "$origin" ] || die "cannot tell which apt source provides lighttpd (apt-cache policy lighttpd)"
    origin=${origin%/}
    local out=/etc/apt/sources.list.d/mod-bw-counter-deb-src.sources
    local tmp
    tmp=$(mktemp)
    {
        echo "# Written by mod_bw_counter's lighttpd-headers/fetch.sh: deb-src twins of the"
        echo "# apt sources that provide lighttpd, for 'apt-get source lighttpd'."
        echo
        shopt -s nullglob
        # deb822 files: copy each paragraph that is a 'deb' source for $origin.
        for f in /etc/apt/sources.list.d/*.sources; do
            [ "$f" = "$out" ] && continue
            awk -v origin="$origin" 'BEGIN { RS = ""; ORS = "\n\n" }
                {
                    n = split($0, line, "\n"); types = ""; uris = ""; body = ""
                    for (i = 1; i <= n; i++) {
                        if (line[i] ~ /^#/) continue
                        if (line[i] ~ /^Types:/) { types = line[i]; continue }
                        if (line[i] ~ /^URIs:/) uris = line[i]
                        body = body line[i] "\n"
                    }
                    if (types ~ /[[:space:]]deb([[:space:]]|$)/ && index(uris, origin) > 0)
                        printf "Types: deb-src\n%s\n", body
                }' "$f"
        done
    } >"$tmp"
    # One-line format ("deb [opts] URI suite comps"): a .list twin with deb-src.
    local listout=/etc/apt/sources.list.d/mod-bw-counter-deb-src.list
    local lines=""
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        [ "$f" = "$listout" ] && continue
        lines+=$(grep -E '^[[:space:]]*deb[[:space:]]' "$f" | grep -F "$origin" | sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' || true)
        lines+=$'\n'
    done
    if grep -q '^Types: deb-src' "$tmp"; then
        mv "$tmp" "$out"; chmod 644 "$out"
        echo "fetch.sh: wrote $out"
    else
        rm -f "$tmp"
    fi
    if [ -n "${lines//[$'\n']/}" ]; then
        printf '# Written by mod_bw_counter lighttpd-headers/fetch.sh\n%s' "$lines" >"$listout"
        echo "fetch.sh: wrote $listout"
    fi
    [ -f "$out" ] || [ -f "$listout" ] || die "found no apt source for $origin to derive a deb-src entry from"
    apt-get update -qq || die "apt-get update failed after adding deb-src entries"
}

have_deb_src || add_deb_src
have_deb_src || die "apt still knows no source package 'lighttpd' after adding deb-src entries"

# Pick the Debian source version: an exact one if given, else the newest one
# whose upstream part is $upstream_ver.
if [[ "$want" == *-* ]]; then
    deb_ver=$want
else
    deb_ver=$(apt-cache showsrc lighttpd | awk '/^Version:/ {print $2}' \
        | grep -E "^([0-9]+:)?${upstream_ver//./\\.}-" | sort -V | tail -n1 || true)
    [ -n "$deb_ver" ] || die "Debian's apt sources carry no lighttpd $upstream_ver source (have: $(apt-cache showsrc lighttpd | awk '/^Version:/ {printf "%s ", $2}')); set LIGHTTPD_SRC to a lighttpd $upstream_ver tree instead"
fi

mkdir -p "$dest_root/download"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$dest_root/download" && apt-get source --download-only -qq "lighttpd=$deb_ver") \
    || die "apt-get source --download-only lighttpd=$deb_ver failed"
dsc=$(ls "$dest_root/download"/lighttpd_"${deb_ver#*:}".dsc 2>/dev/null | head -n1)
[ -n "$dsc" ] || die "downloaded no .dsc for lighttpd $deb_ver"
# dpkg-source applies Debian's patches: the headers match the packaged binary.
dpkg-source --no-check -x "$dsc" "$work/tree" >/dev/null

out="$dest_root/lighttpd-$upstream_ver"
rm -rf "$out"
mkdir -p "$out/src"
cp "$work/tree/configure.ac" "$out/"
cp "$work/tree/src/"*.h "$out/src/"
[ -f "$work/tree/src/meson.build" ] && cp "$work/tree/src/meson.build" "$out/src/"
echo "$deb_ver" >"$out/DEBIAN_VERSION"
link_current
echo "fetch.sh: lighttpd $deb_ver headers in $out"
