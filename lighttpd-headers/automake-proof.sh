#!/usr/bin/env bash
# Proves Makefile.am.snippet: unpacks the fetched lighttpd source (Debian's,
# patches applied) into .work/automake/, appends the snippet to its
# src/Makefile.am, runs autogen/configure/make, checks that mod_bw_counter.so
# was built and installs into lighttpd's module directory, and that the
# lighttpd built from that tree loads it (`lighttpd -tt`: version id and
# configuration checks pass). Run by `make automake-proof` (and `make test`).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
work="$top/.work/automake"
"$top/lighttpd-headers/fetch.sh" "${1:-}" >/dev/null
dsc=$(ls "$top"/lighttpd-headers/upstream/download/lighttpd_*.dsc | sort -V | tail -n1)
started=$(date +%s)

rm -rf "$work"
mkdir -p "$work"
dpkg-source --no-check -x "$dsc" "$work/lighttpd" >/dev/null
tree="$work/lighttpd"
{ echo; cat "$top/Makefile.am.snippet"; } >>"$tree/src/Makefile.am"

cd "$tree"
echo "automake-proof: autogen + configure in $tree"
./autogen.sh >"$work/autogen.log" 2>&1 || { tail -20 "$work/autogen.log"; exit 1; }
./configure --prefix=/usr --libdir=/usr/lib/lighttpd --with-pcre2 --without-zlib \
    >"$work/configure.log" 2>&1 || { tail -20 "$work/configure.log"; exit 1; }
echo "automake-proof: make (lighttpd and, through the snippet, mod_bw_counter)"
make -j"$(nproc)" MOD_BW_COUNTER_DIR="$top" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log"; exit 1; }

so="$tree/src/mod_bw_counter.so"
[ -f "$so" ] || { echo "automake-proof: $so was not built" >&2; exit 1; }
nm -D --defined-only "$so" | grep -q ' mod_bw_counter_plugin_init$' \
    || { echo "automake-proof: $so does not export mod_bw_counter_plugin_init" >&2; exit 1; }

make -C src install-exec-local DESTDIR="$work/destdir" MOD_BW_COUNTER_DIR="$top" >>"$work/make.log" 2>&1
[ -f "$work/destdir/usr/lib/lighttpd/mod_bw_counter.so" ] \
    || { echo "automake-proof: make install did not put mod_bw_counter.so into \$(libdir)" >&2; exit 1; }

# The tree's own lighttpd loads the module it built: -tt runs init and
# set_defaults, so the plugin version id and the option checks both pass.
mkdir -p "$work/modules" "$work/www"
cp "$so" "$work/modules/"
cat >"$work/proof.conf" <<CONF
server.document-root = "$work/www"
server.port = 65080
server.modules = ("mod_bw_counter")
bw_counter.mysql_db = "bw_counter"
bw_counter.mysql_table = "bandwidth"
bw_counter.mysql_user = "bw_counter"
CONF
"$tree/src/lighttpd" -tt -f "$work/proof.conf" -m "$work/modules" \
    || { echo "automake-proof: the tree's lighttpd refused the module it built" >&2; exit 1; }
# And refuses a bad option through the module, proving set_defaults ran.
echo 'bw_counter.report_interval = 0' >>"$work/proof.conf"
if "$tree/src/lighttpd" -tt -f "$work/proof.conf" -m "$work/modules" 2>"$work/refused.log"; then
    echo "automake-proof: a bad bw_counter option was accepted" >&2; exit 1
fi
grep -q 'bw_counter.report_interval = 0' "$work/refused.log" \
    || { echo "automake-proof: no error naming the bad option:" >&2; cat "$work/refused.log" >&2; exit 1; }

echo "automake-proof: ok in $(( $(date +%s) - started )) s: lighttpd $(basename "$dsc" .dsc | cut -d_ -f2) built mod_bw_counter.so via Makefile.am.snippet and loads it"
