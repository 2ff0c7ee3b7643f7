#!/bin/sh
# Issue #10's method, literally: lighttpd (Debian's, no access log) under
# callgrind, curl sends N keep-alive requests for one host, callgrind dumps
# lighttpd's own process right after them. Prints lighttpd's instruction
# total; instructions per request = (I(12000) - I(2000)) / 10000.
#   bench/curl-keepalive.sh none|/path/to/libmod_bw_counter.so N
# HOOKS=1 also prints callgrind's inclusive instruction count of each of the
# module's hooks (exact per call, whatever the machine's load; divide by
# the calls, which callgrind_annotate does not print: N+1 requests here).
# Needs valgrind, curl, lighttpd. bench/instructions.rs (make bench) is the
# full harness (more loads, interleaved variants, CPU time).
set -eu
so=$1; n=$2
d=$(mktemp -d /tmp/bwc-curl-keepalive.XXXXXX)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/www" "$d/mods"
head -c 100 /dev/zero > "$d/www/small.txt"
for m in /usr/lib/lighttpd/*.so; do ln -s "$m" "$d/mods/"; done
port=$((20000 + $$ % 20000))
cat > "$d/conf" <<C
server.document-root = "$d/www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$d/error.log"
C
if [ "$so" != none ]; then
    cp "$so" "$d/mods/mod_bw_counter.so"
    cat >> "$d/conf" <<C
server.modules = ("mod_bw_counter")
bw_counter.mysql_server = "127.0.0.1:9"
bw_counter.mysql_db = "bw"
bw_counter.mysql_table = "t"
bw_counter.mysql_user = "u"
bw_counter.report_interval = 3600
C
fi
valgrind --tool=callgrind --callgrind-out-file="$d/cg.out.%p" \
    lighttpd -D -f "$d/conf" -m "$d/mods" > "$d/valgrind.log" 2>&1 &
pid=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/small.txt"; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "lighttpd did not start" >&2; exit 1; }
    sleep 0.2
done
curl -s -o /dev/null -H 'Host: alpha.example' "http://127.0.0.1:$port/small.txt?[1-$n]"
callgrind_control -d $pid > /dev/null 2>&1
kill -TERM $pid; wait $pid || true
grep -E '^(summary|totals):' "$d/cg.out.$pid.1" | head -1 | awk '{print $2}'
if [ -n "${HOOKS:-}" ]; then
    callgrind_annotate --inclusive=yes "$d/cg.out.$pid.1" 2>/dev/null |
        grep -E 'hooks::handle_request_(done|reset)|count_rest' | grep -v '\*' || true
fi
