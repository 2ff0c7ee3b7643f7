//! Issue #4 (part): the spool file. Counts the database cannot take at
//! shutdown survive on disk and reach the table soon after the next start;
//! a restart during an outage loses nothing; several workers replay a spool
//! once; a damaged spool is reported and its good records still replayed.

mod common;

use std::path::{Path, PathBuf};
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

/// A directory with a spool file holding `records`.
fn spool_with(records: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new("spool");
    let spool = dir.path().join("bw.spool");
    std::fs::write(&spool, records).unwrap();
    (dir, spool)
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
    let text = spool::record("w/1/2/1", "2026-11-20", 10, 20, "w.example");
    let (_dir, spool) = spool_with(&text);
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

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Issue #9, case 4: a claimed spool whose process died (SIGKILL, crash)
/// before it finished the replay is replayed by the next start, not left
/// behind as `*.claimed.*`.
#[test]
fn a_spool_claimed_by_a_process_that_died_is_replayed_by_the_next_start() {
    let (dir, spool) = spool_with(&spool::record(
        "dead/1/2/1",
        "2026-11-20",
        10,
        20,
        "orphan.example",
    ));
    let mut db = MariaDb::start();
    db.stop();
    let mut l = Lighttpd::start(&setup(&db, &spool, ""));
    l.expect_log("replaying", WAIT);
    // The claimer is the flusher process: it dies first, then lighttpd.
    let flushers = common::children_named(l.pid(), "bw_counter-flus");
    assert_eq!(flushers.len(), 1, "{flushers:?}");
    common::signal(flushers[0], libc::SIGKILL);
    l.stop_with(libc::SIGKILL, WAIT);
    assert!(
        leftovers(dir.path())
            .iter()
            .any(|f| f.contains(".claimed.")),
        "the killed process left its claim: {:?}",
        leftovers(dir.path())
    );

    db.launch();
    l.launch().expect("starts");
    l.expect_log("replayed completely", WAIT);
    l.stop_ok();
    assert_eq!(
        db.rows(),
        vec![(
            "orphan.example".to_string(),
            "2026-11-20".to_string(),
            10,
            20
        )]
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// Issue #9, case 4: an append that fails part-way (here EFBIG, as on a
/// full disk) is cut back to the last whole record, and the log says
/// exactly which counts are in the spool and which are not: together they
/// are everything, each once.
#[test]
fn a_failed_append_is_cut_back_to_whole_records_and_the_log_says_what_is_where() {
    let dir = TempDir::new("spool");
    let spool = dir.path().join("bw.spool");
    // An earlier spool of 1,500 rows, claimed and not delivered (the
    // database is down), written back at stop with the new counts.
    let old: String = (0..1500)
        .map(|i| {
            spool::record(
                "old/1/2/1",
                "2026-11-20",
                i,
                1,
                &format!("old{i:04}.example"),
            )
        })
        .collect();
    std::fs::write(&spool, &old).unwrap();
    let mut db = MariaDb::start();
    db.stop();
    let mut s = setup(&db, &spool, "");
    s.max_file_size = Some(old.len() as u64 + 400);
    let mut l = Lighttpd::start(&s);
    l.expect_log("replaying", WAIT);
    for i in 0..20 {
        get_ok(&l, &format!("new{i:02}.example"));
    }
    l.stop_ok();

    let (on_disk, _) = spool::totals(&spool);
    let text = std::fs::read_to_string(&spool).unwrap();
    assert!(text.ends_with('\n'), "no torn record at the end");
    let log = l.all_output();
    let mut logged = oracle::Totals::new();
    for line in log.lines().filter(|l| l.contains("undelivered: ")) {
        let f: Vec<&str> = line
            .split("undelivered: ")
            .nth(1)
            .unwrap()
            .split(' ')
            .collect();
        let e = logged.entry(f[1].to_string()).or_default();
        e.0 += f[5].parse::<u64>().unwrap();
        e.1 += f[7].parse::<u64>().unwrap();
    }
    assert!(!logged.is_empty(), "something did not fit: {log}");
    let mut everything = oracle::expected_totals(&oracle::read_access_log(&l.access_log), None);
    for i in 0..1500u64 {
        everything.insert(format!("old{i:04}.example"), (i, 1));
    }
    let mut both = on_disk.clone();
    for (host, t) in &logged {
        assert!(
            !on_disk.contains_key(host),
            "{host} both on disk and in the log"
        );
        both.insert(host.clone(), *t);
    }
    assert_eq!(both, everything, "spool + log = every count, once");
}

/// Issue #9, case 4: the spool is private (mode 0600), never written
/// through a symlink, and a spool directory others may write to is
/// refused at start-up.
#[test]
fn the_spool_is_private_and_never_written_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("spool");
    let spool = dir.path().join("bw.spool");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "").unwrap();
    std::os::unix::fs::symlink(&victim, &spool).unwrap();
    let mut db = MariaDb::start();
    db.stop();
    let mut l = Lighttpd::start(&setup(&db, &spool, ""));
    get_ok(&l, "linked.example");
    l.stop_ok();
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "",
        "not written through the link"
    );
    let log = l.all_output();
    assert!(log.contains("cannot write spool file"), "{log}");
    assert!(log.contains("undelivered: vhost linked.example"), "{log}");

    std::fs::remove_file(&spool).unwrap();
    l.launch().expect("starts");
    get_ok(&l, "private.example");
    l.stop_ok();
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "spool mode {mode:o}");

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let refused = Lighttpd::try_start(&setup(&db, &spool, ""))
        .err()
        .expect("refused");
    assert!(
        refused.output.contains(&format!(
            "bw_counter.spool_file = \"{}\": its directory {} is writable by every user",
            spool.display(),
            dir.path().display()
        )),
        "{}",
        refused.output
    );
}
