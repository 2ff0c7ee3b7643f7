//! Issue #14: the write rate a 3-node Galera cluster sustains with the
//! module's flushes, against one plain server, interleaved. Three writers
//! (as three web servers' flushers would) each deliver batches of 1,000
//! (vhost, day) rows with the module's Link, retrying lock conflicts
//! exactly as the flusher does (flush::lock_retry_pause). Two workloads:
//! every writer adds to the same 1,000 rows (the web servers serve the
//! same vhosts: Galera's certification conflicts), and each writer its own
//! 1,000 rows. Figures: rows upserted per second, conflicts retried.
//!   cargo bench --bench galera      (make bench runs all benchmarks)

#[path = "../tests/common/mod.rs"]
mod common;
mod link;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::galera::Galera;
use common::mariadb::MariaDb;
use link::link;
use mod_bw_counter::counters::{Batch, Row, Traffic};
use mod_bw_counter::day::Day;
use mod_bw_counter::flush::{lock_retry_pause, random_u64, Sink, LOCK_ATTEMPTS};

const WRITERS: usize = 3;
const ROWS: usize = 1000;
const SECONDS: u64 = 8;

fn rows(first_host: usize) -> Vec<Row> {
    let mut v: Vec<Row> = (first_host..first_host + ROWS)
        .map(|i| Row {
            host: format!("host-{i:06}.example").into(),
            day: Day(20_420),
            traffic: Traffic {
                bytes_in: 100,
                bytes_out: 10_000,
            },
        })
        .collect();
    v.sort_by(|a, b| a.host.as_bytes().cmp(b.host.as_bytes()));
    v
}

/// Writers on `addresses` (one each) for SECONDS; (rows/s, conflicts
/// retried, flushes that ran out of attempts: the flusher would log one
/// line and try again after its backoff, as this does).
fn run(addresses: &[String], shared_rows: bool, tag: &str) -> (f64, u64, u64) {
    let gave_up = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = addresses
        .iter()
        .enumerate()
        .map(|(w, address)| {
            let (conflicts, delivered) = (conflicts.clone(), delivered.clone());
            let gave_up = gave_up.clone();
            let address = address.clone();
            let tag = tag.to_string();
            thread::spawn(move || {
                let mut l = link(&address);
                let rows = rows(if shared_rows { 0 } else { w * ROWS });
                let mut n = 0;
                while started.elapsed() < Duration::from_secs(SECONDS) {
                    let batch = Batch {
                        id: format!("bench/{tag}/{w}/{n}"),
                        rows: rows.clone(),
                    };
                    let mut attempt = 1;
                    loop {
                        match l.deliver(&batch) {
                            Ok(_) => break,
                            Err(e) if e.is_lock_conflict() && attempt < LOCK_ATTEMPTS => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                                thread::sleep(lock_retry_pause(attempt, random_u64()));
                                attempt += 1;
                            }
                            Err(e) if e.is_lock_conflict() => {
                                gave_up.fetch_add(1, Ordering::Relaxed);
                                thread::sleep(Duration::from_secs(1));
                                attempt = 1;
                            }
                            Err(e) => panic!("{address}: {e}"),
                        }
                    }
                    delivered.fetch_add(ROWS as u64, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    (
        delivered.load(Ordering::Relaxed) as f64 / secs,
        conflicts.load(Ordering::Relaxed),
        gave_up.load(Ordering::Relaxed),
    )
}

fn main() {
    let cluster = Galera::start();
    let single = MariaDb::start();
    let nodes: Vec<String> = (0..WRITERS).map(|i| cluster.tcp_address(i)).collect();
    let alone: Vec<String> = vec![single.tcp_address(); WRITERS];
    println!(
        "{WRITERS} writers, batches of {ROWS} rows, {SECONDS} s per run, interleaved; \
         rows/s (conflicts retried, flushes that ran out of attempts):"
    );
    for round in 0..2 {
        for (shared, what) in [(true, "the same rows"), (false, "rows of their own")] {
            let (c, cc, cg) = run(&nodes, shared, &format!("c{round}{shared}"));
            let (s, sc, sg) = run(&alone, shared, &format!("s{round}{shared}"));
            println!(
                "  round {round}, {what:>17}: cluster (one writer per node) {c:>8.0} ({cc}, {cg}), \
                 one server {s:>8.0} ({sc}, {sg}), cluster/server {:.2}",
                c / s
            );
        }
    }
}
