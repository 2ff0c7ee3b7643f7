#!/usr/bin/env bash
# mod_bw_counter demo: a private MariaDB (unix socket only) and a lighttpd
# with the module on 127.0.0.1:8080 serving three virtual hosts; some
# traffic; one report to the database; the table printed; bw-report's
# top, and a chart and an html page of it in target/demo/. Everything else lives
# in a temp dir and is stopped and removed at the end, also on failure.
#
#   examples/demo.sh [path/to/libmod_bw_counter.so]     (make demo does this)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
so=$(realpath "${1:-$top/target/release/libmod_bw_counter.so}")
port=${DEMO_PORT:-8080}
[ -f "$so" ] || { echo "demo: $so not built (make build)" >&2; exit 1; }
report=$(dirname "$so")/bw-report
[ -x "$report" ] || { echo "demo: $report not built (make build)" >&2; exit 1; }

find_prog() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || { echo "demo: $1 not found (make deps)" >&2; exit 1; }; }
MARIADBD=$(find_prog mariadbd)
INSTALL_DB=$(find_prog mariadb-install-db)
LIGHTTPD=$(find_prog lighttpd)
MARIADB=$(find_prog mariadb)

work=$(mktemp -d /tmp/bw_counter-demo.XXXXXX)
mariadb_pid=""
lighttpd_pid=""
cleanup() {
    local rc=$?
    if [ "$rc" != 0 ]; then
        # The logs are about to go with $work: show why it failed first.
        for f in install-db.log mariadb.err error.log; do
            if [ -s "$work/$f" ]; then
                echo "demo: failed; the last lines of $f:" >&2
                tail -n 25 "$work/$f" | sed 's/^/   /' >&2
            fi
        done
    fi
    [ -n "$lighttpd_pid" ] && kill "$lighttpd_pid" 2>/dev/null && wait "$lighttpd_pid" 2>/dev/null || true
    if [ -n "$mariadb_pid" ]; then
        kill "$mariadb_pid" 2>/dev/null || true
        wait "$mariadb_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: 127.0.0.1:$port is taken; stop what listens there or set DEMO_PORT" >&2
    exit 1
fi

echo "== private MariaDB in $work/mariadb (unix socket only)"
sock="$work/mariadb.sock"
# The machine's host name need not resolve (a container or chroot without
# /etc/hosts): --force skips mariadb-install-db's resolveip check, which
# --skip-name-resolve alone does not, and grant entries use addresses.
"$INSTALL_DB" --no-defaults --datadir="$work/mariadb" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --force --user=root >"$work/install-db.log" 2>&1
"$MARIADBD" --no-defaults --datadir="$work/mariadb" --socket="$sock" --skip-networking \
    --user=root --innodb-buffer-pool-size=16M --log-error="$work/mariadb.err" \
    --pid-file="$work/mariadb.pid" >/dev/null 2>&1 &
mariadb_pid=$!
up=""
for _ in $(seq 100); do "$MARIADB" -S "$sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && { up=1; break; }; sleep 0.2; done
[ -n "$up" ] || { echo "demo: the private MariaDB did not start" >&2; exit 1; }
"$MARIADB" -S "$sock" -uroot <"$top/examples/schema.sql"
"$MARIADB" -S "$sock" -uroot <"$top/examples/grants.sql"
echo "   created bw_counter.bandwidth and user bw_counter (examples/schema.sql, grants.sql)"

echo "== lighttpd with mod_bw_counter on 127.0.0.1:$port"
mkdir -p "$work/modules" "$work/www"
for m in /usr/lib/lighttpd/*.so; do ln -s "$m" "$work/modules/"; done
cp "$so" "$work/modules/mod_bw_counter.so"
for h in www.example.com shop.example.com blog.example.org; do
    mkdir -p "$work/www/$h"
    echo "<html><body>Welcome to $h</body></html>" >"$work/www/$h/index.html"
done
head -c 300000 /dev/urandom >"$work/www/shop.example.com/catalog.pdf"
head -c 2000000 /dev/urandom >"$work/www/blog.example.org/video.mp4"
# An upload form's backend: a CGI script that reads the request body.
printf '%s\n' 'n=$(wc -c)' "printf 'Content-Type: text/plain\\r\\n\\r\\nreceived %s bytes\\n' \"\$n\"" \
    >"$work/www/shop.example.com/upload.sh"
cat >"$work/lighttpd.conf" <<EOF
server.document-root = "$work/www/www.example.com"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$work/error.log"
server.modules = ("mod_accesslog", "mod_cgi", "mod_bw_counter")
index-file.names = ("index.html")
cgi.assign = (".sh" => "/bin/sh")
accesslog.filename = "$work/access.log"
accesslog.format = "%V %I %O %s %r"
\$HTTP["host"] == "shop.example.com" { server.document-root = "$work/www/shop.example.com" }
\$HTTP["host"] == "blog.example.org" { server.document-root = "$work/www/blog.example.org" }

bw_counter.mysql_server = "$sock"
bw_counter.mysql_db = "bw_counter"
bw_counter.mysql_table = "bandwidth"
bw_counter.mysql_user = "bw_counter"
bw_counter.mysql_password = "change-me"
bw_counter.report_interval = 2
\$HTTP["remoteip"] == "127.0.0.1" { bw_counter.status_url = "/bw-status" }
EOF
"$LIGHTTPD" -D -f "$work/lighttpd.conf" -m "$work/modules" &
lighttpd_pid=$!
# Up when it answers (a connect alone is not enough: lighttpd listens before
# it has checked its modules' options). The probe is traffic like any other.
for _ in $(seq 100); do curl -s -o /dev/null -H "Host: www.example.com" "http://127.0.0.1:$port/" && break; sleep 0.1; done

echo "== traffic"
get() { curl -s -o /dev/null -w "   %{http_code} %{size_download} bytes  $1$2\n" -H "Host: $1" "http://127.0.0.1:$port$2"; }
for i in 1 2 3; do get www.example.com /; done
get shop.example.com /catalog.pdf
get shop.example.com /missing.html
get blog.example.org /video.mp4
head -c 500000 /dev/urandom | curl -s -o /dev/null -w "   %{http_code} upload 500000 bytes  shop.example.com/\n" \
    -H "Host: shop.example.com" --data-binary @- "http://127.0.0.1:$port/upload.sh"

echo "== waiting for mod_bw_counter to report (report_interval = 2 s)"
query="SELECT vhost, day, \`in\`, \`out\` FROM bw_counter.bandwidth ORDER BY vhost, day"
# Until two reports in a row change nothing: all the traffic has arrived.
last=""
for _ in $(seq 30); do
    sleep 2.5
    now=$("$MARIADB" -S "$sock" -uroot -N -e "$query")
    [ -n "$now" ] && [ "$now" = "$last" ] && break
    last=$now
done
"$MARIADB" -S "$sock" -uroot -t -e "$query"
echo "== the same, summed from lighttpd's own access log (%I, %O per request)"
awk '{ host = $1; sub(/:[0-9]+$/, "", host); i[host] += $2; o[host] += $3 }
     END { for (h in i) printf "   %-18s in %8d  out %8d\n", h, i[h], o[h] }' "$work/access.log" | sort
echo "== live status from memory (curl http://127.0.0.1:$port/bw-status?format=prometheus), excerpt"
curl -s "http://127.0.0.1:$port/bw-status?format=prometheus" |
    grep -E '^bw_counter_(bytes_total|flush_last_success|rows_delivered_total|pending_rows)' | sed 's/^/   /'
echo "== mod_bw_counter's lines in lighttpd's error log"
grep mod_bw_counter "$work/error.log" || true
rows=$("$MARIADB" -S "$sock" -uroot -N -e "SELECT COUNT(*) FROM bw_counter.bandwidth")
[ "$rows" -ge 3 ] || { echo "demo: expected rows for 3 virtual hosts, got $rows" >&2; exit 1; }

# bw-report last: what an admin reads, and files that outlive the demo.
printf '%s\n' change-me >"$work/bw_counter.pw"
chmod 0600 "$work/bw_counter.pw"
bw_report() {
    "$report" --server "$sock" --db bw_counter --table bandwidth --user bw_counter \
        --password-file "$work/bw_counter.pw" "$@"
}
out="$top/target/demo"
mkdir -p "$out"
bw_report chart --out "$out/chart.svg"
bw_report chart --out "$out/chart.png"
bw_report html --out "$out/report.html"
# The page as a browser shows it, for a look without a browser at hand.
shot=""
if CHROMIUM=$(command -v chromium); then
    mkdir -p "$work/chromium"
    if HOME="$work/chromium" timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
        --no-first-run --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$work/chromium/profile" \
        --window-size=1280,1400 --screenshot="$out/report.png" "file://$out/report.html" \
        >"$work/chromium/log" 2>&1; then
        shot="$out/report.png"
    else
        echo "demo: chromium could not render the page (its log follows)" >&2
        tail -n 5 "$work/chromium/log" | sed 's/^/   /' >&2
    fi
else
    echo "demo: no chromium to render the page with (apt-get install chromium)" >&2
fi
echo "== bw-report top, this month (README, Reports; the status requests above count too, as 127.0.0.1)"
bw_report top | sed 's/^/   /'
echo "== bw-report wrote"
echo "   chart:         $out/chart.svg and $out/chart.png"
echo "   page:          $out/report.html"
[ -z "$shot" ] || echo "   page, drawn:   $shot"
