//! Issue #4 (part): exactly-once delivery through the ledger table. The
//! worst moment: the server committed a flush, but the connection died
//! before the module saw the OK. A plain retry would count it twice.

mod common;

use std::time::Duration;

use common::http;
use common::lighttpd::{Lighttpd, Setup};
use common::mariadb::{MariaDb, DATABASE, TABLE};
use common::oracle;
use common::proxy::CommitDropper;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_lost_commit_reply_is_not_counted_twice() {
    let db = MariaDb::start();
    let proxy = CommitDropper::start(db.port);
    let conf = db
        .module_options()
        .replace(&db.tcp_address(), &format!("127.0.0.1:{}", proxy.port));
    let mut l = Lighttpd::start(&Setup::new(conf + "bw_counter.report_interval = 1\n"));
    l.expect_log("database check ok", WAIT);
    proxy.arm();
    for _ in 0..5 {
        assert_eq!(
            http::get(l.port, Some("once.example"), "/index.html").status,
            200
        );
    }
    let line = l.expect_log("was already in the table", WAIT);
    assert!(line.contains("not added again"), "{line}");
    assert_eq!(proxy.dropped_commits(), 1);
    assert_eq!(
        http::get(l.port, Some("once.example"), "/index.html").status,
        200
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}

#[test]
fn without_the_ledger_table_delivery_falls_back_to_at_least_once_and_says_so() {
    let db = MariaDb::start();
    db.exec(&format!("DROP TABLE `{DATABASE}`.`{TABLE}_batches`"));
    let mut l = Lighttpd::start(&Setup::new(
        db.module_options() + "bw_counter.report_interval = 1\n",
    ));
    let line = l.expect_log("unusable", WAIT);
    assert!(line.contains("at-least-once"), "{line}");
    assert_eq!(
        http::get(l.port, Some("plain.example"), "/index.html").status,
        200
    );
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert_eq!(l.all_output().matches("unusable").count(), 1, "said once");
}

/// Issue #9, case 5: a connection that breaks while the module looks at
/// the ledger table (here: at start-up) is a network error, not a verdict
/// on the ledger. Exactly-once must stay on: a COMMIT reply lost later is
/// still recognised.
#[test]
fn a_connection_lost_while_probing_the_ledger_keeps_exactly_once() {
    let db = MariaDb::start();
    let proxy = CommitDropper::start(db.port);
    proxy.arm_on(format!("FROM `{TABLE}_batches` LIMIT 0").as_bytes());
    let conf = db
        .module_options()
        .replace(&db.tcp_address(), &format!("127.0.0.1:{}", proxy.port));
    let mut l = Lighttpd::start(&Setup::new(conf + "bw_counter.report_interval = 1\n"));
    l.expect_log("database check", WAIT);
    common::wait_for(WAIT, || (proxy.dropped_commits() == 1).then_some(()))
        .expect("the probe's connection was cut");
    let get = || {
        assert_eq!(
            http::get(l.port, Some("probe.example"), "/index.html").status,
            200
        );
    };
    get();
    common::wait_for(WAIT, || (!db.rows().is_empty()).then_some(()))
        .expect("delivered after a reconnect");
    proxy.arm();
    get();
    let line = l.expect_log("was already in the table", WAIT);
    assert!(line.contains("not added again"), "{line}");
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
    assert!(!l.all_output().contains("unusable"), "{}", l.all_output());
}

/// Issue #9, case 5: a ledger table created while lighttpd runs is used
/// from the next connection on, without a restart.
#[test]
fn a_ledger_table_created_later_is_used_from_the_next_connection() {
    let db = MariaDb::start();
    db.exec(&format!("DROP TABLE `{DATABASE}`.`{TABLE}_batches`"));
    let proxy = CommitDropper::start(db.port);
    let conf = db
        .module_options()
        .replace(&db.tcp_address(), &format!("127.0.0.1:{}", proxy.port));
    let mut l = Lighttpd::start(&Setup::new(conf + "bw_counter.report_interval = 1\n"));
    l.expect_log("unusable", WAIT);
    let get = |host: &str| {
        assert_eq!(http::get(l.port, Some(host), "/index.html").status, 200);
    };
    get("before.example");
    common::wait_for(WAIT, || (!db.rows().is_empty()).then_some(()))
        .expect("delivered at-least-once meanwhile");

    // The admin creates the ledger as examples/schema.sql and grants.sql
    // say; the module's connection breaks (a server restart, say).
    db.apply_sql_file("schema.sql");
    db.apply_sql_file("grants.sql");
    db.exec("KILL USER bw_counter");
    get("after.example");
    l.expect_log("is usable again", WAIT);
    proxy.arm();
    get("after.example");
    let line = l.expect_log("was already in the table", WAIT);
    assert!(line.contains("not added again"), "{line}");
    l.stop_ok();
    oracle::assert_table_matches_access_log(&l.access_log, &db, None);
}
