//! `bw-report exporter` against a real private MariaDB (the module's test
//! rig) holding rows the tests write: run as the built binary on a loopback
//! port, scraped over HTTP, and read back by Prometheus' own Python parser
//! (Debian's python3-prometheus-client). Its clock is libfaketime's, in a
//! zone east of UTC, so that "today" is a known local date.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mysql::prelude::Queryable;
use support::common::mariadb::{DATABASE, TABLE};
use support::common::prometheus::{self, Sample};
use support::common::{self as common, http, wait_for};
use support::exporter::Exporter;
use support::{bw_report, Db};

/// A zone 3 hours east of UTC: local dates differ from UTC's from 21:00 on.
const TZ: &str = "XST-3";

/// The exporter on this database, with a fake clock starting at `clock`
/// (local time in [`TZ`]).
fn start_exporter(db: &Db, clock: &str, extra: &[&str]) -> Exporter {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bw-report"));
    cmd.args(db.flags())
        .args(["exporter", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("LD_PRELOAD", common::libfaketime())
        .env("FAKETIME", format!("@{clock}"))
        .env("DONT_FAKE_MONOTONIC", "1")
        .env("TZ", TZ);
    Exporter::spawn(cmd)
}

/// A scrape that must succeed, parsed.
fn scrape(exporter: &Exporter) -> Samples {
    let answer = exporter.get("/metrics");
    let body = String::from_utf8(answer.body).expect("UTF-8");
    assert_eq!(answer.status, 200, "{}\n{body}", answer.head);
    assert!(
        answer
            .head
            .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        answer.head
    );
    parse_prometheus(&body)
}

struct Samples(Vec<Sample>);

/// (vhost, direction) -> bytes.
type PerVhost = BTreeMap<(String, String), u64>;

impl Samples {
    /// The series of a per-vhost family, each checked to be of `kind`.
    fn per_vhost(&self, name: &str, kind: &str) -> PerVhost {
        let mut out = PerVhost::new();
        for s in self.0.iter().filter(|s| s.name == name) {
            assert_eq!(s.family_type, kind, "{name}");
            assert_eq!(s.labels.len(), 2, "{s:?}");
            let key = (s.labels["vhost"].clone(), s.labels["direction"].clone());
            assert!(s.value.fract() == 0.0 && s.value < 2f64.powi(53), "{s:?}");
            let twice = out.insert(key, s.value as u64);
            assert!(twice.is_none(), "a series twice: {s:?}");
        }
        out
    }

    /// The value of a family without labels (a gauge), if present.
    fn single(&self, name: &str) -> Option<f64> {
        let found: Vec<&Sample> = self.0.iter().filter(|s| s.name == name).collect();
        assert!(found.len() <= 1, "{found:?}");
        found.first().map(|s| {
            assert_eq!((s.family_type.as_str(), s.labels.len()), ("gauge", 0));
            s.value
        })
    }
}

/// Through Python's prometheus_client parser, as a scraper would read it.
fn parse_prometheus(text: &str) -> Samples {
    Samples(prometheus::parse(text))
}

/// What the table says, from its rows: per (vhost, direction) all days
/// summed, and `today`'s bytes (0 for a vhost without a row today).
fn expected(db: &Db, today: &str) -> (PerVhost, PerVhost) {
    let (mut totals, mut todays) = (PerVhost::new(), PerVhost::new());
    for (vhost, day, bytes_in, bytes_out) in db.server.rows() {
        for (direction, bytes) in [("in", bytes_in), ("out", bytes_out)] {
            let key = (vhost.clone(), direction.to_string());
            *totals.entry(key.clone()).or_default() += bytes;
            *todays.entry(key).or_default() += if day == today { bytes } else { 0 };
        }
    }
    (totals, todays)
}

/// Counts added as the module adds them (an upsert), to today's or any
/// other day's row.
fn add(db: &Db, rows: &[(&str, &str, u64, u64)]) {
    let mut conn = db.server.root_conn().expect("root connection");
    for row in rows {
        conn.exec_drop(
            format!(
                "INSERT INTO {DATABASE}.{TABLE} (vhost, day, `in`, `out`) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE `in` = `in` + VALUES(`in`), `out` = `out` + VALUES(`out`)"
            ),
            row,
        )
        .unwrap_or_else(|e| panic!("add {row:?}: {e}"));
    }
}

/// A committed flush at Unix time `at`, in the module's ledger.
fn ledger_entry(db: &Db, batch: &str, at: i64) {
    let mut conn = db.server.root_conn().expect("root connection");
    conn.query_drop("SET time_zone = '+00:00'").unwrap();
    conn.exec_drop(
        format!("INSERT INTO {DATABASE}.{TABLE}_batches (batch, at) VALUES (?, FROM_UNIXTIME(?))"),
        (batch, at),
    )
    .unwrap();
}

/// Unix time of local midnight (in [`TZ`]) starting `day`.
fn local_midnight(day: &str) -> f64 {
    let day: NaiveDate = day.parse().unwrap();
    (day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() - 3 * 3600) as f64
}

fn assert_never_down(before: &PerVhost, after: &PerVhost) {
    for (key, bytes) in before {
        let now = after.get(key).copied().unwrap_or(0);
        assert!(now >= *bytes, "{key:?} went down from {bytes} to {now}");
    }
}

const TOTAL: &str = "bw_counter_vhost_bytes_total";
const TODAY: &str = "bw_counter_vhost_today_bytes";

/// Rows of many days, the window (--recent-days 7 before 2026-03-10)
/// starting 2026-03-03.
const ROWS: &[(&str, &str, u64, u64)] = &[
    (
        "www.example.org",
        "2025-03-10",
        1_000_000_007,
        9_000_000_000_001,
    ),
    ("www.example.org", "2026-03-02", 11, 22),
    ("www.example.org", "2026-03-03", 33, 44),
    ("www.example.org", "2026-03-09", 55, 66),
    ("www.example.org", "2026-03-10", 77, 88),
    ("old.example.net", "2024-02-29", 5, 6),
    ("shop.example.com", "2026-03-10", 0, 123_456_789_012),
];

#[test]
fn scrapes_show_the_table_to_the_byte() {
    let db = Db::start();
    db.insert(ROWS);
    ledger_entry(&db, "web1-1", 1_773_090_000);
    ledger_entry(&db, "web2-7", 1_773_100_123);
    // 01:00 on the 10th locally is still the 9th in UTC.
    let exporter = start_exporter(&db, "2026-03-10 01:00:00", &[]);
    let first = scrape(&exporter);
    let (totals, todays) = expected(&db, "2026-03-10");
    assert_eq!(first.per_vhost(TOTAL, "counter"), totals);
    assert_eq!(first.per_vhost(TODAY, "gauge"), todays);
    assert_eq!(todays[&("www.example.org".into(), "out".into())], 88);
    assert_eq!(first.single("bw_counter_rows"), Some(7.0));
    assert_eq!(
        first.single("bw_counter_newest_day_timestamp_seconds"),
        Some(local_midnight("2026-03-10"))
    );
    assert_eq!(
        first.single("bw_counter_newest_write_timestamp_seconds"),
        Some(1_773_100_123.0)
    );

    // The module goes on adding: today's rows grow, a vhost appears, and a
    // spool replayed late adds to yesterday (in the window) and to a day
    // before the window, which waits for the sums redone at midnight.
    add(
        &db,
        &[
            ("www.example.org", "2026-03-10", 1000, 2000),
            ("new.example.org", "2026-03-10", 3, 4),
            ("shop.example.com", "2026-03-09", 5, 6),
            ("www.example.org", "2026-03-01", 400, 500),
        ],
    );
    let second = scrape(&exporter);
    let (mut totals, todays) = expected(&db, "2026-03-10");
    *totals
        .get_mut(&("www.example.org".into(), "in".into()))
        .unwrap() -= 400;
    *totals
        .get_mut(&("www.example.org".into(), "out".into()))
        .unwrap() -= 500;
    assert_eq!(second.per_vhost(TOTAL, "counter"), totals);
    assert_eq!(second.per_vhost(TODAY, "gauge"), todays);
    assert_eq!(
        second.single("bw_counter_rows"),
        Some(9.0),
        "kept count + live count"
    );
    assert_never_down(
        &first.per_vhost(TOTAL, "counter"),
        &second.per_vhost(TOTAL, "counter"),
    );
    assert_eq!(
        exporter.log().len(),
        1,
        "only the serving line: {:?}",
        exporter.log()
    );
}

#[test]
fn only_metrics_is_served() {
    let db = Db::start();
    db.insert(ROWS);
    let exporter = start_exporter(&db, "2026-03-10 12:00:00", &[]);
    for path in ["/", "/metrics/", "/favicon.ico", "/metricsx"] {
        assert_eq!(exporter.get(path).status, 404, "{path}");
    }
    let head = http::exchange(exporter.port, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    let head = http::parse_responses(&head, &[true]);
    assert_eq!(head[0].status, 200, "{head:?}");
    assert!(head[0].body.is_empty());
    let post = http::exchange(
        exporter.port,
        b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    );
    let post = &http::parse_responses(&post, &[])[0];
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET, HEAD"), "{}", post.head);
    assert_eq!(
        exporter.get("/metrics?name[]=x").status,
        200,
        "a query string changes nothing"
    );
}

/// Vhosts are whatever clients sent as Host, or old rows hold: every one
/// must come back from the parser exactly as the table has it.
#[test]
fn hostile_vhosts_are_read_back_exactly() {
    let db = Db::start();
    let hostile = [
        "quote\"in",
        "back\\slash",
        "ends\\",
        "\\\"",
        "curly{vhost=\"x\"}",
        "# HELP bw_counter_rows lies",
        "# TYPE x counter",
        "new\nline",
        "tab\tcr\rbell\u{7}",
        "ünïcødé €",
        "comma,equals=",
        " padded",
    ];
    let rows: Vec<(&str, &str, u64, u64)> = hostile
        .iter()
        .enumerate()
        .map(|(n, v)| (*v, "2026-03-10", n as u64, 1000 + n as u64))
        .collect();
    db.insert(&rows);
    db.insert(&[("plain.example", "2026-03-01", 1, 2)]);
    let exporter = start_exporter(&db, "2026-03-10 12:00:00", &[]);
    let samples = scrape(&exporter);
    let (totals, todays) = expected(&db, "2026-03-10");
    assert_eq!(samples.per_vhost(TOTAL, "counter"), totals);
    assert_eq!(samples.per_vhost(TODAY, "gauge"), todays);
    for vhost in hostile {
        let key = (vhost.to_string(), "out".to_string());
        assert!(
            totals.contains_key(&key),
            "{vhost:?} is not in the table as written"
        );
    }
    assert_eq!(
        samples.single("bw_counter_rows"),
        Some(13.0),
        "no line injected"
    );

    // --vhost shows only those (and counts only their rows).
    let only = start_exporter(
        &db,
        "2026-03-10 12:00:00",
        &[
            "--vhost",
            "new\nline",
            "--vhost",
            "plain.example",
            "--vhost",
            "nobody",
        ],
    );
    let samples = scrape(&only);
    let shown: Vec<String> = samples
        .per_vhost(TOTAL, "counter")
        .into_keys()
        .map(|(vhost, _)| vhost)
        .collect();
    assert_eq!(
        shown,
        ["new\nline", "new\nline", "plain.example", "plain.example"]
    );
    assert_eq!(samples.single("bw_counter_rows"), Some(2.0));
}

/// Across local midnight: today's gauges move to the new day, the sums of
/// the days before the window are redone (a late row there shows up), and
/// no counter goes down.
#[test]
fn the_window_moves_at_local_midnight() {
    let db = Db::start();
    db.insert(&[
        ("a.example", "2026-03-01", 1, 10),
        ("a.example", "2026-03-08", 2, 20),
        ("a.example", "2026-03-10", 4, 40),
        ("b.example", "2026-03-10", 8, 80),
    ]);
    // Its clock starts when it does, between these two instants.
    let spawned = Instant::now();
    let exporter = start_exporter(&db, "2026-03-10 23:59:50", &["--recent-days", "2"]);
    let serving = Instant::now();
    let before = scrape(&exporter);
    assert_eq!(
        before.per_vhost(TODAY, "gauge"),
        expected(&db, "2026-03-10").1
    );
    // Just before midnight: a late row for a day the window has left.
    add(
        &db,
        &[
            ("a.example", "2026-03-07", 100, 1000),
            ("b.example", "2026-03-11", 16, 160),
        ],
    );
    let still = scrape(&exporter);
    assert!(
        spawned.elapsed() < Duration::from_secs(10),
        "too slow to scrape before midnight"
    );
    assert_eq!(
        still.per_vhost(TOTAL, "counter")[&("a.example".into(), "in".into())],
        7,
        "the day before the window is not read again the same day"
    );
    // Midnight is 10 s after the exporter started.
    thread::sleep(Duration::from_millis(10_500).saturating_sub(serving.elapsed()));
    let after = scrape(&exporter);
    let (totals, todays) = expected(&db, "2026-03-11");
    assert_eq!(after.per_vhost(TOTAL, "counter"), totals, "exact again");
    assert_eq!(after.per_vhost(TODAY, "gauge"), todays);
    assert_eq!(todays[&("b.example".into(), "in".into())], 16);
    assert_eq!(todays[&("a.example".into(), "in".into())], 0);
    assert_never_down(
        &still.per_vhost(TOTAL, "counter"),
        &after.per_vhost(TOTAL, "counter"),
    );
    assert_eq!(
        after.single("bw_counter_newest_day_timestamp_seconds"),
        Some(local_midnight("2026-03-11"))
    );
}

/// The database stops under a running exporter: 503 with the reason, one
/// line on stderr for the whole outage, no crash; once the database is
/// back the next scrapes reconnect and show the table again.
#[test]
fn a_database_that_stops_is_503_until_it_is_back() {
    let mut db = Db::start();
    db.insert(ROWS);
    let exporter = start_exporter(&db, "2026-03-10 12:00:00", &[]);
    let before = scrape(&exporter);
    db.server.stop();
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(exporter.get("/metrics"));
    }
    for answer in &answers {
        assert_eq!(answer.status, 503, "{answer:?}");
        let body = String::from_utf8_lossy(&answer.body);
        for name in [db.server.tcp_address().as_str(), DATABASE, TABLE] {
            assert!(body.contains(name), "{name} not in {body}");
        }
    }
    assert_eq!(exporter.get("/other").status, 404, "still serving");
    let log = exporter.log();
    assert_eq!(
        log.len(),
        2,
        "the serving line and one for the outage: {log:?}"
    );
    assert!(log[1].contains("503") && log[1].contains(TABLE), "{log:?}");

    db.server.launch();
    add(&db, &[("www.example.org", "2026-03-10", 1, 1)]);
    let back = wait_for(Duration::from_secs(30), || {
        let answer = exporter.get("/metrics");
        (answer.status == 200).then_some(answer)
    })
    .expect("200 again within 30 s of the database's return");
    let after = parse_prometheus(&String::from_utf8(back.body).unwrap());
    let (totals, _) = expected(&db, "2026-03-10");
    assert_eq!(after.per_vhost(TOTAL, "counter"), totals);
    assert_never_down(
        &before.per_vhost(TOTAL, "counter"),
        &after.per_vhost(TOTAL, "counter"),
    );
    let log = exporter.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log[2].contains("answers again"), "{log:?}");
}

/// A table without the module's columns, and an address already taken:
/// refused at start with one line and the status its kind has.
#[test]
fn start_refuses_a_wrong_table_or_a_busy_address() {
    let db = Db::start();
    db.server.exec(&format!(
        "CREATE TABLE {DATABASE}.no_day (vhost varchar(255) NOT NULL, \
         `in` bigint NOT NULL, `out` bigint NOT NULL, PRIMARY KEY (vhost))"
    ));
    let mut flags = db.flags();
    let table = flags.iter().position(|f| f == "--table").unwrap() + 1;
    flags[table] = "no_day".into();
    let out = bw_report(&flags, &["exporter", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in [
        db.server.tcp_address().as_str(),
        DATABASE,
        "no_day",
        "Unknown column",
    ] {
        assert!(stderr.contains(name), "{name} not in {stderr}");
    }

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = bw_report(&db.flags(), &["exporter", "--listen", &address]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
}

#[test]
fn an_unreachable_database_at_start_is_one_line_and_status_2() {
    let port = common::free_port();
    let server = format!("127.0.0.1:{port}");
    let flags: Vec<String> = ["--server", &server, "--db", "stats", "--table", "traffic"]
        .iter()
        .chain(&["--user", "nobody"])
        .map(|s| s.to_string())
        .collect();
    let out = bw_report(&flags, &["exporter", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in [server.as_str(), "stats", "traffic"] {
        assert!(stderr.contains(name), "{name} not in {stderr}");
    }
}

/// Checked before any connection: these fail the same with no database.
#[test]
fn bad_arguments_are_status_64() {
    let nowhere: Vec<String> = ["--server", "127.0.0.1:1", "--db", "d", "--table", "t"]
        .iter()
        .chain(&["--user", "u"])
        .map(|s| s.to_string())
        .collect();
    for args in [
        &["exporter"][..],
        &["exporter", "--listen", "9100"],
        &["exporter", "--listen", "localhost:9100"],
        &["exporter", "--listen", "127.0.0.1:99999"],
        &[
            "exporter",
            "--listen",
            "127.0.0.1:9100",
            "--from",
            "2026-01-01",
        ],
        &[
            "--to",
            "2026-01-31",
            "exporter",
            "--listen",
            "127.0.0.1:9100",
        ],
        &[
            "exporter",
            "--listen",
            "127.0.0.1:9100",
            "--recent-days",
            "0",
        ],
        &[
            "exporter",
            "--listen",
            "127.0.0.1:9100",
            "--ledger-table",
            "x;y",
        ],
    ] {
        let out = bw_report(&nowhere, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}
