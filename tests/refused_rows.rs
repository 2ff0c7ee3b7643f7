//! Issue #9, case 3: a row the database refuses for good. A value the table
//! cannot hold must not stop delivery for every other vhost: the row is
//! found, set aside in `<spool_file>.rejected` with a log line naming
//! vhost, day, bytes and the MySQL error, and the rest is delivered. Spool
//! records are checked against what the table can hold before replay. A
//! refusal every row shares (rights) keeps the counts and says what to
//! grant.

mod common;

use std::time::Duration;

use common::http;
use common::lighttpd::Lighttpd;
use common::mariadb::{MariaDb, DATABASE, TABLE, USER};
use common::{oracle, spool, TempDir};

const WAIT: Duration = Duration::from_secs(30);

fn get_ok(l: &Lighttpd, host: &str) {
    assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
}

#[test]
fn a_vhost_too_long_for_the_table_is_set_aside_and_the_rest_delivered() {
    let dir = TempDir::new("refused");
    let spool = dir.path().join("bw.spool");
    let db = MariaDb::start();
    // An admin's table narrower than examples/schema.sql (strict mode is
    // MariaDB's default).
    db.exec(&format!(
        "ALTER TABLE `{DATABASE}`.`{TABLE}` MODIFY `vhost` varchar(40) NOT NULL"
    ));
    let long = format!("{}.example", "a".repeat(41));
    assert_eq!(long.len(), 49);
    let mut l = Lighttpd::start(&spool::setup(&db, &spool, 1));
    l.expect_log("database check ok", WAIT);
    for _ in 0..3 {
        get_ok(&l, &long);
        get_ok(&l, "short.example");
        get_ok(&l, "other.example");
    }
    let line = l.expect_log(&format!("the table refuses vhost {long}"), WAIT);
    assert!(line.contains("ERROR 1406"), "{line}");
    assert!(
        line.contains("bytes in") && line.contains(" day "),
        "{line}"
    );
    // The process keeps delivering afterwards.
    get_ok(&l, "later.example");
    common::wait_for(WAIT, || {
        db.rows()
            .iter()
            .any(|r| r.0 == "later.example")
            .then_some(())
    })
    .expect("later counts delivered");
    l.stop_ok();

    let records = oracle::read_access_log(&l.access_log);
    let mut expected = oracle::expected_totals(&records, None);
    let long_totals = expected.remove(&long).expect("the long vhost was served");
    assert_eq!(oracle::table_totals(&db), expected, "every other vhost");
    let (rejected, _) = spool::totals(&dir.path().join("bw.spool.rejected"));
    assert_eq!(
        rejected.get(&long),
        Some(&long_totals),
        "set aside, to the byte"
    );
    assert!(!l.all_output().contains("database unreachable"));
}

#[test]
fn spooled_values_no_table_can_hold_are_set_aside_before_replay() {
    let dir = TempDir::new("refused");
    let spool = dir.path().join("bw.spool");
    let misfits = [
        spool::record("old/1/1/1", "2026-11-20", 1 << 63, 1, "big.example"),
        spool::record("old/1/1/2", "10000-01-01", 1, 1, "future.example"),
        spool::record(&"i".repeat(200), "2026-11-20", 1, 1, "longid.example"),
        spool::record("old/1/1/3", "2026-11-20", 1, 1, &"h".repeat(300)),
    ];
    let good = spool::record("old/1/1/4", "2026-11-21", 7, 70, "good.example");
    std::fs::write(&spool, format!("{}{good}", misfits.concat())).unwrap();

    let db = MariaDb::start();
    let mut l = Lighttpd::start(&spool::setup(&db, &spool, 1));
    l.expect_log("replayed completely", WAIT);
    l.stop_ok();
    assert_eq!(
        db.rows(),
        vec![("good.example".to_string(), "2026-11-21".to_string(), 7, 70)]
    );
    let log = l.all_output();
    assert_eq!(log.matches("the table refuses vhost").count(), 4, "{log}");
    let (rejected, _) = spool::totals(&dir.path().join("bw.spool.rejected"));
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert_eq!(rejected["big.example"], (1 << 63, 1));
}

#[test]
fn missing_rights_keep_the_counts_and_say_what_to_grant() {
    let dir = TempDir::new("refused");
    let spool = dir.path().join("bw.spool");
    let db = MariaDb::start();
    let mut l = Lighttpd::start(&spool::setup(&db, &spool, 1));
    l.expect_log("database check ok", WAIT);
    db.exec(&format!(
        "REVOKE INSERT ON `{DATABASE}`.`{TABLE}` FROM '{USER}'@'127.0.0.1'"
    ));
    get_ok(&l, "kept.example");
    let line = l.expect_log("the database refuses the counts", WAIT);
    assert!(line.contains("ERROR 1142"), "{line}");
    assert!(
        line.contains("grant") && line.contains("examples/grants.sql"),
        "{line}"
    );
    db.exec(&format!(
        "GRANT INSERT ON `{DATABASE}`.`{TABLE}` TO '{USER}'@'127.0.0.1'"
    ));
    l.expect_log(
        "the database takes the counts again",
        Duration::from_secs(60),
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(
        l.all_output().matches("refuses the counts").count(),
        1,
        "said once"
    );
}
