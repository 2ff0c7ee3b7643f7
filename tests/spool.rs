//! Issue #4 (part): the spool file. Counts the database cannot take at
//! shutdown survive on disk and reach the table soon after the next start;
//! a restart during an outage loses nothing; several workers replay a spool
//! once; a damaged spool is reported and its good records still replayed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::MariaDb;
use common::{oracle, spool, TempDir};

const WAIT: Duration = Duration::from_secs(30);

fn setup(db: &MariaDb, spool: &Path, extra: &str) -> Setup {
    let mut s = spool::setup(db, spool, 3600);
    s.conf.push_str(extra);
    s
}

fn get_ok(l: &Lighttpd, host: &str) {
    assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
}

#[test]
fn a_restart_during_an_outage_loses_nothing() {
    let dir = TempDir::new("spool");
    let spool = dir.path().join("bw_counter.spool");
    let mut db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, &spool, ""));
    l.expect_log("database check ok", WAIT);
    get_ok(&l, "first.example");
    get_ok(&l, "both.example");

    db.stop();
    l.stop_ok();
    l.expect_log("to spool file", WAIT);
    assert!(spool.exists());
    assert!(
        !l.all_output().contains("undelivered:"),
        "spooled, not given up"
    );

    // Restart while the database is still down: the spool is claimed,
    // cannot be delivered, and is written back with the new counts.
    l.launch().expect("starts during the outage");
    l.expect_log("replaying", WAIT);
    get_ok(&l, "second.example");
    get_ok(&l, "both.example");
    l.stop_ok();
    assert!(spool.exists());

    // The database is back: the next start delivers the spool at once,
    // long before the 3600 s report interval.
    db.launch();
    l.launch().expect("starts");
    l.expect_log("replayed completely", WAIT);
    assert!(!spool.exists(), "the spool is gone once delivered");
    let hosts: Vec<String> = db.rows().into_iter().map(|r| r.0).collect();
    assert_eq!(
        hosts,
        vec!["both.example", "first.example", "second.example"]
    );
    get_ok(&l, "third.example");
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "no spool files left behind: {leftovers:?}"
    );
}

#[test]
fn a_damaged_spool_is_reported_and_its_good_records_replayed() {
    let dir = TempDir::new("spool");
    let spool = dir.path().join("bw.spool");
    let good1 = spool::record("old/1/2/7", "2026-11-20", 100, 1000, "good.example");
    let good2 = spool::record("old/1/2/8", "2026-11-21", 5, 50, "other.example");
    let edited =
        spool::record("old/1/2/7", "2026-11-20", 1, 2, "evil.example").replace(" 1 2 ", " 9 9 ");
    let torn = &spool::record("old/1/2/9", "2026-11-22", 3, 3, "torn.example")[..30];
    std::fs::write(
        &spool,
        format!("{good1}{edited}not a record\n{good2}{torn}"),
    )
    .unwrap();

    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, &spool, ""));
    let line = l.expect_log("corrupt or truncated", WAIT);
    assert!(
        line.contains(&spool.display().to_string()),
        "names the file: {line}"
    );
    assert!(line.contains("skipped 3"), "{line}");
    assert!(line.contains("replaying the 2 good ones"), "{line}");
    l.expect_log("replayed completely", WAIT);
    l.stop_ok();
    let rows = db.rows();
    assert_eq!(
        rows,
        vec![
            (
                "good.example".to_string(),
                "2026-11-20".to_string(),
                100,
                1000
            ),
            ("other.example".to_string(), "2026-11-21".to_string(), 5, 50),
        ]
    );
}

#[test]
fn several_workers_replay_a_spool_once_and_the_ledger_stops_a_second_replay() {
    let dir = TempDir::new("spool");
    let spool = dir.path().join("bw.spool");
    let text = spool::record("w/1/2/1", "2026-11-20", 10, 20, "w.example");
    std::fs::write(&spool, &text).unwrap();
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&setup(&db, &spool, "server.max-worker = 2\n"));
    l.expect_log("replayed completely", WAIT);
    l.stop_ok();
    assert_eq!(
        l.all_output().matches("replaying").count(),
        1,
        "claimed by one worker"
    );
    assert_eq!(
        db.rows(),
        vec![("w.example".to_string(), "2026-11-20".to_string(), 10, 20)]
    );

    // The same batch again (say, a spool restored from a backup): the
    // ledger knows its id, so it is not added twice.
    std::fs::write(&spool, &text).unwrap();
    l.launch().expect("starts");
    l.expect_log("already in the table", WAIT);
    l.stop_ok();
    assert_eq!(
        db.rows(),
        vec![("w.example".to_string(), "2026-11-20".to_string(), 10, 20)]
    );
}
