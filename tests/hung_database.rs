//! Issue #9, case 1: a database that hangs (accepts TCP, never answers)
//! while lighttpd stops. Every count that is not known to be committed
//! must reach the spool, whatever the flusher thread is blocked in; the
//! stop is bounded; the log line says exactly what was written where; and
//! after the database is back, a restart makes the table equal the access
//! log, to the byte (the ledger stops a batch whose COMMIT did land from
//! being added twice).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http;
use common::lighttpd::Lighttpd;
use common::mariadb::MariaDb;
use common::{oracle, spool, TempDir};

const WAIT: Duration = Duration::from_secs(30);
/// What the README promises for a stop with a hung database, plus slack
/// for lighttpd's own shutdown on a loaded test machine.
const STOP_BOUND: Duration = Duration::from_secs(12);

/// Resumes a `kill -STOP`ped server when dropped, so that a failing test
/// still lets MariaDB shut down.
struct Frozen(u32);

impl Frozen {
    fn new(db: &MariaDb) -> Frozen {
        common::signal(db.pid(), libc::SIGSTOP);
        Frozen(db.pid())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        common::signal(self.0, libc::SIGCONT);
    }
}

/// GETs for three vhosts (a 64 KiB file and a small page) for `secs`.
fn traffic(l: &Lighttpd, secs: u64) {
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        let host = ["one.example", "two.example", "three.example"][i % 3];
        let path = if i % 2 == 0 {
            "/big.bin"
        } else {
            "/index.html"
        };
        assert_eq!(http::get(l.port, Some(host), path).status, 200);
        i += 1;
    }
}

/// (bytes in, bytes out, rows) in the spool's records.
fn spool_sums(path: &Path) -> (u64, u64, usize) {
    let (totals, records) = spool::totals(path);
    let (bytes_in, bytes_out) = totals.values().fold((0, 0), |(i, o), t| (i + t.0, o + t.1));
    (bytes_in, bytes_out, records)
}

/// "… wrote 123 bytes in, 456 bytes out in 7 rows …" -> (123, 456, 7).
fn logged_sums(line: &str) -> (u64, u64, usize) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .windows(2)
        .position(|w| w[0] == "wrote")
        .unwrap_or_else(|| panic!("no 'wrote' in {line:?}"));
    let n = |i: usize| words[at + i].trim_end_matches(',');
    (
        n(1).parse().unwrap(),
        n(4).parse().unwrap(),
        n(8).parse().unwrap(),
    )
}

#[test]
fn a_database_that_hangs_while_lighttpd_stops_loses_nothing() {
    let dir = TempDir::new("hung");
    let spool = dir.path().join("bw.spool");
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&spool::setup(&db, &spool, 1));
    std::fs::write(l.docroot.join("big.bin"), vec![b'x'; 64 * 1024]).unwrap();
    l.expect_log("database check ok", WAIT);
    traffic(&l, 2);
    common::wait_for(WAIT, || (!db.rows().is_empty()).then_some(()))
        .expect("counts reach the table while the database answers");

    let frozen = Frozen::new(&db);
    // Several report intervals queue up behind the hung database.
    traffic(&l, 5);
    let stopping = Instant::now();
    l.stop_ok();
    let took = stopping.elapsed();
    assert!(took < STOP_BOUND, "the stop took {took:?}");

    let line = l.expect_log("to spool file", WAIT);
    let spooled = spool_sums(&spool);
    assert_eq!(
        logged_sums(&line),
        spooled,
        "the log line says what the spool holds: {line}"
    );
    assert!(spooled.0 > 0, "something was spooled: {line}");
    assert!(!l.all_output().contains("undelivered:"), "{line}");

    // The database is back; the next start replays the spool.
    drop(frozen);
    l.launch().expect("starts again");
    l.expect_log("replayed completely", WAIT);
    l.stop_ok();
    let totals = oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    let sent: BTreeMap<_, _> = totals.iter().filter(|(_, t)| t.1 > 0).collect();
    assert_eq!(sent.len(), 3, "three vhosts: {totals:?}");
}
