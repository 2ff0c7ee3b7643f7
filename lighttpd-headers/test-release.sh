#!/usr/bin/env bash
# Runs the integration suite against another lighttpd release than the
# installed one (issue #11; make test runs it for every release it names):
#
#   lighttpd-headers/test-release.sh 1.4.79-2 trixie
#
# Builds that lighttpd from Debian's source package (build-release.sh,
# cached), builds the module against its configured tree (with that tree's
# config.h) twice, plain and with the panic-test hooks, and runs every
# integration test with that lighttpd, its modules and those builds
# (BWC_LIGHTTPD, BWC_LIGHTTPD_MODDIR, BWC_MODULE, BWC_PANIC_TEST_MODULE).
# The other releases share one cargo target directory, target/releases, so
# the dependencies are compiled once.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 <debian version> <suite>" >&2; exit 2; }
debver=$1
suite=$2
upstream=${debver%-*}
top=$(cd "$(dirname "$0")/.." && pwd)
rel="$top/lighttpd-headers/upstream/release-$upstream"
target="$top/target/releases"
CARGO=${CARGO:-cargo}
# (./setup puts a rustup toolchain on PATH; make passes CARGO.)

"$top/lighttpd-headers/build-release.sh" "$debver" "$suite"

mkdir -p "$rel/module"
export LIGHTTPD_SRC="$rel/tree"
(cd "$top" && "$CARGO" build --release --target-dir "$target")
cp "$target/release/libmod_bw_counter.so" "$rel/module/mod_bw_counter.so"
(cd "$top" && "$CARGO" build --release --features panic-test --target-dir "$target")
cp "$target/release/libmod_bw_counter.so" "$rel/module/mod_bw_counter-panic-test.so"
unset LIGHTTPD_SRC

echo "== integration tests against lighttpd $debver ($rel/install)"
cd "$top"
BWC_LIGHTTPD="$rel/install/sbin/lighttpd" \
BWC_LIGHTTPD_MODDIR="$rel/install/lib" \
BWC_MODULE="$rel/module/mod_bw_counter.so" \
BWC_PANIC_TEST_MODULE="$rel/module/mod_bw_counter-panic-test.so" \
BWC_EXPECT_LIGHTTPD_VERSION="$upstream" \
    "$CARGO" test --release --tests
