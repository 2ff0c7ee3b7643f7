//! Issue #4 (part): hostile Host headers, a flood of random host names,
//! a stalled database, and a lighttpd killed with SIGKILL.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::http;
use common::lighttpd::{self as rig, Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::oracle;

fn setup(db: &MariaDb, interval: u32, extra: &str) -> Setup {
    Setup::new(format!(
        "{}bw_counter.report_interval = {interval}\n{extra}",
        db.module_options()
    ))
}

/// Sends one HTTP/1.0 request with raw Host header bytes; returns the status.
fn get_raw_host(port: u16, host: Option<&[u8]>) -> u16 {
    let mut req = b"GET /index.html HTTP/1.0\r\n".to_vec();
    if let Some(h) = host {
        req.extend_from_slice(b"Host: ");
        req.extend_from_slice(h);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    let raw = http::exchange(port, &req);
    http::parse_responses(&raw, &[])
        .first()
        .map_or(0, |r| r.status)
}

#[test]
fn hostile_host_headers_are_bound_escaped_and_all_counted() {
    let db = MariaDb::start();
    // Let lighttpd pass odd bytes through (not its default), to reach the
    // module's escaping; strict parsing is tested by its 400s below too.
    let relaxed = "server.http-parseopts = (\"host-strict\" => \"disable\", \"header-strict\" => \"disable\")\n";
    let mut l = Lighttpd::start(&setup(&db, 1, relaxed));
    let long = format!("{}.example", "x".repeat(300));
    let longer = format!("{}.example", "x".repeat(301));
    let hosts: Vec<Vec<u8>> = vec![
        b"quote'.example".to_vec(),
        b"dq\"uote.example".to_vec(),
        b"semi;colon.example".to_vec(),
        b"x'); DROP TABLE bandwidth; --".to_vec(),
        b"comment/*x*/.example".to_vec(),
        b"back\\slash.example".to_vec(),
        b"bin\x01\x7f\xff\xc3\xa9.example".to_vec(),
        b"UPPER.Example.ORG".to_vec(),
        b"upper.example.org:8080".to_vec(),
        b"[::1]:8080".to_vec(),
        b"[2001:DB8::1]".to_vec(),
        b"trailing.dot.example.".to_vec(),
        long.clone().into_bytes(),
        longer.clone().into_bytes(),
        b"tab\there.example".to_vec(),
    ];
    let mut statuses = Vec::new();
    for h in &hosts {
        statuses.push(get_raw_host(l.port, Some(h)));
    }
    statuses.push(get_raw_host(l.port, None));
    assert!(
        statuses.iter().all(|s| *s > 0),
        "every request answered: {statuses:?}"
    );
    l.stop_ok();

    // Every row per host equals the access log, and so does the grand total.
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    let records = oracle::read_access_log(&l.access_log);
    let logged: (u64, u64) = records
        .iter()
        .fold((0, 0), |a, r| (a.0 + r.bytes_in, a.1 + r.bytes_out));
    let stored: (u64, u64) = totals.values().fold((0, 0), |a, t| (a.0 + t.0, a.1 + t.1));
    assert_eq!(stored, logged, "total bytes across all rows");
    // The table is intact and the long names got distinct, bounded keys.
    let rows = db.rows();
    assert!(rows.iter().all(|r| r.0.len() <= 255), "{rows:?}");
    let long_keys: Vec<&String> = rows
        .iter()
        .map(|r| &r.0)
        .filter(|k| k.starts_with("xxxxxxxx"))
        .collect();
    assert_eq!(
        long_keys.len(),
        2,
        "two long names, two rows: {long_keys:?}"
    );
    assert!(totals.contains_key("upper.example.org"), "{totals:?}");
}

#[test]
fn a_flood_of_random_hosts_is_capped_per_day_and_still_counted() {
    let db = MariaDb::start();
    let cap = 50;
    let mut l = Lighttpd::start(&setup(&db, 1, &format!("bw_counter.max_hosts = {cap}\n")));
    // Legitimate sites, seen first.
    for i in 0..10 {
        assert_eq!(
            get_raw_host(l.port, Some(format!("site{i}.example").as_bytes())),
            200
        );
    }
    let rss_before = common::rss_kib(l.pid());
    // The flood: many connections, each pipelining requests for new random
    // names, spread over several report intervals; the real sites keep
    // getting traffic throughout.
    let started = Instant::now();
    let mut n = 0u64;
    let mut batch = 0;
    while n < 100_000 || started.elapsed() < Duration::from_secs(4) {
        let mut s = http::connect(l.port);
        let mut req = Vec::new();
        for _ in 0..500 {
            write!(
                req,
                "GET /index.html HTTP/1.1\r\nHost: flood-{n}-{}.example\r\n\r\n",
                n * 7919 % 1000
            )
            .unwrap();
            n += 1;
        }
        write!(
            req,
            "GET /index.html HTTP/1.1\r\nHost: site{}.example\r\nConnection: close\r\n\r\n",
            batch % 10
        )
        .unwrap();
        s.write_all(&req).unwrap();
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut sink).unwrap();
        batch += 1;
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let rss_after = common::rss_kib(l.pid());
    l.expect_log("bw_counter.max_hosts = 50 reached", Duration::from_secs(10));
    l.stop_ok();

    let rows = db.rows();
    assert!(
        rows.len() <= cap + 1,
        "rows per day <= cap + 1: {}",
        rows.len()
    );
    // The admitted sites are exact; everything else is in _other; in total
    // nothing is lost.
    let records = oracle::read_access_log(&l.access_log);
    let mut site_totals = std::collections::BTreeMap::new();
    let mut all = (0u64, 0u64);
    for r in &records {
        all = (all.0 + r.bytes_in, all.1 + r.bytes_out);
        if r.host.starts_with("site") {
            let e = site_totals.entry(r.host.clone()).or_insert((0u64, 0u64));
            e.0 += r.bytes_in;
            e.1 += r.bytes_out;
        }
    }
    let table = oracle::table_totals(&db);
    for (host, t) in &site_totals {
        assert_eq!(
            table.get(host),
            Some(t),
            "{host} stays exact during the flood"
        );
    }
    let stored = table.values().fold((0, 0), |a, t| (a.0 + t.0, a.1 + t.1));
    assert_eq!(stored, all, "every byte landed in some row");
    assert!(table.contains_key("_other"), "{table:?}");
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "flood of {n} hosts in {flood_secs:.1}s: lighttpd RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        growth < 8 * 1024,
        "RSS grew by {growth} KiB for {n} random hosts with a cap of {cap}"
    );
}

#[test]
fn a_stalled_database_does_not_slow_requests_and_loses_nothing() {
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, 1, ""));
    l.expect_log("database check ok", Duration::from_secs(20));
    let timed = |l: &Lighttpd| {
        let t = Instant::now();
        for i in 0..50 {
            assert_eq!(
                get_raw_host(l.port, Some(format!("stall{}.example", i % 3).as_bytes())),
                200
            );
        }
        t.elapsed()
    };
    let healthy = timed(&l);
    common::signal(db.pid(), libc::SIGSTOP);
    // Several report intervals while the database cannot answer.
    let mut stalled = Duration::ZERO;
    let stall_started = Instant::now();
    while stall_started.elapsed() < Duration::from_secs(4) {
        stalled = stalled.max(timed(&l));
    }
    common::signal(db.pid(), libc::SIGCONT);
    eprintln!("50 requests: healthy {healthy:?}, slowest batch while stalled {stalled:?}");
    assert!(
        stalled < healthy * 5 + Duration::from_millis(500),
        "requests waited for the database: {healthy:?} vs {stalled:?}"
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

#[test]
fn after_sigkill_the_next_start_works_and_only_unreported_counts_are_lost() {
    let db = MariaDb::start();
    let conf = setup(&db, 3600, "");
    let mut l = Lighttpd::start(&conf);
    assert_eq!(get_raw_host(l.port, Some(b"killed.example")), 200);
    assert_eq!(
        l.stop_with(libc::SIGKILL, Duration::from_secs(10))
            .map(|s| s.success()),
        Some(false)
    );
    assert!(
        db.rows().is_empty(),
        "the unreported interval is lost on SIGKILL (documented bound)"
    );
    // Same config, same port, same table: starts, counts, reports.
    l.launch().expect("starts again after SIGKILL");
    assert_eq!(get_raw_host(l.port, Some(b"after.example")), 200);
    l.stop_ok();
    let rows = db.rows();
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["after.example"],
        "{rows:?}"
    );
}

/// A panic inside a hook (forced by the panic-test build for host
/// "panic.test") is caught: lighttpd logs it and goes on serving, and other
/// hosts are still counted exactly.
#[test]
fn a_panic_in_a_hook_is_logged_and_lighttpd_keeps_serving() {
    let db = MariaDb::start();
    let mut s = setup(&db, 1, "");
    s.module_so = Some(rig::panic_test_module_path());
    let mut l = Lighttpd::start(&s);
    for _ in 0..3 {
        assert_eq!(get_raw_host(l.port, Some(b"panic.test")), 200);
        assert_eq!(get_raw_host(l.port, Some(b"fine.example")), 200);
    }
    let line = l.expect_log(
        "internal error in handle_request_done",
        Duration::from_secs(5),
    );
    assert!(line.contains("forced by the panic-test feature"), "{line}");
    assert!(common::group_alive(l.pid()), "lighttpd is still running");
    l.stop_ok();
    let records = oracle::read_access_log(&l.access_log);
    let fine = oracle::expected_totals(&records, None)["fine.example"];
    assert_eq!(oracle::table_totals(&db).get("fine.example"), Some(&fine));
}
