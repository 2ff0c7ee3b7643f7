//! What one scrape of `bw-report exporter` costs on a big table, run by
//! hand (a few minutes; not part of the test suite):
//!
//! ```sh
//! cargo bench -p bw-report --bench exporter
//! BWC_BENCH_VHOSTS=1000 BWC_BENCH_POOL=16M cargo bench -p bw-report --bench exporter
//! ```
//!
//! A private MariaDB (the module's test rig) gets 10,000 vhosts × 365 days
//! ending today, one row each; the built exporter reads it over loopback
//! TCP as a SELECT-only user. Printed: the time to start (which sums the
//! days before the window, as the first scrape of each day does), the
//! wall time of scrapes over HTTP, the rows InnoDB read per scrape, and
//! every statement of one scrape as the server's slow log saw it (rows
//! examined and EXPLAIN), so the plan quoted in the README is the plan
//! of the statements the exporter really sends.
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::common::mariadb::{DATABASE, TABLE};
use support::exporter::Exporter;
use support::Db;

const DAYS: u32 = 365;
const SCRAPES: usize = 20;

fn main() {
    let vhosts: u32 = env_or("BWC_BENCH_VHOSTS", 10_000);
    let pool = std::env::var("BWC_BENCH_POOL").unwrap_or_else(|_| "1G".into());
    let slow_log = std::env::temp_dir().join(format!("bwc-bench-slow-{}.log", std::process::id()));
    let db = Db::start_with(vec![
        format!("--innodb-buffer-pool-size={pool}"),
        format!("--slow-query-log-file={}", slow_log.display()),
    ]);
    load(&db, vhosts);

    let started = Instant::now();
    let exporter = start(&db);
    let start_time = started.elapsed();
    let first = exporter.get("/metrics");
    assert_eq!(first.status, 200, "{first:?}");
    let (times, rows_read) = timed_scrapes(&db, &exporter);
    drop(exporter);

    println!(
        "table: {vhosts} vhosts x {DAYS} days = {} rows; buffer pool {pool}",
        u64::from(vhosts) * u64::from(DAYS)
    );
    println!("start (sums the days before the window once): {start_time:.2?}");
    println!(
        "scrape over HTTP, {SCRAPES} times: min {:.1?}, median {:.1?}, max {:.1?}; {} bytes",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        first.body.len()
    );
    println!("rows read per scrape: {rows_read}");
    println!("\none scrape's statements, as the slow log saw them:");
    for line in statements_of_one_scrape(&db, &slow_log) {
        println!("{line}");
    }
    let _ = std::fs::remove_file(&slow_log);
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One row per vhost and day, the last day today (the server's date, the
/// exporter's too: same machine, same zone), in key order.
fn load(db: &Db, vhosts: u32) {
    let started = Instant::now();
    let mut conn = db.server.root_conn().expect("root connection");
    conn.query_drop(format!(
        "INSERT INTO {DATABASE}.{TABLE} (vhost, day, `in`, `out`) \
         SELECT CONCAT('vhost-', LPAD(v.seq, 6, '0'), '.example.org'), \
                CURDATE() - INTERVAL d.seq DAY, v.seq * 1000 + d.seq, v.seq * 7919 + d.seq * 13 \
         FROM {DATABASE}.seq_0_to_{} v JOIN {DATABASE}.seq_0_to_{} d ORDER BY 1, 2",
        vhosts - 1,
        DAYS - 1
    ))
    .expect("load the table");
    conn.query_drop(format!(
        "INSERT INTO {DATABASE}.{TABLE}_batches (batch) VALUES ('bench-1')"
    ))
    .expect("a ledger row");
    conn.query_drop(format!("ANALYZE TABLE {DATABASE}.{TABLE}"))
        .expect("analyze");
    eprintln!("loaded in {:.1?}", started.elapsed());
}

fn start(db: &Db) -> Exporter {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bw-report"));
    cmd.args(db.flags())
        .args(["exporter", "--listen", "127.0.0.1:0"]);
    Exporter::spawn(cmd)
}

/// Wall times of the scrapes, sorted, and the server's row reads per
/// scrape (Handler_read_*: rows found by a key lookup, rows read next in
/// key order, rows of full scans).
fn timed_scrapes(db: &Db, exporter: &Exporter) -> (Vec<Duration>, String) {
    let mut conn = db.server.root_conn().expect("root connection");
    let mut reads = || -> BTreeMap<String, u64> {
        conn.query(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME IN ('HANDLER_READ_KEY', 'HANDLER_READ_NEXT', 'HANDLER_READ_RND_NEXT')",
        )
        .expect("status")
        .into_iter()
        .collect()
    };
    let before = reads();
    let mut times: Vec<Duration> = (0..SCRAPES)
        .map(|_| {
            let t = Instant::now();
            let answer = exporter.get("/metrics");
            assert_eq!(answer.status, 200);
            t.elapsed()
        })
        .collect();
    let per_scrape: Vec<String> = reads()
        .into_iter()
        .map(|(name, after)| {
            let delta = after - before.get(&name).copied().unwrap_or(0);
            format!("{name} {}", delta / SCRAPES as u64)
        })
        .collect();
    times.sort();
    (times, per_scrape.join(", "))
}

/// A second exporter connects with every statement in the slow log and
/// EXPLAIN: what its start and then one scrape sent, per statement shape.
fn statements_of_one_scrape(db: &Db, slow_log: &Path) -> Vec<String> {
    db.server.exec(
        "SET GLOBAL long_query_time = 0; \
         SET GLOBAL log_slow_verbosity = 'query_plan,explain'; \
         SET GLOBAL slow_query_log = 1",
    );
    let exporter = start(db);
    let read = || std::fs::read_to_string(slow_log).expect("the slow log");
    let at_start = read().len();
    assert_eq!(exporter.get("/metrics").status, 200);
    drop(exporter);
    db.server.exec("SET GLOBAL slow_query_log = 0");
    let log = read();
    let mut out = vec!["at start:".to_string()];
    out.extend(summarise(&log[..at_start]));
    out.push("one scrape:".into());
    out.extend(summarise(&log[at_start..]));
    out
}

/// The statements of a stretch of slow log, per shape (an IN list cut
/// short): how often, rows examined, time, and the EXPLAIN logged.
fn summarise(log: &str) -> Vec<String> {
    #[derive(Default)]
    struct Seen {
        count: u32,
        examined: u64,
        seconds: f64,
        explain: Vec<String>,
    }
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let (mut examined, mut seconds, mut explain) = (0u64, 0f64, Vec::new());
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("# Query_time: ") {
            seconds = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
            examined = rest
                .rsplit("Rows_examined: ")
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            explain.clear();
        } else if let Some(plan) = line.strip_prefix("# explain: ") {
            explain.push(plan.to_string());
        } else if line.starts_with("SELECT") && !line.starts_with("SELECT @@") {
            let shape = match line.split_once(" IN (") {
                Some((head, _)) => format!("{head} IN (...)"),
                None => line.to_string(),
            };
            let s = seen.entry(shape).or_default();
            s.count += 1;
            s.examined += examined;
            s.seconds += seconds;
            if s.explain.is_empty() {
                s.explain = std::mem::take(&mut explain);
            }
        }
    }
    let mut out = Vec::new();
    for (shape, s) in seen {
        out.push(format!(
            "  {} x {shape}\n    {} rows examined, {:.1} ms",
            s.count,
            s.examined,
            s.seconds * 1000.0
        ));
        out.extend(s.explain.iter().map(|e| format!("    {e}")));
    }
    out
}
