//! Issue #3, the flush side: counts survive a database outage and arrive
//! exactly once afterwards, with one log line each way; a stop while the
//! database is down names every undelivered (host, day, bytes); days follow
//! lighttpd's local clock across midnight.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle;

fn setup(db: &MariaDb, interval: u32) -> Setup {
    Setup::new(format!(
        "{}bw_counter.report_interval = {interval}\n",
        db.module_options()
    ))
}

fn get_ok(l: &Lighttpd, host: &str) {
    assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
}

#[test]
fn database_down_and_back_loses_nothing_and_logs_once_each_way() {
    let mut db = MariaDb::start();
    let l = Lighttpd::start(&setup(&db, 1));
    l.expect_log("database check ok", Duration::from_secs(20));
    get_ok(&l, "before.example");
    common::wait_for(Duration::from_secs(20), || {
        (!db.rows().is_empty()).then_some(())
    })
    .expect("first report");

    db.stop();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(4) {
        get_ok(&l, "during.example");
        std::thread::sleep(Duration::from_millis(200));
    }
    let line = l.expect_log("database unreachable", Duration::from_secs(20));
    assert!(
        line.contains("keeping") && line.contains("bytes in"),
        "says what is pending: {line}"
    );

    db.launch();
    get_ok(&l, "after.example");
    let back = l.expect_log("database reachable again", Duration::from_secs(60));
    assert!(back.contains("delivered"), "{back}");

    let mut l = l;
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    let log = l.all_output();
    assert_eq!(
        log.matches("database unreachable").count(),
        1,
        "no line per retry:\n{log}"
    );
    assert_eq!(log.matches("database reachable again").count(), 1, "{log}");
}

#[test]
fn stop_while_database_is_down_names_every_undelivered_row() {
    let mut db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 3600));
    l.expect_log("database check ok", Duration::from_secs(20));
    for host in ["a.example", "b.example", "a.example"] {
        get_ok(&l, host);
    }
    db.stop();
    let started = Instant::now();
    l.stop_ok();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stop took {:?}",
        started.elapsed()
    );

    // Each undelivered (host, day, in, out) is in the log, and together they
    // are exactly what the access log says was served.
    let log = l.all_output();
    let mut logged: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in log
        .lines()
        .filter(|l| l.contains("mod_bw_counter: undelivered: "))
    {
        let f: Vec<&str> = line
            .split("undelivered: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        // vhost <h> day <d> in <n> out <m>
        assert_eq!(
            (f[0], f[2], f[4], f[6]),
            ("vhost", "day", "in", "out"),
            "{line}"
        );
        let e = logged.entry(f[1].to_string()).or_default();
        e.0 += f[5].parse::<u64>().unwrap();
        e.1 += f[7].parse::<u64>().unwrap();
    }
    let expected = oracle::expected_totals(&oracle::read_access_log(&l.access_log), None);
    assert_eq!(logged, expected, "log:\n{log}");
    assert!(log.contains("could not deliver"), "{log}");
}

#[test]
fn sigint_graceful_shutdown_delivers_everything() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 3600));
    for host in ["int.example", "int2.example"] {
        get_ok(&l, host);
    }
    let status = l
        .stop_with(libc::SIGINT, Duration::from_secs(30))
        .expect("stops on SIGINT");
    // 0, or 1 if connections were still open (see Lighttpd::stop_ok).
    assert!(matches!(status.code(), Some(0 | 1)), "{status}");
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(totals.len(), 2);
}

/// Runs lighttpd on a clock that starts just before midnight (libfaketime,
/// in a zone 3 hours east of UTC) and checks that each request's bytes land
/// on the local day it finished, yesterday's row included.
#[test]
fn bytes_belong_to_the_local_day_their_request_finished() {
    let preload = common::libfaketime();
    let db = MariaDb::start();
    let mut setup = setup(&db, 1);
    // The request line field carries the local date lighttpd logged it on.
    setup
        .conf
        .push_str("accesslog.format := \"%V\\t%I\\t%O\\t%s\\t%{%Y-%m-%d}t %r\"\n");
    setup.env = vec![
        ("LD_PRELOAD".into(), preload.display().to_string()),
        ("FAKETIME".into(), "@2026-11-28 23:59:52".into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("TZ".into(), "XST-3".into()),
    ];
    let mut l = Lighttpd::start(&setup);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(14) {
        get_ok(&l, "clock.example");
        std::thread::sleep(Duration::from_millis(250));
    }
    l.stop_ok();

    let mut expected: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for r in oracle::read_access_log(&l.access_log) {
        let day = r.request.split(' ').next().unwrap().to_string();
        let e = expected
            .entry((oracle::host_key(&r.host, None), day))
            .or_default();
        e.0 += r.bytes_in;
        e.1 += r.bytes_out;
    }
    let days: Vec<&str> = expected.keys().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        days,
        vec!["2026-11-28", "2026-11-29"],
        "traffic on both sides of midnight: {expected:?}"
    );
    let actual: BTreeMap<(String, String), (u64, u64)> = db
        .rows()
        .into_iter()
        .map(|(h, d, i, o)| ((h, d), (i, o)))
        .collect();
    assert_eq!(actual, expected, "per (host, day), to the byte");
}
