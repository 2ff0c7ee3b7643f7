//! Issue #12, part 1: `bw_counter.account` and `bw_counter.exclude` set per
//! lighttpd condition. The oracle is the access log again: each request's
//! %I/%O summed under the row the configuration below gives it, written
//! independently of the module in `expected_row`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle::{self, Record};

/// Aliases of one customer under one account; a later condition that
/// matches overrides an earlier one (b.example.com has its own account);
/// health checks on any host are not counted; a condition on the client
/// address that matches nothing here changes nothing.
const SCOPES: &str = r#"
$HTTP["host"] =~ "(^|\.)example\.com$" { bw_counter.account = "example.com" }
$HTTP["host"] == "static.cdn.example" { bw_counter.account = "example.com" }
$HTTP["host"] == "b.example.com" { bw_counter.account = "customer b" }
$HTTP["url"] =~ "^/health" { bw_counter.exclude = "enable" }
$HTTP["remoteip"] == "192.0.2.1" { bw_counter.account = "never" }
"#;

/// The row each request of the access log belongs to under [`SCOPES`].
fn expected_row(r: &Record) -> Option<String> {
    let key = oracle::host_key(&r.host, None);
    if r.path().starts_with("/health") {
        return None;
    }
    let host = r.host.as_str(); // as lighttpd compares it (port included)
    if host == "b.example.com" {
        Some("customer b".into())
    } else if host == "example.com"
        || host.ends_with(".example.com")
        || host == "static.cdn.example"
    {
        Some("example.com".into())
    } else {
        Some(key)
    }
}

const HOSTS: [&str; 7] = [
    "example.com",
    "www.example.com",
    "b.example.com",
    "static.cdn.example",
    "other.example",
    "notexample.com",
    "www.example.com:8080",
];

fn start(db: &MariaDb, extra: &str) -> Lighttpd {
    let mut setup = Setup::new(format!(
        "{}bw_counter.report_interval = 1\n{SCOPES}{extra}",
        db.module_options()
    ));
    setup.modules.push("mod_cgi".into());
    let l = Lighttpd::start(&setup);
    std::fs::write(l.docroot.join("health"), "ok\n").unwrap();
    std::fs::write(l.docroot.join("file.bin"), vec![b'x'; 30_000]).unwrap();
    l
}

fn http1_traffic(l: &Lighttpd) {
    for round in 0..3 {
        for host in HOSTS {
            for path in ["/index.html", "/health", "/file.bin", "/missing"] {
                let status = http::get(l.port, Some(host), path).status;
                assert!(status == 200 || status == 404, "{host}{path}: {status}");
            }
        }
        // No Host at all: the server's name, never an account here.
        assert_eq!(
            http::get(l.port, None, "/index.html").status,
            200,
            "{round}"
        );
    }
    // HTTP/1.1 keep-alive: several requests, and hosts, on one connection.
    let mut raw = String::new();
    for host in HOSTS {
        for path in ["/index.html", "/health", "/file.bin"] {
            raw.push_str(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        }
    }
    raw.push_str("GET /index.html HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    let answers = http::parse_responses(&http::exchange(l.port, raw.as_bytes()), &[]);
    assert_eq!(
        answers.len(),
        3 * HOSTS.len() + 1,
        "every keep-alive request answered"
    );
}

fn http2_traffic(l: &Lighttpd) {
    for host in HOSTS {
        let out = common::run(
            Command::new(common::program("nghttp"))
                .args(["-n", "--no-dep", "-H", &format!(":authority: {host}")])
                .arg(format!("http://127.0.0.1:{}/file.bin", l.port))
                .arg(format!("http://127.0.0.1:{}/health", l.port))
                .arg(format!("http://127.0.0.1:{}/index.html", l.port)),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "nghttp {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn check(l: &Lighttpd, db: &MariaDb) {
    let records = oracle::read_access_log(&l.access_log);
    assert!(records.len() > 80, "too little traffic: {}", records.len());
    let expected = oracle::expected_totals_by(&records, expected_row);
    // The test means something only if every kind of row is there.
    for row in [
        "example.com",
        "customer b",
        "other.example",
        "notexample.com",
    ] {
        assert!(expected.contains_key(row), "{row} missing: {expected:?}");
    }
    assert!(!expected.contains_key("never"));
    oracle::assert_totals_equal(&expected, &oracle::table_totals(db), records.len());
}

#[test]
fn accounts_sum_aliases_and_exclusions_are_absent_over_http1_and_http2() {
    let db = MariaDb::start();
    let mut l = start(&db, "");
    http1_traffic(&l);
    http2_traffic(&l);
    l.stop_ok();
    check(&l, &db);
}

#[test]
fn accounts_with_two_workers() {
    let db = MariaDb::start();
    let mut l = start(&db, "server.max-worker = 2\n");
    http1_traffic(&l);
    http2_traffic(&l);
    l.stop_ok();
    check(&l, &db);
}

#[test]
fn a_global_account_with_an_exclusion_inside_a_condition() {
    let db = MariaDb::start();
    let setup = Setup::new(format!(
        "{}bw_counter.report_interval = 1\nbw_counter.account = \"everything\"\n\
         $HTTP[\"host\"] == \"quiet.example\" {{ bw_counter.exclude = \"enable\" }}\n",
        db.module_options()
    ));
    let mut l = Lighttpd::start(&setup);
    for host in ["a.example", "quiet.example", "b.example"] {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    }
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    let expected = oracle::expected_totals_by(&records, |r| {
        (r.host != "quiet.example").then(|| "everything".to_string())
    });
    assert_eq!(expected.len(), 1);
    oracle::assert_totals_equal(&expected, &oracle::table_totals(&db), records.len());
}

#[test]
fn bad_account_names_refuse_start_up_naming_the_option_and_value() {
    let db = MariaDb::start();
    for (conf, line) in [
        (
            "$HTTP[\"host\"] == \"x.example\" { bw_counter.account = \"\" }",
            "bw_counter.account = \"\": an account name must be 1 to 255 bytes (inside \
             $HTTP[\"host\"] == \"x.example\")",
        ),
        (
            "bw_counter.exclude = \"sometimes\"",
            "bw_counter.exclude = \"sometimes\": expected \"enable\" or \"disable\"",
        ),
        (
            "$HTTP[\"url\"] =~ \"^/a\" { bw_counter.mysql_db = \"x\" }",
            "bw_counter.mysql_db is a server-wide option",
        ),
    ] {
        let setup = Setup::new(format!("{}{conf}\n", db.module_options()));
        let refused = Lighttpd::try_start(&setup)
            .err()
            .unwrap_or_else(|| panic!("started with {conf}"));
        assert!(
            refused.output.contains(line),
            "{conf}: expected {line:?} in:\n{}",
            refused.output
        );
    }
}

/// When every condition that sets these options compares only the host
/// (nested and `else` ones included), the module remembers each host's
/// answer instead of asking lighttpd for every request: still exact.
#[test]
fn host_only_conditions_nested_and_chained_are_exact() {
    let db = MariaDb::start();
    let setup = Setup::new(format!(
        "{}bw_counter.report_interval = 1\n{}",
        db.module_options(),
        r#"
$HTTP["host"] =~ "(^|\.)example\.com$" { bw_counter.account = "example.com" }
else $HTTP["host"] == "static.cdn.example" { bw_counter.account = "cdn" }
$HTTP["host"] =~ "\.org$" {
    $HTTP["host"] == "quiet.example.org" { bw_counter.exclude = "enable" }
    $HTTP["host"] != "quiet.example.org" { bw_counter.account = "org sites" }
}
"#
    ));
    let mut l = Lighttpd::start(&setup);
    let hosts = [
        "www.example.com",
        "static.cdn.example",
        "quiet.example.org",
        "a.example.org",
        "b.example.org",
        "other.example",
        "example.com",
    ];
    // Keep-alive, hosts alternating on one connection, several rounds.
    let mut raw = String::new();
    for round in 0..5 {
        for host in hosts {
            raw.push_str(&format!(
                "GET /index.html?{round} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            ));
        }
    }
    raw.push_str("GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n");
    let answers = http::parse_responses(&http::exchange(l.port, raw.as_bytes()), &[]);
    assert_eq!(answers.len(), 5 * hosts.len() + 1);
    for host in hosts {
        http::get(l.port, Some(host), "/index.html");
    }
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    let expected = oracle::expected_totals_by(&records, |r| match r.host.as_str() {
        "www.example.com" | "example.com" => Some("example.com".into()),
        "static.cdn.example" => Some("cdn".into()),
        "quiet.example.org" => None,
        "a.example.org" | "b.example.org" => Some("org sites".into()),
        other => Some(other.into()),
    });
    assert_eq!(expected.len(), 4, "{expected:?}");
    oracle::assert_totals_equal(&expected, &oracle::table_totals(&db), records.len());
}
